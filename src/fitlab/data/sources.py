"""Data sources: each returns the images of one data set as arrays, with its class names.

A source returns ``SourceData``: images as uint8 or float arrays of shape (N, C, H, W), integer
labels of shape (N,), and the class names in label order. Sources with an official test split
return it separately; the others leave the test split to :mod:`fitlab.data.split`. An image tree
too large for memory returns :class:`~fitlab.data.image_folder.FolderImages` instead of an
array: the same indexing, decoded only when a batch asks for it.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fitlab.data.source_data import SourceData
from fitlab.errors import FitlabError


@dataclass
class SourceOptions:
    """What the DataModule passes to every source; each source uses the fields it needs."""

    root: str | None = None
    download: bool = False
    image_size: int | None = None
    in_memory: bool | str = "auto"


def load_digits(options: SourceOptions) -> SourceData:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, pixel values 0..16)."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = bunch.images.astype(np.float32)[:, None]  # (N, 1, 8, 8)
    return SourceData(images, bunch.target.astype(np.int64), [str(c) for c in bunch.target_names])


def _root(options: SourceOptions, name: str) -> Path:
    if not options.root:
        raise FitlabError(f"data={name} needs data.root", "pass data.root=FOLDER")
    return Path(options.root).expanduser()


def _download(dataset_class: type, root: Path, name: str) -> None:
    """torchvision's own download and checksum check; the files are then read from ``root``."""
    try:
        dataset_class(str(root), train=True, download=True)
    except Exception as exc:  # torchvision raises RuntimeError or URLError, with the mirrors tried
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FitlabError(
            f"downloading {name} into {root} failed ({first_line})",
            "check the network, or copy the files there yourself and set data.download=false",
        ) from exc


def _load_idx(dataset_class: type, options: SourceOptions, name: str) -> SourceData:
    """MNIST-format data sets (IDX files) through torchvision, official test split kept."""
    root = _root(options, name)
    if options.download:
        _download(dataset_class, root, name)
    raw = root / dataset_class.__name__ / "raw"
    for url, _ in dataset_class.resources:
        # The files as published are gzipped; torchvision reads them unpacked, as its download
        # leaves them. Unpack files that were copied in by hand the same way.
        packed = raw / Path(url).name
        if packed.suffix == ".gz" and packed.is_file() and not packed.with_suffix("").is_file():
            from torchvision.datasets.utils import extract_archive

            extract_archive(str(packed))
    try:
        train, test = (dataset_class(str(root), train=flag) for flag in (True, False))
    except RuntimeError as exc:
        files = ", ".join(Path(url).name for url, _ in dataset_class.resources)
        raise FitlabError(
            f"no {name} files in {raw} (expected {files}, gzipped or not)",
            "set data.download=true to fetch them, or data.root=FOLDER holding "
            f"{dataset_class.__name__}/raw",
        ) from exc
    split = [(d.data.numpy()[:, None], d.targets.numpy().astype(np.int64)) for d in (train, test)]
    return SourceData(*split[0], list(train.classes), test=split[1])


def load_mnist(options: SourceOptions) -> SourceData:
    """MNIST: 60,000 + 10,000 handwritten digits, 28x28 grayscale."""
    from torchvision.datasets import MNIST

    return _load_idx(MNIST, options, "mnist")


def load_fashion_mnist(options: SourceOptions) -> SourceData:
    """Fashion-MNIST: 60,000 + 10,000 clothing images, 28x28 grayscale, 10 classes."""
    from torchvision.datasets import FashionMNIST

    return _load_idx(FashionMNIST, options, "fashion_mnist")


def load_cifar10(options: SourceOptions) -> SourceData:
    """CIFAR-10: 50,000 + 10,000 colour images, 32x32 RGB, 10 classes.

    torchvision downloads and checks the archive; the batches (Python pickles of a
    ``(N, 3072)`` uint8 array and a label list) are read here, because torchvision's reader
    accepts only files with the official checksums, not a subset or a rebuilt copy.
    """
    from torchvision.datasets import CIFAR10

    root = _root(options, "cifar10")
    if options.download:
        _download(CIFAR10, root, "cifar10")
    folder = root / CIFAR10.base_folder
    names = [name for name, _ in CIFAR10.train_list + CIFAR10.test_list]
    missing = [n for n in [*names, CIFAR10.meta["filename"]] if not (folder / n).is_file()]
    if missing:
        raise FitlabError(
            f"no CIFAR-10 batches in {folder} (missing {', '.join(missing)})",
            "set data.download=true to fetch them, or data.root=FOLDER holding "
            f"{CIFAR10.base_folder}",
        )

    def read(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
        batches = [_unpickle(folder / name) for name in files]
        images = np.concatenate([b["data"] for b in batches]).reshape(-1, 3, 32, 32)
        labels = np.concatenate([np.asarray(b["labels"], dtype=np.int64) for b in batches])
        return images, labels

    train = read([name for name, _ in CIFAR10.train_list])
    test = read([name for name, _ in CIFAR10.test_list])
    classes = list(_unpickle(folder / CIFAR10.meta["filename"])[CIFAR10.meta["key"]])
    return SourceData(*train, classes, test=test)


def _unpickle(path: Path) -> dict:
    with path.open("rb") as f:
        return pickle.load(f, encoding="latin1")


def load_image_folder(options: SourceOptions) -> SourceData:
    """Any class-per-folder tree of images: ``root/<class>/<image>.png``."""
    from fitlab.data.image_folder import load_tree  # PIL and torch load only when used

    return load_tree(_root(options, "image_folder"), options.image_size, options.in_memory)


# (H, W) of sources whose size is known before loading: a model that does not fit is refused
# before any data is read. Sources whose size comes from their files are checked at build time.
IMAGE_SIZES = {"digits": (8, 8), "mnist": (28, 28), "fashion_mnist": (28, 28), "cifar10": (32, 32)}
SOURCES = {
    "digits": load_digits,
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "image_folder": load_image_folder,
}
