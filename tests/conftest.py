"""Shared test fixtures: compose the real configs, run the real entry points."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from fitlab.run.config import compose_config

pytest_plugins = ["slurm_cluster"]

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
# Small and fast, for end-to-end runs of the real entry points.
QUICK = ("experiment=quick", "trainer.accelerator=cpu")


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    def make(*overrides: str, config_name: str = "train") -> DictConfig:
        return compose_config(overrides, tmp_path / "run", config_name)

    yield make
    GlobalHydra.instance().clear()


def cli_env(log_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    env["FITLAB_LOG_DIR"] = str(log_dir)
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def run_cli(
    module: str, *overrides: str, cwd: Path, timeout: float = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``python -m <module> overrides...`` in cwd, logs under cwd/logs."""
    return subprocess.run(
        [sys.executable, "-m", module, *overrides],
        cwd=cwd,
        env={**cli_env(cwd / "logs"), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_dirs(log_dir: Path, task_name: str) -> list[Path]:
    """The single-run folders of a task, oldest first."""
    return sorted(p for p in (log_dir / task_name / "runs").glob("*") if p.is_dir())


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


# An in-process run gives the last two its run's log file: taken back afterwards.
LOGGERS = ("", "lightning.pytorch", "lightning.fabric", "fitlab.run.console", "py.warnings")


@contextlib.contextmanager
def logging_kept():
    """hydra.main configures logging for its run folder; put back what the tests had."""
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in map(logging.getLogger, LOGGERS)]
    try:
        yield
    finally:
        for logger, handlers, level, propagate in saved:
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


def call_entry(entry: Callable[[], Any], argv: Sequence[str], cwd: Path, monkeypatch) -> Any:
    """Run an entry point's ``main()`` in this process, as ``fitlab-* argv`` would in ``cwd``."""
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("FITLAB_LOG_DIR", str(cwd / "logs"))
    monkeypatch.setattr(sys, "argv", [entry.__module__, *argv])
    with logging_kept():
        return entry()


def write_color_digits(root: Path) -> Path:
    """The rgb_vs_gray study's image folder, written by the study's own script."""
    spec = importlib.util.spec_from_file_location("colors", REPO / "scripts/make_color_digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write(root)
    return root
