"""The LightningModule: cross-entropy with explicit L1/L2 penalties, metrics per stage.

Optimizer and scheduler arrive as partials (``_partial_: true`` configs) and are kept out of the
saved hyperparameters, so checkpoints hold only plain values and load under ``weights_only``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch.optim.lr_scheduler import LinearLR, SequentialLR
from torchmetrics import MaxMetric, MeanMetric, Metric, MetricCollection, MinMetric
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from fitlab.errors import FitlabError
from fitlab.models.accumulation import ExactAccumulation
from fitlab.models.cnn import CNN
from fitlab.models.settings import computed_metrics, metric_mode
from fitlab.run.cluster import destroy_process_group_at_exit
from fitlab.run.console import in_spawned_rank

Batch = tuple[torch.Tensor, torch.Tensor]


def balanced_class_weights(class_counts: Sequence[int]) -> torch.Tensor:
    """scikit-learn's ``balanced`` weights: n_samples / (n_classes * count_c)."""
    counts = torch.as_tensor(class_counts, dtype=torch.float32)
    return counts.sum() / (len(counts) * counts.clamp_min(1))


def metric_key(class_name: str) -> str:
    """A class name as it appears in metric names: TensorBoard reads '/' as a folder."""
    return str(class_name).replace("/", "_")


# The metric each name of settings.METRICS stands for.
METRIC_CLASSES: dict[str, Callable[[int], Metric]] = {
    "acc": lambda n: MulticlassAccuracy(n, average="micro"),
    "balanced_acc": lambda n: MulticlassRecall(n, average="macro"),
    "f1_macro": lambda n: MulticlassF1Score(n, average="macro"),
    "auroc": lambda n: MulticlassAUROC(n, average="macro"),
}


def stage_metrics(num_classes: int, stage: str) -> MetricCollection:
    metrics = {name: METRIC_CLASSES[name](num_classes) for name in computed_metrics(stage)}
    return MetricCollection(metrics, prefix=f"{stage}/")


class Classifier(L.LightningModule):
    """Trains a :class:`CNN`; the data's shape and classes come from the DataModule."""

    def __init__(
        self,
        in_channels: int,
        image_size: Sequence[int],
        num_classes: int,
        class_names: Sequence[str] | None = None,
        class_counts: Sequence[int] | None = None,
        channels: Sequence[int] = (32, 64, 128),
        kernel_size: int | Sequence[int] = 3,
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 1,
        pool: str | Sequence[str] = "max",
        norm: str | Sequence[str] = "batch",
        activation: str | Sequence[str] = "relu",
        dropout: float | Sequence[float] = 0.0,
        head_dropout: float = 0.0,
        l1: float = 0.0,
        l2: float = 0.0,
        label_smoothing: float = 0.0,
        class_weights: str | None = None,
        monitor: str = "val/loss",
        compile: bool = False,
        channels_last: bool | str = "auto",
        warmup_epochs: int = 0,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.class_names = list(class_names or range(num_classes))
        self.net = CNN(
            in_channels, num_classes, image_size, channels=channels, kernel_size=kernel_size,
            stride=stride, padding=padding, pool=pool, norm=norm, activation=activation,
            dropout=dropout, head_dropout=head_dropout,
        )  # fmt: skip
        if compile:
            self.net.compile()
        self.channels_last = False  # decided in setup(), once the device is known
        self.example_input_array = torch.zeros(1, in_channels, *image_size)

        if class_weights not in (None, "balanced"):
            raise FitlabError(
                f"model.class_weights={class_weights!r} is not an option", "use null or balanced"
            )
        if class_weights == "balanced" and class_counts is None:
            raise FitlabError(
                "model.class_weights=balanced needs the class counts",
                "train it through fitlab-train, which passes them from the data",
            )
        weight = balanced_class_weights(class_counts) if class_weights == "balanced" else None
        self.register_buffer("class_weight", weight, persistent=False)
        # L1/L2 act on the weights of convolutions and linear layers, not on biases or norms.
        self.penalised = [p for p in self.net.parameters() if p.ndim > 1]

        # Separate attributes per stage ("train" would shadow nn.Module.train in a ModuleDict).
        for stage in ("train", "val", "test"):
            setattr(self, f"{stage}_metrics", stage_metrics(num_classes, stage))
            setattr(self, f"{stage}_loss", MeanMetric())
        self.best = MinMetric() if metric_mode(monitor) == "min" else MaxMetric()
        self.best.persistent(True)  # in the checkpoint, so a resumed run keeps its best so far
        self.penalty_means = torch.nn.ModuleDict({"l1": MeanMetric(), "l2": MeanMetric()})
        # A checkpoint saved mid-epoch (a SLURM requeue) carries the epoch's running training
        # metrics, so the resumed epoch reports all its batches, as if never interrupted.
        for metric in self.running_train_metrics():
            metric.persistent(True)
        # The loss of an optimizer step over all its micro-batches and devices (accumulation.py)
        self.accumulation = ExactAccumulation()

        # Per class at test end: under imbalance the averages hide what happens to rare classes.
        self.test_per_class = MetricCollection(
            {
                "recall": MulticlassRecall(num_classes, average=None),
                "precision": MulticlassPrecision(num_classes, average=None),
            }
        )

    def setup(self, stage: str) -> None:
        destroy_process_group_at_exit()  # gloo ranks otherwise abort at exit now and then
        in_spawned_rank(self.trainer.global_rank)  # ddp_spawn's rank 0 logs to the run's log too
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
        return F.cross_entropy(
            logits, target, weight=self.class_weight, label_smoothing=self.hparams.label_smoothing
        )

    def penalties(self) -> dict[str, torch.Tensor]:
        """``l1 * sum |w|`` and ``l2 * sum w^2`` over the penalised weights (only if enabled)."""
        terms = {}
        if self.hparams.l1 > 0:
            terms["l1"] = self.hparams.l1 * sum(p.abs().sum() for p in self.penalised)
        if self.hparams.l2 > 0:
            terms["l2"] = self.hparams.l2 * sum(p.pow(2).sum() for p in self.penalised)
        return terms

    # ------------------------------------------------------------------------ the steps
    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        steps = self.trainer.accumulate_grad_batches if self._trainer is not None else 1
        # One unweighted micro-batch a step: cross_entropy's own mean is the step's exact loss,
        # and the hot path skips the per-image losses and the bookkeeping (under DDP, a
        # collective per step).
        plain = steps == 1 and self.class_weight is None
        if plain:
            loss = self.data_loss(logits, y)
        else:
            losses = F.cross_entropy(
                logits,
                y,
                weight=self.class_weight,
                label_smoothing=self.hparams.label_smoothing,
                reduction="none",
            )
            # Each image counts with its class weight (1 without class weights); the loss is
            # the weighted mean, what cross_entropy's default reduction gives.
            summed = losses.sum()
            if self.class_weight is not None:
                weight = self.class_weight[y].sum()
            else:
                weight = losses.new_tensor(len(y))
            loss = summed / weight
        penalty = None
        for name, term in self.penalties().items():
            self.penalty_means[name].update(term.detach())
            penalty = term if penalty is None else penalty + term
        # Lightning writes step values only every log_every_n_steps; calling self.log on the
        # other steps costs ~0.1 ms each for nothing.
        if self._trainer is not None and self.trainer._logger_connector.should_update_logs:
            self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True)
        self.train_loss.update(loss.detach(), len(y))
        self.train_metrics.update(logits.detach(), y)
        if plain:
            return loss if penalty is None else loss + penalty
        penalty = loss.new_zeros(()) if penalty is None else penalty
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
        values.update(self.weight_statistics())
        self.log_dict(values)

    @torch.no_grad()
    def weight_statistics(self) -> dict[str, torch.Tensor]:
        """What L1 and L2 do to the penalised weights: sparsity (share of |w| < 1e-3) and norms."""
        flat = torch.cat([p.detach().flatten() for p in self.penalised])
        return {
            "weights/sparsity": (flat.abs() < 1e-3).float().mean(),
            "weights/l1_norm": flat.abs().sum(),
            "weights/l2_norm": flat.norm(),
        }

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

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            raise FitlabError("model.optimizer is not set", "add an optimizer partial config")
        optimizer = self.optimizer_factory(params=self.parameters())
        warmup = self.hparams.warmup_epochs
        if self.scheduler_factory is None and not warmup:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer) if self.scheduler_factory else None
        if warmup:
            ramp = LinearLR(optimizer, start_factor=1 / (warmup + 1), total_iters=warmup)
            scheduler = ramp if scheduler is None else SequentialLR(
                optimizer, [ramp, scheduler], milestones=[warmup]
            )  # fmt: skip
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "interval": "epoch",
                "monitor": self.hparams.monitor,
            },
        }
