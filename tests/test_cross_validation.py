"""A 3-fold cross-validation sweep through the real entry point, and its summary.

Both entry points run in this process (``conftest.call_entry``); Hydra's basic launcher runs the
folds one after the other in it as well.
"""

from __future__ import annotations

import pytest

from conftest import QUICK, call_entry, read_metrics
from fitlab import train as fitlab_train
from fitlab.summarize import main as fitlab_summarize

pytestmark = pytest.mark.slow


def test_three_fold_sweep_and_its_mean_and_std(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    argv = ["-m", *QUICK, "trainer.max_epochs=1", "data.num_folds=3", "data.fold=0,1,2"]
    call_entry(fitlab_train.main, argv, tmp_path, monkeypatch)  # exit 1 if a fold failed
    (multirun,) = (tmp_path / "logs" / "quick" / "multiruns").iterdir()
    jobs = sorted(p for p in multirun.iterdir() if p.is_dir())
    assert [j.name for j in jobs] == ["0", "1", "2"]
    tests = {read_metrics(j)["test/acc"] for j in jobs}
    assert all(0 < t <= 1 for t in tests)
    call_entry(fitlab_summarize, [str(multirun)], tmp_path, monkeypatch)  # exit 2: no runs
    text = (multirun / "summary.md").read_text()
    assert "mean +- std over folds" in text
    assert "| all runs | 3 |" in text  # the three folds pooled into one mean +- std
