"""SLURM's warning before the time limit: save between two batches, requeue, resume there.

``sbatch --signal=USR1@120`` (the submitit launcher sets it) sends SIGUSR1 two minutes before
the limit. Lightning's own handler saves its requeue checkpoint inside the signal handler,
wherever the step happens to be (between the backward pass and the optimizer step, say), so the
resumed run could repeat or lose an update. Here the handler only takes note: the checkpoint is
saved at the next batch boundary, where the loop's counters, the weights and the training
loader's place (data/resumable.py) agree, and then the job is requeued. The pipeline turns
Lightning's handler off while this callback is on.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import lightning as L

from fitlab.run import cluster

log = logging.getLogger(__name__)


class Requeued(Exception):
    """This attempt saved its state and SLURM will run the job again; it ends here."""


def await_requeue(timeout_s: float = 600) -> None:
    """Wait for SLURM to stop this attempt: it signals the job as it requeues it. Ending by
    ourselves could hand a submitit launcher a result for a job that is to run again."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(1)
    raise RuntimeError(f"the job was requeued but SLURM did not stop it within {timeout_s} s")


def hpc_checkpoint_path(run: Path) -> Path:
    """``hpc_ckpt_<n>.ckpt``, Lightning's name for a requeue checkpoint, one above the last."""
    numbers = [int(p.stem.rsplit("_", 1)[1]) for p in run.glob("hpc_ckpt_*.ckpt")]
    return run / f"hpc_ckpt_{max(numbers, default=0) + 1}.ckpt"


class SlurmRequeue(L.Callback):
    """On ``signal_name`` under SLURM: checkpoint at the next batch end, then requeue the job.

    Under DDP every rank gets the signal, not necessarily at the same batch; the ranks agree on
    it with one all-reduce of a flag per batch, and only while the job runs under SLURM.
    """

    # Read by run.pipeline, which then turns Lightning's own SLURM signal handling off.
    requeues_on_slurm_signal = True

    def __init__(self, signal_name: str = "SIGUSR1") -> None:
        self.signum = signal.Signals[signal_name]
        self.job = None
        self._noted = False
        self._previous: Any = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.job = cluster.slurm_job()
        if stage == "fit" and self.job is not None:
            self._previous = signal.signal(self.signum, self._note)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._previous is not None:
            signal.signal(self.signum, self._previous)
            self._previous = None

    def _note(self, signum: int, frame: Any) -> None:
        self._noted = True

    def _warned(self, trainer: L.Trainer) -> bool:
        if self._previous is None:
            return False
        if trainer.world_size > 1:
            return trainer.strategy.reduce_boolean_decision(self._noted, all=False)
        return self._noted

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        # The epoch's last batch: validation and last.ckpt come first, then on_train_epoch_end.
        last = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        if not (last or batch_idx + 1 >= trainer.num_training_batches) and self._warned(trainer):
            self._save_and_requeue(trainer, mid_epoch=True)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._warned(trainer):
            self._save_and_requeue(trainer)

    def _save_and_requeue(self, trainer: L.Trainer, mid_epoch: bool = False) -> None:
        path = hpc_checkpoint_path(Path(trainer.default_root_dir))
        trainer.save_checkpoint(path)
        self._noted = False
        requeued = trainer.is_global_zero and self._requeue(path)
        if trainer.strategy.broadcast(requeued, src=0):
            if mid_epoch:
                # Lightning logs this batch's step metrics after the batch-end hooks; the next
                # attempt starts with the next batch, so this attempt logs them before it ends.
                trainer._logger_connector.on_batch_end()
                trainer._logger_connector.update_train_step_metrics()
            raise Requeued(str(path))

    def _requeue(self, path: Path) -> bool:
        done = subprocess.run(["scontrol", "requeue", self.job], capture_output=True, text=True)
        if done.returncode != 0:  # training goes on: it may still end in time
            log.warning("fitlab: scontrol requeue %s failed: %s", self.job, done.stderr.strip())
            return False
        log.info("fitlab: saved %s and requeued SLURM job %s", path, self.job)
        return True
