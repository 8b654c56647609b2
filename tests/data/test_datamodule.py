"""The digits DataModule: splits, normalisation, resize, batches, augmentation."""

from __future__ import annotations

import pytest
import torch

from fitlab.data import ImageDataModule
from fitlab.data.tensors import TensorImageDataset


@pytest.fixture(scope="module")
def digits() -> ImageDataModule:
    dm = ImageDataModule(batch_size=32)
    dm.setup("fit")
    return dm


def test_digits_sizes_shapes_and_what_the_model_is_told(digits: ImageDataModule) -> None:
    sizes = {name: len(ds) for name, ds in digits.splits.items()}
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == 360  # 20 %
    kwargs = digits.model_kwargs()
    assert kwargs["in_channels"] == 1 and kwargs["image_size"] == [8, 8]
    assert kwargs["num_classes"] == 10 and kwargs["class_names"] == [str(d) for d in range(10)]
    assert sum(kwargs["class_counts"]) == sizes["train"]
    assert all(isinstance(c, int) for c in kwargs["class_counts"])


def test_normalisation_statistics_come_from_the_training_split(digits: ImageDataModule) -> None:
    train = digits.splits["train"].images
    assert train.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert train.std().item() == pytest.approx(1.0, abs=1e-3)
    test = digits.splits["test"].images
    assert abs(test.mean().item()) > 1e-5  # normalised with the training statistics, not its own


def test_batches_are_nchw_float_and_cover_the_training_set(digits: ImageDataModule) -> None:
    seen = []
    for x, y in digits.train_dataloader():
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 8, 8) and len(x) <= 32
        seen.append(y)
    assert torch.cat(seen).sort().values.equal(digits.splits["train"].labels.sort().values)


def test_batched_fetch_equals_per_item_fetch() -> None:
    ds = TensorImageDataset(torch.randn(10, 1, 4, 4), torch.arange(10))
    x, y = ds.__getitems__([3, 1, 7])
    for row, i in enumerate([3, 1, 7]):
        assert torch.equal(x[row], ds[i][0]) and y[row] == ds[i][1]


def test_image_size_resizes_every_split() -> None:
    dm = ImageDataModule(image_size=16)
    dm.setup("fit")
    assert dm.input_shape == (1, 16, 16)
    assert dm.splits["test"].images.shape[1:] == (1, 16, 16)


def test_random_shift_moves_each_image_by_whole_pixels_within_the_limit() -> None:
    from fitlab.data.transforms import random_shift

    images = torch.zeros(64, 2, 7, 7)
    images[:, :, 3, 3] = 1.0  # one bright pixel in the middle of both channels
    shifted = random_shift(images, 2, generator=torch.Generator().manual_seed(0))
    assert shifted.shape == images.shape
    positions = shifted[:, 0].flatten(1).argmax(1)
    rows, cols = positions // 7, positions % 7
    assert ((rows - 3).abs() <= 2).all() and ((cols - 3).abs() <= 2).all()
    assert len(set(positions.tolist())) > 10  # each image has its own offset
    assert torch.equal(shifted[:, 0], shifted[:, 1])  # the same shift for every channel
    assert shifted.sum() == images.sum()  # the pixel moved, nothing was smeared


def test_augmentation_shifts_training_batches_only() -> None:
    from functools import partial

    import lightning as L

    from fitlab.models import Classifier

    seen: dict[str, list[torch.Tensor]] = {"train": [], "val": []}

    class Spy(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen["train"].append(batch[0])

        def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, *args):
            seen["val"].append(batch[0])

    dm = ImageDataModule(batch_size=1500, augment_shift=1)
    model = Classifier(
        **dm.model_kwargs(), channels=[4], optimizer=partial(torch.optim.SGD, lr=0.1)
    )
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, callbacks=[Spy()],
                        enable_progress_bar=False, num_sanity_val_steps=0)  # fmt: skip
    trainer.fit(model, datamodule=dm)  # the model summary's example input passes too
    (train,), (val,) = seen["train"], seen["val"]
    assert train.shape == dm.splits["train"].images.shape
    # shuffled and shifted: as a multiset of pixel values the batch is no longer the split
    assert not torch.equal(train.sort(0).values, dm.splits["train"].images.sort(0).values)
    assert torch.equal(val, dm.splits["val"].images)
