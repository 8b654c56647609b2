"""Rules for the Trainer's arguments, and the kinds only they take: Lightning's precisions,
strategies, devices and durations, written out or checked so that a value needs no torch.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from fitlab.validation.kinds import (
    BATCHES,
    BOOLEAN,
    FRACTION,
    PATH,
    PENALTY,
    Kind,
    Rule,
    either,
    integer,
    is_int,
    is_target,
    named,
    one_of,
    switches,
)


def _is_device_ids(v: Any) -> bool:
    """What Lightning parses as devices: a count >= 1, -1 (all), or a list of device ids."""
    if isinstance(v, str):
        ids = v.split(",")
        return (
            v in ("auto", "-1")
            or (v.isdigit() and int(v) > 0)
            or (len(ids) > 1 and all(i.isdigit() for i in ids if i) and any(ids))
        )
    if isinstance(v, (ListConfig, list)):
        return len(v) > 0 and len(set(v)) == len(v) and all(is_int(i) and i >= 0 for i in v)
    return is_int(v) and (v >= 1 or v == -1)


def _is_duration(v: Any) -> bool:
    """'DD:HH:MM:SS' or {days: ..., hours: ...}: what Lightning's Timer (max_time) parses."""
    if isinstance(v, DictConfig):
        v = OmegaConf.to_container(v, resolve=True)
    if not isinstance(v, (str, dict)):
        return False
    from lightning.pytorch.callbacks import Timer  # only for a max_time that is set

    try:
        return Timer(duration=v)._duration > 0
    except Exception:  # Lightning raises MisconfigurationException, TypeError or ValueError
        return False


# Lightning's _PRECISION_INPUT, written out so that checking needs no torch (a test compares them).
PRECISIONS = [
    64, 32, 16, "transformer-engine", "transformer-engine-float16", "16-true", "16-mixed",
    "bf16-true", "bf16-mixed", "32-true", "64-true", "64", "32", "16", "bf16",
]  # fmt: skip
DEVICES = Kind(_is_device_ids, "an integer >= 1, -1 (all), auto or a list of device ids")
DURATION = Kind(_is_duration, "a duration DD:HH:MM:SS or {days:..,hours:..,minutes:..}")
# What Lightning's StrategyRegistry names without plugins (a test compares them); another name is
# looked up in the registry itself, so a plugin's strategy passes too.
STRATEGIES = (
    "auto", "ddp", "ddp_spawn", "ddp_fork", "ddp_notebook",
    "ddp_find_unused_parameters_false", "ddp_find_unused_parameters_true",
    "ddp_spawn_find_unused_parameters_false", "ddp_spawn_find_unused_parameters_true",
    "ddp_fork_find_unused_parameters_false", "ddp_fork_find_unused_parameters_true",
    "ddp_notebook_find_unused_parameters_false", "ddp_notebook_find_unused_parameters_true",
    "deepspeed", "deepspeed_stage_1", "deepspeed_stage_2", "deepspeed_stage_2_offload",
    "deepspeed_stage_3", "deepspeed_stage_3_offload", "deepspeed_stage_3_offload_nvme",
    "fsdp", "fsdp_cpu_offload", "single_device", "single_xla", "xla_debug", "xla", "single_tpu",
)  # fmt: skip


def _is_strategy(v: Any) -> bool:
    if not isinstance(v, str):
        return is_target(v)
    if v.lower() in STRATEGIES:
        return True
    from lightning.pytorch.strategies import StrategyRegistry

    return v.lower() in StrategyRegistry


STRATEGY = Kind(
    _is_strategy,
    "auto or a strategy name",
    "e.g. ddp, ddp_spawn, fsdp, deepspeed: Lightning's StrategyRegistry has them all",
)


RULES = (
    Rule("trainer.max_epochs", either(integer(1), one_of([-1]))),
    Rule("trainer.min_epochs", integer(0), null=True),
    Rule("trainer.max_steps", either(integer(1), one_of([-1]))),
    Rule("trainer.accelerator", one_of(["auto", "cpu", "gpu", "cuda", "mps", "tpu"])),
    Rule("trainer.num_nodes", integer(1)),
    Rule("trainer.precision", one_of(PRECISIONS), null=True),
    Rule("trainer.check_val_every_n_epoch", integer(1), null=True),
    Rule("trainer.log_every_n_steps", integer(1), null=True),
    Rule("trainer.accumulate_grad_batches", integer(1)),
    Rule("trainer.gradient_clip_val", PENALTY, null=True),
    Rule("trainer.deterministic", either(BOOLEAN, one_of(["warn"])), null=True),
    Rule("trainer.limit_train_batches", BATCHES, null=True),
    Rule("trainer.limit_val_batches", BATCHES, null=True),
    Rule("trainer.limit_test_batches", BATCHES, null=True),
    # Every other Trainer argument a config or the command line can set (the tests hold this
    # table to Lightning's signature): what Lightning would refuse only once it starts.
    Rule("trainer.devices", DEVICES),
    Rule("trainer.strategy", STRATEGY),
    Rule("trainer.min_steps", integer(0), null=True),
    Rule("trainer.max_time", DURATION, null=True),
    Rule("trainer.limit_predict_batches", BATCHES, null=True),
    Rule("trainer.fast_dev_run", either(BOOLEAN, integer(0))),
    Rule("trainer.overfit_batches", BATCHES),
    Rule("trainer.val_check_interval", either(integer(1), FRACTION, DURATION), null=True),
    Rule("trainer.num_sanity_val_steps", integer(-1), null=True),
    Rule("trainer.gradient_clip_algorithm", named(["norm", "value"]), null=True),
    Rule("trainer.profiler", named(["simple", "advanced", "pytorch", "xla"]), null=True),
    Rule("trainer.reload_dataloaders_every_n_epochs", integer(0)),
    Rule("trainer.default_root_dir", PATH, null=True),
    Rule("trainer.model_registry", PATH, null=True),
    *switches("trainer", "enable_checkpointing enable_progress_bar enable_model_summary", True),
    *switches("trainer", "benchmark", null=True),
    *switches("trainer", "inference_mode use_distributed_sampler detect_anomaly barebones"),
    *switches("trainer", "sync_batchnorm enable_autolog_hparams"),
)
