"""``fitlab-summarize DIR``: one row per run under DIR, its overrides next to its final metrics.

A run is any folder holding a ``metrics.json`` (a multirun's jobs, an Optuna search's trials, a
whole ``logs/`` tree). Writes ``DIR/summary.csv`` (every override and metric), ``summary.md``
and ``summary.png`` (the optimized metric per run, grouped by the swept keys other than
``seed``: mean +- std over the seeds) and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from fitlab.errors import FitlabError, exit_usage
from fitlab.tables import fmt, fmt_override, markdown_table, mean_std

matplotlib.use("Agg")

# Shown on the console and in summary.md after the optimized metric (best, then last epoch); the
# CSV has every metric.
HEADLINE = (
    "test/acc",
    "test/balanced_acc",
    "test/f1_macro",
    "test/auroc",
    "test/loss",
    "fit/verdict",
    "stopped_reason",
    "effective_batch_size",
    "wall_time_s",
)


# Swept keys whose runs are repetitions of one setting: mean +- std is taken over them.
POOLED = ("seed", "data.fold")


@dataclass
class Run:
    path: str  # relative to DIR
    overrides: dict[str, str]
    metrics: dict[str, object]
    optimized_metric: str | None = None


def _natural(path: Path) -> list:
    """Sort key: job 10 after job 9."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(path))]


def read_run(folder: Path, root: Path) -> Run:
    hydra_dir = folder / ".hydra"
    overrides: dict[str, str] = {}
    if (hydra_dir / "overrides.yaml").is_file():
        for line in OmegaConf.to_container(OmegaConf.load(hydra_dir / "overrides.yaml")):
            key, _, value = str(line).partition("=")
            overrides[key.lstrip("+~")] = value
    metric = None
    if (hydra_dir / "config.yaml").is_file():
        metric = OmegaConf.load(hydra_dir / "config.yaml").get("optimized_metric")
    metrics = json.loads((folder / "metrics.json").read_text())
    return Run(str(folder.relative_to(root)) or ".", overrides, metrics, metric)


def find_runs(root: Path) -> list[Run]:
    if not root.is_dir():
        raise FitlabError(f"{root} is not a folder", "pass a multirun or logs folder")
    folders = sorted((p.parent for p in root.rglob("metrics.json")), key=_natural)
    if not folders:
        raise FitlabError(
            f"no run under {root} (no metrics.json)", "pass a folder that holds finished runs"
        )
    return [read_run(folder, root) for folder in folders]


def swept_keys(runs: list[Run]) -> list[str]:
    """Override keys whose values differ between runs (or are missing from some)."""
    keys = list(dict.fromkeys(k for run in runs for k in run.overrides))
    return [k for k in keys if len({run.overrides.get(k) for run in runs}) > 1]


def summarize(root: Path, console: Console | None = None) -> list[Run]:
    console = console or Console()
    runs = find_runs(root)
    swept = swept_keys(runs)
    pooled = [k for k in swept if k in POOLED]
    by = [k for k in swept if k not in POOLED]
    metric = next((r.optimized_metric for r in runs if r.optimized_metric), None)
    best = f"{metric}_best" if metric else None  # the value a sweeper ranked the run by
    shown = [m for m in (best, metric, *HEADLINE) if m and any(m in r.metrics for r in runs)]

    # summary.csv: everything
    all_keys = list(dict.fromkeys(k for run in runs for k in run.overrides))
    all_metrics = sorted({m for run in runs for m in run.metrics})
    with (root / "summary.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run", *all_keys, *all_metrics])
        for run in runs:
            writer.writerow(
                [run.path]
                + [run.overrides.get(k, "") for k in all_keys]
                + [fmt(run.metrics.get(m)) for m in all_metrics]
            )

    # the table: swept keys and headline metrics
    header = ["run", *swept, *shown]
    rows = [
        [run.path]
        + [fmt_override(run.overrides.get(k, "")) for k in swept]
        + [fmt(run.metrics.get(m)) for m in shown]
        for run in runs
    ]
    table = Table(title=f"{len(runs)} runs under {root}")
    for name in header:
        table.add_column(name, no_wrap=True)
    for row in rows:
        table.add_row(*row)
    # Wide enough for every column: piped into a file, rich would wrap at 80 characters.
    width = sum(max(len(c) for c in column) + 3 for column in zip(header, *rows, strict=True))
    console.width = max(console.width, width + 1)
    console.print(table)
    common = sorted({f"{k}={v}" for k, v in runs[0].overrides.items() if k not in swept})
    lines = [f"# {len(runs)} runs under `{root}`", ""]
    if common:
        lines += [f"Common overrides: `{' '.join(common)}`", ""]
    lines += markdown_table(header, rows)

    groups = _metric_groups(runs, by, bool(pooled), metric)
    if metric and pooled:
        over = " and ".join("seeds" if k == "seed" else "folds" for k in pooled)
        lines += ["", f"## {metric}: mean +- std over {over}", ""]
        lines += markdown_table(
            [*(by or ["runs"]), over, metric],
            [
                [*(v.split("=", 1)[-1] for v in g), str(len(v)), mean_std(v, sign="+-")]
                for g, v in groups.items()
            ],
        )
    (root / "summary.md").write_text("\n".join(lines) + "\n")
    if metric and groups:
        _plot(groups, metric, bool(pooled), by, root / "summary.png")
    console.print(f"fitlab: wrote {root / 'summary.csv'}, summary.md, summary.png")
    return runs


def group_runs(runs: list[Run], keys: list[str]) -> dict[tuple[str, ...], list[Run]]:
    """The runs of each setting of ``keys``: their override values ("" where a run has none)."""
    groups: dict[tuple[str, ...], list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(run.overrides.get(k, "") for k in keys), []).append(run)
    return groups


def _metric_groups(
    runs: list[Run], by: list[str], pooled: bool, metric: str | None
) -> dict[tuple[str, ...], list[float]]:
    """The values of ``metric`` a column of summary.png averages: same values but the seed."""
    if by:
        groups = {
            tuple(f"{k}={v}" for k, v in zip(by, setting, strict=True)): members
            for setting, members in group_runs(runs, by).items()
        }
    else:
        groups = {("all runs",): runs} if pooled else {(run.path,): [run] for run in runs}
    values = {
        label: [float(r.metrics[metric]) for r in members if _is_number(r.metrics.get(metric))]
        for label, members in groups.items()
    }
    return {label: v for label, v in values.items() if v}


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float))


def _plot(groups: dict, metric: str, over_seeds: bool, by: list[str], path: Path) -> None:
    """One column per group: each run a dot, the mean a mark, +- std over seeds as whiskers."""
    labels = ["\n".join(g) for g in groups]
    values = list(groups.values())
    fig = Figure(figsize=(max(5.0, 0.9 * len(groups) + 2), 4.5), layout="constrained")
    ax = fig.add_subplot()
    x = list(range(len(values)))
    for i, v in enumerate(values):
        ax.plot([i] * len(v), v, "o", color="tab:blue", alpha=0.6, markersize=5)
    if over_seeds:  # y is not cut at zero: the differences between groups are what matters
        means = [statistics.mean(v) for v in values]
        stds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
        ax.errorbar(x, means, yerr=stds, fmt="_", color="black", markersize=24, capsize=6)
    ax.set_xticks(x, labels, fontsize="small", rotation=30 if len(groups) > 6 else 0)
    ax.set_xlim(-0.5, len(values) - 0.5)
    ax.set_ylabel(metric)
    ax.grid(axis="y", alpha=0.3)
    grouping = f"by {', '.join(by)}" if by else ("over all runs" if over_seeds else "per run")
    spread = ", mean ± std over repeats (seeds or folds)" if over_seeds else ""
    ax.set_title(f"{metric} {grouping}{spread}", fontsize="medium")
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fitlab-summarize", description=__doc__.split("\n")[0])
    parser.add_argument("dir", type=Path, help="a multirun folder, or any folder of runs")
    args = parser.parse_args(argv)
    try:
        summarize(args.dir)
    except FitlabError as err:
        exit_usage(err)


if __name__ == "__main__":
    main()
