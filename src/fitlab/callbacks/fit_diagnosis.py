"""Is the model underfitting, overfitting or fitting well? E_train, E_cv, E_test and a verdict.

The honest training error is measured in eval mode, on the training images: no dropout and
BatchNorm with its running statistics, exactly as the model is used on new data. The running
average that training reports (``train/acc``) mixes many versions of the weights, drawn in train
mode, and is not E_train.

- ``underfit``: the training error exceeds ``target_error`` (the model cannot fit even the data
  it sees);
- ``overfit``: the validation error exceeds the training error by more than ``gap``;
- ``good``: neither.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from fitlab.callbacks.figures import add_png_to_tensorboard, learning_curves_figure, render_png
from fitlab.callbacks.plots import best_criterion, improves


def verdict(train_error: float, val_error: float, target_error: float, gap: float) -> str:
    """The seed's rule: E_train large -> underfit; E_cv much larger than E_train -> overfit."""
    if train_error > target_error:
        return "underfit"
    if val_error - train_error > gap:
        return "overfit"
    return "good"


def verdict_of(metrics: dict) -> dict[str, str]:
    """``fit/verdict`` from the numbers in ``metrics``, where the callback's own results did not
    reach the main process (``ddp_spawn``: only ``callback_metrics`` come back from the workers).
    """
    if "fit/verdict" in metrics or "fit/train_error" not in metrics:
        return {}
    keys = ("fit/train_error", "fit/val_error", "fit/target_error", "fit/gap")
    return {"fit/verdict": verdict(*(float(metrics[k]) for k in keys))}


@torch.inference_mode()
def evaluate(pl_module: L.LightningModule, batches, device: torch.device) -> tuple[float, float]:
    """Mean loss and error of ``pl_module`` over ``batches`` in eval mode (synced across ranks)."""
    was_training = pl_module.training
    pl_module.eval()
    loss = MeanMetric().to(device)
    accuracy = MulticlassAccuracy(
        pl_module.hparams.num_classes, average="micro", validate_args=False
    )
    accuracy = accuracy.to(device)
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        logits = pl_module(x)
        loss.update(pl_module.data_loss(logits, y), len(y))
        accuracy.update(logits, y)
    pl_module.train(was_training)
    return float(loss.compute()), 1.0 - float(accuracy.compute())


def best_epoch(history: list[dict[str, float]], mode: str) -> int | None:
    """The epoch of the best ``score`` (the optimized metric), the first of ties, as the best
    checkpoint is chosen; None when no epoch has a score."""
    best, epoch = None, None
    for h in history:
        if improves(h.get("score", math.nan), best, mode):
            best, epoch = h["score"], h["epoch"]
    return epoch


class FitDiagnosis(L.Callback):
    """Learning curves every epoch; after testing, E_train/E_cv/E_test and the verdict.

    ``results`` holds ``fit/train_error``, ``fit/val_error``, ``fit/test_error`` and
    ``fit/verdict`` for ``metrics.json``. The diagnosis is made for the weights that are tested
    (the best checkpoint), or for the final weights when the run does not test.
    """

    def __init__(
        self,
        output_dir: str,
        target_error: float = 0.05,
        gap: float = 0.03,
        max_train_samples: int = 10_000,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.target_error = target_error
        self.gap = gap
        self.max_train_samples = max_train_samples
        self.history: list[dict[str, float]] = []
        self.results: dict[str, float | str] = {}

    def state_dict(self) -> dict:
        return {"history": self.history}  # in checkpoints: a resumed run's curves carry on

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = list(state_dict["history"])

    def _errors(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str):
        batches = trainer.datamodule.evaluation_batches(split, self.max_train_samples)
        return evaluate(pl_module, batches, pl_module.device)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or "val/loss" not in trainer.callback_metrics:
            return
        train_loss, train_error = self._errors(trainer, pl_module, "train")
        metrics = trainer.callback_metrics
        monitor, _ = best_criterion(trainer, pl_module)
        self.history.append(
            {
                "epoch": trainer.current_epoch,  # 0-based, as the checkpoint names
                "train_loss": train_loss,
                "train_error": train_error,
                "val_loss": float(metrics["val/loss"]),
                "val_error": 1.0 - float(metrics["val/acc"]),
                "score": float(metrics.get(monitor, math.nan)) if monitor else math.nan,
            }
        )
        pl_module.log_dict({"fit/train_loss_eval": train_loss, "fit/train_error_eval": train_error})

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.history and trainer.is_global_zero:
            monitor, mode = best_criterion(trainer, pl_module)
            stopping = trainer.early_stopping_callback
            stop = " (early stopping)" if stopping is not None and stopping.stopped_epoch else ""
            best = best_epoch(self.history, mode) if monitor else None
            fig = learning_curves_figure(self.history, best, monitor or "", stop)
            png = render_png(fig)
            (self.output_dir / "plots").mkdir(parents=True, exist_ok=True)
            (self.output_dir / "plots" / "learning_curves.png").write_bytes(png)
            add_png_to_tensorboard(trainer, "learning_curves", png)
        self.diagnose(trainer, pl_module, None, "final weights")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The tested weights (the best checkpoint) replace the diagnosis of the final ones.
        test_acc = trainer.callback_metrics.get("test/acc")
        test_error = None if test_acc is None else 1.0 - float(test_acc)
        self.diagnose(trainer, pl_module, test_error, "tested weights")

    def diagnose(self, trainer, pl_module, test_error: float | None, weights: str) -> None:
        _, train_error = self._errors(trainer, pl_module, "train")
        _, val_error = self._errors(trainer, pl_module, "val")
        self.results = {
            "fit/train_error": train_error,
            "fit/val_error": val_error,
            "fit/verdict": verdict(train_error, val_error, self.target_error, self.gap),
            "fit/target_error": self.target_error,
            "fit/gap": self.gap,
        }
        if test_error is not None:
            self.results["fit/test_error"] = test_error
        # Spawned DDP workers hand their callback_metrics (numbers) back to the main process.
        numbers = {k: torch.tensor(v) for k, v in self.results.items() if isinstance(v, float)}
        trainer.callback_metrics.update(numbers)
        if trainer.is_global_zero:
            self.report(trainer, weights)

    def report(self, trainer: L.Trainer, weights: str) -> None:
        # The thresholds are settings, not measurements: the text states them, no curve plots them.
        settings = ("fit/target_error", "fit/gap")
        scalars = {
            k: v for k, v in self.results.items() if isinstance(v, float) and k not in settings
        }
        text = self.explain(weights)
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=trainer.global_step)
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_text("fit/verdict", text, trainer.global_step)
        rank_zero_info(text)

    def explain(self, weights: str) -> str:
        r = self.results
        test = f", E_test={r['fit/test_error']:.4f}" if "fit/test_error" in r else ""
        return (
            f"fit diagnosis of the {weights}: {r['fit/verdict']} "
            f"(E_train={r['fit/train_error']:.4f} in eval "
            f"mode, E_cv={r['fit/val_error']:.4f}{test}; underfit if E_train > "
            f"{self.target_error}, overfit if E_cv - E_train > {self.gap})"
        )
