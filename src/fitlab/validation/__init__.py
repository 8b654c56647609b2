"""Every value a user can set, checked on the composed config before anything is built.

:mod:`~fitlab.validation.rules` checks each key on its own (type, range, option names), by
the tables of :mod:`~fitlab.validation.training`, :mod:`~fitlab.validation.trainer`,
:mod:`~fitlab.validation.callbacks` and :mod:`~fitlab.validation.sweeps`;
:mod:`~fitlab.validation.consistency` checks the keys that depend on each other. Each failure is
a :class:`~fitlab.errors.FitlabError` naming the key, the value and what would be accepted.
"""

from __future__ import annotations

from omegaconf import DictConfig

from fitlab.validation import consistency
from fitlab.validation.rules import RULES, check_rule, shown

# What a value alone says, without importing torch or the configured classes: run first, so a
# wrong value fails at once.
VALUE_CHECKS = (
    consistency.check_channels,
    lambda cfg: [check_rule(cfg, rule) for rule in RULES],
    consistency.check_splits,
    consistency.check_epochs,
    consistency.check_warmup,
    consistency.check_directions,
    consistency.check_model_fits_image,
    consistency.check_data_root,
)
# What needs an import: the GPUs torch sees, the classes the config names.
IMPORT_CHECKS = (consistency.check_accelerator, consistency.check_targets)


def check_values(cfg: DictConfig) -> None:
    """Raise a FitlabError for the first value that is wrong, importing nothing heavy."""
    for check in VALUE_CHECKS:
        check(cfg)


def check_imports(cfg: DictConfig) -> None:
    """Raise a FitlabError for a GPU that is not there or a class that does not import."""
    for check in IMPORT_CHECKS:
        check(cfg)


def check_config(cfg: DictConfig) -> None:
    """Both: every value, then what the config imports."""
    check_values(cfg)
    check_imports(cfg)


__all__ = ["RULES", "check_config", "check_imports", "check_values", "shown"]
