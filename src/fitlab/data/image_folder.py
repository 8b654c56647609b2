"""A class-per-folder tree of images (PNG, JPEG, ...): your own photos as a data set.

``root/<class>/**/<image>``: the sorted folder names are the classes, by torchvision's
``find_classes``/``make_dataset`` rules. Images keep their channels: one when every image in the
tree is grayscale, three (RGB) otherwise, so a mixed tree still stacks. A tree whose decoded
images fit in memory (``data.in_memory=auto``: under 2 GiB as float32) is decoded once, with a
progress bar, and then held as tensors; a larger one streams from disk through the DataLoader's
workers (``data.num_workers``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image
from rich.progress import track
from torch.utils.data import Dataset

from fitlab.data.source_data import SourceData
from fitlab.errors import FitlabError

IN_MEMORY_LIMIT_BYTES = 2 * 1024**3
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


@dataclass
class FolderImages:
    """Image files, decoded on demand to uint8 (C, H, W); indexing gives a subset, like arrays."""

    files: np.ndarray  # (N,) paths as str
    channels: int
    size: tuple[int, int]  # (H, W): every image is resized to it when it differs

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: np.ndarray) -> FolderImages:
        return replace(self, files=self.files[index])

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), self.channels, *self.size)

    def read(self, i: int) -> np.ndarray:
        with Image.open(self.files[i]) as img:
            img = img.convert("L" if self.channels == 1 else "RGB")
            height, width = self.size
            if img.size != (width, height):
                img = img.resize((width, height), Image.Resampling.BILINEAR)
            pixels = np.array(img)  # a writable copy, for torch.from_numpy
        return pixels[None] if self.channels == 1 else pixels.transpose(2, 0, 1)

    def decode(self) -> np.ndarray:
        """All images as one uint8 array (N, C, H, W), with a progress bar."""
        out = np.empty(self.shape, dtype=np.uint8)
        steps = track(range(len(self)), "decoding images", disable=not _show_progress())
        for i in steps:
            out[i] = self.read(i)
        return out


def _show_progress() -> bool:
    return rank_zero_only.rank == 0


def scan(root: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Files, labels and class names of a class-per-folder tree."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    if not root.is_dir():
        raise FitlabError(
            f"image folder {root} does not exist",
            "set data.root to a folder with one subfolder of images per class",
        )
    try:
        classes, class_to_idx = find_classes(root)
        samples = make_dataset(root, class_to_idx, extensions=IMG_EXTENSIONS)
    except FileNotFoundError as exc:
        raise FitlabError(
            f"image folder {root}: {exc}",
            "put each class's images (" + ", ".join(IMG_EXTENSIONS) + ") in a subfolder "
            "named after the class",
        ) from exc
    files = np.array([path for path, _ in samples])
    labels = np.array([label for _, label in samples], dtype=np.int64)
    return files, labels, classes


def read_headers(files: np.ndarray) -> tuple[int, set[tuple[int, int]]]:
    """Channels of the tree (1 if every image is grayscale, else 3) and the sizes met (H, W).

    Only headers are read: PIL decodes pixels lazily.
    """
    gray, sizes = True, set()
    for path in track(files, "reading image headers", disable=not _show_progress()):
        try:
            with Image.open(path) as img:
                gray &= img.mode in GRAY_MODES
                sizes.add((img.height, img.width))
        except OSError as exc:
            raise FitlabError(f"{path} is not a readable image ({exc})", "remove it") from exc
    return (1 if gray else 3), sizes


def load_tree(root: Path, image_size: int | None, in_memory: bool | str = "auto") -> SourceData:
    """The tree as :class:`SourceData`: decoded arrays, or :class:`FolderImages` to stream."""
    files, labels, classes = scan(root)
    channels, sizes = read_headers(files)
    if image_size:
        size = (image_size, image_size)
    elif len(sizes) == 1:
        (size,) = sizes
    else:
        shown = ", ".join(f"{h}x{w}" for h, w in sorted(sizes)[:3])
        raise FitlabError(
            f"the images in {root} have {len(sizes)} different sizes ({shown}, ...)",
            "set data.image_size=N to resize every image to N x N",
        )
    images = FolderImages(files, channels, size)
    if in_memory not in (True, False, "auto"):
        raise FitlabError(
            f"data.in_memory={in_memory!r} is not an option", "use auto, true or false"
        )
    if in_memory == "auto":
        in_memory = np.prod(images.shape) * 4 <= IN_MEMORY_LIMIT_BYTES
    return SourceData(images.decode() if in_memory else images, labels, classes)


class StreamedImageDataset(Dataset):
    """Images decoded from disk per item, then ``transform`` (float (C, H, W) -> (C', H, W))."""

    def __init__(
        self,
        images: FolderImages,
        labels: torch.Tensor,
        transform: Callable[[torch.Tensor], torch.Tensor],
    ) -> None:
        self.images = images
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.__getitems__([index])
        return x[0], y[0]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """A whole batch per call, like the in-memory set: a worker decodes it and collates."""
        pixels = torch.from_numpy(np.stack([self.images.read(i) for i in indices])).float()
        return self.transform(pixels), self.labels[torch.as_tensor(indices, dtype=torch.long)]
