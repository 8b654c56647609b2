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

from fitlab.errors import FitlabError

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
NORMS = ("batch", "group", "none")
POOLS = ("max", "avg", "stride", "none")


def per_block(value: Any, blocks: int, name: str) -> list:
    """Broadcast one value to every block, or check a list has one value per block."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != blocks:
            raise FitlabError(
                f"model.{name} has {len(value)} values for {blocks} blocks",
                f"give one value, or one per entry of model.channels ({blocks})",
            )
        return list(value)
    return [value] * blocks


def choice(value: str, options: Sequence[str], name: str) -> str:
    if value not in options:
        raise FitlabError(f"model.{name}={value!r} is not an option", f"use one of {list(options)}")
    return value


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """out = floor((in + 2 * padding - kernel) / stride) + 1, for convolution and pooling."""
    return (size + 2 * padding - kernel) // stride + 1


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
        self,
        in_channels: int,
        num_classes: int,
        image_size: Sequence[int],
        channels: Sequence[int] = (32, 64, 128),
        kernel_size: int | Sequence[int] = 3,
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 1,
        pool: str | Sequence[str] = "max",
        norm: str | Sequence[str] = "batch",
        activation: str | Sequence[str] = "relu",
        dropout: float | Sequence[float] = 0.0,
        head_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        blocks = len(channels)
        if blocks < 1:
            raise FitlabError("model.channels is empty", "give at least one block, e.g. [32, 64]")
        kernels = per_block(kernel_size, blocks, "kernel_size")
        strides = per_block(stride, blocks, "stride")
        paddings = per_block(padding, blocks, "padding")
        pools = [choice(p, POOLS, "pool") for p in per_block(pool, blocks, "pool")]
        norms = [choice(n, NORMS, "norm") for n in per_block(norm, blocks, "norm")]
        acts = [
            choice(a, ACTIVATIONS, "activation")
            for a in per_block(activation, blocks, "activation")
        ]
        drops = per_block(dropout, blocks, "dropout")

        height, width = image_size
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, c_out in enumerate(channels):
            k, p = kernels[i], paddings[i]
            s = strides[i] * (2 if pools[i] == "stride" else 1)
            height, width = self._shrink(i, "conv", height, width, k, s, p)
            block = [
                nn.Conv2d(c_in, c_out, k, stride=s, padding=p, bias=norms[i] == "none"),
                make_norm(norms[i], c_out),
                ACTIVATIONS[acts[i]](),
            ]
            if pools[i] in ("max", "avg"):
                height, width = self._shrink(i, f"{pools[i]} pool", height, width, 2, 2, 0)
                block.append(nn.MaxPool2d(2) if pools[i] == "max" else nn.AvgPool2d(2))
            if drops[i] > 0:
                block.append(nn.Dropout2d(drops[i]))
            layers.append(nn.Sequential(*block))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.output_size = (height, width)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(head_dropout), nn.Linear(c_in * height * width, num_classes)
        )

    @staticmethod
    def _shrink(block: int, layer: str, h: int, w: int, k: int, s: int, p: int) -> tuple[int, int]:
        out_h, out_w = conv_output_size(h, k, s, p), conv_output_size(w, k, s, p)
        if out_h < 1 or out_w < 1:
            raise FitlabError(
                f"model block {block} ({layer}, kernel={k}, stride={s}, padding={p}) shrinks its "
                f"{h}x{w} input to {out_h}x{out_w}: out = floor((in + 2*padding - kernel) / "
                f"stride) + 1 = floor(({h} + {2 * p} - {k}) / {s}) + 1 = {out_h}",
                "use fewer blocks, more padding, model.pool=none on some blocks, or a larger "
                "data.image_size",
            )
        return out_h, out_w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
