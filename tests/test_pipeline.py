"""What the entry points share: rich's console width when the output is a file or a pipe."""

from __future__ import annotations

import io

import pytest
import rich

from fitlab.console import use_run_console


@pytest.fixture
def console():
    """The global rich console, restored after the test."""
    saved = dict(rich.get_console().__dict__)
    yield rich.get_console()
    rich.get_console().__dict__ = saved


def test_off_a_terminal_tables_get_160_columns(console, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdout", io.StringIO())  # a log file: no terminal
    monkeypatch.delenv("COLUMNS", raising=False)
    use_run_console()
    assert rich.get_console().width == 160


def test_columns_set_by_the_user_wins(console, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdout", io.StringIO())
    monkeypatch.setenv("COLUMNS", "100")
    width = rich.get_console().width
    use_run_console()
    assert rich.get_console().width == width
