"""The docs' tables from run folders: ``scripts/run_studies.py`` and ``scripts/imbalance_table.py``.

The run folders are fakes holding what the scripts read (overrides, the saved config, metrics,
a best checkpoint), so the tables can be checked line by line without training.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from fitlab.run.config import compose_config
from fitlab.summarize import find_runs

REPO = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


studies = load_script("run_studies")
imbalance_table = load_script("imbalance_table")


def write_run(
    folder: Path,
    overrides: dict[str, object],
    metrics: dict[str, object],
    config: object = None,
    parameters: int = 0,
) -> None:
    """A job folder as fitlab-train leaves it, reduced to what the scripts read."""
    (folder / ".hydra").mkdir(parents=True)
    lines = "".join(f"- {k}={v}\n" for k, v in overrides.items())
    (folder / ".hydra" / "overrides.yaml").write_text(lines)
    OmegaConf.save(config if config is not None else {}, folder / ".hydra" / "config.yaml")
    # Only the network's floating-point tensors count as parameters.
    state = {"net.w": torch.zeros(parameters), "net.steps": torch.zeros(1, dtype=torch.long)}
    torch.save({"state_dict": {**state, "loss.weight": torch.zeros(7)}}, folder / "best.ckpt")
    metrics = {**metrics, "best_ckpt_path": str(folder / "best.ckpt")}
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_grouped_pools_seeds_and_says_na_for_missing_metrics(tmp_path: Path) -> None:
    values = {("batch", 1): 0.90, ("batch", 2): 0.92, ("none", 1): 0.80, ("none", 2): 0.81}
    for job, ((norm, seed), acc) in enumerate(values.items()):
        metrics = {"test/acc": acc, **({"val/loss_best": 0.5} if norm == "batch" else {})}
        write_run(tmp_path / str(job), {"model.norm": norm, "seed": seed}, metrics)
    assert studies.grouped(find_runs(tmp_path), ["test/acc", "val/loss_best"]) == [
        "| model.norm | runs | test/acc | val/loss_best |",
        "| --- | --- | --- | --- |",
        "| batch | 2 | 0.9100 ± 0.0141 | 0.5000 ± 0.0000 |",
        "| none | 2 | 0.8050 ± 0.0071 | n/a |",
    ]


@pytest.mark.parametrize("key", ["model.pool", "model.channels"])
def test_parameters_per_setting_from_the_checkpoints(tmp_path: Path, key: str) -> None:
    settings = {"max": 1200, "[16,32]": 34567}
    for job, (value, size) in enumerate((v, s) for v, s in settings.items() for _ in (1, 2)):
        metrics = {"test/acc": 0.9 + job / 100, "wall_time_s": 10.0 * (job + 1)}
        write_run(tmp_path / str(job), {key: value, "seed": job % 2}, metrics, parameters=size)
    lines = studies.report_parameters(key)(tmp_path, find_runs(tmp_path))
    assert lines == [
        f"| {key} | runs | test/acc | wall_time_s |",
        "| --- | --- | --- | --- |",
        "| max | 2 | 0.905 ± 0.007 | 15.000 ± 7.071 |",
        "| [16,32] | 2 | 0.925 ± 0.007 | 35.000 ± 7.071 |",
        "",
        f"| {key} | parameters |",
        "| --- | --- |",
        "| max | 1,200 |",
        "| [16,32] | 34,567 |",
    ]


def test_padding_stride_maps_follow_the_composed_experiment(tmp_path: Path) -> None:
    settings = [(0, 1), (0, 2), (1, 1), (1, 2)]
    for job, (padding, stride) in enumerate(settings):
        overrides = {"model.padding": padding, "model.stride": stride}
        cfg = compose_config(
            ["experiment=padding_stride", *(f"{k}={v}" for k, v in overrides.items())]
        )
        with open_dict(cfg):
            del cfg["hydra"]  # as Hydra saves .hydra/config.yaml: interpolations unresolved
        write_run(tmp_path / str(job), overrides, {"test/acc": 0.97 + job / 100}, cfg, 100 + job)
    lines = studies.report_padding_stride(tmp_path, find_runs(tmp_path))
    assert lines[2:] == [
        "| padding | stride | feature maps | parameters | test/acc |",
        "| --- | --- | --- | --- | --- |",
        "| 0 | 1 | 16x16 → 14x14 → 12x12 | 100 | 0.9700 |",
        "| 0 | 2 | 16x16 → 7x7 → 3x3 | 101 | 0.9800 |",
        "| 1 | 1 | 16x16 → 16x16 → 16x16 | 102 | 0.9900 |",
        "| 1 | 2 | 16x16 → 8x8 → 4x4 | 103 | 1.0000 |",
    ]


def test_feature_maps_of_a_source_at_its_own_size(tmp_path: Path) -> None:
    model = {"channels": [8], "kernel_size": 3, "stride": 1, "padding": 1, "pool": "max"}
    model |= {"norm": "none", "activation": "relu", "dropout": 0.0}
    config = {"data": {"source": "digits", "image_size": None}, "model": model}
    write_run(tmp_path / "0", {}, {}, config)
    assert studies.feature_maps(tmp_path / "0") == [(8, 8), (4, 4)]


def test_batchnorm_epochs_to_reach_per_norm(tmp_path: Path, monkeypatch) -> None:
    curves = {"0": [0.5, 0.96], "1": [0.96], "2": [0.5, 0.9, 0.95], "3": [0.5]}
    for job, norm in enumerate(["batch", "batch", "none", "none"]):
        write_run(tmp_path / str(job), {"model.norm": norm, "seed": job}, {"test/acc": 0.9})
    monkeypatch.setattr(studies, "scalar_series", lambda run_dir, tag: curves[run_dir.name])
    monkeypatch.setattr(
        studies, "train_vs_eval", lambda run_dir: [f"(train vs eval {run_dir.name})"]
    )
    lines = studies.report_batchnorm(tmp_path, find_runs(tmp_path))
    assert lines[-6:] == [
        "| model.norm | epochs |",
        "| --- | --- |",
        "| batch | 2, 1 |",
        "| none | 3, None |",
        "",
        "(train vs eval 0)",
    ]


def test_imbalance_table_one_row_per_remedy_in_sweep_order(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    job = 0
    for resampler in ("none", "smote"):
        for weights in ("null", "balanced"):
            for seed in (1, 2, 3):
                overrides = {"resampler": resampler, "model.class_weights": weights, "seed": seed}
                metrics = {"test/balanced_acc": 0.9 + seed / 100, "test/recall/8": 0.8 + job / 100}
                write_run(tmp_path / str(job), overrides, metrics)
                job += 1
    monkeypatch.setattr(imbalance_table, "rarest_class", lambda job: ("8", 12))
    imbalance_table.main(tmp_path)
    assert capsys.readouterr().out.splitlines() == [
        "| resampler | class weights | test balanced acc | recall of '8' (12 training images) "
        "| runs |",
        "| --- | --- | --- | --- | --- |",
        "| none | none | 0.920 ± 0.010 | 0.810 ± 0.010 | 3 |",
        "| none | balanced | 0.920 ± 0.010 | 0.840 ± 0.010 | 3 |",
        "| smote | none | 0.920 ± 0.010 | 0.870 ± 0.010 | 3 |",
        "| smote | balanced | 0.920 ± 0.010 | 0.900 ± 0.010 | 3 |",
    ]
