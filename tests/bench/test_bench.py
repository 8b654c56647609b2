"""fitlab-bench at a tiny size: both paths train on the same data and the JSON has its keys.

``fitlab-bench`` runs in this process (``conftest.call_entry``): what it times as processes
(``fitlab-train``, its twin, the imports) it starts as processes itself; the tests check what its
JSON and table say, not its own process.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.utils import instantiate

from conftest import REPO, call_entry, cli_env
from fitlab.bench import main as fitlab_bench
from fitlab.bench.twin import run_overrides

pytestmark = pytest.mark.slow

KEYS = {
    "fitlab_samples_per_s", "plain_samples_per_s", "train_throughput_ratio", "startup_s",
    "fitlab_val_s_per_epoch", "plain_val_s_per_epoch", "val_time_ratio", "default_run_wall_s",
    "peak_memory_mb", "device", "lightning_floor_ratio", "lightning_floor_val_time_ratio",
    "import_s", "train_ratio_per_epoch", "val_ratio_per_epoch", "fitlab_epoch_end_s_per_epoch",
    "fitlab_vs_floor_ratio",
}  # fmt: skip


def run_bench(argv: list[str], cwd: Path, monkeypatch) -> None:
    """Run ``fitlab-bench argv`` in cwd; the processes it starts get ``run_cli``'s environment."""
    env = cli_env(cwd / "logs")
    monkeypatch.setenv("PYTHONPATH", env["PYTHONPATH"])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    call_entry(fitlab_bench, argv, cwd, monkeypatch)


def test_bench_trains_both_paths_on_the_same_data(tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "bench.json"
    argv = ["--epochs", "3", "--warmup-epochs", "1", "--channels", "8", "16", "--out", str(out),
            "--run-overrides", "experiment=quick", "trainer.max_epochs=1"]  # fmt: skip
    run_bench(argv, tmp_path, monkeypatch)
    bench = json.loads(out.read_text())
    assert set(bench) >= KEYS
    # The ratio is the median of the paired epochs after the one warm-up epoch.
    per_epoch = bench["train_ratio_per_epoch"]
    assert len(per_epoch) == 2
    assert bench["train_throughput_ratio"] == pytest.approx(statistics.median(per_epoch))
    assert len(bench["val_ratio_per_epoch"]) == 2
    assert bench["lightning_floor_ratio"] > 0
    floor_share = bench["train_throughput_ratio"] / bench["lightning_floor_ratio"]
    assert bench["fitlab_vs_floor_ratio"] == pytest.approx(floor_share)
    # The same images, each once per epoch, in both paths.
    assert bench["fitlab_labels_seen"] == bench["plain_labels_seen"]
    assert sum(bench["fitlab_labels_seen"]) == 3 * bench["train_samples_per_epoch"]
    # Both trained from the same weights: the loss fell well below chance (ln 10) and agrees.
    fitlab_loss, plain_loss = bench["fitlab_final_train_loss"], bench["plain_final_train_loss"]
    assert max(fitlab_loss, plain_loss) < 0.5 * math.log(10)
    assert fitlab_loss == pytest.approx(plain_loss, rel=0.5, abs=0.05)
    assert bench["import_s"] > 0 and 0 < bench["startup_s"] < bench["default_run_wall_s"]
    assert "train samples/s" in capsys.readouterr().out


WHOLE_RUN_KEYS = {
    "whole_run_fitlab_wall_s", "whole_run_twin_wall_s", "whole_run_ratio", "whole_run_per_pair",
    "whole_run_phases", "whole_run_phases_wall_s", "whole_run_fitlab_images",
    "whole_run_twin_images", "whole_run_validation_s_per_epoch", "whole_run_twin_phases",
}  # fmt: skip
# What a user asks where the time goes: each is a phase of its own.
PHASES = {
    "startup_and_imports", "config_composition", "build_data_and_model", "model_summary",
    "train_steps", "validation", "plots", "fit_diagnosis", "checkpointing", "logging", "test",
    "exit",
}  # fmt: skip
TWIN_PHASES = {
    "startup_and_imports", "config_composition", "build_data_and_model", "train_steps",
    "validation", "checkpointing", "test", "exit",
}  # fmt: skip


def test_whole_run_times_fitlab_train_against_its_twin(
    tmp_path, compose_cfg, monkeypatch, capsys
) -> None:
    out = tmp_path / "whole.json"
    argv = ["--whole-run", "--pairs", "2", "--whole-run-epochs", "1", "--out", str(out),
            "--run-overrides", "experiment=quick"]  # fmt: skip
    run_bench(argv, tmp_path, monkeypatch)
    bench = json.loads(out.read_text())
    assert set(bench) >= WHOLE_RUN_KEYS
    pairs = bench["whole_run_per_pair"]
    assert [pair["first"] for pair in pairs] == ["fitlab", "twin"]
    fitlab = statistics.median(pair["fitlab_wall_s"] for pair in pairs)
    twin = statistics.median(pair["twin_wall_s"] for pair in pairs)
    assert bench["whole_run_fitlab_wall_s"] == pytest.approx(fitlab)
    assert bench["whole_run_twin_wall_s"] == pytest.approx(twin)
    assert bench["whole_run_ratio"] == pytest.approx(fitlab / twin)
    # Both trained, validated and tested on the same images, each once an epoch, and learned.
    images = bench["whole_run_fitlab_images"]
    datamodule = instantiate(compose_cfg(*run_overrides(1, 42, ["experiment=quick"])).data)
    datamodule.setup("fit")
    assert images == {split: len(data) for split, data in datamodule.splits.items()}
    assert all(pair["twin_images"] == images for pair in pairs)
    for pair in pairs:
        assert 0.5 < pair["fitlab_test_acc"] <= 1 and 0.5 < pair["twin_test_acc"] <= 1
    # The phases of the profiled run: each measured, none counted twice.
    phases = bench["whole_run_phases"]
    assert set(phases) >= PHASES
    assert all(seconds > 0 for seconds in phases.values()), phases
    assert sum(phases.values()) <= bench["whole_run_phases_wall_s"]
    assert len(bench["whole_run_validation_s_per_epoch"]) == 1
    twin_phases = bench["whole_run_twin_phases"]
    assert set(twin_phases) == TWIN_PHASES and min(twin_phases.values()) > 0, twin_phases
    printed = capsys.readouterr().out
    assert "fitlab / twin" in printed and "plots" in printed


def test_hook_costs_times_every_per_step_hook(tmp_path) -> None:
    """scripts/hook_costs.py (docs/performance.md): the callbacks' hooks and the dispatch."""
    script = str(REPO / "scripts" / "hook_costs.py")
    quick = ("experiment=quick", "trainer.max_epochs=1", "trainer.min_epochs=1")
    default = subprocess.run(
        [sys.executable, script, *quick], cwd=tmp_path, env=cli_env(tmp_path / "logs"),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert default.returncode == 0, default.stderr[-3000:]
    costs = hook_costs(default.stdout)
    for label in (
        "Classifier.training_step",
        "Lightning dispatch: on_train_batch_end",
        "StopOnNonFiniteLoss.on_before_backward",
        "ThrottledRichProgressBar.on_train_batch_end",
        "ModelCheckpoint.on_train_batch_end",
    ):
        assert costs[label] > 0, label
    bare = subprocess.run(
        [sys.executable, script, *quick, "callbacks=none", "logger=none"], cwd=tmp_path,
        env=cli_env(tmp_path / "logs"), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert bare.returncode == 0, bare.stderr[-3000:]
    assert "StopOnNonFiniteLoss.on_before_backward" not in hook_costs(bare.stdout)


def hook_costs(stdout: str) -> dict[str, float]:
    """{label: us per step} from the script's table."""
    rows = stdout.split("median per call)\n", 1)[1].splitlines()
    return {row.split("us/call", 1)[1].strip(): float(row.split()[0]) for row in rows if row}
