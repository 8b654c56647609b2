"""Label noise: which training labels turn wrong, how many, and that nothing else moves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fitlab.data import ImageDataModule
from fitlab.data.noise import noisy_labels


def test_the_share_asked_for_turns_wrong_and_the_rest_stays() -> None:
    labels = np.arange(1000) % 10
    noisy = noisy_labels(labels, 0.2, 10, seed=42)
    changed = noisy != labels
    assert changed.sum() == 200  # exactly round(share * n), every one to another class
    assert set(np.unique(noisy)) <= set(range(10))
    assert np.array_equal(labels, np.arange(1000) % 10)  # the input is left as it was
    # Symmetric: the wrong classes are spread over all nine others, not a fixed shift.
    shifts = (noisy[changed] - labels[changed]) % 10
    assert set(np.unique(shifts)) == set(range(1, 10))


def test_the_noise_depends_on_the_data_seed_alone() -> None:
    labels = np.arange(500) % 5
    again = noisy_labels(labels, 0.3, 5, seed=7)
    assert np.array_equal(noisy_labels(labels, 0.3, 5, seed=7), again)
    assert not np.array_equal(noisy_labels(labels, 0.3, 5, seed=8), again)
    assert noisy_labels(labels, 0.0, 5, seed=7) is labels


@pytest.mark.parametrize("folds", [None, 3])
def test_only_the_training_labels_turn_wrong(folds) -> None:
    clean, noisy = (
        ImageDataModule(label_noise=share, num_folds=folds, fold=folds and 1)
        for share in (0.0, 0.25)
    )
    clean.setup("fit")
    noisy.setup("fit")
    train = clean.splits["train"].labels, noisy.splits["train"].labels
    assert int((train[0] != train[1]).sum()) == round(0.25 * len(train[0]))
    for split in ("val", "test"):  # measured against the truth
        assert torch.equal(clean.splits[split].labels, noisy.splits[split].labels)
    for split in ("train", "val", "test"):  # the same images, normalised alike
        assert torch.equal(clean.splits[split].images, noisy.splits[split].images)
    assert noisy.class_counts == noisy.model_kwargs()["class_counts"] != clean.class_counts
