"""The README's and docs/ pages' examples that show their output: each runs and prints it.

An example is a ``$ fitlab-...`` line in a code block and the lines under it up to the next
``$`` or the block's end. Shown without ``...`` the output is all the command prints; with
``...`` the shown lines come in that order among others. ``/home/me`` in a page stands for
the folder the command runs in. The README is the front door: small, its links to docs/ whole.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import torch

from conftest import REPO, call_entry
from fitlab import eval as fitlab_eval
from fitlab import train

ENTRIES = {"fitlab-train": train.main, "fitlab-eval": fitlab_eval.main}
HOME = "/home/me"
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def shown_examples(page: Path) -> list[tuple[str, list[str]]]:
    examples: list[tuple[str, list[str]]] = []
    in_block, current = False, None
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_block, current = not in_block, None
        elif in_block and line.startswith("$ "):
            current = []
            examples.append((line[2:], current))
        elif current is not None:
            current.append(line)
    return examples


EXAMPLES = [example for page in PAGES for example in shown_examples(page)]


def test_the_readme_is_a_front_door() -> None:
    assert len((REPO / "README.md").read_bytes()) <= 12 * 1024


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_every_linked_page_exists(page: Path) -> None:
    # relative Markdown links only; anchors and web addresses are not files here
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text())
    missing = [link for link in links if not (page.parent / link).exists()]
    assert not missing, f"{page.name} links to missing {missing}"


PACKAGE_FOLDERS = "models|data|callbacks|run|validation|bench"


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_every_module_a_page_names_exists(page: Path) -> None:
    # a module named as `models/cnn.py`, `fitlab/run/config.py` or `src/fitlab/train.py`; a test
    # (tests/models/...) is not one
    text = page.read_text()
    named = re.findall(rf"(?<![\w/])(?:src/)?(?:fitlab/)?((?:{PACKAGE_FOLDERS})/\w+\.py)", text)
    named += re.findall(r"src/fitlab/(\w+\.py)", text)
    missing = sorted({path for path in named if not (REPO / "src/fitlab" / path).is_file()})
    assert not missing, f"{page.name} names modules that do not exist: {missing}"


def test_the_readme_shows_examples_with_their_output() -> None:
    assert len(EXAMPLES) >= 5
    assert all(shown for _, shown in EXAMPLES)
    assert {command.split()[0] for command, _ in EXAMPLES} <= set(ENTRIES)


@pytest.mark.parametrize(("command", "shown"), EXAMPLES, ids=[c for c, _ in EXAMPLES])
def test_an_example_prints_what_the_readme_shows(
    command: str, shown: list[str], tmp_path: Path, monkeypatch, capsys
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
