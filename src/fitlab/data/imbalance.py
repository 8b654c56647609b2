"""Long-tailed data: make a balanced split imbalanced with an exponential profile.

The profile of Cui et al. (CVPR 2019, "Class-Balanced Loss"), used for CIFAR-10-LT: the class of
rank i (0 = head) keeps ``n_i = floor(n_max * ratio ** (-i / (C - 1)))`` images, so the head
keeps all ``n_max`` of its images and the tail keeps ``n_max / ratio``. Which class gets which
rank is a seeded shuffle unless ``order`` names them, head first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fitlab.errors import FitlabError


def long_tail_counts(n_max: int, num_classes: int, ratio: float) -> list[int]:
    """Images kept per rank, head first: exponential from ``n_max`` down to ``n_max / ratio``."""
    if num_classes == 1:
        return [n_max]
    return [int(n_max * ratio ** (-rank / (num_classes - 1))) for rank in range(num_classes)]


def rank_order(class_names: Sequence[str], order: Sequence | None, seed: int) -> list[int]:
    """Labels from the most to the least frequent class after the long tail is applied."""
    num_classes = len(class_names)
    if order is None:
        return [int(c) for c in np.random.default_rng(seed).permutation(num_classes)]
    names = [str(c) for c in order]
    if sorted(names) != sorted(class_names):
        raise FitlabError(
            f"data.imbalance_order={names} does not name every class exactly once",
            f"list all of {list(class_names)}, the most frequent first",
        )
    return [list(class_names).index(n) for n in names]


def long_tail(
    labels: np.ndarray,
    class_names: Sequence[str],
    ratio: float,
    order: Sequence | None = None,
    seed: int = 42,
) -> np.ndarray:
    """Sorted indices of the images kept: the head class whole, the others cut to the profile.

    Args:
        labels: (N,) integer labels of the split.
        ratio: head count / tail count, >= 1 (1 keeps everything).
        order: class names from head to tail; ``None`` draws the order from ``seed``.
    """
    if ratio < 1:
        raise FitlabError(
            f"data.imbalance_ratio={ratio} is below 1",
            "use null for the data as it is, or a ratio >= 1 (head count / tail count)",
        )
    ranks = rank_order(class_names, order, seed)
    available = np.bincount(labels, minlength=len(class_names))
    n_max = int(available[ranks[0]])
    targets = long_tail_counts(n_max, len(class_names), ratio)
    if min(targets) < 1:
        raise FitlabError(
            f"data.imbalance_ratio={ratio} leaves class '{class_names[ranks[-1]]}' with no images "
            f"(the head class has {n_max})",
            f"use a ratio of at most {n_max}",
        )
    rng = np.random.default_rng(seed)
    kept = []
    for label, target in zip(ranks, targets, strict=True):
        members = np.flatnonzero(labels == label)
        kept.append(rng.choice(members, size=min(target, len(members)), replace=False))
    return np.sort(np.concatenate(kept))
