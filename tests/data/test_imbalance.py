"""The long tail: exact counts, which classes become rare, and what stays untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from sklearn.utils.class_weight import compute_class_weight

from fitlab.data import ImageDataModule
from fitlab.data.imbalance import long_tail
from fitlab.errors import FitlabError

NAMES = [str(c) for c in range(10)]


def test_ratio_gives_exactly_the_exponential_counts() -> None:
    labels = np.repeat(np.arange(10), 100)
    kept = long_tail(labels, NAMES, ratio=10, order=NAMES)
    counts = np.bincount(labels[kept], minlength=10).tolist()
    # floor(100 * 10 ** (-i / 9)): the head whole, the tail 100 / 10.
    assert counts == [100, 77, 59, 46, 35, 27, 21, 16, 12, 10]
    assert len(set(kept.tolist())) == len(kept)  # no image twice


def test_order_is_seeded_or_given() -> None:
    labels = np.repeat(np.arange(10), 50)

    def ranking(**kwargs) -> list[int]:
        counts = np.bincount(labels[long_tail(labels, NAMES, ratio=5, **kwargs)], minlength=10)
        return np.argsort(-counts, kind="stable").tolist()

    assert ranking(seed=1) == ranking(seed=1)
    assert ranking(seed=1) != ranking(seed=2)
    assert ranking(order=list("9876543210")) == list(range(9, -1, -1))
    with pytest.raises(FitlabError, match="every class exactly once"):
        long_tail(labels, NAMES, ratio=5, order=["0", "1"])


@pytest.mark.parametrize(("ratio", "message"), [(0.5, "below 1"), (60, "no images")])
def test_impossible_ratios_are_user_errors(ratio, message) -> None:
    with pytest.raises(FitlabError, match=message):
        long_tail(np.repeat(np.arange(10), 50), NAMES, ratio=ratio)


def test_validation_and_test_keep_their_distribution_unless_asked() -> None:
    plain = ImageDataModule("digits")
    tailed = ImageDataModule("digits", imbalance_ratio=10)
    both = ImageDataModule("digits", imbalance_ratio=10, imbalance_eval=True)
    for dm in (plain, tailed, both):
        dm.setup("fit")
    train = tailed.class_counts
    head = int(np.argmax(train))
    assert train[head] == plain.class_counts[head]  # the head class kept whole
    assert min(train) == train[head] // 10
    for split in ("val", "test"):
        assert torch.equal(plain.splits[split].labels, tailed.splits[split].labels)
        # Same images, normalised with the long-tailed training statistics.
        restored = [dm.splits[split].images * dm.std + dm.mean for dm in (plain, tailed)]
        assert torch.allclose(*restored, atol=1e-4)
        counts = both.split_counts()[split]
        ranks = np.argsort(-np.array(train), kind="stable")  # the same classes are rare
        assert counts[ranks[0]] > counts[ranks[-1]] > 0


def test_digits_lt_and_balanced_class_weights(compose_cfg) -> None:
    cfg = compose_cfg("data=digits_lt", "model.class_weights=balanced")
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model, **datamodule.model_kwargs(), _convert_="all")
    labels = datamodule.splits["train"].labels.numpy()
    assert min(datamodule.class_counts) >= 6  # SMOTE's 5 neighbours + the image itself
    assert max(datamodule.class_counts) >= 10 * min(datamodule.class_counts)
    expected = compute_class_weight("balanced", classes=np.arange(10), y=labels)
    assert np.allclose(model.class_weight.numpy(), expected)
