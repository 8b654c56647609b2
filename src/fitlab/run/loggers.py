"""Lightning's CSV logger, made to continue a file instead of breaking or starting it over; its
TensorBoard logger without the ``epoch`` scalar.

Written by hand because Lightning's writer keeps the file's columns in memory only: a run
resumed from a checkpoint deleted the interrupted attempt's rows, and under ``ddp_spawn`` (fit
and test each in fresh processes, from the main process's copy of the logger) the test stage
rewrote the file with the test columns alone and raised ``dict contains fields not in
fieldnames``.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


class _Writer(ExperimentWriter):
    """Lightning's writer, taking the columns of the file on disk into account before it saves."""

    def _record_new_keys(self) -> set[str]:
        path = Path(self.metrics_file_path)
        if path.is_file():
            with path.open(newline="") as file:
                header = next(csv.reader(file), [])
            self.metrics_keys.extend(sorted(set(header) - set(self.metrics_keys)))
        return super()._record_new_keys()


class CSVLogger(LightningCSVLogger):
    """``metrics.csv`` that keeps the rows an interrupted attempt logged before
    ``keep_before_step`` (TensorBoard does the same with ``purge_step``)."""

    def __init__(self, *args: Any, keep_before_step: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keep_before_step = keep_before_step

    @property
    @rank_zero_experiment
    def experiment(self) -> _Writer:
        if self._experiment is not None:
            return self._experiment
        kept = self._earlier_rows()
        self._fs.makedirs(self.root_dir, exist_ok=True)
        with warnings.catch_warnings():  # "will be deleted": the rows before the step are kept
            if kept:
                warnings.filterwarnings("ignore", message="Experiment logs directory")
            self._experiment = _Writer(log_dir=self.log_dir)  # deletes the old file
        self._experiment.metrics = kept  # written with the first save
        return self._experiment

    def _earlier_rows(self) -> list[dict[str, Any]]:
        path = Path(self.log_dir) / "metrics.csv"
        if self.keep_before_step is None or not path.is_file():
            return []
        with path.open(newline="") as file:
            rows = list(csv.DictReader(file))
        keep = [r for r in rows if r.get("step") and int(r["step"]) < self.keep_before_step]
        return [{k: v for k, v in row.items() if v != ""} for row in keep]


class TensorBoardLogger(LightningTensorBoardLogger):
    """Lightning's, less the ``epoch`` Lightning adds to every write: in TensorBoard it was a
    staircase at the top of SCALARS (tags sort by name), above the curves a reader opens it for.
    The CSV log keeps its ``epoch`` column."""

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        super().log_metrics({k: v for k, v in metrics.items() if k != "epoch"}, step)
