"""Checks that read several keys at once: splits that leave a training set, a fold inside its
folds, epochs in order, a GPU that exists, a CNN that fits the image, a data folder that holds
readable data, and class paths that import and take the keys given to them.

Only ``check_accelerator`` (torch, to see the GPUs) and ``check_targets`` (the classes a config
names) import anything heavy, and only when they must; :mod:`fitlab.validation` runs them after
the others, so a wrong value fails before torch loads.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path

from hydra._internal.utils import _locate
from omegaconf import DictConfig, OmegaConf

from fitlab.data.roots import check_image_root
from fitlab.data.sources import IMAGE_SIZES
from fitlab.data.split import check_fractions
from fitlab.errors import FitlabError
from fitlab.models.settings import metric_mode, optuna_direction, plan_blocks
from fitlab.validation.kinds import COUNT, integer, is_int
from fitlab.validation.rules import lookup, shown


def check_channels(cfg: DictConfig) -> None:
    present, channels = lookup(cfg, "model.channels")
    if present and not (
        isinstance(channels, Sequence)
        and len(channels) > 0
        and all(integer(1).accepts(c) for c in channels)
    ):
        raise FitlabError(
            f"model.channels={shown(channels)} is not a list of integers >= 1",
            "give one output width per block, e.g. model.channels='[32,64]'",
        )


def check_splits(cfg: DictConfig) -> None:
    data = cfg.get("data") or {}
    if "val_fraction" in data and "test_fraction" in data:
        check_fractions(data.val_fraction, data.test_fraction)
    folds, fold = data.get("num_folds"), data.get("fold")
    if folds is not None and fold is not None and fold >= folds:
        raise FitlabError(
            f"data.fold={fold} is not below data.num_folds={folds}",
            f"folds are numbered 0 to {folds - 1}",
        )


def check_warmup(cfg: DictConfig) -> None:
    """A warm-up hands over to a scheduler that steps by epoch, not one that waits on a metric."""
    model = cfg.get("model") or {}
    scheduler = str((model.get("scheduler") or {}).get("_target_", ""))
    if model.get("warmup_epochs") and scheduler.endswith("ReduceLROnPlateau"):
        raise FitlabError(
            f"model.warmup_epochs={model.warmup_epochs} with model.scheduler={scheduler}, "
            "which PyTorch's SequentialLR cannot follow",
            "set model.warmup_epochs=0, or a scheduler that steps by epoch (cosine, step, ...)",
        )


def check_epochs(cfg: DictConfig) -> None:
    trainer = cfg.get("trainer") or {}
    low, high = trainer.get("min_epochs"), trainer.get("max_epochs")
    if low is not None and high not in (None, -1) and low > high:
        raise FitlabError(
            f"trainer.min_epochs={low} is above trainer.max_epochs={high}",
            "lower trainer.min_epochs or raise trainer.max_epochs",
        )


def check_accelerator(cfg: DictConfig) -> None:
    """GPUs that exist; on the CPU, a number of processes (torch is asked only when needed)."""
    trainer = cfg.get("trainer") or {}
    accelerator, wanted = trainer.get("accelerator"), trainer.get("devices", 1)
    counted = wanted == "auto" or COUNT.accepts(wanted)  # ids and -1 name GPUs
    if accelerator in ("gpu", "cuda"):
        import torch

        have = torch.cuda.device_count()
        if have == 0 or (is_int(wanted) and wanted > have):
            raise FitlabError(
                f"trainer.accelerator={trainer.accelerator} with trainer.devices={shown(wanted)} "
                f"but this machine has {have} visible GPU(s)",
                "use trainer=cpu, trainer.accelerator=auto, or fewer trainer.devices",
            )
    elif not counted and (accelerator == "cpu" or (accelerator == "auto" and not _any_gpu())):
        raise FitlabError(
            f"trainer.devices={shown(wanted)} with trainer.accelerator={accelerator} on the CPU",
            "set trainer.devices to a number of processes >= 1 or auto (ids and -1 are for GPUs)",
        )


def _any_gpu() -> bool:
    import torch

    return torch.cuda.is_available() or torch.backends.mps.is_available()


# A key that goes the way of a metric, the metric, and the way a metric's name says.
FOLLOWS = {
    "hydra.sweeper.direction": ("optimized_metric", optuna_direction),
    "callbacks.model_checkpoint.mode": ("callbacks.model_checkpoint.monitor", metric_mode),
    "callbacks.early_stopping.mode": ("callbacks.early_stopping.monitor", metric_mode),
}


def check_directions(cfg: DictConfig) -> None:
    """A sweep or a callback follows its metric the right way: losses and errors down."""
    for key, (metric_key, way) in FOLLOWS.items():
        value, metric = lookup(cfg, key)[1], lookup(cfg, metric_key)[1]
        if isinstance(value, str) and isinstance(metric, str) and value != way(metric):
            better = "lower" if metric_mode(metric) == "min" else "higher"
            raise FitlabError(
                f"{key}={value} but {metric_key}={metric} is better {better}",
                f"set {key} to {way(metric)}",
            )


def check_targets(cfg: DictConfig, path: str = "") -> None:
    """Every ``_target_`` imports, and its config keys are arguments it takes."""
    for key, node in cfg.items_ex(resolve=False) if isinstance(cfg, DictConfig) else ():
        where = f"{path}{key}"
        if where == "hydra" or not isinstance(node, DictConfig):
            continue
        if "_target_" in node:
            _check_target(node, where)
        check_targets(node, where + ".")


def _check_target(node: DictConfig, where: str) -> None:
    target = node._target_
    try:
        obj = _locate(target)  # what instantiate uses; hydra.utils.get_object also logs the error
    except Exception as exc:
        raise FitlabError(
            f"{where}._target_={target} cannot be imported", "check the spelling of the class path"
        ) from exc
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return
    accepted = [name for name, p in params.items() if p.kind is not p.VAR_KEYWORD]
    if len(accepted) < len(params):  # **kwargs: what it takes, if the target says (Classifier)
        if not hasattr(obj, "keyword_arguments"):
            return
        accepted += obj.keyword_arguments
    from fitlab.data.resampling import FITLAB_KEYS  # the sampler's import made it cheap

    own = FITLAB_KEYS if where == "resampler" else ()  # read by fitlab, not passed on
    for key in node:
        if not str(key).startswith("_") and key not in accepted and key not in own:
            valid = [p for p in accepted if p not in ("self", "params", "optimizer")]
            raise FitlabError(
                f"{where}.{key} is not an argument of {target}",
                f"remove it or use one of: {', '.join(valid)}",
            )


def check_model_fits_image(cfg: DictConfig) -> None:
    """Every block of the CNN leaves at least 1x1 of the image (the CNN's own shape arithmetic).

    The image size is ``data.image_size`` or the source's known size; sources whose size is known
    only from their files are checked when the model is built.
    """
    model, data = cfg.get("model"), cfg.get("data") or {}
    if not model or model.get("_target_") != "fitlab.models.Classifier":
        return
    size = data.get("image_size") or IMAGE_SIZES.get(data.get("source"))
    wanted = set(inspect.signature(plan_blocks).parameters) - {"image_size"}
    if size is None or not wanted <= set(model):  # the model, when built, checks the rest
        return
    arch = {k: v for k, v in OmegaConf.to_container(model, resolve=True).items() if k in wanted}
    plan_blocks((size, size) if is_int(size) else size, **arch)


def check_data_root(cfg: DictConfig) -> None:
    present, root = lookup(cfg, "data.root")
    # Sources that can download (mnist, cifar10, ...) check their own files when they load,
    # naming the folder they expect and data.download; image trees are checked here.
    if present and root is not None and "download" not in cfg.data:
        check_image_root(Path(root))
