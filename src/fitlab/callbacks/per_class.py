"""Per-class reports: the class counts of every split at set-up, precision and recall at test end.

Under imbalance the averages hide the rare classes; these two tables put them in view. Both
print on rank zero only; the counts also go to TensorBoard as a bar chart (``class_counts``) and
to ``plots/class_counts.png``.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import matplotlib
import numpy as np
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from fitlab.models.classifier import metric_key

matplotlib.use("Agg")


def class_counts_figure(counts: dict[str, list[int]], names: list[str]) -> Figure:
    """Grouped bars: one group per class, one bar per split (log scale shows the tail)."""
    fig = Figure(figsize=(max(6.0, 0.8 * len(names) * len(counts) / 3), 4), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(counts)
    x = np.arange(len(names))
    for i, (split, values) in enumerate(counts.items()):
        ax.bar(x + (i - (len(counts) - 1) / 2) * width, values, width, label=split)
    ax.set_xticks(x, names, rotation=45 if max(map(len, names)) > 3 else 0, ha="right")
    ax.set_ylabel("images")
    ax.set_yscale("log")
    ax.set_title("Images per class")
    ax.legend(fontsize="small")
    return fig


class ClassCounts(L.Callback):
    """Images per class in every split: the table when fitting starts, the bar chart after the
    first training epoch (drawing it takes ~0.6 s, kept out of the start-up)."""

    def __init__(self, output_dir: str) -> None:
        self.plot_dir = Path(output_dir) / "plots"
        self.counts: dict[str, list] | None = None  # set at set-up, cleared once drawn
        self.names: list[str] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        if stage != "fit" or not hasattr(datamodule, "split_counts") or not trainer.is_global_zero:
            return
        self.counts, self.names = datamodule.split_counts(), datamodule.class_names
        table = Table(title="Images per class")
        table.add_column("class")
        for split in self.counts:
            table.add_column(split, justify="right")
        for c, name in enumerate(self.names):
            table.add_row(name, *(str(values[c]) for values in self.counts.values()))
        totals = (str(sum(values)) for values in self.counts.values())
        table.add_row("total", *totals, style="bold")
        Console().print(table)

    def draw(self, trainer: L.Trainer) -> None:
        if self.counts is None:
            return
        fig = class_counts_figure(self.counts, self.names)
        self.counts = None
        self.plot_dir.mkdir(parents=True, exist_ok=True)
        fig.savefig(self.plot_dir / "class_counts.png", dpi=110, bbox_inches="tight")
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_figure("class_counts", fig, global_step=0, close=False)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.draw(trainer)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.draw(trainer)  # a fit that ended before its first epoch did

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception) -> None:
        self.draw(trainer)  # e.g. stopped at a non-finite loss in the first epoch


class PerClassTable(L.Callback):
    """At test end: precision and recall of every class, the lowest recall marked."""

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        names = list(pl_module.class_names)
        recall = [float(metrics.get(f"test/recall/{metric_key(n)}", float("nan"))) for n in names]
        precision = [metrics.get(f"test/precision/{metric_key(n)}", float("nan")) for n in names]
        table = Table(title="Test metrics per class")
        for column in ("class", "precision", "recall"):
            table.add_column(column, justify="left" if column == "class" else "right")
        worst = int(np.nanargmin(recall)) if not np.isnan(recall).all() else -1
        for c, name in enumerate(names):
            style = "bold red" if c == worst else None
            table.add_row(name, f"{float(precision[c]):.3f}", f"{recall[c]:.3f}", style=style)
        Console().print(table)
