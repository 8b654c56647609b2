"""The sections of docs/studies.md, read from the runs of each study (``run_studies.py``):
metrics.json, TensorBoard events, checkpoints and plots, never numbers typed by hand."""

from __future__ import annotations

import inspect
import json
import shutil
import statistics
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import comparisons
import torch
from comparisons import baseline_setting, by_seed, grouped, label, reading, setting_keys
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fitlab.data.sources import IMAGE_SIZES
from fitlab.models.settings import plan_blocks
from fitlab.summarize import Run, group_runs
from fitlab.tables import markdown_table as table
from fitlab.tables import mean_std, paired_difference

Report = Callable[..., list[str]]


def task_of(out: Path) -> str:
    """The study's task name: ``logs/<task>/multiruns/<stamp>``."""
    return out.parent.parent.name


# -------------------------------------------------------------- what the runs left behind
def scalar_series(run_dir: Path, tag: str) -> list[float]:
    """A scalar's values in step order; a multirun job's events lie in a folder of its own."""
    files = sorted((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    if not files:
        return []
    events = EventAccumulator(str(files[0].parent))
    events.Reload()
    return [e.value for e in events.Scalars(tag)] if tag in events.Tags()["scalars"] else []


def best_checkpoint(run_dir: Path) -> dict:
    path = json.loads((run_dir / "metrics.json").read_text())["best_ckpt_path"]
    return torch.load(Path(path), weights_only=True, map_location="cpu")


def parameters(run_dir: Path) -> int:
    state = best_checkpoint(run_dir)["state_dict"]
    return sum(
        v.numel() for k, v in state.items() if k.startswith("net.") and v.is_floating_point()
    )


def feature_maps(run_dir: Path) -> list[tuple[int, int]]:
    """The input's height and width, then each block's output: planned from the config the run
    composed (``.hydra/config.yaml``), as the CNN plans its layers."""
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    size = cfg.data.get("image_size") or IMAGE_SIZES[cfg.data.source]
    size = (size, size) if isinstance(size, int) else tuple(size)
    # Only plan_blocks' keys: the rest of model may name resolvers that only a job registers.
    keys = set(inspect.signature(plan_blocks).parameters) - {"image_size"}
    layout = OmegaConf.to_container(OmegaConf.create({k: cfg.model[k] for k in keys}))
    return [size, *(block.output_size for block in plan_blocks(size, **layout))]


# ------------------------------------------------------------------------------ the reports
FIT_ERRORS = ("fit/train_error", "fit/val_error", "fit/test_error")


def report_fitting(out: Path, runs: list[Run], baseline: list[Run] | None = None) -> list[str]:
    """E_train / E_cv / E_test and the verdict of each seed; against ``baseline`` (another
    study's runs, the unregularised model), the paired change of E_cv and E_test."""
    rows = [
        [r.overrides.get("seed", ""), *(f"{r.metrics[k]:.4f}" for k in FIT_ERRORS),
         f"**{r.metrics['fit/verdict']}**", str(r.metrics["stopped_reason"])]
        for r in runs
    ]  # fmt: skip
    means = [mean_std([float(r.metrics[k]) for r in runs]) for k in FIT_ERRORS]
    rows.append([f"mean ± std ({len(runs)} seeds)", *means, "", ""])
    header = ["seed", "E_train (eval mode)", "E_cv", "E_test", "verdict", "stopped"]
    lines = [*table(header, rows), "", verdicts(runs)]
    for metric in FIT_ERRORS[1:] if baseline else ():
        paired = paired_difference(by_seed(baseline, metric), by_seed(runs, metric))
        name = task_of(out)
        lines += ["", reading(metric, baseline_setting_words(baseline), {name: paired})]
    figure = comparisons.FIGURES / f"{task_of(out)}_learning_curves.png"
    comparisons.FIGURES.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / runs[0].path / "plots" / "learning_curves.png", figure)
    return [*lines, "", f"![learning curves, first seed](studies/{figure.name})"]


def verdicts(runs: list[Run]) -> str:
    """The sentence the fit diagnosis supports: how many seeds gave each verdict."""
    counts = Counter(str(r.metrics["fit/verdict"]) for r in runs)
    said = ", ".join(f"`{verdict}` on {n} of {len(runs)} seeds" for verdict, n in counts.items())
    gap = [float(r.metrics["fit/val_error"]) - float(r.metrics["fit/train_error"]) for r in runs]
    return (
        f"**Reading (the fit diagnosis):** {said}; E_cv - E_train is {mean_std(gap)} "
        "(the verdict compares it and E_cv with the thresholds of docs/outputs.md)."
    )


def baseline_setting_words(runs: list[Run]) -> str:
    """The baseline study's setting as its command gave it (not its seeds, nor its folder)."""
    overrides = runs[0].overrides.items()
    return " ".join(f"{k}={v}" for k, v in overrides if k not in ("seed", "task_name"))


def report_columns(
    metrics: list[str], baseline: dict[str, str] | None = None, digits: int = 4
) -> Report:
    """The swept settings' table, the first metric compared with the baseline."""

    def report(out: Path, runs: list[Run]) -> list[str]:
        return grouped(runs, metrics, digits, metrics[:1], baseline, task_of(out))

    return report


def report_batchnorm(out: Path, runs: list[Run]) -> list[str]:
    lines = grouped(runs, ["test/acc", "val/loss_best"], 4, ["test/acc"], {"model.norm": "none"},
                    task_of(out))  # fmt: skip
    reach = []
    for (norm,), members in group_runs(runs, ["model.norm"]).items():
        curves = [scalar_series(out / run.path, "val/acc") for run in members]
        epochs = [next((i + 1 for i, v in enumerate(c) if v >= 0.95), None) for c in curves]
        reach.append([norm, ", ".join(map(str, epochs))])
    lines += ["", "Epochs until the validation accuracy first reaches 0.95 (per seed):", ""]
    lines += table(["model.norm", "epochs"], reach)
    batch_runs = [r for r in runs if r.overrides["model.norm"] == "batch"]
    return [*lines, "", *train_vs_eval([out / r.path for r in batch_runs])]


def batchnorm_modes(run_dir: Path) -> dict[tuple[str, str], float]:
    """Test accuracy of a BatchNorm model in eval mode and in train mode at three batch sizes."""
    from fitlab.data import ImageDataModule
    from fitlab.models import Classifier

    ckpt = best_checkpoint(run_dir)
    model = Classifier(**ckpt["hyper_parameters"])
    model.load_state_dict(ckpt["state_dict"])
    datamodule = ImageDataModule()
    datamodule.setup("test")
    x, y = datamodule.splits["test"].images, datamodule.splits["test"].labels
    with torch.no_grad():
        model.eval()
        accuracy = {("eval (running statistics)", "any"): (model(x).argmax(1) == y).float().mean()}
        model.train()  # batch statistics; dropout off so that only BatchNorm differs
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout | torch.nn.Dropout2d):
                module.eval()
        for size in (len(y), 16, 2):
            correct = sum(
                (model(xb).argmax(1) == yb).sum().item()
                for xb, yb in zip(x.split(size), y.split(size), strict=True)
            )
            accuracy["train (statistics of each batch)", str(size)] = correct / len(y)
    return {key: float(value) for key, value in accuracy.items()}


def train_vs_eval(run_dirs: list[Path]) -> list[str]:
    """The same test images through each trained BatchNorm model in train and in eval mode."""
    measured = [batchnorm_modes(run_dir) for run_dir in run_dirs]
    rows = [[*key, mean_std([m[key] for m in measured])] for key in measured[0]]
    return [
        f"Train vs eval mode on the same test images (best checkpoints of the {len(run_dirs)} "
        "`model.norm=batch` runs, mean ± std):",
        "",
        *table(["BatchNorm mode", "batch size", "test accuracy"], rows),
    ]


def report_parameters(key: str, baseline: str | None = None) -> Report:
    """Accuracy and time per setting against ``key=baseline`` (the first setting if None), then
    the parameters of the network each value of ``key`` builds (its first run's checkpoint)."""

    def report(out: Path, runs: list[Run]) -> list[str]:
        sizes = [
            [value, f"{parameters(out / members[0].path):,}"]
            for (value,), members in group_runs(runs, [key]).items()
        ]
        base = {key: baseline} if baseline else None
        lines = grouped(runs, ["test/acc", "wall_time_s"], 3, ["test/acc"], base, task_of(out))
        return [*lines, "", *table([key, "parameters"], sizes)]

    return report


def report_padding_stride(out: Path, runs: list[Run]) -> list[str]:
    rows = []
    for (padding, stride), members in group_runs(runs, ["model.padding", "model.stride"]).items():
        run_dir = out / members[0].path
        maps = " → ".join(f"{h}x{w}" for h, w in feature_maps(run_dir))
        rows.append([padding, stride, maps, f"{parameters(run_dir):,}"])
    baseline = {"model.padding": "1", "model.stride": "1"}
    return [
        "out = floor((in + 2 * padding - kernel) / stride) + 1, kernel 3, two blocks, no pooling:",
        "",
        *table(["padding", "stride", "feature maps", "parameters"], rows),
        "",
        *grouped(runs, ["test/acc"], 4, ["test/acc"], baseline, task_of(out)),
    ]


def report_cross_validation(out: Path, runs: list[Run]) -> list[str]:
    rows = []
    for (fold,), members in group_runs(runs, ["data.fold"]).items():
        val = [float(r.metrics["val/acc"]) for r in members]
        test = [float(r.metrics["test/acc"]) for r in members]
        rows.append([fold, str(len(members)), mean_std(val), mean_std(test)])
    val = [float(r.metrics["val/acc"]) for r in runs]
    test = [float(r.metrics["test/acc"]) for r in runs]
    rows.append([f"all {len(runs)} runs", str(len(runs)), mean_std(val), mean_std(test)])
    header = ["data.fold", "runs (seeds)", "val/acc (its fold)", "test/acc (the same test split)"]
    folds = [statistics.mean(float(r.metrics["val/acc"]) for r in members)
             for members in group_runs(runs, ["data.fold"]).values()]  # fmt: skip
    spread = max(folds) - min(folds)
    return [*table(header, rows), "", (
        f"**Reading (val/acc over folds):** the folds' mean validation accuracies span {spread:.4f}"
        f" ({min(folds):.4f} to {max(folds):.4f}), while the same runs' test accuracy has a std of "
        f"{statistics.stdev(test):.4f}: one validation split alone can be off by that much, the "
        "mean over the folds is the estimate to quote.")]  # fmt: skip


def report_imbalance(out: Path, runs: list[Run]) -> list[str]:
    """Balanced accuracy and the rarest class's recall against no remedy, then the confusion
    matrices and PR curves of no remedy and of the best remedy (first seed of each)."""
    recalls = [m for m in runs[0].metrics if m.startswith("test/recall/")]
    rarest = min(recalls, key=lambda m: statistics.mean(float(r.metrics[m]) for r in runs))
    metrics = ["test/balanced_acc", rarest, "test/acc"]
    baseline = {"resampler": "none", "model.class_weights": "null"}
    lines = grouped(runs, metrics, 4, metrics[:2], baseline, task_of(out))
    keys = setting_keys(runs)
    groups = group_runs(runs, keys)
    score = {s: statistics.mean(by_seed(m, metrics[0]).values()) for s, m in groups.items()}
    best = max(score, key=score.get)
    none = baseline_setting(keys, groups, baseline)  # the setting grouped() compares against
    lines += ["", f"The rarest class by test recall is `{rarest.rsplit('/', 1)[-1]}`. Confusion "
              "matrix and per-class PR curves (test split, first seed), without a remedy and with "
              f"the best one by balanced accuracy (`{label(keys, best)}`):", ""]  # fmt: skip
    for name, setting in (("none", none), ("best", best)):
        run_dir = out / groups[setting][0].path
        for plot in ("confusion_matrix", "pr"):
            figure = comparisons.FIGURES / f"{task_of(out)}_{name}_{plot}.png"
            shutil.copyfile(run_dir / "plots" / f"{plot}_test.png", figure)
            lines.append(f"![{plot}, {label(keys, setting)}](studies/{figure.name})")
    return lines
