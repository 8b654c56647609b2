"""One rule per config key: the kind of value it takes, and whether null or one value per CNN
block is allowed.

``RULES`` is a table; a key the composed config does not have is skipped, so a data source
without ``root`` passes, and a new key needs one more row.
"""

from __future__ import annotations

import math
import re
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lightning.fabric.plugins.precision.precision import _PRECISION_INPUT
from omegaconf import DictConfig, ListConfig, OmegaConf

from fitlab.data.sources import SOURCES
from fitlab.errors import FitlabError
from fitlab.models.cnn import ACTIVATIONS, NORMS, POOLS, per_block


@dataclass(frozen=True)
class Kind:
    """What a value must be: ``accepts`` tests it, ``words`` says it in the error message."""

    accepts: Callable[[Any], bool]
    words: str


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


BOOLEAN = Kind(lambda v: isinstance(v, bool), "true or false")
PROBABILITY = number(0, 1)  # [0, 1): a dropout of 1 drops everything
PENALTY = number(0)
SEED = integer(0, 2**32 - 1)  # what NumPy and Lightning accept
NAME = Kind(lambda v: isinstance(v, str) and re.fullmatch(r"[\w.-]+", v) is not None, "a name")
METRIC = Kind(
    lambda v: isinstance(v, str) and re.fullmatch(r"(train|val|test|fit)/\S+", v) is not None,
    "a logged metric such as val/acc or val/loss",
)
MODE = one_of(["min", "max"])
BATCHES = either(integer(0), Kind(lambda v: isinstance(v, float) and 0 <= v <= 1, "a fraction"))
PRECISIONS = [a for part in typing.get_args(_PRECISION_INPUT) for a in typing.get_args(part)]


@dataclass(frozen=True)
class Rule:
    key: str
    kind: Kind
    null: bool = False  # null is allowed
    blocks: bool = False  # one value for every CNN block, or a list with one per block


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
    Rule("callbacks.model_checkpoint.monitor", METRIC, null=True),
    Rule("callbacks.model_checkpoint.mode", MODE),
    Rule("callbacks.model_checkpoint.save_top_k", integer(-1)),
    Rule("callbacks.early_stopping.monitor", METRIC),
    Rule("callbacks.early_stopping.mode", MODE),
    Rule("callbacks.early_stopping.patience", integer(0)),
    Rule("callbacks.early_stopping.min_delta", PENALTY),
    Rule("callbacks.plots.every_n_epochs", integer(1)),
    Rule("callbacks.fit_diagnosis.target_error", PROBABILITY),
    Rule("callbacks.fit_diagnosis.gap", PENALTY),
    Rule("callbacks.fit_diagnosis.max_train_samples", integer(1)),
    Rule("callbacks.rich_progress_bar.refresh_rate", integer(0)),
    Rule("callbacks.rich_progress_bar.update_every_n_batches", integer(1)),
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
    present, value = lookup(cfg, rule.key)
    if not present or (value is None and rule.null):
        return
    fix = f"set {rule.key} to {rule.kind.words}" + (" or null" if rule.null else "")
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
