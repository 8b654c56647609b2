"""A checkpoint file read as data only, or a FitlabError that says what is wrong with it.

Every checkpoint is read with ``torch.load(weights_only=True)``: tensors, numbers, strings and
containers only, so a file that would import and call code when unpickled is refused instead of
run.
"""

from __future__ import annotations

import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

from fitlab.errors import FitlabError

# How a file written by torch.save starts: a zip archive, or (before torch 1.6) a pickle.
ZIP_START, PICKLE_START = b"PK\x03\x04", b"\x80"


def load(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path`` as plain data, or a FitlabError saying what is wrong with it."""
    if not path.is_file():
        where = "is a folder" if path.is_dir() else "does not exist"
        raise FitlabError(f"checkpoint {path} {where}", "pass the path of a .ckpt file")
    with path.open("rb") as f:
        start = f.read(4)
    if not start.startswith((ZIP_START, PICKLE_START)):  # text, an image, an empty file...
        raise _not_torch_save(path)
    import torch  # here: a path that is wrong fails before torch loads

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
    """Why torch refused ``path``: it would run code, it is cut short, or torch never wrote it."""
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
        zip_header = f.read(4) == ZIP_START
    if zip_header:  # torch.save writes zip archives: the start is there, the rest is not
        return FitlabError(
            f"checkpoint {path} is truncated or corrupt",
            "use another checkpoint of the run, e.g. the best epoch_*.ckpt, or train again",
        )
    return _not_torch_save(path)


def _not_torch_save(path: Path) -> FitlabError:
    return FitlabError(
        f"{path} is not a checkpoint (not a file written by torch.save)",
        "pass a .ckpt written by fitlab-train (its checkpoints/ folder)",
    )
