"""The package's folders are its architecture: imports run one way, from the entry points down
to the models and data, and no module reaches back up (docs/layout.md)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Lowest first. A module may import its own room and rooms of lower layers only.
LAYERS = [
    {"__init__", "errors", "tables"},
    {"models", "data", "summarize"},
    {"validation"},
    {"run"},
    {"callbacks", "entry"},
    {"train", "eval", "bench"},
]
LAYER = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}


def room(module: str) -> str:
    """``fitlab.models.cnn`` -> ``models``, ``fitlab.train`` -> ``train``, ``fitlab`` itself
    -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] != "__init__" else "__init__"


def imports() -> list[tuple[str, str, str]]:
    """(file, its room, the room it imports) for every ``fitlab`` import in src/fitlab."""
    found = []
    for path in sorted((SRC / "fitlab").rglob("*.py")):
        own = room(".".join(path.relative_to(SRC).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            found += [(path.name, own, room(n)) for n in names if n.split(".")[0] == "fitlab"]
    return found


def test_every_room_has_a_layer() -> None:
    package = SRC / "fitlab"
    entries = [p for p in package.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()]
    rooms = {room(f"fitlab.{p.name.removesuffix('.py')}") for p in entries}
    assert rooms == set(LAYER), "place a new module or folder in LAYERS"


def test_imports_run_one_way() -> None:
    found = imports()
    assert len(found) > 50  # the walk sees the package's imports
    upward = [(f, a, b) for f, a, b in found if a != b and LAYER[b] >= LAYER[a]]
    assert upward == [], "an import that reaches up or sideways: " + repr(upward)
