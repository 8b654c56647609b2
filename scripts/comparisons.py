"""Settings compared over seeds, for docs/studies.md: mean ± std per setting, each setting's
difference from a baseline paired by seed (``fitlab.tables.paired_difference``), a one-sentence
reading of which differences exceed the seed-to-seed spread, and a bar chart."""

from __future__ import annotations

import statistics
from pathlib import Path

import matplotlib.pyplot as plt

from fitlab.summarize import Run, group_runs, swept_keys
from fitlab.tables import Paired, mean_std, paired_difference
from fitlab.tables import markdown_table as table

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "studies"


# ------------------------------------------------------------------- settings and seeds
def setting_keys(runs: list[Run]) -> list[str]:
    return [k for k in swept_keys(runs) if k != "seed"]


def by_seed(members: list[Run], metric: str) -> dict[str, float]:
    """``metric`` of each run, keyed by its seed (the run's position where none is swept)."""
    return {
        r.overrides.get("seed", str(i)): float(r.metrics[metric])
        for i, r in enumerate(members)
        if r.metrics.get(metric) is not None
    }


def label(keys: list[str], setting: tuple[str, ...]) -> str:
    return " ".join(f"{k}={v}" for k, v in zip(keys, setting, strict=True)) or "all runs"


def reading(metric: str, baseline: str, compared: dict[str, Paired]) -> str:
    """The one sentence a study's numbers support about ``metric``."""
    seeds = max((p.seeds for p in compared.values()), default=0)
    moved = {name: p for name, p in compared.items() if p.beyond_spread}
    head = f"**Reading ({metric}, paired over {seeds} seeds against `{baseline}`):** "
    if not moved:
        return head + (
            "no setting moves it beyond the seed-to-seed spread (p ≥ 0.05 for each), so the "
            "differences in this column are not evidence of an effect at this sample size."
        )
    said = [
        f"`{name}` {'raises' if p.difference > 0 else 'lowers'} it by {abs(p.difference):.4f} "
        f"({p.p_text})"
        for name, p in moved.items()
    ]
    rest = len(compared) - len(moved)
    tail = f"; the other {rest} within the spread." if rest else "."
    return head + "; ".join(said) + tail


def baseline_setting(keys: list[str], groups: dict, baseline: dict[str, str] | None) -> tuple:
    """The setting whose values are ``baseline``'s (the first setting when None or unmatched)."""
    matching = (
        s
        for s in groups
        if baseline and all(baseline[k] == v for k, v in zip(keys, s, strict=True))
    )
    return next(matching, next(iter(groups)))


def grouped(
    runs: list[Run],
    metrics: list[str],
    digits: int = 4,
    compare: list[str] | None = None,
    baseline: dict[str, str] | None = None,
    figure: str | None = None,
) -> list[str]:
    """Mean ± std of each metric per setting of the swept keys (seeds pooled); for each metric
    of ``compare``, the paired difference from the baseline setting (the first, unless named)
    and its reading; a bar chart of ``compare[0]`` per setting if ``figure`` names one."""
    keys, compare = setting_keys(runs), compare or []
    groups = group_runs(runs, keys)
    base = baseline_setting(keys, groups, baseline)
    paired = {  # each setting against the baseline, per compared metric, computed once
        m: {s: paired_difference(by_seed(groups[base], m), by_seed(groups[s], m))
            for s in groups if s != base}
        for m in compare
    }  # fmt: skip
    rows = []
    for setting, members in groups.items():
        values = [mean_std(list(by_seed(members, m).values()), digits) for m in metrics]
        deltas = ["baseline" if setting == base else str(paired[m][setting]) for m in compare]
        rows.append([*setting, str(len(members)), *values, *deltas])
    lines = table([*keys, "runs", *metrics, *(f"Δ {m} vs baseline" for m in compare)], rows)
    for m in compare:
        compared = {label(keys, s): p for s, p in paired[m].items()}
        lines += ["", reading(m, label(keys, base), compared)]
    if figure and compare:
        lines += ["", bar_chart(figure, keys, groups, compare[0], base)]
    return lines


def bar_chart(name: str, keys: list[str], groups: dict, metric: str, base: tuple) -> str:
    """Mean ± std of ``metric`` per setting with each seed as a dot, the baseline's bar darker;
    the Markdown image."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    labels = ["\n".join(s) + ("\n(baseline)" if s == base else "") for s in groups]
    values = [list(by_seed(members, metric).values()) for members in groups.values()]
    if not all(values):
        return f"(no figure: some settings have no {metric})"
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(labels)), 3.2), layout="constrained")
    means = [statistics.mean(v) for v in values]
    stds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
    colours = ["#6baed6" if s == base else "#c6dbef" for s in groups]
    ax.bar(range(len(values)), means, yerr=stds, capsize=4, color=colours)
    for i, v in enumerate(values):
        ax.plot([i] * len(v), v, "o", color="#08306b", markersize=3)
    low = min(min(v) for v in values)
    high = max(max(max(v), m + s) for v, m, s in zip(values, means, stds, strict=True))
    margin = 0.08 * (high - low) or 0.01
    top = min(high + margin, 1.0 + margin / 4) if high <= 1.0 else high + margin
    ax.set_ylim(max(0.0, low - 4 * margin) if low >= 0 else low - margin, top)
    ax.set_xticks(range(len(values)), labels, fontsize=7)
    ax.set_xlabel(" / ".join(keys), fontsize=8)  # the values of each tick, top to bottom
    ax.set_ylabel(metric)
    ax.set_title(f"{name}: {metric} (bars: mean ± std, dots: seeds)", fontsize=9)
    path = FIGURES / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"![{name}: {metric} per setting](studies/{path.name})"
