"""The README's examples that show their output: each command runs and prints what is shown.

An example is a ``$ fitlab-...`` line in a code block and the lines under it up to the next
``$`` or the block's end. Shown without ``...`` the output is all the command prints; with
``...`` the shown lines come in that order among others. ``/home/me`` in the README stands for
the folder the command runs in.
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

import pytest
import torch

from conftest import REPO, call_entry
from fitlab import eval as fitlab_eval
from fitlab import train

ENTRIES = {"fitlab-train": train.main, "fitlab-eval": fitlab_eval.main}
HOME = "/home/me"


def shown_examples(readme: Path = REPO / "README.md") -> list[tuple[str, list[str]]]:
    examples: list[tuple[str, list[str]]] = []
    in_block, current = False, None
    for line in readme.read_text().splitlines():
        if line.startswith("```"):
            in_block, current = not in_block, None
        elif in_block and line.startswith("$ "):
            current = []
            examples.append((line[2:], current))
        elif current is not None:
            current.append(line)
    return examples


EXAMPLES = shown_examples()


def test_the_readme_shows_examples_with_their_output() -> None:
    assert len(EXAMPLES) >= 5
    assert all(shown for _, shown in EXAMPLES)
    assert {command.split()[0] for command, _ in EXAMPLES} <= set(ENTRIES)


@pytest.fixture
def quiet_logs():
    """An in-process run gives these loggers its run's log file; take it back afterwards."""
    loggers = [logging.getLogger(name) for name in ("fitlab.run.console", "py.warnings")]
    saved = [(logger, logger.handlers[:]) for logger in loggers]
    yield
    for logger, handlers in saved:
        logger.handlers[:] = handlers


@pytest.mark.parametrize(("command", "shown"), EXAMPLES, ids=[c for c, _ in EXAMPLES])
def test_an_example_prints_what_the_readme_shows(
    command: str, shown: list[str], tmp_path: Path, monkeypatch, capsys, quiet_logs
) -> None:
    data = {"state_dict": {"w": torch.zeros(1000)}}
    torch.save(data, tmp_path / "whole.ckpt")
    whole = (tmp_path / "whole.ckpt").read_bytes()
    (tmp_path / "broken.ckpt").write_bytes(whole[: len(whole) // 2])  # cut short
    name, *argv = shlex.split(command)
    try:
        call_entry(ENTRIES[name], argv, tmp_path, monkeypatch)
    except SystemExit as stop:
        assert stop.code == 2, stop.code
    out = capsys.readouterr()
    printed = [
        line.rstrip().replace(str(tmp_path), HOME) for line in (out.err + out.out).splitlines()
    ]
    if "..." not in shown:
        assert printed == shown
        return
    lines = iter(printed)
    for line in (s for s in shown if s != "..."):
        assert any(seen.endswith(line) for seen in lines), f"{line!r} not printed (in order)"
