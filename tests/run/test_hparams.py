"""The HPARAMS row of a run: which keys, named how, which metrics, and the summaries TensorBoard
reads. (A real TensorBoard on a real sweep: tests/test_sweeps.py.)"""

from __future__ import annotations

from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from tensorboard.plugins.hparams import api_pb2, metadata

from fitlab.run.config import tensorboard_run
from fitlab.run.hparams import ALWAYS, deciding_metrics, row_name, session, summaries

MEASURED = {
    "val/loss": 0.4,
    "val/loss_best": 0.3,
    "test/acc": 0.9,
    "test/balanced_acc": 0.85,
    "test/f1_macro": 0.8,
    "test/loss": 0.35,
    "fit/train_error": 0.01,
    "fit/val_error": 0.08,
    "fit/gap": 0.03,
    "fit/verdict": "overfit",
    "wall_time_s": 12.0,
}


def job_of_sweep(compose_cfg, tmp_path: Path, typed: list[str], job: list[str]):
    """The config of one job of ``fitlab-train -m typed...``: Hydra saved ``typed`` in the sweep
    folder's multirun.yaml and gave the job ``job``."""
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    OmegaConf.save({"hydra": {"overrides": {"task": typed}}}, sweep_dir / "multirun.yaml")
    return compose_cfg(*job, "hydra.mode=MULTIRUN", f"hydra.sweep.dir={sweep_dir}")


def test_a_job_of_a_sweep_shows_its_swept_keys_and_no_constants(compose_cfg, tmp_path):
    typed = ["experiment=quick", "model.l2=0,1e-4", "data=digits,digits_lt", "trainer.max_epochs=1"]
    job = ["experiment=quick", "model.l2=1e-4", "data=digits_lt", "trainer.max_epochs=1"]
    row = session(job_of_sweep(compose_cfg, tmp_path, typed, job), MEASURED)
    assert row.name == "l2=1e-4 data=digits_lt"
    assert row.differs == ["model.l2", "data"]
    swept_then_always = [
        "model.l2",
        "data",
        "model",
        "seed",
        "model.optimizer.lr",
        "data.batch_size",
    ]
    assert list(row.hparams) == [*swept_then_always, "fit/verdict"]
    assert row.hparams["model.l2"] == 1e-4 and row.hparams["data"] == "digits_lt"
    assert row.hparams["model"] == "cnn" and row.hparams["fit/verdict"] == "overfit"
    assert row.domains["data"] == ["digits", "digits_lt"]


def test_an_experiments_sweeper_params_are_swept_unless_the_command_line_fixes_them(
    compose_cfg, tmp_path
):
    typed = ["experiment=l1_vs_l2", "seed=1,2", "model.l2=0.001"]
    job = ["experiment=l1_vs_l2", "seed=2", "model.l2=0.001", "model.l1=3e-5"]
    row = session(job_of_sweep(compose_cfg, tmp_path, typed, job), MEASURED)
    assert row.differs == ["seed", "model.l1"]
    assert row.name == "seed=2 l1=3e-5"
    assert "model.l2" not in row.hparams  # fixed by the command line: a constant of the sweep
    always = ["model", "data", "model.optimizer.lr", "data.batch_size"]  # and seed, swept here
    assert list(row.hparams) == ["seed", "model.l1", *always, "fit/verdict"]


def test_a_jobs_tensorboard_folder_is_named_by_its_swept_overrides(compose_cfg, tmp_path):
    typed = ["experiment=quick", "model.l2=0,1e-4", "data=digits,digits_lt"]
    job_of_sweep(compose_cfg, tmp_path, typed, ["experiment=quick", "model.l2=1e-4", "data=digits"])
    assert tensorboard_run() == "l2=1e-4,data=digits"  # the row's name, as a folder name
    compose_cfg("experiment=quick", "model.l2=1e-4")
    assert tensorboard_run() == ""  # a single run: tensorboard/ itself


def test_swept_values_too_long_for_a_folder_name_leave_the_events_in_tensorboard(
    compose_cfg, tmp_path
):
    long = "a" * 240
    typed = ["experiment=quick", f"+note={long},b"]
    job_of_sweep(compose_cfg, tmp_path, typed, ["experiment=quick", f"+note={long}"])
    assert tensorboard_run() == ""


def test_a_single_run_shows_what_its_command_line_set(compose_cfg):
    cfg = compose_cfg("experiment=quick", "model.dropout=0.3", "callbacks=none", "ckpt_path=x")
    row = session(cfg, {})
    assert row.name == ""  # TensorBoard names the row after the run folder
    assert row.differs == ["experiment", "model.dropout"]
    assert list(row.hparams) == ["experiment", "model.dropout", *ALWAYS]
    assert row.hparams["experiment"] == "quick" and row.metrics == []


def test_a_row_is_named_by_the_swept_keys_last_parts_unless_two_share_one():
    job = OverridesParser.create().parse_overrides(
        ["experiment=quick", "model.optimizer.lr=0.01", "+x.lr=2", "model/optimizer=sgd", "seed=3"]
    )
    keys = ["model.optimizer.lr", "x.lr", "model/optimizer", "seed"]
    assert row_name(job, keys) == "model.optimizer.lr=0.01 x.lr=2 optimizer=sgd seed=3"


def test_the_deciding_metrics_come_first_and_only_numbers_the_run_has():
    assert deciding_metrics("val/loss", MEASURED) == [
        "val/loss_best",
        "test/acc",
        "test/balanced_acc",
        "test/f1_macro",
        "fit/train_error",
        "fit/val_error",
        "val/loss",
    ]
    assert deciding_metrics("val/acc", {"val/acc": 0.9, "fit/verdict": "good"}) == ["val/acc"]


def test_the_summaries_are_what_tensorboard_reads(compose_cfg, tmp_path):
    typed = ["experiment=quick", "model.norm=batch,group"]
    job = ["experiment=quick", "model.norm=group"]
    row = session(job_of_sweep(compose_cfg, tmp_path, typed, job), MEASURED)
    contents = {s.value[0].tag: s.value[0].metadata.plugin_data.content for s in summaries(row)}
    assert {s.value[0].metadata.plugin_data.plugin_name for s in summaries(row)} == {"hparams"}
    experiment = metadata.parse_experiment_plugin_data(contents[metadata.EXPERIMENT_TAG])
    infos = {info.name: info for info in experiment.hparam_infos}
    assert list(infos) == list(row.hparams)
    assert [name for name, info in infos.items() if info.differs] == ["model.norm"]
    assert list(infos["model.norm"].domain_discrete) == ["batch", "group"]
    assert infos["seed"].type == api_pb2.DATA_TYPE_FLOAT64
    assert [m.name.tag for m in experiment.metric_infos] == row.metrics
    start = metadata.parse_session_start_info_plugin_data(contents[metadata.SESSION_START_INFO_TAG])
    assert start.group_name == "norm=group"
    assert start.hparams["model.norm"].string_value == "group"
    assert start.hparams["seed"].number_value == 42
    end = metadata.parse_session_end_info_plugin_data(contents[metadata.SESSION_END_INFO_TAG])
    assert end.status == api_pb2.STATUS_SUCCESS
