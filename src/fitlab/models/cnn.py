"""A CNN built from config: the switches the seed questions ask about, one per block.

Each block is ``conv -> norm -> activation -> downsample -> dropout``. Every block option takes
one value for all blocks or a list with one value per block. Downsampling by ``stride`` uses a
strided convolution instead of a pooling layer (learned downsampling, no extra layer).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from fitlab.models.settings import ACTIVATIONS, CNNSettings, plan_blocks


def make_norm(norm: str, channels: int) -> nn.Module:
    if norm == "batch":
        # Normalises with the batch's statistics in training and with running averages in eval
        # mode: the same image can give different outputs in the two modes.
        return nn.BatchNorm2d(channels)
    if norm == "group":
        # Statistics per sample, so no train/eval difference and no dependence on batch size.
        return nn.GroupNorm(math.gcd(8, channels), channels)
    return nn.Identity()


class CNN(nn.Module):
    """Images (N, C, H, W) -> logits (N, num_classes)."""

    def __init__(
        self, in_channels: int, num_classes: int, image_size: Sequence[int], **settings: Any
    ) -> None:
        """``settings``: the fields of :class:`~fitlab.models.settings.CNNSettings`, by name."""
        super().__init__()
        options = vars(CNNSettings(**settings))
        head_dropout = options.pop("head_dropout")
        plan = plan_blocks(image_size, **options)
        layers: list[nn.Module] = []
        c_in = in_channels
        for b in plan:
            block = [
                nn.Conv2d(c_in, b.channels, b.kernel, b.stride, b.padding, bias=b.norm == "none"),
                make_norm(b.norm, b.channels),
                getattr(nn, ACTIVATIONS[b.activation])(),
            ]
            if b.pool in ("max", "avg"):
                block.append(nn.MaxPool2d(2) if b.pool == "max" else nn.AvgPool2d(2))
            if b.dropout > 0:
                block.append(nn.Dropout2d(b.dropout))
            layers.append(nn.Sequential(*block))
            c_in = b.channels
        self.features = nn.Sequential(*layers)
        self.output_size = height, width = plan[-1].output_size
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(head_dropout), nn.Linear(c_in * height * width, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
