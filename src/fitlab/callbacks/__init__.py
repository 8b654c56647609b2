"""Callbacks: plots, per-class reports, the fit diagnosis, stopping on divergence, the random
state for resume."""

from fitlab.callbacks.divergence import NonFiniteLoss, StopOnNonFiniteLoss
from fitlab.callbacks.fit_diagnosis import FitDiagnosis
from fitlab.callbacks.per_class import ClassCounts, PerClassTable
from fitlab.callbacks.plots import ClassificationPlots
from fitlab.callbacks.progress import ThrottledRichProgressBar
from fitlab.callbacks.random_state import RandomState

__all__ = [
    "ClassCounts",
    "ClassificationPlots",
    "FitDiagnosis",
    "NonFiniteLoss",
    "PerClassTable",
    "RandomState",
    "StopOnNonFiniteLoss",
    "ThrottledRichProgressBar",
]
