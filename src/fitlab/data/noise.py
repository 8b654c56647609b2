"""Label noise (``data.label_noise``): a share of the training labels replaced by wrong classes.

On clean digits a large model that memorises its training split still generalises, so dropout
and L2 have little to cure (docs/studies.md, overfit). With a share of the training labels
wrong, memorising them costs E_cv, and a model kept from fitting them does better: the classic
result of Zhang et al. (2017) and Arpit et al. (2017). The noise is symmetric: each chosen image
gets one of the other classes, uniformly. Which images, and their new classes, come from
``data.seed`` alone, so runs with other seeds train on the same noisy split. Validation and
test keep their true labels: E_cv and E_test measure against the truth.
"""

from __future__ import annotations

import numpy as np

from fitlab.data.split import Parts

STREAM = 0x6E6F697365  # the noise's own random stream of data.seed ("noise")


def noisy_labels(labels: np.ndarray, share: float, num_classes: int, seed: int) -> np.ndarray:
    """``labels`` with ``round(share * len(labels))`` of them moved to another class."""
    if not share:
        return labels
    rng = np.random.default_rng([seed, STREAM])
    chosen = rng.choice(len(labels), size=round(share * len(labels)), replace=False)
    offset = rng.integers(1, num_classes, size=len(chosen))  # never 0: always a wrong class
    noisy = np.array(labels, copy=True)
    noisy[chosen] = (noisy[chosen] + offset) % num_classes
    return noisy


def with_label_noise(parts: Parts, share: float, num_classes: int, seed: int) -> Parts:
    """``parts`` with label noise in the training split only."""
    images, labels = parts["train"]
    return {**parts, "train": (images, noisy_labels(labels, share, num_classes, seed))}
