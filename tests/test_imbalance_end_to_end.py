"""``fitlab-train data=digits_lt resampler=<each>``, in one process and under ``trainer=ddp_sim``.

Each resampler runs as one job of a Hydra multirun, in this process (``conftest.call_entry``):
Hydra's basic launcher runs the jobs one after the other. Under DDP, each rank records the labels
it trained on; they must be exactly that rank's share of the one sample every rank draws
(docs/imbalance.md, "Under DDP"): that sweep stays a real ``fitlab-train`` process, whose ranks
are processes of their own.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DistributedSampler

from conftest import REPO, SRC, call_entry, read_metrics, run_cli
from fitlab import train as fitlab_train
from fitlab.run.config import compose_config

pytestmark = pytest.mark.slow

RESAMPLERS = ["none", "random_over", "random_under", "smote", "adasyn", "near_miss", "tomek",
              "weighted"]  # fmt: skip
# A small, fast run: one block, two epochs, no figures but the ones under test.
FAST = ("data=digits_lt", "trainer.accelerator=cpu", "trainer.max_epochs=2",
        "model.channels=[8]", "callbacks.plots=null", "callbacks.rich_model_summary=null",
        "callbacks.rich_progress_bar=null")  # fmt: skip
# Under DDP: the sampler-level remedy, and a data-set-level one that synthesises every epoch.
DDP_RESAMPLERS = ["weighted", "smote"]
REDRAW = ("++resampler.redraw_every_epoch=true",)


def jobs(cwd: Path, task: str) -> dict[str, Path]:
    """Job folders of the one multirun under cwd, by the resampler each ran."""
    (sweep,) = (cwd / "logs" / task / "multiruns").iterdir()
    runs = {}
    for job in (p for p in sweep.iterdir() if (p / ".hydra").is_dir()):
        overrides = OmegaConf.load(job / ".hydra" / "overrides.yaml")
        (choice,) = (o.split("=", 1)[1] for o in overrides if o.startswith("resampler="))
        runs[choice] = job
    return runs


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], str]:
    """(job folders by resampler, what the sweep printed on stdout)."""
    cwd = tmp_path_factory.mktemp("imbalance_sweep")
    argv = ["-m", *FAST, "trainer.max_epochs=1", "task_name=lt",
            f"resampler={','.join(RESAMPLERS)}"]  # fmt: skip
    printed = io.StringIO()  # not a terminal, as a pipe: rich prints 160 columns to both
    try:
        with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
            mp.delenv("HYDRA_FULL_ERROR", raising=False)
            call_entry(fitlab_train.main, argv, cwd, mp)  # exit 1 if a job failed
    finally:
        sys.stdout.write(printed.getvalue())  # pytest shows it if the sweep failed
    return jobs(cwd, "lt"), printed.getvalue()


def test_every_resampler_trains_and_tests_end_to_end(sweep) -> None:
    runs, stdout = sweep
    assert sorted(runs) == sorted(RESAMPLERS)
    for name, run in runs.items():
        metrics = read_metrics(run)
        assert metrics["stopped_reason"] == "max_epochs", name
        for c in range(10):  # digits' classes are named "0" .. "9"
            assert 0.0 <= metrics[f"test/recall/{c}"] <= 1.0, (name, c)
            assert 0.0 <= metrics[f"test/precision/{c}"] <= 1.0, (name, c)
        # Balanced accuracy is the mean of the per-class recalls.
        recall = [metrics[f"test/recall/{c}"] for c in range(10)]
        assert metrics["test/balanced_acc"] == pytest.approx(sum(recall) / 10, abs=1e-5), name
    assert stdout.count("Test metrics per class") == len(RESAMPLERS)
    assert stdout.count("Images per class") == len(RESAMPLERS)


def test_class_counts_reach_tensorboard_and_plots(sweep) -> None:
    runs, _ = sweep
    for name in ("none", "smote"):
        events = EventAccumulator(
            str(runs[name] / "tensorboard" / f"resampler={name}"), size_guidance={"images": 0}
        )
        events.Reload()
        assert "class_counts" in events.Tags()["images"], name
        png = runs[name] / "plots" / "class_counts.png"
        assert png.read_bytes()[:4] == b"\x89PNG", name


@pytest.fixture(scope="module")
def ddp_sweep(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    cwd = tmp_path_factory.mktemp("imbalance_ddp")
    env = {"PYTHONPATH": os.pathsep.join([str(SRC), str(REPO / "tests")])}
    result = run_cli(
        "fitlab.train", "-m", *FAST, "trainer=ddp_sim", "task_name=lt_ddp", "seed=3",
        f"resampler={','.join(DDP_RESAMPLERS)}", *REDRAW, "test=false",
        "+callbacks.record._target_=record_batches.RecordBatches",
        "+callbacks.record.out_dir=${paths.output_dir}/batches",
        cwd=cwd, env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return jobs(cwd, "lt_ddp")


def drawn_labels(resampler: str, epochs: int) -> dict[tuple[int, int], list[int]]:
    """What each of 2 ranks must train on: its positions of the one sample every rank draws.

    Lightning hands each rank a DistributedSamplerWrapper over our sampler: it shuffles the
    positions with the run's seed and the epoch, pads them to an even count and gives rank r
    every second one. The sample itself is drawn once here, as every rank draws it.
    """
    cfg = compose_config([*FAST, f"resampler={resampler}", "seed=3", *REDRAW])
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    expected = {}
    for epoch in range(epochs):
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)  # what Lightning does before every epoch
        sample = datamodule.train_set.labels[torch.as_tensor(list(loader.sampler))]
        for rank in (0, 1):
            share = DistributedSampler(range(len(sample)), 2, rank, shuffle=True, seed=3)
            share.set_epoch(epoch)
            expected[rank, epoch] = sample[torch.as_tensor(list(share))].tolist()
    return expected


@pytest.mark.parametrize("resampler", DDP_RESAMPLERS)
def test_each_ddp_rank_trains_on_its_share_of_one_shared_draw(ddp_sweep, resampler) -> None:
    run = ddp_sweep[resampler]
    assert read_metrics(run)["world_size"] == 2
    expected = drawn_labels(resampler, epochs=2)
    for (rank, epoch), labels in expected.items():
        recorded = json.loads((run / "batches" / f"rank{rank}_epoch{epoch}.json").read_text())
        assert recorded == labels, (resampler, rank, epoch)
    # A fresh sample each epoch (weighted by nature, smote by redraw_every_epoch).
    assert expected[0, 0] != expected[0, 1]
