"""Gradient accumulation: the effective batch and a loss that equals the large batch's.

``data.batch_size`` is what one device holds at once, the micro-batch. One optimizer step sees
``batch_size x devices x nodes x accumulate_grad_batches`` images: the effective batch, the one
a learning rate is tuned for. ``effective_batch_size=B`` fixes that number and lets the
accumulation steps follow, so the same experiment keeps its optimisation on 1 device or 8, and
a batch that does not fit in memory is reached with smaller ones. The loss is normalised so the
accumulated gradient equals the large batch's (below).

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

from collections.abc import Callable, Iterable, Sequence

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig

from fitlab.errors import FitlabError


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


def world_size(trainer: L.Trainer) -> int:
    """Processes taking part in one optimizer step: devices per node x nodes.

    Known as soon as the Trainer exists (``trainer.world_size`` is only set once the processes
    have started, so it still reads 1 in the launching process of ``ddp_spawn``).
    """
    return trainer.num_devices * trainer.num_nodes


def accumulate_grad_batches(effective_batch_size: int | None, batch_size: int, world: int) -> int:
    """``effective_batch_size / (batch_size x world)``; refuses a size that does not divide."""
    if effective_batch_size is None:
        return 1
    per_step = batch_size * world
    if (
        not isinstance(effective_batch_size, int)
        or effective_batch_size < per_step
        or effective_batch_size % per_step
    ):
        multiples = ", ".join(str(per_step * k) for k in (1, 2, 4, 8))
        raise FitlabError(
            f"effective_batch_size={effective_batch_size} is not a multiple of data.batch_size "
            f"x devices x nodes = {batch_size} x {world} = {per_step}",
            f"use a multiple of {per_step} ({multiples}, ...) or change data.batch_size",
        )
    return effective_batch_size // per_step


def planned_world_size(trainer_cfg: DictConfig) -> int | None:
    """devices x nodes when the config fixes both; None when only the Trainer can tell (auto, -1).

    Lightning's forms: a count (2 or "2"), device ids ("0,1" or [0, 1]).
    """
    devices, nodes = trainer_cfg.get("devices", "auto"), trainer_cfg.get("num_nodes", 1)
    if isinstance(devices, str):
        ids = [d for d in devices.split(",") if d.strip()]
        devices = len(ids) if "," in devices else int(devices) if devices.isdigit() else None
    elif isinstance(devices, Sequence):
        devices = len(devices)
    if not isinstance(devices, int) or devices < 1 or not isinstance(nodes, int):
        return None
    return devices * nodes


def check_effective_batch_size(cfg: DictConfig) -> None:
    """Refuse a bad ``effective_batch_size`` from the config alone, before anything is built."""
    world = planned_world_size(cfg.trainer)
    if world is not None:
        accumulate_grad_batches(cfg.get("effective_batch_size"), cfg.data.batch_size, world)


def configure_accumulation(
    trainer: L.Trainer, effective_batch_size: int | None, batch_size: int
) -> dict[str, int]:
    """Set the Trainer's accumulation from the effective batch size; return the three numbers.

    The Trainer must exist first, because only it resolves ``devices: -1`` or ``auto`` and the
    number of nodes. It reads ``accumulate_grad_batches`` during fit only, as Lightning's own
    ``GradientAccumulationScheduler`` relies on, so setting it here takes effect.
    """
    world = world_size(trainer)
    if effective_batch_size is not None:
        steps = accumulate_grad_batches(effective_batch_size, batch_size, world)
        if trainer.accumulate_grad_batches not in (1, steps):
            raise FitlabError(
                f"effective_batch_size={effective_batch_size} asks for {steps} accumulation "
                f"steps but trainer.accumulate_grad_batches={trainer.accumulate_grad_batches}",
                "set only one of the two",
            )
        trainer.accumulate_grad_batches = steps
    batches = effective_batch(trainer, batch_size)
    rank_zero_info(
        f"fitlab: effective batch size {batches['effective_batch_size']} = {batch_size} per "
        f"device x {trainer.num_devices} device(s) x {trainer.num_nodes} node(s) x "
        f"{trainer.accumulate_grad_batches} accumulation step(s)"
    )
    return batches


def effective_batch(trainer: L.Trainer, batch_size: int) -> dict[str, int]:
    """What ``metrics.json`` and the hyperparameters record about the batch."""
    world = world_size(trainer)
    return {
        "world_size": world,
        "accumulate_grad_batches": trainer.accumulate_grad_batches,
        "effective_batch_size": batch_size * world * trainer.accumulate_grad_batches,
    }
