"""The LightningDataModule: load a source, split it, normalise it, and serve batches.

The DataModule is where the model learns what it is given: input channels, image size, number
of classes, class names and training counts (``model_kwargs``). Nothing of that is typed twice.
The order is fixed: load the source, split, make the training split long-tailed
(``imbalance_ratio``), make a share of its labels wrong (``label_noise``), shape and normalise,
then resample the training split only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from fitlab.data.distributed import exactly_once_sampler
from fitlab.data.noise import with_label_noise
from fitlab.data.resampling import RedrawSampler, ResampledDataset, Resampler
from fitlab.data.resumable import EpochShuffle, ResumableDataLoader
from fitlab.data.sources import SOURCES, SourceOptions
from fitlab.data.split import Folds, Imbalance, long_tailed, split_source
from fitlab.data.tensors import TensorImageDataset, collate_batch
from fitlab.data.transforms import Preprocess, normalised_splits, random_shift
from fitlab.errors import FitlabError


class ImageDataModule(L.LightningDataModule):
    """Images from ``source``, split into train/val/test with a fixed seed.

    Normalisation statistics (per channel mean and std) come from the training split only, so
    nothing of the validation or test images leaks into training. ``resampler`` is a
    ``configs/resampler`` node; it changes the training split only.
    """

    def __init__(
        self,
        source: str = "digits",
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        num_folds: int | None = None,
        fold: int | None = None,
        image_size: int | None = None,
        seed: int = 42,
        pin_memory: bool = False,
        root: str | None = None,
        download: bool = False,
        grayscale: bool = False,
        in_memory: bool | str = "auto",
        imbalance_ratio: float | None = None,
        imbalance_order: Sequence[str] | None = None,
        imbalance_eval: bool = False,
        resampler: Mapping | None = None,
        on_device: bool = True,
        augment_shift: int = 0,
        label_noise: float = 0.0,
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
        self.folds = Folds(num_folds, fold)
        self.test_fraction = test_fraction
        self.seed = seed
        self.pin_memory = pin_memory
        self.options = SourceOptions(root, download, image_size, in_memory)
        self.preprocess = Preprocess(grayscale, image_size)
        self.imbalance = Imbalance(imbalance_ratio, imbalance_order, imbalance_eval)
        self.resampler = Resampler(resampler)
        self.on_device = on_device
        self.augment_shift = augment_shift
        self.label_noise = label_noise
        self.class_names: list[str] = []
        self.splits: dict[str, Dataset] = {}
        self.resampled: ResampledDataset | None = None  # the training split as a sampler left it
        self.source_counts: list[int] = []  # training images per class before the long tail
        self.input_shape: tuple[int, int, int] = (0, 0, 0)  # (C, H, W) the model receives

    # ----------------------------------------------------------------- what the model is told
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def mean(self) -> torch.Tensor | None:
        """Per-channel mean of the training images, (1, C, 1, 1)."""
        return self.preprocess.mean

    @property
    def std(self) -> torch.Tensor | None:
        return self.preprocess.std

    def _counts(self, labels: torch.Tensor) -> list[int]:
        return [int(c) for c in torch.bincount(labels, minlength=self.num_classes)]

    @property
    def class_counts(self) -> list[int]:
        """Training images per class, in label order, as the split holds them (not resampled).

        ``model.class_weights=balanced`` weighs by these, so a resampler and class weights
        together correct twice: the imbalance experiment measures that instead of hiding it.
        """
        return self._counts(self.splits["train"].labels)

    def split_counts(self) -> dict[str, list[float]]:
        """Images per class in every split; ``per epoch`` is what one training epoch draws.

        Under ``weighted`` that is the expected number of draws per class.
        """
        counts = {"train": self.class_counts}
        if self.imbalance.ratio is not None:
            counts = {"before long tail": self.source_counts, **counts}
        if self.resampler.weighted:  # inverse-frequency weights: every present class alike
            draws = self.resampler.draws_per_epoch(len(self.splits["train"]))
            present = sum(c > 0 for c in counts["train"])
            counts["per epoch"] = [draws / present if c else 0 for c in counts["train"]]
        elif self.resampler.resamples_data:
            counts["per epoch"] = self._counts(self.train_set.labels)
        return {**counts, "val": self._counts(self.splits["val"].labels),
                "test": self._counts(self.splits["test"].labels)}  # fmt: skip

    def model_kwargs(self) -> dict:
        """Everything the model takes from the data, as plain Python values.

        The pipeline asks before a Trainer exists: the data is set up for fitting here, once
        (Lightning's own ``setup`` finds it done), so a bad split or resampler fails early.
        """
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
    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Augment training batches on their device: random shifts of up to augment_shift px."""
        training = self.trainer is not None and self.trainer.training
        # Lightning also sends the model summary's example input (a lone tensor) through here.
        if self.augment_shift and training and isinstance(batch, tuple | list):
            x, y = batch
            batch = (random_shift(x, self.augment_shift), y)
        return batch

    def setup(self, stage: str | None = None) -> None:
        # Called by model_kwargs before the Trainer, then again by Lightning (on every rank).
        if not self.splits:
            self._build_splits()
        if stage in (None, "fit") and self.resampler.resamples_data and self.resampled is None:
            # Resample here, before training and on every rank alike (same random_state).
            train = self.splits["train"]
            self.resampled = ResampledDataset(train, train.labels, self.resampler)

    @property
    def train_set(self) -> Dataset:
        """What training epochs draw from: the resampled split, or the split as it is."""
        return self.resampled if self.resampled is not None else self.splits["train"]

    def _build_splits(self) -> None:
        """Load, split, cut the long tail, add label noise; normalise all by training statistics."""
        data = SOURCES[self.source](self.options)
        self.class_names = [str(c) for c in data.class_names]
        parts = split_source(data, self.val_fraction, self.test_fraction, self.seed, self.folds)
        self.source_counts = self._counts(torch.as_tensor(parts["train"][1]).long())
        parts = long_tailed(parts, self.class_names, self.imbalance, self.seed)
        parts = with_label_noise(parts, self.label_noise, self.num_classes, self.seed)
        self.splits, self.input_shape = normalised_splits(parts, self.preprocess, self.seed)

    # ------------------------------------------------------------------------ dataloaders
    def _dataset(self, split: str) -> Dataset:
        """The split (training: as resampled), moved once to the training GPU when ``on_device``.

        Only in-memory tensors move; a resampled training set stays on the host, where its
        draws index the split's pixels with numpy, and so does a tree streamed from disk.
        """
        dataset = self.train_set if split == "train" else self.splits[split]
        device = self.trainer.strategy.root_device if self.trainer is not None else None
        on_gpu = self.on_device and device is not None and device.type == "cuda"
        if on_gpu and isinstance(dataset, TensorImageDataset) and dataset.labels.device != device:
            dataset = self.splits[split] = dataset.to(device)
        return dataset

    def _loader(self, split: str, sampler: Sampler | None = None) -> DataLoader:
        dataset = self._dataset(split)
        on_host = not isinstance(dataset, TensorImageDataset) or dataset.labels.device.type == "cpu"
        workers = self.num_workers if on_host else 0  # device tensors cannot go to workers
        training = split == "train"
        return (ResumableDataLoader if training else DataLoader)(
            dataset,
            batch_size=self.batch_size if training else self.eval_batch_size,
            sampler=sampler,
            num_workers=workers,
            collate_fn=collate_batch,  # every data set here hands out whole batches
            pin_memory=self.pin_memory and on_host,
            # Workers must be forked again after a redraw to see the new sample.
            persistent_workers=workers > 0 and not isinstance(sampler, RedrawSampler),
            **({"progress": self._training_progress, "generator": torch.Generator()}
               if training else {}),
        )  # fmt: skip

    def _training_progress(self) -> tuple[int, int, float]:
        """The epoch, its batches done and its length: a mid-epoch checkpoint's place."""
        trainer = self.trainer
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return trainer.current_epoch, done, trainer.num_training_batches

    def evaluation_batches(self, split: str, max_samples: int | None = None):
        """Yield (x, y) batches of a split as it is, never resampled, in a fixed order.

        At most ``max_samples`` images (a fixed random subset): for measuring, e.g., the
        training error in eval mode without a full extra pass over a large training set.
        """
        dataset = self.splits[split]
        n = len(dataset)
        index = torch.arange(n)
        if max_samples is not None and max_samples < n:
            index = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:max_samples]
        for chunk in index.split(self.eval_batch_size):
            yield dataset.__getitems__(chunk.tolist())

    def train_dataloader(self) -> DataLoader:
        # The epoch's order comes from the run's seed and the epoch alone, so an epoch
        # interrupted in its middle resumes with the same batches (data/resumable.py).
        seed = int(os.environ.get("PL_GLOBAL_SEED", self.seed))  # set by seed_everything
        if self.resampler.weighted:
            sampler = self.resampler.weighted_sampler(self.splits["train"].labels)
        elif self.resampler.redraw:
            sampler = RedrawSampler(self.train_set, int(self.resampler.random_state))
        else:
            sampler = EpochShuffle(len(self.train_set), seed)
        return self._loader("train", sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        # Under DDP every test image exactly once, no padding (data/distributed.py).
        sampler = exactly_once_sampler(self.splits["test"], self.trainer)
        return self._loader("test", sampler)
