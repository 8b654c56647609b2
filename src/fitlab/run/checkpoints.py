"""Checkpoints a user passes in: found, and matched against the config and the model.

``ckpt_path=last`` means the newest run of the task whose network and data are this command's.
Each file is read as data only (:mod:`fitlab.run.checkpoint_file`). A checkpoint is matched
twice: its saved hyperparameters against the config before anything is built, and its tensor
shapes against the built model (input channels, image size and classes come from the data).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from fitlab.errors import FitlabError
from fitlab.models.settings import LAYOUT, per_block
from fitlab.run import folders
from fitlab.run.checkpoint_file import load
from fitlab.run.folders import latest_checkpoint, runs_with_checkpoints
from fitlab.validation import shown

if TYPE_CHECKING:
    import torch

# Classifier hyperparameters that decide the network's layers; the others (dropout, penalties,
# optimizer) may change when a run is resumed or fine-tuned.
ARCHITECTURE = LAYOUT
# Data keys that decide which images a run saw and their shape; the batch size, workers and the
# resampler may change between a run and its resumption.
DATA_IDENTITY = (
    "source",
    "root",
    "image_size",
    "grayscale",
    "val_fraction",
    "test_fraction",
    "seed",
    "imbalance_ratio",
    "num_folds",
    "fold",
)


def resolve(cfg: DictConfig) -> Path | None:
    """The checkpoint ``cfg.ckpt_path`` names, as an absolute path; None when there is none."""
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise FitlabError("no checkpoint given", "pass ckpt_path=PATH/TO/file.ckpt")
    wanted = cfg.get("ckpt_path")
    if wanted is None:
        return None
    if wanted != "last":
        return Path(wanted).expanduser().resolve()
    return newest_matching_run(cfg)


def newest_matching_run(cfg: DictConfig) -> Path:
    """``ckpt_path=last``: the latest checkpoint of the newest run of the task whose model
    layout and data are the ones ``cfg`` asks for."""
    runs_dir = Path(cfg.paths.log_dir) / cfg.task_name / "runs"
    candidates = runs_with_checkpoints(runs_dir)
    if not candidates:
        raise FitlabError(
            f"ckpt_path=last: no run of task '{cfg.task_name}' under {runs_dir} has a checkpoint",
            "train one first, pass the same experiment=/task_name= as that run, or give a path",
        )
    others = []
    for run in candidates:
        differs = run_differences(run, cfg)
        if not differs:
            return latest_checkpoint(run).resolve()
        others.append(f"{run.name} ({', '.join(differs[:2])})")
    raise FitlabError(
        f"ckpt_path=last: none of the {len(others)} runs of task '{cfg.task_name}' under "
        f"{runs_dir} has this command's model and data; the newest: {'; '.join(others[:3])}",
        "pass the overrides of the run you mean (its .hydra/overrides.yaml), or its checkpoint "
        "as ckpt_path=RUN/checkpoints/last.ckpt",
    )


def run_differences(run: Path, cfg: DictConfig) -> list[str]:
    """The model-layout and data keys in which ``run``'s saved config differs from ``cfg``, as
    ``key=the run's value``; empty when they agree (or the run kept no config to compare)."""
    saved_path = run / ".hydra" / "config.yaml"
    if not saved_path.is_file():
        return []
    saved = OmegaConf.load(saved_path)
    differs = []
    saved_model, model = saved.get("model") or {}, cfg.get("model") or {}
    channels = _plain(saved_model, "channels")
    for key in ARCHITECTURE:
        if key in saved_model and key in model:
            theirs, ours = _plain(saved_model, key), _plain(model, key)
            if not _same_layout(key, ours, theirs, channels):
                differs.append(f"model.{key}={shown(theirs)}")
    saved_data, data = saved.get("data") or {}, cfg.get("data") or {}
    for key in DATA_IDENTITY:
        if key in saved_data or key in data:
            theirs, ours = _plain(saved_data, key), _plain(data, key)
            if theirs != ours and not (isinstance(theirs, str) and "${" in theirs):
                differs.append(f"data.{key}={shown(theirs)}")
    return differs


def _plain(node: Any, key: str) -> Any:
    """``node[key]`` as plain data, resolved where it can be (a saved config's ``${hydra:...}``
    interpolations cannot), else as written."""
    if key not in node:
        return None
    try:
        value = node[key]
    except Exception:  # an interpolation that only resolves inside the run
        return OmegaConf.to_container(node, resolve=False).get(key)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _same_layout(key: str, ours: Any, theirs: Any, channels: Any) -> bool:
    """Equal as layers: ``kernel_size=3`` is ``[3,3]`` for two blocks."""
    if key == "channels":
        return list(ours) == list(theirs)
    blocks = len(channels) if isinstance(channels, list) else 1
    try:
        return per_block(ours, blocks, key) == per_block(theirs, blocks, key)
    except FitlabError:  # a list for another number of blocks
        return False


def continue_in_place(path: Path, output_dir: Path) -> int | None:
    """When ``path`` is a checkpoint of the run in ``output_dir``, this job is that run's next
    attempt: count it, and return the step from which its loggers write again (None for a new
    run that starts from another run's weights)."""
    if not folders.continued_run(path, output_dir):
        return None
    ckpt = load(path)
    folders.attempt.follow(folders.earlier_attempts(output_dir, ckpt))
    fit_loop = ckpt["loops"]["fit_loop"]
    place = (fit_loop["state_dict"].get("combined_loader") or [{}])[0]
    within = f", batch {place['batches_done']} of it done" if place.get("batches_done") else ""
    from lightning.pytorch.utilities import rank_zero_info

    rank_zero_info(
        f"fitlab: attempt {folders.attempt.number} of {output_dir}: resuming from {path.name} "
        f"(epoch {ckpt['epoch']}{within})"
    )
    # Lightning logs at the count of optimizer steps taken ("batches that stepped"). Saved at a
    # batch end in mid-epoch (SlurmRequeue), the count lacks that batch: Lightning adds it when
    # it restarts there, and the earlier attempt logged that batch's step itself.
    step = int(fit_loop["epoch_loop.state_dict"]["_batches_that_stepped"])
    return step + 1 if place.get("batches_done") else step


def check_matches_config(ckpt: dict[str, Any], path: Path, cfg: DictConfig) -> None:
    """The checkpoint's network layout equals the one ``cfg.model`` asks for."""
    saved = ckpt.get("hyper_parameters") or {}
    model = cfg.get("model")
    if model is None or not set(ARCHITECTURE) <= set(saved):
        return  # not a fitlab Classifier checkpoint: the shape check after building decides
    for key in ARCHITECTURE:
        if key not in model:
            continue
        here = _plain(model, key)
        if key != "channels" and len(model.channels) != len(saved["channels"]):
            same = False
        else:
            same = _same_layout(key, here, saved[key], saved["channels"])
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
