"""What a run prints: rich's console as wide off a terminal as on one, copied into the run's log;
and the third-party messages a user cannot act on, each silenced where it comes from.

rich's console is process-global, and Lightning's ``RichProgressBar`` rebuilds it with
``rich.reconfigure()`` each time a bar starts: it swaps the console's ``__dict__`` and keeps its
class. So the width travels in the progress bar's ``console_kwargs`` (``callbacks/progress.py``)
and the copy into the log lives in the class, :class:`RunConsole`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import logging.config
import multiprocessing
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import rich
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.control import Control

# Tables and the model summary, as printed, into the run's log file (configs/hydra/default.yaml
# gives this logger a plain file handler; outside a Hydra job it has none and nothing is copied).
copy_log = logging.getLogger("fitlab.run.console")
warnings_log = logging.getLogger("py.warnings")  # the logger logging.captureWarnings uses

OFF_TERMINAL_WIDTH = 160


def console_kwargs() -> dict[str, Any]:
    """rich wraps at 80 columns when stdout is no terminal (a SLURM log, CI, a pipe): the model
    summary became unreadable and slow to wrap. 160 there, unless ``COLUMNS`` says."""
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        return {"width": OFF_TERMINAL_WIDTH}
    return {}


class RunConsole(Console):
    """rich's console, and a plain-text copy of everything printed on it in ``copy_log``.

    Progress bars print only :class:`~rich.control.Control` codes here (their bars are drawn by
    a render hook), so their redraws stay out of the copy.
    """

    def print(self, *objects: Any, **kwargs: Any) -> None:
        super().print(*objects, **kwargs)
        if copy_log.handlers and not all(isinstance(o, Control) for o in objects):
            plain = Console(
                file=io.StringIO(), width=self.width, color_system=None, force_terminal=False
            )
            plain.print(*objects, **kwargs)
            lines = plain.file.getvalue().rstrip("\n").splitlines()
            copy_log.info("\n".join(line.rstrip() for line in lines))


def use_run_console() -> None:
    """Make rich's global console a :class:`RunConsole`, wide off a terminal, and copy Python's
    warnings into the run's log as well: still shown on stderr as Python shows them."""
    console = rich.get_console()
    console.__class__ = RunConsole  # survives rich.reconfigure, which replaces the __dict__
    if kwargs := console_kwargs():
        rich.reconfigure(**kwargs)
    if not getattr(warnings.showwarning, "copies_to_log", False):
        warnings.showwarning = _copied(warnings.showwarning)


# The job's logging config (Hydra's job_logging, resolved), for the ranks ddp_spawn starts.
SPAWNED_LOGGING = "FITLAB_JOB_LOGGING"


@contextlib.contextmanager
def shared_with_spawned_ranks(job_logging: DictConfig | None) -> Iterator[None]:
    """While the job runs, its logging config in the environment the processes it spawns get.

    ddp_spawn's ranks are fresh interpreters that run no Hydra: rank zero prints the test table,
    the fit diagnosis and Lightning's messages there, and without this none of it reached the
    run's log file. The variable goes again with the job (a sweep runs its jobs in one process).
    """
    if job_logging is None:
        yield
        return
    os.environ[SPAWNED_LOGGING] = json.dumps(OmegaConf.to_container(job_logging, resolve=True))
    try:
        yield
    finally:
        os.environ.pop(SPAWNED_LOGGING, None)


def in_spawned_rank(global_rank: int) -> None:
    """In rank zero of a ddp_spawn job, log and print as the job's own process does: the same
    handlers (the console, the run's log file), rich's console copied into it."""
    text = os.environ.get(SPAWNED_LOGGING)
    spawned = multiprocessing.parent_process() is not None and not copy_log.handlers
    if text is None or global_rank != 0 or not spawned:
        return
    logging.config.dictConfig(json.loads(text))
    use_run_console()


def _copied(show: Callable[..., None]) -> Callable[..., None]:
    def showwarning(message, category, filename, lineno, file=None, line=None) -> None:
        show(message, category, filename, lineno, file, line)
        if warnings_log.handlers:
            text = warnings.formatwarning(message, category, filename, lineno, line)
            warnings_log.warning(text.rstrip("\n"))

    showwarning.copies_to_log = True
    return showwarning


class _DropMessage(logging.Filter):
    def __init__(self, start: str) -> None:
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.start)


# Lightning advertises its cloud logger on every Trainer (logger_connector.py); nothing to act on.
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    _DropMessage("💡 Tip: For seamless cloud logging")
)


class _RoundBestValue(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        value = str(record.msg).removeprefix("Best value: ")
        if value != record.msg and re.fullmatch(r"-?(\d+\.?\d*(e[+-]?\d+)?|inf)", value):
            record.msg = f"Best value: {float(value):.4g}"
        return True  # a multi-objective study's list of values stays as it is


# The Optuna sweeper logs the best value at full float precision (1.0000001192092896 for an
# accuracy of 1); optimization_results.yaml and the trials' metrics.json keep every digit.
logging.getLogger("hydra_plugins.hydra_optuna_sweeper._impl").addFilter(_RoundBestValue())
# Lightning warns whenever an `srun` binary exists and the process was not started by it, e.g. on
# a login node or inside salloc. fitlab's cluster paths (srun in an sbatch script, the submitit
# launcher) start it right; everything else is meant to run without SLURM.
warnings.filterwarnings(
    "ignore",
    message=r"The `srun` command is available on your system but is not used",
    module=r"lightning\.fabric\.plugins\.environments\.slurm",
)
# Under DDP Lightning asks for sync_dist=True on every epoch value logged as a tensor. fitlab's
# already are the whole job's: torchmetrics sync their states in compute() (the fit diagnosis's
# too), and every rank holds the same weights (weights/*).
warnings.filterwarnings(
    "ignore",
    message=r"It is recommended to use `self.log\('(train|val|test|fit|weights)/",
    module=r"lightning\.pytorch\.trainer\.connectors\.logger_connector\.result",
)
# Lightning 2.6 calls a torch API that torch now deprecates (utilities/_pytree.py, twice a run);
# a Lightning release that uses TreeSpec.is_leaf() ends it.
warnings.filterwarnings(
    "ignore",
    message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    module=r"lightning\.pytorch\.utilities\._pytree",
)
