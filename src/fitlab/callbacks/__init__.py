"""Callbacks: plots, per-class reports, the fit diagnosis, stopping on divergence, and what
makes a run survive a kill or a SLURM requeue (checkpoints, random state, attempts)."""

from fitlab.callbacks.attempts import RunAttempts
from fitlab.callbacks.checkpoint import ModelCheckpoint
from fitlab.callbacks.divergence import NonFiniteLoss, StopOnNonFiniteLoss
from fitlab.callbacks.fit_diagnosis import FitDiagnosis
from fitlab.callbacks.per_class import ClassCounts, PerClassTable
from fitlab.callbacks.plots import ClassificationPlots
from fitlab.callbacks.progress import ThrottledRichProgressBar
from fitlab.callbacks.random_state import RandomState
from fitlab.callbacks.requeue import Requeued, SlurmRequeue

__all__ = [
    "ClassCounts",
    "ClassificationPlots",
    "FitDiagnosis",
    "ModelCheckpoint",
    "NonFiniteLoss",
    "PerClassTable",
    "RandomState",
    "Requeued",
    "RunAttempts",
    "SlurmRequeue",
    "StopOnNonFiniteLoss",
    "ThrottledRichProgressBar",
]
