"""What ``fitlab-train`` and ``fitlab-eval`` share once the config passed its checks: building
the data, model and trainer, and the numbers a run reports.

Each entry point is one flat function (``train.train``, ``eval.evaluate``); the pieces both need
live here once, and :mod:`fitlab.entry` runs them behind the checks.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig, OmegaConf

from fitlab.run import checkpoints
from fitlab.run.cluster import destroy_process_group_at_exit
from fitlab.run.console import in_spawned_rank


def instantiate_group(group: DictConfig | None, **kwargs: Any) -> list:
    """Instantiate every entry of a ``callbacks`` or ``logger`` group that has a ``_target_``."""
    if not group:
        return []
    return [instantiate(node, **kwargs.get(name, {})) for name, node in group.items()
            if node and "_target_" in node]  # fmt: skip


def continued_logging(group: DictConfig | None, from_step: int | None) -> dict[str, dict]:
    """Logger arguments for a run that goes on from a checkpoint at ``from_step``: what the
    interrupted attempt logged from there on is dropped, the new attempt logs it again."""
    if from_step is None or not group:
        return {}
    kwargs = {}
    for name, node in group.items():
        target = (node or {}).get("_target_", "")
        if target.endswith("TensorBoardLogger"):
            kwargs[name] = {"purge_step": from_step}  # TensorBoard hides events from here on
        elif target == "fitlab.run.loggers.CSVLogger":
            kwargs[name] = {"keep_before_step": from_step}
    return kwargs


class EveryRank(L.Callback):
    """What each process of a run sets up for itself, whichever callbacks the config names."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        destroy_process_group_at_exit()  # gloo ranks otherwise abort at exit now and then
        in_spawned_rank(trainer.global_rank)  # ddp_spawn's rank 0 logs to the run's log too


def build_trainer(cfg: DictConfig, resumed_step: int | None = None, **overrides: Any) -> L.Trainer:
    callbacks = instantiate_group(cfg.get("callbacks"))
    logger_kwargs = continued_logging(cfg.get("logger"), resumed_step)
    loggers: list[Logger] = instantiate_group(cfg.get("logger"), **logger_kwargs)
    if not loggers:  # logger=none: Lightning refuses a LearningRateMonitor with nothing to log to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    saves = any(isinstance(c, ModelCheckpoint) for c in callbacks)
    if not saves and "enable_checkpointing" not in cfg.trainer:
        # Lightning would add its own checkpoint (in the logger's folder): callbacks=none means
        # none; ++trainer.enable_checkpointing=true brings Lightning's back.
        overrides.setdefault("enable_checkpointing", False)
    requeues = any(getattr(c, "requeues_on_slurm_signal", False) for c in callbacks)
    if requeues and SLURMEnvironment.detect():
        # SlurmRequeue saves at a batch boundary; Lightning's own handler saves mid-step.
        overrides.setdefault("plugins", [SLURMEnvironment(auto_requeue=False)])
    callbacks = [EveryRank(), *callbacks]
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **overrides)


def build_parts(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule]:
    """Data first: it tells the model its input channels, image size and classes."""
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model, **datamodule.model_kwargs(), _convert_="all")
    ckpt = checkpoints.resolve(cfg)
    if ckpt is not None:
        checkpoints.check_fits(model, ckpt)
    return datamodule, model


def scalar_metrics(trainer: L.Trainer) -> dict[str, float]:
    return {name: float(value) for name, value in trainer.callback_metrics.items()}


def config_as_dict(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config without Hydra's own node, for loggers' hyperparameters."""
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    container.pop("hydra", None)
    return container
