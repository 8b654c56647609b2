"""The LightningDataModule: load a source, split it, normalise it, and serve batches.

The DataModule is where the model learns what it is given: input channels, image size, number
of classes, class names and training counts (``model_kwargs``). Nothing of that is typed twice.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from fitlab.data.distributed import exactly_once_sampler
from fitlab.data.sources import SOURCES, SourceData
from fitlab.data.split import stratified_split
from fitlab.data.tensors import TensorImageDataset, collate_batch
from fitlab.errors import FitlabError


class ImageDataModule(L.LightningDataModule):
    """Images from ``source``, split into train/val/test with a fixed seed.

    Normalisation statistics (per channel mean and std) come from the training split only, so
    nothing of the validation or test images leaks into training.
    """

    def __init__(
        self,
        source: str = "digits",
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        image_size: int | None = None,
        seed: int = 42,
        pin_memory: bool = False,
        on_device: bool = True,
    ) -> None:
        super().__init__()
        if source not in SOURCES:
            raise FitlabError(
                f"unknown data source '{source}'", f"choose one of {', '.join(sorted(SOURCES))}"
            )
        self.source = source
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or max(batch_size, 256)
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.image_size = image_size
        self.seed = seed
        self.pin_memory = pin_memory
        self.on_device = on_device
        self.class_names: list[str] = []
        self.splits: dict[str, TensorImageDataset] = {}
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    # ----------------------------------------------------------------- what the model is told
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images the model receives."""
        return tuple(self.splits["train"].images.shape[1:])  # type: ignore[return-value]

    @property
    def class_counts(self) -> list[int]:
        """Training images per class, in label order."""
        counts = torch.bincount(self.splits["train"].labels, minlength=self.num_classes)
        return [int(c) for c in counts]

    def model_kwargs(self) -> dict:
        """Everything the model takes from the data, as plain Python values."""
        self.setup("fit")
        channels, height, width = self.input_shape
        return {
            "in_channels": channels,
            "image_size": [height, width],
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "class_counts": self.class_counts,
        }

    # ----------------------------------------------------------------------------- set-up
    def setup(self, stage: str | None = None) -> None:
        if self.splits:  # called by the pipeline before the Trainer, then again by Lightning
            return
        data = SOURCES[self.source]()
        self.class_names = data.class_names
        arrays = self._split(data)
        images = {name: self._resize(torch.as_tensor(x).float()) for name, (x, _) in arrays.items()}
        train = images["train"]
        self.mean = train.mean(dim=(0, 2, 3), keepdim=True)
        self.std = train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
        for name, (_, y) in arrays.items():
            normalised = ((images[name] - self.mean) / self.std).contiguous()
            self.splits[name] = TensorImageDataset(normalised, torch.as_tensor(y).long())

    def _split(self, data: SourceData) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        test_fraction = 0.0 if data.test is not None else self.test_fraction
        train_idx, val_idx, test_idx = stratified_split(
            data.labels, self.val_fraction, test_fraction, self.seed
        )
        x, y = data.images, data.labels
        test = data.test if data.test is not None else (x[test_idx], y[test_idx])
        return {
            "train": (x[train_idx], y[train_idx]),
            "val": (x[val_idx], y[val_idx]),
            "test": test,
        }

    def _resize(self, images: torch.Tensor) -> torch.Tensor:
        if not self.image_size or tuple(images.shape[-2:]) == (self.image_size,) * 2:
            return images
        size = (self.image_size, self.image_size)
        return F.interpolate(images, size=size, mode="bilinear", antialias=True)

    # ------------------------------------------------------------------------ dataloaders
    def _dataset(self, split: str) -> TensorImageDataset:
        """The split, moved once to the training GPU when ``on_device`` (no host copies then)."""
        dataset = self.splits[split]
        device = self.trainer.strategy.root_device if self.trainer is not None else None
        on_gpu = self.on_device and device is not None and device.type == "cuda"
        if on_gpu and dataset.labels.device != device:
            dataset = self.splits[split] = dataset.to(device)
        return dataset

    def _loader(self, split: str, shuffle: bool, sampler=None) -> DataLoader:
        dataset = self._dataset(split)
        on_host = dataset.labels.device.type == "cpu"
        workers = self.num_workers if on_host else 0  # device tensors cannot go to workers
        return DataLoader(
            dataset,
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=workers,
            collate_fn=collate_batch,
            pin_memory=self.pin_memory and on_host,
            persistent_workers=workers > 0,
        )

    def evaluation_batches(self, split: str, max_samples: int | None = None):
        """Yield (x, y) batches of a split as it is, never resampled, in a fixed order.

        At most ``max_samples`` images (a fixed random subset): for measuring, e.g., the
        training error in eval mode without a full extra pass over a large training set.
        """
        dataset = self.splits[split]
        index = torch.arange(len(dataset))
        if max_samples is not None and max_samples < len(dataset):
            index = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))
            index = index[:max_samples]
        for chunk in index.split(self.eval_batch_size):
            yield dataset.__getitems__(chunk.tolist())

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        # Under DDP every test image exactly once, no padding (data/distributed.py).
        sampler = exactly_once_sampler(self.splits["test"], self.trainer)
        return self._loader("test", shuffle=False, sampler=sampler)
