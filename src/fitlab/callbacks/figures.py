"""The figures of a classification run: confusion matrix, ROC and PR curves, learning curves.

Sized for TensorBoard, which shows an image at its pixel size up to the card width: about
500-750 px wide at ``DPI``, text at 8-10 pt, so nothing has to shrink to fit a card.
"""

from __future__ import annotations

import io

import lightning as L
import matplotlib
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    NullLocator,
)
from PIL import Image
from torchmetrics.classification import (
    MulticlassConfusionMatrix,
    MulticlassPrecisionRecallCurve,
    MulticlassROC,
)

matplotlib.use("Agg")

DPI = 100
TEXT, SMALL = 10, 8  # pt: titles and axis labels, ticks and legends
LINESTYLES = ("-", "--", "-.", ":")  # curves that coincide stay visible under one another


def confusion_matrix_figure(
    probs: torch.Tensor, target: torch.Tensor, names: list[str], title: str
) -> Figure:
    """Cells coloured by the share of their true class (the diagonal is each class's recall, a
    rare class's row as readable as a large one's), the count written in every non-empty cell.

    ``probs`` (N, C) and ``target`` (N,) are already gathered from every rank; the metric must
    not sync again on rank zero alone (it would wait for the other ranks forever).
    """
    n = len(names)
    matrix = MulticlassConfusionMatrix(n, sync_on_compute=False, validate_args=False)
    matrix.update(probs, target)
    counts = matrix.compute()
    shares = counts / counts.sum(1, keepdim=True).clamp(min=1)
    side = min(max(3.4, 0.34 * n + 1.3), 7.0)
    fig = Figure(figsize=(side + 1.5, side + 0.5), layout="constrained")
    ax = fig.add_subplot()
    matrix.plot(shares, ax=ax, add_text=False, labels=names, cmap="Blues")
    image = ax.images[-1]
    image.set_clim(0.0, 1.0)  # white is an empty cell, whatever the largest share
    if n <= 30:
        size = SMALL + 1 if n <= 12 else SMALL - 1
        for i, j in zip(*np.nonzero(counts.numpy()), strict=True):
            colour = "white" if shares[i, j] > 0.6 else "black"
            ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=size,
                    color=colour)  # fmt: skip
    long_names = max(map(len, names)) > 3
    ax.set_xticks(range(n), names, rotation=45 if long_names else 0,
                  ha="right" if long_names else "center", fontsize=SMALL)  # fmt: skip
    ax.set_yticks(range(n), names, rotation=0, fontsize=SMALL)
    ax.set_xlabel("predicted class", fontsize=TEXT)
    ax.set_ylabel("true class", fontsize=TEXT)
    recall = ax.secondary_yaxis("right")
    recall.set_yticks(range(n), [f"{float(shares[c, c]):.0%}" for c in range(n)], fontsize=SMALL)
    recall.set_ylabel("recall", fontsize=TEXT)
    bar = fig.colorbar(image, ax=ax, shrink=0.8, pad=0.01)
    bar.set_label("share of the true class", fontsize=TEXT)
    bar.ax.tick_params(labelsize=SMALL)
    fig.suptitle(title, fontsize=TEXT)
    return fig


def corner(lines: list, x_corner: float) -> float:
    """The smallest square at the top corner ``x_corner`` (0: ROC's top left, 1: PR's top
    right), side ``z``, that every curve enters: there the curves that lie on the axes of the
    full plot, on top of one another, come apart."""
    for z in (0.02, 0.05, 0.1, 0.2, 0.3):
        if all(((abs(x - x_corner) <= z) & (y >= 1 - z)).any()
               for x, y in (line.get_data() for line in lines)):  # fmt: skip
            return z
    return 0.5


def curves_figure(metric, names: list[str], title: str, area: str, x_corner: float) -> Figure:
    """``metric``'s one-vs-rest curve per class (the area under it in the legend), and beside
    it the top corner where good classifiers' curves crowd."""
    fig = Figure(figsize=(7.2, 3.7))
    # Fixed margins: short texts only, and a layout engine would double the drawing time.
    fig.subplots_adjust(left=0.085, right=0.97, bottom=0.13, top=0.85, wspace=0.22)
    full, zoom = fig.subplots(1, 2)
    metric.plot(score=True, ax=full)
    for c, line in enumerate(full.lines):  # torchmetrics names the curves by class index
        line.set(label=f"{names[c]} {area}={line.get_label().split('AUC=')[-1]}",
                 linestyle=LINESTYLES[c % len(LINESTYLES)], linewidth=1.5)  # fmt: skip
        zoom.plot(*line.get_data(), color=line.get_color(), linestyle=line.get_linestyle(),
                  linewidth=1.5)  # fmt: skip
    z, m = corner(full.lines, x_corner), 0.02  # m: room to see a curve on the frame
    side = "left" if x_corner == 0 else "right"
    full.set(xlim=(-m, 1) if x_corner == 0 else (0, 1 + m), ylim=(0, 1 + m), title="all thresholds")
    zoom.set(xlim=(-m * z, z) if x_corner == 0 else (1 - z, 1 + m * z), ylim=(1 - z, 1 + m * z),
             title=f"top-{side} corner", xlabel=full.get_xlabel())  # fmt: skip
    # Under the diagonal (ROC) or below the curves (PR) good classifiers leave room.
    full.legend(fontsize=SMALL - 1, loc="lower right" if x_corner == 0 else "lower left",
                handlelength=2.5)  # fmt: skip
    for ax in (full, zoom):
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=SMALL)
        ax.title.set_fontsize(TEXT)
        ax.xaxis.label.set_fontsize(TEXT)
        ax.yaxis.label.set_fontsize(TEXT)
    fig.suptitle(title, fontsize=TEXT)
    return fig


def roc_figure(probs: torch.Tensor, target: torch.Tensor, names: list[str], title: str) -> Figure:
    """One-vs-rest ROC curve per class and its AUC; the zoom shows the top-left corner."""
    roc = MulticlassROC(len(names), sync_on_compute=False)  # see confusion_matrix_figure
    roc.update(probs, target)
    fig = curves_figure(roc, names, title, "AUC", x_corner=0.0)
    fig.axes[0].plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)  # chance
    return fig


def pr_figure(probs: torch.Tensor, target: torch.Tensor, names: list[str], title: str) -> Figure:
    """Precision against recall per class, one-vs-rest, and the area under each curve. Under
    imbalance it shows a rare class's precision, which ROC hides."""
    curve = MulticlassPrecisionRecallCurve(len(names), sync_on_compute=False)
    curve.update(probs, target)
    return curves_figure(curve, names, title, "AUPRC", x_corner=1.0)


def learning_curves_figure(
    history: list[dict[str, float]], best: int | None = None, monitor: str = "", stop: str = ""
) -> Figure:
    """Loss and error per epoch (0-based, as the checkpoint names), train in eval mode and
    validation, with the best epoch (by ``monitor``) and the last one marked.

    The error axis is linear up to 1 % and logarithmic above (symlog): an epoch without a single
    error sits on the zero line instead of falling off the plot, small errors stay apart.
    """
    fig = Figure(figsize=(7.4, 3.6))
    fig.subplots_adjust(left=0.075, right=0.985, bottom=0.23, top=0.85, wspace=0.22)  # see ROC
    loss_ax, error_ax = fig.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    for key, label in (("train", "train (eval mode)"), ("val", "validation")):
        loss_ax.plot(epochs, [h[f"{key}_loss"] for h in history], marker=".", label=label)
        error_ax.plot(epochs, [h[f"{key}_error"] for h in history], marker=".")
    errors = [h[k] for h in history for k in ("train_error", "val_error")]
    top = min(1.0, max(0.02, 1.5 * max(errors)))
    error_ax.set_yscale("symlog", linthresh=0.01, linscale=0.5)
    error_ax.set_ylim(-0.0005, top)  # zero just above the frame, where it can be seen
    error_ax.yaxis.set_major_locator(
        FixedLocator([t for t in (0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1) if t <= top])
    )
    error_ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g} %"))
    error_ax.yaxis.set_minor_locator(NullLocator())
    loss_ax.set_yscale("log")  # a loss is never zero; plain numbers, not 4x10^-2
    loss_ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # labels in one decade
    loss_ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    loss_ax.yaxis.set_minor_formatter(NullFormatter())
    last = epochs[-1]
    marks = [(last, f"last, epoch {last}{stop}", "grey", ":")]
    if best is not None:
        marks.insert(0, (best, f"best, epoch {best} (by {monitor})", "tab:green", "--"))
    for ax in (loss_ax, error_ax):
        for epoch, label, colour, style in marks:
            ax.axvline(epoch, color=colour, linestyle=style, linewidth=1.2,
                       label=label if ax is loss_ax else None)  # fmt: skip
        ax.set_xlabel("epoch (from 0, as in the epoch_NNN.ckpt names)", fontsize=TEXT)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=SMALL)
        ax.grid(alpha=0.3)
    loss_ax.set_title("loss (cross-entropy)", fontsize=TEXT)
    error_ax.set_title("error = 1 - accuracy", fontsize=TEXT)
    fig.legend(*loss_ax.get_legend_handles_labels(), loc="lower center", ncol=4,
               fontsize=SMALL, frameon=False)  # fmt: skip
    fig.suptitle(f"Learning curves, epochs {epochs[0]}-{last}", fontsize=TEXT)
    return fig


def render_png(fig: Figure, dpi: int = DPI) -> bytes:
    """Render once; the same PNG goes to the file and, decoded, to TensorBoard."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def tensorboard_writers(trainer: L.Trainer) -> list:
    """The SummaryWriter of every TensorBoard logger of the trainer."""
    return [lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]


def add_png_to_tensorboard(trainer: L.Trainer, tag: str, png: bytes) -> None:
    """Log a rendered PNG as an image in every TensorBoard logger of the trainer."""
    if boards := tensorboard_writers(trainer):
        image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        for board in boards:
            board.add_image(tag, image, trainer.global_step, dataformats="HWC")
