"""Callbacks: the plots, the per-class reports and the fit diagnosis."""

from fitlab.callbacks.fit_diagnosis import FitDiagnosis
from fitlab.callbacks.per_class import ClassCounts, PerClassTable
from fitlab.callbacks.plots import ClassificationPlots

__all__ = ["ClassCounts", "ClassificationPlots", "FitDiagnosis", "PerClassTable"]
