"""Testing on several processes that counts every test image exactly once.

Lightning gives each rank a ``DistributedSampler``, which pads the data set by repeating its
first images until every rank has as many: 361 test images on 2 ranks become 362, one image
tested twice and counted twice in ``test/acc``. The test loader takes Lightning's
``UnrepeatedDistributedSampler`` instead (made for prediction): rank r of R takes images r,
r + R, r + 2R, ..., nothing repeated, so ranks may hold one image fewer. That is safe here
because no test step waits for the other ranks; the metrics gather their states, whatever their
lengths, once at the end of the epoch. Being a ``DistributedSampler``, Lightning leaves it as is.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import Dataset


def exactly_once_sampler(
    dataset: Dataset, trainer: L.Trainer | None
) -> UnrepeatedDistributedSampler | None:
    """A sampler for evaluation under DDP; None (the usual sequential order) on one process."""
    if trainer is None or trainer.world_size <= 1:
        return None
    return UnrepeatedDistributedSampler(
        dataset, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False
    )
