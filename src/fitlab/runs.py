"""Run folders: the newest one of a task, whether one finished, and what a failed one leaves.

A run that ends normally writes ``metrics.json`` with ``"status": "completed"``. A run or sweep
job that fails writes ``{"status": "failed", "error": "<one line>", "stopped_reason": "error",
"wall_time_s": ...}`` instead, so ``fitlab-summarize`` lists it with its error. A single run that
fails before it trained anything leaves no folder at all.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from lightning.pytorch.utilities import rank_zero_only

COMPLETED, FAILED = "completed", "failed"


def latest_checkpoint(run: Path) -> Path | None:
    """The newer of ``checkpoints/last.ckpt`` (end of an epoch) and Lightning's SLURM requeue
    checkpoint ``hpc_ckpt_<n>.ckpt`` (saved on SIGUSR1, mid-epoch)."""
    candidates = (run / "checkpoints" / "last.ckpt", *run.glob("hpc_ckpt_*.ckpt"))
    found = [p for p in candidates if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def newest_run(runs_dir: Path) -> Path | None:
    """The newest run under ``runs_dir`` with a checkpoint (folder names start with the time)."""
    if not runs_dir.is_dir():
        return None
    runs = sorted(p for p in runs_dir.iterdir() if p.is_dir() and latest_checkpoint(p))
    return runs[-1] if runs else None


def status(run: Path) -> str | None:
    """``completed``, ``failed``, or None for a run that never wrote metrics.json (killed)."""
    try:
        return json.loads((run / "metrics.json").read_text()).get("status", COMPLETED)
    except (OSError, ValueError):
        return None


def unfinished_run(ckpt: Path) -> Path | None:
    """The run that ``ckpt`` continues: its latest checkpoint, and the run did not complete."""
    run = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    if latest_checkpoint(run) == ckpt and (run / ".hydra").is_dir() and status(run) != COMPLETED:
        return run
    return None


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line, for a failure record and the console."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def failure_record(error: str, wall_time_s: float) -> dict[str, Any]:
    return {
        "status": FAILED,
        "error": error,
        "stopped_reason": "error",
        "wall_time_s": round(wall_time_s, 2),
    }


def trained_nothing(run: Path) -> bool:
    """No checkpoint and no metrics: nothing in the folder that a user could want back."""
    return not any((run / "checkpoints").glob("*.ckpt")) and not (run / "metrics.json").exists()


@rank_zero_only
def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def failed_jobs(sweep_dir: Path) -> list[tuple[str, str]]:
    """(job folder name, error) of every job under ``sweep_dir`` that recorded a failure."""
    failed = []
    for metrics in sorted(sweep_dir.glob("*/metrics.json")):
        record = json.loads(metrics.read_text())
        if record.get("status") == FAILED:
            failed.append((metrics.parent.name, record.get("error", "")))
    return failed
