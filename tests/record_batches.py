"""A test helper callback: each rank writes the labels of every training batch it receives."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L


class RecordBatches(L.Callback):
    """Writes ``out_dir/rank<r>_epoch<e>.json``: the labels this rank trained on, in order."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.labels: list[int] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.labels = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.labels.extend(int(y) for y in batch[1])

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"rank{trainer.global_rank}_epoch{trainer.current_epoch}.json"
        path.write_text(json.dumps(self.labels))
