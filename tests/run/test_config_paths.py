"""`~` and environment variables in every key that names a path, as a shell would expand them."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import call_entry
from fitlab import train
from fitlab.run.config import PATH_KEYS, expand_path_overrides


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("FITLAB_TEST_ROOT", str(tmp_path / "scratch"))
    return home


@pytest.mark.parametrize("key", sorted(PATH_KEYS))
def test_each_path_key_on_the_command_line(key: str, home: Path) -> None:
    scratch = home.parent / "scratch"
    assert expand_path_overrides([f"{key}=~/a", f"{key}='~/b'", f"+{key}=$FITLAB_TEST_ROOT/c"]) == [
        f"{key}={home}/a",
        f"{key}='{home}/b'",
        f"+{key}={scratch}/c",
    ]
    assert expand_path_overrides([f"{key}=~/a,~/b"]) == [f"{key}={home}/a,{home}/b"]  # a sweep


def test_other_keys_and_values_stay_as_typed(home: Path) -> None:
    typed = ["ckpt_path=last", "data.root=${paths.data_dir}/x", "task_name=~x", "~data.root"]
    assert expand_path_overrides(typed) == typed


def test_an_expanded_path_that_hydra_cannot_read_bare_is_quoted(home: Path, monkeypatch) -> None:
    monkeypatch.setenv("FITLAB_TEST_ROOT", "/my data")
    assert expand_path_overrides(["data.root=$FITLAB_TEST_ROOT"]) == ["data.root='/my data'"]


def test_the_composed_config_holds_expanded_paths(home: Path, compose_cfg, monkeypatch) -> None:
    monkeypatch.setenv("FITLAB_DATA_DIR", "~/data")  # as written in a .env file: no shell ran
    cfg = compose_cfg(
        "data=image_folder", "data.root=~/photos", "ckpt_path=$HOME/a.ckpt", "paths.log_dir=~/logs"
    )
    assert cfg.data.root == f"{home}/photos"
    assert cfg.ckpt_path == f"{home}/a.ckpt"
    assert cfg.paths.data_dir == f"{home}/data"
    assert OmegaConf.select(cfg, "hydra.run.dir").startswith(f"{home}/logs/train/runs/")
    assert compose_cfg("data=mnist").data.root == f"{home}/data"  # data.root from paths.data_dir


def test_a_bare_tilde_reaches_the_data_check(home: Path, tmp_path: Path, monkeypatch, capsys):
    """Hydra's grammar refuses an unquoted `~` (zsh and sh leave it to the program)."""
    with pytest.raises(SystemExit) as stop:
        call_entry(train.main, ["data=image_folder", "data.root=~/photos"], tmp_path, monkeypatch)
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"fitlab: error: data.root={home}/photos does not exist; point data.root at the data "
        f"folder (relative paths start in {tmp_path})"
    )
