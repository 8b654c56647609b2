"""The real-data sources, on small files written here in the real formats.

MNIST and Fashion-MNIST as gzipped IDX files, CIFAR-10 as pickled Python batches, and image
trees of real PNG and JPEG files, RGB and grayscale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli
from data_files import write_cifar, write_mnist, write_tree
from fitlab.data import ImageDataModule
from fitlab.errors import FitlabError


@pytest.mark.parametrize(
    ("source", "folder", "first_class"),
    [("mnist", "MNIST", "0 - zero"), ("fashion_mnist", "FashionMNIST", "T-shirt/top")],
)
def test_idx_sources_keep_the_official_test_split(tmp_path, source, folder, first_class) -> None:
    written = write_mnist(tmp_path, folder)
    dm = ImageDataModule(source, root=str(tmp_path), val_fraction=0.25, batch_size=8)
    dm.setup("fit")
    assert dm.input_shape == (1, 28, 28)
    assert dm.class_names[0] == first_class and dm.num_classes == 10
    # The official test split, image for image (undo the training normalisation to compare).
    images, labels = written["t10k"]
    test = dm.splits["test"]
    assert torch.equal(test.labels, torch.as_tensor(labels))
    restored = test.images * dm.std + dm.mean
    assert torch.allclose(restored[:, 0], torch.as_tensor(images).float(), atol=1e-3)
    # Validation comes out of the training split: 40 = 30 train + 10 val.
    assert len(dm.splits["train"]) == 30 and len(dm.splits["val"]) == 10


def test_missing_idx_files_name_the_folder_and_the_download_switch(tmp_path) -> None:
    with pytest.raises(FitlabError) as err:
        ImageDataModule("mnist", root=str(tmp_path)).setup("fit")
    assert str(tmp_path / "MNIST" / "raw") in err.value.what
    assert "data.download=true" in err.value.fix


@pytest.mark.parametrize("grayscale", [False, True])
def test_cifar10_batches_in_colour_and_grayscale(tmp_path, grayscale) -> None:
    written = write_cifar(tmp_path)
    dm = ImageDataModule("cifar10", root=str(tmp_path), val_fraction=0.2, grayscale=grayscale)
    dm.setup("fit")
    assert dm.input_shape == ((1 if grayscale else 3), 32, 32)
    assert dm.class_names[9] == "truck"
    assert len(dm.splits["train"]) + len(dm.splits["val"]) == 50
    rgb, labels = written["test_batch"]
    test = dm.splits["test"]
    assert torch.equal(test.labels, torch.as_tensor(labels))
    expected = torch.as_tensor(rgb).float()
    if grayscale:  # ITU-R 601 luma
        expected = (0.299 * expected[:, 0] + 0.587 * expected[:, 1] + 0.114 * expected[:, 2])[
            :, None
        ]
    assert torch.allclose(test.images * dm.std + dm.mean, expected, atol=0.1)
    # Normalisation per channel, from the training split only.
    train = dm.splits["train"].images
    assert torch.allclose(train.mean(dim=(0, 2, 3)), torch.zeros(train.shape[1]), atol=1e-4)
    assert torch.allclose(train.std(dim=(0, 2, 3)), torch.ones(train.shape[1]), atol=1e-4)


def test_missing_cifar_batches_name_the_folder(tmp_path) -> None:
    with pytest.raises(FitlabError) as err:
        ImageDataModule("cifar10", root=str(tmp_path)).setup("fit")
    assert "cifar-10-batches-py" in err.value.what and "data.download=true" in err.value.fix


@pytest.mark.parametrize(
    ("mode", "fmt", "grayscale", "channels"),
    [
        ("RGB", "png", False, 3),
        ("RGB", "png", True, 1),
        ("L", "png", False, 1),
        ("RGB", "jpg", False, 3),
        ("L", "jpg", True, 1),
    ],
)
def test_image_folder_trees(tmp_path, mode, fmt, grayscale, channels) -> None:
    write_tree(tmp_path, mode, fmt)
    dm = ImageDataModule(
        "image_folder", root=str(tmp_path), grayscale=grayscale, val_fraction=0.2,
        test_fraction=0.2,
    )  # fmt: skip
    dm.setup("fit")
    assert dm.class_names == ["cat", "dog", "owl"]
    assert dm.input_shape == (channels, 12, 10)
    counts = dm.split_counts()
    per_class = np.sum([counts[s] for s in ("train", "val", "test")], axis=0)
    assert per_class.tolist() == [6, 6, 6]


def test_image_folder_pixels_and_labels_are_the_files(tmp_path) -> None:
    written = write_tree(tmp_path, "RGB", "png")
    dm = ImageDataModule("image_folder", root=str(tmp_path), val_fraction=0.0, test_fraction=0.5)
    dm.setup("fit")
    train = dm.splits["train"]
    assert len(train) == 9
    paths = list(written)
    stored = np.stack([written[p].transpose(2, 0, 1) for p in paths]).astype(np.float32)
    for image, label in zip((train.images * dm.std + dm.mean).numpy(), train.labels, strict=True):
        match = int(np.abs(stored - image).max(axis=(1, 2, 3)).argmin())
        assert np.abs(stored[match] - image).max() < 1e-3  # PNG is lossless
        assert Path(paths[match]).parent.name == dm.class_names[label]


def test_a_mixed_tree_becomes_rgb_and_a_streamed_tree_gives_the_same_tensors(tmp_path) -> None:
    write_tree(tmp_path / "a", "RGB", "png", per_class=4)
    write_tree(tmp_path / "a", "L", "jpg", per_class=4)  # same folders: a mixed tree
    kwargs = {"root": str(tmp_path / "a"), "val_fraction": 0.2, "test_fraction": 0.2}
    held = ImageDataModule("image_folder", in_memory=True, **kwargs)
    streamed = ImageDataModule("image_folder", in_memory=False, num_workers=2, **kwargs)
    held.setup("fit")
    streamed.setup("fit")
    assert held.input_shape == streamed.input_shape == (3, 12, 10)
    for split in ("train", "val", "test"):
        x_held, y_held = next(iter(held._loader(split)))
        x_streamed, y_streamed = next(iter(streamed._loader(split)))
        assert torch.equal(y_held, y_streamed)
        assert torch.allclose(x_held, x_streamed, atol=1e-5), split


def test_image_folder_sizes_and_errors(tmp_path) -> None:
    write_tree(tmp_path / "t", "RGB", "png", per_class=5)
    write_tree(tmp_path / "t", "RGB", "png", per_class=2, size=(20, 20))  # overwrites 0.png, 1.png
    kwargs = {"val_fraction": 0.2, "test_fraction": 0.2}
    with pytest.raises(FitlabError, match="different sizes") as err:
        ImageDataModule("image_folder", root=str(tmp_path / "t"), **kwargs).setup("fit")
    assert "data.image_size" in err.value.fix
    dm = ImageDataModule("image_folder", root=str(tmp_path / "t"), image_size=16, **kwargs)
    dm.setup("fit")
    assert dm.input_shape == (3, 16, 16)
    with pytest.raises(FitlabError, match="does not exist"):
        ImageDataModule("image_folder", root=str(tmp_path / "nowhere")).setup("fit")
    with pytest.raises(FitlabError, match=r"needs data\.root"):
        ImageDataModule("image_folder").setup("fit")
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(FitlabError, match="subfolder"):
        ImageDataModule("image_folder", root=str(tmp_path / "empty")).setup("fit")


def test_a_tree_too_small_for_the_split_is_a_user_error(tmp_path) -> None:
    write_tree(tmp_path, "L", "png", per_class=2)
    with pytest.raises(FitlabError, match="cannot hold every one of 3 classes") as err:
        ImageDataModule("image_folder", root=str(tmp_path), val_fraction=0.1).setup("fit")
    assert "fractions" in err.value.fix


@pytest.mark.slow
def test_cli_missing_data_is_one_line_and_exit_2(tmp_path) -> None:
    result = run_cli("fitlab.train", "data=mnist", f"data.root={tmp_path / 'none'}", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("fitlab: error: no mnist files in ")
    assert (
        str(tmp_path / "none" / "MNIST" / "raw") in lines[-1] and "data.download=true" in lines[-1]
    )
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "logs").rglob("*.ckpt"))  # failed before any training
