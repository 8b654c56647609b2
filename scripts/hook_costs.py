"""Where a training step's framework time goes: every hook, timed, per training step.

    python scripts/hook_costs.py [OVERRIDES...]      e.g. callbacks=none logger=none

Trains the default run (or the overrides) for 6 epochs without early stopping and prints, per
training step, the time of each callback's and the LightningModule's own hook bodies (those
run once an epoch amortised over its steps), and of
Lightning's dispatch of each per-step hook to all callbacks (``_call_callback_hooks``: it calls
every callback's hook, implemented or not). Wall times on a shared machine are noisy; the
per-call medians are steadier than the totals.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import lightning as L
from lightning.pytorch.trainer import call

from fitlab.run.config import compose_config
from fitlab.run.pipeline import build_parts, build_trainer

STEP_HOOKS = (
    "on_train_batch_start", "on_before_backward", "on_after_backward",
    "on_before_optimizer_step", "on_before_zero_grad", "on_train_batch_end",
)  # fmt: skip
# Once an epoch, amortised over its steps in the table: validation's end and the epoch's end.
EPOCH_HOOKS = ("on_validation_epoch_end", "on_validation_end", "on_train_epoch_end")
MODULE_HOOKS = ("training_step", "validation_step", "on_validation_epoch_end", "log_dict")
MODULE_HOOKS += ("on_train_epoch_end",)
seconds: dict[str, list[float]] = defaultdict(list)


def timed(label: str, fn):
    def run(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[label].append(time.perf_counter() - start)

    return run


def time_dispatch() -> None:
    """Wrap Lightning's callback dispatch: the per-step hooks, over all callbacks."""
    dispatch = call._call_callback_hooks

    def run(trainer, hook_name, *args, **kwargs):
        if hook_name not in STEP_HOOKS:
            return dispatch(trainer, hook_name, *args, **kwargs)
        return timed(f"Lightning dispatch: {hook_name}", dispatch)(
            trainer, hook_name, *args, **kwargs
        )

    call._call_callback_hooks = run


def main(overrides: list[str]) -> None:
    fixed = ["trainer.max_epochs=6", "trainer.min_epochs=6", "test=false"]
    if not any(o.startswith("callbacks=") for o in overrides):
        fixed.append("callbacks.early_stopping.patience=1000000")
    cfg = compose_config([*fixed, *overrides], output_dir=Path(tempfile.mkdtemp()))
    L.seed_everything(cfg.seed)
    datamodule, model = build_parts(cfg)
    trainer = build_trainer(cfg)
    for callback in trainer.callbacks:
        for hook in STEP_HOOKS + EPOCH_HOOKS:
            if getattr(type(callback), hook) is not getattr(L.Callback, hook):
                label = f"{type(callback).__name__}.{hook}"
                setattr(callback, hook, timed(label, getattr(callback, hook)))
    for hook in MODULE_HOOKS:
        setattr(model, hook, timed(f"Classifier.{hook}", getattr(model, hook)))
    time_dispatch()
    trainer.fit(model, datamodule=datamodule)

    steps = trainer.global_step
    print(f"\n{steps} training steps; microseconds per training step (median per call)")
    for label, values in sorted(seconds.items(), key=lambda kv: -sum(kv[1])):
        per_step = 1e6 * sum(values) / steps
        print(f"{per_step:9.1f} us/step {1e6 * statistics.median(values):9.1f} us/call  {label}")


if __name__ == "__main__":
    main(sys.argv[1:])
