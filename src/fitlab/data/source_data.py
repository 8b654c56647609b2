"""What every data source returns: images, labels, class names, and an official test split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class SourceData:
    """Images (N, C, H, W), labels (N,), class names; ``test`` holds an official test split."""

    images: Any  # np.ndarray, or FolderImages for a tree that streams from disk
    labels: np.ndarray
    class_names: list[str]
    test: tuple[Any, np.ndarray] | None = None
