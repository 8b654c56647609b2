"""fitlab-bench at a tiny size: both paths train on the same data and the JSON has its keys."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys

import pytest

from conftest import REPO, cli_env, run_cli

pytestmark = pytest.mark.slow

KEYS = {
    "fitlab_samples_per_s", "plain_samples_per_s", "train_throughput_ratio", "startup_s",
    "fitlab_val_s_per_epoch", "plain_val_s_per_epoch", "val_time_ratio", "default_run_wall_s",
    "peak_memory_mb", "device", "lightning_floor_ratio", "lightning_floor_val_time_ratio",
    "import_s", "train_ratio_per_epoch", "val_ratio_per_epoch", "fitlab_epoch_end_s_per_epoch",
}  # fmt: skip


def test_bench_trains_both_paths_on_the_same_data(tmp_path) -> None:
    out = tmp_path / "bench.json"
    result = run_cli(
        "fitlab.bench", "--epochs", "3", "--warmup-epochs", "1", "--channels", "8", "16",
        "--out", str(out), "--run-overrides", "experiment=quick", "trainer.max_epochs=1",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    bench = json.loads(out.read_text())
    assert set(bench) >= KEYS
    # The ratio is the median of the paired epochs after the one warm-up epoch.
    per_epoch = bench["train_ratio_per_epoch"]
    assert len(per_epoch) == 2
    assert bench["train_throughput_ratio"] == pytest.approx(statistics.median(per_epoch))
    assert len(bench["val_ratio_per_epoch"]) == 2
    assert bench["lightning_floor_ratio"] > 0
    # The same images, each once per epoch, in both paths.
    assert bench["fitlab_labels_seen"] == bench["plain_labels_seen"]
    assert sum(bench["fitlab_labels_seen"]) == 3 * bench["train_samples_per_epoch"]
    # Both trained from the same weights: the loss fell well below chance (ln 10) and agrees.
    fitlab_loss, plain_loss = bench["fitlab_final_train_loss"], bench["plain_final_train_loss"]
    assert max(fitlab_loss, plain_loss) < 0.5 * math.log(10)
    assert fitlab_loss == pytest.approx(plain_loss, rel=0.5, abs=0.05)
    assert bench["import_s"] > 0 and 0 < bench["startup_s"] < bench["default_run_wall_s"]
    assert "train samples/s" in result.stdout


def test_hook_costs_times_every_per_step_hook(tmp_path) -> None:
    """scripts/hook_costs.py (README, "Performance"): the callbacks' hooks and the dispatch."""
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
