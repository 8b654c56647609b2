"""The pieces that let a run continue across attempts: the training loader's place in an epoch,
last.ckpt every epoch, the attempt record, the CSV that keeps its rows, requeue checkpoints."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import fsspec
import lightning as L
import pytest
import torch
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem
from hydra.utils import instantiate
from lightning.pytorch.plugins.io import AsyncCheckpointIO, TorchCheckpointIO
from torch.utils.data import DataLoader, TensorDataset

from conftest import QUICK, call_entry
from fitlab import train as fitlab_train
from fitlab.data.resumable import EpochShuffle, ResumableDataLoader
from fitlab.run import folders
from fitlab.run.loggers import CSVLogger


def loader(progress=None, workers: int = 0) -> ResumableDataLoader:
    data = TensorDataset(torch.arange(20))
    return ResumableDataLoader(
        data, batch_size=3, sampler=EpochShuffle(20, seed=7), num_workers=workers,
        progress=progress, generator=torch.Generator(),
    )  # fmt: skip


def epoch(dl: ResumableDataLoader, number: int) -> list[list[int]]:
    dl.sampler.set_epoch(number)
    return [batch[0].tolist() for batch in dl]


def test_an_epochs_order_depends_on_seed_and_epoch_only() -> None:
    a, b = loader(), loader()
    first = epoch(a, 0)
    assert epoch(a, 1) != first
    assert epoch(b, 0) == first  # a fresh loader, as after a restart
    assert sorted(i for batch in first for i in batch) == list(range(20))
    torch.manual_seed(0)
    state = torch.get_rng_state()
    epoch(a, 2)
    assert torch.equal(torch.get_rng_state(), state)  # dropout's generator is left alone


@pytest.mark.parametrize("workers", [0, 2])
def test_a_checkpoint_mid_epoch_resumes_with_the_rest_of_that_epoch(workers: int) -> None:
    whole = epoch(loader(), 3)
    saved = loader(progress=lambda: (3, 2, len(whole))).state_dict()
    assert saved == {"epoch": 3, "batches_done": 2}
    resumed = loader(workers=workers)
    resumed.load_state_dict(saved)  # before Lightning sets the epoch, as it does
    assert [b[0].tolist() for b in resumed] == whole[2:]
    assert len(resumed) == len(whole)  # Lightning counts the restored batches as done
    assert epoch(resumed, 4) == epoch(loader(), 4)  # the next epoch is whole again


def test_a_checkpoint_at_an_epochs_end_skips_nothing() -> None:
    saved = loader(progress=lambda: (3, 7, 7)).state_dict()
    resumed = loader()
    resumed.load_state_dict(saved)
    assert epoch(resumed, 4) == epoch(loader(), 4)


def test_csv_logger_keeps_the_rows_before_the_resumed_step(tmp_path: Path) -> None:
    first = CSVLogger(tmp_path, name="csv", version="")
    for step in range(4):
        first.log_metrics({"train/loss": float(step)}, step=step)
    first.save()
    again = CSVLogger(tmp_path, name="csv", version="", keep_before_step=2)
    again.log_metrics({"train/loss": 20.0, "val/acc": 0.5}, step=2)
    again.save()
    rows = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()
    assert rows == ["step,train/loss,val/acc", "0,0.0,", "1,1.0,", "2,20.0,0.5"]
    CSVLogger(tmp_path, name="csv", version="").experiment.save()  # a new run starts over
    assert not (tmp_path / "csv" / "metrics.csv").exists()


def touch(path: Path, mtime_ns: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def test_a_later_last_ckpt_supersedes_requeue_checkpoints(tmp_path: Path) -> None:
    old = touch(tmp_path / "hpc_ckpt_1.ckpt", 1_000)
    touch(tmp_path / "checkpoints" / "last.ckpt", 2_000)
    newer = touch(tmp_path / "hpc_ckpt_2.ckpt", 3_000)
    assert folders.remove_superseded_hpc_checkpoints(tmp_path) == [old]
    assert not old.exists() and newer.exists()


def test_the_next_attempt_counts_on_from_the_failure_record_or_the_checkpoint(tmp_path) -> None:
    from_ckpt = {folders.ATTEMPTS_KEY: {"attempts": 2, "wall_time_s": 30.0}}
    assert folders.earlier_attempts(tmp_path, from_ckpt) == {"attempts": 2, "wall_time_s": 30.0}
    record = {"status": "failed", "error": "SIGTERMException", "attempts": 2, "wall_time_s": 41.5}
    (tmp_path / "metrics.json").write_text(json.dumps(record))
    assert folders.earlier_attempts(tmp_path, from_ckpt)["wall_time_s"] == 41.5
    assert not (tmp_path / "metrics.json").exists()  # a run being retried has no verdict yet
    attempt = folders.Attempt()
    attempt.follow(record)
    assert attempt.number == 3 and attempt.wall_time_s() >= 41.5


@pytest.mark.slow
def test_a_requeued_job_that_had_completed_trains_nothing(tmp_path, monkeypatch) -> None:
    for name, value in {"SLURM_JOB_ID": "77", "SLURM_STEP_ID": "0"}.items():
        monkeypatch.setenv(name, value)
    run = tmp_path / "logs" / "quick" / "runs" / "slurm77.0"  # the job's folder (test_cluster)
    run.mkdir(parents=True)
    record = '{"status": "completed", "val/acc": 0.5}'
    (run / "metrics.json").write_text(record)
    argv = [*QUICK, f"hydra.run.dir={run}"]  # this process's stamp was fixed at import
    call_entry(fitlab_train.main, argv, tmp_path, monkeypatch)
    assert "completed in an earlier attempt of this job" in (run / "quick.log").read_text()
    assert (run / "metrics.json").read_text() == record  # nothing trained, nothing rewritten
    assert not (run / "checkpoints").exists()


# last.ckpt on an epoch that is also the best: a copy of its state, not a second dump.
SCORES = [0.5, 0.9, 0.7, 0.6]  # val/score per epoch, maximised: epochs 0 and 1 best, then not


class Scored(L.LightningModule):
    """Logs ``SCORES[epoch]``, so which epochs are the best is known beforehand."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.weight - 1).pow(2).sum()

    def validation_step(self, batch, batch_idx) -> None:
        self.log("val/score", SCORES[self.current_epoch])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Held(L.Callback):
    """The epoch every checkpoint file held after each epoch (each must load)."""

    def __init__(self, folder: str) -> None:
        self.fs, self.root = fsspec.core.url_to_fs(folder)
        self.after: dict[int, dict[str, int]] = {}

    def held(self) -> dict[str, int]:
        files = self.fs.ls(self.root, detail=False) if self.fs.exists(self.root) else []
        held = {}
        for path in files:
            with self.fs.open(path, "rb") as f:
                held[Path(path).name] = torch.load(f, weights_only=True)["epoch"]
        return held

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.current_epoch > 0:
            self.after[trainer.current_epoch - 1] = self.held()

    def on_train_end(self, trainer: L.Trainer, pl_module) -> None:
        self.after[trainer.current_epoch - 1] = self.held()


def fit_scored(compose_cfg, monkeypatch, folder: str, epochs: int, **fit) -> tuple[Held, list]:
    """Fit ``Scored`` with the shipped checkpoint callback: what the folder held after each
    epoch, and the epoch of every state Lightning dumped."""
    checkpoint = instantiate(
        compose_cfg().callbacks.model_checkpoint, dirpath=folder, monitor="val/score", mode="max"
    )
    probe = Held(folder)
    trainer = L.Trainer(max_epochs=epochs, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[checkpoint, probe], plugins=fit.get("plugins"))  # fmt: skip
    dumps, dump = [], trainer._checkpoint_connector.dump_checkpoint
    monkeypatch.setattr(trainer._checkpoint_connector, "dump_checkpoint", lambda *a, **k: (
        dumps.append(trainer.current_epoch), dump(*a, **k))[1])  # fmt: skip
    data = DataLoader(TensorDataset(torch.zeros(4, 1)), batch_size=2)
    ckpt_path = fit.get("ckpt_path")
    trainer.fit(Scored(), train_dataloaders=data, val_dataloaders=data, ckpt_path=ckpt_path)
    return probe, dumps


@pytest.mark.parametrize("where", ["local", "remote"])
def test_a_best_epochs_state_is_dumped_once(compose_cfg, monkeypatch, tmp_path, where) -> None:
    folder = f"memory://{tmp_path.name}/checkpoints" if where == "remote" else str(tmp_path)
    copied = []
    for fs in (LocalFileSystem, MemoryFileSystem):
        monkeypatch.setattr(fs, "cp_file", lambda self, a, b, *x, f=fs.cp_file, **k: (
            copied.append(Path(b).name), f(self, a, b, *x, **k))[1])  # fmt: skip
    probe, dumps = fit_scored(compose_cfg, monkeypatch, folder, 4)
    assert copied[:1] == ["last.ckpt.partial"]  # a side file first, never over last.ckpt
    # Epoch 0: the first last.ckpt names itself in its state, so it is dumped; epoch 1 (best):
    # last.ckpt is a copy of epoch_001.ckpt; epochs 2 and 3: last.ckpt alone.
    assert dumps == [0, 0, 1, 2, 3]
    assert probe.after == {
        0: {"epoch_000.ckpt": 0, "last.ckpt": 0},
        1: {"epoch_001.ckpt": 1, "last.ckpt": 1},
        2: {"epoch_001.ckpt": 1, "last.ckpt": 2},  # the best untouched by the later write
        3: {"epoch_001.ckpt": 1, "last.ckpt": 3},
    }
    if where == "local":  # a copy: two files, the same bytes; put in place by a rename
        assert copied == ["last.ckpt.partial"]
        best, last = tmp_path / "epoch_001.ckpt", tmp_path / "last.ckpt"
        assert best.stat().st_ino != last.stat().st_ino
    else:
        fsspec.filesystem("memory").rm(f"/{tmp_path.name}", recursive=True)


def test_a_run_resumed_from_a_copied_last_ckpt_goes_on_writing_it(
    compose_cfg, monkeypatch, tmp_path
) -> None:
    fit_scored(compose_cfg, monkeypatch, str(tmp_path), 2)
    resumed, dumps = fit_scored(
        compose_cfg, monkeypatch, str(tmp_path), 4, ckpt_path=str(tmp_path / "last.ckpt")
    )
    assert dumps == [2, 3]
    # Its state named last.ckpt as the last checkpoint: no last-v1.ckpt beside it.
    assert resumed.after[3] == {"epoch_001.ckpt": 1, "last.ckpt": 3}


class SlowWrites(TorchCheckpointIO):
    """Each write waits first, so it is still queued when the next epoch ends."""

    def save_checkpoint(self, *args, **kwargs) -> None:
        time.sleep(0.3)
        super().save_checkpoint(*args, **kwargs)


def test_asynchronous_saving_dumps_last_ckpt_itself(compose_cfg, monkeypatch, tmp_path) -> None:
    # The best file may not be on disk yet when last.ckpt is due: nothing to copy from. And the
    # superseded best is removed only after its queued write has landed, not before it.
    async_io = AsyncCheckpointIO(SlowWrites())
    probe, dumps = fit_scored(compose_cfg, monkeypatch, str(tmp_path), 2, plugins=[async_io])
    assert dumps == [0, 0, 1, 1]
    assert probe.held() == {"epoch_001.ckpt": 1, "last.ckpt": 1}  # written once fit ended
