"""Pixels to model input: grayscale, resize, per-channel normalisation.

One :class:`Preprocess` serves both paths: whole in-memory splits at set-up, and single images
decoded by a DataLoader worker when a tree streams from disk.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision.transforms.v2.functional import rgb_to_grayscale

from fitlab.data.image_folder import FolderImages, StreamedImageDataset
from fitlab.data.tensors import TensorImageDataset

# Images a streamed source decodes to estimate its normalisation statistics.
STATS_SAMPLE = 2000


class Preprocess:
    """Float images (N, C, H, W) -> normalised (N, C', size, size).

    ``grayscale`` turns RGB into one channel with the ITU-R 601 luma weights
    (0.299 R + 0.587 G + 0.114 B); one-channel images pass unchanged. ``mean`` and ``std`` are
    per channel, (1, C', 1, 1), from the training split; ``None`` until :meth:`fit`.
    """

    def __init__(self, grayscale: bool = False, image_size: int | None = None) -> None:
        self.grayscale = grayscale
        self.image_size = image_size
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    def shape(self, images: torch.Tensor) -> torch.Tensor:
        """Grayscale and resize, without normalising."""
        if self.grayscale and images.shape[1] == 3:
            images = rgb_to_grayscale(images)
        if self.image_size and tuple(images.shape[-2:]) != (self.image_size,) * 2:
            size = (self.image_size, self.image_size)
            images = F.interpolate(images, size=size, mode="bilinear", antialias=True)
        return images

    def fit(self, train: torch.Tensor) -> None:
        """Per-channel mean and std of shaped training images (N, C', H, W)."""
        self.mean = train.mean(dim=(0, 2, 3), keepdim=True)
        self.std = train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)

    def normalise_(self, images: torch.Tensor) -> torch.Tensor:
        """In place when possible: a split of CIFAR-10 as float32 is 600 MB."""
        return images.sub_(self.mean).div_(self.std)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        shaped = self.shape(images)
        return self.normalise_(shaped if shaped is not images else images.clone())


def random_shift(images: torch.Tensor, max_shift: int, generator=None) -> torch.Tensor:
    """Shift each image of a batch (N, C, H, W) by its own random whole-pixel offset in
    [-max_shift, max_shift] along both axes, repeating the border pixels.

    Batch-level augmentation: one gather on the batch's device, no per-sample Python.
    """
    n, _, height, width = images.shape
    device = images.device
    dy, dx = torch.randint(-max_shift, max_shift + 1, (2, n, 1), device=device, generator=generator)
    rows = (torch.arange(height, device=device) - dy).clamp_(0, height - 1)  # (N, H)
    cols = (torch.arange(width, device=device) - dx).clamp_(0, width - 1)  # (N, W)
    batch = torch.arange(n, device=device)[:, None, None]
    shifted = images.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return shifted.permute(0, 3, 1, 2).contiguous()


def normalised_splits(
    parts: dict[str, tuple], preprocess: Preprocess, seed: int
) -> tuple[dict[str, Dataset], tuple[int, int, int]]:
    """Every split as a data set normalised by the training split's statistics, and the
    (C, H, W) the model receives. ``parts``: split name -> (images, labels); in-memory images
    are shaped and normalised in place, a tree streamed from disk is normalised as it is read.
    """
    shaped = {name: (_shaped(x, preprocess), y) for name, (x, y) in parts.items()}
    train = shaped["train"][0]
    if isinstance(train, FolderImages):  # streams from disk: statistics from a sample
        sample = np.random.default_rng(seed).permutation(len(train))[:STATS_SAMPLE]
        pixels = np.stack([train.read(i) for i in sample])
        preprocess.fit(preprocess.shape(torch.as_tensor(pixels).float()))
        input_shape = (int(preprocess.mean.shape[1]), *train.size)
    else:
        preprocess.fit(train)
        input_shape = tuple(train.shape[1:])
    # Only now, with train's statistics known, is any split normalised.
    return {name: _dataset(x, y, preprocess) for name, (x, y) in shaped.items()}, input_shape


def _shaped(x, preprocess: Preprocess):
    """In memory: float (N, C, H, W), grayscaled and resized. A streamed tree stays as it is."""
    if isinstance(x, FolderImages):
        return x
    return preprocess.shape(torch.as_tensor(x).float())


def _dataset(x, y, preprocess: Preprocess) -> Dataset:
    labels = torch.as_tensor(y).long()
    if isinstance(x, FolderImages):
        return StreamedImageDataset(x, labels, preprocess)
    return TensorImageDataset(preprocess.normalise_(x).contiguous(), labels)
