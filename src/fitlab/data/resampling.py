"""Resampling the training split: imbalanced-learn's samplers, or torch's WeightedRandomSampler.

``configs/resampler/<name>.yaml`` is instantiated as it stands (``_target_: imblearn...``), plus
one key of fitlab's own, ``redraw_every_epoch``. Resampling acts at the level of the data set, so
under DDP every rank builds the same resampled set (same ``random_state``) and Lightning's
distributed sampler shards it like any other:

- samplers that select (random over/under-sampling, NearMiss, Tomek links) give indices into the
  split (``sample_indices_``): the resampled set is a view, no image is copied;
- samplers that synthesise (SMOTE, ADASYN) run on the flattened pixels; their new images are
  reshaped back to (C, H, W) and served after the originals, which they keep.

``weighted`` is a sampler, not a data set: it draws the split with inverse-frequency weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from functools import partial
from typing import Any

import numpy as np
import torch
from hydra.utils import get_class, instantiate
from lightning.pytorch.utilities import rank_zero_only
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from sklearn.base import clone
from torch.utils.data import Dataset, WeightedRandomSampler

from fitlab.data.resumable import EpochShuffle
from fitlab.data.tensors import TensorImageDataset
from fitlab.errors import FitlabError

# Keys of a configs/resampler node that fitlab reads itself (the sampler may not take them).
FITLAB_KEYS = ("redraw_every_epoch", "random_state")
# Pixels x images above which a synthesising sampler shows a progress bar while it works.
PROGRESS_ABOVE = 20_000_000


class Resampler:
    """A recipe from ``configs/resampler``: ``None`` (no resampling), imbalanced-learn, weighted."""

    def __init__(self, config: Mapping | None) -> None:
        spec = dict(config or {})
        self.redraw = bool(spec.pop("redraw_every_epoch", False))
        self.random_state = spec.get("random_state")
        self.target = str(spec.get("_target_", ""))
        self.weighted = _is_weighted(self.target)
        if self.weighted:
            spec.pop("random_state", None)  # seeds the generator below; torch has no such key
            spec.setdefault("_partial_", True)
        try:
            self.sampler = instantiate(spec, _convert_="all") if self.target else None
        except Exception as exc:
            raise FitlabError(
                f"resampler {self.target} could not be built ({exc.__cause__ or exc})",
                "check the keys of the configs/resampler file against the sampler's arguments",
            ) from exc
        # weighted draws afresh every epoch anyway; a sampler without random_state cannot.
        if self.redraw and not self.weighted and self.random_state is None:
            raise FitlabError(
                f"resampler.redraw_every_epoch=true, but {self.target or 'no resampler'} has "
                "no random draw to repeat",
                "drop redraw_every_epoch, or use a random sampler such as random_under or smote",
            )

    @property
    def resamples_data(self) -> bool:
        """True for imbalanced-learn samplers, which change the data set itself."""
        return self.sampler is not None and not self.weighted

    def draw(
        self, labels: np.ndarray, pixels: np.ndarray | None, draw: int = 0
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """One ``fit_resample``: (indices into the split, synthesised rows (M, D), their labels).

        Args:
            labels: (N,) labels of the split.
            pixels: (N, D) flattened images, or None where the data is not in memory.
            draw: 0 for the first sample; epoch e of ``redraw_every_epoch`` draws number e.
        """
        sampler = self.sampler
        if draw and self.random_state is not None:
            seed = np.random.SeedSequence([int(self.random_state), draw]).generate_state(1)[0]
            sampler = clone(sampler).set_params(random_state=int(seed))
        if _ignores_pixels(sampler):
            features = np.arange(len(labels))[:, None]  # the rows' identity is all it needs
        elif pixels is None:
            raise FitlabError(
                f"resampler {self.target} needs the training images in memory",
                "set data.in_memory=true, or use random_over, random_under or weighted",
            )
        else:
            features = pixels
        busy = len(labels) * features.shape[1] > PROGRESS_ABOVE and rank_zero_only.rank == 0
        with _progress(f"resampling with {type(sampler).__name__}") if busy else nullcontext():
            try:
                rows, new_labels = sampler.fit_resample(features, labels)
            except (ValueError, RuntimeError) as exc:
                raise FitlabError(
                    f"resampler {type(sampler).__name__} failed on the training split ({exc})",
                    "change its keys (resampler.sampling_strategy, neighbours) or "
                    "data.imbalance_ratio so that every class has enough images",
                ) from exc
        if hasattr(sampler, "sample_indices_") and getattr(sampler, "shrinkage", None) is None:
            return np.asarray(sampler.sample_indices_), None, None
        # Over-samplers return the originals first, in order, then the new rows.
        n = len(labels)
        if len(rows) < n or not np.array_equal(rows[:n], features):
            raise FitlabError(
                f"resampler {type(sampler).__name__} neither selects images nor keeps them all",
                "use a sampler that selects (under/over-sampling) or one that only adds images "
                "(SMOTE and its variants, ADASYN)",
            )
        return np.arange(n), rows[n:], np.asarray(new_labels[n:])

    def draws_per_epoch(self, n: int) -> int:
        """Images ``weighted`` draws in one epoch from a split of ``n``: ``num_samples``, or n."""
        return self.sampler.keywords.get("num_samples") or n

    def weighted_sampler(self, labels: torch.Tensor) -> WeightedRandomSampler:
        """torch's WeightedRandomSampler with weight 1 / count(class) per image.

        The generator is seeded from ``resampler.random_state``, so every DDP rank draws the same
        sequence of indices and Lightning's wrapper hands each rank its own positions of it.
        """
        labels = labels.cpu()  # the split may live on the GPU; the sampler runs on the host
        counts = torch.bincount(labels).double()
        weights = (1.0 / counts.clamp_min(1))[labels]
        factory: partial = self.sampler
        num_samples = self.draws_per_epoch(len(labels))
        generator = torch.Generator().manual_seed(int(self.random_state or 0))
        kwargs = {**factory.keywords, "num_samples": num_samples, "generator": generator}
        return factory.func(*factory.args, weights=weights, **kwargs)


def _is_weighted(target: str) -> bool:
    """True when ``_target_`` names torch's WeightedRandomSampler (or a subclass of it)."""
    if not target:
        return False
    try:
        cls = get_class(target)
    except Exception:  # not a class: instantiate below reports it
        return False
    return issubclass(cls, WeightedRandomSampler)


def _ignores_pixels(sampler: Any) -> bool:
    """Random over/under-sampling looks at labels only (unless a shrinkage bootstrap jitters)."""
    from imblearn.over_sampling import RandomOverSampler
    from imblearn.under_sampling import RandomUnderSampler

    random = isinstance(sampler, (RandomOverSampler, RandomUnderSampler))
    return random and getattr(sampler, "shrinkage", None) is None


def _progress(description: str) -> Progress:
    """A pulsing bar with the elapsed time: imbalanced-learn reports no progress of its own."""
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    progress.add_task(description, total=None)
    return progress


class ResampledDataset(Dataset):
    """The training split as a sampler leaves it: rows of ``base``, then synthesised images.

    ``indices`` point into ``base`` (repeated for over-sampling, missing for under-sampling);
    ``synthetic`` holds SMOTE/ADASYN images. ``draw(e)`` replaces both with draw number e.
    """

    def __init__(self, base: Dataset, labels: torch.Tensor, resampler: Resampler) -> None:
        self.base = base
        self.base_labels = labels
        self.resampler = resampler
        self.draw_number = -1
        self.draw(0)

    def _pixels(self) -> np.ndarray | None:
        images = getattr(self.base, "images", None)
        if not isinstance(images, torch.Tensor):
            return None
        return images.reshape(len(images), -1).numpy()  # a view of the split: no copy

    def draw(self, number: int) -> None:
        indices, rows, labels = self.resampler.draw(
            self.base_labels.numpy(), self._pixels(), number
        )
        self.indices = torch.as_tensor(indices, dtype=torch.long)
        self.synthetic = None
        if rows is not None and len(rows):
            shape = (len(rows), *self.base.images.shape[1:])
            self.synthetic = TensorImageDataset(
                torch.as_tensor(rows).reshape(shape).to(self.base.images.dtype),
                torch.as_tensor(labels).long(),
            )
        self.draw_number = number

    @property
    def labels(self) -> torch.Tensor:
        own = self.base_labels[self.indices]
        return own if self.synthetic is None else torch.cat([own, self.synthetic.labels])

    def __len__(self) -> int:
        return len(self.indices) + (len(self.synthetic) if self.synthetic is not None else 0)

    def __getitem__(self, position: int) -> Any:
        if position < len(self.indices):
            return self.base[int(self.indices[position])]
        return self.synthetic[position - len(self.indices)]

    def __getitems__(self, positions: list[int]) -> Any:
        """A batch: one gather from the split and, for synthesised rows, one from those."""
        pos = torch.as_tensor(positions, dtype=torch.long)
        n = len(self.indices)
        if self.synthetic is None or bool((pos < n).all()):
            return self.base.__getitems__(self.indices[pos].tolist())
        from_base = pos < n
        images = torch.empty((len(pos), *self.base.images.shape[1:]), dtype=torch.float32)
        labels = torch.empty(len(pos), dtype=torch.long)
        images[from_base], labels[from_base] = self.base.__getitems__(
            self.indices[pos[from_base]].tolist()
        )
        images[~from_base], labels[~from_base] = self.synthetic.__getitems__(
            (pos[~from_base] - n).tolist()
        )
        return images, labels


class RedrawSampler(EpochShuffle):
    """Shuffles a :class:`ResampledDataset` and redraws its sample at every ``set_epoch``.

    Lightning calls ``set_epoch(e)`` before each training epoch, directly or, under DDP, through
    its ``DistributedSamplerWrapper``: every rank then draws sample e from the same seed and the
    same shuffle, and takes its own positions of it. Undersampling sees every image over time.
    """

    def __init__(self, dataset: ResampledDataset, seed: int) -> None:
        super().__init__(len(dataset), seed)
        self.dataset = dataset

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if self.dataset.draw_number != epoch:
            self.dataset.draw(epoch)
        self.size = len(self.dataset)
