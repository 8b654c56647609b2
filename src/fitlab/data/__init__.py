"""Data sources, splitting and the DataModule that feeds the model."""

from fitlab import exported_on_first_use

__all__ = ["ImageDataModule"]
__getattr__ = exported_on_first_use(__name__, {"ImageDataModule": "fitlab.data.datamodule"})
