"""Callbacks: plots, the fit diagnosis, stopping on divergence, the random state for resume."""

from fitlab.callbacks.divergence import NonFiniteLoss, StopOnNonFiniteLoss
from fitlab.callbacks.fit_diagnosis import FitDiagnosis
from fitlab.callbacks.plots import ClassificationPlots
from fitlab.callbacks.random_state import RandomState

__all__ = [
    "ClassificationPlots",
    "FitDiagnosis",
    "NonFiniteLoss",
    "RandomState",
    "StopOnNonFiniteLoss",
]
