"""A real `fitlab-train` run and a `fitlab-eval` of its checkpoint, checked as a user would.

The entry points run in this process (``main()`` with ``sys.argv`` set, ``conftest.call_entry``):
nothing here is about the process itself, and each start of one costs seconds of imports.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import QUICK, call_entry, read_metrics, run_dirs
from fitlab import eval as fitlab_eval
from fitlab import train as fitlab_train
from tensorboard_server import polled, tensorboard

pytestmark = pytest.mark.slow

SCALARS = [
    f"{stage}/{name}"
    for stage in ("train", "val", "test")
    for name in ("loss", "acc", "balanced_acc", "f1_macro")
] + ["val/auroc", "test/auroc", "val/loss_best"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run folder of one quick training run (3 epochs)."""
    cwd = tmp_path_factory.mktemp("e2e")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HYDRA_FULL_ERROR", raising=False)
        call_entry(fitlab_train.main, QUICK, cwd, mp)
    (run,) = run_dirs(cwd / "logs", "quick")
    return run


def test_run_folder_holds_what_spec_lists(trained: Path) -> None:
    assert (trained / ".hydra" / "config.yaml").is_file()
    assert (trained / ".hydra" / "overrides.yaml").is_file()
    assert list((trained / "tensorboard").glob("events.out.tfevents.*"))
    ckpts = {p.name for p in (trained / "checkpoints").glob("*.ckpt")}
    assert "last.ckpt" in ckpts and len(ckpts) >= 2
    plots = (
        "confusion_matrix_val",
        "confusion_matrix_test",
        "roc_val",
        "roc_test",
        "pr_val",
        "pr_test",
        "learning_curves",
        "class_counts",
    )
    for name in plots:
        png = trained / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        width, height = Image.open(png).size  # legible in a TensorBoard card, not a thumbnail
        assert 450 <= width <= 800 and 300 <= height <= 700, (name, width, height)


def test_metrics_json_is_flat_and_complete(trained: Path) -> None:
    metrics = read_metrics(trained)
    for key in SCALARS:
        assert 0.0 <= metrics[key] < 100, key
    assert metrics["test/acc"] > 0.8  # three epochs of a small CNN on digits
    assert Path(metrics["best_ckpt_path"]).is_file()
    assert metrics["world_size"] == 1
    assert metrics["accumulate_grad_batches"] == 1
    assert metrics["effective_batch_size"] == 64
    assert metrics["stopped_reason"] == "max_epochs"
    assert metrics["wall_time_s"] > 0
    assert metrics["fit/verdict"] in ("underfit", "overfit", "good")
    assert metrics["fit/test_error"] == pytest.approx(1 - metrics["test/acc"])
    for key in ("fit/train_error", "fit/val_error"):
        assert 0 <= metrics[key] <= 1
    assert all(not isinstance(v, (dict, list)) for v in metrics.values())


def test_eval_reproduces_the_training_test_metrics(
    trained: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    best = read_metrics(trained)["best_ckpt_path"]
    call_entry(fitlab_eval.main, [*QUICK, f"ckpt_path={best}"], tmp_path, monkeypatch)
    (run,) = run_dirs(tmp_path / "logs", "eval")
    evaluated, trained_metrics = read_metrics(run), read_metrics(trained)
    test_keys = [k for k in trained_metrics if k.startswith("test/")]
    assert test_keys
    for key in test_keys:
        assert evaluated[key] == pytest.approx(trained_metrics[key], abs=1e-6), key
    printed = capsys.readouterr().out
    assert f"{trained_metrics['test/acc']:.4f}"[:5] in printed  # fitlab's test table


def test_train_false_tests_the_checkpoint_given(trained: Path, tmp_path: Path, monkeypatch) -> None:
    best = read_metrics(trained)["best_ckpt_path"]
    argv = [*QUICK, "train=false", f"ckpt_path={best}"]
    call_entry(fitlab_train.main, argv, tmp_path, monkeypatch)
    (run,) = run_dirs(tmp_path / "logs", "quick")
    tested, trained_metrics = read_metrics(run), read_metrics(trained)
    assert tested["test/acc"] == pytest.approx(trained_metrics["test/acc"], abs=1e-6)
    assert tested["test/loss"] == pytest.approx(trained_metrics["test/loss"], abs=1e-6)


def test_event_files_hold_scalars_and_images(trained: Path) -> None:
    events = EventAccumulator(str(trained / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()
    for key in SCALARS:
        assert key in tags["scalars"], key
    images = (
        "confusion_matrix/val",
        "confusion_matrix/test",
        "roc/val",
        "roc/test",
        "pr/val",
        "pr/test",
        "learning_curves",
        "class_counts",
    )
    for image in images:
        assert image in tags["images"], image
    val_acc = [e.value for e in events.Scalars("val/acc")]
    assert len(val_acc) == 3  # one per epoch
    # 20 training batches per epoch, logged every 10 steps
    assert [e.step for e in events.Scalars("train/loss_step")] == [9, 19, 29, 39, 49, 59]
    assert any(t.startswith("pr_curve/test/") for t in tags["tensors"])


def test_tensorboard_server_lists_the_run_tags(trained: Path) -> None:
    with tensorboard(trained) as ask:
        tags = polled(
            lambda: json.loads(ask("scalars/tags")),
            lambda tags: tags and "val/acc" in next(iter(tags.values())),
        )
        run_tags = next(iter(tags.values()))
        assert {"val/acc", "test/acc", "train/loss"} <= set(run_tags)
        images = next(iter(json.loads(ask("images/tags")).values()))
        assert {"confusion_matrix/test", "roc/test"} <= set(images)
