"""Every value a user can set, checked on the composed config before anything is built.

:mod:`~fitlab.validation.rules` checks each key on its own (type, range, option names),
:mod:`~fitlab.validation.consistency` the keys that depend on each other. Each failure is a
:class:`~fitlab.errors.FitlabError` naming the key, the value and what would be accepted.
"""

from __future__ import annotations

from omegaconf import DictConfig

from fitlab.validation import consistency
from fitlab.validation.rules import RULES, check_rule, shown

CHECKS = (
    consistency.check_channels,
    lambda cfg: [check_rule(cfg, rule) for rule in RULES],
    consistency.check_splits,
    consistency.check_epochs,
    consistency.check_accelerator,
    consistency.check_directions,
    consistency.check_model_fits_image,
    consistency.check_data_root,
    consistency.check_targets,
)


def check_config(cfg: DictConfig) -> None:
    """Raise a FitlabError for the first value that is wrong; return quietly otherwise."""
    for check in CHECKS:
        check(cfg)


__all__ = ["RULES", "check_config", "shown"]
