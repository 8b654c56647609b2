"""Lightning's CSV logger, made to continue a run instead of starting its file over."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment


class CSVLogger(LightningCSVLogger):
    """``metrics.csv`` that keeps the rows an interrupted attempt logged before
    ``keep_before_step``. Lightning's deletes an existing file, so a resumed run's CSV held
    only the epochs after the resume (TensorBoard does the same with ``purge_step``)."""

    def __init__(self, *args: Any, keep_before_step: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keep_before_step = keep_before_step

    @property
    @rank_zero_experiment
    def experiment(self):
        if self._experiment is not None:
            return self._experiment
        kept = self._earlier_rows()
        with warnings.catch_warnings():  # "will be deleted": the rows before the step are kept
            if kept:
                warnings.filterwarnings("ignore", message="Experiment logs directory")
            writer = super().experiment  # deletes the old file
        writer.metrics = kept + writer.metrics  # written with the first save
        return writer

    def _earlier_rows(self) -> list[dict[str, Any]]:
        path = Path(self.log_dir) / "metrics.csv"
        if self.keep_before_step is None or not path.is_file():
            return []
        with path.open(newline="") as file:
            rows = list(csv.DictReader(file))
        keep = [r for r in rows if r.get("step") and int(r["step"]) < self.keep_before_step]
        return [{k: v for k, v in row.items() if v != ""} for row in keep]
