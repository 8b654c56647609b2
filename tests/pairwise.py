"""The pairwise (all-pairs) cover of fitlab's config options, the data it runs on, and a runner.

Every option of every axis below occurs with every option of every other axis in at least one
row; ``allpairspy`` finds a small set of such rows instead of the full product. The option lists
come from ``configs/<group>/*.yaml``, so a new option file joins the cover by itself. Options
that cannot go together are in ``REFUSED``, with the reason: the cover leaves them out and
``tests/test_pairwise.py`` checks that fitlab refuses each one with its one-line error.
"""

from __future__ import annotations

import itertools
import os
import pickle
import sys
import time
import traceback
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from allpairspy import AllPairs

from conftest import logging_kept, write_color_digits
from data_files import write_cifar, write_idx
from fitlab.run.config import config_dir


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


# Trainer options that are not rows: they need hardware or a launcher this machine lacks. Each
# is refused on a machine without GPU (test_pairwise checks that).
NOT_ROWS = {
    "gpu": "one GPU",
    "ddp": "GPUs; on CPUs Lightning re-launches the script, which an in-process row cannot",
    "multi_node": "several nodes started by SLURM",
    # devices -1 takes every GPU; on CPUs (trainer.devices=2) it composes to ddp_sim's Trainer
    # arguments exactly (test_pairwise checks that), and a DDP row costs ~25 s
    "ddp_spawn": "GPUs; on CPUs it is trainer=ddp_sim",
}

# Options that add no override: the row leaves the key as its configs compose it (null, but
# experiment=cross_validation sets its own folds, experiment=grad_accumulation its own batch).
UNSET = {
    "regularisation": "regularisation=none",
    "debug": "debug=null",
    "effective_batch_size": "effective_batch_size=null",
    "data.num_folds": "data.num_folds=null",
    "experiment": "experiment=null",
}
# The effective batch that needs 2 accumulation steps: data.batch_size x devices x 2, per row.
TWO_STEPS = "effective_batch_size=2 steps"


# The cheap option of an axis: a row's slot that no pair needs takes it (see cover()). A DDP row
# starts two processes for fit and two for test (~25 s); the default callbacks draw plots (~4 s).
CHEAP = {"trainer": "trainer=default", "callbacks": "callbacks=none"}


REGULARISERS = ("dropout=0.2", "l1=1e-4", "l2=1e-4")
# One axis per group or model switch. model.compile is left out on purpose: torch.compile on
# the CPU costs tens of seconds a run, and it changes no shape or metric.
AXES: dict[str, list[str]] = {
    "data": [f"data={o}" for o in options("data")],
    "resampler": [f"resampler={o}" for o in options("resampler")],
    "model.norm": ["model.norm=batch", "model.norm=group", "model.norm=none"],
    "model.pool": ["model.pool=max", "model.pool=avg", "model.pool=stride", "model.pool=none"],
    "regularisation": [UNSET["regularisation"], *(f"model.{k}" for k in REGULARISERS)],
    "model.class_weights": ["model.class_weights=null", "model.class_weights=balanced"],
    "trainer": [f"trainer={o}" for o in options("trainer") if o not in NOT_ROWS],
    "logger": [f"logger={o}" for o in options("logger")],
    "callbacks": [f"callbacks={o}" for o in options("callbacks") if o != "eval"],
    "debug": [UNSET["debug"]] + [f"debug={o}" for o in options("debug")],
    "effective_batch_size": [UNSET["effective_batch_size"], TWO_STEPS],
    "data.num_folds": [UNSET["data.num_folds"], "data.num_folds=3"],
    "experiment": [UNSET["experiment"]] + [f"experiment={o}" for o in options("experiment")],
}

UNSET_VALUES = set(UNSET.values())

# Every row is one short run: a batch or two of each stage, on the CPU. Many experiments are
# MULTIRUN studies; a row runs one job of the study (the configs' values, no sweep). Batches of
# 16 (32 to evaluate): the rows test combinations, not sizes, and CIFAR-10's 128 images a batch
# through an experiment's wide CNN made a row cost 14 s instead of 4.
LIMITS = (
    "trainer.accelerator=cpu",
    "trainer.max_epochs=2",
    "++trainer.limit_train_batches=2",
    "++trainer.limit_val_batches=1",
    "++trainer.limit_test_batches=1",
    "data.batch_size=16",
    "data.eval_batch_size=32",
    "hydra.mode=RUN",
)
# The fit diagnosis measures E_train on at most this many training images (the run's default
# is 10,000: every image of the data written here, four times a run).
DIAGNOSIS = "callbacks.fit_diagnosis.max_train_samples=64"


@dataclass(frozen=True)
class Refusal:
    """Options that cannot go together, why, and words of the one-line error fitlab gives."""

    options: frozenset[str]
    reason: str
    words: str


def refusal(*options: str, reason: str, words: str) -> Refusal:
    return Refusal(frozenset(options), reason, words)


# What only the data can refuse: the samplers' neighbours. fitlab stops while the run starts, with
# the sampler's reason in one line, and removes the folder it made.
SEPARATED = (
    "ADASYN weighs a class by its neighbours of other classes; in the digits, the colour digits "
    "and the long-tailed digits cut into folds some class has none among its 10 nearest"
)
TAIL = (
    "experiment=overfit trains on 10 % of digits: the long tail leaves its rarest class 1 or 2 "
    "images, fewer than the sampler's neighbours (3 folds train on 2/3 and leave enough)"
)
ADASYN = "resampler ADASYN failed on the training split (Not any neigbours"
REFUSED = (
    *[
        refusal(*combination, reason=SEPARATED, words=ADASYN)
        for combination in (
            ("data=digits", "resampler=adasyn"),
            ("data=image_folder", "resampler=adasyn"),
            ("data=digits_lt", "resampler=adasyn", "data.num_folds=3"),
            ("data=digits_lt", "resampler=adasyn", "experiment=cross_validation"),
        )
    ],
    *[
        refusal("data=digits_lt", f"experiment={experiment}", *sampler, reason=TAIL, words=words)
        for experiment in ("overfit", "overfit_regularized")
        for sampler, words in (
            (("resampler=adasyn", "data.num_folds=null"), "resampler ADASYN failed"),
            (("resampler=smote", "data.num_folds=null"), "resampler SMOTE failed"),
            (("resampler=near_miss", "data.num_folds=null"), "resampler NearMiss failed"),
        )
    ],
)


def allowed(values: Sequence[str]) -> bool:
    """allpairspy's filter: a row, or the start of one, holds no refused combination."""
    chosen = set(values)
    return not any(r.options <= chosen for r in REFUSED)


def cover() -> list[dict[str, str]]:
    """The rows, axis -> option: every pair of allowed options from two axes in one of them.

    allpairspy gets the axes largest first, as it recommends (in file order its greedy search
    stops with a few pairs left out). Its rows fill the slots no pair needs with whatever comes
    first; those slots then take the axis's cheap option, so the cover has no more DDP or
    plot-drawing rows than its pairs need.
    """
    names = sorted(AXES, key=lambda name: len(AXES[name]), reverse=True)
    rows = [dict(zip(names, row, strict=True)) for row in
            AllPairs([AXES[name] for name in names], filter_func=allowed)]  # fmt: skip
    counts = Counter(p for row in rows for p in row_pairs(row.values()))
    for row in rows:
        for axis, cheap in CHEAP.items():
            changed = {**row, axis: cheap}
            lost = set(row_pairs(row.values())) - set(row_pairs(changed.values()))
            needed = any(counts[p] == 1 for p in lost)
            if row[axis] != cheap and allowed(changed.values()) and not needed:
                counts.subtract(row_pairs(row.values()))
                counts.update(row_pairs(changed.values()))
                row[axis] = cheap
    return [{name: row[name] for name in AXES} for row in rows]


def row_pairs(values: Iterable[str]) -> list[frozenset[str]]:
    """The pairs of options one row holds."""
    return [frozenset(p) for p in itertools.combinations(values, 2)]


def pairs(rows: Iterable[dict[str, str]]) -> set[frozenset[str]]:
    """Every pair of options from two different axes that the rows hold."""
    return {p for row in rows for p in row_pairs(row.values())}


def wanted_pairs() -> set[frozenset[str]]:
    """Every pair of options from two different axes that no refusal rules out."""
    return {
        frozenset((a, b))
        for x, y in itertools.combinations(AXES.values(), 2)
        for a in x
        for b in y
        if allowed((a, b))
    }


def row_id(number: int, row: dict[str, str]) -> str:
    """A short name: the row's number and the values of the options it sets."""
    values = [v.rpartition("=")[2].replace(" ", "") for v in row.values() if v not in UNSET_VALUES]
    return "-".join([f"{number:03d}", *values])


# ------------------------------------------------------------------------------------ data
def long_tailed_labels(n_per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Class 0 three times as large as the others: under-samplers have something to drop and
    ADASYN enough to add to every class (on balanced data it adds nothing, or refuses)."""
    labels = np.concatenate([[0] * 3 * n_per_class, np.repeat(np.arange(1, 10), n_per_class)])
    return rng.permutation(labels)


def write_data(root: Path, n_per_class: int = 40) -> Path:
    """MNIST, Fashion-MNIST and CIFAR-10 in their real formats, and the colour digits tree.

    40 images per class (120 for class 0) leave, after any split of the rows (a validation
    share of 0.7, 3 folds), more than SMOTE's 6 and ADASYN's 11 images per class.
    """
    rng = np.random.default_rng(0)
    for folder in ("MNIST", "FashionMNIST"):
        raw = root / folder / "raw"
        raw.mkdir(parents=True)
        for prefix, labels in (
            ("train", long_tailed_labels(n_per_class, rng)),
            ("t10k", np.arange(100) % 10),
        ):
            images = rng.integers(0, 256, size=(len(labels), 28, 28), dtype=np.uint8)
            write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", images)
            write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", labels)
    # CIFAR-10's batches as written in tests/data/test_sources.py, training labels made long-tailed
    n_train = 12 * n_per_class
    write_cifar(root, n_per_batch=n_train // 5)
    batches = root / "cifar-10-batches-py"
    labels = long_tailed_labels(n_per_class, rng).reshape(5, -1)
    for i in range(5):
        path = batches / f"data_batch_{i + 1}"
        batch = pickle.loads(path.read_bytes())
        batch["labels"] = [int(c) for c in labels[i]]
        path.write_bytes(pickle.dumps(batch))
    write_color_digits(root / "color_digits")
    return root


# The data folders that write_data() fills, under data.root.
ROOTS = {"data=image_folder": "color_digits"}
ROOTS |= {f"data={source}": "" for source in ("mnist", "fashion_mnist", "cifar10")}


def overrides(row: dict[str, str], data_dir: Path) -> list[str]:
    """The command line of a row (effective_batch_size=2 steps is filled in by the runner)."""
    argv = [f"paths.data_dir={data_dir}", *LIMITS]
    for value in row.values():
        if value in UNSET_VALUES or value == TWO_STEPS:
            continue
        argv.append(value)
        if value == "callbacks=default":
            argv.append(DIAGNOSIS)
        if value in ROOTS:  # as a user gives it; experiment=rgb_vs_gray has its own
            argv.append(f"data.root={data_dir / ROOTS[value]}")
    return argv


# ---------------------------------------------------------------------------------- runner
def two_steps(argv: list[str]) -> int:
    """data.batch_size x devices x nodes x 2 for the config the row composes."""
    from fitlab.models.accumulation import planned_world_size
    from fitlab.run.config import compose_config

    cfg = compose_config(argv)
    return cfg.data.batch_size * planned_world_size(cfg.trainer) * 2


def run_row(argv: list[str], cwd: str, needs_two_steps: bool) -> dict:
    """Run ``fitlab-train argv`` in this process, in ``cwd``, its console in cwd/console.txt.

    Returns the exit status, the traceback of an exception, the argv run and the time taken.
    """
    import torch

    from fitlab import train as fitlab_train

    torch.set_num_threads(1)  # two workers on two cores
    os.environ["OMP_NUM_THREADS"] = "1"  # and the DDP processes they start
    folder = Path(cwd)
    folder.mkdir(parents=True)
    os.chdir(folder)
    os.environ["FITLAB_LOG_DIR"] = str(folder / "logs")
    os.environ.pop("HYDRA_FULL_ERROR", None)
    if needs_two_steps:
        argv = [*argv, f"effective_batch_size={two_steps(argv)}"]
    sys.argv = ["fitlab.train", *argv]
    result = {"argv": argv, "rc": 0, "error": ""}
    start = time.perf_counter()
    saved = os.dup(1), os.dup(2)
    with (folder / "console.txt").open("w") as console:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(console.fileno(), 1)  # also the DDP processes' output
        os.dup2(console.fileno(), 2)
        try:
            with logging_kept():
                fitlab_train.main()
        except SystemExit as exit_:
            result["rc"] = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:
            result.update(rc=1, error=traceback.format_exc())
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
    result["wall_s"] = round(time.perf_counter() - start, 2)
    return result
