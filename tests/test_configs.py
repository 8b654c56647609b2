"""Every config in configs/ composes, and what it names can be instantiated."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint

from conftest import write_color_digits
from fitlab.run.config import config_dir
from fitlab.run.pipeline import build_parts, build_trainer

GROUPS = ["data", "resampler", "model", "trainer", "callbacks", "logger", "debug", "experiment"]
GROUPS += ["hparams_search", "hydra/launcher"]
# Options that need hardware or processes this machine lacks are composed, not built.
NEEDS_GPU = {("trainer", "gpu"), ("trainer", "ddp"), ("trainer", "ddp_spawn")}
NEEDS_GPU |= {("trainer", "multi_node")}
# Sources that read files are composed here and loaded in tests/data/test_sources.py.
NEEDS_FILES = {("data", name) for name in ("mnist", "fashion_mnist", "cifar10", "image_folder")}
# Resamplers are for imbalanced data (ADASYN refuses balanced digits): build them on digits_lt.
WITH = {"resampler": ("data=digits_lt",)}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


CASES = [(group, option) for group in GROUPS for option in options(group)]


def test_every_group_has_options() -> None:
    assert all(options(group) for group in GROUPS)
    assert Path(config_dir(), "train.yaml").is_file()


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_config_composes_and_instantiates(compose_cfg, tmp_path, group: str, option: str) -> None:
    extra = WITH.get(group, ())
    if (group, option) == ("experiment", "rgb_vs_gray"):  # its image folder, as the study writes it
        extra = (f"data.root={write_color_digits(tmp_path / 'color_digits')}",)
    cfg = compose_cfg(f"{group}={option}", *extra)
    assert cfg.paths.output_dir
    if (group, option) in NEEDS_GPU:
        assert cfg.trainer.accelerator == "gpu"
        return
    if (group, option) in NEEDS_FILES:
        assert cfg.data.source == option
        return
    datamodule, model = build_parts(cfg)
    assert model.hparams.num_classes == datamodule.num_classes
    trainer = build_trainer(cfg)
    assert trainer.max_epochs >= 1 or trainer.fast_dev_run


def test_callbacks_none_saves_no_checkpoint_unless_asked(compose_cfg) -> None:
    assert isinstance(build_trainer(compose_cfg()).checkpoint_callback, ModelCheckpoint)
    assert build_trainer(compose_cfg("callbacks=none")).checkpoint_callback is None
    asked = compose_cfg("callbacks=none", "++trainer.enable_checkpointing=true")
    assert isinstance(build_trainer(asked).checkpoint_callback, ModelCheckpoint)


@pytest.mark.parametrize(
    ("overrides", "metric", "mode"),
    [
        ((), "val/loss", "min"),
        (("optimized_metric=val/balanced_acc",), "val/balanced_acc", "max"),
        (("experiment=imbalance", "hydra.mode=RUN"), "val/balanced_acc", "max"),
        (("optimized_metric=train/loss",), "train/loss", "min"),
    ],
)
def test_optimized_metric_decides_every_best(compose_cfg, overrides, metric, mode) -> None:
    cfg = compose_cfg(*overrides)
    trainer = build_trainer(cfg)
    checkpoint, early = trainer.checkpoint_callback, trainer.early_stopping_callback
    assert (checkpoint.monitor, checkpoint.mode) == (metric, mode)
    assert (early.monitor, early.mode) == (metric, mode)
    _, model = build_parts(cfg)
    assert model.hparams.monitor == metric  # val/<metric>_best and the LR scheduler's monitor
    assert type(model.best).__name__ == f"{mode.capitalize()}Metric"


def test_eval_config_composes(compose_cfg) -> None:
    cfg = compose_cfg("ckpt_path=x.ckpt", "experiment=quick", config_name="eval")
    assert cfg.task_name == "eval" and cfg.model.channels == [16, 32]


def test_optimizer_and_scheduler_are_partials(compose_cfg) -> None:
    cfg = compose_cfg()
    optimizer = instantiate(cfg.model.optimizer)
    assert callable(optimizer) and optimizer.func.__name__ == "AdamW"
    assert cfg.model.scheduler.T_max == cfg.trainer.max_epochs
