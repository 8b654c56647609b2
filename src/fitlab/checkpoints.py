"""Checkpoints a user passes in: found, loaded as data only, and matched against the model.

``ckpt_path=last`` means the newest run of the task. Every checkpoint is read with
``torch.load(weights_only=True)``: tensors, numbers, strings and containers only, so a file that
would import and call code when unpickled is refused instead of run. A checkpoint is matched
twice: its saved hyperparameters against the config before anything is built, and its tensor
shapes against the built model (input channels, image size and classes come from the data).
"""

from __future__ import annotations

import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig, OmegaConf

from fitlab import runs
from fitlab.errors import FitlabError
from fitlab.models.cnn import per_block
from fitlab.runs import latest_checkpoint, newest_run
from fitlab.validation import shown

# Classifier hyperparameters that decide the network's layers; the others (dropout, penalties,
# optimizer) may change when a run is resumed or fine-tuned.
ARCHITECTURE = ("channels", "kernel_size", "stride", "padding", "pool", "norm", "activation")


def resolve(cfg: DictConfig) -> Path | None:
    """The checkpoint ``cfg.ckpt_path`` names, as an absolute path; None when there is none."""
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise FitlabError("no checkpoint given", "pass ckpt_path=PATH/TO/file.ckpt")
    wanted = cfg.get("ckpt_path")
    if wanted is None:
        return None
    if wanted != "last":
        return Path(wanted).expanduser().resolve()
    runs = Path(cfg.paths.log_dir) / cfg.task_name / "runs"
    run = newest_run(runs)
    if run is None:
        raise FitlabError(
            f"ckpt_path=last: no run of task '{cfg.task_name}' under {runs} has a checkpoint",
            "train one first, pass the same experiment=/task_name= as that run, or give a path",
        )
    return latest_checkpoint(run).resolve()


def continue_in_place(path: Path, output_dir: Path) -> int | None:
    """When ``path`` is a checkpoint of the run in ``output_dir``, this job is that run's next
    attempt: count it, and return the step from which its loggers write again (None for a new
    run that starts from another run's weights)."""
    if not runs.continued_run(path, output_dir):
        return None
    ckpt = load(path)
    runs.attempt.follow(runs.earlier_attempts(output_dir, ckpt))
    fit_loop = ckpt["loops"]["fit_loop"]
    place = (fit_loop["state_dict"].get("combined_loader") or [{}])[0]
    within = f", batch {place['batches_done']} of it done" if place.get("batches_done") else ""
    rank_zero_info(
        f"fitlab: attempt {runs.attempt.number} of {output_dir}: resuming from {path.name} "
        f"(epoch {ckpt['epoch']}{within})"
    )
    # Lightning logs at the count of optimizer steps taken ("batches that stepped").
    return int(fit_loop["epoch_loop.state_dict"]["_batches_that_stepped"])


def load(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path`` as plain data, or a FitlabError saying what is wrong with it."""
    if not path.is_file():
        where = "is a folder" if path.is_dir() else "does not exist"
        raise FitlabError(f"checkpoint {path} {where}", "pass the path of a .ckpt file")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on odd files
            warnings.simplefilter("ignore")
            ckpt = torch.load(
                path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path)
            )
    except Exception as exc:
        raise _load_error(path, exc) from exc
    if not (
        isinstance(ckpt, dict) and "state_dict" in ckpt and "pytorch-lightning_version" in ckpt
    ):
        keys = (
            ", ".join(map(str, list(ckpt)[:5])) if isinstance(ckpt, dict) else type(ckpt).__name__
        )
        raise FitlabError(
            f"{path} is a PyTorch file but not a Lightning checkpoint (it holds {keys})",
            "pass a .ckpt written by fitlab-train (its checkpoints/ folder)",
        )
    return ckpt


def _load_error(path: Path, exc: Exception) -> FitlabError:
    message = str(exc)
    if "Weights only load failed" in message:
        found = re.search(r"GLOBAL (\S+)", message)
        what = (
            f"would call {found.group(1)} when unpickled"
            if found
            else "holds pickled objects that are not plain data"
        )
        return FitlabError(
            f"checkpoint {path} {what}; refused: checkpoints load as data only",
            "use a checkpoint written by fitlab-train; never load .ckpt files you do not trust",
        )
    with path.open("rb") as f:
        zip_header = f.read(4) == b"PK\x03\x04"
    if zip_header:  # torch.save writes zip archives: the start is there, the rest is not
        return FitlabError(
            f"checkpoint {path} is truncated or corrupt",
            "use another checkpoint of the run, e.g. the best epoch_*.ckpt, or train again",
        )
    return FitlabError(
        f"{path} is not a checkpoint (not a file written by torch.save)",
        "pass a .ckpt written by fitlab-train (its checkpoints/ folder)",
    )


def check_matches_config(ckpt: dict[str, Any], path: Path, cfg: DictConfig) -> None:
    """The checkpoint's network layout equals the one ``cfg.model`` asks for."""
    saved = ckpt.get("hyper_parameters") or {}
    model = cfg.get("model")
    if model is None or not set(ARCHITECTURE) <= set(saved):
        return  # not a fitlab Classifier checkpoint: the shape check after building decides
    blocks = len(saved["channels"])
    for key in ARCHITECTURE:
        if key not in model:
            continue
        here = OmegaConf.to_container(model[key]) if OmegaConf.is_config(model[key]) else model[key]
        if key == "channels":
            same = list(here) == list(saved[key])
        else:
            same = len(model.channels) == blocks and per_block(here, blocks, key) == per_block(
                saved[key], blocks, key
            )
        if not same:
            raise FitlabError(
                f"checkpoint {path} is a model with model.{key}={shown(saved[key])}, "
                f"this config has model.{key}={shown(here)}",
                "pass the overrides the checkpoint was trained with (its run's "
                ".hydra/overrides.yaml), or a checkpoint of this model",
            )


def check_fits(model: torch.nn.Module, path: Path) -> None:
    """Every tensor of the checkpoint has a place of the same shape in ``model``, and back."""
    saved = load(path)["state_dict"]
    here = model.state_dict()
    for key in sorted(set(saved) | set(here)):
        a, b = saved.get(key), here.get(key)
        if a is None or b is None or tuple(a.shape) != tuple(b.shape):
            show = lambda t: "missing" if t is None else f"of shape {list(t.shape)}"  # noqa: E731
            raise FitlabError(
                f"checkpoint {path} does not fit this model: {key} is {show(a)} in the "
                f"checkpoint and {show(b)} here",
                "use the data= and model= overrides it was trained with (the input channels, "
                "image size and classes come from the data)",
            )
