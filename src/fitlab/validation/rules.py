"""One rule per config key: the kind of value it takes, and whether null or one value per CNN
block is allowed.

``RULES`` is a table; a key the composed config does not have is skipped, so a data source
without ``root`` passes, and a new key needs one more row.
"""

from __future__ import annotations

import math
import re
import signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from fitlab.data.sources import SOURCES
from fitlab.errors import FitlabError
from fitlab.models.settings import ACTIVATIONS, FIT_METRICS, NORMS, POOLS, per_block


@dataclass(frozen=True)
class Kind:
    """What a value must be: ``accepts`` tests it, ``words`` says it in the error message."""

    accepts: Callable[[Any], bool]
    words: str
    detail: str = ""  # more for the fix than fits in the message, e.g. a long list of names


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (is_int(v) or isinstance(v, float)) and math.isfinite(v)


def integer(low: int, high: int | None = None) -> Kind:
    words = f"an integer >= {low}" + (f" and <= {high}" if high is not None else "")
    return Kind(lambda v: is_int(v) and v >= low and (high is None or v <= high), words)


def number(low: float, high: float | None = None, *, above: bool = False) -> Kind:
    """A finite number >= low (> low with ``above``), and < high when high is given."""
    words = f"a number in [{low}, {high})" if high else f"a number {'>' if above else '>='} {low}"

    def accepts(v: Any) -> bool:
        return _is_number(v) and (v > low if above else v >= low) and (high is None or v < high)

    return Kind(accepts, words)


def one_of(options: Iterable[Any]) -> Kind:
    options = list(options)
    words = ", ".join(str(o) for o in options)
    return Kind(lambda v: v in options, f"one of {words}" if len(options) > 1 else words)


def either(*kinds: Kind) -> Kind:
    return Kind(lambda v: any(k.accepts(v) for k in kinds), " or ".join(k.words for k in kinds))


def named(options: Iterable[str], words: str = "", detail: str = "") -> Kind:
    """An option name, in any case (as Lightning reads it), or a ``_target_`` config of a class."""
    options = list(options)

    def accepts(v: Any) -> bool:
        return (isinstance(v, str) and v.lower() in options) or _is_target(v)

    return Kind(accepts, words or f"one of {', '.join(options)}", detail)


def _is_target(v: Any) -> bool:
    return isinstance(v, DictConfig) and "_target_" in v  # its import is checked by check_targets


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


BOOLEAN = Kind(lambda v: isinstance(v, bool), "true or false")
PROBABILITY = number(0, 1)  # [0, 1): a dropout of 1 drops everything
PENALTY = number(0)
SEED = integer(0, 2**32 - 1)  # what NumPy and Lightning accept
NAME = Kind(lambda v: isinstance(v, str) and re.fullmatch(r"[\w.-]+", v) is not None, "a name")
# Only what fit logs: the checkpoint, early stopping and the sweepers follow it while training.
METRIC = Kind(
    lambda v: v in FIT_METRICS,
    "a metric the model logs during fit",
    f"one of {', '.join(FIT_METRICS)}; test/* metrics exist only after fit, and choosing the "
    "best epoch or trial by the test set would not be an honest test",
)
MODE = one_of(["min", "max"])
FRACTION = Kind(lambda v: isinstance(v, float) and 0 < v <= 1, "a fraction in (0, 1]")
BATCHES = either(integer(0), Kind(lambda v: isinstance(v, float) and 0 <= v <= 1, "a fraction"))
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
        return _is_target(v)
    if v.lower() in STRATEGIES:
        return True
    from lightning.pytorch.strategies import StrategyRegistry

    return v.lower() in StrategyRegistry


STRATEGY = Kind(
    _is_strategy,
    "auto or a strategy name",
    "e.g. ddp, ddp_spawn, fsdp, deepspeed: Lightning's StrategyRegistry has them all",
)
PATH = Kind(lambda v: isinstance(v, str) and v != "", "a path")
FINITE = Kind(_is_number, "a finite number")
SIGNAL = Kind(lambda v: v in signal.Signals.__members__, "a signal name such as SIGUSR1")
# An int, or its digits as text: oc.env interpolations (the SLURM launcher's) give text.
COUNT = Kind(lambda v: integer(1).accepts(int(v) if str(v).isdigit() else v), "an integer >= 1")


@dataclass(frozen=True)
class Rule:
    key: str
    kind: Kind
    null: bool = False  # null is allowed
    blocks: bool = False  # one value for every CNN block, or a list with one per block


def switches(section: str, names: str, null: bool = False) -> tuple[Rule, ...]:
    """A true-or-false rule for each of ``names`` (space-separated) under ``section``."""
    return tuple(Rule(f"{section}.{name}", BOOLEAN, null=null) for name in names.split())


RULES = (
    Rule("seed", SEED),
    Rule("task_name", NAME),
    Rule("train", BOOLEAN),
    Rule("test", BOOLEAN),
    Rule("optimized_metric", METRIC),
    Rule("ckpt_path", Kind(lambda v: isinstance(v, str) and v != "", "a path or last"), null=True),
    Rule("effective_batch_size", integer(1), null=True),
    Rule("data.source", one_of(SOURCES)),
    Rule("data.batch_size", integer(1)),
    Rule("data.eval_batch_size", integer(1), null=True),
    Rule("data.num_workers", integer(0)),
    Rule("data.val_fraction", PROBABILITY),
    Rule("data.test_fraction", PROBABILITY),
    Rule("data.image_size", integer(1), null=True),
    Rule("data.seed", SEED),
    Rule("data.pin_memory", BOOLEAN),
    Rule("data.grayscale", BOOLEAN),
    Rule("data.download", BOOLEAN),
    Rule("data.imbalance_ratio", number(1), null=True),
    Rule("data.imbalance_eval", BOOLEAN),
    Rule("data.num_folds", integer(2), null=True),
    Rule("data.fold", integer(0), null=True),
    Rule("data.augment_shift", integer(0)),
    Rule("model.kernel_size", integer(1), blocks=True),
    Rule("model.stride", integer(1), blocks=True),
    Rule("model.padding", integer(0), blocks=True),
    Rule("model.pool", one_of(POOLS), blocks=True),
    Rule("model.norm", one_of(NORMS), blocks=True),
    Rule("model.activation", one_of(ACTIVATIONS), blocks=True),
    Rule("model.dropout", PROBABILITY, blocks=True),
    Rule("model.head_dropout", PROBABILITY),
    Rule("model.l1", PENALTY),
    Rule("model.l2", PENALTY),
    Rule("model.label_smoothing", PROBABILITY),
    Rule("model.warmup_epochs", integer(0)),
    Rule("model.class_weights", one_of(["balanced"]), null=True),
    Rule("model.monitor", METRIC),
    Rule("model.compile", BOOLEAN),
    Rule("model.channels_last", either(BOOLEAN, one_of(["auto"]))),
    Rule("model.optimizer.lr", number(0, above=True)),
    Rule("model.optimizer.weight_decay", PENALTY),
    Rule("model.optimizer.momentum", PROBABILITY),
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
    Rule("callbacks.model_checkpoint.monitor", METRIC, null=True),
    Rule("callbacks.model_checkpoint.mode", MODE),
    Rule("callbacks.model_checkpoint.save_top_k", integer(-1)),
    Rule("callbacks.model_checkpoint.every_n_epochs", integer(0), null=True),
    Rule("callbacks.model_checkpoint.every_n_train_steps", integer(0), null=True),
    Rule("callbacks.model_checkpoint.save_last", either(BOOLEAN, one_of(["link"])), null=True),
    Rule("callbacks.model_checkpoint.save_on_train_epoch_end", BOOLEAN, null=True),
    *switches("callbacks.model_checkpoint", "save_weights_only auto_insert_metric_name verbose"),
    *switches("callbacks.model_checkpoint", "save_on_exception enable_version_counter"),
    Rule("callbacks.early_stopping.monitor", METRIC),
    Rule("callbacks.early_stopping.mode", MODE),
    Rule("callbacks.early_stopping.patience", integer(0)),
    Rule("callbacks.early_stopping.min_delta", PENALTY),
    Rule("callbacks.early_stopping.stopping_threshold", FINITE, null=True),
    Rule("callbacks.early_stopping.divergence_threshold", FINITE, null=True),
    Rule("callbacks.early_stopping.check_on_train_epoch_end", BOOLEAN, null=True),
    *switches("callbacks.early_stopping", "check_finite strict verbose log_rank_zero_only"),
    Rule("callbacks.lr_monitor.logging_interval", one_of(["epoch", "step"]), null=True),
    *switches("callbacks.lr_monitor", "log_momentum log_weight_decay"),
    Rule("callbacks.plots.pr_curves", BOOLEAN),
    Rule("callbacks.fit_diagnosis.target_error", PROBABILITY),
    Rule("callbacks.fit_diagnosis.gap", PENALTY),
    Rule("callbacks.fit_diagnosis.max_train_samples", integer(1)),
    Rule("callbacks.rich_progress_bar.refresh_rate", integer(0)),
    Rule("callbacks.rich_progress_bar.update_every_n_batches", integer(1)),
    Rule("callbacks.stop_on_non_finite_loss.check_every_n_steps", integer(1), null=True),
    Rule("callbacks.rich_model_summary.max_depth", integer(-1)),
    Rule("callbacks.slurm_requeue.signal_name", SIGNAL),
    # What the sweepers (basic, Optuna) and launchers (joblib, submitit) read, when present.
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


def shown(value: Any) -> str:
    """A value as the user would type it on the command line."""
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, list):
        return "[" + ",".join(shown(v) for v in value) + "]"
    return (
        "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    )


def lookup(cfg: DictConfig, key: str) -> tuple[bool, Any]:
    """(present, value); a missing parent or key is "not present"."""
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node or OmegaConf.is_missing(node, part):
            return False, None
        node = node[part]
    return True, node


def check_rule(cfg: DictConfig, rule: Rule) -> None:
    try:
        present, value = lookup(cfg, rule.key)
    except InterpolationResolutionError:
        if HydraConfig.initialized():
            raise
        return  # ${hydra:runtime.output_dir} and the like: the run folder, not made yet
    if not present or (value is None and rule.null):
        return
    fix = f"set {rule.key} to {rule.kind.words}" + (" or null" if rule.null else "")
    fix += f" ({rule.kind.detail})" if rule.kind.detail else ""
    values = [value]
    if rule.blocks:
        present, channels = lookup(cfg, "model.channels")
        blocks = len(channels) if present and isinstance(channels, Sequence) else 1
        plain = OmegaConf.to_container(value) if isinstance(value, ListConfig) else value
        values = per_block(plain, blocks, rule.key.rsplit(".", 1)[-1])
        fix += ", one value for all blocks or a list with one per block"
    for v in values:
        if not rule.kind.accepts(v):
            raise FitlabError(f"{rule.key}={shown(value)} is not {rule.kind.words}", fix)
