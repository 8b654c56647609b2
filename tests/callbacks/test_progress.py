"""The throttled rich progress bar updates every n training batches and on an epoch's last."""

from __future__ import annotations

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.demos.boring_classes import BoringModel

from fitlab.callbacks import ThrottledRichProgressBar


def test_updates_every_n_batches_and_on_the_last(monkeypatch) -> None:
    updated: list[tuple[int, int]] = []
    update = RichProgressBar.on_train_batch_end

    def record(self, trainer, pl_module, outputs, batch, batch_idx):
        updated.append((trainer.current_epoch, batch_idx))
        update(self, trainer, pl_module, outputs, batch, batch_idx)

    monkeypatch.setattr(RichProgressBar, "on_train_batch_end", record)
    bar = ThrottledRichProgressBar(update_every_n_batches=3)
    trainer = Trainer(
        accelerator="cpu", max_epochs=2, limit_train_batches=7, limit_val_batches=0,
        callbacks=[bar], logger=False, enable_checkpointing=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(BoringModel())
    # Batches 3 and 6 of each epoch, and its last (7): the bar ends every epoch complete.
    assert updated == [(0, 2), (0, 5), (0, 6), (1, 2), (1, 5), (1, 6)]
