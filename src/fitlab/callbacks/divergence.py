"""Stop at the first non-finite loss, before the optimizer step and before any checkpoint.

Lightning 2 has no switch for this (``terminate_on_nan`` was removed), and ``EarlyStopping``'s
``check_finite`` only sees the monitored metric after a validation, when a whole epoch of NaN
updates and a NaN ``last.ckpt`` may already exist. Raising from the hook ends ``fit`` at once:
the checkpoint callbacks never see the broken weights, so the last good checkpoint stays.
"""

from __future__ import annotations

import math

import lightning as L
import torch


class NonFiniteLoss(Exception):
    """Training diverged; ``step`` and ``epoch`` say where."""

    def __init__(self, what: str, step: int, epoch: int) -> None:
        super().__init__(f"{what} at step {step} (epoch {epoch})")
        self.step = step
        self.epoch = epoch


class StopOnNonFiniteLoss(L.Callback):
    """Raise :class:`NonFiniteLoss` when the loss, or the weights about to be saved, stop being
    finite. Under DDP every rank takes the same decision, so no rank waits for a dead peer.

    Reading the loss on the host waits for the device. On the CPU that costs nothing, so every
    step is checked before its backward pass. On a GPU the first non-finite step is recorded on
    the device and read every ``check_every_n_steps`` steps (and always before a checkpoint is
    saved): training stops within that many steps, naming the first bad one, and the last good
    checkpoint stays. ``None``: 1 on the CPU, 16 on accelerators.
    """

    def __init__(self, check_every_n_steps: int | None = None) -> None:
        self.check_every_n_steps = check_every_n_steps
        self._first_bad: torch.Tensor | None = None  # (step, loss) of the first bad step, or -1
        self._value: torch.Tensor | None = None

    def _stop_if(self, trainer: L.Trainer, broken: bool, what: str, step: int | None = None):
        broken = trainer.strategy.reduce_boolean_decision(broken, all=False)
        if broken:
            step = trainer.global_step if step is None else step
            raise NonFiniteLoss(what, step, trainer.current_epoch)

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        value = loss.detach()
        every = self.check_every_n_steps or (1 if value.device.type == "cpu" else 16)
        if every == 1 and trainer.world_size == 1 and value.numel() == 1:
            # Read at once on one rank: nothing to record, and one read is cheaper than two ops.
            number = value.item()
            if not math.isfinite(number):
                raise NonFiniteLoss(
                    f"the loss is {number}", trainer.global_step, trainer.current_epoch
                )
            return
        if self._first_bad is None:
            self._first_bad = torch.full((), -1, dtype=torch.long, device=value.device)
            self._value = torch.zeros((), dtype=value.dtype, device=value.device)
        new = ~torch.isfinite(value).all() & (self._first_bad < 0)
        self._first_bad = torch.where(new, trainer.global_step, self._first_bad)
        self._value = torch.where(new, value.sum(), self._value)
        if (trainer.global_step + 1) % every == 0:
            self._check_loss(trainer)

    def _check_loss(self, trainer: L.Trainer) -> None:
        if self._first_bad is None:
            return
        step = int(self._first_bad)  # the one host sync
        if step >= 0 or trainer.world_size > 1:
            self._stop_if(trainer, step >= 0, f"the loss is {self._value.item()}", step)

    def _check_weights(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A finite loss can still produce an inf update on the last batch of an epoch; checked
        # here, before ModelCheckpoint (always called after other callbacks) saves the epoch.
        # The network's parameters and buffers (BatchNorm statistics), not the state_dict: it
        # also holds metric states, and a best-so-far that has seen no value yet is -inf.
        tensors = [
            t for t in (*pl_module.parameters(), *pl_module.buffers()) if t.is_floating_point()
        ]
        broken = not all(bool(torch.isfinite(t).all()) for t in tensors)
        self._stop_if(trainer, broken, "the weights became non-finite")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._check_loss(trainer)
        self._check_weights(trainer, pl_module)

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._check_loss(trainer)
            self._check_weights(trainer, pl_module)
