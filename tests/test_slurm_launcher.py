"""The cluster path on a real SLURM (tests/slurm_cluster.py): a submitit sweep, an srun DDP job."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import QUICK, cli_env, read_metrics, run_dirs

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

TRAIN = [sys.executable, "-m", "fitlab.train"]


def bounded(cmd: list[str], cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
    """Run cmd; past timeout, SIGTERM it (srun then cancels its step) before the test fails."""
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} still running after {timeout} s:\n{out[-4000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


def test_submitit_sweep_runs_one_slurm_job_per_point(slurm, tmp_path: Path) -> None:
    overrides = ["hydra/launcher=submitit_slurm", "hydra.launcher.gpus_per_node=0"]
    overrides += [*QUICK, "seed=1,2", "trainer.max_epochs=1"]
    env = {**cli_env(tmp_path / "logs"), **slurm.env}
    try:
        result = bounded([*TRAIN, "-m", *overrides], tmp_path, env, timeout=420)
    finally:
        # A job the sweep left behind (it failed or timed out) must not hold the node.
        for folder in tmp_path.glob("logs/quick/multiruns/*/.submitit/*"):
            slurm.run("scancel", folder.name.split("_")[0], check=False)
    assert result.returncode == 0, result.stdout[-4000:]
    (sweep,) = (tmp_path / "logs/quick/multiruns").iterdir()
    jobs = sorted(p for p in sweep.iterdir() if (p / "metrics.json").is_file())
    assert [p.name for p in jobs] == ["0", "1"], result.stdout[-4000:]
    assert all(read_metrics(job)["status"] == "completed" for job in jobs)
    overrides_of = [(job / ".hydra/overrides.yaml").read_text() for job in jobs]
    assert ["seed=1" in text and "seed=2" in text for text in overrides_of] == [False, False]
    assert "seed=1" in overrides_of[0] and "seed=2" in overrides_of[1]


def test_srun_ddp_job_is_one_run_with_world_size_two(slurm, tmp_path: Path) -> None:
    # One task per device, on one node: Lightning's SLURM environment refuses a bare --ntasks.
    srun = ["srun", "-N1", "--ntasks-per-node=2", "--kill-on-bad-exit=1", "--time=10"]
    overrides = [*QUICK, "trainer=ddp", "trainer.devices=2", "trainer.max_epochs=2"]
    env = {**cli_env(tmp_path / "logs"), **slurm.env}
    result = bounded([*srun, *TRAIN, *overrides], tmp_path, env, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:]
    (run,) = run_dirs(tmp_path / "logs", "quick")
    metrics = read_metrics(run)
    assert (metrics["status"], metrics["world_size"]) == ("completed", 2)


def test_fixture_waits_for_a_job_and_shows_a_failed_ones_output(slurm, tmp_path: Path) -> None:
    done = slurm.sbatch("#!/bin/sh\necho hello\n", tmp_path, "--output=ok.out")
    assert slurm.wait(done, timeout=60) == "COMPLETED"
    failed = slurm.sbatch("#!/bin/sh\necho broken-on-purpose\nexit 3\n", tmp_path)
    with pytest.raises(AssertionError, match=r"ended FAILED(?s:.)*broken-on-purpose"):
        slurm.wait(failed, timeout=60)


def test_srun_with_a_bare_task_count_is_one_line_per_rank_before_anything_runs(
    slurm, tmp_path: Path
) -> None:
    env = {**cli_env(tmp_path / "logs"), **slurm.env}
    srun = ["srun", "-n2", "--kill-on-bad-exit=1", "--time=5"]
    result = bounded(
        [*srun, *TRAIN, *QUICK, "trainer=ddp", "trainer.devices=2"], tmp_path, env, 120
    )
    assert result.returncode != 0
    errors = [line for line in result.stdout.splitlines() if line.startswith("fitlab: error:")]
    assert errors and all("--ntasks-per-node" in line for line in errors), result.stdout[-3000:]
    assert "Traceback" not in result.stdout
    assert not (tmp_path / "logs").exists()  # refused before any run folder
