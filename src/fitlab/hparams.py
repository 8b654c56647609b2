"""TensorBoard's HPARAMS tab: every run as one row, its hyperparameters next to its final metrics.

Lightning writes the HPARAMS summary only together with metric values, which it logs again as
scalars at one step; that would add a stray point to the learning curves. So the summary is
written here at the end of the run, naming the metrics that already are scalars in the run
(``test/acc``, ``val/loss_best``, ...): TensorBoard takes each column's value from that scalar.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.tensorboard.summary import hparams

# Groups that say where things go, not how the model was trained.
_NOT_HYPERPARAMETERS = ("callbacks", "logger", "paths", "hydra")


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"lr": 1}}`` -> ``{"model/lr": 1}``; lists become strings, None stays out."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}/"))
        elif value is not None and not str(key).startswith("_"):
            flat[name] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return flat


def run_hparams(config: Mapping[str, Any]) -> dict[str, Any]:
    """The run's hyperparameters, flat: the config without the groups that say where things go."""
    return flatten({k: v for k, v in config.items() if k not in _NOT_HYPERPARAMETERS})


def log_hparams_session(
    trainer: L.Trainer, params: dict[str, Any], metric_names: Iterable[str]
) -> None:
    """Write one HPARAMS session (rank zero; TensorBoard loggers only)."""
    if trainer.global_rank != 0:
        return
    metrics = {name: 0.0 for name in metric_names}  # names only: values come from the scalars
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            writer = logger.experiment._get_file_writer()
            for summary in hparams(params, metrics):
                writer.add_summary(summary, trainer.global_step)
            writer.flush()
