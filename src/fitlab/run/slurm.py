"""What a SLURM job of the submitit launcher asks for, sized to the partition it goes to.

``configs/hydra/launcher/submitit_slurm.yaml`` resolves its defaults here, on the machine that
submits the sweep: one task per GPU (at least one, for CPU partitions) and as many CPUs per task
as the partition's smallest node can give every task.
"""

from __future__ import annotations

import functools
import re
import subprocess

from omegaconf import OmegaConf

# More cores per task rarely speed up one image-classification process; leave them to others.
MAX_CPUS_PER_TASK = 8
# Where sinfo cannot answer (no SLURM on the submitting machine): what any node has.
FALLBACK_CPUS = 1


def tasks_per_node(gpus_per_node: int | None) -> int:
    """One task per GPU, as Lightning expects under SLURM; one on a partition without GPUs."""
    return max(1, int(gpus_per_node or 0))


@functools.cache
def partition_cpus(partition: str | None) -> int | None:
    """CPUs of the smallest node of ``partition`` (None: the default one), None if unknown."""
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%P|%c"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    cpus = []
    for line in out.splitlines():
        name, _, count = line.strip().partition("|")
        # sinfo stars the default partition and writes "4+" when its nodes differ.
        wanted = name.endswith("*") if partition is None else name.rstrip("*") == partition
        if wanted and (match := re.match(r"\d+", count)):
            cpus.append(int(match.group()))
    return min(cpus) if cpus else None


def cpus_per_task(partition: str | None, tasks: int) -> int:
    """The partition's node CPUs shared by its ``tasks``, capped at :data:`MAX_CPUS_PER_TASK`."""
    node_cpus = partition_cpus(partition)
    if node_cpus is None:
        return FALLBACK_CPUS
    return max(1, min(MAX_CPUS_PER_TASK, node_cpus // max(1, int(tasks))))


def register_slurm_resolvers() -> None:
    """Register ``${fitlab.slurm_tasks_per_node:}`` and ``${fitlab.slurm_cpus_per_task:}``."""
    OmegaConf.register_new_resolver("fitlab.slurm_tasks_per_node", tasks_per_node, replace=True)
    OmegaConf.register_new_resolver("fitlab.slurm_cpus_per_task", cpus_per_task, replace=True)
