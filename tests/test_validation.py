"""Every value a user can set is checked on the composed config, before anything is built."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import write_color_digits
from fitlab.config import config_dir
from fitlab.data.roots import check_image_root
from fitlab.errors import FitlabError
from fitlab.validation import RULES, check_config

# (overrides, words the one-line message must hold): one row per class of mistake.
BAD = [
    # types
    (["data.batch_size=abc"], "data.batch_size=abc is not an integer >= 1"),
    (["data.batch_size=32.0"], "data.batch_size=32.0 is not an integer >= 1"),
    (["train=yes"], "train=yes is not true or false"),
    (["seed=-1"], "seed=-1 is not an integer >= 0"),
    # ranges: probabilities in [0, 1), penalties >= 0, sizes >= 1, learning rate > 0
    (["model.dropout=1.0"], "model.dropout=1.0 is not a number in [0, 1)"),
    (["model.head_dropout=-0.1"], "model.head_dropout=-0.1 is not a number in [0, 1)"),
    (["model.dropout=[0.1,2,0.1]"], "model.dropout=[0.1,2,0.1] is not a number in [0, 1)"),
    (["model.l1=-1e-4"], "model.l1=-0.0001 is not a number >= 0"),
    (["model.l2=-1"], "model.l2=-1 is not a number >= 0"),
    (["data.batch_size=0"], "data.batch_size=0 is not an integer >= 1"),
    (["data.image_size=0"], "data.image_size=0 is not an integer >= 1"),
    (["model.channels=[16,0]"], "model.channels=[16,0] is not a list of integers >= 1"),
    (["model.optimizer.lr=0"], "model.optimizer.lr=0 is not a number > 0"),
    (["model.optimizer.lr=-0.1"], "model.optimizer.lr=-0.1 is not a number > 0"),
    (["trainer.max_epochs=0"], "trainer.max_epochs=0 is not an integer >= 1 or -1"),
    # splits that leave no training set, imbalance ratio, fold within folds
    (["data.val_fraction=0.5", "data.test_fraction=0.5"], "leave no training set"),
    (["data.val_fraction=1.2"], "data.val_fraction=1.2 is not a number in [0, 1)"),
    (["+data.imbalance_ratio=0.5"], "data.imbalance_ratio=0.5 is not a number >= 1"),
    (["+data.num_folds=5", "+data.fold=5"], "data.fold=5 is not below data.num_folds=5"),
    (["+data.num_folds=1"], "data.num_folds=1 is not an integer >= 2"),
    # option names, with the valid ones listed
    (["model.norm=layer"], "model.norm=layer is not one of batch, group, none"),
    (["model.pool=[max,mean,max]"], "model.pool=[max,mean,max] is not one of max, avg, stride"),
    (["model.activation=swish"], "is not one of relu, leaky_relu, gelu"),
    (["model.class_weights=inverse"], "model.class_weights=inverse is not balanced"),
    (["data.source=imagenet"], "data.source=imagenet is not one of digits, mnist"),
    (["+trainer.precision=17"], "trainer.precision=17 is not one of"),
    (["callbacks.early_stopping.mode=up"], "callbacks.early_stopping.mode=up is not one of min"),
    (["optimized_metric=acc"], "optimized_metric=acc is not a logged metric"),
    # one value per block
    (["model.kernel_size=[3,3]"], "model.kernel_size has 2 values for 3 blocks"),
    # kernels that do not fit the image (8x8 digits): the CNN's own output-size check
    (["model.kernel_size=9"], "shrinks its"),
    (["model.channels=[8,8,8,8]"], "model block 3 (max pool"),
    (["model.kernel_size=5", "model.padding=0", "data.image_size=4"], "model block 0 (conv"),
    # epochs, devices, class paths and their arguments
    (["trainer.min_epochs=5", "trainer.max_epochs=3"], "trainer.min_epochs=5 is above"),
    (["trainer.accelerator=gpu", "trainer.devices=64"], "visible GPU(s)"),
    (["model.optimizer._target_=torch.optim.Adamw"], "torch.optim.Adamw cannot be imported"),
    (["+model.optimizer.momentum=0.9"], "model.optimizer.momentum is not an argument of"),
    (["+trainer.max_epoch=3"], "trainer.max_epoch is not an argument of lightning.pytorch.Trainer"),
]


@pytest.mark.parametrize(("overrides", "words"), BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_value_is_refused_with_its_key_and_fix(compose_cfg, overrides, words) -> None:
    with pytest.raises(FitlabError) as caught:
        check_config(compose_cfg(*overrides))
    assert words in str(caught.value)
    assert caught.value.fix  # every message says how to put it right
    assert "\n" not in str(caught.value)


GOOD_OPTIONS = [
    f"{group}={path.stem}"
    for group in ("data", "model", "trainer", "callbacks", "logger", "debug", "experiment")
    for path in sorted((config_dir() / group).glob("*.yaml"))
    if f"{group}={path.stem}" != "trainer=gpu" or torch.cuda.is_available()
]


# The DDP options take every visible GPU; without one they are checked on two CPU processes.
ON_CPU = {"trainer=ddp", "trainer=ddp_spawn", "trainer=multi_node"}


@pytest.mark.parametrize("option", GOOD_OPTIONS)
def test_every_shipped_config_passes(compose_cfg, tmp_path, option) -> None:
    extra = ["trainer.accelerator=cpu", "trainer.devices=2"] * (
        option in ON_CPU and not torch.cuda.is_available()
    )
    if option == "experiment=rgb_vs_gray":  # its image folder, as the study writes it
        extra.append(f"data.root={write_color_digits(tmp_path / 'color_digits')}")
    check_config(compose_cfg(option, *extra))


def test_good_values_at_the_edges_pass(compose_cfg) -> None:
    check_config(
        compose_cfg(
            "model.dropout=[0.0,0.5,0.99]",
            "model.l2=0",
            "model.pool=[none,stride,avg]",
            "data.val_fraction=0.0",
            "trainer.max_epochs=-1",
            "model.class_weights=balanced",
        )
    )


def test_every_rule_names_a_key_the_configs_or_the_spec_use() -> None:
    keys = [rule.key for rule in RULES]
    assert len(keys) == len(set(keys))
    assert {"data.imbalance_ratio", "data.fold", "model.dropout", "model.optimizer.lr"} <= set(keys)


# ---------------------------------------------------------------------------- data folders
def write_png(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (12, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture
def image_tree(tmp_path: Path) -> Path:
    """A class-per-folder tree of real PNG and JPEG files."""
    root = tmp_path / "images"
    for c in ("cat", "dog"):
        for i in range(3):
            write_png(root / c / f"{i}.png", seed=i)
    Image.open(root / "cat" / "0.png").save(root / "dog" / "extra.jpg")
    return root


def test_a_readable_image_tree_passes(image_tree: Path) -> None:
    check_image_root(image_tree)


def test_missing_root_is_named(compose_cfg, tmp_path: Path) -> None:
    with pytest.raises(FitlabError, match=r"data.root=.*nowhere does not exist"):
        check_config(compose_cfg(f"+data.root={tmp_path / 'nowhere'}"))


def test_empty_root_is_named(compose_cfg, tmp_path: Path) -> None:
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(FitlabError, match=r"data.root=.*empty is empty"):
        check_config(compose_cfg(f"+data.root={tmp_path / 'empty'}"))


def test_a_file_is_not_a_root(tmp_path: Path) -> None:
    write_png(tmp_path / "one.png")
    with pytest.raises(FitlabError, match="is a file, not a folder"):
        check_image_root(tmp_path / "one.png")


@pytest.mark.parametrize("damage", ["truncated", "not_an_image"])
def test_an_unreadable_image_is_named(compose_cfg, image_tree: Path, damage: str) -> None:
    broken = image_tree / "dog" / "1.png"
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"hello")
    with pytest.raises(FitlabError) as caught:
        check_config(compose_cfg(f"+data.root={image_tree}"))
    assert f"cannot read the image {broken}" in str(caught.value)
