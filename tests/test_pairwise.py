"""Every pair of options from two config groups, in short runs through the real `fitlab-train`.

Each option works alone (test_configs, test_end_to_end); some pairs did not. ``pairwise.cover()``
gives ~120 rows in which every pair of options from two axes occurs at least once (the full
product would be millions). Two worker processes run the rows in-process, many each, once per
module; one test per row then reads its record, so a failure names its row. The combinations
that cannot work are refused, and the tests here check that fitlab says so in one line.
"""

from __future__ import annotations

import inspect
import json
import multiprocessing
import pickle
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from torchvision.datasets import MNIST, FashionMNIST

import pairwise
from conftest import call_entry
from fitlab import train as fitlab_train
from fitlab.models.accumulation import planned_world_size
from fitlab.models.metrics import metric_key
from fitlab.run.config import compose_config

pytestmark = pytest.mark.slow

ROWS = {pairwise.row_id(i, row): row for i, row in enumerate(pairwise.cover())}
STAGES = {"train": ("loss", "acc", "balanced_acc", "f1_macro")}
STAGES |= {stage: (*STAGES["train"], "auroc") for stage in ("val", "test")}


def cost(row: dict[str, str]) -> float:
    """Seconds a row takes, roughly: the slow ones start first, so both workers end together."""
    ddp, plots = row["trainer"] == "trainer=ddp_sim", row["callbacks"] == "callbacks=default"
    return 20 * ddp + 4 * plots


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pairwise.write_data(tmp_path_factory.mktemp("pairwise_data"))


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, dict]:
    """Every row run once: name -> exit status, traceback, argv, run folder (two workers)."""
    base = tmp_path_factory.mktemp("pairwise_runs")
    names = sorted(ROWS, key=lambda name: cost(ROWS[name]), reverse=True)
    start = time.perf_counter()
    # spawn: a fresh interpreter, not a fork of pytest; the workers are not daemons, so the
    # ddp_sim rows can start their own processes.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        futures = {
            name: pool.submit(
                pairwise.run_row,
                pairwise.overrides(ROWS[name], data_dir),
                str(base / name),
                ROWS[name]["effective_batch_size"] == pairwise.TWO_STEPS,
            )
            for name in names
        }
        done = {name: future.result() for name, future in futures.items()}
    print(f"\npairwise: {len(done)} rows in {time.perf_counter() - start:.0f} s")
    for name, result in done.items():
        found = list((base / name / "logs").glob("*/runs/*"))
        result["run"] = found[0] if len(found) == 1 else None
        result["console"] = base / name / "console.txt"
    return done


def built(group) -> set[str]:
    """The entries of a callbacks or logger group that are built: those with a ``_target_``
    (an experiment's ``callbacks.early_stopping.patience`` under callbacks=none is not one)."""
    return {name for name, node in (group or {}).items() if node and "_target_" in node}


def console_tail(result: dict, lines: int = 30) -> str:
    text = result["console"].read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def class_names(source: str, data_dir: Path) -> list[str]:
    """The class names as each data set names them, read here, not from fitlab."""
    if source == "digits":
        return [str(c) for c in range(10)]
    if source in ("mnist", "fashion_mnist"):
        return (MNIST if source == "mnist" else FashionMNIST).classes
    if source == "cifar10":
        with (data_dir / "cifar-10-batches-py" / "batches.meta").open("rb") as f:
            return pickle.load(f)["label_names"]
    return sorted(p.name for p in (data_dir / "color_digits").iterdir() if p.is_dir())


@pytest.mark.parametrize("name", list(ROWS))
def test_row(results: dict[str, dict], data_dir: Path, name: str) -> None:
    result = results[name]
    shown = " ".join(result["argv"])
    assert result["rc"] == 0, f"{shown}\n{result['error'] or console_tail(result)}"
    run = result["run"]
    assert run is not None, f"not one run folder: {shown}"
    # The record is the row's: the overrides it ran with (Hydra keeps its own apart).
    ran = [o for o in result["argv"] if not o.startswith("hydra.")]
    assert OmegaConf.load(run / ".hydra" / "overrides.yaml") == ran
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    metrics = json.loads((run / "metrics.json").read_text())
    callbacks, loggers = built(cfg.get("callbacks")), built(cfg.get("logger"))
    fast_dev_run = bool(cfg.trainer.get("fast_dev_run"))

    assert metrics["status"] == "completed" and metrics["attempts"] == 1, shown
    assert metrics["wall_time_s"] > 0
    assert metrics["stopped_reason"] == ("fast_dev_run" if fast_dev_run else "max_epochs")
    for stage, names in STAGES.items():
        for metric in names:
            value = metrics[f"{stage}/{metric}"]
            assert isinstance(value, float) and value >= 0, (stage, metric, value)
    assert f"{cfg.optimized_metric}_best" in metrics
    for class_name in class_names(cfg.data.source, data_dir):
        for kind in ("recall", "precision"):
            assert f"test/{kind}/{metric_key(class_name)}" in metrics, (kind, class_name)
    if "fit_diagnosis" in callbacks:
        assert metrics["fit/verdict"] in ("underfit", "overfit", "good")
        for key in ("fit/train_error", "fit/val_error", "fit/test_error"):
            assert 0 <= metrics[key] <= 1, key
    else:
        assert "fit/verdict" not in metrics

    # The batch: devices x nodes as the config asks, the accumulation that gives the
    # effective batch asked for (2 steps in the rows that ask, 1 otherwise).
    world = planned_world_size(cfg.trainer)
    assert metrics["world_size"] == world
    per_step = cfg.data.batch_size * world
    wanted = cfg.effective_batch_size or per_step
    assert metrics["effective_batch_size"] == wanted
    assert metrics["accumulate_grad_batches"] == wanted // per_step
    if ROWS[name]["effective_batch_size"] == pairwise.TWO_STEPS:
        assert metrics["accumulate_grad_batches"] == 2

    # Checkpoints when a checkpoint callback ran: last.ckpt and the best one; none under
    # fast_dev_run, a smoke test that keeps nothing.
    if "model_checkpoint" in callbacks:
        assert (run / "checkpoints" / "last.ckpt").is_file() != fast_dev_run
        best = metrics["best_ckpt_path"]
        assert (best is None) == fast_dev_run, best
        for path in [best] * (not fast_dev_run):
            assert Path(path).parent == run / "checkpoints"
            ckpt = torch.load(path, weights_only=True, map_location="cpu")
            assert {"state_dict", "epoch", "global_step", "pytorch-lightning_version"} <= set(ckpt)
    else:
        assert metrics["best_ckpt_path"] is None
        assert not list(run.rglob("*.ckpt"))
    if "plots" in callbacks:
        for plot in ("confusion_matrix_test", "roc_test"):
            assert (run / "plots" / f"{plot}.png").is_file(), plot

    # The logger's files (fast_dev_run logs nothing: Lightning swaps the loggers for a dummy).
    logs = not fast_dev_run
    assert bool(list(run.glob("tensorboard/events.out.tfevents.*"))) == (
        "tensorboard" in loggers and logs
    )
    csv_file = run / "csv" / "metrics.csv"
    assert csv_file.is_file() == ("csv" in loggers and logs)
    if csv_file.is_file():
        header = csv_file.read_text().splitlines()[0].split(",")
        assert {"train/loss", "val/loss", "test/loss"} <= set(header)


# ------------------------------------------------------------------------------ the cover
def test_the_cover_holds_every_pair_of_options(record_property) -> None:
    rows = list(ROWS.values())
    wanted = pairwise.wanted_pairs()
    missing = wanted - pairwise.pairs(rows)
    assert not missing, sorted(map(sorted, missing))[:10]
    assert all(pairwise.allowed(row.values()) for row in rows)
    assert all(set(row) == set(pairwise.AXES) for row in rows)
    options = [v for values in pairwise.AXES.values() for v in values]
    assert len(options) == len(set(options))  # a pair of options names its two axes
    summary = {"rows": len(rows), "axes": len(pairwise.AXES), "options": len(options)}
    summary["pairs"] = len(wanted)
    summary["full product"] = int(torch.tensor([len(v) for v in pairwise.AXES.values()]).prod())
    print(f"\npairwise cover: {summary}")
    for key, value in summary.items():
        record_property(key, value)
    # Far fewer rows than the product, and not many more than the two largest axes need.
    sizes = sorted(len(v) for v in pairwise.AXES.values())
    assert sizes[-1] * sizes[-2] <= len(rows) < 2 * sizes[-1] * sizes[-2]


@pytest.mark.parametrize("group", ["data", "resampler", "trainer", "logger", "callbacks",
                                   "debug", "experiment"])  # fmt: skip
def test_every_option_file_is_in_the_cover_or_says_why_not(group: str) -> None:
    axis = {v.partition("=")[2] for v in pairwise.AXES[group]}
    left_out = {"trainer": set(pairwise.NOT_ROWS), "callbacks": {"eval"}}.get(group, set())
    assert set(pairwise.options(group)) == (axis - {"null"}) | left_out


def test_ddp_spawn_on_cpus_is_ddp_sim(tmp_path) -> None:
    """Why trainer=ddp_spawn is no row: on two CPU processes the Trainer gets ddp_sim's args."""
    cpu = ("trainer.accelerator=cpu", "trainer.devices=2")
    spawn = compose_config(["trainer=ddp_spawn", *cpu], tmp_path).trainer
    sim = compose_config(["trainer=ddp_sim"], tmp_path).trainer
    defaults = {k: p.default for k, p in inspect.signature(L.Trainer).parameters.items()}
    differ = {k for k in set(spawn) | set(sim) if spawn.get(k) != sim.get(k)}
    assert differ and all(spawn.get(k, defaults[k]) == defaults[k] for k in differ), differ


# ---------------------------------------------------------------------------- refusals
def refused(argv: list[str], cwd: Path, monkeypatch, capsys) -> str:
    """Run fitlab-train, expect exit 2 and one error line, nothing left in the logs."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as exited:
        call_entry(fitlab_train.main, argv, cwd, monkeypatch)
    assert exited.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1, errors
    assert errors[0].startswith("fitlab: error: ") and "; " in errors[0]
    assert not [p for p in (cwd / "logs").rglob("*") if p.is_file()]
    return errors[0]


@pytest.mark.parametrize("refusal", pairwise.REFUSED, ids=lambda r: "+".join(sorted(r.options)))
def test_combinations_that_cannot_work_are_refused(
    refusal, data_dir, tmp_path, monkeypatch, capsys
) -> None:
    row = {axis: next(v for v in values if v in refusal.options) if set(values) & refusal.options
           else values[0] for axis, values in pairwise.AXES.items()}  # fmt: skip
    row.update(trainer="trainer=default", callbacks="callbacks=none")
    assert not pairwise.allowed(row.values())
    line = refused(pairwise.overrides(row, data_dir), tmp_path, monkeypatch, capsys)
    assert refusal.words in line, refusal.reason


@pytest.mark.parametrize("option", sorted(pairwise.NOT_ROWS))
def test_trainers_for_gpus_are_refused_without_one(option, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)  # a machine without GPU
    line = refused([f"trainer={option}"], tmp_path, monkeypatch, capsys)
    assert "but this machine has 0 visible GPU(s); use trainer=cpu" in line


@pytest.mark.parametrize("option", ["ddp", "ddp_spawn", "multi_node"])
def test_every_gpu_on_the_cpu_is_refused(option, tmp_path, monkeypatch, capsys) -> None:
    # devices -1 (every GPU) on the CPU: Lightning stops with a traceback building the Trainer.
    line = refused([f"trainer={option}", "trainer.accelerator=cpu"], tmp_path, monkeypatch, capsys)
    assert "trainer.devices=-1 with trainer.accelerator=cpu" in line
