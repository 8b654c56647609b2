"""Where the configs live and the OmegaConf resolvers they use."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from omegaconf import OmegaConf

_PACKAGE_DIR = Path(__file__).resolve().parent


def config_dir() -> Path:
    """The ``configs/`` folder: inside an installed wheel, else at the root of the checkout."""
    if env := os.environ.get("FITLAB_CONFIG_DIR"):
        return Path(env).resolve()
    packaged = _PACKAGE_DIR / "configs"
    if (packaged / "train.yaml").is_file():
        return packaged
    return _PACKAGE_DIR.parents[1] / "configs"


# One stamp per process, so every place that resolves the run folder sees the same name. The
# random suffix keeps two runs started in the same second (or by two users) apart.
_RUN_STAMP = time.strftime("%Y-%m-%d_%H-%M-%S") + "_" + secrets.token_hex(3)


def metric_mode(metric: str) -> str:
    """``min`` for losses and errors, ``max`` for everything else (accuracy, F1, AUROC)."""
    name = metric.rsplit("/", 1)[-1]
    return "min" if ("loss" in name or "error" in name) else "max"


def register_resolvers() -> None:
    """Register ``${fitlab.run_stamp:}`` and ``${fitlab.mode:<metric>}``; safe to call twice."""
    OmegaConf.register_new_resolver("fitlab.run_stamp", lambda: _RUN_STAMP, replace=True)
    OmegaConf.register_new_resolver("fitlab.mode", metric_mode, replace=True)


register_resolvers()
