"""``fitlab-bench --whole-run``: whole ``fitlab-train`` processes against their plain twin.

Each process is timed from outside, from its launch to its exit: what a user waits for. Pairs
of a real ``fitlab-train`` run (the defaults, every epoch run, plus ``--run-overrides``) and its
twin (``twin.py``: the same work in plain PyTorch) alternate which goes first, so a machine that
speeds up or slows down favours neither; the report takes the medians over the pairs.

One more ``fitlab-train`` run, under Lightning's SimpleProfiler and with a
:class:`~fitlab.bench.probe.PhaseProbe`, says where its time goes (``whole_run_phases``). It is
not one of the timed runs: their walls stay free of the profiler's cost.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fitlab.bench.timing import RUN_IMPORTS
from fitlab.bench.twin import run_overrides
from fitlab.errors import FitlabError

# The phases of a fitlab-train run, in the order they come; the profiled run measures each.
PHASES = {
    "startup_and_imports": "interpreter start-up and imports",
    "config_composition": "preflight checks, composing the config, the run folder",
    "build_data_and_model": "seeding, loading and splitting the data, the model, the callbacks",
    "trainer_setup": "the Trainer, loggers and hyperparameters, the callbacks' set-up",
    "model_summary": "the model summary",
    "sanity_check": "Lightning's sanity check (validation steps before training)",
    "train_steps": "training batches: forward, backward, step and the hooks within",
    "validation": "validation after each epoch, its metrics and logging",
    "plots": "plots: class counts, confusion matrices, ROC and PR curves",
    "fit_diagnosis": "the fit diagnosis: training error in eval mode, learning curves",
    "checkpointing": "checkpoints",
    "logging": "learning-rate monitor, progress bar, the test table",
    "test": "test: the best checkpoint loaded and tested",
    "metrics_and_hparams": "metrics.json and TensorBoard's HPARAMS row",
    "exit": "Hydra's and the interpreter's exit",
}


def timed(name: str, command: list[str], log_dir: Path) -> dict[str, float]:
    """Run ``command`` to its end with its logs under ``log_dir``; its wall seconds."""
    env = {**os.environ, "FITLAB_LOG_DIR": str(log_dir)}
    launched, started = time.time(), time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-5000:])
        raise FitlabError(f"{name} exited with status {done.returncode}", "its output is above")
    return {"wall_s": wall, "launched": launched, "finished": launched + wall}


def run_folder(log_dir: Path) -> Path:
    (metrics,) = log_dir.glob("*/runs/*/metrics.json")
    return metrics.parent


def fitlab_run(overrides: list[str], workdir: Path) -> dict[str, Any]:
    timing = timed("fitlab-train", [sys.executable, "-m", "fitlab.train", *overrides], workdir)
    metrics = json.loads((run_folder(workdir) / "metrics.json").read_text())
    return {**timing, "test/acc": metrics["test/acc"]}


def twin_run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    out = workdir / "twin.json"
    workdir.mkdir(parents=True)
    command = [
        sys.executable, "-m", "fitlab.bench.twin", "--epochs", str(args.whole_run_epochs),
        "--seed", str(args.seed), "--out", str(out), "--checkpoint", str(workdir / "best.pt"),
        *args.run_overrides,
    ]  # fmt: skip
    timing = timed("the twin", command, workdir)
    twin = json.loads(out.read_text())
    started, inside = twin.pop("started_at"), twin.pop("wall_s")
    twin["phases_s"] = {
        "startup_and_imports": started - timing["launched"],
        **twin["phases_s"],
        "exit": timing["finished"] - started - inside,
    }
    return {**timing, **twin}


# Imports what a run imports, stamps the time, then runs it as ``python -m fitlab.train`` would:
# the imports fall in the start-up phase, as the twin's do, and the config phase is the checks
# and Hydra's composition.
STAMPED_TRAIN = (
    f"import sys, time; import {RUN_IMPORTS}; "
    "open(sys.argv.pop(1), 'w').write(repr(time.time())); fitlab.train.main()"
)
LOG_STAMP = re.compile(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\]")


def log_stamps(log: Path) -> tuple[float, float]:
    """When the run logged its first record (its job had begun) and that metrics.json was
    written (its last step), from the timestamps of its log file."""
    stamps = []
    for line in log.read_text().splitlines():
        if found := LOG_STAMP.match(line):
            at = time.mktime(time.strptime(found[1], "%Y-%m-%d %H:%M:%S")) + int(found[2]) / 1e3
            stamps.append((at, line))
    written = [at for at, line in stamps if "fitlab: metrics written to" in line]
    if not stamps or not written:
        raise RuntimeError(f"{log} does not say when the run began and ended")
    return stamps[0][0], written[-1]


def profiled_run(overrides: list[str], workdir: Path) -> dict[str, Any]:
    """One fitlab-train run under the SimpleProfiler with a PhaseProbe: its phases' seconds."""
    imported, probe = workdir / "imported.txt", workdir / "phases.json"
    workdir.mkdir(parents=True)
    command = [
        sys.executable, "-c", STAMPED_TRAIN, str(imported), *overrides,
        "++trainer.profiler={_target_:lightning.pytorch.profilers.SimpleProfiler,filename:profile}",
        "+callbacks.whole_run_phases._target_=fitlab.bench.probe.PhaseProbe",
        f"+callbacks.whole_run_phases.path={probe}",
    ]  # fmt: skip
    timing = timed("the profiled fitlab-train", command, workdir)
    report = json.loads(probe.read_text())
    (log,) = run_folder(workdir).glob("*.log")
    began, written = log_stamps(log)
    started, at, hooks = float(imported.read_text()), report["stamps"], report["hooks_s"]
    phases = {
        "startup_and_imports": started - timing["launched"],
        "config_composition": began - started,
        "build_data_and_model": at["built"] - began,
        "trainer_setup": at["fit_setup"] - at["built"],
        "model_summary": hooks["model_summary"],
        "sanity_check": report["sanity_check_s"],
        "train_steps": report["train_steps_s"],
        "validation": sum(report["validation_s"]),
        **{kind: hooks[kind] for kind in ("plots", "fit_diagnosis", "checkpointing", "logging")},
        "test": at["test_teardown"] - at["test_setup"] - report["test_hooks_s"],
        "metrics_and_hparams": written - at["test_teardown"],
        "exit": timing["finished"] - written,
    }
    return {**report, "phases": phases, "wall_s": timing["wall_s"]}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    overrides = run_overrides(args.whole_run_epochs, args.seed, args.run_overrides)
    per_pair, twin_phases = [], []
    with tempfile.TemporaryDirectory(prefix="fitlab-bench-") as tmp:
        workdir = Path(tmp)
        start = {"fitlab": lambda d: fitlab_run(overrides, d), "twin": lambda d: twin_run(args, d)}
        for pair in range(args.pairs):
            order = ("fitlab", "twin") if pair % 2 == 0 else ("twin", "fitlab")
            runs = {name: start[name](workdir / f"pair{pair}-{name}") for name in order}
            fitlab, twin = runs["fitlab"], runs["twin"]
            per_pair.append({
                "first": order[0],
                "fitlab_wall_s": fitlab["wall_s"],
                "twin_wall_s": twin["wall_s"],
                "fitlab_test_acc": fitlab["test/acc"],
                "twin_test_acc": twin["test/acc"],
                "twin_images": twin["images"],
            })  # fmt: skip
            twin_phases.append(twin["phases_s"])
        profiled = profiled_run(overrides, workdir / "profiled")
    fitlab_wall = statistics.median(p["fitlab_wall_s"] for p in per_pair)
    twin_wall = statistics.median(p["twin_wall_s"] for p in per_pair)
    phases = profiled["phases"]
    return {
        "method": "whole processes timed from outside, launch to exit: pairs of fitlab-train "
        "and its plain twin, alternating which goes first; medians over the pairs",
        "device": twin["device"],
        "whole_run_epochs": args.whole_run_epochs,
        "whole_run_pairs": args.pairs,
        "whole_run_overrides": overrides,
        "whole_run_fitlab_wall_s": fitlab_wall,
        "whole_run_twin_wall_s": twin_wall,
        "whole_run_ratio": fitlab_wall / twin_wall,
        "whole_run_per_pair": per_pair,
        "whole_run_fitlab_images": profiled["images"],
        "whole_run_twin_images": per_pair[0]["twin_images"],
        "whole_run_phases": phases,
        "whole_run_phases_wall_s": profiled["wall_s"],
        "whole_run_phases_rest_s": profiled["wall_s"] - sum(phases.values()),
        "whole_run_validation_s_per_epoch": profiled["validation_s"],
        "whole_run_twin_phases": {
            name: statistics.median(p[name] for p in twin_phases) for name in twin_phases[0]
        },
    }


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    fitlab, twin = result["whole_run_fitlab_wall_s"], result["whole_run_twin_wall_s"]
    walls = ", ".join(
        f"{p['fitlab_wall_s']:.1f}/{p['twin_wall_s']:.1f}" for p in result["whole_run_per_pair"]
    )
    console.print(
        f"whole run, {result['whole_run_epochs']} epochs on {result['device']}: fitlab-train "
        f"{fitlab:.2f} s, plain twin {twin:.2f} s (medians of {result['whole_run_pairs']} "
        f"pairs: {walls}); fitlab / twin {result['whole_run_ratio']:.3f}"
    )
    table = Table(
        title=f"where a fitlab-train run's time goes (profiled run, "
        f"{result['whole_run_phases_wall_s']:.1f} s)"
    )
    for column in ("phase", "fitlab s", "twin s", ""):
        table.add_column(column, justify="left" if column in ("phase", "") else "right")
    twin_phases = result["whole_run_twin_phases"]
    for name, seconds in result["whole_run_phases"].items():
        twin_s = f"{twin_phases[name]:.3f}" if name in twin_phases else ""
        table.add_row(name, f"{seconds:.3f}", twin_s, PHASES[name])
    rest = "Lightning's loop, epoch-end metrics, TensorBoard writes, other hooks, the profiler"
    table.add_row("rest", f"{result['whole_run_phases_rest_s']:.3f}", "", rest)
    console.print(table)
