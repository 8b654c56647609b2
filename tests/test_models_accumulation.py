"""ExactAccumulation on its own: shares of micro-batches add up to the large batch's gradient."""

from __future__ import annotations

import torch

from fitlab.models.accumulation import ExactAccumulation


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
