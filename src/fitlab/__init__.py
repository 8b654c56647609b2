"""fitlab: a PyTorch Lightning + Hydra research template for image-classification CNNs."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__version__ = "0.1.0"


def exported_on_first_use(package: str, homes: dict[str, str]) -> Callable[[str], Any]:
    """A package's ``__getattr__`` that imports each name from its module when first asked for.

    ``fitlab.data.ImageDataModule`` and ``fitlab.models.Classifier`` (the configs' targets) then
    cost nothing until used: the config checks import ``fitlab.models.settings`` and friends
    without torch, so a bad override fails before torch and Lightning load.
    """

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(homes[name]), name)

    return __getattr__
