"""A real single-node SLURM for the tests: ``scripts/slurm_local.sh`` in a test-only folder.

Loaded from ``conftest.py`` as a plugin. Tests that take the ``slurm`` fixture are marked
``@pytest.mark.slurm``; the fixture fails, never skips, when the cluster cannot start, so a
machine that cannot run SLURM shows up red.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import CompletedProcess

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "slurm_local.sh"
# Its own folder and ports: a user's cluster (/tmp/fitlab-slurm, port 6817) is left alone. A
# fixed folder keeps the job ids growing from one test session to the next.
TEST_DIR = os.environ.get("FITLAB_SLURM_TEST_DIR", "/tmp/fitlab-slurm-test")
TEST_PORT = os.environ.get("FITLAB_SLURM_TEST_PORT", "6827")
FAILED = ("FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE")
FINISHED = ("COMPLETED", *FAILED)


@dataclass
class SlurmCluster:
    """The running cluster: its client environment and a few sbatch/scontrol helpers."""

    env: dict[str, str]
    _scripts: Iterator[int] = field(default_factory=itertools.count)

    def run(self, *cmd: str, check: bool = True, timeout: float = 60) -> CompletedProcess:
        """A SLURM client command (scontrol, scancel, squeue, ...) against this cluster."""
        result = subprocess.run(
            cmd, env={**os.environ, **self.env}, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)}: exit {result.returncode}\n{result.stderr}")
        return result

    def sbatch(self, script_text: str, cwd: Path, *args: str) -> str:
        """Submit ``script_text`` (written to a file in cwd) from cwd; the job id."""
        script = cwd / f"job-{next(self._scripts)}.sbatch"
        script.write_text(script_text)
        result = subprocess.run(
            ["sbatch", "--parsable", *args, str(script)],
            cwd=cwd,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"sbatch failed:\n{result.stderr}"
        return result.stdout.strip().split(";")[0]

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job -o``'s fields of one job."""
        line = self.run("scontrol", "show", "job", "-o", job_id).stdout
        return dict(re.findall(r"(\w+)=(\S*)", line))

    def state(self, job_id: str) -> str:
        """RUNNING, PENDING, COMPLETED, FAILED, REQUEUED, ..."""
        return self.job(job_id)["JobState"]

    def wait(
        self, job_id: str, states: Sequence[str] = ("COMPLETED",), timeout: float = 300
    ) -> str:
        """Poll until the job reaches one of ``states``; fail on any other end or on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(job_id)
            if state in states:
                return state
            if state in FINISHED or time.monotonic() > deadline:
                why = f"ended {state}" if state in FINISHED else f"still {state} after {timeout} s"
                raise AssertionError(
                    f"job {job_id} {why}, not {'/'.join(states)}\n{self.tail(job_id)}"
                )
            time.sleep(0.5)

    def tail(self, job_id: str, lines: int = 40) -> str:
        """The end of the job's output file, for failure messages."""
        path = Path(self.job(job_id).get("StdOut", ""))
        if not path.is_file():
            return f"(no output file {path})"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def slurm_local(command: str) -> CompletedProcess:
    env = {**os.environ, "FITLAB_SLURM_DIR": TEST_DIR, "FITLAB_SLURM_PORT": TEST_PORT}
    return subprocess.run(
        ["bash", str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="session")
def slurm() -> Iterator[SlurmCluster]:
    """The local cluster, started for this session unless it already runs."""
    up = slurm_local("up")
    if up.returncode != 0:
        pytest.fail(f"the local SLURM cluster did not start:\n{up.stdout}\n{up.stderr}", False)
    conf = re.search(r"^export SLURM_CONF=(\S+)$", up.stdout, re.MULTILINE)
    assert conf, up.stdout
    cluster = SlurmCluster(env={"SLURM_CONF": conf.group(1)})
    yield cluster
    # A cluster this session found running stays up for whoever started it; so does one that
    # another session joined meanwhile (its jobs are still queued: down would cancel them).
    if "slurm_local: started" not in up.stdout:
        return
    queued = cluster.run("squeue", "-h", "-o", "%i", check=False).stdout.split()
    if queued:
        warnings.warn(f"local SLURM left running in {TEST_DIR}: jobs {queued} queued", stacklevel=1)
    else:
        down = slurm_local("down")
        assert down.returncode == 0, f"slurm_local.sh down failed:\n{down.stdout}\n{down.stderr}"
