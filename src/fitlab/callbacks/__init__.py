"""Callbacks: the plots, stopping on divergence, and the random state for exact resume."""

from fitlab.callbacks.divergence import NonFiniteLoss, StopOnNonFiniteLoss
from fitlab.callbacks.plots import ClassificationPlots
from fitlab.callbacks.random_state import RandomState

__all__ = ["ClassificationPlots", "NonFiniteLoss", "RandomState", "StopOnNonFiniteLoss"]
