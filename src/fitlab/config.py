"""Where the configs live and the OmegaConf resolvers they use."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

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


def compose_config(
    overrides: Sequence[str] = (), output_dir: str | Path | None = None, config_name: str = "train"
) -> DictConfig:
    """The config an entry point would see for ``overrides``, outside ``hydra.main``.

    Used by ``fitlab-bench`` and the tests. ``${hydra:...}`` interpolations resolve against the
    composed Hydra config; ``output_dir`` stands in for the run folder Hydra would have made.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
    return cfg
