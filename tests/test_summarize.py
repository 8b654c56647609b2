"""``fitlab-summarize``: runs found by their metrics.json, swept keys, mean +- std over seeds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from rich.console import Console

from conftest import run_cli
from fitlab.summarize import summarize


def write_run(folder: Path, overrides: list[str], metrics: dict, metric="val/acc") -> None:
    """A run folder as fitlab-train leaves it, reduced to what the summary reads."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / ".hydra" / "config.yaml").write_text(f"optimized_metric: {metric}\nseed: 1\n")
    (folder / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A 2 x 3 multirun: model.norm x seed, jobs 0..5 (job 10 sorts after job 9)."""
    root = tmp_path / "multiruns" / "stamp"
    accuracy = {"batch": [0.90, 0.92, 0.94], "group": [0.80, 0.81, 0.82]}
    job = 0
    for norm, values in accuracy.items():
        for seed, value in enumerate(values, start=1):
            overrides = ["experiment=quick", f"model.norm={norm}", f"seed={seed}"]
            write_run(root / str(job), overrides, {"val/acc": value, "test/acc": value - 0.1})
            job += 1
    return root


def test_one_row_per_run_with_overrides_and_metrics(sweep: Path) -> None:
    console = Console(record=True, width=200)
    runs = summarize(sweep, console)
    assert [r.path for r in runs] == ["0", "1", "2", "3", "4", "5"]
    with (sweep / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["model.norm"], r["seed"], r["val/acc"]) for r in rows[:2]] == [
        ("batch", "1", "0.9"),
        ("batch", "2", "0.92"),
    ]
    assert rows[5]["test/acc"] == "0.72" and rows[5]["experiment"] == "quick"
    text = console.export_text()
    assert "6 runs under" in text and "model.norm" in text and "0.94" in text


def test_mean_and_std_over_seeds_per_swept_value(sweep: Path) -> None:
    summarize(sweep, Console(quiet=True))
    markdown = (sweep / "summary.md").read_text()
    assert "Common overrides: `experiment=quick`" in markdown
    assert "| batch | 3 | 0.9200 +- 0.0200 |" in markdown
    assert "| group | 3 | 0.8100 +- 0.0100 |" in markdown
    assert (sweep / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_empty_folder_is_a_one_line_error(tmp_path: Path) -> None:
    result = run_cli("fitlab.summarize", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"fitlab: error: no run under {tmp_path} (no metrics.json); pass a folder that holds "
        "finished runs"
    ]


def test_hydra_full_error_shows_the_traceback_and_still_exits_2(tmp_path, monkeypatch, capsys):
    from fitlab.summarize import main

    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(SystemExit) as exited:
        main([str(tmp_path)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "fitlab.errors.FitlabError: no run" in err
