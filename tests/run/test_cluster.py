"""Ranks, run stamps and launcher configs: what keeps a distributed or cluster run in one folder."""

from __future__ import annotations

import os

import pytest
import submitit
from hydra.utils import instantiate
from omegaconf import read_write

from fitlab.errors import FitlabError
from fitlab.run import cluster
from fitlab.run.config import compose_config

RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "SUBMITIT_LOCAL_GLOBALID")
SCHEDULER_VARIABLES = ("FITLAB_RUN_STAMP", "SLURM_NTASKS", "SLURM_JOB_ID", "SLURM_STEP_ID")
SCHEDULER_VARIABLES += ("TORCHELASTIC_RUN_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID")
SCHEDULER_VARIABLES += ("ENVIRONMENT",)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (*RANK_VARIABLES, *SCHEDULER_VARIABLES, "SLURM_NNODES"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("env", "zero"),
    [
        ({}, True),
        ({"LOCAL_RANK": "0", "NODE_RANK": "0"}, True),
        ({"LOCAL_RANK": "1"}, False),  # a child Lightning's ddp launched
        ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, False),  # the first process of node 1
        ({"RANK": "3", "LOCAL_RANK": "0"}, False),  # torchrun
        ({"SLURM_PROCID": "2"}, False),  # srun
        ({"SUBMITIT_LOCAL_GLOBALID": "1"}, False),
    ],
)
def test_rank_zero_from_the_launchers_variables(clean_env, env: dict, zero: bool) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)
    assert cluster.is_rank_zero() is zero


def test_single_runs_get_distinct_stamps(clean_env) -> None:
    assert cluster.run_stamp() != cluster.run_stamp()


@pytest.mark.parametrize(
    ("env", "stamp"),
    [
        ({"SLURM_JOB_ID": "9", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "1"}, "slurm9.0"),  # srun
        ({"SLURM_JOB_ID": "9", "ENVIRONMENT": "BATCH"}, "slurm9.batch"),  # the batch script
        (
            {
                "SLURM_JOB_ID": "12",
                "SLURM_ARRAY_JOB_ID": "10",
                "SLURM_ARRAY_TASK_ID": "2",
                "SLURM_STEP_ID": "0",
            },
            "slurm10_2.0",
        ),  # an array task: named after the array job and task, not its own SLURM_JOB_ID
    ],
)
def test_any_slurm_process_names_its_folder_after_the_job(clean_env, env, stamp) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)
    assert cluster.run_stamp() == stamp == cluster.run_stamp()  # a requeue finds it again


def test_an_interactive_allocation_gives_each_command_its_own_folder(clean_env) -> None:
    clean_env.setenv("SLURM_JOB_ID", "9")  # salloc's shell: no batch script, no step
    assert cluster.slurm_job() is None
    assert cluster.run_stamp() != cluster.run_stamp()


def test_ranks_of_one_job_agree_on_the_stamp(clean_env) -> None:
    clean_env.setenv("SLURM_NTASKS", "4")
    clean_env.setenv("SLURM_JOB_ID", "812")
    clean_env.setenv("SLURM_STEP_ID", "0")
    assert cluster.run_stamp() == "slurm812.0"  # also after a requeue: no clock in it
    for name in ("SLURM_NTASKS", "SLURM_JOB_ID", "SLURM_STEP_ID"):
        clean_env.delenv(name)
    clean_env.setenv("TORCHELASTIC_RUN_ID", "b1d2")
    assert cluster.run_stamp() == "torchrun_b1d2"
    clean_env.setenv("FITLAB_RUN_STAMP", "by-hand")
    assert cluster.run_stamp() == "by-hand"


@pytest.mark.parametrize(("rank", "writes"), [("0", True), ("1", False)])
def test_only_rank_zero_writes_hydra_output(clean_env, tmp_path, rank: str, writes: bool) -> None:
    clean_env.setenv("LOCAL_RANK", rank)
    cfg = compose_config([], tmp_path)
    with read_write(cfg.hydra.runtime):
        cfg.hydra.runtime.output_dir = str(tmp_path)  # what Hydra sets when the run starts
    log_file = cfg.hydra.job_logging.handlers.file.filename
    assert cfg.hydra.output_subdir == (".hydra" if writes else None)
    assert (log_file == os.devnull) is not writes


def test_multi_node_takes_the_node_count_from_slurm(clean_env, tmp_path) -> None:
    clean_env.setenv("SLURM_NNODES", "4")
    cfg = compose_config(["trainer=multi_node"], tmp_path)
    assert (cfg.trainer.num_nodes, cfg.trainer.strategy, cfg.trainer.devices) == (4, "ddp", -1)
    assert compose_config(["trainer=ddp_sim"], tmp_path).trainer.devices == 2


class Submitted(Exception):
    """Stops the launcher where it would hand the jobs to sbatch."""


def test_slurm_job_has_one_task_per_gpu_and_requeues_through_lightning(clean_env, tmp_path):
    clean_env.setenv("SBATCH_PARTITION", "gpu")
    clean_env.setenv("SBATCH_ACCOUNT", "lab")
    clean_env.setenv("FITLAB_LOG_DIR", str(tmp_path / "logs"))
    # submitit looks for srun on PATH before it builds a SLURM executor; nothing here calls it.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    clean_env.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    executors = []

    class RecordingExecutor(submitit.AutoExecutor):
        def map_array(self, *args, **kwargs):
            executors.append(self._executor)
            raise Submitted

    clean_env.setattr(submitit, "AutoExecutor", RecordingExecutor)
    overrides = ["hydra/launcher=submitit_slurm", "hydra.launcher.gpus_per_node=4"]
    cfg = compose_config([*overrides, "hydra.launcher.nodes=2", "trainer=multi_node"])
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    with pytest.raises(Submitted):  # the launcher's own translation of the config, up to sbatch
        launcher.launch([["seed=1"]], initial_job_idx=0)
    sbatch = executors[0]._make_submission_file_text("fitlab-train", "0").splitlines()
    for flag in ("--nodes=2", "--gpus-per-node=4", "--ntasks-per-node=4", "--partition=gpu",
                 "--account=lab", "--signal=USR1@120", "--time=240"):  # fmt: skip
        assert f"#SBATCH {flag}" in sbatch, flag
    assert any(line.startswith("srun ") for line in sbatch)  # srun starts the 4 tasks per node


@pytest.mark.parametrize("name", ["joblib", "submitit_local"])
def test_local_launchers_instantiate(tmp_path, name: str) -> None:
    cfg = compose_config([f"hydra/launcher={name}"], tmp_path)
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ in ("JoblibLauncher", "LocalLauncher")


def test_a_bare_srun_task_count_is_refused_with_the_form_that_works(clean_env) -> None:
    clean_env.setenv("SLURM_NTASKS", "2")
    clean_env.setenv("SLURM_STEP_ID", "0")
    with pytest.raises(FitlabError, match=r"--ntasks-per-node=2"):
        cluster.check_task_layout()
    clean_env.setenv("SLURM_NTASKS_PER_NODE", "2")
    cluster.check_task_layout()  # srun -N1 --ntasks-per-node=2
