"""Where the configs live and the OmegaConf resolvers they use."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from fitlab.models.optimization import after_warmup, linear_lr
from fitlab.models.settings import metric_mode, optuna_direction
from fitlab.run.cluster import on_rank_zero, rank_zero_file, run_stamp
from fitlab.run.slurm import register_slurm_resolvers

_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/fitlab


def config_dir() -> Path:
    """The ``configs/`` folder: inside an installed wheel, else at the root of the checkout."""
    if env := os.environ.get("FITLAB_CONFIG_DIR"):
        return Path(env).resolve()
    packaged = _PACKAGE_DIR / "configs"
    if (packaged / "train.yaml").is_file():
        return packaged
    return _PACKAGE_DIR.parents[1] / "configs"


# One stamp per process, so every place that resolves the run folder sees the same name.
_RUN_STAMP = run_stamp()

# configs/hydra/launcher/*.yaml carry the launcher plugins' own names (hydra/launcher=joblib), so
# Hydra 1.3 merges each with the plugin's schema of that name and warns that this matching is
# deprecated. Our files set every field and their _target_, so they stand without the schema.
warnings.filterwarnings(
    "ignore", message=r"\s*'hydra/launcher/\w+' is validated against ConfigStore schema"
)


# The keys that name a file or folder a user types. `~` and environment variables in them are
# expanded as a shell would, once, by expand_path: on the command line (expand_path_overrides,
# before Hydra parses it: Hydra's grammar refuses an unquoted `~`, and a quoted one would stay a
# folder named `~`) and in the defaults (the fitlab.path resolver, configs/paths/default.yaml).
# data.root defaults to paths.data_dir; the run folders are made under paths.log_dir.
PATH_KEYS = frozenset(("data.root", "ckpt_path", "paths.log_dir", "paths.data_dir"))
PATH_KEYS |= {"hydra.run.dir", "hydra.sweep.dir"}  # the run folders themselves
_UNQUOTED = re.compile(r"[\w/.+@%-]*", re.ASCII)  # what Hydra reads as a plain string


def expand_path(path: str) -> str:
    """``path`` with ``~``, ``~user``, ``$NAME`` and ``${NAME}`` expanded (an unset variable stays
    as written, as ``${paths.data_dir}`` and other interpolations do)."""
    return os.path.expanduser(os.path.expandvars(path))


def _expanded(value: str) -> str:
    """One unquoted value of an override, expanded and quoted if Hydra needs it quoted now."""
    path = expand_path(value)
    if path == value or _UNQUOTED.fullmatch(path):
        return path
    return f"'{path}'" if "'" not in path else f'"{path}"'


def expand_path_overrides(overrides: Sequence[str]) -> list[str]:
    """The command line with the values of ``PATH_KEYS`` expanded: ``data.root=~/photos`` becomes
    ``data.root=/home/me/photos``, a sweep ``data.root=~/a,~/b`` each of its values."""
    expanded = []
    for override in overrides:
        key, sep, value = override.partition("=")
        if sep and key.lstrip("+") in PATH_KEYS and "(" not in value:
            if len(value) > 1 and value[0] in "'\"" and value[-1] == value[0]:
                inner = expand_path(value[1:-1])
                value = value[0] + inner + value[0] if value[0] not in inner else value
            else:
                value = ",".join(_expanded(part) for part in value.split(","))
            override = f"{key}={value}"
        expanded.append(override)
    return expanded


def tensorboard_run() -> str:
    """The logger's ``version``: where under ``tensorboard/`` a run's events go. In a job of a
    multirun, a folder named by its swept overrides (``l2=0.0001,seed=2``), so SCALARS and
    IMAGES name its curves by what it varied, not by the job's number alone; else "" (the
    events in ``tensorboard/`` itself)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return ""
    from fitlab.run.hparams import (
        run_name,
    )  # TensorBoard's protobufs: only a sweep's jobs need them

    return run_name(HydraConfig.get())


def register_resolvers() -> None:
    """Register the ``${fitlab.*:}`` resolvers the configs use; safe to call twice."""
    # Cached: launchers that run jobs in other processes (joblib, submitit) copy the resolver
    # cache of the sweep's config, so every job lands in the sweep folder the launcher made.
    OmegaConf.register_new_resolver(
        "fitlab.run_stamp", lambda: _RUN_STAMP, replace=True, use_cache=True
    )
    OmegaConf.register_new_resolver("fitlab.path", expand_path, replace=True)
    OmegaConf.register_new_resolver("fitlab.mode", metric_mode, replace=True)
    OmegaConf.register_new_resolver("fitlab.linear_lr", linear_lr, replace=True)
    OmegaConf.register_new_resolver("fitlab.after_warmup", after_warmup, replace=True)
    OmegaConf.register_new_resolver("fitlab.direction", optuna_direction, replace=True)
    OmegaConf.register_new_resolver("fitlab.rank_zero", on_rank_zero, replace=True)
    OmegaConf.register_new_resolver("fitlab.rank_zero_file", rank_zero_file, replace=True)
    OmegaConf.register_new_resolver("fitlab.tensorboard_run", tensorboard_run, replace=True)
    register_slurm_resolvers()  # the SLURM launcher's defaults that fit the partition


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
        cfg = compose(
            config_name, overrides=expand_path_overrides(overrides), return_hydra_config=True
        )
    HydraConfig.instance().set_config(cfg)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
    return cfg
