"""Before Hydra makes a run folder: compose the command line's config and check all of it.

Hydra creates the run folder before it calls the task, so the checks that must leave nothing
behind run here, on a config composed from the same overrides: Hydra's own complaints (an
unknown option or key, an override it cannot parse) become one-line FitlabErrors, then every
value is checked (:mod:`fitlab.validation`) and the checkpoint to resume is found and read
(:mod:`fitlab.run.checkpoints`). A multirun is checked once per swept value; combinations that only
fail together are caught when their job starts, and fail alone.

Resuming the ``last.ckpt`` of a run that did not complete continues that run in its own folder,
so its best checkpoint and score, early-stopping state and curves carry on; the resumed
attempt's Hydra files go to ``.hydra/resume_<time>/`` beside the original ones. A run that
completed is continued only for more epochs than it had (``trainer.max_epochs``); otherwise the
command says so and trains nothing.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra._internal.utils import get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from fitlab.errors import FitlabError
from fitlab.run import checkpoints, cluster, folders
from fitlab.run.config import config_dir
from fitlab.validation import check_imports, check_values

# Flags with which Hydra prints something (help, the config) instead of running a job.
HYDRA_ONLY = ("help", "hydra_help", "cfg", "info", "shell_completion", "experimental_rerun")
OWN_CONFIG = ("config_path", "config_name", "config_dir")


@dataclass
class Plan:
    """What the entry point adds to the command line, and where a multirun's jobs go."""

    overrides: list[str] = field(default_factory=list)
    multirun: bool = False
    mode: RunMode | None = None  # hydra.mode as composed here (None: what the command says)
    sweep_dir: Path | None = None
    resumed_run: Path | None = None
    completed_run: Path | None = None  # the checkpoint's run ended and no more epochs are asked


# Set once the command line passed: a single run's job does not check its config twice.
checked = False


def plan(config_name: str, argv: list[str], resume_in_place: bool) -> Plan | None:
    """Check the command line; None when Hydra does the work itself (``--help``, ``--cfg``)."""
    global checked
    checked = False
    args = get_args_parser().parse_args(argv)  # bad flags exit 2 with argparse's usage line
    hands_off = any(getattr(args, a) for a in HYDRA_ONLY + OWN_CONFIG)
    if hands_off or int(os.environ.get("LOCAL_RANK", "0")) > 0:  # DDP workers: rank 0 checked
        return None
    try:
        parsed = OverridesParser.create().parse_overrides(args.overrides)
    except OverrideParseException as exc:
        raise hydra_error(exc, config_name, args.overrides) from exc
    # Hydra takes the mode and the sweep from the composed config too: an experiment that sets
    # hydra.mode: MULTIRUN (experiment=batchnorm) is a sweep over its hydra.sweeper.params.
    unswept = [o.input_line for o in parsed if not o.is_sweep_override()]
    base = compose_config(config_name, unswept)
    multirun = args.multirun or base.hydra.mode == RunMode.MULTIRUN
    if multirun:
        given = {o.key_or_group for o in parsed}
        params = base.hydra.sweeper.get("params") or {}
        own = [f"{key}={value}" for key, value in params.items() if key not in given]
        parsed = OverridesParser.create().parse_overrides(own) + parsed  # the command line wins
    fixed = [o.input_line for o in parsed if not (multirun and o.is_sweep_override())]
    # Interval sweeps (Optuna) have no values to try here; their jobs check themselves.
    swept = [
        [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()]
        for o in parsed
        if multirun and o.is_sweep_override() and o.is_discrete_sweep()
    ]
    firsts = [values[0] for values in swept]
    wanted = fixed + firsts
    # A plain run composes once: its config is the base one.
    cfg = base if wanted == unswept else compose_config(config_name, wanted)
    others = [
        compose_config(config_name, [*fixed, *firsts[:i], value, *firsts[i + 1 :]])
        for i, values in enumerate(swept)
        for value in values[1:]
    ]
    check(cfg, *others)

    result = Plan(multirun=multirun, mode=base.hydra.mode)
    if multirun:
        result.sweep_dir = Path(cfg.hydra.sweep.dir)
    ckpt = checkpoints.resolve(cfg)
    if ckpt is not None and cfg.ckpt_path == "last":
        result.overrides.append(f"ckpt_path={quoted(ckpt)}")
    continues = resume_in_place and not multirun and cfg.get("train") and ckpt is not None
    run = folders.continued_by(ckpt) if continues else None
    if run is not None and folders.status(run) == folders.COMPLETED and not more_epochs(cfg, run):
        result.completed_run = run
        checked = True
        return result
    if run is not None:
        result.resumed_run = run
        result.overrides += [
            f"hydra.run.dir={quoted(run)}",
            # rank zero only, as configs/hydra/default.yaml has it
            "hydra.output_subdir='${fitlab.rank_zero:.hydra/resume_${fitlab.run_stamp:}}'",
        ]
        note_changed_overrides(run, [o for o in args.overrides if not o.startswith("ckpt_path=")])
    checked = True
    return result


def more_epochs(cfg: DictConfig, run: Path) -> bool:
    """The command asks for more epochs than the completed ``run`` was last given."""
    wanted = cfg.trainer.get("max_epochs")
    had = OmegaConf.load(folders.latest_config(run)).trainer.get("max_epochs")
    return wanted != had and (wanted == -1 or (had != -1 and wanted > had))


def completed_note(run: Path) -> str:
    """What a command that would resume a completed run says instead of training again."""
    record = folders.read_record(run)
    epochs = OmegaConf.load(folders.latest_config(run)).trainer.get("max_epochs")
    stopped = record.get("stopped_reason", "completed")
    early = " (early stopping counts on from its state)" if stopped == "early_stopping" else ""
    return (
        f"fitlab: {run} completed ({stopped}, trainer.max_epochs={epochs}); nothing to train; "
        f"its metrics.json has the results, fitlab-eval ckpt_path=... tests a checkpoint again, "
        f"trainer.max_epochs=N above {epochs} trains it on{early}"
    )


def check(*cfgs: DictConfig) -> None:
    """Every value of each config, then the checkpoints they give, then the classes they name:
    FitlabError on the first problem. Torch loads only for a checkpoint and those classes."""
    cluster.check_task_layout()
    for cfg in cfgs:
        check_values(cfg)
    for cfg in cfgs:
        ckpt = checkpoints.resolve(cfg)
        if ckpt is not None:
            checkpoints.check_matches_config(checkpoints.load(ckpt), ckpt, cfg)
    for cfg in cfgs:
        check_imports(cfg)


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    """The config Hydra will give the job, Hydra's own node included; errors as FitlabErrors."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            return compose(config_name, overrides=overrides, return_hydra_config=True)
    except HydraException as exc:
        raise hydra_error(exc, config_name, overrides) from exc
    finally:
        GlobalHydra.instance().clear()


def hydra_error(exc: HydraException, config_name: str, overrides: list[str]) -> FitlabError:
    """Hydra's multi-line composition errors, said in one line with the fix."""
    if isinstance(exc, MissingConfigException) and exc.options and exc.missing_cfg_file:
        group, _, name = exc.missing_cfg_file.rpartition("/")
        return FitlabError(
            f"{group}={name} is not an option", f"use one of {', '.join(exc.options)}"
        )
    if isinstance(exc, OverrideParseException):
        reason = [
            line.strip()
            for line in exc.message.splitlines()
            if line.strip() and not line.startswith(("Error parsing", "See "))
        ]
        detail = f" ({reason[0]})" if reason else ""
        return FitlabError(
            f"cannot read the override '{exc.override}'{detail}",
            "write key=value and quote lists or special characters, e.g. "
            "model.channels='[16,32]' (https://hydra.cc/docs/advanced/override_grammar/basic/)",
        )
    message = str(exc)
    unknown = re.match(r"Could not override '([^']+)'", message)
    if unknown:
        key = unknown.group(1)
        parent, _, name = key.rpartition(".")
        return FitlabError(
            f"{key} is not a config key", _key_fix(config_name, overrides, key, parent, name)
        )
    lines = [line.strip() for line in message.split("Config search path")[0].splitlines()]
    lines = [line for line in lines if line]
    return FitlabError(
        lines[0].rstrip(".") if lines else type(exc).__name__,
        "; ".join(lines[1:]) or "`--cfg job` prints the composed config, `--help` the options",
    )


def _key_fix(config_name: str, overrides: list[str], key: str, parent: str, name: str) -> str:
    others = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != key]
    try:
        node = OmegaConf.select(compose_config(config_name, others), parent) if parent else None
    except FitlabError:
        node = None
    known = f"the keys of {parent} are {', '.join(map(str, node))}; " if node else ""
    return f"check the spelling ({known}+{key}=VALUE adds a new key)"


def note_changed_overrides(run: Path, overrides: list[str]) -> None:
    """Say so when a run is resumed with other overrides than it was started with."""
    saved = run / ".hydra" / "overrides.yaml"
    before = (
        [o for o in OmegaConf.load(saved) if not o.startswith("ckpt_path=")]
        if saved.is_file()
        else []
    )
    if sorted(before) != sorted(overrides):
        print(
            f"fitlab: note: resuming {run}, started with overrides {before}, now {overrides}",
            file=sys.stderr,
        )


def quoted(value: object) -> str:
    """A value as a quoted Hydra override string (paths may hold '=' or ',')."""
    return "'" + str(value).replace("'", "\\'") + "'"
