"""All the rules, one per config key, and checking one of them on a composed config.

``RULES`` is a table, a part for each config group (:mod:`~fitlab.validation.training`,
:mod:`~fitlab.validation.trainer`, :mod:`~fitlab.validation.callbacks`,
:mod:`~fitlab.validation.sweeps`); a key the composed config does not have is skipped, so a
data source without ``root`` passes, and a new key needs one more row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from fitlab.errors import FitlabError
from fitlab.models.settings import per_block
from fitlab.validation import callbacks, sweeps, trainer, training
from fitlab.validation.kinds import Rule

RULES = (*training.RULES, *trainer.RULES, *callbacks.RULES, *sweeps.RULES)


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
