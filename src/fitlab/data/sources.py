"""Data sources: each returns the images of one data set as arrays, with its class names.

A source returns ``SourceData``: images as uint8 or float arrays of shape (N, C, H, W), integer
labels of shape (N,), and the class names in label order. Sources with an official test split
return it separately; the others leave the test split to :mod:`fitlab.data.split`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SourceData:
    """Images (N, C, H, W), labels (N,), class names; ``test`` holds an official test split."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    test: tuple[np.ndarray, np.ndarray] | None = None


def load_digits() -> SourceData:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, pixel values 0..16)."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = bunch.images.astype(np.float32)[:, None]  # (N, 1, 8, 8)
    return SourceData(images, bunch.target.astype(np.int64), [str(c) for c in bunch.target_names])


SOURCES = {"digits": load_digits}
# (H, W) of sources whose size is known before loading: a model that does not fit is refused
# before any data is read. Sources whose size comes from their files are checked at build time.
IMAGE_SIZES = {"digits": (8, 8)}
