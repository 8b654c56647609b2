"""A 3-fold cross-validation sweep through the real entry point, and its summary."""

from __future__ import annotations

import pytest

from conftest import QUICK, read_metrics, run_cli

pytestmark = pytest.mark.slow


def test_three_fold_sweep_and_its_mean_and_std(tmp_path) -> None:
    sweep = run_cli("fitlab.train", "-m", *QUICK, "trainer.max_epochs=1", "data.num_folds=3",
                    "data.fold=0,1,2", cwd=tmp_path)  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    (multirun,) = (tmp_path / "logs" / "quick" / "multiruns").iterdir()
    jobs = sorted(p for p in multirun.iterdir() if p.is_dir())
    assert [j.name for j in jobs] == ["0", "1", "2"]
    tests = {read_metrics(j)["test/acc"] for j in jobs}
    assert all(0 < t <= 1 for t in tests)
    summary = run_cli("fitlab.summarize", str(multirun), cwd=tmp_path)
    assert summary.returncode == 0, summary.stderr[-3000:]
    text = (multirun / "summary.md").read_text()
    assert "mean +- std over folds" in text
    assert "| all runs | 3 |" in text  # the three folds pooled into one mean +- std
