"""Run the seed's studies and write docs/studies.md from what they measure.

    python scripts/run_studies.py                 # every study (about 30 min on 2 CPU cores)
    python scripts/run_studies.py --only pooling  # one or a few
    python scripts/run_studies.py --report-only   # rewrite docs/studies.md from earlier runs

Each study is one `fitlab-train experiment=NAME` command (the comparisons are multiruns set in
their experiment config). Its runs land in logs/<NAME>/...; the newest one is reported. The
numbers in docs/studies.md are read from those runs' metrics.json, TensorBoard events and
checkpoints, never typed by hand.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fitlab.data.sources import IMAGE_SIZES
from fitlab.models.settings import plan_blocks
from fitlab.summarize import Run, find_runs, group_runs, swept_keys
from fitlab.tables import markdown_table as table
from fitlab.tables import mean_std

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
FIGURES = DOCS / "studies"


@dataclass
class Study:
    name: str
    question: str
    command: str
    report: Callable[[Path, list[Run]], list[str]]
    prepare: str | None = None  # a command run before `command` (shown with it)


def newest_output(log_dir: Path, task: str) -> Path | None:
    """The newest finished run or multirun folder of a task."""
    candidates = [
        p
        for kind in ("runs", "multiruns")
        for p in (log_dir / task / kind).glob("*")
        if any(p.rglob("metrics.json"))
    ]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def grouped(runs: list[Run], metrics: list[str], digits: int = 4) -> list[str]:
    """Mean ± std of each metric per setting of the swept keys (seeds pooled)."""
    keys = [k for k in swept_keys(runs) if k != "seed"]
    rows = []
    for setting, members in group_runs(runs, keys).items():
        values = [
            mean_std(
                [float(r.metrics[m]) for r in members if r.metrics.get(m) is not None],
                digits,
            )
            for m in metrics
        ]
        rows.append([*setting, str(len(members)), *values])
    return table([*keys, "runs", *metrics], rows)


def scalar_series(run_dir: Path, tag: str) -> list[float]:
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return [e.value for e in events.Scalars(tag)] if tag in events.Tags()["scalars"] else []


def parameters(run_dir: Path) -> int:
    ckpt = torch.load(Path(json.loads((run_dir / "metrics.json").read_text())["best_ckpt_path"]),
                      weights_only=True, map_location="cpu")  # fmt: skip
    return sum(
        v.numel()
        for k, v in ckpt["state_dict"].items()
        if k.startswith("net.") and v.is_floating_point()
    )


# ------------------------------------------------------------------------------ the reports
def report_fitting(out: Path, runs: list[Run]) -> list[str]:
    (run,) = runs
    m = run.metrics
    figure = FIGURES / f"{out.parent.parent.name}_learning_curves.png"
    shutil.copyfile(out / "plots" / "learning_curves.png", figure)
    errors = [f"{m[k]:.4f}" for k in ("fit/train_error", "fit/val_error", "fit/test_error")]
    rows = [[*errors, f"**{m['fit/verdict']}**", str(m["stopped_reason"])]]
    return [
        *table(["E_train (eval mode)", "E_cv", "E_test", "verdict", "stopped"], rows),
        "",
        f"![learning curves](studies/{figure.name})",
    ]


def report_columns(metrics: list[str]) -> Callable[[Path, list[Run]], list[str]]:
    return lambda out, runs: grouped(runs, metrics)


def report_batchnorm(out: Path, runs: list[Run]) -> list[str]:
    lines = grouped(runs, ["test/acc", "val/loss_best"])
    reach = []
    for (norm,), members in group_runs(runs, ["model.norm"]).items():
        curves = [scalar_series(out / run.path, "val/acc") for run in members]
        epochs = [next((i + 1 for i, v in enumerate(c) if v >= 0.95), None) for c in curves]
        reach.append([norm, ", ".join(map(str, epochs))])
    lines += ["", "Epochs until the validation accuracy first reaches 0.95 (per seed):", ""]
    lines += table(["model.norm", "epochs"], reach)
    batch_run = next(r for r in runs if r.overrides["model.norm"] == "batch")
    lines += ["", *train_vs_eval(out / batch_run.path)]
    return lines


def train_vs_eval(run_dir: Path) -> list[str]:
    """The same test images through the trained BatchNorm model in train and in eval mode."""
    from fitlab.data import ImageDataModule
    from fitlab.models import Classifier

    ckpt = torch.load(json.loads((run_dir / "metrics.json").read_text())["best_ckpt_path"],
                      weights_only=True, map_location="cpu")  # fmt: skip
    model = Classifier(**ckpt["hyper_parameters"])
    model.load_state_dict(ckpt["state_dict"])
    datamodule = ImageDataModule()
    datamodule.setup("test")
    x, y = datamodule.splits["test"].images, datamodule.splits["test"].labels
    rows = []
    with torch.no_grad():
        model.eval()
        rows.append(
            ["eval (running statistics)", "any", f"{(model(x).argmax(1) == y).float().mean():.4f}"]
        )
        model.train()  # batch statistics; dropout off so that only BatchNorm differs
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout | torch.nn.Dropout2d):
                module.eval()
        for size in (len(y), 16, 2):
            correct = sum(
                (model(xb).argmax(1) == yb).sum().item()
                for xb, yb in zip(x.split(size), y.split(size), strict=True)
            )
            rows.append(["train (statistics of each batch)", str(size), f"{correct / len(y):.4f}"])
    return [
        "Train vs eval mode on the same test images (best checkpoint of the first "
        "`model.norm=batch` run):",
        "",
        *table(["BatchNorm mode", "batch size", "test accuracy"], rows),
    ]


def report_parameters(key: str) -> Callable[[Path, list[Run]], list[str]]:
    """Accuracy and time per setting, then the parameters of the network each value of ``key``
    builds (read from its first run's best checkpoint)."""

    def report(out: Path, runs: list[Run]) -> list[str]:
        sizes = [
            [value, f"{parameters(out / members[0].path):,}"]
            for (value,), members in group_runs(runs, [key]).items()
        ]
        lines = grouped(runs, ["test/acc", "wall_time_s"], digits=3)
        return [*lines, "", *table([key, "parameters"], sizes)]

    return report


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


def report_padding_stride(out: Path, runs: list[Run]) -> list[str]:
    rows = []
    for run in runs:
        padding, stride = run.overrides["model.padding"], run.overrides["model.stride"]
        maps = " → ".join(f"{h}x{w}" for h, w in feature_maps(out / run.path))
        size, accuracy = parameters(out / run.path), run.metrics["test/acc"]
        rows.append([padding, stride, maps, f"{size:,}", f"{accuracy:.4f}"])
    return [
        "out = floor((in + 2 * padding - kernel) / stride) + 1, kernel 3, two blocks, no pooling:",
        "",
        *table(["padding", "stride", "feature maps", "parameters", "test/acc"], rows),
    ]


def report_cross_validation(out: Path, runs: list[Run]) -> list[str]:
    val = [float(r.metrics["val/acc"]) for r in runs]
    test = [float(r.metrics["test/acc"]) for r in runs]
    folds = zip(runs, val, test, strict=True)
    rows = [[r.overrides["data.fold"], f"{v:.4f}", f"{t:.4f}"] for r, v, t in folds]
    rows.append([f"mean ± std over {len(runs)} folds", mean_std(val), mean_std(test)])
    return table(["data.fold", "val/acc (its fold)", "test/acc (the same test split)"], rows)


def report_imbalance(out: Path, runs: list[Run]) -> list[str]:
    rare = [m for m in runs[0].metrics if m.startswith("test/recall/")]
    rarest = min(rare, key=lambda m: statistics.mean(float(r.metrics[m]) for r in runs))
    return grouped(runs, ["test/balanced_acc", rarest, "test/acc"])


STUDIES = [
    Study(
        "overfit",
        "Overfitting: few images, a large model, no regularisation.",
        "fitlab-train experiment=overfit",
        report_fitting,
    ),
    Study(
        "overfit_regularized",
        "The same, with dropout, L2, weight decay and early stopping.",
        "fitlab-train experiment=overfit_regularized",
        report_fitting,
    ),
    Study(
        "underfit",
        "Underfitting: a model too small for the task.",
        "fitlab-train experiment=underfit",
        report_fitting,
    ),
    Study(
        "l1_vs_l2",
        "What do L1 and L2 do to accuracy and to the weights?",
        "fitlab-train experiment=l1_vs_l2",
        report_columns(["test/acc", "weights/sparsity", "weights/l1_norm", "weights/l2_norm"]),
    ),
    Study(
        "batchnorm",
        "Why does BatchNorm converge faster, and what changes between its training and test phase?",
        "fitlab-train experiment=batchnorm",
        report_batchnorm,
    ),
    Study(
        "pooling",
        "Max vs average pooling vs strided convolution vs none.",
        "fitlab-train experiment=pooling",
        report_parameters("model.pool"),
    ),
    Study(
        "kernels",
        "How many kernels (channels) per layer?",
        "fitlab-train experiment=kernels",
        report_parameters("model.channels"),
    ),
    Study(
        "padding_stride",
        "Padding and stride: feature-map sizes and accuracy.",
        "fitlab-train experiment=padding_stride",
        report_padding_stride,
    ),
    Study(
        "batch_size",
        "Small vs large mini-batches, with and without learning-rate scaling.",
        "fitlab-train experiment=batch_size",
        report_columns(["test/acc", "wall_time_s"]),
    ),
    Study(
        "warmup",
        "Does a learning-rate warm-up make the linear scaling rule hold for a large batch?",
        "fitlab-train experiment=warmup",
        report_columns(["test/acc", "val/loss_best"]),
    ),
    Study(
        "grad_accumulation",
        "Gradient accumulation vs the large batch it stands for.",
        "fitlab-train experiment=grad_accumulation",
        report_columns(["accumulate_grad_batches", "test/acc", "wall_time_s"]),
    ),
    Study(
        "cross_validation",
        "Cross-validation: 5 stratified folds over train+val, the test split untouched.",
        "fitlab-train experiment=cross_validation",
        report_cross_validation,
    ),
    Study(
        "rgb_vs_gray",
        "RGB vs grayscale: what does dropping colour lose? Digits 0-4 in a red and a green of "
        "equal luma, 10 classes.",
        "fitlab-train experiment=rgb_vs_gray",
        report_columns(["test/acc", "test/balanced_acc"]),
        prepare="python scripts/make_color_digits.py data/color_digits",
    ),
    Study(
        "imbalance",
        "Imbalanced data: resampling and class weights on long-tailed digits.",
        "fitlab-train -m experiment=imbalance",
        report_imbalance,
    ),
]


def run_study(study: Study, log_dir: Path) -> None:
    env = {**os.environ, "FITLAB_LOG_DIR": str(log_dir)}
    if study.prepare:
        subprocess.run([sys.executable, *study.prepare.split()[1:]], check=True, cwd=REPO)
    print(f"== {study.name}: {study.command}", flush=True)
    command = [sys.executable, "-m", "fitlab.train", *study.command.split()[1:]]
    subprocess.run(command, check=True, cwd=REPO, env=env)


def write_doc(studies: list[Study], log_dir: Path) -> Path:
    FIGURES.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Studies: the seed's questions, measured",
        "",
        "Every number below was read from the runs of the command above it by "
        "`python scripts/run_studies.py` (digits, 2 CPU cores). Rerun it to regenerate this page.",
        "",
    ]
    for study in studies:
        out = newest_output(log_dir, study.name)
        commands = "\n".join(c for c in (study.prepare, study.command) if c)
        lines += [f"## {study.name}", "", study.question, "", f"```bash\n{commands}\n```", ""]
        lines += study.report(out, find_runs(out)) if out else ["Not run yet."]
        lines += [""]
    path = DOCS / "studies.md"
    path.write_text("\n".join(lines))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", help="study names to run (default: all)")
    parser.add_argument("--report-only", action="store_true", help="only rewrite the page")
    parser.add_argument("--log-dir", type=Path, default=REPO / "logs")
    args = parser.parse_args()
    chosen = [s for s in STUDIES if not args.only or s.name in args.only]
    if not args.report_only:
        for study in chosen:
            run_study(study, args.log_dir)
    print(f"wrote {write_doc(STUDIES, args.log_dir)}")


if __name__ == "__main__":
    main()
