"""Two torchrun agents on this machine stand in for two nodes: one run, world size two."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import QUICK, cli_env, read_metrics, run_dirs

pytestmark = pytest.mark.slow
TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def test_two_torchrun_nodes_train_one_run(tmp_path: Path) -> None:
    rdzv = [
        "--nnodes=2",
        "--nproc-per-node=1",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=localhost:{free_port()}",
        f"--rdzv-id={secrets.token_hex(4)}",
    ]
    overrides = [*QUICK, "trainer=multi_node", "trainer.num_nodes=2", "trainer.devices=1"]
    cmd = [sys.executable, "-m", "torch.distributed.run", *rdzv, "-m", "fitlab.train"]
    cmd += [*overrides, "trainer.max_epochs=2"]
    env = cli_env(tmp_path / "logs")
    env.pop("SLURM_NNODES", None)  # trainer=multi_node would read it
    # Each agent in its own session: on failure the whole tree (agent and worker) is killed.
    agents = [
        subprocess.Popen(
            cmd,
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        for _ in range(2)
    ]
    outputs = []
    try:
        for agent in agents:
            outputs.append(agent.communicate(timeout=TIMEOUT_S)[0])
    except subprocess.TimeoutExpired:
        pytest.fail(f"torchrun still running after {TIMEOUT_S} s")
    finally:
        for agent in agents:
            if agent.poll() is None:
                os.killpg(agent.pid, signal.SIGKILL)
                agent.wait()
    for agent, out in zip(agents, outputs, strict=True):
        assert agent.returncode == 0, out[-4000:]
    (run,) = run_dirs(tmp_path / "logs", "quick")
    metrics = read_metrics(run)
    assert (metrics["status"], metrics["world_size"]) == ("completed", 2)
