"""What ``fitlab-train`` and ``fitlab-eval`` share: the Hydra entry, building the parts, reporting.

Each entry point is one flat function (``train.train``, ``eval.evaluate``); the pieces both need
live here once.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from fitlab import checkpoints, preflight, runs
from fitlab.callbacks.requeue import SlurmRequeue
from fitlab.config import config_dir, expand_path_overrides
from fitlab.console import shared_with_spawned_ranks, use_run_console
from fitlab.errors import FitlabError, exit_usage, find_fitlab_error

log = logging.getLogger(__name__)


def hydra_entry(
    config_name: str, task: Callable[[DictConfig], Any], resume_in_place: bool = False
) -> Callable[[], Any]:
    """``task`` behind the preflight checks and ``hydra.main``: a FitlabError becomes one line on
    stderr and exit 2; a failing job of a multirun is recorded and the others go on."""

    @hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=config_name)
    def run(cfg: DictConfig) -> Any:
        runs.begin_attempt()
        try:
            if not preflight.checked or HydraConfig.get().mode == RunMode.MULTIRUN:
                preflight.check(cfg)  # each job of a sweep: combinations fail here, alone
            with shared_with_spawned_ranks(HydraConfig.get().job_logging):
                return task(cfg)
        except Exception as exc:
            return job_failed(exc)

    def main() -> Any:
        use_run_console()  # 160 columns off a terminal, copied into the run's log (console.py)
        sys.argv[1:] = expand_path_overrides(sys.argv[1:])  # data.root=~/photos, as a shell would
        try:
            plan = preflight.plan(config_name, sys.argv[1:], resume_in_place)
        except FitlabError as err:
            exit_usage(err)
        if plan is not None and plan.completed_run is not None:
            print(preflight.completed_note(plan.completed_run), file=sys.stderr, flush=True)
            return None
        if plan is not None:
            sys.argv.extend(plan.overrides)  # also seen by Lightning's DDP re-launch
        result = run()
        if plan is not None and plan.multirun:
            exit_if_jobs_failed(plan.sweep_dir)
        return result

    return main


def job_failed(exc: Exception) -> None:
    """Leave the run folder honest, then report: one line (user mistake) or the traceback."""
    err = find_fitlab_error(exc)
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    message = str(err) if err is not None else runs.one_line(exc)
    resumed = (hydra_cfg.output_subdir or ".hydra") != ".hydra"
    if multirun or err is None or not (resumed or runs.trained_nothing(output_dir)):
        write_metrics(output_dir, runs.failure_record(message))
    elif resumed:  # a resumed run's own files stay as they were
        runs.remove(output_dir / hydra_cfg.output_subdir)
    else:  # a start that failed leaves no folder behind
        runs.remove(output_dir)
    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    if err is None and (full_error or not multirun):
        raise exc  # a bug: Hydra shows the traceback
    if not multirun:
        exit_usage(err, exc)
    if err is None or full_error:
        log.error("job %s failed", hydra_cfg.job.num, exc_info=exc)
    print(f"fitlab: error: job {hydra_cfg.job.num}: {message}", file=sys.stderr, flush=True)
    return None  # the sweep goes on; Optuna records the trial as failed


def exit_if_jobs_failed(sweep_dir: Path | None) -> None:
    failed = runs.failed_jobs(sweep_dir) if sweep_dir is not None else []
    if failed:
        for job, error in failed:
            print(f"fitlab: job {job} failed: {error}", file=sys.stderr)
        print(f"fitlab: {len(failed)} job(s) failed, see {sweep_dir}", file=sys.stderr)
        sys.exit(1)


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
        elif target == "fitlab.loggers.CSVLogger":
            kwargs[name] = {"keep_before_step": from_step}
    return kwargs


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
    if any(isinstance(c, SlurmRequeue) for c in callbacks) and SLURMEnvironment.detect():
        # SlurmRequeue saves at a batch boundary; Lightning's own handler saves mid-step.
        overrides.setdefault("plugins", [SLURMEnvironment(auto_requeue=False)])
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


def read_metrics(output_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(output_dir) / "metrics.json").read_text())


def _json_value(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


@rank_zero_only
def write_metrics(output_dir: str | Path, metrics: dict[str, Any]) -> Path:
    """``metrics.json``: one flat JSON object, keys sorted; non-finite numbers become null."""
    path = Path(output_dir) / "metrics.json"
    flat = {k: _json_value(v) for k, v in sorted(metrics.items())}
    path.parent.mkdir(parents=True, exist_ok=True)  # a run that saved nothing else yet
    path.write_text(json.dumps(flat, indent=2) + "\n")
    return path


def config_as_dict(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config without Hydra's own node, for loggers' hyperparameters."""
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    container.pop("hydra", None)
    return container
