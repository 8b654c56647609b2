"""Stop at the first non-finite loss, before the optimizer step and before any checkpoint.

Lightning 2 has no switch for this (``terminate_on_nan`` was removed), and ``EarlyStopping``'s
``check_finite`` only sees the monitored metric after a validation, when a whole epoch of NaN
updates and a NaN ``last.ckpt`` may already exist. Raising from the hook ends ``fit`` at once:
the checkpoint callbacks never see the broken weights, so the last good checkpoint stays.
"""

from __future__ import annotations

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
    finite. Under DDP every rank takes the same decision, so no rank waits for a dead peer."""

    def _stop_if(self, trainer: L.Trainer, broken: bool, what: str) -> None:
        broken = trainer.strategy.reduce_boolean_decision(broken, all=False)
        if broken:
            raise NonFiniteLoss(what, trainer.global_step, trainer.current_epoch)

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        value = loss.detach()
        self._stop_if(trainer, not bool(torch.isfinite(value).all()), f"the loss is {value.item()}")

    def _check_weights(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A finite loss can still produce an inf update on the last batch of an epoch; checked
        # here, before ModelCheckpoint (always called after other callbacks) saves the epoch.
        tensors = [t for t in pl_module.state_dict().values() if t.is_floating_point()]
        broken = not all(bool(torch.isfinite(t).all()) for t in tensors)
        self._stop_if(trainer, broken, "the weights became non-finite")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._check_weights(trainer, pl_module)

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._check_weights(trainer, pl_module)
