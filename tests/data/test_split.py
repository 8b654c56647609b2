"""Splitting: stratified and seeded, cross-validation folds, a source's own test split, the
long tail."""

from __future__ import annotations

import numpy as np
import pytest

from fitlab.data.imbalance import long_tail_counts
from fitlab.data.source_data import SourceData
from fitlab.data.split import Folds, Imbalance, long_tailed, split_source, stratified_split
from fitlab.errors import FitlabError

NAMES = [str(c) for c in range(4)]


def test_split_is_stratified_disjoint_complete_and_seeded() -> None:
    labels = np.repeat(np.arange(5), [100, 60, 40, 30, 20])
    train, val, test = stratified_split(labels, 0.1, 0.2, seed=3)
    assert len(np.intersect1d(train, val)) == len(np.intersect1d(train, test)) == 0
    assert len(np.intersect1d(val, test)) == 0
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(len(labels)))
    whole = np.bincount(labels) / len(labels)
    for part in (train, val, test):
        share = np.bincount(labels[part], minlength=5) / len(part)
        assert np.abs(share - whole).max() < 0.03
    again = stratified_split(labels, 0.1, 0.2, seed=3)
    other = stratified_split(labels, 0.1, 0.2, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again, strict=True))
    assert not np.array_equal(test, other[2])


def test_split_fractions_must_leave_a_training_set() -> None:
    with pytest.raises(FitlabError, match="leave no training set"):
        stratified_split(np.zeros(10, dtype=int), 0.5, 0.5, seed=0)


def test_folds_partition_train_and_val_and_leave_the_test_split_alone() -> None:
    labels = np.repeat(np.arange(4), [60, 40, 30, 20])
    plain_test = stratified_split(labels, 0.1, 0.2, seed=5)[2]
    parts = [stratified_split(labels, 0.1, 0.2, 5, num_folds=3, fold=i) for i in range(3)]
    for train, val, test in parts:
        assert np.array_equal(test, plain_test)  # the same test split as without folds
        assert len(np.intersect1d(train, val)) == 0
        assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(150))
        share = np.bincount(labels[val], minlength=4) / len(val)
        assert np.abs(share - np.bincount(labels) / 150).max() < 0.05
    vals = np.concatenate([val for _, val, _ in parts])
    assert len(vals) == len(np.unique(vals)) == 150 - len(plain_test)  # each image validates once


def test_too_many_folds_for_the_smallest_class_is_a_user_error() -> None:
    labels = np.repeat(np.arange(2), [50, 3])
    with pytest.raises(FitlabError, match="num_folds"):
        stratified_split(labels, 0.0, 0.0, seed=0, num_folds=5, fold=0)


def source(n_per_class=(60, 40, 30, 20), test=None) -> SourceData:
    labels = np.repeat(np.arange(len(n_per_class)), n_per_class)
    images = np.arange(len(labels))[:, None, None, None]  # image i holds its own index
    return SourceData(images, labels, NAMES, test)


def test_split_source_serves_the_stratified_indices_and_keeps_an_own_test_split() -> None:
    data = source()
    parts = split_source(data, 0.1, 0.2, 5, Folds())
    indices = stratified_split(data.labels, 0.1, 0.2, 5)
    for (x, y), index in zip(parts.values(), indices, strict=True):
        assert np.array_equal(x[:, 0, 0, 0], index) and np.array_equal(y, data.labels[index])
    folds = split_source(data, 0.1, 0.2, 5, Folds(3, 1))
    expected = stratified_split(data.labels, 0.1, 0.2, 5, num_folds=3, fold=1)
    assert all(
        np.array_equal(x[:, 0, 0, 0], i) for (x, _), i in zip(folds.values(), expected, strict=True)
    )
    own = (np.zeros((7, 1, 1, 1)), np.arange(7) % 4)
    parts = split_source(source(test=own), 0.1, 0.2, 5, Folds())
    assert parts["test"] is own  # kept as the source gave it: test_fraction is not used
    assert len(parts["train"][1]) + len(parts["val"][1]) == 150


def test_long_tail_cuts_training_only_unless_asked() -> None:
    parts = split_source(source((50, 50, 50, 50)), 0.1, 0.2, 0, Folds())
    assert long_tailed(parts, NAMES, Imbalance(), 0) is parts  # no ratio: nothing cut
    tailed = long_tailed(parts, NAMES, Imbalance(5, NAMES), 0)
    assert np.bincount(tailed["train"][1]).tolist() == long_tail_counts(35, 4, 5)
    assert all(tailed[s][1] is parts[s][1] for s in ("val", "test"))
    every = long_tailed(parts, NAMES, Imbalance(5, NAMES, on_eval=True), 0)
    for split in ("val", "test"):
        counts = np.bincount(every[split][1])
        assert counts[0] == np.bincount(parts[split][1])[0] and counts[-1] < counts[0]
    assert np.bincount(parts["train"][1]).tolist() == [35] * 4  # the input is left alone
