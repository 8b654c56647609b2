"""Lightning's ModelCheckpoint, with ``last.ckpt`` at the end of every epoch.

Lightning 2.6 writes ``last.ckpt`` only when it also writes a top-k checkpoint, so after the best
epoch ``last.ckpt`` stopped moving: a run that early-stopped at epoch 22 had it at epoch 12, and
resuming from it trained ten epochs again. Here it always holds the last completed epoch. Under
``fast_dev_run`` (a smoke test) it saves nothing, as Lightning means to: its ``on_train_end``
wrote ``last.ckpt`` even then.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint


class ModelCheckpoint(LightningModelCheckpoint):
    """The best checkpoint by ``monitor`` and ``last.ckpt`` written every epoch."""

    def _save_last_every_epoch(self, trainer: L.Trainer) -> None:
        # Lightning's hook already saved when this step's checkpoint exists (top-k and last).
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_every_epoch(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_every_epoch(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.fast_dev_run:
            super().on_train_end(trainer, pl_module)
