"""Every value a user can set is checked on the composed config, before anything is built."""

from __future__ import annotations

import inspect
import re
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from conftest import write_color_digits
from fitlab.data.roots import check_image_root
from fitlab.errors import FitlabError
from fitlab.models.classifier import Classifier
from fitlab.models.settings import FIT_METRICS
from fitlab.run.config import config_dir
from fitlab.validation import RULES, check_config
from fitlab.validation.consistency import check_directions
from fitlab.validation.kinds import METRIC
from fitlab.validation.trainer import DEVICES, DURATION

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
    (["data.label_noise=1.0"], "data.label_noise=1.0 is not a number in [0, 1)"),
    (["model.dropout=[0.1,2,0.1]"], "model.dropout=[0.1,2,0.1] is not a number in [0, 1)"),
    (["model.l1=-1e-4"], "model.l1=-0.0001 is not a number >= 0"),
    (["model.l2=-1"], "model.l2=-1 is not a number >= 0"),
    (["data.batch_size=0"], "data.batch_size=0 is not an integer >= 1"),
    (["data.image_size=0"], "data.image_size=0 is not an integer >= 1"),
    (["model.channels=[16,0]"], "model.channels=[16,0] is not a list of integers >= 1"),
    (["model.optimizer.lr=0"], "model.optimizer.lr=0 is not a number > 0"),
    (["model.optimizer.lr=-0.1"], "model.optimizer.lr=-0.1 is not a number > 0"),
    (["trainer.max_epochs=0"], "trainer.max_epochs=0 is not an integer >= 1 or -1"),
    (["model.warmup_epochs=-1"], "model.warmup_epochs=-1 is not an integer >= 0"),
    (
        [
            "model.warmup_epochs=2",
            "model.scheduler._target_=torch.optim.lr_scheduler.ReduceLROnPlateau",
            "~model.scheduler.T_max",
        ],
        "SequentialLR cannot follow",
    ),
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
    # metric names: only what the model logs during fit, the valid ones listed
    (["optimized_metric=acc"], "optimized_metric=acc is not a metric the model logs during fit"),
    (["optimized_metric=val/nonexistent"], "one of val/loss, val/acc, val/balanced_acc"),
    (["optimized_metric=test/acc"], "choosing the best epoch or trial by the test set"),
    (["optimized_metric=train/auroc"], "optimized_metric=train/auroc is not a metric"),
    (["model.monitor=val/accuracy"], "model.monitor=val/accuracy is not a metric"),
    (["callbacks.early_stopping.monitor=val/f1"], "early_stopping.monitor=val/f1 is not a metric"),
    (["callbacks.model_checkpoint.monitor=loss"], "model_checkpoint.monitor=loss is not a metric"),
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
    # the CNN's settings reach Classifier as **cnn: a misspelt one is still caught
    (["+model.chanels=[8]"], "model.chanels is not an argument of fitlab.models.Classifier"),
    (["model.decay_norms_and_biases=yes"], "model.decay_norms_and_biases=yes is not true or false"),
    # Trainer arguments Lightning would refuse only once it starts (or would not refuse at all)
    (["trainer.devices=0"], "trainer.devices=0 is not an integer >= 1, -1 (all), auto or a list"),
    (["trainer.devices=[0,0]"], "trainer.devices=[0,0] is not"),
    (["trainer.devices='0'"], "trainer.devices=0 is not"),
    (["trainer.devices=-1", "trainer.accelerator=cpu"], "trainer.devices=-1 with trainer.acc"),
    (["trainer.devices=[0,1]", "trainer.accelerator=cpu"], "ids and -1 are for GPUs"),
    (["+trainer.strategy=dpp"], "trainer.strategy=dpp is not auto or a strategy name"),
    (["+trainer.num_sanity_val_steps=-2"], "num_sanity_val_steps=-2 is not an integer >= -1"),
    (["+trainer.val_check_interval=1.5"], "trainer.val_check_interval=1.5 is not an integer"),
    (["+trainer.val_check_interval=0"], "trainer.val_check_interval=0 is not"),
    (["+trainer.val_check_interval='1:00'"], "trainer.val_check_interval=1:00 is not"),
    (["+trainer.fast_dev_run=-1"], "trainer.fast_dev_run=-1 is not true or false or an integer"),
    (["+trainer.overfit_batches=1.5"], "trainer.overfit_batches=1.5 is not"),
    (["+trainer.max_time=1:00"], "trainer.max_time=1:00 is not a duration DD:HH:MM:SS"),
    (["+trainer.max_time={hour:1}"], "trainer.max_time={'hour': 1} is not a duration"),
    (["+trainer.min_steps=-5"], "trainer.min_steps=-5 is not an integer >= 0"),
    (["+trainer.profiler=simpl"], "trainer.profiler=simpl is not one of simple, advanced"),
    (["+trainer.detect_anomaly=1"], "trainer.detect_anomaly=1 is not true or false"),
    (["+trainer.benchmark=yes"], "trainer.benchmark=yes is not true or false"),
    (["+trainer.sync_batchnorm=on"], "trainer.sync_batchnorm=on is not true or false"),
    (["+trainer.enable_progress_bar=0"], "trainer.enable_progress_bar=0 is not true or false"),
    (["+trainer.reload_dataloaders_every_n_epochs=-1"], "every_n_epochs=-1 is not an integer"),
    (["+trainer.gradient_clip_algorithm=l2"], "gradient_clip_algorithm=l2 is not one of norm"),
    (["trainer.default_root_dir=''"], "trainer.default_root_dir= is not a path"),
    # callbacks' own keys
    (["callbacks.lr_monitor.logging_interval=batch"], "logging_interval=batch is not one of"),
    (["+callbacks.model_checkpoint.every_n_epochs=-1"], "every_n_epochs=-1 is not an integer"),
    (["callbacks.model_checkpoint.save_last=yes"], "save_last=yes is not true or false or link"),
    (["+callbacks.early_stopping.check_finite=1"], "check_finite=1 is not true or false"),
    (["callbacks.plots.pr_curves=maybe"], "callbacks.plots.pr_curves=maybe is not true or false"),
    (["callbacks.slurm_requeue.signal_name=USR1"], "signal_name=USR1 is not a signal name"),
    # sweepers and launchers: what they read, checked when the config has it
    (["hparams_search=digits_optuna", "hydra.sweeper.n_trials=0"], "n_trials=0 is not an"),
    (["hparams_search=digits_optuna", "hydra.sweeper.n_jobs=0"], "sweeper.n_jobs=0 is not an"),
    (["hparams_search=digits_optuna", "hydra.sweeper.direction=up"], "direction=up is not one"),
    (["hydra/launcher=joblib", "hydra.launcher.n_jobs=0"], "hydra.launcher.n_jobs=0 is not"),
    (["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=0"], "timeout_min=0 is not"),
    (["hydra/launcher=submitit_local", "hydra.launcher.nodes=0"], "launcher.nodes=0 is not"),
    (["hydra/launcher=submitit_local", "hydra.launcher.gpus_per_node=-1"], "gpus_per_node=-1"),
    (["hydra/launcher=submitit_local", "hydra.launcher.tasks_per_node=0"], "tasks_per_node=0"),
    (["hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=0"], "cpus_per_task=0 is"),
    (["hydra/launcher=submitit_local", "hydra.launcher.mem_gb=-4"], "mem_gb=-4 is not"),
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
    cfg = compose_cfg(option, *extra)
    check_config(cfg)
    check_directions(cfg)


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


# Set by fitlab itself (the callbacks and logger groups), or objects whose class paths
# check_targets checks.
TRAINER_SET_BY_FITLAB = {"self", "logger", "callbacks", "plugins"}


def test_every_trainer_argument_has_a_rule() -> None:
    """A Lightning upgrade that adds an argument fails here until the table has its row."""
    arguments = set(inspect.signature(L.Trainer.__init__).parameters) - TRAINER_SET_BY_FITLAB
    keys = {rule.key for rule in RULES}
    assert {f"trainer.{name}" for name in arguments} - keys == set()


# Keys that are paths or file names: any string is one.
NOT_RULED = {"dirpath", "filename", "output_dir", "submitit_folder", "temp_folder", "name"}
SWEEPS = [
    ["hparams_search=digits_optuna"],
    *[[f"hydra/launcher={p.stem}"] for p in sorted((config_dir() / "hydra/launcher").glob("*"))],
]


@pytest.mark.parametrize("overrides", SWEEPS, ids=[o[0] for o in SWEEPS])
def test_every_number_a_sweeper_or_launcher_reads_has_a_rule(compose_cfg, overrides) -> None:
    cfg = compose_cfg(*overrides)
    keys = {rule.key for rule in RULES}
    for section in ("sweeper", "launcher"):
        for key, value in OmegaConf.to_container(cfg.hydra[section], resolve=True).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                assert f"hydra.{section}.{key}" in keys
    check_config(cfg)


def test_every_plain_value_of_the_shipped_callbacks_has_a_rule(compose_cfg) -> None:
    keys = {rule.key for rule in RULES}
    for name, node in compose_cfg().callbacks.items():
        for key, value in node.items():
            plain = isinstance(value, (bool, int, float, str)) and not str(key).startswith("_")
            if plain and key not in NOT_RULED:
                assert f"callbacks.{name}.{key}" in keys


def test_the_metric_names_are_what_the_classifier_logs_during_fit() -> None:
    """Validation's list and the Classifier's logging come from one place; a fit proves it."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    data = DataLoader(TensorDataset(torch.randn(24, 1, 4, 4), torch.arange(24) % 3), batch_size=8)
    model = Classifier(in_channels=1, image_size=[4, 4], num_classes=3, channels=[2],
                       head_dropout=0.0, optimizer=partial(torch.optim.SGD, lr=0.1))  # fmt: skip
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, data, data)
    epoch_metrics = {
        name
        for name in trainer.callback_metrics
        if name.startswith(("train/", "val/")) and not name.endswith(("_step", "_best"))
    }
    assert epoch_metrics == set(FIT_METRICS)
    assert all(METRIC.accepts(name) for name in epoch_metrics)
    assert not any(METRIC.accepts("test/" + name.split("/")[1]) for name in epoch_metrics)


KINDS = [
    (DEVICES, [1, 4, -1, "auto", "2", "-1", "0,1", "1,", [0], [0, 2]],
              [0, -2, "0", "", ",", "all", [], [0, 0], [-1], 1.5, True]),
    (DURATION, ["00:12:00:00", "01:00:00:00", {"hours": 1}, {"days": 1, "minutes": 30}],
               ["12:00", "1h", "", {"hour": 1}, {"hours": 0}, 3600, None]),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "good", "bad"), KINDS, ids=["devices", "duration"])
def test_a_kind_takes_what_lightning_takes(kind, good, bad) -> None:
    assert [v for v in good if not kind.accepts(OmegaConf.create({"v": v}).v)] == []
    assert [v for v in bad if kind.accepts(OmegaConf.create({"v": v}).v)] == []


DIRECTIONS = [
    (["hparams_search=digits_optuna", "hydra.sweeper.direction=maximize"],
     "hydra.sweeper.direction=maximize but optimized_metric=val/loss is better lower"),
    (["hparams_search=digits_optuna", "optimized_metric=val/acc",
      "hydra.sweeper.direction=minimize"], "set hydra.sweeper.direction to maximize"),
    (["callbacks.early_stopping.mode=max"], "callbacks.early_stopping.mode=max but"),
    (["optimized_metric=val/f1_macro", "callbacks.model_checkpoint.mode=min"],
     "callbacks.model_checkpoint.monitor=val/f1_macro is better higher"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "words"), DIRECTIONS, ids=[o[-1] for o, _ in DIRECTIONS])
def test_a_sweep_or_callback_follows_its_metric_the_right_way(compose_cfg, overrides, words):
    with pytest.raises(FitlabError, match=re.escape(words)):
        check_directions(compose_cfg(*overrides))


def test_good_trainer_values_pass(compose_cfg) -> None:
    check_config(
        compose_cfg(
            "trainer.devices=auto",
            "+trainer.strategy=ddp_spawn",
            "+trainer.max_time=00:01:00:00",
            "+trainer.val_check_interval=0.5",
            "+trainer.fast_dev_run=3",
            "+trainer.profiler=Simple",  # Lightning reads it in any case
            "+trainer.gradient_clip_algorithm=norm",
            "+trainer.num_sanity_val_steps=-1",
            "callbacks.lr_monitor.logging_interval=null",
            "callbacks.model_checkpoint.save_last=link",
        )
    )


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


def test_lightnings_names_are_written_out_as_lightning_has_them() -> None:
    """The checks name Lightning's precisions and strategies without importing it: the same."""
    import typing

    from lightning.fabric.plugins.precision.precision import _PRECISION_INPUT
    from lightning.pytorch.strategies import StrategyRegistry

    from fitlab.validation.trainer import PRECISIONS, STRATEGIES, STRATEGY

    lightnings = [a for part in typing.get_args(_PRECISION_INPUT) for a in typing.get_args(part)]
    assert lightnings == PRECISIONS
    assert set(STRATEGIES) == {"auto", *StrategyRegistry.available_strategies()}
    assert STRATEGY.accepts("DDP_Spawn") and not STRATEGY.accepts("ddp_spwan")
    StrategyRegistry.register("a_plugins_strategy", object)  # one that a plugin registers
    try:
        assert STRATEGY.accepts("a_plugins_strategy")
    finally:
        StrategyRegistry.remove("a_plugins_strategy")
