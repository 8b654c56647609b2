"""The learning rate: the linear scaling rule and the epochs left after the warm-up.

Torch-free: the config resolvers (``${fitlab.linear_lr:...}``, ``${fitlab.after_warmup:...}``)
come from here and resolve before torch loads.
"""

from __future__ import annotations


def linear_lr(base_lr: float, batch_size: int, base_batch_size: int, scale: bool) -> float:
    """The linear scaling rule: the learning rate grows with the batch (Goyal et al., 2017)."""
    return base_lr * batch_size / base_batch_size if scale else base_lr


def after_warmup(epochs: int, warmup_epochs: int) -> int:
    """The epochs the scheduler has once the warm-up is over (its cosine then ends at zero)."""
    return max(1, epochs - warmup_epochs)


def with_warmup(optimizer, scheduler, warmup_epochs: int):
    """A linear warm-up from ``lr / (warmup_epochs + 1)`` to ``lr`` over the first epochs, then
    ``scheduler`` (if any) over the rest; torch loads here, when the optimizer exists."""
    from torch.optim.lr_scheduler import LinearLR, SequentialLR

    ramp = LinearLR(optimizer, start_factor=1 / (warmup_epochs + 1), total_iters=warmup_epochs)
    if scheduler is None:
        return ramp
    return SequentialLR(optimizer, [ramp, scheduler], milestones=[warmup_epochs])
