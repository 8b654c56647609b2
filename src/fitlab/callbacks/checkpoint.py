"""Lightning's ModelCheckpoint, with ``last.ckpt`` at the end of every epoch.

Lightning 2.6 writes ``last.ckpt`` only when it also writes a top-k checkpoint, so after the best
epoch ``last.ckpt`` stopped moving: a run that early-stopped at epoch 22 had it at epoch 12, and
resuming from it trained ten epochs again. Here it always holds the last completed epoch. Under
``fast_dev_run`` (a smoke test) it saves nothing, as Lightning means to: its ``on_train_end``
wrote ``last.ckpt`` even then.

An epoch that is also the new best is gathered and serialized once: ``last.ckpt`` is a copy of
its ``epoch_NNN.ckpt``, the same state (Lightning gathered and serialized it twice; a file copy
is far cheaper). The state names the last checkpoint's path, so the copy is made only when that
path was already ``last.ckpt`` before the epoch (not at the first save, nor under a versioned
name). A copy, not a link: Lightning may rewrite ``last.ckpt`` in place, which through a hard
link would overwrite the best checkpoint. The copy is renamed into place, so whoever reads
``last.ckpt`` (a resume, a watcher) never sees half of it.

Under Lightning's ``AsyncCheckpointIO`` a save only queues the write, while removing the
superseded best file happens at once: when the old file's write was still queued, the removal
found nothing and the write landed afterwards, so a stale ``epoch_000.ckpt`` stayed beside the
new best (Lightning-AI/pytorch-lightning#14035, open). Here the queued writes land first.
"""

from __future__ import annotations

from weakref import proxy

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint
from lightning.pytorch.plugins.io import AsyncCheckpointIO


class ModelCheckpoint(LightningModelCheckpoint):
    """The best checkpoint by ``monitor`` and ``last.ckpt`` written every epoch."""

    _last_before = ""  # last_model_path when the epoch's saving began

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        saved = self._last_checkpoint_saved
        same_state = (
            filepath == self.last_model_path == self._last_before
            and saved not in ("", filepath)
            and self._last_global_step_saved == trainer.global_step
            and not isinstance(trainer.strategy.checkpoint_io, AsyncCheckpointIO)  # on disk yet
        )
        if not same_state:
            super()._save_checkpoint(trainer, filepath)
            return
        if trainer.is_global_zero:  # into place by a rename: a kill mid-copy leaves the old file
            partial = f"{filepath}.partial"  # not a *.ckpt that a resume could pick up
            self._fs.cp_file(saved, partial)
            self._fs.mv(partial, filepath)
        trainer.strategy.barrier("fitlab_copy_last")
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:  # as Lightning's save tells its loggers
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))

    def _remove_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        io = trainer.strategy.checkpoint_io
        if isinstance(io, AsyncCheckpointIO):
            io.teardown()  # waits for the queued writes; the next save starts a new thread
        super()._remove_checkpoint(trainer, filepath)

    def _save_last_every_epoch(self, trainer: L.Trainer) -> None:
        # Lightning's hook already saved when this step's checkpoint exists (top-k and last).
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_before = self.last_model_path
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_every_epoch(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_before = self.last_model_path
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_every_epoch(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.fast_dev_run:
            super().on_train_end(trainer, pl_module)
