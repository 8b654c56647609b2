"""The loss a step minimises: cross-entropy, optionally class-weighted, plus L1 and L2 terms.

Which parameters L1, L2 and the optimizer's weight decay act on is one rule, :func:`penalised`:
the weights of convolutions and linear layers; biases and the norm layers' scales and shifts
too only with ``model.decay_norms_and_biases`` (shrinking a norm's scale rescales a whole
channel, a bias shift moves no decision boundary: the field's practice is to leave them alone).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fitlab.errors import FitlabError


def balanced_class_weights(class_counts: Sequence[int]) -> torch.Tensor:
    """scikit-learn's ``balanced`` weights: n_samples / (n_classes * count_c)."""
    counts = torch.as_tensor(class_counts, dtype=torch.float32)
    return counts.sum() / (len(counts) * counts.clamp_min(1))


def class_weights_for(
    class_weights: str | None, class_counts: Sequence[int] | None
) -> torch.Tensor | None:
    """The per-class weights of ``model.class_weights`` (null or balanced), None for none."""
    if class_weights not in (None, "balanced"):
        raise FitlabError(
            f"model.class_weights={class_weights!r} is not an option", "use null or balanced"
        )
    if class_weights is None:
        return None
    if class_counts is None:
        raise FitlabError(
            "model.class_weights=balanced needs the class counts",
            "train it through fitlab-train, which passes them from the data",
        )
    return balanced_class_weights(class_counts)


def summed_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's cross-entropy summed over its images, each counted with its class weight,
    and the total weight. Their ratio is ``F.cross_entropy``'s mean; the sums add up exactly
    over micro-batches and ranks (:mod:`~fitlab.models.accumulation`).

    Shapes: ``logits`` (N, C), ``target`` (N,); both results are scalars.
    """
    summed = F.cross_entropy(
        logits, target, weight=class_weight, label_smoothing=label_smoothing, reduction="sum"
    )
    if class_weight is None:
        return summed, summed.new_tensor(len(target))
    return summed, class_weight[target].sum()


def penalised(parameter: nn.Parameter, norms_and_biases: bool = False) -> bool:
    """Whether L1, L2 and weight decay act on ``parameter``: weights (2-D and more) always."""
    return norms_and_biases or parameter.ndim > 1


def split_parameters(
    module: nn.Module, norms_and_biases: bool = False
) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``module``'s parameters as (penalised, left alone) by :func:`penalised`."""
    chosen, rest = [], []
    for parameter in module.parameters():
        (chosen if penalised(parameter, norms_and_biases) else rest).append(parameter)
    return chosen, rest


def penalties(parameters: Iterable[torch.Tensor], l1: float, l2: float) -> dict[str, torch.Tensor]:
    """``l1 * sum |w|`` and ``l2 * sum w^2`` over ``parameters``, each only if enabled."""
    parameters = list(parameters)
    terms = {}
    if l1 > 0:
        terms["l1"] = l1 * sum(p.abs().sum() for p in parameters)
    if l2 > 0:
        terms["l2"] = l2 * sum(p.pow(2).sum() for p in parameters)
    return terms


@torch.no_grad()
def weight_statistics(parameters: Iterable[torch.Tensor]) -> dict[str, torch.Tensor]:
    """What L1 and L2 do to the weights: sparsity (share of |w| < 1e-3) and the norms."""
    flat = torch.cat([p.detach().flatten() for p in parameters])
    return {
        "weights/sparsity": (flat.abs() < 1e-3).float().mean(),
        "weights/l1_norm": flat.abs().sum(),
        "weights/l2_norm": flat.norm(),
    }
