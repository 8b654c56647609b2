"""Hydra sweeps through the real entry point: multirun, Optuna, submitit; the summary and what
TensorBoard shows of a sweep (HPARAMS, SCALARS, IMAGES).

Each sweep runs 2 tiny jobs (one epoch of 3 batches) and must leave exactly one multirun folder
with one job folder per point, and nothing anywhere else. The multirun and Optuna sweeps run in
this process (``conftest.call_entry``; Hydra's basic launcher runs their jobs in it one after the
other); the submitit sweep stays a real ``fitlab-train`` process, whose jobs the launcher starts
as processes of their own from its pickle.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from rich.console import Console

from conftest import QUICK, call_entry, read_metrics, run_cli
from fitlab import train as fitlab_train
from fitlab.summarize import summarize
from tensorboard_server import polled, tensorboard

pytestmark = pytest.mark.slow

TINY = (
    *QUICK,
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=3",
    "++trainer.limit_val_batches=1",
    "++trainer.limit_test_batches=1",
)
JOB_FILES = {".hydra/config.yaml", ".hydra/overrides.yaml", "quick.log", "metrics.json"}


def sweep(
    cwd: Path, *overrides: str, callbacks: str = "none", monkeypatch: pytest.MonkeyPatch | None
) -> Path:
    """Run ``fitlab-train -m`` with ``overrides``, in this process given ``monkeypatch``, else as
    a process of its own; return the one multirun folder it made."""
    argv = ["-m", *TINY, f"callbacks={callbacks}", *overrides]
    if monkeypatch is not None:
        monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
        call_entry(fitlab_train.main, argv, cwd, monkeypatch)  # exit 1 if a job failed
    else:
        result = run_cli("fitlab.train", *argv, cwd=cwd)
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
        # The events sit in tensorboard/<swept overrides>/: TensorBoard names the run by them.
        (events,) = {p.parent for p in (job / "tensorboard").rglob("events.out.tfevents.*")}
        assert events.parent == job / "tensorboard", job
        overrides = OmegaConf.load(job / ".hydra" / "overrides.yaml")
        for part in events.name.split(","):  # l2=0.0001 for model.l2=0.0001
            assert any(re.fullmatch(rf"(.*[./])?{re.escape(part)}", o) for o in overrides), job


@pytest.fixture(scope="module")
def multirun(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``-m seed=1,2`` with micro-batches of 16 accumulated to an effective batch of 64, and the
    default callbacks (the fit diagnosis, the plots) for TensorBoard to show."""
    cwd = tmp_path_factory.mktemp("multirun")
    overrides = ("seed=1,2", "effective_batch_size=64", "data.batch_size=16")
    with pytest.MonkeyPatch.context() as mp:
        return sweep(cwd, *overrides, callbacks="default", monkeypatch=mp)


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


def png_width(png: bytes) -> int:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(png[16:20], "big")  # IHDR: width, then height


STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]
ROWS = {"experimentName": "", "allowedStatuses": STATUSES, "colParams": []}
ROWS |= {"startIndex": 0, "sliceSize": 10}
# What the HPARAMS tab asks for (tensorboard's tf-hparams-query-pane): its columns in its order.
COLUMNS = {"experimentName": "", "hparamsLimit": 1000}


def test_tensorboard_shows_the_sweep(multirun: Path) -> None:
    """Ask a real TensorBoard server on the sweep folder what its tabs show: HPARAMS one row
    per job named by its swept override, the swept key marked as differing, no constant of the
    sweep, the deciding metrics in order; no threshold as a SCALARS curve; IMAGES big enough."""
    with tensorboard(multirun) as ask:
        groups = polled(
            lambda: json.loads(ask("hparams/session_groups", ROWS))["sessionGroups"],
            lambda groups: len(groups) == 2 and all(g["metricValues"] for g in groups),
        )
        experiment = json.loads(ask("hparams/experiment", COLUMNS))
        scalars = json.loads(ask("scalars/tags"))
        images = polled(lambda: json.loads(ask("images/tags")), lambda tags: len(tags) == 2)
        widths = {}
        for run, tags in images.items():
            for tag in tags:
                query = f"run={urllib.parse.quote(run)}&tag={urllib.parse.quote(tag)}&sample=0"
                (last, *_) = reversed(json.loads(ask(f"images/images?{query}")))
                widths[run, tag] = png_width(ask(f"images/individualImage?{last['query']}"))

    hparams = [h["name"] for h in experiment["hparamInfos"]]
    assert hparams == [
        "seed", "data", "data.batch_size", "fit/verdict", "model", "model.optimizer.lr"
    ]  # fmt: skip
    assert [h["name"] for h in experiment["hparamInfos"] if h.get("differs")] == ["seed"]
    metrics = [m["name"]["tag"] for m in experiment["metricInfos"]]
    assert metrics == [
        "val/loss_best", "test/acc", "test/balanced_acc", "test/f1_macro",
        "fit/train_error", "fit/val_error", "val/loss",
    ]  # fmt: skip

    assert len(groups) == 2
    for group in groups:
        (session,) = group["sessions"]
        job = multirun / session["name"].split("/")[0]
        record = read_metrics(job)
        (swept,) = [line for line in (job / ".hydra" / "overrides.yaml").read_text().split()
                    if line.startswith("seed=")]  # fmt: skip
        assert group["name"] == swept  # the row is named by its override, not its job number
        assert group["hparams"]["seed"] == int(swept.removeprefix("seed="))
        assert group["hparams"]["data.batch_size"] == 16
        assert group["hparams"]["fit/verdict"] == record["fit/verdict"]
        shown = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        assert shown == pytest.approx({name: record[name] for name in metrics})

    # SCALARS and IMAGES name each job's run by its swept override as well.
    assert sorted(scalars) == sorted(images) == ["0/tensorboard/seed=1", "1/tensorboard/seed=2"]
    for run, tags in scalars.items():
        assert "fit/train_error" in tags, run
        assert not {"fit/gap", "fit/target_error", "epoch"} & set(tags), run
    for tags in images.values():
        assert {"confusion_matrix/test", "roc/test", "learning_curves"} <= set(tags)
    assert min(widths.values()) >= 400, widths


def test_optuna_search_runs_its_trials(tmp_path: Path, monkeypatch) -> None:
    trials = ("hparams_search=digits_optuna", "hydra.sweeper.n_trials=2")
    folder = sweep(tmp_path, *trials, monkeypatch=monkeypatch)
    assert_job_folders(folder, 2)
    results = (folder / "optimization_results.yaml").read_text()
    best = min(read_metrics(job)["val/loss_best"] for job in jobs(folder))  # minimised
    assert f"best_value: {best}" in results
    swept = [(job / ".hydra" / "overrides.yaml").read_text() for job in jobs(folder)]
    assert all("model.optimizer.lr=" in text for text in swept) and swept[0] != swept[1]


def test_submitit_local_sweep(tmp_path: Path) -> None:
    folder = sweep(tmp_path, "hydra/launcher=submitit_local", "seed=1,2", monkeypatch=None)
    assert_job_folders(folder, 2)
    assert (folder / ".submitit").is_dir()  # the launcher's own job logs, beside the jobs
    assert {read_metrics(job)["world_size"] for job in jobs(folder)} == {1}
