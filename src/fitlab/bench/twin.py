"""The plain twin of a ``fitlab-train`` run, in its own process: the same work, no Lightning loop.

``python -m fitlab.bench.twin --epochs N --seed S [--out FILE] [overrides...]`` composes the
config of ``fitlab-train trainer.max_epochs=N callbacks.early_stopping=null seed=S
[overrides...]`` and does that run's work in plain PyTorch: the same split and network
(fitlab's ``ImageDataModule`` and model config, through ``PlainLoop``), the same optimizer and
scheduler, N epochs each followed by validation with fitlab's validation metrics (accuracy,
balanced accuracy, F1, AUROC), the weights saved (``torch.save`` of the state_dict) whenever
the optimized metric improves, then those best weights tested for accuracy. No Trainer, no
callbacks, no logger. It prints its numbers as one JSON object (``--out`` writes it too).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torchmetrics import MetricCollection

from fitlab.bench.plain import PlainLoop, sync
from fitlab.data.datamodule import ImageDataModule
from fitlab.models.metrics import METRIC_CLASSES
from fitlab.run.config import compose_config, metric_mode


def run_overrides(epochs: int | None, seed: int | None, overrides: Sequence[str]) -> list[str]:
    """The command line of the ``fitlab-train`` run a twin does the work of: every epoch runs."""
    return [
        *([f"trainer.max_epochs={epochs}"] if epochs is not None else []),
        "callbacks.early_stopping=null",
        *([f"seed={seed}"] if seed is not None else []),
        *overrides,
    ]


def device_for(accelerator: str) -> torch.device:
    """Where fitlab's Trainer runs for ``trainer.accelerator``: anything but cpu takes a GPU."""
    return torch.device("cuda" if accelerator != "cpu" and torch.cuda.is_available() else "cpu")


class TwinLoop(PlainLoop):
    """``PlainLoop`` with the test split, counting the images each split served."""

    def __init__(self, cfg: DictConfig, datamodule: ImageDataModule, device: torch.device) -> None:
        super().__init__(cfg, datamodule, device, str(cfg.trainer.get("precision") or "32-true"))
        test = datamodule.splits["test"]
        self.x_test, self.y_test = test.images.to(device), test.labels.to(device)
        self.test_metrics = MetricCollection(
            {"acc": METRIC_CLASSES["acc"](datamodule.num_classes)}, prefix="test/"
        ).to(device)
        self.images = dict.fromkeys(("val", "test"), 0)

    def evaluate(self, split: str) -> dict[str, float]:
        values = super().evaluate(split)
        self.images[split] += len(getattr(self, f"y_{split}"))
        return values


def improved(value: float, best: float | None, mode: str) -> bool:
    return best is None or (value < best if mode == "min" else value > best)


class Stopwatch:
    """Seconds per part of a run; each lap ends at a device sync."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.seconds, self.last = device, {}, time.perf_counter()

    def lap(self, part: str) -> None:
        sync(self.device)
        now = time.perf_counter()
        self.seconds[part] = self.seconds.get(part, 0.0) + now - self.last
        self.last = now


def run(cfg: DictConfig, checkpoint: Path) -> dict:
    """Train, validate and keep the best weights; test them. Seconds per part in ``phases_s``."""
    device = device_for(cfg.trainer.accelerator)
    watch = Stopwatch(device)
    torch.manual_seed(cfg.seed)  # as seed_everything: PlainLoop draws fitlab's initial weights
    loop = TwinLoop(cfg, instantiate(cfg.data), device)
    watch.lap("build_data_and_model")
    monitor, mode = cfg.optimized_metric, metric_mode(cfg.optimized_metric)
    best, best_epoch, values = None, None, {}
    for epoch in range(cfg.trainer.max_epochs):
        loop.train_epoch()
        watch.lap("train_steps")
        values = loop.evaluate("val")
        watch.lap("validation")
        if improved(values[monitor], best, mode):
            best, best_epoch = values[monitor], epoch
            torch.save(loop.net.state_dict(), checkpoint)
            watch.lap("checkpointing")
    loop.net.load_state_dict(torch.load(checkpoint, map_location=device, weights_only=True))
    tested = loop.evaluate("test")
    watch.lap("test")
    return {
        "phases_s": watch.seconds,
        "device": str(device),
        "epochs": cfg.trainer.max_epochs,
        "best_epoch": best_epoch,
        f"{monitor}_best": best,
        **values,
        **tested,
        "images": {"train": int(loop.label_counts.sum()), **loop.images},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m fitlab.bench.twin",
        description="The work of a fitlab-train run in plain PyTorch; prints its numbers as JSON.",
    )
    parser.add_argument("--epochs", type=int, help="trainer.max_epochs (default: the config's)")
    parser.add_argument("--seed", type=int, help="the run's seed (default: the config's)")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    parser.add_argument("--checkpoint", type=Path, help="the best weights (default: a temp file)")
    parser.add_argument("overrides", nargs="*", help="fitlab-train's, e.g. experiment=quick")
    args = parser.parse_args(argv)
    started_at, started = time.time(), time.perf_counter()
    cfg = compose_config(run_overrides(args.epochs, args.seed, args.overrides))
    composed = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="fitlab-twin-") as tmp:
        result = run(cfg, args.checkpoint or Path(tmp) / "best.pt")
    result["phases_s"] = {"config_composition": composed, **result["phases_s"]}
    # From composing the config to the test; the bench adds the start-up and exit around it.
    result.update(started_at=started_at, wall_s=time.perf_counter() - started)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
