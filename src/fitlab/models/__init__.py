"""The CNN and the LightningModule that trains it."""

from fitlab.models.classifier import Classifier
from fitlab.models.cnn import CNN

__all__ = ["CNN", "Classifier"]
