"""The model's settings without torch: the CNN's options, the shape each block leaves, and the
metrics the model logs.

The config is checked against these before torch and Lightning are imported, so a bad override
fails at once; :mod:`~fitlab.models.cnn` and :mod:`~fitlab.models.classifier` build from the
same tables, so the checks and the model cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from fitlab.errors import FitlabError

# model.activation -> the torch.nn class the CNN builds
ACTIVATIONS = {
    "relu": "ReLU",
    "leaky_relu": "LeakyReLU",
    "gelu": "GELU",
    "silu": "SiLU",
    "elu": "ELU",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
}
NORMS = ("batch", "group", "none")
POOLS = ("max", "avg", "stride", "none")


@dataclass(frozen=True)
class CNNSettings:
    """The CNN's switches, named as ``configs/model/cnn.yaml`` names them, with their defaults.

    Block options take one value for all blocks or a list with one value per block.
    """

    channels: Sequence[int] = (32, 64, 128)
    kernel_size: int | Sequence[int] = 3
    stride: int | Sequence[int] = 1
    padding: int | Sequence[int] = 1
    pool: str | Sequence[str] = "max"
    norm: str | Sequence[str] = "batch"
    activation: str | Sequence[str] = "relu"
    dropout: float | Sequence[float] = 0.0  # Dropout2d after each block
    head_dropout: float = 0.2  # dropout before the linear classifier


# The settings that decide the network's layers; dropout may change when a run is resumed.
LAYOUT = tuple(f.name for f in fields(CNNSettings) if not f.name.endswith("dropout"))


def metric_mode(metric: str) -> str:
    """``min`` for losses and errors, ``max`` for everything else (accuracy, F1, AUROC)."""
    name = metric.rsplit("/", 1)[-1]
    return "min" if ("loss" in name or "error" in name) else "max"


def optuna_direction(metric: str) -> str:
    """Optuna's name for :func:`metric_mode`: ``minimize`` or ``maximize``."""
    return f"{metric_mode(metric)}imize"


# The epoch metrics of each stage, logged as <stage>/<name> beside <stage>/loss. AUROC needs the
# probabilities of the whole epoch: it is computed on held-out data only.
METRICS = ("acc", "balanced_acc", "f1_macro", "auroc")
HELD_OUT_ONLY = ("auroc",)


def computed_metrics(stage: str) -> list[str]:
    return [name for name in METRICS if stage != "train" or name not in HELD_OUT_ONLY]


def metric_names(stage: str) -> list[str]:
    """The epoch metrics ``stage`` logs: ``<stage>/loss``, then ``<stage>/<name>`` of METRICS."""
    return [f"{stage}/{name}" for name in ("loss", *computed_metrics(stage))]


# What fit logs every epoch, so what a checkpoint, early stopping, the LR scheduler or a sweep
# can follow (validation checks these names); test/* comes after fit.
FIT_METRICS = (*metric_names("val"), *metric_names("train"))


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


@dataclass(frozen=True)
class Block:
    """One ``conv -> norm -> activation -> downsample -> dropout`` block, as the CNN builds it."""

    channels: int
    kernel: int
    stride: int  # of the convolution: model.stride, doubled by pool=stride
    padding: int
    pool: str
    norm: str
    activation: str
    dropout: float
    output_size: tuple[int, int]  # height and width after the block


def plan_blocks(
    image_size: Sequence[int],
    channels: Sequence[int],
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int],
    padding: int | Sequence[int],
    pool: str | Sequence[str],
    norm: str | Sequence[str],
    activation: str | Sequence[str],
    dropout: float | Sequence[float],
) -> list[Block]:
    """The CNN's blocks for these settings; a FitlabError when one does not fit the image."""
    blocks = len(channels)
    if blocks < 1:
        raise FitlabError("model.channels is empty", "give at least one block, e.g. [32, 64]")
    kernels = per_block(kernel_size, blocks, "kernel_size")
    strides = per_block(stride, blocks, "stride")
    paddings = per_block(padding, blocks, "padding")
    pools = [choice(p, POOLS, "pool") for p in per_block(pool, blocks, "pool")]
    norms = [choice(n, NORMS, "norm") for n in per_block(norm, blocks, "norm")]
    acts = [
        choice(a, ACTIVATIONS, "activation") for a in per_block(activation, blocks, "activation")
    ]
    drops = per_block(dropout, blocks, "dropout")

    height, width = image_size
    plan = []
    for i, c_out in enumerate(channels):
        k, p = kernels[i], paddings[i]
        s = strides[i] * (2 if pools[i] == "stride" else 1)
        height, width = _shrink(i, "conv", height, width, k, s, p)
        if pools[i] in ("max", "avg"):
            height, width = _shrink(i, f"{pools[i]} pool", height, width, 2, 2, 0)
        plan.append(Block(c_out, k, s, p, pools[i], norms[i], acts[i], drops[i], (height, width)))
    return plan


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
