"""``fitlab-train``: seed, build, fit, test the best checkpoint, write ``metrics.json``.

Returns the optimized metric's best value (``val/<metric>_best``, the score of the checkpoint it
tested), so Hydra sweepers (Optuna, ...) rank the run by the same "best"; a run that diverged
before it was ever validated returns the worst value instead of a crash.

``main`` (``fitlab-train``, ``python -m fitlab.train``) checks the command line first
(:mod:`fitlab.entry`); this module imports torch and Lightning only when ``train`` runs, so a
bad override fails before they load.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from fitlab.entry import train_main as main
from fitlab.models.settings import metric_mode
from fitlab.run import checkpoints, cluster, folders
from fitlab.run.folders import COMPLETED, write_metrics

if TYPE_CHECKING:
    import lightning as L

log = logging.getLogger(__name__)


def stopped_reason(trainer: L.Trainer) -> str:
    """Why fit ended, in one word a summary table can group by."""
    if trainer.interrupted:
        return "interrupted"
    early = trainer.early_stopping_callback
    if early is not None and early.stopped_epoch > 0:
        return "early_stopping"
    if trainer.fast_dev_run:
        return "fast_dev_run"
    if trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps:
        return "max_steps"
    return "max_epochs"


def rankable(value: float | None, metric: str) -> float:
    """The metric, or the worst value a sweeper can still rank when it is missing or NaN."""
    if value is not None and math.isfinite(value):
        return value
    return math.inf if metric_mode(metric) == "min" else -math.inf


def train(cfg: DictConfig) -> float | None:
    import lightning as L
    from lightning.pytorch.utilities import rank_zero_info

    from fitlab.callbacks import NonFiniteLoss, Requeued
    from fitlab.callbacks.fit_diagnosis import verdict_of
    from fitlab.callbacks.per_class import prints_test_table
    from fitlab.callbacks.requeue import await_requeue
    from fitlab.models.accumulation import check_effective_batch_size, configure_accumulation
    from fitlab.run.hparams import log_hparams_session
    from fitlab.run.pipeline import build_parts, build_trainer, config_as_dict, scalar_metrics

    check_effective_batch_size(cfg)
    output_dir = Path(cfg.paths.output_dir)
    if cfg.train and cfg.get("ckpt_path") is None and cluster.slurm_job():
        if folders.status(output_dir) == COMPLETED:  # a requeued job that had ended its run
            rank_zero_info(f"fitlab: {output_dir} completed in an earlier attempt of this job")
            record = folders.read_record(output_dir)
            return record.get(f"{cfg.optimized_metric}_best", record.get(cfg.optimized_metric))
        if (latest := folders.latest_checkpoint(output_dir)) is not None:  # the job was requeued
            cfg.ckpt_path = str(latest)
    resumed_step = None
    if cfg.train and cfg.get("ckpt_path") is not None:
        resumed_step = checkpoints.continue_in_place(checkpoints.resolve(cfg), output_dir)
    L.seed_everything(cfg.seed, workers=True)
    datamodule, model = build_parts(cfg)
    trainer = build_trainer(cfg, resumed_step)
    batches = configure_accumulation(trainer, cfg.get("effective_batch_size"), cfg.data.batch_size)
    hparams = {**config_as_dict(cfg), **batches} if trainer.loggers else {}
    for logger in trainer.loggers:
        logger.log_hyperparams(hparams)

    metrics: dict = {}
    diverged = False
    if cfg.train:
        try:
            trainer.fit(
                model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True
            )
            metrics["stopped_reason"] = stopped_reason(trainer)
        except Requeued:
            await_requeue()  # SLURM ends this attempt; the next one resumes from the checkpoint
        except NonFiniteLoss as stop:
            diverged = True
            kept = trainer.checkpoint_callback and trainer.checkpoint_callback.last_model_path
            log.warning(
                "fitlab: training stopped: %s; last good checkpoint: %s; a lower "
                "model.optimizer.lr or trainer.gradient_clip_val=1.0 may keep it finite",
                stop,
                kept or "none, it diverged before the first epoch ended",
            )
            metrics.update(stopped_reason="non_finite_loss", diverged_at_step=stop.step)
        metrics.update(scalar_metrics(trainer))
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    # The best checkpoint, not the last weights; with train=false the checkpoint given; without
    # either (fast_dev_run) the weights at hand, unless those diverged.
    tested = best or (None if cfg.train else cfg.get("ckpt_path"))
    if cfg.test and not (diverged and not best):
        verbose = not prints_test_table(trainer)  # one test table, rounded: fitlab's
        trainer.test(
            model, datamodule=datamodule, ckpt_path=tested, weights_only=True, verbose=verbose
        )
        metrics.update(scalar_metrics(trainer))

    for callback in trainer.callbacks:
        metrics.update(getattr(callback, "results", {}))  # e.g. the fit diagnosis
    metrics.update(verdict_of(metrics))  # under ddp_spawn its numbers came back, not its verdict
    metrics.update(
        status=COMPLETED,
        best_ckpt_path=best or None,
        **batches,
        **folders.attempt.record(),
    )
    path = write_metrics(cfg.paths.output_dir, metrics)
    log_hparams_session(trainer, cfg, metrics)
    rank_zero_info(f"fitlab: metrics written to {path}")
    if not cfg.train:
        return metrics.get(cfg.optimized_metric)
    # The sweeper ranks the run by its best epoch (the tested checkpoint's), not its last one.
    best_value = metrics.get(f"{cfg.optimized_metric}_best", metrics.get(cfg.optimized_metric))
    return rankable(best_value, cfg.optimized_metric)


if __name__ == "__main__":
    main()
