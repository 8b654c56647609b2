"""Run folders: the newest one of a task, whether one finished, and what a failed one leaves.

A run that ends normally writes ``metrics.json`` with ``"status": "completed"``. A run or sweep
job that fails writes ``{"status": "failed", "error": "<one line>", "stopped_reason": "error",
"wall_time_s": ...}`` instead, so ``fitlab-summarize`` lists it with its error. A single run that
fails before it trained anything leaves no folder at all.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COMPLETED, FAILED = "completed", "failed"
# Checkpoint key (beside Lightning's) with the attempts that led to it and their time.
ATTEMPTS_KEY = "fitlab_attempts"


@dataclass
class Attempt:
    """This process's attempt at a run: its number, and the time earlier attempts took.

    A run resumed after a kill or a SLURM requeue continues with the count and time the
    checkpoint (or the interrupted attempt's failure record) carries, so ``metrics.json`` says
    how many attempts the run took and ``wall_time_s`` sums them.
    """

    number: int = 1
    earlier_s: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def wall_time_s(self) -> float:
        return round(self.earlier_s + time.perf_counter() - self.started, 2)

    def record(self) -> dict[str, Any]:
        return {"attempts": self.number, "wall_time_s": self.wall_time_s()}

    def follow(self, earlier: dict[str, Any]) -> None:
        """Continue after ``earlier`` (a record of :meth:`record`'s form)."""
        self.number = int(earlier.get("attempts", 1)) + 1
        self.earlier_s = float(earlier.get("wall_time_s") or 0.0)


# The attempt of the job this process runs now; each job of a sweep starts a new one.
attempt = Attempt()


def begin_attempt() -> Attempt:
    global attempt
    attempt = Attempt()
    return attempt


def latest_checkpoint(run: Path) -> Path | None:
    """The newer of ``checkpoints/last.ckpt`` (end of an epoch) and Lightning's SLURM requeue
    checkpoint ``hpc_ckpt_<n>.ckpt`` (saved on SIGUSR1, mid-epoch)."""
    candidates = (run / "checkpoints" / "last.ckpt", *run.glob("hpc_ckpt_*.ckpt"))
    found = [p for p in candidates if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def continued_run(ckpt: Path, output_dir: Path) -> bool:
    """``ckpt`` belongs to the run folder this job writes to: the run goes on, not a new one."""
    return Path(output_dir).resolve() in Path(ckpt).resolve().parents


def earlier_attempts(run: Path, ckpt: dict[str, Any]) -> dict[str, Any]:
    """What the attempts before this one took: from the interrupted attempt's failure record
    when it wrote one (SIGTERM, an error), else from the checkpoint (SIGKILL leaves nothing).
    The failure record is removed: a run being retried has no verdict yet."""
    earlier = dict(ckpt.get(ATTEMPTS_KEY) or {"attempts": 1, "wall_time_s": None})
    try:
        record = json.loads((run / "metrics.json").read_text())
    except (OSError, ValueError):
        return earlier
    if record.get("status") == FAILED:
        (run / "metrics.json").unlink(missing_ok=True)  # every rank of a DDP job reads it
        if int(record.get("attempts", 1)) >= int(earlier["attempts"]):
            return record
    return earlier


def remove_superseded_hpc_checkpoints(run: Path) -> list[Path]:
    """Lightning's ``hpc_ckpt_<n>.ckpt`` files older than ``last.ckpt``: a later epoch's end
    supersedes a requeue checkpoint."""
    last = run / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return []
    newer = last.stat().st_mtime_ns
    stale = [p for p in run.glob("hpc_ckpt_*.ckpt") if p.stat().st_mtime_ns < newer]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def runs_with_checkpoints(runs_dir: Path) -> list[Path]:
    """The runs under ``runs_dir`` that have a checkpoint, newest first (names start with the
    time)."""
    if not runs_dir.is_dir():
        return []
    return sorted(
        (p for p in runs_dir.iterdir() if p.is_dir() and latest_checkpoint(p)), reverse=True
    )


def newest_run(runs_dir: Path) -> Path | None:
    """The newest run under ``runs_dir`` with a checkpoint."""
    return next(iter(runs_with_checkpoints(runs_dir)), None)


def latest_config(run: Path) -> Path:
    """The config of the run's latest attempt: ``.hydra/resume_<time>/config.yaml`` of the newest
    resumption, else ``.hydra/config.yaml``."""
    resumed = sorted((run / ".hydra").glob("resume_*/config.yaml"))
    return resumed[-1] if resumed else run / ".hydra" / "config.yaml"


def read_record(run: Path) -> dict[str, Any]:
    """The run's ``metrics.json``; empty when it never wrote one (killed) or it is unreadable."""
    try:
        return json.loads((run / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}


def status(run: Path) -> str | None:
    """``completed``, ``failed``, or None for a run that never wrote metrics.json (killed)."""
    record = read_record(run)
    return record.get("status", COMPLETED) if record else None


def continued_by(ckpt: Path) -> Path | None:
    """The run folder that ``ckpt`` is the latest state of; None for an older checkpoint (the
    best epoch, say), from which a new run starts."""
    run = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    return run if latest_checkpoint(run) == ckpt and (run / ".hydra").is_dir() else None


def unfinished_run(ckpt: Path) -> Path | None:
    """The run that ``ckpt`` continues: its latest checkpoint, and the run did not complete."""
    run = continued_by(ckpt)
    return run if run is not None and status(run) != COMPLETED else None


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line, for a failure record and the console."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def failure_record(error: str) -> dict[str, Any]:
    return {"status": FAILED, "error": error, "stopped_reason": "error", **attempt.record()}


def trained_nothing(run: Path) -> bool:
    """No checkpoint and no metrics: nothing in the folder that a user could want back."""
    return not any((run / "checkpoints").glob("*.ckpt")) and not (run / "metrics.json").exists()


def lightning_rank_zero() -> bool:
    """Whether this is rank zero by Lightning's count, which also knows the ranks ``ddp_spawn``
    started (``cluster.is_rank_zero`` reads the environment, which names none of those);
    imported when first asked, so the checks before a run need no torch."""
    from lightning.pytorch.utilities import rank_zero_only

    return rank_zero_only.rank == 0


def remove(path: Path) -> None:
    if lightning_rank_zero():
        shutil.rmtree(path, ignore_errors=True)


def write_metrics(output_dir: str | Path, metrics: dict[str, Any]) -> Path:
    """``metrics.json`` (rank zero writes it): one flat JSON object, keys sorted; non-finite
    numbers become null."""
    path = Path(output_dir) / "metrics.json"
    if lightning_rank_zero():
        flat = {k: _json_value(v) for k, v in sorted(metrics.items())}
        path.parent.mkdir(parents=True, exist_ok=True)  # a run that saved nothing else yet
        path.write_text(json.dumps(flat, indent=2) + "\n")
    return path


def _json_value(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def failed_jobs(sweep_dir: Path) -> list[tuple[str, str]]:
    """(job folder name, error) of every job under ``sweep_dir`` that recorded a failure."""
    failed = []
    for metrics in sorted(sweep_dir.glob("*/metrics.json")):
        record = json.loads(metrics.read_text())
        if record.get("status") == FAILED:
            failed.append((metrics.parent.name, record.get("error", "")))
    return failed
