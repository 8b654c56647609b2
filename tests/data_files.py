"""Small data sets written in the real formats: MNIST's IDX files, CIFAR-10's pickled batches,
image-folder trees. The loaders under test read them as they read the downloaded ones."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

RNG = np.random.default_rng(0)


def write_idx(path: Path, array: np.ndarray) -> None:
    """The IDX format: magic (0, 0, dtype 0x08 = ubyte, ndim), big-endian dims, then the bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder: str, n_train: int = 40, n_test: int = 20) -> dict:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = RNG.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n) % 10
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", labels)
        data[prefix] = (images, labels)
    return data


def write_cifar(root: Path, n_per_batch: int = 10) -> dict:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    written = {}
    for name in names:
        data = RNG.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = [int(c) for c in RNG.permutation(np.arange(n_per_batch) % 10)]
        with (folder / name).open("wb") as f:
            pickle.dump({"data": data, "labels": labels, "batch_label": name}, f)
        written[name] = (data.reshape(-1, 3, 32, 32), np.array(labels))
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]  # fmt: skip
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump({"label_names": classes, "num_vis": 3072}, f)
    return written


def write_tree(root: Path, mode: str, fmt: str, per_class: int = 6, size=(12, 10)) -> dict:
    """``root/<class>/<i>.<fmt>``, 3 classes; returns the pixels written, by path."""
    written = {}
    for c, name in enumerate(["cat", "dog", "owl"]):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = (size[0], size[1], 3) if mode == "RGB" else size
            pixels = RNG.integers(0, 256, size=shape, dtype=np.uint8)
            pixels[..., 0, 0] = c * 100  # something per class, not needed for the tests
            path = root / name / f"{i}.{fmt}"
            Image.fromarray(pixels, mode).save(path)
            written[str(path)] = np.asarray(Image.open(path))  # JPEG is lossy: what was stored
    return written
