"""Gradient accumulation that equals the large batch, class weights and several devices included.

The loss of one optimizer step is ``sum_i w_i l_i / sum_i w_i + penalty`` over every image of
the step, on every device (``w_i`` the image's class weight, 1 without class weights). Its
denominator is known only after the last micro-batch. So each micro-batch contributes
``(sum w_i l_i + penalty * its weight) / scale``, with one ``scale`` for the whole step, and just
before the optimizer steps the summed gradients are divided by the step's total weight.

Lightning's default, the mean of each micro-batch's own mean, differs: it gives a small
micro-batch (an epoch's last) as much say as a full one, and with class weights a micro-batch of
rare, heavily weighted classes as much say as one of common classes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch


class ExactAccumulation:
    """The running total weight of one optimizer step and the loss share of each micro-batch."""

    def __init__(self) -> None:
        self.weight: torch.Tensor | None = None  # weight seen since the last optimizer step
        self.scale = 1

    def share(
        self,
        summed: torch.Tensor,
        weight: torch.Tensor,
        penalty: torch.Tensor,
        count: int,
        first: bool,
    ) -> torch.Tensor:
        """What one micro-batch returns as its loss.

        ``summed``: ``sum_i w_i l_i`` of its images, ``weight``: their ``sum_i w_i``, ``count``:
        their number, ``first``: it opens a new optimizer step.
        """
        if first or self.weight is None:
            self.weight = weight.new_zeros(())
            # The first micro-batch's size: the same on every rank (the distributed sampler
            # gives each rank as many images) and it keeps the loss at its usual magnitude.
            self.scale = count
        self.weight = self.weight + weight.detach()
        return (summed + penalty * weight.detach()) / self.scale

    def finish_step(
        self,
        parameters: Iterable[torch.nn.Parameter],
        accumulate_grad_batches: int,
        world_size: int,
        sum_over_ranks: Callable[[torch.Tensor], torch.Tensor],
    ) -> None:
        """Turn the summed micro-batch gradients into the gradient of the whole batch's loss."""
        if self.weight is None:
            return
        # Lightning divided each micro-batch's loss by the accumulation steps and DDP averaged
        # the gradients over the ranks: undo both, then divide by the total weight of the step.
        total = sum_over_ranks(self.weight)
        factor = world_size * accumulate_grad_batches * self.scale / total
        for parameter in parameters:
            if parameter.grad is not None:
                parameter.grad.mul_(factor)
        self.weight = None
