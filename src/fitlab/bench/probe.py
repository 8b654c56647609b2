"""The :class:`PhaseProbe`: a callback inside the profiled ``fitlab-train`` run of
``fitlab-bench --whole-run`` that stamps its stages and sums the profiler's hook seconds by
kind, for :func:`fitlab.bench.whole_run.profiled_run` to turn into phases.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ModelSummary
from lightning.pytorch.callbacks.progress import ProgressBar
from lightning.pytorch.trainer.states import TrainerFn

from fitlab.callbacks import ClassCounts, ClassificationPlots, FitDiagnosis, PerClassTable

# Callbacks whose profiled hooks make a phase of their own.
KINDS = {
    "model_summary": (ModelSummary,),
    "plots": (ClassificationPlots, ClassCounts),
    "fit_diagnosis": (FitDiagnosis,),
    "checkpointing": (ModelCheckpoint,),
    "logging": (LearningRateMonitor, ProgressBar, PerClassTable),
}
# The hooks counted for those callbacks: the ones that run outside the stages the probe times
# as a whole (sanity check, validation) and outside a training batch (on_validation_end also
# runs once inside the sanity check, for well under a millisecond); in the test stage, those
# inside the test, which is timed without them.
FIT_HOOKS = (
    "on_fit_start", "on_fit_end", "on_train_start", "on_train_end", "on_train_epoch_start",
    "on_train_epoch_end", "on_train_batch_start", "on_train_batch_end", "on_validation_end",
    "on_sanity_check_end",
)  # fmt: skip
TEST_HOOKS = (
    "setup", "on_test_start", "on_test_end", "on_test_epoch_start", "on_test_epoch_end",
    "on_test_batch_start", "on_test_batch_end",
)  # fmt: skip


class PhaseProbe(L.Callback):
    """Stamps the stages of a fitlab-train run and sums the profiler's hook seconds by kind;
    writes them to ``path`` (JSON) when the test ends.

    Lightning's SimpleProfiler gives each hook's seconds, but no action spans a validation, the
    sanity check or the test, and its clock cannot be set against the launch of the process:
    this probe stamps those itself (``time.time()``, the clock the bench reads outside). It
    moves itself to the front of the callbacks, so it opens each stage before the other
    callbacks' hooks run, and closes it before their ``on_validation_end`` and ``teardown``.
    It also counts the images each split served (the sanity check left out).
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.stamps = {"built": time.time()}  # callbacks are built after the data and model
        self.sanity_check_s = 0.0
        self.validation_s: list[float] = []
        self.images = dict.fromkeys(("train", "val", "test"), 0)
        self.seconds: dict[str, dict[str, float]] = {}  # per stage: profiled action -> seconds
        self._opened = 0.0

    def setup(self, trainer, pl_module, stage) -> None:
        self.stamps[f"{TrainerFn(stage).value}_setup"] = time.time()
        if trainer.callbacks[0] is not self:
            # Lightning is iterating this list: the callback after this one stays at the index
            # the loop goes to next.
            trainer.callbacks.remove(self)
            trainer.callbacks.insert(0, self)

    def on_sanity_check_start(self, trainer, pl_module) -> None:
        self._opened = time.time()

    def on_sanity_check_end(self, trainer, pl_module) -> None:
        self.sanity_check_s += time.time() - self._opened

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._opened = time.time()

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.validation_s.append(time.time() - self._opened)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.images["train"] += len(batch[1])

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, *args) -> None:
        if not trainer.sanity_checking:
            self.images["val"] += len(batch[1])

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, *args) -> None:
        self.images["test"] += len(batch[1])

    def teardown(self, trainer, pl_module, stage) -> None:
        stage = TrainerFn(stage).value
        self.stamps[f"{stage}_teardown"] = time.time()
        earlier: dict[str, float] = {}  # the profiler's sums run on from one stage to the next
        for seconds in self.seconds.values():
            for action, s in seconds.items():
                earlier[action] = earlier.get(action, 0.0) + s
        self.seconds[stage] = {
            action: math.fsum(durations) - earlier.get(action, 0.0)
            for action, durations in trainer.profiler.recorded_durations.items()
        }
        if stage == "test":
            self.path.write_text(json.dumps(self.report(trainer)))

    def report(self, trainer: L.Trainer) -> dict[str, Any]:
        fit, test = self.seconds["fit"], self.seconds["test"]
        hooks, test_hooks = dict.fromkeys(KINDS, 0.0), 0.0
        for callback in trainer.callbacks:
            kind = next((k for k, types in KINDS.items() if isinstance(callback, types)), None)
            if kind is not None:
                action = f"[Callback]{callback.state_key}."
                in_test = sum(test.get(action + hook, 0.0) for hook in TEST_HOOKS)
                hooks[kind] += sum(fit.get(action + hook, 0.0) for hook in FIT_HOOKS) + in_test
                test_hooks += in_test
        train_steps = fit["run_training_batch"] + fit["[_TrainingEpochLoop].train_dataloader_next"]
        return {
            "stamps": self.stamps,
            "sanity_check_s": self.sanity_check_s,
            "validation_s": self.validation_s,
            "train_steps_s": train_steps,
            "hooks_s": hooks,
            "test_hooks_s": test_hooks,
            "images": self.images,
        }
