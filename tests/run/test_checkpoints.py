"""Resume exactly: a run killed with SIGKILL and resumed from last.ckpt ends like the run that
was never interrupted; and the pieces that make it so."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import QUICK, cli_env, read_metrics, run_cli, run_dirs
from fitlab.callbacks import RandomState
from fitlab.errors import FitlabError
from fitlab.run import checkpoints, folders
from tensorboard_server import scalars

# A deterministic CPU run (one thread) that stops early (patience 2): two epochs after its best.
# Killed once the epoch after the best is saved, last.ckpt and the best checkpoint are two
# different states. Which epoch is best depends on the CPU's arithmetic: the uninterrupted run,
# trained first, says.
ARGS = (
    *QUICK,
    "trainer.deterministic=true",
    "trainer.max_epochs=12",
    "model.optimizer.lr=0.03",
    "callbacks.early_stopping.patience=2",
    # A trajectory whose epoch after the early stop does not improve, so that going on with more
    # epochs shows early stopping's count carried over (one epoch, then it stops again).
    "model.decay_norms_and_biases=true",
)
# One thread per run: the same arithmetic in every attempt, whatever else the machine runs.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def draws() -> tuple:
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]


def test_random_state_survives_a_weights_only_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    draws()
    path = tmp_path / "state.pt"
    torch.save(RandomState().state_dict(), path)
    expected = draws()
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    RandomState().load_state_dict(torch.load(path, weights_only=True))
    assert draws() == expected


def touch(path: Path, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    os.utime(path, (mtime, mtime))
    return path


def test_last_means_the_newest_run_with_a_checkpoint(tmp_path: Path) -> None:
    older = touch(tmp_path / "2026-01-01_10-00-00_aaaaaa" / "checkpoints" / "last.ckpt", 1)
    newer = touch(tmp_path / "2026-01-02_10-00-00_bbbbbb" / "checkpoints" / "last.ckpt", 2)
    (tmp_path / "2026-01-03_10-00-00_cccccc" / ".hydra").mkdir(parents=True)  # failed before
    assert folders.newest_run(tmp_path) == newer.parents[1]
    # A SLURM requeue checkpoint written after last.ckpt is the newer state of that run.
    hpc = touch(newer.parents[1] / "hpc_ckpt_1.ckpt", 3)
    assert folders.latest_checkpoint(newer.parents[1]) == hpc
    assert folders.latest_checkpoint(older.parents[1]) == older


def test_only_the_latest_checkpoint_of_an_unfinished_run_continues_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    last = touch(run / "checkpoints" / "last.ckpt", 2)
    best = touch(run / "checkpoints" / "epoch_000.ckpt", 1)
    assert folders.unfinished_run(last) == run
    assert folders.unfinished_run(best) is None  # an older state starts a new run
    (run / "metrics.json").write_text('{"status": "completed"}')
    assert folders.unfinished_run(last) is None  # a finished run is never written into again
    (run / "metrics.json").write_text('{"status": "failed", "error": "x"}')
    assert folders.unfinished_run(last) == run


def saved_run(compose_cfg, logs: Path, name: str, *overrides: str, mtime: float) -> Path:
    """A run folder of task quick as fitlab-train leaves it: its config and a last.ckpt."""
    run = logs / "quick" / "runs" / name
    (run / ".hydra").mkdir(parents=True)
    job = OmegaConf.to_container(compose_cfg("experiment=quick", *overrides), resolve=False)
    job.pop("hydra")  # Hydra saves the job's config, unresolved, without its own node
    OmegaConf.save(OmegaConf.create(job), run / ".hydra" / "config.yaml")
    touch(run / "checkpoints" / "last.ckpt", mtime)
    return run


def last_for(compose_cfg, logs: Path, *overrides: str) -> Path:
    cfg = compose_cfg("experiment=quick", "ckpt_path=last", f"paths.log_dir={logs}", *overrides)
    return checkpoints.resolve(cfg)


def test_last_is_the_newest_run_with_this_model_and_data(compose_cfg, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    wide = saved_run(compose_cfg, logs, "2026-01-01_10-00-00_aaaaaa", mtime=1)
    narrow = saved_run(
        compose_cfg, logs, "2026-01-02_10-00-00_bbbbbb", "model.channels=[8,16]", mtime=2
    )
    lt = saved_run(compose_cfg, logs, "2026-01-03_10-00-00_cccccc", "data=digits_lt", mtime=3)
    assert last_for(compose_cfg, logs, "data=digits_lt") == lt / "checkpoints" / "last.ckpt"
    assert last_for(compose_cfg, logs, "model.channels=[8,16]").parents[1] == narrow
    # What may change when a run goes on (batch size, learning rate, dropout) does not matter;
    # a kernel size given for every block is the same layout as one value.
    same = last_for(
        compose_cfg, logs, "data.batch_size=32", "model.optimizer.lr=0.1", "model.kernel_size=[3,3]"
    )
    assert same.parents[1] == wide


def test_last_names_the_newest_runs_when_none_matches(compose_cfg, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    saved_run(compose_cfg, logs, "2026-01-01_10-00-00_aaaaaa", mtime=1)
    saved_run(compose_cfg, logs, "2026-01-02_10-00-00_bbbbbb", "data=digits_lt", mtime=2)
    with pytest.raises(FitlabError) as caught:
        last_for(compose_cfg, logs, "model.norm=group")
    message = str(caught.value)
    assert "none of the 2 runs of task 'quick'" in message
    newest, older = message.index("2026-01-02_10-00-00_bbbbbb"), message.index("2026-01-01_")
    assert newest < older  # newest first, each with what differs
    assert "(model.norm=batch, data.imbalance_ratio=" in message
    assert "ckpt_path=RUN/checkpoints/last.ckpt" in message and "\n" not in message


def start(cwd: Path) -> subprocess.Popen:
    cwd.mkdir()
    return subprocess.Popen(
        [sys.executable, "-m", "fitlab.train", *ARGS],
        cwd=cwd,
        env={**cli_env(cwd / "logs"), **ONE_THREAD},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_after_epoch(proc: subprocess.Popen, runs_dir: Path, epoch: int) -> int:
    """SIGKILL ``proc`` as soon as its last.ckpt holds ``epoch``; the epoch it was killed at."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        for last in runs_dir.glob("*/checkpoints/last.ckpt"):
            saved = torch.load(last, weights_only=True)["epoch"]  # written atomically
            if saved >= epoch:
                proc.kill()
                proc.wait()
                return saved
        time.sleep(0.05)
    raise AssertionError(f"the run ended (rc={proc.poll()}) before epoch {epoch} was saved")


def epoch_of(ckpt: Path) -> int:
    return torch.load(ckpt, weights_only=True)["epoch"]


@pytest.mark.slow
def test_killed_and_resumed_run_ends_like_the_uninterrupted_one(tmp_path: Path) -> None:
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert start(whole).wait(timeout=300) == 0
    (reference_run,) = run_dirs(whole / "logs", "quick")
    expected = read_metrics(reference_run)
    # The uninterrupted run stopped early, two epochs after its best, and last.ckpt is its final.
    assert expected["stopped_reason"] == "early_stopping"
    best = epoch_of(Path(expected["best_ckpt_path"]))
    last = epoch_of(reference_run / "checkpoints" / "last.ckpt")
    assert last == best + 2
    victim = start(killed)
    kill_after = kill_after_epoch(victim, killed / "logs" / "quick" / "runs", epoch=best + 1)
    assert victim.returncode == -9 and kill_after == best + 1
    (run,) = run_dirs(killed / "logs", "quick")
    assert not (run / "metrics.json").exists()

    resumed = run_cli("fitlab.train", *ARGS, "ckpt_path=last", cwd=killed, env=ONE_THREAD)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # From the last epoch, not the best one.
    assert f"resuming from last.ckpt (epoch {kill_after})" in resumed.stdout + resumed.stderr
    assert run_dirs(killed / "logs", "quick") == [run]  # continued in its own folder
    got = read_metrics(run)
    # The best checkpoint and its score were restored: the resumed run tested the same epoch.
    assert Path(got.pop("best_ckpt_path")).name == Path(expected.pop("best_ckpt_path")).name
    assert (got.pop("attempts"), expected.pop("attempts")) == (2, 1)
    killed_s = got.pop("wall_time_s")
    assert killed_s > 0 and expected.pop("wall_time_s") > 0
    assert got == expected  # every metric, bit for bit
    assert epoch_of(run / "checkpoints" / "last.ckpt") == last
    # Every epoch in TensorBoard once: what the killed attempt logged after its checkpoint is
    # hidden (purge_step), the resumed attempt logs it again.
    assert scalars(run / "tensorboard") == scalars(reference_run / "tensorboard")
    # The learning curves carry the epochs from before the kill.
    curves = "plots/learning_curves.png"
    assert (run / curves).read_bytes() == (reference_run / curves).read_bytes()

    # The run completed: the same command again trains nothing and says so.
    again = run_cli("fitlab.train", *ARGS, "ckpt_path=last", cwd=killed, env=ONE_THREAD)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"fitlab: {run} completed (early_stopping, trainer.max_epochs=12)" in again.stderr
    assert run_dirs(killed / "logs", "quick") == [run]
    assert read_metrics(run)["attempts"] == 2
    assert epoch_of(run / "checkpoints" / "last.ckpt") == last
    # Asked for more epochs it goes on, in its folder, from where early stopping stood (two
    # epochs without a better loss): one more epoch, then early stopping ends it again.
    more = run_cli(
        "fitlab.train", *ARGS, "ckpt_path=last", "trainer.max_epochs=13", cwd=killed, env=ONE_THREAD
    )
    assert more.returncode == 0, more.stderr[-3000:]
    assert run_dirs(killed / "logs", "quick") == [run]
    longer = read_metrics(run)
    assert longer["attempts"] == 3 and longer["stopped_reason"] == "early_stopping"
    assert epoch_of(run / "checkpoints" / "last.ckpt") == last + 1
    # Its latest attempt had 13: 13 again is not more.
    same = run_cli(
        "fitlab.train", *ARGS, "ckpt_path=last", "trainer.max_epochs=13", cwd=killed, env=ONE_THREAD
    )
    assert "completed (early_stopping, trainer.max_epochs=13)" in same.stderr
    assert read_metrics(run)["attempts"] == 3
