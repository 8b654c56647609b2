"""``fitlab-bench``: the same training through fitlab and through a plain PyTorch loop.

Both paths train the same CNN, from the same initial weights, on the same in-memory tensors,
with the same batch size, optimizer, scheduler, epochs and metric updates, in one process:

- fitlab: the real config (default callbacks, metrics, TensorBoard logger) through Lightning.
- plain: ``for batch: forward, loss, backward, step, metric update``; the reference a framework
  must not fall behind. On a GPU its data lives on the device, as in the fastest CIFAR scripts.

Training throughput counts steady-state epochs only (the first ``--warmup-epochs`` are left
out) and times each epoch's training part, from its start to the start of validation.
Start-up is measured on a real ``fitlab-train`` process: from launching it to its first step.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torchmetrics import MeanMetric

from fitlab.callbacks.plots import ClassificationPlots
from fitlab.config import compose_config
from fitlab.data.tensors import TensorImageDataset
from fitlab.models.classifier import stage_metrics
from fitlab.pipeline import build_parts, build_trainer


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class EpochTimer(L.Callback):
    """Wall time of each epoch's training part and of each validation run.

    Also counts the training labels it sees (on the device, without a sync), so a test can
    check that both paths trained on the same images.
    """

    def __init__(self) -> None:
        self.train_s: list[float] = []
        self.val_s: list[float] = []
        self._start = 0.0
        self.label_counts: torch.Tensor | None = None

    def count(self, labels: torch.Tensor, num_classes: int) -> None:
        if self.label_counts is None:
            self.label_counts = torch.zeros(num_classes, dtype=torch.long, device=labels.device)
        self.label_counts.index_add_(0, labels, torch.ones_like(labels))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.count(batch[1], pl_module.hparams.num_classes)

    def _now(self, pl_module: L.LightningModule) -> float:
        sync(pl_module.device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = self._now(pl_module)

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.train_s.append(self._now(pl_module) - self._start)
            self._val_start = self._now(pl_module)

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.val_s.append(self._now(pl_module) - self._val_start)


class FirstStepProbe(L.Callback):
    """Writes the wall-clock time of the first training step to ``path`` (for start-up time)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self.path.exists():
            self.path.write_text(repr(time.time()))


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
        "callbacks.early_stopping.patience=1000000",  # the same number of epochs in both paths
        f"++trainer.precision={args.precision}",
        f"model.compile={str(args.compile).lower()}",
    ]


def run_fitlab(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    cfg = compose_config(overrides_for(args), output_dir=workdir / "fitlab")
    L.seed_everything(cfg.seed, workers=True)
    datamodule, model = build_parts(cfg)
    if args.train_copies > 1:  # a larger set from the same real images, for GPU-sized work
        train = datamodule.splits["train"]
        datamodule.splits["train"] = TensorImageDataset(
            train.images.repeat(args.train_copies, 1, 1, 1), train.labels.repeat(args.train_copies)
        )
    timer = EpochTimer()
    trainer = build_trainer(cfg)
    trainer.callbacks.append(timer)
    trainer.fit(model, datamodule=datamodule)
    plots = [c for c in trainer.callbacks if isinstance(c, ClassificationPlots)]
    return {
        "timer": timer,
        "plots_s": sum(p.seconds_drawing for p in plots),
        "final_train_loss": float(trainer.callback_metrics["train/loss"]),
        "device": trainer.strategy.root_device,
        "cfg": cfg,
        "datamodule": datamodule,
    }


def run_plain(args: argparse.Namespace, cfg, datamodule, device: torch.device) -> dict[str, Any]:
    """The reference loop: same model class, init, data, optimizer, scheduler and metrics."""
    L.seed_everything(cfg.seed, workers=True)
    classifier = instantiate(cfg.model, **datamodule.model_kwargs(), _convert_="all")
    net = classifier.net.to(device)
    # The same memory format and autocast as fitlab uses on this device.
    channels_last = cfg.model.channels_last is True or (
        cfg.model.channels_last == "auto" and device.type == "cuda"
    )
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=memory_format)
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=args.precision == "bf16-mixed")
    optimizer = instantiate(cfg.model.optimizer)(params=net.parameters())
    scheduler = instantiate(cfg.model.scheduler)(optimizer=optimizer)
    train, val = datamodule.splits["train"], datamodule.splits["val"]
    x_train, y_train = train.images.to(device), train.labels.to(device)
    x_val, y_val = val.images.to(device), val.labels.to(device)
    classes = datamodule.num_classes
    train_metrics, val_metrics = stage_metrics(classes, "train"), stage_metrics(classes, "val")
    train_metrics, val_metrics = train_metrics.to(device), val_metrics.to(device)
    train_loss, val_loss = MeanMetric().to(device), MeanMetric().to(device)
    batch, eval_batch = datamodule.batch_size, datamodule.eval_batch_size
    timer = EpochTimer()
    for _ in range(args.epochs):
        sync(device)
        start = time.perf_counter()
        net.train()
        for index in torch.randperm(len(y_train), device=device).split(batch):
            x, y = x_train[index].contiguous(memory_format=memory_format), y_train[index]
            with autocast:
                logits = net(x)
                loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            train_loss.update(loss.detach(), len(y))
            train_metrics.update(logits.detach(), y)
            timer.count(y, classes)
        sync(device)
        timer.train_s.append(time.perf_counter() - start)
        final_loss = float(train_loss.compute())
        train_metrics.compute()
        train_loss.reset(), train_metrics.reset()

        start = time.perf_counter()
        net.eval()
        with torch.inference_mode():
            for x, y in zip(x_val.split(eval_batch), y_val.split(eval_batch), strict=True):
                with autocast:
                    logits = net(x.contiguous(memory_format=memory_format))
                val_loss.update(F.cross_entropy(logits.float(), y), len(y))
                val_metrics.update(logits, y)
        val_metrics.compute(), val_loss.compute()
        val_metrics.reset(), val_loss.reset()
        sync(device)
        timer.val_s.append(time.perf_counter() - start)
        scheduler.step()
    return {"timer": timer, "final_train_loss": final_loss}


def run_default_training(run_overrides: list[str], workdir: Path) -> dict[str, float]:
    """A real ``fitlab-train`` process: start-up to its first step, and its whole wall time."""
    probe = workdir / "first_step.txt"
    command = [
        sys.executable, "-m", "fitlab.train", *run_overrides,
        "+callbacks.first_step._target_=fitlab.bench.FirstStepProbe",
        f"+callbacks.first_step.path={probe}",
    ]  # fmt: skip
    env = {**os.environ, "FITLAB_LOG_DIR": str(workdir / "logs")}
    launched = time.time()
    subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    finished = time.time()
    (metrics,) = (workdir / "logs").glob("*/runs/*/metrics.json")
    return {
        "startup_s": float(probe.read_text()) - launched,
        "default_run_wall_s": finished - launched,
        "default_run_metrics": json.loads(metrics.read_text()),
    }


def samples_per_s(train_s: list[float], samples_per_epoch: int, warmup: int) -> float:
    steady = train_s[warmup:] or train_s
    return samples_per_epoch * len(steady) / sum(steady)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fitlab-bench-") as tmp:
        workdir = Path(tmp)
        fitlab = run_fitlab(args, workdir)
        device, datamodule = fitlab["device"], fitlab["datamodule"]
        fitlab_peak = peak_memory_mb(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        plain = run_plain(args, fitlab["cfg"], datamodule, device)
        plain_peak = peak_memory_mb(device)
        default_run = {} if args.skip_run else run_default_training(args.run_overrides, workdir)

    n_train = len(datamodule.splits["train"])
    fit_rate = samples_per_s(fitlab["timer"].train_s, n_train, args.warmup_epochs)
    plain_rate = samples_per_s(plain["timer"].train_s, n_train, args.warmup_epochs)
    # Validation with metrics, logging and checkpointing; the plots are reported on their own.
    epochs = len(fitlab["timer"].val_s)
    fit_val = (sum(fitlab["timer"].val_s) - fitlab["plots_s"]) / epochs
    plain_val = sum(plain["timer"].val_s) / len(plain["timer"].val_s)
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "precision": args.precision,
        "compile": args.compile,
        "image_size": datamodule.input_shape[1],
        "channels": list(args.channels),
        "epochs": args.epochs,
        "warmup_epochs": args.warmup_epochs,
        "train_samples_per_epoch": n_train,
        "fitlab_samples_per_s": fit_rate,
        "plain_samples_per_s": plain_rate,
        "train_throughput_ratio": fit_rate / plain_rate,
        "fitlab_val_s_per_epoch": fit_val,
        "plain_val_s_per_epoch": plain_val,
        "val_time_ratio": fit_val / plain_val,
        "fitlab_val_plots_s_per_epoch": fitlab["plots_s"] / epochs,
        "fitlab_final_train_loss": fitlab["final_train_loss"],
        "plain_final_train_loss": plain["final_train_loss"],
        "fitlab_labels_seen": fitlab["timer"].label_counts.tolist(),
        "plain_labels_seen": plain["timer"].label_counts.tolist(),
        "fitlab_peak_memory_mb": fitlab_peak,
        "plain_peak_memory_mb": plain_peak,
        "startup_s": default_run.get("startup_s"),
        "default_run_wall_s": default_run.get("default_run_wall_s"),
        "default_run_metrics": default_run.get("default_run_metrics"),
        "default_run_overrides": args.run_overrides,
    }


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"fitlab-bench on {result['device']} (batch {result['batch_size']})")
    for column in ("", "fitlab", "plain PyTorch", "fitlab / plain"):
        table.add_column(column, justify="right")
    table.add_row(
        "train samples/s",
        f"{result['fitlab_samples_per_s']:,.0f}",
        f"{result['plain_samples_per_s']:,.0f}",
        f"{result['train_throughput_ratio']:.3f}",
    )
    table.add_row(
        "validation s/epoch",
        f"{result['fitlab_val_s_per_epoch']:.4f}",
        f"{result['plain_val_s_per_epoch']:.4f}",
        f"{result['val_time_ratio']:.3f}",
    )
    table.add_row(
        "validation plots s/epoch", f"{result['fitlab_val_plots_s_per_epoch']:.4f}", "", ""
    )
    table.add_row(
        "final train loss",
        f"{result['fitlab_final_train_loss']:.4f}",
        f"{result['plain_final_train_loss']:.4f}",
        "",
    )
    table.add_row(
        "peak memory MB",
        f"{result['fitlab_peak_memory_mb']:.0f}",
        f"{result['plain_peak_memory_mb']:.0f}",
        "",
    )
    console = Console()
    console.print(table)
    if result["startup_s"] is not None:
        console.print(
            f"fitlab-train: start-up to first step {result['startup_s']:.2f} s, "
            f"whole run {result['default_run_wall_s']:.1f} s, test/acc "
            f"{result['default_run_metrics'].get('test/acc')}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fitlab-bench", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON to this file")
    parser.add_argument("--device", default="cpu", help="cpu, gpu or auto (default: cpu)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=None, help="resize digits (default 8)")
    parser.add_argument("--channels", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--warmup-epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--train-copies", type=int, default=1, help="tile the training images K times"
    )
    parser.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument(
        "--run-overrides",
        nargs="*",
        default=[],
        help="overrides for the timed fitlab-train run (default: none, the default run)",
    )
    parser.add_argument("--skip-run", action="store_true", help="skip the timed fitlab-train run")
    args = parser.parse_args(argv)
    if args.epochs <= args.warmup_epochs:
        parser.error("--epochs must be larger than --warmup-epochs")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    result = measure(args)
    print_table(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
