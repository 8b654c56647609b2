"""A run whose loss stops being finite stops at once, keeps its last good checkpoint, says why,
and still hands a sweeper a value it can rank."""

from __future__ import annotations

import json
import logging
import math
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from conftest import QUICK
from fitlab.callbacks.divergence import NonFiniteLoss, StopOnNonFiniteLoss
from fitlab.models.classifier import Classifier
from fitlab.run.config import compose_config
from fitlab.train import train

# val/acc: maximised, so a run that never validated returns -inf
FAST = (
    *QUICK,
    "logger=none",
    "~callbacks.plots",
    "~callbacks.fit_diagnosis",
    "optimized_metric=val/acc",
)
# One good epoch at the usual learning rate, then x1e8 (3e5): AdamW's decoupled weight decay
# alone multiplies every weight by (1 - lr * wd) = -2999 per step, so the loss overflows.
RAMP = (
    "model.scheduler._target_=torch.optim.lr_scheduler.StepLR",
    "~model.scheduler.T_max",
    "+model.scheduler.step_size=1",
    "+model.scheduler.gamma=1e8",
)


def run(tmp_path: Path, *overrides: str) -> tuple[float, dict, Path]:
    out = tmp_path / "run"
    value = train(compose_config([*FAST, *overrides], out))
    return value, json.loads((out / "metrics.json").read_text()), out


@pytest.mark.slow
def test_diverging_run_stops_keeps_its_checkpoint_and_says_why(tmp_path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        value, metrics, out = run(tmp_path, "trainer.max_epochs=4", *RAMP)
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    steps_per_epoch = last["global_step"]
    step = metrics["diverged_at_step"]
    assert metrics["stopped_reason"] == "non_finite_loss" and metrics["status"] == "completed"
    assert steps_per_epoch <= step < 2 * steps_per_epoch  # in the second epoch, not at its end
    assert f"at step {step} (epoch 1)" in caplog.text
    assert "last good checkpoint" in caplog.text and "last.ckpt" in caplog.text

    assert last["epoch"] == 0 and steps_per_epoch == 20  # ceil(1,257 training images / 64)
    assert all(
        torch.isfinite(t).all() for t in last["state_dict"].values() if t.is_floating_point()
    )
    # The best (epoch 0) checkpoint was tested, and the sweeper gets the last validation's value.
    assert metrics["test/acc"] > 0.5
    assert value == metrics["val/acc"] and math.isfinite(value)


@pytest.mark.slow
def test_diverging_before_any_checkpoint_returns_the_worst_value(tmp_path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        value, metrics, out = run(tmp_path, "model.optimizer.lr=1e6")
    assert metrics["stopped_reason"] == "non_finite_loss"
    assert metrics["diverged_at_step"] < 20  # within the first epoch
    assert "none, it diverged before the first epoch ended" in caplog.text
    assert not list(out.glob("checkpoints/*.ckpt"))
    assert "test/acc" not in metrics  # the diverged weights are not tested
    assert value == -math.inf  # val/acc is maximised: ranked below every finite run
    # The class-count chart, drawn after the first epoch, is drawn when fit ends before it.
    assert (out / "plots" / "class_counts.png").is_file()


def one_rank() -> SimpleNamespace:
    strategy = SimpleNamespace(reduce_boolean_decision=lambda value, all: value)
    return SimpleNamespace(global_step=0, current_epoch=0, world_size=1, strategy=strategy)


def test_deferred_check_names_the_first_bad_step() -> None:
    """With checks every 4 steps (as on a GPU), the first non-finite step is still the one named."""
    stop = StopOnNonFiniteLoss(check_every_n_steps=4)
    trainer = one_rank()
    losses = [1.0, 0.5, float("nan"), 0.2, float("inf"), 0.1]
    with pytest.raises(NonFiniteLoss) as info:
        for step, loss in enumerate(losses):
            trainer.global_step = step
            stop.on_before_backward(trainer, None, torch.tensor(loss))
    assert info.value.step == 2  # not 3, where the check ran, nor 4
    assert "the loss is nan at step 2" in str(info.value)


def batchnorm_classifier() -> Classifier:
    return Classifier(in_channels=1, image_size=[4, 4], num_classes=3, channels=[2],
                      norm="batch", head_dropout=0.0,
                      optimizer=partial(torch.optim.SGD, lr=0.1))  # fmt: skip


def test_a_best_metric_with_no_value_yet_is_not_a_broken_weight() -> None:
    """The best-so-far (a persistent MaxMetric/MinMetric) starts at -inf/inf in the state_dict;
    with an optimized metric that fit never logs it stays there, and is no divergence."""
    model = batchnorm_classifier()
    states = [t for t in model.state_dict().values() if t.is_floating_point()]
    assert not all(torch.isfinite(t).all() for t in states)  # the best metric's infinite start
    StopOnNonFiniteLoss()._check_weights(one_rank(), model)


@pytest.mark.parametrize("where", ["weight", "running_var"])
def test_a_non_finite_weight_or_batchnorm_statistic_stops(where: str) -> None:
    model = batchnorm_classifier()
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    tensor = next(t for name, t in tensors.items() if name.endswith(where))
    with torch.no_grad():
        tensor.view(-1)[0] = float("nan")
    with pytest.raises(NonFiniteLoss, match="the weights became non-finite at step 0"):
        StopOnNonFiniteLoss()._check_weights(one_rank(), model)
