"""Stratified train/validation/test splits, the same for the same seed."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from fitlab.errors import FitlabError


def stratified_split(
    labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of (train, val, test), each class in the same proportion in every part.

    ``val_fraction`` and ``test_fraction`` are shares of the whole set; ``test_fraction=0``
    means the source brings its own test split.
    """
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise FitlabError(
            f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} leave no "
            "training set",
            "use fractions >= 0 whose sum is below 1, e.g. data.val_fraction=0.1",
        )
    index = np.arange(len(labels))
    test_idx = np.array([], dtype=np.int64)
    val_idx = np.array([], dtype=np.int64)
    try:
        if test_fraction > 0:
            index, test_idx = train_test_split(
                index, test_size=test_fraction, stratify=labels, random_state=seed
            )
        if val_fraction > 0:
            share = val_fraction / (1 - test_fraction)
            index, val_idx = train_test_split(
                index, test_size=share, stratify=labels[index], random_state=seed
            )
    except ValueError as exc:  # scikit-learn: a class too small to appear in every part
        raise FitlabError(
            f"too few images for a stratified split ({exc})",
            "add images, or change data.val_fraction and data.test_fraction so that every "
            "part gets at least one image per class",
        ) from exc
    return np.sort(index), np.sort(val_idx), np.sort(test_idx)
