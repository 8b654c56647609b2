"""Which images go in which split: stratified train/validation/test splits, the same for the
same seed, cross-validation folds, and the long tail cut from them (``data.imbalance_*``).

scikit-learn's ``model_selection`` is slow to import: it loads when a split is made, not when
the config's fractions are checked (:func:`check_fractions`), so a bad value fails at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from fitlab.data.imbalance import long_tail
from fitlab.data.source_data import SourceData
from fitlab.errors import FitlabError


class Folds(NamedTuple):
    """Cross-validation (``data.num_folds``, ``data.fold``): fold ``index`` of ``k`` validates."""

    k: int | None = None
    index: int | None = None


class Imbalance(NamedTuple):
    """``data.imbalance_*``: the training split (``on_eval``: every split) cut to a long tail."""

    ratio: float | None = None
    order: Sequence[str] | None = None
    on_eval: bool = False


Parts = dict[str, tuple[Any, np.ndarray]]  # (images, labels) of "train", "val" and "test"


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Both shares are of the whole set; together they must leave a training set."""
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise FitlabError(
            f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} leave no "
            "training set",
            "use fractions >= 0 whose sum is below 1, e.g. data.val_fraction=0.1",
        )


def stratified_split(
    labels: np.ndarray,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    num_folds: int | None = None,
    fold: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of (train, val, test), each class in the same proportion in every part.

    ``val_fraction`` and ``test_fraction`` are shares of the whole set; ``test_fraction=0``
    means the source brings its own test split. With ``num_folds=k``, the images outside the
    test split are cut into k stratified folds: fold ``fold`` validates, the others train
    (cross-validation; ``val_fraction`` is not used then, and the test split never moves).
    """
    if num_folds:
        return _fold_split(labels, test_fraction, seed, num_folds, fold or 0)
    check_fractions(val_fraction, test_fraction)
    index = np.arange(len(labels))
    test_idx = np.array([], dtype=np.int64)
    if test_fraction > 0:
        index, test_idx = _carve(
            index, labels, test_fraction, f"data.test_fraction={test_fraction}", seed
        )
    val_idx = np.array([], dtype=np.int64)
    if val_fraction > 0:
        share = val_fraction / (1 - test_fraction)
        index, val_idx = _carve(
            index, labels[index], share, f"data.val_fraction={val_fraction}", seed
        )
    return np.sort(index), np.sort(val_idx), np.sort(test_idx)


def split_source(
    data: SourceData, val_fraction: float, test_fraction: float, seed: int, folds: Folds
) -> Parts:
    """The source's images split three ways; a source's own test split is kept as it is."""
    if data.test is not None:
        test_fraction = 0.0
    train, val, test = stratified_split(data.labels, val_fraction, test_fraction, seed, *folds)
    x, y = data.images, data.labels
    return {
        "train": (x[train], y[train]),
        "val": (x[val], y[val]),
        "test": data.test if data.test is not None else (x[test], y[test]),
    }


def long_tailed(parts: Parts, class_names: list[str], imbalance: Imbalance, seed: int) -> Parts:
    """``parts`` with the long tail cut from training (and, with ``on_eval``, val and test)."""
    ratio, order, on_eval = imbalance
    if ratio is None:
        return parts
    parts = dict(parts)
    for name in ("train", "val", "test") if on_eval else ("train",):
        x, y = parts[name]
        keep = long_tail(y, class_names, ratio, order, seed)
        parts[name] = (x[keep], y[keep])
    return parts


def _carve(
    index: np.ndarray, labels: np.ndarray, share: float, setting: str, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``share`` of ``index`` off, stratified by ``labels``; ``setting`` names the value."""
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(index, test_size=share, stratify=labels, random_state=seed)
    except ValueError as exc:  # a part too small to hold one image of every class
        raise FitlabError(
            f"{setting} splits {len(index)} images into parts that cannot hold every one of "
            f"{len(np.unique(labels))} classes ({exc})",
            "choose fractions that leave each split at least one image per class",
        ) from exc


def _fold_split(
    labels: np.ndarray, test_fraction: float, seed: int, num_folds: int, fold: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # The test split is carved exactly as without folds, so every fold is tested on it.
    rest, _, test_idx = stratified_split(labels, 0.0, test_fraction, seed)
    counts = np.bincount(labels[rest], minlength=int(labels.max()) + 1)
    smallest = int(counts[np.unique(labels)].min())
    if smallest < num_folds:  # a fold would miss that class (scikit-learn only warns)
        raise FitlabError(
            f"data.num_folds={num_folds} is more than the smallest class has images outside "
            f"the test split ({smallest})",
            "use fewer folds",
        )
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(n_splits=num_folds, shuffle=True, random_state=seed)
    train, val = list(folds.split(rest, labels[rest]))[fold]
    return np.sort(rest[train]), np.sort(rest[val]), test_idx
