"""Gradient accumulation equals the large batch: same start, same images, same weights after.

Each comparison trains one epoch of digits (about 20 optimizer steps, the last one on a partial
batch) (a) with batches of 64 and (b) with micro-batches of 16 and 4 accumulation steps, set
through ``effective_batch_size`` exactly as ``fitlab-train`` sets it.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fitlab.errors import FitlabError
from fitlab.models import Classifier
from fitlab.models.accumulation import (
    ExactAccumulation,
    accumulate_grad_batches,
    configure_accumulation,
    planned_world_size,
)
from fitlab.run.pipeline import build_parts, build_trainer

# The default optimizer (AdamW), no dropout, no validation, nothing written.
TRAIN = (
    "model.channels=[8,16]",
    "model.dropout=0",
    "model.head_dropout=0",
    "trainer.accelerator=cpu",
    "trainer.max_epochs=1",
    "++trainer.limit_val_batches=0",
    "++trainer.num_sanity_val_steps=0",
    "++trainer.enable_progress_bar=false",
    "++trainer.enable_model_summary=false",
    "++trainer.enable_checkpointing=false",
    "callbacks=none",
    "logger=none",
)
LARGE = ("data.batch_size=64",)
ACCUMULATED = ("data.batch_size=16", "effective_batch_size=64")
# A long tail: balanced class weights from these counts range over a factor of 100.
SKEWED_COUNTS = [500, 300, 200, 120, 80, 50, 30, 20, 10, 5]


def trained_weights(compose_cfg, *overrides: str, counts=None, module=Classifier) -> dict:
    cfg = compose_cfg(*TRAIN, *overrides)
    L.seed_everything(cfg.seed)
    datamodule, _ = build_parts(cfg)
    kwargs = datamodule.model_kwargs()
    if counts is not None:
        kwargs["class_counts"] = counts
    L.seed_everything(cfg.seed)  # the same initial weights in both runs
    model = instantiate(cfg.model, **kwargs, _target_=f"{module.__module__}.{module.__name__}")
    trainer = build_trainer(cfg)
    configure_accumulation(trainer, cfg.effective_batch_size, cfg.data.batch_size)
    trainer.fit(model, datamodule=datamodule)
    return {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


class PerMicroBatchMean(Classifier):
    """Lightning's default: each micro-batch's own weighted mean, averaged over the steps."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.accumulation.share = lambda summed, weight, penalty, count, first: (
            summed / weight + penalty
        )
        self.accumulation.finish_step = lambda *args: None


def test_accumulation_equals_the_large_batch(compose_cfg) -> None:
    large = trained_weights(compose_cfg, "model.norm=none", *LARGE)
    accumulated = trained_weights(compose_cfg, "model.norm=none", *ACCUMULATED)
    start = trained_weights(compose_cfg, "model.norm=none", *LARGE, "++trainer.max_steps=0")
    assert max_difference(large, start) > 1e-2  # the weights moved
    assert max_difference(large, accumulated) < 1e-5
    # The control: Lightning's default weighs the epoch's last, partial step wrongly (its 41
    # images come as 16 + 16 + 9 but count as if they were 4 x 16).
    naive = trained_weights(compose_cfg, "model.norm=none", *ACCUMULATED, module=PerMicroBatchMean)
    assert max_difference(large, naive) > 1e-4


def test_batchnorm_breaks_the_equivalence_and_groupnorm_restores_it(compose_cfg) -> None:
    # BatchNorm normalises with the statistics of the batch it sees: 16 images are not 64.
    large = trained_weights(compose_cfg, "model.norm=batch", *LARGE)
    accumulated = trained_weights(compose_cfg, "model.norm=batch", *ACCUMULATED)
    assert max_difference(large, accumulated) > 1e-3
    large = trained_weights(compose_cfg, "model.norm=group", *LARGE)
    accumulated = trained_weights(compose_cfg, "model.norm=group", *ACCUMULATED)
    assert max_difference(large, accumulated) < 1e-5


def test_class_weights_stay_exact_across_micro_batches(compose_cfg) -> None:
    weighted = ("model.norm=none", "model.class_weights=balanced")
    large = trained_weights(compose_cfg, *weighted, *LARGE, counts=SKEWED_COUNTS)
    accumulated = trained_weights(compose_cfg, *weighted, *ACCUMULATED, counts=SKEWED_COUNTS)
    assert max_difference(large, accumulated) < 1e-5
    # The control: normalising each micro-batch by its own weight is measurably different.
    naive = trained_weights(
        compose_cfg, *weighted, *ACCUMULATED, counts=SKEWED_COUNTS, module=PerMicroBatchMean
    )
    assert max_difference(large, naive) > 1e-3


@pytest.mark.parametrize(
    ("effective", "batch", "world", "steps"),
    [(None, 16, 1, 1), (64, 16, 1, 4), (64, 16, 2, 2), (64, 64, 1, 1), (256, 16, 4, 4)],
)
def test_accumulation_steps(effective, batch, world, steps) -> None:
    assert accumulate_grad_batches(effective, batch, world) == steps


@pytest.mark.parametrize(("effective", "batch", "world"), [(50, 16, 1), (32, 16, 4), (0, 16, 1)])
def test_an_effective_batch_that_does_not_divide_is_refused(effective, batch, world) -> None:
    with pytest.raises(FitlabError, match=f"not a multiple of .* = {batch * world}"):
        accumulate_grad_batches(effective, batch, world)


def test_accumulation_in_the_config_and_the_effective_batch_must_agree(compose_cfg) -> None:
    cfg = compose_cfg(*TRAIN, *ACCUMULATED, "++trainer.accumulate_grad_batches=2")
    trainer = build_trainer(cfg)
    with pytest.raises(FitlabError, match="set only one"):
        configure_accumulation(trainer, cfg.effective_batch_size, cfg.data.batch_size)


@pytest.mark.parametrize(
    ("devices", "nodes", "world"),
    [
        (1, 1, 1),
        (2, 2, 4),
        ("2", 1, 2),
        ("0,1,2", 1, 3),
        ([0, 1], 2, 4),
        (-1, 1, None),
        ("auto", 1, None),
    ],
)
def test_world_size_from_the_config_when_it_is_fixed(devices, nodes, world) -> None:
    trainer_cfg = OmegaConf.create({"devices": devices, "num_nodes": nodes})
    assert planned_world_size(trainer_cfg) == world


# ExactAccumulation on its own: shares of micro-batches add up to the large batch's gradient.
def test_micro_batch_gradients_sum_to_the_weighted_mean_of_the_whole_step() -> None:
    torch.manual_seed(0)
    w = torch.randn(3, requires_grad=True)
    x, class_weight = torch.randn(10, 3), torch.tensor([0.2, 5.0])
    y = torch.tensor([0, 1, 0, 0, 1, 0, 0, 0, 1, 0])
    per_image = (x @ w) ** 2  # stands for the loss of each image
    penalty = 0.1 * w.pow(2).sum()

    def loss(index):  # the weighted mean over the images in index, plus the penalty
        weight = class_weight[y[index]]
        return (weight * per_image[index]).sum() / weight.sum() + penalty

    (whole,) = torch.autograd.grad(loss(torch.arange(10)), w, retain_graph=True)

    # micro-batches of 4, 4 and 2 images, Lightning dividing each loss by the 3 steps
    accumulation, grad = ExactAccumulation(), torch.zeros(3)
    for step, index in enumerate((torch.arange(4), torch.arange(4, 8), torch.arange(8, 10))):
        weight = class_weight[y[index]]
        share = accumulation.share(
            (weight * per_image[index]).sum(), weight.sum(), penalty, len(index), step == 0
        )
        grad += torch.autograd.grad(share / 3, w, retain_graph=True)[0]
    w.grad = grad
    accumulation.finish_step([w], 3, 1, lambda total: total)
    assert torch.allclose(w.grad, whole, atol=1e-6)
    assert accumulation.weight is None  # ready for the next step


def test_two_ranks_give_the_gradient_of_their_joint_batch() -> None:
    """Each rank accumulates 2 micro-batches; DDP averages the gradients; then finish_step."""
    torch.manual_seed(1)
    w = torch.randn(3, requires_grad=True)
    x, class_weight = torch.randn(16, 3), torch.tensor([0.2, 5.0])
    y = (torch.rand(16) > 0.7).long()
    per_image = (x @ w) ** 2

    def weighted(index):
        weight = class_weight[y[index]]
        return (weight * per_image[index]).sum(), weight.sum()

    summed, total = weighted(torch.arange(16))
    (whole,) = torch.autograd.grad(summed / total, w, retain_graph=True)

    ranks = [torch.arange(0, 8), torch.arange(8, 16)]  # each rank's 8 images, 2 x 4
    accumulations = [ExactAccumulation(), ExactAccumulation()]
    grads = []
    for index, accumulation in zip(ranks, accumulations, strict=True):
        grad = torch.zeros(3)
        for step, micro in enumerate(index.split(4)):
            share = accumulation.share(*weighted(micro), torch.zeros(()), len(micro), step == 0)
            grad += torch.autograd.grad(share / 2, w, retain_graph=True)[0]
        grads.append(grad)
    averaged = sum(grads) / 2  # what DDP's all-reduce leaves on every rank
    global_weight = sum(a.weight for a in accumulations)
    for accumulation in accumulations:
        w.grad = averaged.clone()
        accumulation.finish_step([w], 2, 2, lambda _: global_weight)
        assert torch.allclose(w.grad, whole, atol=1e-6)
