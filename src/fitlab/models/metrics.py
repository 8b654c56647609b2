"""The metrics the model logs per stage, from torchmetrics, by the names of settings.METRICS."""

from __future__ import annotations

from collections.abc import Callable

from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from fitlab.models.settings import computed_metrics

# The metric each name of settings.METRICS stands for.
METRIC_CLASSES: dict[str, Callable[[int], Metric]] = {
    "acc": lambda n: MulticlassAccuracy(n, average="micro"),
    "balanced_acc": lambda n: MulticlassRecall(n, average="macro"),
    "f1_macro": lambda n: MulticlassF1Score(n, average="macro"),
    "auroc": lambda n: MulticlassAUROC(n, average="macro"),
}


def metric_key(class_name: str) -> str:
    """A class name as it appears in metric names: TensorBoard reads '/' as a folder."""
    return str(class_name).replace("/", "_")


def stage_metrics(num_classes: int, stage: str) -> MetricCollection:
    """``<stage>/acc``, ``<stage>/balanced_acc``, ... for one stage."""
    metrics = {name: METRIC_CLASSES[name](num_classes) for name in computed_metrics(stage)}
    return MetricCollection(metrics, prefix=f"{stage}/")


def per_class_metrics(num_classes: int) -> MetricCollection:
    """Recall and precision of each class: under imbalance the averages hide the rare ones."""
    return MetricCollection(
        {
            "recall": MulticlassRecall(num_classes, average=None),
            "precision": MulticlassPrecision(num_classes, average=None),
        }
    )
