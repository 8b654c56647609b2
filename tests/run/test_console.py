"""What a run prints: no message a user cannot act on, one rounded test table, the model summary
unwrapped in every job of a multirun, and all of it (bars aside) in the run's log file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import QUICK, cli_env, run_dirs

pytestmark = pytest.mark.slow

SHORT = (*QUICK, "trainer.max_epochs=1", "+trainer.limit_train_batches=2")
NOISE = (
    "litlogger",  # Lightning's cloud-logger tip
    "The `srun` command is available",  # Lightning's SLURM hint, whenever srun is on PATH
    "LeafSpec",  # Lightning's use of a deprecated torch API
    "setup plugin alembic",  # optuna's alembic, on sweeps
    "Grad strides do not match",  # DDP
    "Please add the following callbacks",  # fitlab-eval of a training checkpoint
)
PROGRESS = re.compile(r"(Epoch \d+/\d+|Validation|Testing|Sanity Checking)\s+━")


def run_module(module: str, *overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m module`` as a user starts it on a machine that has SLURM's tools but is not
    in a SLURM job, its output a pipe (no terminal) with no COLUMNS set."""
    env = {k: v for k, v in cli_env(cwd / "logs").items()
           if k != "COLUMNS" and not k.startswith("SLURM_")}  # fmt: skip
    tools = cwd / "bin"
    tools.mkdir(exist_ok=True)
    (tools / "srun").write_text("#!/bin/sh\nexit 1\n")
    (tools / "srun").chmod(0o755)
    env["PATH"] = f"{tools}{os.pathsep}{env['PATH']}"
    command = [sys.executable, "-m", module, *overrides]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    return result


def noise_in(result: subprocess.CompletedProcess) -> list[str]:
    lines = (result.stdout + result.stderr).splitlines()
    return [line for line in lines if any(noise in line for noise in NOISE)]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    cwd = tmp_path_factory.mktemp("short")
    result = run_module("fitlab.train", *SHORT, cwd=cwd)
    return result, run_dirs(cwd / "logs", "quick")[-1]


def test_a_short_run_prints_no_noise_and_one_rounded_test_table(short_run) -> None:
    result, _ = short_run
    assert noise_in(result) == []
    assert result.stdout.count("Test metrics per class") == 1
    assert "DataLoader 0" not in result.stdout  # Lightning's own test table
    assert re.search(r"│ test/acc\s+│\s+│ \d\.\d{4} │", result.stdout)
    assert not re.findall(r"\d\.\d{7,}", result.stdout)  # 0.18611110746860504 and the like


def test_the_log_file_holds_what_the_console_showed_but_the_bars(short_run) -> None:
    result, run = short_run
    log = (run / "quick.log").read_text()
    lines = set(log.splitlines())
    shown = [line.rstrip() for line in result.stdout.splitlines() if line.strip()]
    assert [line for line in shown if not PROGRESS.search(line) and line not in lines] == []
    assert not PROGRESS.search(log)
    for table in ("Images per class", "┃ Name", "Total params", "Test metrics per class"):
        assert table in log
    warned = [line for line in result.stderr.splitlines() if line.strip()]
    assert warned  # the run is shorter than log_every_n_steps: Lightning says so
    assert [line for line in warned if not any(seen.endswith(line) for seen in lines)] == []


def test_eval_prints_one_table_and_no_list_of_callbacks(short_run, tmp_path: Path) -> None:
    _, run = short_run
    ckpt = run / "checkpoints" / "last.ckpt"
    result = run_module("fitlab.eval", *QUICK, f"ckpt_path={ckpt}", cwd=tmp_path)
    assert noise_in(result) == []
    assert result.stdout.count("Test metrics per class") == 1
    assert "DataLoader 0" not in result.stdout


def test_a_sweep_is_quiet_and_its_second_job_has_the_whole_summary(tmp_path: Path) -> None:
    """Two Optuna trials: one multirun of two jobs in one process."""
    sweep = ("hparams_search=digits_optuna", "hydra.sweeper.n_trials=2")
    result = run_module("fitlab.train", *sweep, *SHORT, cwd=tmp_path)
    assert noise_in(result) == []
    (best,) = re.findall(r"Best value: (\S+)$", result.stdout, re.MULTILINE)
    assert re.fullmatch(r"-?\d*\.?\d{0,4}(e[+-]\d+)?", best), best  # rounded when printed
    second = result.stdout.split("[HYDRA] \t#1 : ", 1)[1]
    header = next(line for line in second.splitlines() if "┃ Name" in line)
    assert "Params" in header and "In sizes" in header and "Out sizes" in header, header
    summary = second[second.index(header) : second.index("Total FLOPs")].splitlines()
    assert max(map(len, summary)) > 80  # not squeezed into 80 columns
