"""The pieces that let a run continue across attempts: the training loader's place in an epoch,
last.ckpt every epoch, the attempt record, the CSV that keeps its rows, requeue checkpoints."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from conftest import QUICK, call_entry
from fitlab import runs
from fitlab import train as fitlab_train
from fitlab.data.resumable import EpochShuffle, ResumableDataLoader
from fitlab.loggers import CSVLogger


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
    assert runs.remove_superseded_hpc_checkpoints(tmp_path) == [old]
    assert not old.exists() and newer.exists()


def test_the_next_attempt_counts_on_from_the_failure_record_or_the_checkpoint(tmp_path) -> None:
    from_ckpt = {runs.ATTEMPTS_KEY: {"attempts": 2, "wall_time_s": 30.0}}
    assert runs.earlier_attempts(tmp_path, from_ckpt) == {"attempts": 2, "wall_time_s": 30.0}
    record = {"status": "failed", "error": "SIGTERMException", "attempts": 2, "wall_time_s": 41.5}
    (tmp_path / "metrics.json").write_text(json.dumps(record))
    assert runs.earlier_attempts(tmp_path, from_ckpt)["wall_time_s"] == 41.5
    assert not (tmp_path / "metrics.json").exists()  # a run being retried has no verdict yet
    attempt = runs.Attempt()
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
