"""The LightningModule: the training step with its regularisers, and the metrics of each stage.

Optimizer and scheduler arrive as partials (``_partial_: true`` configs) and are kept out of the
saved hyperparameters, so checkpoints hold only plain values and load under ``weights_only``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any, ClassVar

import lightning as L
import torch
from torchmetrics import MaxMetric, MeanMetric, MinMetric

from fitlab.errors import FitlabError
from fitlab.models.accumulation import ExactAccumulation
from fitlab.models.cnn import CNN
from fitlab.models.loss import (
    class_weights_for,
    penalties,
    split_parameters,
    summed_cross_entropy,
    weight_statistics,
)
from fitlab.models.metrics import metric_key, per_class_metrics, stage_metrics
from fitlab.models.optimization import with_warmup
from fitlab.models.settings import CNNSettings, metric_mode

Batch = tuple[torch.Tensor, torch.Tensor]


class Classifier(L.LightningModule):
    """Trains a :class:`CNN`; the data's shape and classes come from the DataModule.

    ``cnn``: the fields of :class:`~fitlab.models.settings.CNNSettings` (channels, kernel_size,
    ..., head_dropout), by name, as ``configs/model/cnn.yaml`` sets them.
    """

    # The keyword arguments ``**cnn`` takes (the config check reads them: validation.consistency)
    keyword_arguments: ClassVar[tuple[str, ...]] = tuple(f.name for f in fields(CNNSettings))

    def __init__(
        self,
        in_channels: int,
        image_size: Sequence[int],
        num_classes: int,
        class_names: Sequence[str] | None = None,
        class_counts: Sequence[int] | None = None,
        l1: float = 0.0,
        l2: float = 0.0,
        decay_norms_and_biases: bool = False,
        label_smoothing: float = 0.0,
        class_weights: str | None = None,
        monitor: str = "val/loss",
        compile: bool = False,
        channels_last: bool | str = "auto",
        warmup_epochs: int = 0,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        **cnn: Any,
    ) -> None:
        super().__init__()
        settings = vars(CNNSettings(**cnn))  # every setting saved, the defaults too
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.hparams.update(settings)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.class_names = list(class_names or range(num_classes))
        self.net = CNN(in_channels, num_classes, image_size, **settings)
        if compile:
            self.net.compile()
        self.channels_last = False  # decided in setup(), once the device is known
        self.example_input_array = torch.zeros(1, in_channels, *image_size)
        weight = class_weights_for(class_weights, class_counts)
        self.register_buffer("class_weight", weight, persistent=False)
        self.penalised, self.left_alone = split_parameters(self.net, decay_norms_and_biases)

        # Separate attributes per stage ("train" would shadow nn.Module.train in a ModuleDict).
        for stage in ("train", "val", "test"):
            setattr(self, f"{stage}_metrics", stage_metrics(num_classes, stage))
            setattr(self, f"{stage}_loss", MeanMetric())
        self.test_per_class = per_class_metrics(num_classes)
        self.best = MinMetric() if metric_mode(monitor) == "min" else MaxMetric()
        self.best.persistent(True)  # in the checkpoint, so a resumed run keeps its best so far
        self.penalty_means = torch.nn.ModuleDict({"l1": MeanMetric(), "l2": MeanMetric()})
        # A checkpoint saved mid-epoch (a SLURM requeue) carries the epoch's running training
        # metrics, so the resumed epoch reports all its batches, as if never interrupted.
        for metric in self.running_train_metrics():
            metric.persistent(True)
        # The loss of an optimizer step over all its micro-batches and devices (accumulation.py)
        self.accumulation = ExactAccumulation()

    def setup(self, stage: str) -> None:
        # channels_last lets cuDNN pick NHWC kernels (and tensor cores under bf16); on the CPU
        # it rarely helps, so ``auto`` turns it on for CUDA devices only.
        wanted = self.hparams.channels_last
        on_cuda = self.trainer.strategy.root_device.type == "cuda"
        self.channels_last = on_cuda if wanted == "auto" else bool(wanted)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    # ------------------------------------------------------------------------- the loss
    def data_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The batch's mean cross-entropy (weighted by class under ``class_weights``)."""
        summed, weight = summed_cross_entropy(
            logits, target, self.class_weight, self.hparams.label_smoothing
        )
        return summed / weight

    def penalties(self) -> dict[str, torch.Tensor]:
        """``l1 * sum |w|`` and ``l2 * sum w^2`` over the penalised weights (only if enabled)."""
        return penalties(self.penalised, self.hparams.l1, self.hparams.l2)

    # ------------------------------------------------------------------------ the steps
    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        summed, weight = summed_cross_entropy(
            logits, y, self.class_weight, self.hparams.label_smoothing
        )
        loss = summed / weight
        penalty = loss.new_zeros(())
        for name, term in self.penalties().items():
            self.penalty_means[name].update(term.detach())
            penalty = penalty + term
        # Lightning writes step values only every log_every_n_steps; calling self.log on the
        # other steps costs time for nothing. Lightning has no public flag for it.
        if self.trainer._logger_connector.should_update_logs:
            self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True)
        self.train_loss.update(loss.detach(), len(y))
        self.train_metrics.update(logits.detach(), y)
        steps = self.trainer.accumulate_grad_batches
        if steps == 1 and self.class_weight is None:
            # The batch's mean is the step's exact loss: no bookkeeping (under DDP, a collective
            # a step) and nothing for on_before_optimizer_step to rescale.
            return loss + penalty
        return self.accumulation.share(summed, weight, penalty, len(y), batch_idx % steps == 0)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.accumulation.weight is None:  # the step took the plain mean: nothing to rescale
            return
        self.accumulation.finish_step(
            self.parameters(),
            self.trainer.accumulate_grad_batches,
            self.trainer.world_size,
            lambda weight: self.trainer.strategy.reduce(weight, reduce_op="sum"),
        )

    def _eval_step(self, batch: Batch, stage: str) -> dict[str, torch.Tensor]:
        x, y = batch
        logits = self(x)
        getattr(self, f"{stage}_loss").update(self.data_loss(logits, y), len(y))
        getattr(self, f"{stage}_metrics").update(logits, y)
        if stage == "test":
            self.test_per_class.update(logits, y)
        return {"probs": logits.softmax(dim=1), "target": y}

    def validation_step(self, batch: Batch, batch_idx: int) -> dict[str, torch.Tensor]:
        return self._eval_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> dict[str, torch.Tensor]:
        return self._eval_step(batch, "test")

    # ------------------------------------------------------------------- epoch summaries
    def _epoch_values(self, stage: str) -> dict[str, torch.Tensor]:
        """Compute (synced across ranks) and reset the stage's loss and metrics."""
        loss, metrics = getattr(self, f"{stage}_loss"), getattr(self, f"{stage}_metrics")
        values = {f"{stage}/loss": loss.compute(), **metrics.compute()}
        loss.reset()
        metrics.reset()
        return values

    def running_train_metrics(self) -> list:
        return [self.train_loss, self.train_metrics, *self.penalty_means.values()]

    def on_train_start(self) -> None:
        if self.trainer.ckpt_path is None:  # a fresh fit; a resumed one keeps the restored best
            self.best.reset()
        if self.trainer.world_size > 1:
            # The checkpoint holds rank zero's share only: under DDP a mid-epoch resume
            # reports the interrupted epoch from the batches after the resume.
            self._reset_running_train_metrics()

    def on_train_epoch_start(self) -> None:
        # Not called when Lightning resumes an epoch in its middle: the restored state goes on.
        self._reset_running_train_metrics()

    def _reset_running_train_metrics(self) -> None:
        for metric in self.running_train_metrics():
            metric.reset()

    def on_train_epoch_end(self) -> None:
        values = self._epoch_values("train")
        for name in ("l1", "l2"):
            if self.hparams[name] > 0:
                values[f"train/loss_{name}"] = self.penalty_means[name].compute()
                self.penalty_means[name].reset()
        values.update(weight_statistics(self.penalised))
        self.log_dict(values)

    def on_validation_epoch_end(self) -> None:
        values = self._epoch_values("val")
        monitor = self.hparams.monitor
        if monitor in values and not self.trainer.sanity_checking:
            self.best.update(values[monitor])
            values[f"{monitor}_best"] = self.best.compute()
        self.log_dict(values, prog_bar=False)

    def on_test_epoch_end(self) -> None:
        values = self._epoch_values("test")
        for name, per_class in self.test_per_class.compute().items():
            for class_name, value in zip(self.class_names, per_class, strict=True):
                values[f"test/{name}/{metric_key(class_name)}"] = value
        self.test_per_class.reset()
        self.log_dict(values)

    # ------------------------------------------------------------ optimizer and schedule
    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            raise FitlabError("model.optimizer is not set", "add an optimizer partial config")
        # Weight decay acts where L1 and L2 do (loss.penalised); the rest decays nothing.
        groups = [{"params": self.penalised}, {"params": self.left_alone, "weight_decay": 0.0}]
        optimizer = self.optimizer_factory(params=[g for g in groups if g["params"]])
        warmup = self.hparams.warmup_epochs
        scheduler = self.scheduler_factory(optimizer=optimizer) if self.scheduler_factory else None
        if warmup:
            scheduler = with_warmup(optimizer, scheduler, warmup)
        if scheduler is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "interval": "epoch",
                "monitor": self.hparams.monitor,
            },
        }
