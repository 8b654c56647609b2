"""A training loader that can pick an epoch up in its middle, for SLURM's warning signal.

A job warned before its time limit saves a checkpoint between two batches (callbacks/requeue.py).
Lightning stores the ``state_dict`` of a loader that has one with every checkpoint, restores it
on resume, and from then on expects the loader to serve only the rest of the epoch. Two things
make "the rest" the very batches the interrupted run would have drawn:

- the order of an epoch depends on the seed and the epoch number alone (:class:`EpochShuffle`,
  and Lightning's ``DistributedSampler`` under DDP), never on a generator that moved on;
- the loader iterator does not draw its seed from the global generator (which dropout uses and
  which the checkpoint restores mid-epoch): it gets a generator of its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

# (epoch, batches of it done, batches an epoch has): the trainer's view, read when saving.
Progress = Callable[[], tuple[int, int, float]]


class EpochShuffle(Sampler[int]):
    """A random order of ``size`` indices drawn from ``seed + epoch``: the same order for an
    epoch however often it is drawn. Lightning calls ``set_epoch`` before every epoch."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())


class _SkipFirst:
    """The loader's batch indices, without the ones an interrupted epoch had already trained on.

    Skipping happens on indices, so no skipped image is loaded; the length stays the epoch's,
    as Lightning counts the batches it restored as done.
    """

    def __init__(self, loader: ResumableDataLoader, indices: Any) -> None:
        self.loader = loader
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator:
        # Lazily: a worker-process iterator makes one index iterator it never draws from.
        def rest() -> Iterator:
            skip, self.loader.skip_batches = self.loader.skip_batches, 0
            yield from itertools.islice(iter(self.indices), skip, None)

        return rest()


class ResumableDataLoader(DataLoader):
    """A DataLoader whose place in the epoch goes into checkpoints and comes back from them.

    ``progress`` reports the trainer's epoch and the batches of it done. A checkpoint saved at
    an epoch's end resumes at the next epoch as before; one saved after batch b of epoch e makes
    the next iteration of epoch e start at batch b + 1.
    """

    def __init__(self, *args: Any, progress: Progress | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.progress = progress
        self.skip_batches = 0

    @property
    def _index_sampler(self) -> _SkipFirst:
        return _SkipFirst(self, super()._index_sampler)

    def state_dict(self) -> dict[str, int]:
        if self.progress is None:
            return {"epoch": 0, "batches_done": 0}
        epoch, done, total = self.progress()
        return {"epoch": epoch, "batches_done": 0 if done >= total else done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.skip_batches = int(state["batches_done"])
        # Lightning makes the first iterator of a resumed fit before it sets the sampler's
        # epoch; worker processes would already draw indices from epoch 0's order.
        if self.skip_batches and hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(int(state["epoch"]))
