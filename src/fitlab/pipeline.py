"""What ``fitlab-train`` and ``fitlab-eval`` share: the Hydra entry, building the parts, reporting.

Each entry point is one flat function (``train.train``, ``eval.evaluate``); the pieces both need
live here once.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from fitlab.config import config_dir
from fitlab.errors import EXIT_USAGE, find_fitlab_error, report


def hydra_entry(config_name: str, task: Callable[[DictConfig], Any]) -> Callable[[], Any]:
    """Wrap ``task`` in ``hydra.main``; a FitlabError becomes one line on stderr and exit 2."""

    @hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=config_name)
    def run(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except Exception as exc:
            err = find_fitlab_error(exc)
            if err is None:
                raise
            report(err)
            sys.exit(EXIT_USAGE)

    return run


def instantiate_group(group: DictConfig | None) -> list:
    """Instantiate every entry of a ``callbacks`` or ``logger`` group that has a ``_target_``."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if node and "_target_" in node]


def build_trainer(cfg: DictConfig, **overrides: Any) -> L.Trainer:
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers: list[Logger] = instantiate_group(cfg.get("logger"))
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **overrides)


def build_parts(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule]:
    """Data first: it tells the model its input channels, image size and classes."""
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model, **datamodule.model_kwargs(), _convert_="all")
    return datamodule, model


def scalar_metrics(trainer: L.Trainer) -> dict[str, float]:
    return {name: float(value) for name, value in trainer.callback_metrics.items()}


def _json_value(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


@rank_zero_only
def write_metrics(output_dir: str | Path, metrics: dict[str, Any]) -> Path:
    """``metrics.json``: one flat JSON object, keys sorted; non-finite numbers become null."""
    path = Path(output_dir) / "metrics.json"
    flat = {k: _json_value(v) for k, v in sorted(metrics.items())}
    path.write_text(json.dumps(flat, indent=2) + "\n")
    return path


def config_as_dict(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config without Hydra's own node, for loggers' hyperparameters."""
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    container.pop("hydra", None)
    return container
