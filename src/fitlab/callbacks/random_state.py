"""Random number generators saved in every checkpoint and restored on resume.

Lightning restores weights, optimizer, scheduler, loop counters and callback states, but not the
global generators: it only isolates them around the sanity check. The training DataLoader
shuffles with the global torch generator and dropout draws from it, so a run resumed without them
would see other batches and other masks than the run that was interrupted.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch


class RandomState(L.Callback):
    """Saves torch (CPU and CUDA), NumPy and Python generator states with each checkpoint.

    Stored as tensors, ints and tuples only, so the checkpoint still loads with
    ``weights_only=True``. Under DDP the checkpoint holds rank zero's states: every rank was
    seeded alike, and the distributed sampler orders data by seed and epoch, not by these.
    """

    def state_dict(self) -> dict[str, Any]:
        numpy_state = np.random.get_state(legacy=False)
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
            "numpy_key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "numpy_rest": (
                numpy_state["state"]["pos"],
                numpy_state["has_gauss"],
                numpy_state["gauss"],
            ),
            "python": random.getstate(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])
        pos, has_gauss, gauss = state["numpy_rest"]
        key = state["numpy_key"].numpy().astype(np.uint32)
        np.random.set_state(
            {
                "bit_generator": "MT19937",
                "state": {"key": key, "pos": pos},
                "has_gauss": has_gauss,
                "gauss": gauss,
            }
        )
        random.setstate(state["python"])
