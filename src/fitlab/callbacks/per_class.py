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
import rich
from matplotlib.figure import Figure
from rich.table import Table

from fitlab.callbacks.figures import SMALL, TEXT, add_png_to_tensorboard, render_png
from fitlab.models.metrics import metric_key

matplotlib.use("Agg")


def class_counts_figure(counts: dict[str, list[int]], names: list[str]) -> Figure:
    """Grouped bars: one group per class, one bar per split, each bar's count on top of it.

    A linear axis: a split half the size of another looks half as tall; the printed counts keep
    a small tail class readable. The legend sits above the bars, never on one.
    """
    bars = len(names) * len(counts)
    fig = Figure(figsize=(min(max(5.0, 0.22 * bars + 1.0), 12.0), 3.6), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(counts)
    x = np.arange(len(names))
    size = SMALL if bars <= 40 else SMALL - 2
    for i, (split, values) in enumerate(counts.items()):
        drawn = ax.bar(x + (i - (len(counts) - 1) / 2) * width, values, width, label=split)
        ax.bar_label(drawn, fontsize=size, padding=1, rotation=90 if bars > 40 else 0)
    long_names = max(map(len, names)) > 3
    ax.set_xticks(x, names, rotation=45 if long_names else 0,
                  ha="right" if long_names else "center", fontsize=SMALL)  # fmt: skip
    ax.set_ylim(0, 1.15 * max(max(v) for v in counts.values()))  # room for the counts
    ax.set_xlabel("class", fontsize=TEXT)
    ax.set_ylabel("images", fontsize=TEXT)
    ax.tick_params(axis="y", labelsize=SMALL)
    fig.legend(loc="outside right upper", fontsize=SMALL, frameon=False, title="split",
               title_fontsize=SMALL)  # fmt: skip
    total = ", ".join(f"{split} {sum(values)}" for split, values in counts.items())
    fig.suptitle(f"Images per class in each split, at the start of fit ({total})",
                 fontsize=TEXT)  # fmt: skip
    return fig


class ClassCounts(L.Callback):
    """Images per class in every split: the table when fitting starts, the bar chart after the
    first training epoch (drawing it is slow enough to keep out of the start-up)."""

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
        rich.get_console().print(table)  # the run's console: into the log too

    def draw(self, trainer: L.Trainer) -> None:
        if self.counts is None:
            return
        fig = class_counts_figure(self.counts, self.names)
        self.counts = None
        self.plot_dir.mkdir(parents=True, exist_ok=True)
        png = render_png(fig)
        (self.plot_dir / "class_counts.png").write_bytes(png)
        add_png_to_tensorboard(trainer, "class_counts", png)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.draw(trainer)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.draw(trainer)  # a fit that ended before its first epoch did

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception) -> None:
        self.draw(trainer)  # e.g. stopped at a non-finite loss in the first epoch


# The test set's own numbers, in the rows under the classes: Lightning's test table (off, train.py)
# had them at full float precision.
HEADLINE = ("acc", "balanced_acc", "f1_macro", "auroc", "loss")


def prints_test_table(trainer: L.Trainer) -> bool:
    """Whether a PerClassTable prints the test metrics, so Lightning's own table can stay off."""
    return any(isinstance(callback, PerClassTable) for callback in trainer.callbacks)


class PerClassTable(L.Callback):
    """At test end, the one test table: precision and recall of every class (the lowest recall
    marked) and their macro average, then the test accuracy, balanced accuracy, F1, AUROC and
    loss, rounded (``metrics.json`` keeps every digit)."""

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        names = list(pl_module.class_names)
        recall = [float(metrics.get(f"test/recall/{metric_key(n)}", float("nan"))) for n in names]
        precision = [
            float(metrics.get(f"test/precision/{metric_key(n)}", float("nan"))) for n in names
        ]
        table = Table(title="Test metrics per class")
        for column in ("class", "precision", "recall"):
            table.add_column(column, justify="left" if column == "class" else "right")
        worst = int(np.nanargmin(recall)) if not np.isnan(recall).all() else -1
        for c, name in enumerate(names):
            style = "bold red" if c == worst else None
            table.add_row(name, f"{precision[c]:.3f}", f"{recall[c]:.3f}", style=style)
        table.add_section()
        table.add_row("macro avg", f"{_mean(precision):.3f}", f"{_mean(recall):.3f}")
        table.add_section()
        for name in (f"test/{name}" for name in HEADLINE):
            if name in metrics:
                table.add_row(name, "", f"{float(metrics[name]):.4f}")
        rich.get_console().print(table)  # the run's console: into the log too


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not np.isnan(v)]
    return sum(finite) / len(finite) if finite else float("nan")
