"""Who this process is in a distributed job, and the one run folder all its ranks share.

Under DDP every rank runs fitlab from the top: Lightning's ``ddp`` re-launches the script once
per device, ``srun`` and ``torchrun`` start one process per device. Each of them composes the
config before Lightning has set anything up, so Hydra would give each rank its own run folder
and its own ``.hydra/`` and log file. Two rules keep one folder per run: every rank derives the
same run stamp, and only rank zero writes Hydra's output (the resolvers below, used in
``configs/hydra/default.yaml``).
"""

from __future__ import annotations

import atexit
import os
import secrets
import time

from fitlab.errors import FitlabError

_STAMP_FORMAT = "%Y-%m-%d_%H-%M-%S"
# Rank variables of the launchers fitlab runs under: torchrun (RANK), Lightning's ddp children
# (LOCAL_RANK, NODE_RANK), srun (SLURM_PROCID), submitit's local executor, LSF's jsrun.
_RANK_VARIABLES = (
    "RANK",
    "LOCAL_RANK",
    "NODE_RANK",
    "SLURM_PROCID",
    "SUBMITIT_LOCAL_GLOBALID",
    "JSM_NAMESPACE_RANK",
)


def is_rank_zero() -> bool:
    """True unless a launcher's environment says this process is a rank other than zero."""
    return all(int(os.environ.get(name) or 0) == 0 for name in _RANK_VARIABLES)


def slurm_job() -> str | None:
    """The SLURM job this process runs in, as ``scontrol`` names it (``<array job>_<task>`` in
    an array); None outside a job's batch script or steps (an interactive ``salloc`` shell runs
    neither: each command there is a run of its own)."""
    if "SLURM_STEP_ID" not in os.environ and os.environ.get("ENVIRONMENT") != "BATCH":
        return None
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def check_task_layout() -> None:
    """``srun -n N`` without ``--ntasks-per-node``: Lightning would stop every rank with a
    traceback, as it cannot tell how the tasks map to the devices of each node."""
    tasks = int(os.environ.get("SLURM_NTASKS") or 1)
    if tasks > 1 and "SLURM_STEP_ID" in os.environ and "SLURM_NTASKS_PER_NODE" not in os.environ:
        raise FitlabError(
            f"srun started {tasks} tasks without --ntasks-per-node",
            f"start one task per device of each node: srun -N<nodes> --ntasks-per-node=<devices "
            f"per node>, e.g. srun -N1 --ntasks-per-node={tasks}",
        )


def run_stamp() -> str:
    """The run folder's name: a timestamp, the same on every rank of one distributed job.

    A single process takes the time plus a random suffix (two runs started in the same second
    stay apart). Under SLURM every process, one task or many, names the folder after its job
    and job step: ranks cannot agree on a clock reading, and a requeued job must find its own
    folder and checkpoints again. torchrun's ranks use the rendezvous id;
    ``FITLAB_RUN_STAMP`` sets it by hand (e.g. a multi-node run started on each node without a
    scheduler).
    """
    if stamp := os.environ.get("FITLAB_RUN_STAMP"):
        return stamp
    if job := slurm_job():
        # The batch script itself is no step (no SLURM_STEP_ID); srun's steps count from 0.
        return f"slurm{job}.{os.environ.get('SLURM_STEP_ID', 'batch')}"
    if (run_id := os.environ.get("TORCHELASTIC_RUN_ID", "none")) != "none":
        return f"torchrun_{run_id}"
    return f"{time.strftime(_STAMP_FORMAT)}_{secrets.token_hex(3)}"


def on_rank_zero(value: str) -> str | None:
    """``value`` on rank zero, None elsewhere (``hydra.output_subdir``: no ``.hydra/``)."""
    return value if is_rank_zero() else None


def rank_zero_file(path: str) -> str:
    """``path`` on rank zero, the null device elsewhere (Hydra's log file handler)."""
    return path if is_rank_zero() else os.devnull


_destroy_registered = False


def destroy_process_group_at_exit() -> None:
    """Destroy this process's ``torch.distributed`` process group when Python exits.

    Lightning does so only for NCCL. A gloo group left alive at exit (ddp_sim's spawned ranks,
    DDP on CPUs) is torn down during interpreter finalization, where its C++ threads now and
    then abort the process ("terminate called without an active exception"): the rank dies by
    SIGABRT after training has finished, 1 run in 5 on a 2-core machine. Called from each
    rank's ``setup``; registers once per process.
    """
    global _destroy_registered
    import torch.distributed as dist

    if _destroy_registered or not (dist.is_available() and dist.is_initialized()):
        return
    atexit.register(_destroy_process_group)
    _destroy_registered = True


def _destroy_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
