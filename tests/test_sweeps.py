"""Hydra sweeps through the real entry point: multirun, Optuna, submitit; the summary and HPARAMS.

Each sweep runs 2 tiny jobs (one epoch of 3 batches) and must leave exactly one multirun folder
with one job folder per point, and nothing anywhere else.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from rich.console import Console

from conftest import QUICK, read_metrics, run_cli
from fitlab.summarize import summarize

pytestmark = pytest.mark.slow

TINY = (
    *QUICK,
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=3",
    "++trainer.limit_val_batches=1",
    "++trainer.limit_test_batches=1",
    "callbacks=none",
)
JOB_FILES = {".hydra/config.yaml", ".hydra/overrides.yaml", "quick.log", "metrics.json"}


def sweep(cwd: Path, *overrides: str) -> Path:
    """Run ``fitlab-train -m`` with ``overrides``; return the one multirun folder it made."""
    result = run_cli("fitlab.train", "-m", *TINY, *overrides, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in cwd.iterdir()) == ["logs"]  # nothing beside the logs
    assert [p.name for p in (cwd / "logs").iterdir()] == ["quick"]
    assert [p.name for p in (cwd / "logs" / "quick").iterdir()] == ["multiruns"]
    (folder,) = (cwd / "logs" / "quick" / "multiruns").iterdir()
    return folder


def jobs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def assert_job_folders(folder: Path, count: int) -> None:
    assert [p.name for p in jobs(folder)] == [str(i) for i in range(count)]
    for job in jobs(folder):
        files = {str(p.relative_to(job)) for p in job.rglob("*") if p.is_file()}
        assert files >= JOB_FILES, job
        assert list((job / "tensorboard").glob("events.out.tfevents.*"))


@pytest.fixture(scope="module")
def multirun(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``-m seed=1,2`` with micro-batches of 16 accumulated to an effective batch of 64."""
    cwd = tmp_path_factory.mktemp("multirun")
    return sweep(cwd, "seed=1,2", "effective_batch_size=64", "data.batch_size=16")


def test_multirun_makes_one_folder_per_job(multirun: Path) -> None:
    assert_job_folders(multirun, 2)
    assert (multirun / "multirun.yaml").is_file()
    for seed, job in enumerate(jobs(multirun), start=1):
        assert f"seed={seed}" in (job / ".hydra" / "overrides.yaml").read_text()
        metrics = read_metrics(job)
        assert metrics["accumulate_grad_batches"] == 4  # 64 / (16 x 1 device)
        assert metrics["effective_batch_size"] == 64


def test_summarize_gives_one_row_per_job(multirun: Path) -> None:
    console = Console(record=True, width=250)
    runs = summarize(multirun, console)
    assert [(r.path, r.overrides["seed"]) for r in runs] == [("0", "1"), ("1", "2")]
    for run in runs:
        assert run.metrics["test/acc"] == read_metrics(multirun / run.path)["test/acc"]
    lines = (multirun / "summary.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("run,") and "test/acc" in lines[0]
    assert "| all runs | 2 |" in (multirun / "summary.md").read_text()
    assert (multirun / "summary.png").stat().st_size > 1000
    assert "2 runs under" in console.export_text()


def test_tensorboard_hparams_tab_lists_every_job(multirun: Path) -> None:
    """Ask a real TensorBoard server what its HPARAMS tab shows for the sweep folder."""
    exe = shutil.which("tensorboard") or str(Path(sys.executable).with_name("tensorboard"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [exe, "--logdir", str(multirun), "--host", "127.0.0.1", "--port", str(port),
         "--load_fast", "false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    statuses = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]
    body = {"experimentName": "", "allowedStatuses": statuses, "colParams": []}
    body |= {"startIndex": 0, "sliceSize": 10}
    try:
        groups: list = []
        deadline = time.monotonic() + 90
        while len(groups) < 2 and time.monotonic() < deadline:
            time.sleep(1)
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/data/plugin/hparams/session_groups",
                    data=json.dumps(body).encode(),
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=10) as response:
                    groups = json.loads(response.read())["sessionGroups"]
            except OSError:
                pass
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert sorted(g["hparams"]["seed"] for g in groups) == [1, 2]
    for group in groups:
        job = multirun / group["name"].split("/")[0]
        shown = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        assert shown["test/acc"] == pytest.approx(read_metrics(job)["test/acc"])
        assert group["hparams"]["effective_batch_size"] == 64
        assert group["hparams"]["accumulate_grad_batches"] == 4


def test_optuna_search_runs_its_trials(tmp_path: Path) -> None:
    folder = sweep(tmp_path, "hparams_search=digits_optuna", "hydra.sweeper.n_trials=2")
    assert_job_folders(folder, 2)
    results = (folder / "optimization_results.yaml").read_text()
    best = min(read_metrics(job)["val/loss_best"] for job in jobs(folder))  # minimised
    assert f"best_value: {best}" in results
    swept = [(job / ".hydra" / "overrides.yaml").read_text() for job in jobs(folder)]
    assert all("model.optimizer.lr=" in text for text in swept) and swept[0] != swept[1]


def test_submitit_local_sweep(tmp_path: Path) -> None:
    folder = sweep(tmp_path, "hydra/launcher=submitit_local", "seed=1,2")
    assert_job_folders(folder, 2)
    assert (folder / ".submitit").is_dir()  # the launcher's own job logs, beside the jobs
    assert {read_metrics(job)["world_size"] for job in jobs(folder)} == {1}
