"""The fit diagnosis: the verdict rules, and E_train measured in eval mode."""

from __future__ import annotations

from functools import partial

import lightning as L
import pytest
import torch

from fitlab.callbacks import FitDiagnosis
from fitlab.callbacks.fit_diagnosis import evaluate, verdict
from fitlab.data import ImageDataModule
from fitlab.models import Classifier


@pytest.mark.parametrize(
    ("train_error", "val_error", "expected"),
    [
        (0.00, 0.01, "good"),
        (0.00, 0.03, "good"),  # a gap of exactly `gap` is still good
        (0.00, 0.031, "overfit"),
        (0.02, 0.20, "overfit"),
        (0.06, 0.07, "underfit"),  # both large: underfitting comes first
        (0.06, 0.40, "underfit"),
    ],
)
def test_verdict_rules(train_error: float, val_error: float, expected: str) -> None:
    assert verdict(train_error, val_error, target_error=0.05, gap=0.03) == expected


def model_with_dropout_and_batchnorm() -> Classifier:
    torch.manual_seed(0)
    return Classifier(in_channels=1, image_size=[8, 8], num_classes=10, channels=[8],
                      norm="batch", head_dropout=0.9,
                      optimizer=partial(torch.optim.SGD, lr=0.1))  # fmt: skip


def test_train_error_is_measured_in_eval_mode_and_mode_is_restored() -> None:
    model = model_with_dropout_and_batchnorm()
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    model.train()
    model(x)  # move BatchNorm's running statistics away from their initial values
    loss, error = evaluate(model, [(x[:32], y[:32]), (x[32:], y[32:])], torch.device("cpu"))
    assert model.training  # restored
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert error == pytest.approx((logits.argmax(1) != y).float().mean().item())
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    model.train()
    with torch.no_grad():
        train_mode_loss = torch.nn.functional.cross_entropy(model(x), y).item()
    assert train_mode_loss != pytest.approx(loss, rel=1e-3)  # dropout + batch statistics


def test_callback_records_curves_and_diagnoses_a_short_fit(tmp_path) -> None:
    torch.manual_seed(0)
    datamodule = ImageDataModule(batch_size=64)
    model = Classifier(**datamodule.model_kwargs(), channels=[8, 16], head_dropout=0.0,
                       optimizer=partial(torch.optim.AdamW, lr=3e-3))  # fmt: skip
    diagnosis = FitDiagnosis(str(tmp_path), target_error=0.5, gap=0.5)
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[diagnosis])  # fmt: skip
    trainer.fit(model, datamodule=datamodule)
    assert [h["epoch"] for h in diagnosis.history] == [0, 1]  # 0-based, as the checkpoints
    assert diagnosis.history[1]["train_error"] < diagnosis.history[0]["train_error"]
    assert (tmp_path / "plots" / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert diagnosis.results["fit/verdict"] == "good"
    assert "fit/test_error" not in diagnosis.results
    trainer.test(model, datamodule=datamodule)
    test_error = 1 - trainer.callback_metrics["test/acc"].item()
    assert diagnosis.results["fit/test_error"] == pytest.approx(test_error)
    assert diagnosis.results["fit/train_error"] == pytest.approx(
        diagnosis.history[-1]["train_error"]
    )
