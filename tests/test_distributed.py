"""DDP through the real entry point: two CPU processes, one run folder, synced metrics.

Both runs use an odd test set (361 images on 2 ranks) and an effective batch of 64 from
micro-batches of 16: 16 x 2 processes x 2 accumulation steps.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from conftest import QUICK, read_metrics, run_cli, run_dirs

pytestmark = pytest.mark.slow

TEST_IMAGES = 361  # data.test_fraction=0.2005 of 1,797 digits
DDP = (
    *QUICK,
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=6",
    "++trainer.limit_val_batches=1",
    "data.test_fraction=0.2005",
    "effective_batch_size=64",
    "data.batch_size=16",
)
RUN_FILES = {".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", "quick.log"}
RUN_FILES |= {"metrics.json", "tensorboard/hparams.yaml", "checkpoints/last.ckpt"}
RUN_FILES |= {f"plots/{p}_{s}.png" for p in ("confusion_matrix", "roc") for s in ("val", "test")}


@pytest.fixture(scope="module", params=["trainer=ddp_sim", "trainer=ddp"])
def ddp_run(request, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(cwd, run folder) of one run: ddp_sim spawns 2 processes, ddp re-launches the script."""
    cwd = tmp_path_factory.mktemp("ddp")
    # The CSV logger as well: under ddp_sim it crashed at test time (fit and test run in fresh
    # processes, each from the main process's copy of the logger).
    strategy = [request.param, "logger=[tensorboard,csv]"]
    strategy += ["trainer.devices=2"] if request.param == "trainer=ddp" else []
    result = run_cli("fitlab.train", *DDP, *strategy, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "effective batch size 64 = 16 per device x 2 device(s)" in result.stdout + result.stderr
    (run,) = run_dirs(cwd / "logs", "quick")  # one folder for both ranks
    (run / "console.txt").write_text(result.stdout + result.stderr)  # for the tests below
    return cwd, run


def test_rank_zero_alone_writes_the_run_folder(ddp_run: tuple[Path, Path]) -> None:
    cwd, run = ddp_run
    assert [p.name for p in cwd.iterdir()] == ["logs"]  # nothing written beside the logs
    assert [p.relative_to(cwd) for p in (cwd / "logs").rglob("*") if p.is_dir()][:3] == [
        Path("logs/quick"),
        Path("logs/quick/runs"),
        run.relative_to(cwd),
    ]
    files = {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}
    assert files >= RUN_FILES
    assert not [f for f in files if f.endswith(".log") and f != "quick.log"]  # no per-rank logs
    assert len([f for f in files if f.startswith("checkpoints/")]) == 2  # best and last


def test_rank_zero_prints_into_the_run_log_and_nothing_a_user_cannot_act_on(
    ddp_run: tuple[Path, Path],
) -> None:
    """ddp_sim's ranks are spawned processes without Hydra's logging: rank zero's tables and
    messages reach the log file all the same, once; Lightning's sync_dist advice (fitlab's
    epoch values are synced already) and the gloo ranks' exit are not on the console."""
    _, run = ddp_run
    log = (run / "quick.log").read_text()
    assert log.count("Test metrics per class") == 1
    assert log.count("fit diagnosis of the final weights") == 1
    assert log.count("Restoring states from the checkpoint path") == 1
    console = (run / "console.txt").read_text()
    assert "sync_dist=True" not in console
    assert "terminate called" not in console


def test_metrics_are_synced_and_count_every_test_image_once(ddp_run: tuple[Path, Path]) -> None:
    metrics = read_metrics(ddp_run[1])
    assert metrics["world_size"] == 2
    assert metrics["accumulate_grad_batches"] == 2
    assert metrics["effective_batch_size"] == 64
    # Correct answers over 361 images: a whole number. Padding to 362 (one image twice) would
    # give k/362, which times 361 is a whole number only for k = 0 or 362.
    correct = metrics["test/acc"] * TEST_IMAGES
    assert 0 < metrics["test/acc"] < 1
    assert correct == pytest.approx(round(correct), abs=1e-3)
    # The fit diagnosis reaches metrics.json from spawned workers too (ddp_sim is ddp_spawn).
    assert metrics["fit/verdict"] in ("underfit", "overfit", "good")
    assert metrics["fit/test_error"] == pytest.approx(1 - metrics["test/acc"])


def test_an_effective_batch_that_does_not_divide_stops_before_training(tmp_path: Path) -> None:
    result = run_cli(
        "fitlab.train", *QUICK, "effective_batch_size=50", "data.batch_size=16", cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "fitlab: error: effective_batch_size=50 is not a multiple of data.batch_size x devices "
        "x nodes = 16 x 1 = 16; use a multiple of 16 (16, 32, 64, 128, ...) or change "
        "data.batch_size"
    ]
    assert not list((tmp_path / "logs").rglob("*.ckpt"))


def test_the_csv_log_keeps_fit_and_test_rows(ddp_run: tuple[Path, Path]) -> None:
    _, run = ddp_run
    assert read_metrics(run)["status"] == "completed"
    with (run / "csv" / "metrics.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert any(row.get("train/loss") for row in rows) and any(row.get("val/loss") for row in rows)
    assert any(row.get("test/loss") for row in rows)  # fit's rows kept, the test's added
