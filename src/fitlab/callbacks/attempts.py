"""The attempts of a run, in its checkpoints: a resumed run counts them and sums their time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L

from fitlab.run import folders


class RunAttempts(L.Callback):
    """Writes the attempt count and the run's time so far into every checkpoint, and removes
    the SLURM requeue checkpoints (``hpc_ckpt_*.ckpt``) a later ``last.ckpt`` supersedes."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[folders.ATTEMPTS_KEY] = folders.attempt.record()

    def _clean(self, trainer: L.Trainer) -> None:
        if trainer.is_global_zero:
            folders.remove_superseded_hpc_checkpoints(Path(trainer.default_root_dir))

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._clean(trainer)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._clean(trainer)
