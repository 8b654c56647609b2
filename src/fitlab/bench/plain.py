"""The reference fitlab-bench measures against: a plain PyTorch loop doing the same work."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn
from torchmetrics import MeanMetric

from fitlab.data.datamodule import ImageDataModule
from fitlab.models.metrics import stage_metrics


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PlainLoop:
    """``for batch: forward, loss, backward, step, metric update`` and nothing else.

    The same network class, optimizer, scheduler, metric updates and tensors as fitlab's run, and
    (``start_from``) the same initial weights. On a GPU the data lives on the device, as in the
    fastest CIFAR-10 scripts: no DataLoader, no host copies.
    """

    def __init__(
        self, cfg: DictConfig, datamodule: ImageDataModule, device: torch.device, precision: str
    ) -> None:
        self.device = device
        with torch.random.fork_rng(devices=[]):  # building it leaves fitlab's generators alone
            classifier = instantiate(cfg.model, **datamodule.model_kwargs(), _convert_="all")
        # The same memory format and autocast as fitlab uses on this device.
        channels_last = cfg.model.channels_last is True or (
            cfg.model.channels_last == "auto" and device.type == "cuda"
        )
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net = classifier.net.to(device=device, memory_format=self.memory_format)
        self.autocast = torch.autocast(device.type, torch.bfloat16, enabled="bf16" in precision)
        self.optimizer = instantiate(cfg.model.optimizer)(params=self.net.parameters())
        self.scheduler = instantiate(cfg.model.scheduler)(optimizer=self.optimizer)
        train, val = datamodule.splits["train"], datamodule.splits["val"]
        self.x_train, self.y_train = train.images.to(device), train.labels.to(device)
        self.x_val, self.y_val = val.images.to(device), val.labels.to(device)
        self.batch_size, self.eval_batch_size = datamodule.batch_size, datamodule.eval_batch_size
        classes = datamodule.num_classes
        self.train_metrics = stage_metrics(classes, "train").to(device)
        self.val_metrics = stage_metrics(classes, "val").to(device)
        self.train_loss = MeanMetric().to(device)
        self.generator = torch.Generator(device).manual_seed(cfg.seed)
        self.label_counts = torch.zeros(classes, dtype=torch.long, device=device)
        self.final_train_loss = float("nan")

    def start_from(self, net: nn.Module) -> None:
        self.net.load_state_dict(net.state_dict())

    def train_epoch(self) -> float:
        """One epoch over the training tensors in a random order; returns its seconds."""
        net, optimizer, fmt = self.net, self.optimizer, self.memory_format
        sync(self.device)
        start = time.perf_counter()
        net.train()
        order = torch.randperm(len(self.y_train), device=self.device, generator=self.generator)
        for index in order.split(self.batch_size):
            x, y = self.x_train[index].contiguous(memory_format=fmt), self.y_train[index]
            with self.autocast:
                logits = net(x)
                loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            self.train_loss.update(loss.detach(), len(y))
            self.train_metrics.update(logits.detach(), y)
            self.label_counts.index_add_(0, y, torch.ones_like(y))
        sync(self.device)
        seconds = time.perf_counter() - start
        self.final_train_loss = float(self.train_loss.compute())
        self.train_metrics.compute()
        self.train_loss.reset(), self.train_metrics.reset()
        self.scheduler.step()
        return seconds

    def evaluate(self, split: str) -> dict[str, float]:
        """``<split>/loss`` and the split's metrics over its tensors, the network in eval mode."""
        images, labels = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
        metrics, loss = getattr(self, f"{split}_metrics"), MeanMetric().to(self.device)
        self.net.eval()
        with torch.inference_mode():
            for x, y in zip(
                images.split(self.eval_batch_size), labels.split(self.eval_batch_size), strict=True
            ):
                with self.autocast:
                    logits = self.net(x.contiguous(memory_format=self.memory_format))
                loss.update(F.cross_entropy(logits.float(), y), len(y))
                metrics.update(logits, y)
            values = {f"{split}/loss": loss.compute(), **metrics.compute()}
        metrics.reset()
        return {name: float(value) for name, value in values.items()}

    def validate(self) -> float:
        """One pass over the validation tensors with the validation metrics; its seconds."""
        sync(self.device)
        start = time.perf_counter()
        self.evaluate("val")
        sync(self.device)
        return time.perf_counter() - start
