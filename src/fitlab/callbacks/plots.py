"""Confusion matrix, ROC and PR curves of the best validation epoch and of the tested weights.

Validation predictions are gathered every epoch (a collective: every rank takes part) and kept
on rank zero while the optimized metric improves, as the best checkpoint's are: the val plots,
drawn once when fitting ends, are the best epoch's. Test plots are drawn at test end, titled
with the checkpoint tested. Drawing is rank zero's alone: PNGs in the run's ``plots/``,
TensorBoard images and TensorBoard's own per-class PR curves. Epochs count from 0, as Lightning's
progress bar and the ``epoch_008.ckpt`` names do.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torchmetrics import CatMetric

from fitlab.callbacks.figures import (
    add_png_to_tensorboard,
    confusion_matrix_figure,
    pr_figure,
    render_png,
    roc_figure,
    tensorboard_writers,
)
from fitlab.models.settings import metric_mode

FIGURES = {"confusion_matrix": confusion_matrix_figure, "roc": roc_figure, "pr": pr_figure}
TITLES = {"confusion_matrix": "Confusion matrix", "roc": "ROC", "pr": "PR"}
MAX_KEPT_IN_CHECKPOINT = 2**20  # probabilities; a resumed run redraws its best epoch from them


def best_criterion(trainer: L.Trainer, pl_module: L.LightningModule) -> tuple[str | None, str]:
    """The metric and mode that pick the best epoch: the checkpoint's monitor (the run's
    ``optimized_metric``), else the model's; ``(None, "")`` when nothing is monitored."""
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None and getattr(checkpoint, "monitor", None):
        return checkpoint.monitor, checkpoint.mode
    monitor = getattr(pl_module, "hparams", {}).get("monitor")
    return (monitor, metric_mode(monitor)) if monitor else (None, "")


def improves(score: float, best: float | None, mode: str) -> bool:
    """Strictly better, as ModelCheckpoint decides: a tie keeps the earlier epoch."""
    if not math.isfinite(score):
        return False
    return best is None or (score < best if mode == "min" else score > best)


class ClassificationPlots(L.Callback):
    """Val plots of the best epoch at fit end, test plots at test end; ``pr_curves``: also
    TensorBoard's interactive PR curves, one per class.
    """

    def __init__(self, output_dir: str, pr_curves: bool = True) -> None:
        self.plot_dir = Path(output_dir) / "plots"
        self.pr_curves = pr_curves
        self.collected: tuple[CatMetric, CatMetric] | None = None
        self.best: dict = {}  # score, epoch, when; probs and target on rank zero
        self.tested_epoch: int | None = None
        self.seconds_drawing = 0.0  # what plotting costs, for fitlab-bench

    def state_dict(self) -> dict:
        # In every checkpoint, so a resumed run still draws its best epoch at fit end.
        probs = self.best.get("probs")
        if probs is not None and probs.numel() > MAX_KEPT_IN_CHECKPOINT:
            return {k: v for k, v in self.best.items() if k not in ("probs", "target")}
        return dict(self.best)

    def load_state_dict(self, state_dict: dict) -> None:
        self.best = dict(state_dict)

    def _start(self, pl_module: L.LightningModule) -> None:
        self.collected = (CatMetric().to(pl_module.device), CatMetric().to(pl_module.device))

    def _collect(self, outputs: dict) -> None:
        if self.collected is not None:
            self.collected[0].update(outputs["probs"].detach())
            self.collected[1].update(outputs["target"])

    def _gather(self) -> tuple[torch.Tensor, torch.Tensor]:
        probs, target = (m.compute() for m in self.collected)  # all ranks: gathers
        self.collected = None
        return probs.cpu().float(), target.cpu().long()

    def _keep_if_best(self, trainer, pl_module, probs, target) -> None:
        monitor, mode = best_criterion(trainer, pl_module)
        value = trainer.callback_metrics.get(monitor) if monitor else None
        epoch = trainer.current_epoch
        if value is None:  # nothing tells the best epoch: keep the latest, and say so
            self.best = {"score": None, "epoch": epoch, "when": f"last, epoch {epoch}"}
        elif improves(float(value), self.best.get("score"), mode):
            when = f"best, epoch {epoch} (by {monitor})"
            self.best = {"score": float(value), "epoch": epoch, "when": when}
        else:
            return
        if trainer.is_global_zero:
            self.best.update(probs=probs, target=target)

    def tested(self, trainer: L.Trainer) -> str:
        """Which weights the test ran on, for the titles."""
        path = Path(trainer.ckpt_path) if trainer.ckpt_path else None
        best = getattr(trainer.checkpoint_callback, "best_model_path", "")
        if path is None:
            return f"final weights, epoch {max(trainer.current_epoch - 1, 0)}"
        name = "best checkpoint" if best and path == Path(best) else f"checkpoint {path.name}"
        return name if self.tested_epoch is None else f"{name}, epoch {self.tested_epoch}"

    def draw(self, trainer, names, stage: str, when: str, probs, target) -> None:
        """Every figure of ``stage``: PNG files, TensorBoard images and PR curves."""
        start = time.perf_counter()
        self.plot_dir.mkdir(parents=True, exist_ok=True)
        for name, figure in FIGURES.items():
            fig = figure(
                probs, target, names, f"{TITLES[name]}: {stage}, {when}; {len(target)} images"
            )
            png = render_png(fig)
            (self.plot_dir / f"{name}_{stage}.png").write_bytes(png)
            add_png_to_tensorboard(trainer, f"{name}/{stage}", png)
        if self.pr_curves:
            step = trainer.global_step
            for board in tensorboard_writers(trainer):
                for c, class_name in enumerate(names):
                    board.add_pr_curve(
                        f"pr_curve/{stage}/{class_name}", target == c, probs[:, c], step
                    )
        self.seconds_drawing += time.perf_counter() - start

    # --------------------------------------------------------------------- Lightning hooks
    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking
        self.collected = None
        if fitting:
            self._start(pl_module)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ):
        self._collect(outputs)

    def on_validation_end(self, trainer, pl_module) -> None:
        # The epoch's metrics are logged by now, and ModelCheckpoint's hook runs after this one
        # (Lightning puts checkpoints last): the best checkpoint saves the predictions it made.
        if self.collected is None:
            return
        self._keep_if_best(trainer, pl_module, *self._gather())

    def on_fit_end(self, trainer, pl_module) -> None:
        best = self.best
        if trainer.is_global_zero and best.get("target") is not None and len(best["target"]):
            names = pl_module.class_names
            self.draw(trainer, names, "val", best["when"], best["probs"], best["target"])

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if trainer.state.fn == TrainerFn.FITTING:  # stopped at a NaN loss, interrupted, ...
            self.on_fit_end(trainer, pl_module)

    def setup(self, trainer, pl_module, stage: str) -> None:
        self.tested_epoch = None  # set again if a checkpoint is loaded for this stage

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self.tested_epoch = checkpoint.get("epoch")

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._start(pl_module)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._collect(outputs)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        probs, target = self._gather()
        if trainer.is_global_zero and len(target):
            self.draw(trainer, pl_module.class_names, "test", self.tested(trainer), probs, target)
