"""What a run shows in TensorBoard: its event files read as TensorBoard reads them, and a real
TensorBoard server for the tests that ask one."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


@contextlib.contextmanager
def tensorboard(logdir: Path) -> Iterator[Callable[..., bytes]]:
    """A real TensorBoard server on ``logdir``; yields ``ask(path, body=None)``, the answer of
    ``/data/plugin/<path>`` (POSTing ``body`` as JSON where given); stops the server it started."""
    exe = shutil.which("tensorboard") or str(Path(sys.executable).with_name("tensorboard"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [exe, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port),
         "--load_fast", "false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def ask(path: str, body: dict | None = None) -> bytes:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/data/plugin/{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()

    try:
        yield ask
    finally:
        server.terminate()
        server.wait(timeout=30)


def polled(read: Callable[[], Any], done: Callable[[Any], bool], seconds: float = 90) -> Any:
    """``read()`` again until ``done`` with it (the server starts and loads the runs meanwhile)."""
    deadline, value = time.monotonic() + seconds, None
    while time.monotonic() < deadline:
        try:
            value = read()
            if done(value):
                break
        except OSError:  # not listening yet
            pass
        time.sleep(1)
    return value


def scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag's (step, value) points, as TensorBoard shows them."""
    events = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }
