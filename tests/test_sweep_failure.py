"""A sweep survives a failing job: the others finish, and the failure is recorded with its error
in the job's metrics.json, where ``fitlab-summarize`` finds it."""

from __future__ import annotations

import json

import pytest

from conftest import QUICK, call_entry
from fitlab import train as fitlab_train

pytestmark = pytest.mark.slow


def test_one_failing_job_leaves_the_others_to_finish(tmp_path, monkeypatch, capsys) -> None:
    # Job 1's validation share cannot hold one image of each of 10 digits: a failure that only
    # the data can reveal, so it happens inside the job, after job 0 has trained.
    argv = ["-m", *QUICK, "trainer.max_epochs=1", "logger=none", "data.val_fraction=0.1,0.001"]
    with pytest.raises(SystemExit) as exited:
        call_entry(fitlab_train.main, argv, tmp_path, monkeypatch)
    assert exited.value.code == 1  # the sweep ran to its end, and says that a job failed

    (sweep,) = (tmp_path / "logs" / "quick" / "multiruns").iterdir()
    done = json.loads((sweep / "0" / "metrics.json").read_text())
    failed = json.loads((sweep / "1" / "metrics.json").read_text())
    assert done["status"] == "completed" and done["test/acc"] > 0.5
    assert list((sweep / "0" / "checkpoints").glob("*.ckpt"))
    assert set(failed) == {"status", "error", "stopped_reason", "wall_time_s", "attempts"}
    assert failed["status"] == "failed" and failed["stopped_reason"] == "error"
    assert failed["error"].startswith("data.val_fraction=0.001 splits 1437 images")
    err = capsys.readouterr().err
    assert f"fitlab: error: job 1: {failed['error']}" in err
    assert f"fitlab: job 1 failed: {failed['error']}" in err
