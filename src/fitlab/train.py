"""``fitlab-train``: seed, build, fit, test the best checkpoint, write ``metrics.json``.

Returns the optimized metric, so Hydra sweepers (Optuna, ...) can rank the run.
"""

from __future__ import annotations

import time

import lightning as L
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig

from fitlab.pipeline import (
    build_parts,
    build_trainer,
    config_as_dict,
    hydra_entry,
    scalar_metrics,
    write_metrics,
)


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


def train(cfg: DictConfig) -> float | None:
    start = time.perf_counter()
    L.seed_everything(cfg.seed, workers=True)
    datamodule, model = build_parts(cfg)
    trainer = build_trainer(cfg)
    for logger in trainer.loggers:
        logger.log_hyperparams(config_as_dict(cfg))

    metrics: dict = {}
    if cfg.train:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        metrics.update(scalar_metrics(trainer))
        metrics["stopped_reason"] = stopped_reason(trainer)
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if cfg.test:
        # The best checkpoint, not the last weights; without one (fast_dev_run) the weights at hand.
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None)
        metrics.update(scalar_metrics(trainer))

    for callback in trainer.callbacks:
        metrics.update(getattr(callback, "results", {}))  # e.g. the fit diagnosis
    batch_size = datamodule.batch_size
    metrics.update(
        best_ckpt_path=best or None,
        world_size=trainer.world_size,
        accumulate_grad_batches=trainer.accumulate_grad_batches,
        effective_batch_size=batch_size * trainer.world_size * trainer.accumulate_grad_batches,
        wall_time_s=round(time.perf_counter() - start, 2),
    )
    path = write_metrics(cfg.paths.output_dir, metrics)
    rank_zero_info(f"fitlab: metrics written to {path}")
    return metrics.get(cfg.optimized_metric)


main = hydra_entry("train", train)

if __name__ == "__main__":
    main()
