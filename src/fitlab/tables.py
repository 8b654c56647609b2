"""The numbers of a summary as text: Markdown tables, mean ± std, values for the eye.

Shared by ``fitlab-summarize`` and the scripts that write the docs' tables from runs.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a Markdown table: header, separator, one line per row."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def mean_std(values: list[float], digits: int = 4, sign: str = "±") -> str:
    """``mean ± std`` (sample standard deviation) of repeated runs; one value alone as is."""
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} {sign} {statistics.stdev(values):.{digits}f}"


def fmt(value: object) -> str:
    """A metric for a table cell: floats to 4 significant digits, None as empty."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def fmt_override(value: str | None) -> str | None:
    """A swept value for the eye: Optuna's 0.0007247031607588866 as 0.0007247."""
    try:
        return value if value is None or "." not in value else fmt(float(value))
    except ValueError:
        return value


@dataclass(frozen=True)
class Paired:
    """A setting against a baseline over the seeds both ran: the mean difference, its sample
    standard deviation, and the two-sided p-value of a paired t-test (nan below two seeds)."""

    difference: float
    spread: float
    p_value: float
    seeds: int

    @property
    def beyond_spread(self) -> bool:
        """The difference exceeds the seed-to-seed spread (p < 0.05)."""
        return self.p_value < 0.05

    @property
    def p_text(self) -> str:
        if self.spread == 0:  # no t-test: the seeds agree exactly (discrete accuracies do)
            return "the same on every seed"
        return "p<0.001" if self.p_value < 0.001 else f"p={self.p_value:.2g}"

    def __str__(self) -> str:
        if self.seeds < 2:
            return f"{self.difference:+.4f} ({self.seeds} seed)"
        return f"{self.difference:+.4f} ± {self.spread:.4f} ({self.p_text})"


def paired_difference(baseline: dict[object, float], other: dict[object, float]) -> Paired:
    """``other - baseline`` paired by seed (the keys), over the seeds both have."""
    seeds = [s for s in baseline if s in other]
    differences = [other[s] - baseline[s] for s in seeds]
    if not differences:
        return Paired(math.nan, math.nan, math.nan, 0)
    mean = statistics.mean(differences)
    if len(differences) < 2:
        return Paired(mean, math.nan, math.nan, len(differences))
    spread = statistics.stdev(differences)
    # The same difference on every seed, but for rounding (metrics are logged as float32): no
    # t-test; beyond a spread of none, unless it is none.
    if spread <= 1e-6 * max(1.0, abs(mean)):
        return Paired(mean, 0.0, 1.0 if mean == 0 else 0.0, len(differences))
    from scipy.stats import ttest_rel

    p_value = float(ttest_rel([other[s] for s in seeds], [baseline[s] for s in seeds]).pvalue)
    return Paired(mean, spread, p_value, len(differences))
