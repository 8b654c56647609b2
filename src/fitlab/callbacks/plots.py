"""Confusion matrices, ROC and PR curves after validation and test.

The predictions are gathered on every rank (a collective, so every rank must take part) and
drawn on rank zero only: TensorBoard images, PNGs in the run's ``plots/`` and TensorBoard's own
per-class PR curves. Collection only runs on epochs that are plotted, off the hot path otherwise.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import lightning as L
import matplotlib
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure
from PIL import Image
from torchmetrics import CatMetric
from torchmetrics.classification import MulticlassConfusionMatrix, MulticlassROC

matplotlib.use("Agg")


def confusion_matrix_figure(
    probs: torch.Tensor, target: torch.Tensor, names: list[str], stage: str
) -> Figure:
    """Counts (left) and row-normalised rates (right: each row is one true class's recall)."""
    fig = Figure(figsize=(6 + 0.9 * len(names), 3.5 + 0.45 * len(names)), layout="constrained")
    fig.suptitle(f"Confusion matrix, {stage} ({len(target)} images)")
    for ax, normalize, title in zip(
        fig.subplots(1, 2), (None, "true"), ("counts", "normalised over true class"), strict=True
    ):
        # The inputs are already gathered from every rank; drawn on rank zero alone, a metric
        # that synced on compute would wait forever for the other ranks.
        matrix = MulticlassConfusionMatrix(len(names), normalize=normalize, sync_on_compute=False)
        matrix.update(probs, target)
        matrix.plot(ax=ax, labels=names)
        ax.set_title(title)
    return fig


def roc_figure(probs: torch.Tensor, target: torch.Tensor, names: list[str], stage: str) -> Figure:
    """One-vs-rest ROC curve per class, each class's AUC in the legend."""
    fig = Figure(figsize=(6, 5), layout="constrained")
    ax = fig.add_subplot()
    roc = MulticlassROC(len(names), sync_on_compute=False)  # see confusion_matrix_figure
    roc.update(probs, target)
    roc.plot(score=True, ax=ax, labels=names)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
    ax.legend(fontsize="small", loc="lower right")
    ax.set_title(f"ROC one-vs-rest, {stage}")
    return fig


def render_png(fig: Figure, dpi: int = 100) -> bytes:
    """Render once; the same PNG goes to the file and, decoded, to TensorBoard."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def add_png_to_tensorboard(trainer: L.Trainer, tag: str, png: bytes) -> None:
    """Log a rendered PNG as an image in every TensorBoard logger of the trainer."""
    boards = [lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
    if boards:
        image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        for board in boards:
            board.add_image(tag, image, trainer.global_step, dataformats="HWC")


class ClassificationPlots(L.Callback):
    """Plots validation results every ``every_n_epochs`` epochs and test results always."""

    def __init__(self, output_dir: str, every_n_epochs: int = 5, pr_curves: bool = True) -> None:
        self.plot_dir = Path(output_dir) / "plots"
        self.every_n_epochs = every_n_epochs
        self.pr_curves = pr_curves
        self.collected: tuple[CatMetric, CatMetric] | None = None
        self.seconds_drawing = 0.0  # what plotting costs, for fitlab-bench

    def _due(self, trainer: L.Trainer) -> bool:
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        return not trainer.sanity_checking and (epoch % self.every_n_epochs == 0 or last)

    def _start(self, pl_module: L.LightningModule, due: bool) -> None:
        self.collected = (
            (CatMetric().to(pl_module.device), CatMetric().to(pl_module.device)) if due else None
        )

    def _collect(self, outputs: dict) -> None:
        if self.collected is not None:
            self.collected[0].update(outputs["probs"].detach())
            self.collected[1].update(outputs["target"])

    def _finish(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.collected is None:
            return
        probs, target = (m.compute() for m in self.collected)  # all ranks: gathers
        self.collected = None
        if trainer.is_global_zero and len(target):
            self.draw(
                trainer, pl_module.class_names, stage, probs.cpu().float(), target.cpu().long()
            )

    def draw(self, trainer: L.Trainer, names: list[str], stage: str, probs, target) -> None:
        start = time.perf_counter()
        self.plot_dir.mkdir(parents=True, exist_ok=True)
        figures = {
            "confusion_matrix": confusion_matrix_figure(probs, target, names, stage),
            "roc": roc_figure(probs, target, names, stage),
        }
        for name, fig in figures.items():
            png = render_png(fig)
            (self.plot_dir / f"{name}_{stage}.png").write_bytes(png)
            add_png_to_tensorboard(trainer, f"{name}/{stage}", png)
        if self.pr_curves:
            step = trainer.global_step
            for board in [
                lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)
            ]:
                for c, class_name in enumerate(names):
                    board.add_pr_curve(
                        f"pr_curve/{stage}/{class_name}", target == c, probs[:, c], step
                    )
        self.seconds_drawing += time.perf_counter() - start

    # --------------------------------------------------------------------- Lightning hooks
    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._start(pl_module, self._due(trainer))

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ):
        self._collect(outputs)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._finish(trainer, pl_module, "val")

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._start(pl_module, True)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._collect(outputs)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._finish(trainer, pl_module, "test")
