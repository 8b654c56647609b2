"""Run the seed's studies and write docs/studies.md from what they measure.

    python scripts/run_studies.py                 # every study (its time is on the page)
    python scripts/run_studies.py --only pooling  # one or a few
    python scripts/run_studies.py --report-only   # rewrite docs/studies.md from earlier runs

Each study is one `fitlab-train -m ...` command over settings and 3 seeds; its runs land in
logs/<NAME>/multiruns/...; the newest one is reported (study_reports.py). The numbers in
docs/studies.md are read from those runs, never typed by hand. A study whose runs are not under
--log-dir keeps its section as the page has it (read from its runs when that was written), so
one study can be run again without the others: `--only NAME` rewrites NAME's section alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # comparisons, study_reports

import comparisons
import study_reports as reports

from fitlab.summarize import find_runs

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SEEDS = "seed=1,2,3"


@dataclass
class Study:
    name: str
    question: str
    command: str
    report: reports.Report
    data: str = "digits, 1,797 images: train 1,293, val 144, test 360"  # what it runs on
    prepare: str | None = None  # a command run before `command` (shown with it)
    baseline_study: str | None = None  # whose runs the report compares with


FEW = "digits with 10 % of the images for training (data.val_fraction=0.7): a large model overfits"
NOISY = (
    f"{FEW}; 20 % of those training labels moved to a wrong class (data.label_noise=0.2, the "
    "same images on every seed), validation and test labels true"
)
STUDIES = [
    Study("overfit", "Overfitting: few images, a large model, no regularisation.",
          f"fitlab-train -m experiment=overfit {SEEDS}", reports.report_fitting, FEW),
    Study("overfit_regularized",
          "The same, with dropout, L2, weight decay, early stopping and 1-pixel shifts: do they "
          "move E_cv and E_test, not only E_train?",
          f"fitlab-train -m experiment=overfit_regularized {SEEDS}", reports.report_fitting, FEW,
          baseline_study="overfit"),
    Study("overfit_noisy",
          "Overfitting when 20 % of the training labels are wrong: the large model memorises "
          "them too, and pays for it on the true validation and test labels.",
          f"fitlab-train -m experiment=overfit data.label_noise=0.2 task_name=overfit_noisy "
          f"{SEEDS}", reports.report_fitting, NOISY),
    Study("overfit_noisy_regularized",
          "The same cures on the noisy labels: with wrong labels to memorise, do dropout, L2, "
          "weight decay, early stopping and shifts now move E_cv and E_test?",
          "fitlab-train -m experiment=overfit_regularized data.label_noise=0.2 "
          f"task_name=overfit_noisy_regularized {SEEDS}", reports.report_fitting, NOISY,
          baseline_study="overfit_noisy"),
    Study("underfit", "Underfitting: a model too small for the task.",
          f"fitlab-train -m experiment=underfit {SEEDS}", reports.report_fitting),
    Study("l1_vs_l2", "What do L1 and L2 do to accuracy and to the weights?",
          "fitlab-train experiment=l1_vs_l2",
          reports.report_columns(["weights/sparsity", "test/acc", "weights/l1_norm",
                                  "weights/l2_norm"])),
    Study("batchnorm",
          "Why does BatchNorm converge faster, and what changes between its training and test "
          "phase?", "fitlab-train experiment=batchnorm", reports.report_batchnorm),
    Study("pooling", "Max vs average pooling vs strided convolution vs none.",
          "fitlab-train experiment=pooling", reports.report_parameters("model.pool"),
          "digits upsampled to 16x16 (data.image_size=16)"),
    Study("kernels", "How many kernels (channels) per layer?",
          "fitlab-train experiment=kernels",
          reports.report_parameters("model.channels", "[32,64,128]")),
    Study("padding_stride", "Padding and stride: feature-map sizes and accuracy.",
          "fitlab-train experiment=padding_stride", reports.report_padding_stride,
          "digits upsampled to 16x16 (data.image_size=16)"),
    Study("batch_size", "Small vs large mini-batches, with and without learning-rate scaling.",
          "fitlab-train experiment=batch_size",
          reports.report_columns(["test/acc", "wall_time_s"],
                                 {"data.batch_size": "64", "lr_scale": "False"})),
    Study("warmup",
          "Does a learning-rate warm-up make the linear scaling rule hold for a large batch?",
          "fitlab-train experiment=warmup",
          reports.report_columns(["test/acc", "val/loss_best"],
                                 {"data.batch_size": "1024", "model.warmup_epochs": "0"})),
    Study("grad_accumulation", "Gradient accumulation vs the large batch it stands for.",
          "fitlab-train experiment=grad_accumulation",
          reports.report_columns(["test/acc", "accumulate_grad_batches", "wall_time_s"],
                                 {"data.batch_size": "256", "model.norm": "batch"})),
    Study("cross_validation",
          "Cross-validation: 5 stratified folds over train+val, the test split untouched.",
          "fitlab-train experiment=cross_validation", reports.report_cross_validation,
          "digits: 5 folds over the 1,437 train+val images, the same 360 test images"),
    Study("rgb_vs_gray",
          "RGB vs grayscale: what does dropping colour lose? Digits 0-4 in a red and a green of "
          "equal luma, 10 classes.", "fitlab-train experiment=rgb_vs_gray",
          reports.report_columns(["test/acc", "test/balanced_acc"]),
          "the digits drawn in colour (an image folder)",
          prepare="python scripts/make_color_digits.py data/color_digits"),
    Study("imbalance",
          "Imbalanced data: resampling and class weights when the rarest class has 1/50 of the "
          "head class's training images.",
          "fitlab-train -m experiment=imbalance data.imbalance_ratio=50 "
          "resampler=none,random_over,random_under,weighted",
          reports.report_imbalance,
          "long-tailed digits, imbalance ratio 50: the head class keeps its training images, "
          "the rarest 1/50 of them (2 images; SMOTE needs k_neighbors + 1 = 6 and is left "
          "out); val and test stay balanced"),
]  # fmt: skip


def read_times() -> dict[str, float]:
    """The seconds each study's commands took when last run (docs/studies/times.json)."""
    path = comparisons.FIGURES / "times.json"
    return json.loads(path.read_text()) if path.exists() else {}


def newest_output(log_dir: Path, task: str) -> Path | None:
    """The newest finished run or multirun folder of a task."""
    candidates = [
        p
        for kind in ("runs", "multiruns")
        for p in (log_dir / task / kind).glob("*")
        if any(p.rglob("metrics.json"))
    ]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def run_study(study: Study, log_dir: Path) -> float:
    """Run the study's commands; the seconds they took."""
    start = time.perf_counter()
    env = {**os.environ, "FITLAB_LOG_DIR": str(log_dir)}
    if study.prepare:
        subprocess.run([sys.executable, *study.prepare.split()[1:]], check=True, cwd=REPO)
    print(f"== {study.name}: {study.command}", flush=True)
    command = [sys.executable, "-m", "fitlab.train", *study.command.split()[1:]]
    subprocess.run(command, check=True, cwd=REPO, env=env)
    return time.perf_counter() - start


def page_sections(page: Path) -> dict[str, list[str]]:
    """The page's sections as they are, by study name, each from its heading to the next."""
    sections: dict[str, list[str]] = {}
    lines = page.read_text().split("\n") if page.exists() else []  # the last keeps its ""
    for line in lines:
        if line.startswith("## "):
            current = sections.setdefault(line[3:], [])
        if sections:
            current.append(line)
    return sections


def section(study: Study, log_dir: Path, seconds: float | None, kept: list[str]) -> list[str]:
    """The study's section from its newest runs; without runs, ``kept`` (the page's own)."""
    out = newest_output(log_dir, study.name)
    if out is None and kept:
        return kept
    commands = "\n".join(c for c in (study.prepare, study.command) if c)
    took = f" It took {seconds / 60:.1f} min." if seconds else ""
    lines = [f"## {study.name}", "", study.question, "", f"```bash\n{commands}\n```", ""]
    lines += [f"Data: {study.data}.{took}", ""]
    if out is None:
        return [*lines, "Not run yet.", ""]
    extra = []
    if study.baseline_study and (other := newest_output(log_dir, study.baseline_study)):
        extra = [find_runs(other)]
    return [*lines, *study.report(out, find_runs(out), *extra), ""]


def write_doc(studies: list[Study], log_dir: Path) -> Path:
    comparisons.FIGURES.mkdir(parents=True, exist_ok=True)
    times = read_times()
    total = sum(times.get(s.name, 0.0) for s in studies)
    lines = [
        "# Studies: the seed's questions, measured",
        "",
        "Every number below was read from the runs of the command above it by "
        "`python scripts/run_studies.py` (2 CPU cores), which rewrites this page; a full "
        f"regeneration took {total / 60:.0f} min. Each study runs 3 seeds (cross-validation: "
        "3 seeds of each of 5 folds). Where a table compares settings, `Δ ... vs baseline` is "
        "each setting's difference from the baseline, paired by seed: mean ± std of the "
        "per-seed differences and the p-value of a paired t-test. With 3 seeds only large "
        "effects reach p < 0.05; a difference below the spread is not evidence either way.",
        "",
    ]
    path = DOCS / "studies.md"
    kept = page_sections(path)
    for study in studies:
        lines += section(study, log_dir, times.get(study.name), kept.get(study.name, []))
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
        comparisons.FIGURES.mkdir(parents=True, exist_ok=True)
        for study in chosen:
            seconds = run_study(study, args.log_dir)
            times = {**read_times(), study.name: round(seconds, 1)}
            (comparisons.FIGURES / "times.json").write_text(json.dumps(times, indent=1))
    print(f"wrote {write_doc(STUDIES, args.log_dir)}")


if __name__ == "__main__":
    main()
