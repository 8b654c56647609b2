"""Callbacks: the plots and the per-class reports (and, later, the fit diagnosis)."""

from fitlab.callbacks.per_class import ClassCounts, PerClassTable
from fitlab.callbacks.plots import ClassificationPlots

__all__ = ["ClassCounts", "ClassificationPlots", "PerClassTable"]
