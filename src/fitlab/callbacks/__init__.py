"""Callbacks: the plots (and, later, the fit diagnosis)."""

from fitlab.callbacks.fit_diagnosis import FitDiagnosis
from fitlab.callbacks.plots import ClassificationPlots

__all__ = ["ClassificationPlots", "FitDiagnosis"]
