"""Rules for what the sweepers (basic, Optuna) and launchers (joblib, submitit) read, when the
composed config has them."""

from __future__ import annotations

from fitlab.validation.kinds import COUNT, SEED, Kind, Rule, integer, is_int, number, one_of

RULES = (
    Rule("hydra.sweeper.max_batch_size", integer(1), null=True),
    Rule("hydra.sweeper.n_trials", integer(1)),
    Rule("hydra.sweeper.n_jobs", integer(1)),
    Rule("hydra.sweeper.direction", one_of(["minimize", "maximize"])),
    Rule("hydra.sweeper.max_failure_rate", number(0, 1.0000001)),
    Rule("hydra.sweeper.sampler.seed", SEED, null=True),
    Rule("hydra.sweeper.sampler.n_startup_trials", integer(0)),
    Rule("hydra.launcher.n_jobs", Kind(lambda v: is_int(v) and v != 0, "an integer, -1 per core")),
    Rule("hydra.launcher.verbose", integer(0)),
    Rule("hydra.launcher.timeout", number(0, above=True), null=True),
    Rule("hydra.launcher.timeout_min", integer(1)),
    Rule("hydra.launcher.nodes", integer(1)),
    Rule("hydra.launcher.gpus_per_node", integer(0), null=True),
    Rule("hydra.launcher.tasks_per_node", integer(1)),
    Rule("hydra.launcher.cpus_per_task", COUNT, null=True),
    Rule("hydra.launcher.cpus_per_gpu", integer(1), null=True),
    Rule("hydra.launcher.gpus_per_task", integer(1), null=True),
    Rule("hydra.launcher.mem_gb", number(0, above=True), null=True),
    Rule("hydra.launcher.array_parallelism", integer(1)),
    Rule("hydra.launcher.signal_delay_s", integer(0)),
    Rule("hydra.launcher.max_num_timeout", integer(0)),
)
