"""The numbers of a summary as text: Markdown tables, mean ± std, values for the eye.

Shared by ``fitlab-summarize`` and the scripts that write the docs' tables from runs.
"""

from __future__ import annotations

import statistics


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
