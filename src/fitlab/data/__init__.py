"""Data sources, splitting and the DataModule that feeds the model."""

from fitlab.data.datamodule import ImageDataModule

__all__ = ["ImageDataModule"]
