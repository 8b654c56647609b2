"""What the entry points share: rich's console width when the output is a file or a pipe, and
the config composed once for the checks and once by Hydra's job."""

from __future__ import annotations

import io

import pytest
import rich
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.hydra import Hydra

from conftest import QUICK, call_entry
from fitlab import train as fitlab_train
from fitlab.run.console import use_run_console


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


def test_a_run_composes_its_config_twice_the_checks_and_the_job(tmp_path, monkeypatch) -> None:
    composed = []
    load = ConfigLoaderImpl.load_configuration
    monkeypatch.setattr(
        ConfigLoaderImpl,
        "load_configuration",
        lambda self, *a, **k: composed.append(k.get("run_mode")) or load(self, *a, **k),
    )
    get_mode = Hydra.get_mode
    call_entry(fitlab_train.main, [*QUICK, "+trainer.fast_dev_run=true"], tmp_path, monkeypatch)
    assert len(composed) == 2  # Hydra's get_mode composed a third time only to read hydra.mode
    assert Hydra.get_mode is get_mode  # Hydra is left as it was
    assert (tmp_path / "logs" / "quick" / "runs").is_dir()
