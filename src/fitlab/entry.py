"""The Hydra entry of ``fitlab-train`` and ``fitlab-eval``: the command line checked first, then
the job, and a failure said in one line.

Nothing here imports torch or Lightning, nor do the checks (:mod:`fitlab.run.preflight`): a bad
override ends with its ``fitlab: error:`` line before they load, and ``--help`` and ``--cfg``
print at once. The task functions import what they build from when they run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hydra
from hydra._internal.hydra import Hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_method
from omegaconf import DictConfig

from fitlab.errors import FitlabError, exit_usage, find_fitlab_error
from fitlab.run import folders, preflight
from fitlab.run.config import config_dir, expand_path_overrides
from fitlab.run.console import shared_with_spawned_ranks, use_run_console

log = logging.getLogger(__name__)


def hydra_entry(config_name: str, task: str, resume_in_place: bool = False) -> Callable[[], Any]:
    """The function named ``task`` (``module.function``, imported when a job first runs) behind
    the preflight checks and ``hydra.main``: a FitlabError becomes one line on stderr and exit 2;
    a failing job of a multirun is recorded and the others go on."""

    @hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=config_name)
    def run(cfg: DictConfig) -> Any:
        folders.begin_attempt()
        try:
            if not preflight.checked or HydraConfig.get().mode == RunMode.MULTIRUN:
                preflight.check(cfg)  # each job of a sweep: combinations fail here, alone
            with shared_with_spawned_ranks(HydraConfig.get().job_logging):
                return get_method(task)(cfg)
        except Exception as exc:
            return job_failed(exc)

    def main() -> Any:
        use_run_console()  # 160 columns off a terminal, copied into the run's log (console.py)
        sys.argv[1:] = expand_path_overrides(sys.argv[1:])  # data.root=~/photos, as a shell would
        try:
            plan = preflight.plan(config_name, sys.argv[1:], resume_in_place)
        except FitlabError as err:
            exit_usage(err)
        if plan is not None and plan.completed_run is not None:
            print(preflight.completed_note(plan.completed_run), file=sys.stderr, flush=True)
            return None
        if plan is not None:
            sys.argv.extend(plan.overrides)  # also seen by Lightning's DDP re-launch
        with mode_known(plan):
            result = run()
        if plan is not None and plan.multirun:
            exit_if_jobs_failed(plan.sweep_dir)
        return result

    return main


@contextlib.contextmanager
def mode_known(plan: preflight.Plan | None) -> Iterator[None]:
    """Hydra composes the whole config once more only to read ``hydra.mode`` (its ``get_mode``);
    the checks composed it from the same command line, so Hydra is told their answer."""
    if plan is None:  # Hydra alone (--help, a DDP worker): it asks for itself
        yield
        return
    asks = Hydra.get_mode
    Hydra.get_mode = lambda self, config_name, overrides: plan.mode
    try:
        yield
    finally:
        Hydra.get_mode = asks


def job_failed(exc: Exception) -> None:
    """Leave the run folder honest, then report: one line (user mistake) or the traceback."""
    err = find_fitlab_error(exc)
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    message = str(err) if err is not None else folders.one_line(exc)
    resumed = (hydra_cfg.output_subdir or ".hydra") != ".hydra"
    if multirun or err is None or not (resumed or folders.trained_nothing(output_dir)):
        folders.write_metrics(output_dir, folders.failure_record(message))
    elif resumed:  # a resumed run's own files stay as they were
        folders.remove(output_dir / hydra_cfg.output_subdir)
    else:  # a start that failed leaves no folder behind
        folders.remove(output_dir)
    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    if err is None and (full_error or not multirun):
        raise exc  # a bug: Hydra shows the traceback
    if not multirun:
        exit_usage(err, exc)
    if err is None or full_error:
        log.error("job %s failed", hydra_cfg.job.num, exc_info=exc)
    print(f"fitlab: error: job {hydra_cfg.job.num}: {message}", file=sys.stderr, flush=True)
    return None  # the sweep goes on; Optuna records the trial as failed


def exit_if_jobs_failed(sweep_dir: Path | None) -> None:
    failed = folders.failed_jobs(sweep_dir) if sweep_dir is not None else []
    if failed:
        for job, error in failed:
            print(f"fitlab: job {job} failed: {error}", file=sys.stderr)
        print(f"fitlab: {len(failed)} job(s) failed, see {sweep_dir}", file=sys.stderr)
        sys.exit(1)


train_main = hydra_entry("train", "fitlab.train.train", resume_in_place=True)  # fitlab-train
eval_main = hydra_entry("eval", "fitlab.eval.evaluate")  # fitlab-eval
