"""A one-task SLURM job (``sbatch`` + ``srun fitlab-train``) that is interrupted mid-run and
requeued ends like the same job never interrupted: one run folder, the same test metrics, every
epoch in TensorBoard and in the CSV once, the attempts counted, no requeue checkpoint left.

Two interruptions, on the real local cluster: SIGUSR1 first (what ``--signal=USR1@120`` sends
before the time limit: fitlab checkpoints at the next batch and requeues), and ``scontrol
requeue`` with no warning (preemption, a node failure: the job resumes from ``last.ckpt``).
"""

from __future__ import annotations

import csv
import re
import shlex
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import SRC, read_metrics
from tensorboard_server import scalars

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# Deterministic on the CPU; batch 16 gives 79 steps an epoch, so a signal lands mid-epoch.
ARGS = (
    "experiment=quick",
    "trainer.accelerator=cpu",
    "trainer.deterministic=true",
    "trainer.max_epochs=5",
    "data.batch_size=16",
    "logger=[tensorboard,csv]",
)

JOB = """#!/bin/bash
#SBATCH --job-name=fitlab-{name}
#SBATCH --output={cwd}/slurm-%j.out
#SBATCH --open-mode=append
#SBATCH --cpus-per-task=1
#SBATCH --requeue
export PYTHONPATH={src} FITLAB_LOG_DIR={cwd}/logs OMP_NUM_THREADS=1
srun {python} -m fitlab.train {args}
"""


def submit(slurm, cwd: Path, name: str) -> str:
    cwd.mkdir()
    args = " ".join(map(shlex.quote, ARGS))
    script = JOB.format(name=name, cwd=cwd, src=SRC, python=sys.executable, args=args)
    return slurm.sbatch(script, cwd, f"--chdir={cwd}")


def run_folder(cwd: Path, job: str) -> Path:
    return cwd / "logs" / "quick" / "runs" / f"slurm{job}.0"


def wait_for_epoch(slurm, job: str, run: Path, epoch: int, timeout: float = 240) -> None:
    """Until the job's ``last.ckpt`` holds ``epoch``, so the interruption comes mid-run."""
    deadline = time.monotonic() + timeout
    last = run / "checkpoints" / "last.ckpt"
    while time.monotonic() < deadline:
        if last.is_file() and torch.load(last, weights_only=True)["epoch"] >= epoch:
            return
        assert slurm.state(job) in ("PENDING", "RUNNING"), slurm.tail(job)
        time.sleep(0.2)
    raise AssertionError(f"job {job} did not save epoch {epoch} in {timeout} s\n{slurm.tail(job)}")


def start_requeued_now(slurm, job: str, timeout: float = 120) -> None:
    """SLURM holds a requeued job for about two minutes (its BeginTime); lift the hold."""
    deadline = time.monotonic() + timeout
    while slurm.job(job).get("Restarts") != "1" or slurm.state(job) != "PENDING":
        assert time.monotonic() < deadline, f"job {job} was not requeued\n{slurm.tail(job)}"
        time.sleep(0.2)
    slurm.run("scontrol", "update", f"JobId={job}", "StartTime=now")


def csv_rows(run: Path) -> list[dict[str, str]]:
    with (run / "csv" / "metrics.csv").open(newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def uninterrupted(slurm, tmp_path_factory) -> Path:
    """The same job, never interrupted (submitted first; waited for by the first test)."""
    cwd = tmp_path_factory.mktemp("requeue") / "whole"
    job = submit(slurm, cwd, "whole")
    yield lambda: (slurm.wait(job, timeout=600), run_folder(cwd, job))[1]


def check_same_as_uninterrupted(run: Path, reference: Path, attempts: int) -> None:
    assert [p.name for p in run.parent.iterdir()] == [run.name]  # one folder, the job's own
    got, expected = read_metrics(run), read_metrics(reference)
    assert (got.pop("attempts"), expected.pop("attempts")) == (attempts, 1)
    assert got.pop("wall_time_s") > 0 and expected.pop("wall_time_s") > 0
    assert Path(got.pop("best_ckpt_path")).name == Path(expected.pop("best_ckpt_path")).name
    assert got["status"] == "completed"
    assert got == expected  # test/loss and every other metric, bit for bit
    assert scalars(run / "tensorboard") == scalars(reference / "tensorboard")
    assert csv_rows(run) == csv_rows(reference)  # every epoch's row once, in order
    assert not list(run.glob("hpc_ckpt_*.ckpt"))  # superseded by a later last.ckpt


@pytest.mark.parametrize(
    ("interrupt", "logged"),
    [
        # The warning: a checkpoint at the next batch end, in the middle of an epoch, or at the
        # epoch's end when it came during the last batch or validation (a short epoch).
        (
            ("scancel", "--signal=USR1"),
            r"saved \S+hpc_ckpt_1\.ckpt and requeued SLURM job(?s:.)*"
            r"attempt 2 of \S+: resuming from hpc_ckpt_1\.ckpt "
            r"\(epoch \d+(, batch \d+ of it done)?\)",
        ),
        # No warning (preemption, a node failure): back to the last epoch's end.
        (("scontrol", "requeue"), r"attempt 2 of \S+: resuming from last\.ckpt \(epoch \d+\)"),
    ],
    ids=["sigusr1", "scontrol_requeue"],
)
def test_an_interrupted_job_ends_like_the_one_never_interrupted(
    slurm, uninterrupted, tmp_path_factory, interrupt: tuple[str, ...], logged: str
) -> None:
    cwd = tmp_path_factory.mktemp("requeue") / interrupt[0]
    job = submit(slurm, cwd, interrupt[0])
    run = run_folder(cwd, job)
    wait_for_epoch(slurm, job, run, epoch=1)
    slurm.run(*interrupt, job)
    start_requeued_now(slurm, job)
    slurm.wait(job, timeout=600)
    log = (cwd / f"slurm-{job}.out").read_text()
    assert re.search(logged, log), log[-3000:]
    assert slurm.job(job)["Restarts"] == "1"
    check_same_as_uninterrupted(run, uninterrupted(), attempts=2)
