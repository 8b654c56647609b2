"""fitlab.tables: Markdown tables and the paired comparison of settings over seeds."""

from __future__ import annotations

import math

import pytest
from scipy.stats import ttest_rel

from fitlab.tables import markdown_table, mean_std, paired_difference


def test_paired_difference_pairs_by_seed_and_matches_scipy() -> None:
    baseline = {"1": 0.90, "2": 0.95, "3": 0.91, "4": 0.80}  # seed 4: the other did not run it
    other = {"3": 0.93, "1": 0.93, "2": 0.96}
    paired = paired_difference(baseline, other)
    assert paired.seeds == 3
    assert paired.difference == pytest.approx((0.03 + 0.01 + 0.02) / 3)
    assert paired.spread == pytest.approx(0.01)
    expected = ttest_rel([0.93, 0.96, 0.93], [0.90, 0.95, 0.91]).pvalue
    assert paired.p_value == pytest.approx(expected)
    assert not paired.beyond_spread  # p ~ 0.07 with 3 seeds
    assert str(paired) == f"+0.0200 ± 0.0100 (p={expected:.2g})"


def test_paired_difference_at_the_edges() -> None:
    same_gain = paired_difference({"1": 0.5, "2": 0.25}, {"1": 0.75, "2": 0.5})  # exact in binary
    assert (same_gain.spread, same_gain.p_value, same_gain.beyond_spread) == (0.0, 0.0, True)
    assert str(same_gain) == "+0.2500 ± 0.0000 (the same on every seed)"
    # accuracies of 360 images: the same 2 images gained, the differences equal but for rounding
    rounded = paired_difference({"1": 340 / 360, "2": 342 / 360}, {"1": 342 / 360, "2": 344 / 360})
    assert 342 / 360 - 340 / 360 != 344 / 360 - 342 / 360
    # as float32, the way metrics.json holds them (batch vs no BatchNorm, 3 seeds, 360 images)
    as_logged = paired_difference({"1": 0.9833333492279053, "2": 0.9861111044883728},
                                  {"1": 0.9888888597488403, "2": 0.9916666746139526})  # fmt: skip
    assert as_logged.spread == 0.0 and as_logged.beyond_spread
    assert rounded.spread == 0.0 and rounded.beyond_spread
    assert str(rounded) == "+0.0056 ± 0.0000 (the same on every seed)"
    nothing = paired_difference({"1": 0.5, "2": 0.6}, {"1": 0.5, "2": 0.6})
    assert nothing.p_value == 1.0 and not nothing.beyond_spread
    one = paired_difference({"1": 0.5}, {"1": 0.4})
    assert math.isnan(one.p_value) and not one.beyond_spread and str(one) == "-0.1000 (1 seed)"
    assert paired_difference({"1": 0.5}, {"2": 0.4}).seeds == 0


def test_markdown_table_and_mean_std() -> None:
    assert markdown_table(["a", "b"], [["1", "2"]]) == ["| a | b |", "| --- | --- |", "| 1 | 2 |"]
    assert mean_std([1.0, 2.0, 3.0], digits=2) == "2.00 ± 1.00"
    assert mean_std([0.5]) == "0.5000" and mean_std([]) == "n/a"
