"""Clocks: on fitlab's epochs, each paired with one epoch of the plain loop right after it, and
on a real ``fitlab-train`` process (start-up, whole run)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from fitlab.bench.plain import PlainLoop, sync
from fitlab.callbacks.plots import ClassificationPlots


class PairedEpochTimer(L.Callback):
    """Times each fitlab epoch, then runs and times one epoch of ``plain``.

    A shared machine runs faster and slower by turns; pairing each fitlab epoch with a plain
    epoch right after it puts both under the same conditions, and the report takes the median
    of the per-epoch ratios. It must be the first callback, so the other callbacks' hooks count
    as fitlab's time:

    - ``train_s``: from the epoch's start to the start of validation;
    - ``val_s``: the validation loop with its metrics and logging, plots drawn (timed apart in
      ``plots_s``) taken out;
    - ``epoch_end_s``: from the end of validation to the next epoch (or the end of training):
      the epoch's training metrics, the fit diagnosis, early stopping and the checkpoint.

    The plain twin of an epoch runs when the next one starts (or training ends), before its
    clock, with its own generators, so fitlab draws the same batches as alone. It also counts
    the training labels each path sees (on the device, without a sync).
    """

    def __init__(self, plain: PlainLoop | None) -> None:
        self.plain = plain
        self.train_s: list[float] = []
        self.val_s: list[float] = []
        self.epoch_end_s: list[float] = []
        self.plots_s: list[float] = []
        self.plain_train_s: list[float] = []
        self.plain_val_s: list[float] = []
        self.label_counts: torch.Tensor | None = None
        self._plots: list[ClassificationPlots] = []
        self._marks: dict[str, float] = {}

    def _now(self, pl_module: L.LightningModule) -> float:
        sync(pl_module.device)
        return time.perf_counter()

    def _drawn(self) -> float:
        return sum(p.seconds_drawing for p in self._plots)

    def on_train_start(self, trainer, pl_module) -> None:
        self._plots = [c for c in trainer.callbacks if isinstance(c, ClassificationPlots)]
        if self.plain is not None:
            self.plain.start_from(pl_module.net)
        self.label_counts = torch.zeros(
            pl_module.hparams.num_classes, dtype=torch.long, device=pl_module.device
        )

    def _epoch_done(self, pl_module: L.LightningModule) -> None:
        """Close the epoch that ended (if any), then run its plain twin."""
        if "val_end" not in self._marks:
            return
        self.epoch_end_s.append(self._now(pl_module) - self._marks.pop("val_end"))
        if self.plain is not None:
            devices = [pl_module.device] if pl_module.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices), torch.enable_grad():
                self.plain_train_s.append(self.plain.train_epoch())
                self.plain_val_s.append(self.plain.validate())

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_done(pl_module)
        self._marks["train"] = self._now(pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self._epoch_done(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        labels = batch[1]
        self.label_counts.index_add_(0, labels, torch.ones_like(labels))

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            now = self._now(pl_module)
            self.train_s.append(now - self._marks["train"])
            self._marks["val"], self._marks["drawn"] = now, self._drawn()

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            now = self._now(pl_module)
            plots = self._drawn() - self._marks["drawn"]
            self.val_s.append(now - self._marks["val"] - plots)
            self.plots_s.append(plots)
            self._marks["val_end"] = now


class FirstStepProbe(L.Callback):
    """Writes the wall-clock time of the first training step to ``path`` (for start-up time)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self.path.exists():
            self.path.write_text(repr(time.time()))


def run_default_training(run_overrides: list[str], workdir: Path) -> dict[str, Any]:
    """A real ``fitlab-train`` process: start-up to its first step, and its whole wall time."""
    probe = workdir / "first_step.txt"
    command = [
        sys.executable, "-m", "fitlab.train", *run_overrides,
        "+callbacks.first_step._target_=fitlab.bench.timing.FirstStepProbe",
        f"+callbacks.first_step.path={probe}",
    ]  # fmt: skip
    env = {**os.environ, "FITLAB_LOG_DIR": str(workdir / "logs")}
    launched = time.time()
    subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    finished = time.time()
    (metrics,) = (workdir / "logs").glob("*/runs/*/metrics.json")
    return {
        "startup_s": float(probe.read_text()) - launched,
        "import_s": statistics.median(import_seconds(env) for _ in range(3)),
        "default_run_wall_s": finished - launched,
        "default_run_metrics": json.loads(metrics.read_text()),
    }


# What a run imports: fitlab.train, and what its train() imports when it runs (torch, Lightning,
# torchmetrics, the callbacks); the command line is checked before those load.
RUN_IMPORTS = (
    "fitlab.train, fitlab.run.pipeline, fitlab.callbacks, fitlab.run.hparams, "
    "fitlab.models.accumulation"
)


def import_seconds(env: dict[str, str]) -> float:
    """How much of a start-up is importing what a run imports (:data:`RUN_IMPORTS`): from
    launching a process to the end of its imports (its exit is not waited for)."""
    started = time.time()
    imported = subprocess.run(
        [sys.executable, "-c", f"import time, {RUN_IMPORTS}; print(repr(time.time()))"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return float(imported) - started
