"""Formatting and lint are checked by the tools, as part of the suite."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_ruff_check_and_format() -> None:
    paths = [str(REPO / p) for p in ("src", "tests")]
    check = subprocess.run(
        [sys.executable, "-m", "ruff", "check", *paths], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout
    fmt = subprocess.run([sys.executable, "-m", "ruff", "format", "--check", *paths],
                         capture_output=True, text=True)  # fmt: skip
    assert fmt.returncode == 0, fmt.stdout
