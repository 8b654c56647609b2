"""The CNN and the LightningModule that trains it; ``settings`` holds what the config may say."""

from fitlab import exported_on_first_use

__all__ = ["CNN", "Classifier"]
__getattr__ = exported_on_first_use(
    __name__, {"CNN": "fitlab.models.cnn", "Classifier": "fitlab.models.classifier"}
)
