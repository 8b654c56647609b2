"""``fitlab-bench`` (without ``--whole-run``): fitlab's epochs, each paired with a plain epoch,
for fitlab's real config and for the Lightning floor; the medians, printed as a table.

Lightning, torch and fitlab's pipeline are imported where they are used, as in
:mod:`fitlab.bench.cli`.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# The Lightning floor: the same Classifier and Trainer, without fitlab's callbacks and logger.
FLOOR = [
    "callbacks=none",
    "logger=none",
    "++trainer.enable_progress_bar=false",
    "++trainer.enable_model_summary=false",
    "++trainer.enable_checkpointing=false",
]


def overrides_for(args: argparse.Namespace) -> list[str]:
    channels = ",".join(str(c) for c in args.channels)
    return [
        f"trainer.accelerator={args.device}",
        f"trainer.max_epochs={args.epochs}",
        f"trainer.min_epochs={args.epochs}",
        "++trainer.num_sanity_val_steps=0",
        f"data.batch_size={args.batch_size}",
        f"data.image_size={args.image_size or 'null'}",
        f"model.channels=[{channels}]",
        f"seed={args.seed}",
        f"++trainer.precision={args.precision}",
        f"model.compile={str(args.compile).lower()}",
    ]


def fit_paired(args: argparse.Namespace, overrides: list[str], output_dir: Path) -> dict:
    """Train through fitlab with ``overrides``, each epoch paired with a plain epoch."""
    import lightning as L

    from fitlab.bench.plain import PlainLoop
    from fitlab.bench.timing import PairedEpochTimer
    from fitlab.data.tensors import TensorImageDataset
    from fitlab.run.config import compose_config
    from fitlab.run.pipeline import build_parts, build_trainer

    cfg = compose_config(overrides_for(args) + overrides, output_dir=output_dir)
    L.seed_everything(cfg.seed, workers=True)
    datamodule, model = build_parts(cfg)
    if args.train_copies > 1:  # a larger set from the same real images, for GPU-sized work
        train = datamodule.splits["train"]
        datamodule.splits["train"] = TensorImageDataset(
            train.images.repeat(args.train_copies, 1, 1, 1), train.labels.repeat(args.train_copies)
        )
    trainer = build_trainer(cfg)
    device = trainer.strategy.root_device
    timer = PairedEpochTimer(PlainLoop(cfg, datamodule, device, args.precision))
    trainer.callbacks.insert(0, timer)
    trainer.fit(model, datamodule=datamodule)
    return {
        "timer": timer,
        "device": device,
        "samples": len(datamodule.splits["train"]),
        "image_size": datamodule.input_shape[1],
        "final_train_loss": float(trainer.callback_metrics["train/loss"]),
    }


def steady(values: list[float], warmup: int) -> list[float]:
    return values[warmup:] or values


def paired_ratios(numerators: list[float], denominators: list[float], warmup: int) -> list[float]:
    pairs = zip(steady(numerators, warmup), steady(denominators, warmup), strict=True)
    return [n / d for n, d in pairs]


def peak_memory_mb(device: torch.device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from fitlab.bench.timing import run_default_training

    warmup = args.warmup_epochs
    with tempfile.TemporaryDirectory(prefix="fitlab-bench-") as tmp:
        workdir = Path(tmp)
        # The same number of epochs in every path: early stopping still runs (its cost is part
        # of fitlab's), with a patience as long as the run, so that it cannot stop it.
        patience = [f"callbacks.early_stopping.patience={args.epochs}"]
        fitlab = fit_paired(args, patience, workdir / "fitlab")
        floor = fit_paired(args, FLOOR, workdir / "floor") if not args.skip_floor else None
        default_run = {} if args.skip_run else run_default_training(args.run_overrides, workdir)

    timer, device, samples = fitlab["timer"], fitlab["device"], fitlab["samples"]
    train_ratios = paired_ratios(timer.plain_train_s, timer.train_s, warmup)
    val_ratios = paired_ratios(timer.val_s, timer.plain_val_s, warmup)
    result = {
        "method": "paired: each fitlab epoch followed by a plain epoch; medians over the "
        "epochs after the warm-up",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "precision": args.precision,
        "compile": args.compile,
        "image_size": fitlab["image_size"],
        "channels": list(args.channels),
        "epochs": args.epochs,
        "warmup_epochs": warmup,
        "train_samples_per_epoch": samples,
        "fitlab_samples_per_s": samples / statistics.median(steady(timer.train_s, warmup)),
        "plain_samples_per_s": samples / statistics.median(steady(timer.plain_train_s, warmup)),
        "train_throughput_ratio": statistics.median(train_ratios),
        "train_ratio_per_epoch": train_ratios,
        "fitlab_val_s_per_epoch": statistics.median(steady(timer.val_s, warmup)),
        "plain_val_s_per_epoch": statistics.median(steady(timer.plain_val_s, warmup)),
        "val_time_ratio": statistics.median(val_ratios),
        "val_ratio_per_epoch": val_ratios,
        "fitlab_epoch_end_s_per_epoch": statistics.median(steady(timer.epoch_end_s, warmup)),
        "fitlab_val_plots_s_per_epoch": sum(timer.plots_s) / len(timer.plots_s),
        "fitlab_final_train_loss": fitlab["final_train_loss"],
        "plain_final_train_loss": timer.plain.final_train_loss,
        "fitlab_labels_seen": timer.label_counts.tolist(),
        "plain_labels_seen": timer.plain.label_counts.tolist(),
        "peak_memory_mb": peak_memory_mb(device),
        "startup_s": default_run.get("startup_s"),
        "import_s": default_run.get("import_s"),
        "default_run_wall_s": default_run.get("default_run_wall_s"),
        "default_run_metrics": default_run.get("default_run_metrics"),
        "default_run_overrides": args.run_overrides,
    }
    if floor is not None:
        floor_timer = floor["timer"]
        result["lightning_floor_ratio"] = statistics.median(
            paired_ratios(floor_timer.plain_train_s, floor_timer.train_s, warmup)
        )
        result["lightning_floor_val_time_ratio"] = statistics.median(
            paired_ratios(floor_timer.val_s, floor_timer.plain_val_s, warmup)
        )
        # What fitlab costs over bare Lightning: both measured against their own plain epochs,
        # so a machine that speeds up between the two passes does not enter the quotient.
        result["fitlab_vs_floor_ratio"] = (
            result["train_throughput_ratio"] / result["lightning_floor_ratio"]
        )
    return result


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    def floor(key: str) -> str:
        return f"{result[key]:.3f}" if key in result else ""

    low, high = min(result["train_ratio_per_epoch"]), max(result["train_ratio_per_epoch"])
    rows = [
        (
            "train samples/s",
            f"{result['fitlab_samples_per_s']:,.0f}",
            f"{result['plain_samples_per_s']:,.0f}",
            f"{result['train_throughput_ratio']:.3f} ({low:.2f}-{high:.2f})",
            floor("lightning_floor_ratio"),
        ),
        ("fitlab / Lightning floor, training", "", "", floor("fitlab_vs_floor_ratio")),
        (
            "validation s/epoch",
            f"{result['fitlab_val_s_per_epoch']:.4f}",
            f"{result['plain_val_s_per_epoch']:.4f}",
            f"{result['val_time_ratio']:.3f}",
            floor("lightning_floor_val_time_ratio"),
        ),
        (
            "epoch end s/epoch (metrics, fit diagnosis, checkpoint)",
            f"{result['fitlab_epoch_end_s_per_epoch']:.4f}",
        ),
        (
            "plots s/epoch (best epoch kept, drawn at fit end)",
            f"{result['fitlab_val_plots_s_per_epoch']:.4f}",
        ),
        (
            "final train loss",
            f"{result['fitlab_final_train_loss']:.4f}",
            f"{result['plain_final_train_loss']:.4f}",
        ),
    ]
    columns = ("", "fitlab", "plain PyTorch", "fitlab / plain", "Lightning floor / plain")
    table = Table(title=f"fitlab-bench on {result['device']} (batch {result['batch_size']})")
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*row, *[""] * (len(columns) - len(row)))
    console = Console(width=140)  # the five columns, also when piped to a file
    console.print(table)
    console.print(f"peak memory of the process: {result['peak_memory_mb']:.0f} MB")
    if result["startup_s"] is not None:
        console.print(
            f"fitlab-train: start-up to first step {result['startup_s']:.2f} s (importing "
            f"torch, Lightning and fitlab alone: {result['import_s']:.2f} s), whole run "
            f"{result['default_run_wall_s']:.1f} s, test/acc "
            f"{result['default_run_metrics'].get('test/acc')}"
        )
