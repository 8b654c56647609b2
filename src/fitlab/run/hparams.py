"""TensorBoard's HPARAMS tab: one row per run, named by its overrides, with the hyperparameters
that tell the runs apart next to the metrics that decide between them.

TensorBoard builds the tab from the first experiment summary it finds under its log dir: the
columns, whether each hyperparameter differs between the runs (those come first, then by name)
and, shown until the reader picks others, the first five of each. Every job of a sweep writes
the same one: the swept keys (they differ), the few a reader always wants, ``fit/verdict`` (a
string, and TensorBoard's metrics are numbers), then the metrics in deciding order. A constant
of the sweep is no column.

The summary is written at the end of the run and names metrics that already are scalars in the
run (``val/loss_best``, ``test/acc``, ...): TensorBoard takes each column's value from the
scalar's last point. Lightning's own hparams summary would log them again, as a stray point on
the curves.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.types import RunMode
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, ListConfig, OmegaConf
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata
from tensorboard.plugins.hparams.plugin_data_pb2 import (
    HParamsPluginData,
    SessionEndInfo,
    SessionStartInfo,
)

# Always a column: what was trained, on which data, from which seed, how fast, in what batches.
ALWAYS = ("model", "data", "seed", "model.optimizer.lr", "data.batch_size")
VERDICTS = ("underfit", "overfit", "good")
# Keys a single run's command line may set that say where things go, not how it was trained.
_NOT_HOW = ("callbacks", "logger", "paths", "ckpt_path", "task_name", "tags", "train", "test")

Value = bool | int | float | str


@dataclass
class Session:
    """One row of HPARAMS. ``name`` empty: TensorBoard names the row after the run's folder."""

    name: str
    hparams: dict[str, Value]
    differs: list[str]
    metrics: list[str]  # scalar tags, in column order
    domains: dict[str, list[str]] = field(default_factory=dict)  # a string's possible values


def swept(hydra: DictConfig) -> list[Override]:
    """A multirun's sweeps: its command line's, then its sweeper's ``params`` that the command
    line leaves alone (Optuna's search space, an experiment's sweep)."""
    parser = OverridesParser.create()
    saved = Path(hydra.sweep.dir) / "multirun.yaml"  # the command line as typed, sweeps whole
    typed = list(OmegaConf.load(saved).hydra.overrides.task) if saved.is_file() else []
    given = parser.parse_overrides(typed)
    keys = {o.key_or_group for o in given}
    params = hydra.sweeper.get("params") or {}
    own = parser.parse_overrides([f"{k}={v}" for k, v in params.items() if k not in keys])
    return [o for o in given + own if o.is_sweep_override()]


def value_of(cfg: DictConfig, choices: Mapping[str, Any], key: str) -> Value:
    """``key`` of the run: a config group's option (``data`` -> ``digits``), else the value."""
    if key in choices:
        return str(choices[key])
    value = OmegaConf.select(cfg, key, default=None)
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, (bool, int, float, str)):
        return value
    return "null" if value is None else str(value)


def row_name(job: list[Override], keys: list[str]) -> str:
    """``l2=0.0001 seed=2``: the job's overrides of the swept ``keys``, each key by its last part
    unless two share it: TensorBoard cuts a row's name at about 16 characters."""
    last = {key: re.split(r"[./]", key)[-1] for key in keys}
    shared = {part for part, count in Counter(last.values()).items() if count > 1}
    short = {key: key if part in shared else part for key, part in last.items()}
    chosen = (o for o in job if o.key_or_group in short)
    return " ".join(f"{short[o.key_or_group]}={o.input_line.split('=', 1)[1]}" for o in chosen)


def job_name(hydra: DictConfig) -> tuple[str, list[Override]]:
    """A multirun job's row name (its swept overrides) and the sweeps it comes from."""
    sweeps = swept(hydra)
    job = OverridesParser.create().parse_overrides(list(hydra.overrides.task))
    return row_name(job, list(dict.fromkeys(o.key_or_group for o in sweeps))), sweeps


# A folder name's limit is 255 bytes; past this the events stay in tensorboard/ itself.
MAX_RUN_NAME_BYTES = 200


def run_name(hydra: DictConfig) -> str:
    """The row name as a folder name: ``l2=0.0001,seed=2`` (see ``config.tensorboard_run``);
    "" when the swept values would make it too long for one."""
    name = job_name(hydra)[0].replace(" ", ",").replace("/", "_")
    return name if len(name.encode()) <= MAX_RUN_NAME_BYTES else ""


def deciding_metrics(optimized_metric: str, metrics: Mapping[str, Any]) -> list[str]:
    """The numbers a sweep is judged by, the sweeper's first, as far as the run has them."""
    wanted = (f"{optimized_metric}_best", "test/acc", "test/balanced_acc", "test/f1_macro")
    wanted += ("fit/train_error", "fit/val_error", optimized_metric)
    return [name for name in dict.fromkeys(wanted) if isinstance(metrics.get(name), float)]


def session(cfg: DictConfig, metrics: Mapping[str, Any]) -> Session:
    """The run's row: for a job of a multirun the swept keys, named by their values; for a
    single run the keys its command line set."""
    hydra = HydraConfig.get() if HydraConfig.initialized() else None
    choices = dict(hydra.runtime.choices) if hydra else {}
    domains: dict[str, list[str]] = {"fit/verdict": list(VERDICTS)}
    if hydra is not None and hydra.mode == RunMode.MULTIRUN:
        name, sweeps = job_name(hydra)
        differs = list(dict.fromkeys(o.key_or_group for o in sweeps))
        discrete = (o for o in sweeps if o.is_discrete_sweep())
        domains |= {o.key_or_group: list(o.sweep_string_iterator()) for o in discrete}
    else:
        job = OverridesParser.create().parse_overrides(list(hydra.overrides.task)) if hydra else []
        keys = (o.key_or_group for o in job)
        differs = [k for k in keys if k.split(".")[0] not in _NOT_HOW]
        name = ""
    hparams = {key: value_of(cfg, choices, key) for key in dict.fromkeys((*differs, *ALWAYS))}
    if isinstance(metrics.get("fit/verdict"), str):
        hparams["fit/verdict"] = metrics["fit/verdict"]
    return Session(name, hparams, differs, deciding_metrics(cfg.optimized_metric, metrics), domains)


def _hparam_info(name: str, value: Value, differs: bool, domain: list[str] | None):
    info = api_pb2.HParamInfo(name=name, differs=differs)
    if isinstance(value, bool):
        info.type = api_pb2.DATA_TYPE_BOOL
    elif isinstance(value, (int, float)):
        info.type = api_pb2.DATA_TYPE_FLOAT64
    else:
        info.type = api_pb2.DATA_TYPE_STRING
        info.domain_discrete.extend(domain or [value])
    return info


def _set(start: SessionStartInfo, name: str, value: Value) -> None:
    if isinstance(value, bool):
        start.hparams[name].bool_value = value
    elif isinstance(value, (int, float)):
        start.hparams[name].number_value = value
    else:
        start.hparams[name].string_value = value


def summaries(row: Session) -> list[Summary]:
    """The experiment (the columns), the session's start (its values) and its end."""
    infos = [
        _hparam_info(name, value, name in row.differs, row.domains.get(name))
        for name, value in row.hparams.items()
    ]
    columns = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in row.metrics]
    start = SessionStartInfo(group_name=row.name, start_time_secs=time.time())
    for name, value in row.hparams.items():
        _set(start, name, value)
    end = SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time())
    data = {
        metadata.EXPERIMENT_TAG: HParamsPluginData(
            experiment=api_pb2.Experiment(hparam_infos=infos, metric_infos=columns)
        ),
        metadata.SESSION_START_INFO_TAG: HParamsPluginData(session_start_info=start),
        metadata.SESSION_END_INFO_TAG: HParamsPluginData(session_end_info=end),
    }
    return [
        Summary(
            value=[
                Summary.Value(
                    tag=tag,
                    metadata=metadata.create_summary_metadata(content),
                    tensor=metadata.NULL_TENSOR,
                )
            ]
        )
        for tag, content in data.items()
    ]


def log_hparams_session(trainer: L.Trainer, cfg: DictConfig, metrics: Mapping[str, Any]) -> None:
    """Write the run's HPARAMS row (rank zero; TensorBoard loggers only)."""
    loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
    if trainer.global_rank != 0 or not loggers:
        return
    row = session(cfg, metrics)
    for logger in loggers:
        writer = logger.experiment._get_file_writer()
        for summary in summaries(row):
            writer.add_summary(summary, trainer.global_step)
        writer.flush()
