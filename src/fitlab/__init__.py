"""fitlab: a PyTorch Lightning + Hydra research template for image-classification CNNs."""

__version__ = "0.1.0"
