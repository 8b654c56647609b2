"""Bad input through the real entry points: one line on stderr, exit 2, nothing trained or lost.

The entry points run in this process (``main()`` with ``sys.argv`` set) to keep the suite fast;
one test runs a real ``fitlab-train`` process to pin the exit status and stderr of the console.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import QUICK, call_entry, cli_env, run_cli
from fitlab import eval as fitlab_eval
from fitlab import train as fitlab_train
from fitlab.errors import FitlabError
from fitlab.run import checkpoints, preflight


def refused(entry, argv: list[str], cwd: Path, monkeypatch, capsys) -> str:
    """Run the entry point, expect exit 2, return the one error line."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as exited:
        call_entry(entry, argv, cwd, monkeypatch)
    assert exited.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "fitlab: error:" in line]
    assert len(errors) == 1, errors
    assert errors[0].startswith("fitlab: error: ") and "; " in errors[0]
    return errors[0]


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of one real 1-epoch quick run, trained through ``fitlab-train``'s entry."""
    cwd = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        argv = [*QUICK, "trainer.max_epochs=1", "test=false", "logger=none", "~callbacks.plots"]
        call_entry(fitlab_train.main, [*argv, "~callbacks.fit_diagnosis"], cwd, mp)
    (run,) = (cwd / "logs" / "quick" / "runs").iterdir()
    return run


# ------------------------------------------------------------------ before any folder exists
# One row for each way a mistake reaches the checks (a value, a key, an option, a sweep, a path,
# a checkpoint...); every rule's own message is tested in test_validation.BAD.
PRE_FOLDER = [
    (["model.dropout=1.5"], "model.dropout=1.5 is not a number in [0, 1)"),
    (["data=nope"], "data=nope is not an option; use one of cifar10, digits"),
    (["hydra/launcher=nope"], "hydra/launcher=nope is not an option; use one of basic"),
    (["model.nope=1"], "model.nope is not a config key; check the spelling (the keys of model"),
    (["model.channels=[16,"], "cannot read the override 'model.channels=[16,'"),
    (["model.l2=0,1e-4"], "Ambiguous value for argument 'model.l2=0,1e-4'"),
    (["-m", "model.dropout=0.1,1.5"], "model.dropout=1.5 is not a number in [0, 1)"),
    (["-m", "data=digits,nope"], "data=nope is not an option"),
    (["+data.root=missing"], "data.root=missing does not exist"),
    (["ckpt_path=last"], "ckpt_path=last: no run of task 'train'"),
    (["ckpt_path=gone.ckpt"], "gone.ckpt does not exist"),
    # Trainer arguments that only Lightning would have refused, once the folder existed
    (["-m", "trainer.devices=1,0"], "trainer.devices=0 is not"),
    (["debug=default", "+trainer.val_check_interval=2.5"], "val_check_interval=2.5 is not"),
    # a metric fit never logs: the whole run would have trained for nothing
    (["experiment=imbalance", "optimized_metric=test/balanced_acc"], "by the test set"),
    # a launcher's key, in the Hydra node the entry point composes itself
    (["hydra/launcher=joblib", "hydra.launcher.n_jobs=0"], "hydra.launcher.n_jobs=0 is not"),
    # experiments that are sweeps by their config (hydra.mode: MULTIRUN), without -m
    (["experiment=batchnorm", "trainer.max_epochs=-5"], "trainer.max_epochs=-5 is not"),
    (["experiment=cross_validation", "data.num_folds=3"], "data.fold=3 is not below"),
    (["hparams_search=digits_optuna", "data.batch_size=choice(16,0)"], "data.batch_size=0 is"),
]


@pytest.mark.parametrize(("argv", "words"), PRE_FOLDER, ids=[" ".join(a) for a, _ in PRE_FOLDER])
def test_refused_before_any_folder(tmp_path, monkeypatch, capsys, argv, words) -> None:
    line = refused(fitlab_train.main, argv, tmp_path, monkeypatch, capsys)
    assert words in line
    assert not (tmp_path / "logs").exists()  # no run folder, nothing trained


def test_a_sweep_set_by_the_config_is_a_multirun(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert preflight.plan("train", ["experiment=batchnorm"], False).multirun
    assert not preflight.plan("train", ["experiment=quick"], False).multirun
    # its own sweep can take swept values from the command line
    assert preflight.plan("train", ["experiment=batchnorm", "trainer.max_epochs=3,5"], False)


# Found by the preflight checks, and only when the job has built the data.
FULL_ERRORS = [["model.dropout=1.5"], [*QUICK, "data.val_fraction=0.001"]]


@pytest.mark.parametrize("argv", FULL_ERRORS, ids=["preflight", "job start"])
def test_full_traceback_with_hydra_full_error(tmp_path, monkeypatch, capsys, argv) -> None:
    """HYDRA_FULL_ERROR=1 adds the traceback; a user mistake still exits 2 and leaves nothing."""
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(SystemExit) as exited:
        call_entry(fitlab_train.main, argv, tmp_path, monkeypatch)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert f"fitlab.errors.FitlabError: {argv[-1]}" in err
    assert not list(tmp_path.glob("logs/*/runs/*"))


def test_eval_needs_a_checkpoint(tmp_path, monkeypatch, capsys) -> None:
    line = refused(fitlab_eval.main, [], tmp_path, monkeypatch, capsys)
    assert "no checkpoint given; pass ckpt_path=" in line


# ----------------------------------------------------------------------------- checkpoints
class RunsCode:
    """Unpickling this calls ``open(marker, "w")``: a file appears if the load ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def bad_checkpoint(kind: str, trained: Path, folder: Path) -> Path:
    last = trained / "checkpoints" / "last.ckpt"
    path = folder / f"{kind}.ckpt"
    if kind == "not_a_checkpoint":
        path.write_text("epoch,loss\n0,1.2\n")
    elif kind == "plain_state_dict":
        torch.save({"weight": torch.zeros(3)}, path)
    elif kind == "truncated":
        data = last.read_bytes()
        path.write_bytes(data[: len(data) * 2 // 3])
    elif kind == "runs_code":
        ckpt = torch.load(last, weights_only=True)
        ckpt["callbacks"]["payload"] = RunsCode(folder / "pwned")
        torch.save(ckpt, path)
    return path


CHECKPOINTS = [
    ("not_a_checkpoint", "is not a checkpoint (not a file written by torch.save)"),
    ("plain_state_dict", "is a PyTorch file but not a Lightning checkpoint"),
    ("truncated", "is truncated or corrupt"),
    ("runs_code", "would call io.open when unpickled; refused"),
]


# Text whose first byte is a pickle opcode (n, g, {, 0, I, c) was read as "pickled objects".
NOT_TORCH = [b"not a checkpoint\n", b"garbage", b'{"epoch": 1}', b"0123", b"I1\n.", b"cannot", b""]
NOT_TORCH += [b"\x89PNG\r\n\x1a\n"]


@pytest.mark.parametrize("content", NOT_TORCH)
def test_a_file_torch_did_not_write_is_not_a_checkpoint(tmp_path, content) -> None:
    path = tmp_path / "file.ckpt"
    path.write_bytes(content)
    with pytest.raises(FitlabError, match=r"is not a checkpoint \(not a file written by torch"):
        checkpoints.load(path)


@pytest.mark.parametrize(("kind", "words"), CHECKPOINTS, ids=[k for k, _ in CHECKPOINTS])
@pytest.mark.parametrize("entry", [fitlab_train.main, fitlab_eval.main], ids=["train", "eval"])
def test_bad_checkpoint_is_refused(trained, tmp_path, monkeypatch, capsys, entry, kind, words):
    before = digest(trained)
    path = bad_checkpoint(kind, trained, tmp_path)
    line = refused(entry, [*QUICK, f"ckpt_path={path}"], tmp_path, monkeypatch, capsys)
    assert f"{path} " in line and words in line
    assert not (tmp_path / "pwned").exists()  # the payload never ran
    assert not (tmp_path / "logs").exists()
    assert digest(trained) == before


def test_checkpoint_of_another_model_is_refused(trained, tmp_path, monkeypatch, capsys) -> None:
    ckpt = trained / "checkpoints" / "last.ckpt"
    argv = [*QUICK, "model.channels=[8,16]", f"ckpt_path={ckpt}"]
    line = refused(fitlab_eval.main, argv, tmp_path, monkeypatch, capsys)
    assert "is a model with model.channels=[16,32], this config has model.channels=[8,16]" in line
    assert not (tmp_path / "logs").exists()


def test_checkpoint_for_other_data_fails_its_start_and_leaves_no_folder(
    trained, tmp_path, monkeypatch, capsys
) -> None:
    # Same network, but 16x16 images: only the built model can tell (its head is 4x larger).
    ckpt = trained / "checkpoints" / "last.ckpt"
    argv = [*QUICK, "data.image_size=16", f"ckpt_path={ckpt}"]
    line = refused(fitlab_eval.main, argv, tmp_path, monkeypatch, capsys)
    assert "does not fit this model: net.head.2.weight is of shape [10, 128]" in line
    assert list((tmp_path / "logs" / "eval" / "runs").iterdir()) == []


def test_failed_resume_leaves_the_run_as_it_was(trained, tmp_path, monkeypatch, capsys) -> None:
    # A killed run (no metrics.json) resumed with the wrong data: it continues in its own
    # folder, so the failure must take back only what the attempt added.
    # (By its path: ckpt_path=last only picks a run with this command's model and data.)
    run = tmp_path / "logs" / "quick" / "runs" / trained.name
    shutil.copytree(trained, run)
    (run / "metrics.json").unlink()
    before = digest(run)
    argv = [*QUICK, "data.image_size=16", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"]
    line = refused(fitlab_train.main, argv, tmp_path, monkeypatch, capsys)
    assert "does not fit this model" in line
    after = digest(run)
    assert {k: v for k, v in after.items() if not k.endswith(".log")} == {
        k: v for k, v in before.items() if not k.endswith(".log")
    }
    assert sorted(p.name for p in (run / ".hydra").iterdir()) == [
        "config.yaml",
        "hydra.yaml",
        "overrides.yaml",
    ]


def test_data_that_cannot_be_split_fails_its_start_and_leaves_no_folder(
    tmp_path, monkeypatch, capsys
) -> None:
    # 0.1 % of 1,437 images cannot hold one image of each of 10 classes: known only from the data.
    line = refused(
        fitlab_train.main, [*QUICK, "data.val_fraction=0.001"], tmp_path, monkeypatch, capsys
    )
    assert "data.val_fraction=0.001 splits 1437 images" in line
    assert list((tmp_path / "logs" / "quick" / "runs").iterdir()) == []


REAL = [
    ("model.dropout=1.5", "fitlab: error: model.dropout=1.5 is not a number in [0, 1); set "
     "model.dropout to a number in [0, 1), one value for all blocks or a list with one per block"),
    ("trainer.devices=0", "fitlab: error: trainer.devices=0 is not an integer >= 1, -1 (all), "
     "auto or a list of device ids; set trainer.devices to an integer >= 1, -1 (all), auto or "
     "a list of device ids"),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("override", "line"), REAL, ids=[o for o, _ in REAL])
def test_a_real_process_prints_one_line_and_exits_2(tmp_path: Path, override, line) -> None:
    result = run_cli("fitlab.train", override, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [line]
    assert not (tmp_path / "logs").exists()


@pytest.mark.slow
def test_a_real_process_shows_the_traceback_and_exits_2(tmp_path: Path) -> None:
    result = run_cli(
        "fitlab.train", "trainer.devices=0", cwd=tmp_path, env={"HYDRA_FULL_ERROR": "1"}
    )
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert (
        result.stderr.rstrip()
        .splitlines()[-1]
        .startswith("fitlab.errors.FitlabError: trainer.devices=0 is not")
    )
    assert not (tmp_path / "logs").exists()


# What the checks before a run must not import: most of a bad command's seconds were theirs.
HEAVY = {"torch", "lightning", "torchmetrics", "torchvision", "matplotlib", "sklearn"}
PROBE = """
import json, sys
from fitlab.entry import train_main
sys.argv[1:] = json.loads(sys.argv[1])
try:
    train_main()
    code = 0
except SystemExit as exited:
    code = exited.code
print(json.dumps([code, sorted({name.split(".")[0] for name in sys.modules})]))
"""


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["model.dropout=1.5"], 2),  # a value
        (["model.dropuot=0.1"], 2),  # a key
        (["data=nope"], 2),  # an option
        (["ckpt_path=missing.ckpt"], 2),  # a checkpoint path
        (["-m", "model.l2=0,-1"], 2),  # a swept value
        (["--cfg", "job"], 0),
        (["--help"], 0),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_the_command_line_is_checked_before_torch_loads(tmp_path: Path, argv, code) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv)],
        cwd=tmp_path,
        env=cli_env(tmp_path / "logs"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    exit_code, modules = json.loads(result.stdout.splitlines()[-1])
    assert exit_code == code, result.stderr
    assert HEAVY.isdisjoint(modules), sorted(HEAVY & set(modules))
    assert code == 0 or result.stderr.startswith("fitlab: error: ")
    assert not (tmp_path / "logs").exists()
