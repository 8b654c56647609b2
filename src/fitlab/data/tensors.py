"""An in-memory image data set that hands out whole batches with one indexing operation."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class TensorImageDataset(Dataset):
    """Images (N, C, H, W) float and labels (N,) long held as tensors.

    ``__getitems__`` lets the DataLoader fetch a batch with one fancy-index instead of N Python
    calls and a collate; the sampler (random, distributed, weighted) still decides the indices.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        # Splits cut from NumPy arrays by fancy indexing leave stride 1 on a size-1 channel
        # dimension; the first conv's weight gradient then came out channels-last and DDP warned
        # "Grad strides do not match bucket view strides". view() gives standard strides, no copy.
        self.images = images.view(images.shape) if images.is_contiguous() else images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long, device=self.labels.device)
        return self.images[index], self.labels[index]

    def to(self, device: torch.device) -> TensorImageDataset:
        return TensorImageDataset(self.images.to(device), self.labels.to(device))


def collate_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch is already collated by ``__getitems__``."""
    return batch
