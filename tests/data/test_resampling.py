"""Resampling the training split: counts per strategy, no copies, redraws, DDP shards."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors
from torch.utils.data import DistributedSampler

from fitlab.data import ImageDataModule
from fitlab.data.resampling import RedrawSampler, ResampledDataset
from fitlab.errors import FitlabError

IMBLEARN = {
    "random_over": "imblearn.over_sampling.RandomOverSampler",
    "random_under": "imblearn.under_sampling.RandomUnderSampler",
    "smote": "imblearn.over_sampling.SMOTE",
    "adasyn": "imblearn.over_sampling.ADASYN",
    "near_miss": "imblearn.under_sampling.NearMiss",
    "tomek": "imblearn.under_sampling.TomekLinks",
}


def spec(name: str, **keys) -> dict | None:
    if name == "none":
        return None
    if name == "weighted":
        return {"_target_": "torch.utils.data.WeightedRandomSampler", "_partial_": True,
                "replacement": True, "num_samples": None, "random_state": 0, **keys}  # fmt: skip
    random = {} if name in ("near_miss", "tomek") else {"random_state": 0}
    extra = {"n_neighbors": 10} if name == "adasyn" else {}
    return {"_target_": IMBLEARN[name], **random, **extra, **keys}


def digits_lt(resampler: str = "none", **keys) -> ImageDataModule:
    dm = ImageDataModule("digits", imbalance_ratio=10, resampler=spec(resampler, **keys))
    dm.setup("fit")
    return dm


@pytest.fixture(scope="module")
def plain() -> ImageDataModule:
    return digits_lt()


def counts(dm: ImageDataModule) -> np.ndarray:
    return np.bincount(dm.train_set.labels.numpy(), minlength=10)


@pytest.mark.parametrize(
    ("name", "target"),
    [("random_over", "max"), ("smote", "max"), ("random_under", "min"), ("near_miss", "min")],
)
def test_auto_strategies_balance_to_the_largest_or_smallest_class(plain, name, target) -> None:
    dm = digits_lt(name)
    assert dm.class_counts == plain.class_counts  # the split itself is unchanged
    expected = max(plain.class_counts) if target == "max" else min(plain.class_counts)
    assert counts(dm).tolist() == [expected] * 10


def test_a_dict_strategy_sets_the_count_of_the_classes_it_names(plain) -> None:
    rare = int(np.argmin(plain.class_counts))
    for name in ("random_over", "smote"):
        got = counts(digits_lt(name, sampling_strategy={rare: 50}))
        assert got[rare] == 50
        assert np.delete(got, rare).tolist() == np.delete(plain.class_counts, rare).tolist()


def test_a_shrinkage_bootstrap_synthesises_jittered_copies(plain) -> None:
    dm = digits_lt("random_over", shrinkage=0.5)
    assert counts(dm).tolist() == [max(plain.class_counts)] * 10
    synthetic = dm.train_set.synthetic
    assert len(synthetic) == 10 * max(plain.class_counts) - sum(plain.class_counts)
    real = plain.splits["train"].images.reshape(len(plain.splits["train"]), -1)
    gaps = torch.cdist(synthetic.images.reshape(len(synthetic), -1), real).min(dim=1).values
    assert (gaps > 0).all()  # new images, not repeats


def test_adasyn_brings_the_minority_classes_near_the_largest(plain) -> None:
    got, before = counts(digits_lt("adasyn")), np.array(plain.class_counts)
    assert (got >= before).all()
    assert np.abs(got - before.max()).max() <= 0.05 * before.max()


def test_tomek_removes_exactly_the_majority_ends_of_tomek_links(plain) -> None:
    dm = digits_lt("tomek")
    x = plain.splits["train"].images.reshape(len(plain.splits["train"]), -1).numpy()
    y = plain.splits["train"].labels.numpy()
    nearest = NearestNeighbors(n_neighbors=2).fit(x).kneighbors(x, return_distance=False)[:, 1]
    linked = (nearest[nearest] == np.arange(len(y))) & (y[nearest] != y)
    minority = int(np.argmin(np.bincount(y)))
    removed = set(np.flatnonzero(linked & (y != minority)).tolist())
    assert removed  # digits_lt has some
    assert set(range(len(y))) - set(dm.train_set.indices.tolist()) == removed


@pytest.mark.parametrize("name", ["random_over", "random_under", "near_miss", "tomek"])
def test_selecting_samplers_copy_no_image(plain, name) -> None:
    dm = digits_lt(name)
    resampled, split = dm.train_set, dm.splits["train"]
    assert isinstance(resampled, ResampledDataset) and resampled.synthetic is None
    assert resampled.base is split  # a view of the split, whose tensor was not copied
    x, y = resampled.__getitems__(list(range(len(resampled))))
    assert torch.equal(x, split.images[resampled.indices])
    assert torch.equal(y, split.labels[resampled.indices])


@pytest.mark.parametrize("name", ["random_over", "smote", "near_miss", "tomek", "weighted"])
def test_validation_and_test_never_change(plain, name) -> None:
    dm = digits_lt(name)
    for split in ("val", "test"):
        assert torch.equal(dm.splits[split].images, plain.splits[split].images)
        assert torch.equal(dm.splits[split].labels, plain.splits[split].labels)
    assert torch.equal(dm.splits["train"].images, plain.splits["train"].images)


def test_smote_images_have_the_input_shape_and_lie_between_real_neighbours(plain) -> None:
    dm = digits_lt("smote")
    synthetic = dm.train_set.synthetic
    assert synthetic.images.shape[1:] == plain.splits["train"].images.shape[1:] == (1, 8, 8)
    x_all = plain.splits["train"].images.reshape(len(plain.splits["train"]), -1).double()
    y_all = plain.splits["train"].labels
    for label in synthetic.labels.unique():
        real = x_all[y_all == label]
        new = synthetic.images[synthetic.labels == label].reshape(-1, real.shape[1]).double()
        # SMOTE: new = a + t (b - a), t in [0, 1], b one of a's 5 nearest same-class neighbours.
        neighbours = NearestNeighbors(n_neighbors=6).fit(real).kneighbors(real)[1][:, 1:]
        a = real[:, None, :].expand(-1, 5, -1)
        b = real[torch.as_tensor(neighbours)]
        d = b - a  # (n_real, 5, D)
        for s in new:
            t = ((s - a) * d).sum(-1) / (d * d).sum(-1).clamp_min(1e-12)
            off_line = (s - a - t[..., None] * d).norm(dim=-1)
            on_segment = (off_line < 1e-4) & (t >= -1e-6) & (t <= 1 + 1e-6)
            assert on_segment.any(), int(label)
    # Batches mix real and synthetic rows in the order asked.
    n = len(dm.train_set.indices)
    x, y = dm.train_set.__getitems__([n, 0, n + 1])
    assert torch.equal(x[0], synthetic.images[0]) and torch.equal(x[2], synthetic.images[1])
    assert torch.equal(x[1], plain.splits["train"].images[0]) and y[1] == y_all[0]


def test_redraw_gives_a_new_sample_each_epoch_and_the_same_sequence_for_the_same_seed() -> None:
    def sequence(dm: ImageDataModule, epochs: int = 4) -> list[list[int]]:
        sampler = dm.train_dataloader().sampler
        assert isinstance(sampler, RedrawSampler)
        drawn = []
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            drawn.append(dm.train_set.indices.tolist())
        return drawn

    first = sequence(digits_lt("random_under", redraw_every_epoch=True))
    again = sequence(digits_lt("random_under", redraw_every_epoch=True))
    other = sequence(digits_lt("random_under", redraw_every_epoch=True, random_state=1))
    assert first == again
    assert first != other
    assert all(a != b for a, b in itertools.pairwise(first))
    # Undersampling sees more of the majority classes over the epochs.
    assert len(set().union(*first)) > 2 * len(first[0])


def test_every_rank_builds_the_same_sample_so_shards_are_disjoint() -> None:
    ranks = [digits_lt("smote", redraw_every_epoch=True) for _ in range(2)]
    for dm in ranks:
        dm.train_dataloader().sampler.set_epoch(3)
    a, b = (dm.train_set for dm in ranks)
    assert torch.equal(a.synthetic.images, b.synthetic.images)
    shards = [set(DistributedSampler(a, 2, rank, shuffle=True, seed=0)) for rank in (0, 1)]
    assert not shards[0] & shards[1] and len(shards[0] | shards[1]) == len(a)


def test_weighted_sampler_draws_classes_about_evenly(plain) -> None:
    dm = digits_lt("weighted", num_samples=20_000)
    assert dm.train_set is dm.splits["train"]  # a sampler, not a new data set
    drawn = dm.train_set.labels[torch.as_tensor(list(dm.train_dataloader().sampler))]
    share = np.bincount(drawn.numpy(), minlength=10) / 20_000
    assert np.abs(share - 0.1).max() < 0.015  # vs 0.25 for the head class without weights


@pytest.mark.parametrize("num_samples", [None, 500])
def test_split_counts_per_epoch_adds_up_to_the_weighted_draws(num_samples) -> None:
    dm = digits_lt("weighted", num_samples=num_samples)
    draws = len(dm.train_dataloader().sampler)
    assert draws == (num_samples or len(dm.splits["train"]))
    assert dm.resampler.draws_per_epoch(len(dm.splits["train"])) == draws
    assert sum(dm.split_counts()["per epoch"]) == pytest.approx(draws)


@pytest.mark.parametrize(
    ("resampler", "message"),
    [
        (spec("tomek", redraw_every_epoch=True), "no random draw"),
        (spec("smote", no_such_key=1), "could not be built"),
        (spec("smote", k_neighbors=40), "failed on the training split"),
        ({"_target_": "imblearn.combine.SMOTEENN", "random_state": 0}, "neither selects"),
    ],
)
def test_bad_resampler_settings_are_user_errors(resampler, message) -> None:
    with pytest.raises(FitlabError, match=message):
        ImageDataModule("digits", imbalance_ratio=10, resampler=resampler).setup("fit")


def test_synthesising_needs_images_in_memory(tmp_path) -> None:
    from PIL import Image

    for c in range(2):
        (tmp_path / str(c)).mkdir()
        for i in range(6 + 6 * c):
            Image.fromarray(np.full((4, 4), 40 * c + i, np.uint8), "L").save(
                tmp_path / f"{c}/{i}.png"
            )
    kwargs = {"root": str(tmp_path), "in_memory": False, "val_fraction": 0.0, "test_fraction": 0.3}
    with pytest.raises(FitlabError, match="in memory"):
        ImageDataModule("image_folder", resampler=spec("smote", k_neighbors=2), **kwargs).setup()
    streamed = ImageDataModule("image_folder", resampler=spec("random_over"), **kwargs)
    streamed.setup()
    x, _ = next(iter(streamed.train_dataloader()))
    assert x.shape[1:] == (1, 4, 4) and len(streamed.train_set) == 2 * 8
