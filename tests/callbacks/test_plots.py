"""The figures, checked on the figure objects, and the val plots being the best epoch's."""

from __future__ import annotations

import io

import lightning as L
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from fitlab.callbacks import ModelCheckpoint, plots
from fitlab.callbacks.figures import (
    confusion_matrix_figure,
    learning_curves_figure,
    pr_figure,
    render_png,
    roc_figure,
)
from fitlab.callbacks.fit_diagnosis import best_epoch
from fitlab.callbacks.per_class import class_counts_figure
from fitlab.callbacks.plots import ClassificationPlots

NAMES = [str(c) for c in range(10)]


def predictions(n: int = 200, wrong: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Confident, mostly right probabilities (N, 10) and targets (N,): AUCs near 1."""
    generator = torch.Generator().manual_seed(seed)
    target = torch.arange(n) % 10
    logits = torch.randn(n, 10, generator=generator) + 8 * torch.eye(10)[target]
    logits[:wrong] = 3 * torch.randn(wrong, 10, generator=generator)
    return logits.softmax(1), target


def png_size(fig) -> tuple[int, int]:
    return Image.open(io.BytesIO(render_png(fig))).size


def test_confusion_matrix_leaves_empty_cells_blank_and_has_a_colour_bar() -> None:
    probs, target = predictions()
    fig = confusion_matrix_figure(probs, target, NAMES, "Confusion matrix: val, best, epoch 3")
    ax = fig.axes[0]
    counts = torch.zeros(10, 10, dtype=torch.long)
    counts.index_put_((target, probs.argmax(1)), torch.tensor(1), accumulate=True)
    cells = sorted((round(t.get_position()[1]), round(t.get_position()[0]), t.get_text())
                   for t in ax.texts)  # fmt: skip
    assert cells == [(i, j, str(int(counts[i, j]))) for i, j in counts.nonzero().tolist()]
    assert (counts == 0).sum() > 50  # many empty cells, none of them written in
    assert ax.images[0].colorbar is not None
    assert ax.images[0].get_clim() == (0.0, 1.0)  # an empty cell is white
    assert all(label.get_rotation() == 0 for label in ax.get_yticklabels())
    assert all(label.get_rotation() == 0 for label in ax.get_xticklabels())  # short names
    assert "val, best, epoch 3" in fig.get_suptitle()


def test_roc_has_a_zoomed_panel_of_the_top_left_corner() -> None:
    probs, target = predictions()
    fig = roc_figure(probs, target, NAMES, "ROC: test, best checkpoint, epoch 3")
    full, zoom = fig.axes[:2]
    assert len(full.get_legend().get_texts()) == 10
    assert len(zoom.lines) == 10
    left, right = zoom.get_xlim()
    bottom, top = zoom.get_ylim()
    assert left < 0 < right <= 0.3 and bottom >= 0.7 and top > 1  # the corner, axes visible
    assert full.get_xlim()[0] < 0 and full.get_ylim()[1] > 1  # curves off the frame
    assert len({line.get_linestyle() for line in full.lines}) > 1
    assert "test, best checkpoint, epoch 3" in fig.get_suptitle()


def test_pr_curves_are_named_by_class() -> None:
    probs, target = predictions()
    names = [f"class {c}" for c in range(10)]
    fig = pr_figure(probs, target, names, "PR: val, best, epoch 3")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert [label.split(" AUPRC=")[0] for label in labels] == names
    assert fig.axes[0].get_xlabel() == "Recall"


def history(errors: list[tuple[float, float]], scores: list[float]) -> list[dict]:
    return [{"epoch": e, "train_loss": 1.0 / (e + 1), "val_loss": 1.2 / (e + 1),
             "train_error": t, "val_error": v, "score": s}
            for e, ((t, v), s) in enumerate(zip(errors, scores, strict=True))]  # fmt: skip


def test_learning_curves_show_zero_errors_and_mark_best_and_last_epoch() -> None:
    errors = [(0.3, 0.35), (0.04, 0.08), (0.0, 0.03), (0.0, 0.02), (0.0, 0.025)]
    curves = history(errors, scores=[0.9, 0.3, 0.1, 0.08, 0.08])  # a tie at 3 and 4: 3
    best = best_epoch(curves, "min")
    assert best == 3
    fig = learning_curves_figure(curves, best, "val/loss", " (early stopping)")
    loss_ax, error_ax = fig.axes[:2]
    assert error_ax.get_yscale() in ("linear", "symlog")
    train_error = error_ax.lines[0].get_ydata()
    bottom, top = error_ax.get_ylim()
    assert list(train_error[2:]) == [0.0, 0.0, 0.0] and bottom < 0.0 < top  # zero on the plot
    tick_labels = [t.get_text() for t in error_ax.get_yticklabels()]
    assert "0 %" in tick_labels and not any("10^" in t for t in tick_labels)
    assert list(error_ax.lines[0].get_xdata()) == [0, 1, 2, 3, 4]  # 0-based, as the ckpts
    marks = {line.get_label(): line.get_xdata()[0] for line in loss_ax.lines[2:]}
    assert marks == {"best, epoch 3 (by val/loss)": 3, "last, epoch 4 (early stopping)": 4}
    assert "from 0" in error_ax.get_xlabel()
    assert "epochs 0-4" in fig.get_suptitle()
    assert best_epoch(history(errors[:2], [0.5, 0.7]), "max") == 1


def test_class_counts_are_linear_with_counts_on_the_bars_and_the_legend_off_them() -> None:
    counts = {"train": [120, 60, 6], "val": [18, 9, 1], "test": [36, 18, 2]}
    fig = class_counts_figure(counts, ["cat", "dog", "bird"])
    ax = fig.axes[0]
    assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0
    written = [[t.get_text() for t in ax.texts[i * 3 : i * 3 + 3]] for i in range(3)]
    assert written == [[str(v) for v in values] for values in counts.values()]
    assert ax.get_legend() is None and len(fig.legends) == 1
    fig.canvas.draw()  # the legend's place is known once drawn
    legend = fig.legends[0].get_window_extent()
    assert not any(legend.overlaps(bar.get_window_extent()) for bar in ax.patches)


@pytest.mark.parametrize("figure", [confusion_matrix_figure, roc_figure, pr_figure])
def test_pngs_fit_a_tensorboard_card(figure) -> None:
    probs, target = predictions()
    width, height = png_size(figure(probs, target, NAMES, "title"))
    assert 450 <= width <= 800 and 300 <= height <= 700, (width, height)


def test_learning_curves_and_class_counts_pngs_fit_a_tensorboard_card() -> None:
    curves = history([(0.2, 0.3), (0.1, 0.2)], [0.5, 0.4])
    for fig in (learning_curves_figure(curves, 1, "val/loss"),
                class_counts_figure({"train": [5, 6], "val": [1, 2]}, ["a", "b"])):  # fmt: skip
        width, height = png_size(fig)
        assert 450 <= width <= 800 and 300 <= height <= 700, (width, height)


# ------------------------------------------------------------------ the callback in a real fit
SCORES = [0.5, 0.9, 0.7, 0.9]  # val/score per epoch, maximised: the best epoch is 1 (a tie at 3)


class Predictor(L.LightningModule):
    """Predicts class ``epoch % 3`` for every image and logs ``SCORES[epoch]``: the epoch whose
    predictions a plot shows can be read off its confusion matrix."""

    class_names = ["a", "b", "c"]

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.weight**2).sum()

    def _predict(self, batch) -> dict:
        (target,) = batch
        probs = torch.full((len(target), 3), 0.1)
        probs[:, self.current_epoch % 3] = 0.8
        return {"probs": probs, "target": target}

    def validation_step(self, batch, batch_idx):
        self.log("val/score", SCORES[self.current_epoch])
        return self._predict(batch)

    def test_step(self, batch, batch_idx):
        return self._predict(batch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_val_plots_are_the_best_epochs_and_titles_say_which(tmp_path, monkeypatch) -> None:
    drawn: dict[str, object] = {}

    def recording(name, figure):
        def draw(probs, target, names, title):
            fig = figure(probs, target, names, title)
            drawn[f"{name}/{'val' if ': val' in title else 'test'}"] = fig
            return fig

        return draw

    for name, figure in list(plots.FIGURES.items()):
        monkeypatch.setitem(plots.FIGURES, name, recording(name, figure))
    data = DataLoader(TensorDataset(torch.arange(12) % 3), batch_size=4)
    checkpoint = ModelCheckpoint(tmp_path / "ckpt", monitor="val/score", mode="max", save_last=True)
    callback = ClassificationPlots(str(tmp_path))
    trainer = L.Trainer(max_epochs=len(SCORES), logger=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[callback, checkpoint])  # fmt: skip
    trainer.fit(Predictor(), train_dataloaders=data, val_dataloaders=data)
    assert torch.load(checkpoint.best_model_path, weights_only=True)["epoch"] == 1
    val = drawn["confusion_matrix/val"]
    assert "val, best, epoch 1 (by val/score); 12 images" in val.get_suptitle()
    # Epoch 1 predicted class 1 for all 12 images: 4 per true class, all in column 1.
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
             for t in val.axes[0].texts}  # fmt: skip
    assert cells == {(0, 1): "4", (1, 1): "4", (2, 1): "4"}
    assert "val, best, epoch 1" in drawn["roc/val"].get_suptitle()
    assert "val, best, epoch 1" in drawn["pr/val"].get_suptitle()
    for name in ("confusion_matrix_val", "roc_val", "pr_val"):
        assert (tmp_path / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert callback.seconds_drawing > 0

    trainer.test(ckpt_path="best", dataloaders=data)
    test = drawn["confusion_matrix/test"]
    assert "test, best checkpoint, epoch 1; 12 images" in test.get_suptitle()
    trainer.test(ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"), dataloaders=data)
    assert "test, checkpoint last.ckpt, epoch 3" in drawn["confusion_matrix/test"].get_suptitle()
    # The best checkpoint holds the predictions it was chosen with: a resumed run redraws them.
    state = torch.load(checkpoint.best_model_path, weights_only=True)["callbacks"]
    (kept,) = [s for key, s in state.items() if "ClassificationPlots" in key]
    assert kept["epoch"] == 1 and kept["probs"].argmax(1).eq(1).all()
