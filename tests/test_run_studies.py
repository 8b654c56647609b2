"""The docs' tables from run folders: ``scripts/run_studies.py`` and ``scripts/imbalance_table.py``.

The run folders are fakes holding what the scripts read (overrides, the saved config, metrics,
a best checkpoint), so the tables can be checked line by line without training.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
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


studies = load_script("run_studies")  # puts scripts/ on sys.path for the two below
import comparisons  # noqa: E402
import study_reports as reports  # noqa: E402

imbalance_table = load_script("imbalance_table")


@pytest.fixture(autouse=True)
def figures(tmp_path: Path, monkeypatch) -> Path:
    """Figures go to a folder of the test's own, not to docs/studies."""
    folder = tmp_path / "figures"
    monkeypatch.setattr(comparisons, "FIGURES", folder)
    return folder


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
    assert comparisons.grouped(find_runs(tmp_path), ["test/acc", "val/loss_best"]) == [
        "| model.norm | runs | test/acc | val/loss_best |",
        "| --- | --- | --- | --- |",
        "| batch | 2 | 0.9100 ± 0.0141 | 0.5000 ± 0.0000 |",
        "| none | 2 | 0.8050 ± 0.0071 | n/a |",
    ]


@pytest.mark.parametrize("key", ["model.pool", "model.channels"])
def test_parameters_per_setting_from_the_checkpoints(tmp_path: Path, key: str, figures) -> None:
    settings = {"max": 1200, "[16,32]": 34567}
    out = tmp_path / "logs" / "kernels" / "multiruns" / "x"  # the study's name: kernels
    for job, (value, size) in enumerate((v, s) for v, s in settings.items() for _ in (1, 2)):
        # exact in binary: [16,32] gains 0.125 on both seeds
        metrics = {"test/acc": [0.5, 0.75, 0.625, 0.875][job], "wall_time_s": 10.0 * (job + 1)}
        write_run(out / str(job), {key: value, "seed": job % 2}, metrics, parameters=size)
    lines = reports.report_parameters(key)(out, find_runs(out))
    assert lines == [
        f"| {key} | runs | test/acc | wall_time_s | Δ test/acc vs baseline |",
        "| --- | --- | --- | --- | --- |",
        "| max | 2 | 0.625 ± 0.177 | 15.000 ± 7.071 | baseline |",
        "| [16,32] | 2 | 0.750 ± 0.177 | 35.000 ± 7.071 | "
        "+0.1250 ± 0.0000 (the same on every seed) |",
        "",
        f"**Reading (test/acc, paired over 2 seeds against `{key}=max`):** "
        f"`{key}=[16,32]` raises it by 0.1250 (the same on every seed).",
        "",
        "![kernels: test/acc per setting](studies/kernels.png)",
        "",
        f"| {key} | parameters |",
        "| --- | --- |",
        "| max | 1,200 |",
        "| [16,32] | 34,567 |",
    ]
    assert (figures / "kernels.png").read_bytes().startswith(b"\x89PNG")


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
    lines = reports.report_padding_stride(tmp_path, find_runs(tmp_path))
    assert lines[2:16] == [
        "| padding | stride | feature maps | parameters |",
        "| --- | --- | --- | --- |",
        "| 0 | 1 | 16x16 → 14x14 → 12x12 | 100 |",
        "| 0 | 2 | 16x16 → 7x7 → 3x3 | 101 |",
        "| 1 | 1 | 16x16 → 16x16 → 16x16 | 102 |",
        "| 1 | 2 | 16x16 → 8x8 → 4x4 | 103 |",
        "",
        # accuracy against the default padding 1, stride 1 (one seed: no spread to judge by)
        "| model.padding | model.stride | runs | test/acc | Δ test/acc vs baseline |",
        "| --- | --- | --- | --- | --- |",
        "| 0 | 1 | 1 | 0.9700 | -0.0200 (1 seed) |",
        "| 0 | 2 | 1 | 0.9800 | -0.0100 (1 seed) |",
        "| 1 | 1 | 1 | 0.9900 | baseline |",
        "| 1 | 2 | 1 | 1.0000 | +0.0100 (1 seed) |",
        "",
    ]


def test_feature_maps_of_a_source_at_its_own_size(tmp_path: Path) -> None:
    model = {"channels": [8], "kernel_size": 3, "stride": 1, "padding": 1, "pool": "max"}
    model |= {"norm": "none", "activation": "relu", "dropout": 0.0}
    config = {"data": {"source": "digits", "image_size": None}, "model": model}
    write_run(tmp_path / "0", {}, {}, config)
    assert reports.feature_maps(tmp_path / "0") == [(8, 8), (4, 4)]


def test_batchnorm_epochs_to_reach_per_norm(tmp_path: Path, monkeypatch) -> None:
    curves = {"0": [0.5, 0.96], "1": [0.96], "2": [0.5, 0.9, 0.95], "3": [0.5]}
    for job, norm in enumerate(["batch", "batch", "none", "none"]):
        write_run(tmp_path / str(job), {"model.norm": norm, "seed": job}, {"test/acc": 0.9})
    monkeypatch.setattr(reports, "scalar_series", lambda run_dir, tag: curves[run_dir.name])
    monkeypatch.setattr(
        reports, "train_vs_eval", lambda dirs: [f"(train vs eval {[d.name for d in dirs]})"]
    )
    lines = reports.report_batchnorm(tmp_path, find_runs(tmp_path))
    assert lines[-6:] == [
        "| model.norm | epochs |",
        "| --- | --- |",
        "| batch | 2, 1 |",
        "| none | 3, None |",
        "",
        "(train vs eval ['0', '1'])",
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


PNG = b"\x89PNG\r\n\x1a\n fake"


def fitting_runs(
    out: Path, experiment: str, errors: list[tuple[float, float, float]], extra: dict | None = None
) -> None:
    """Runs of a fitting study, one per seed; ``extra``: the other overrides its command set."""
    for job, (train, val, test) in enumerate(errors):
        metrics = {"fit/train_error": train, "fit/val_error": val, "fit/test_error": test,
                   "fit/verdict": "overfit", "stopped_reason": "max_epochs"}  # fmt: skip
        overrides = {"experiment": experiment, **(extra or {}), "seed": job + 1}
        write_run(out / str(job), overrides, metrics)
        (out / str(job) / "plots").mkdir()
        (out / str(job) / "plots" / "learning_curves.png").write_bytes(PNG + bytes([job]))


def test_fitting_per_seed_and_paired_against_the_unregularised_runs(tmp_path, figures) -> None:
    plain = tmp_path / "logs" / "overfit" / "multiruns" / "a"
    cured = tmp_path / "logs" / "overfit_regularized" / "multiruns" / "b"
    fitting_runs(plain, "overfit", [(0.0, 0.05, 0.06), (0.0, 0.04, 0.05), (0.0, 0.06, 0.07)])
    fitting_runs(cured, "overfit_regularized", [(0.01, 0.03, 0.06), (0.01, 0.02, 0.05),
                                                (0.01, 0.04, 0.07)])  # fmt: skip
    lines = reports.report_fitting(cured, find_runs(cured), find_runs(plain))
    assert lines[2] == "| 1 | 0.0100 | 0.0300 | 0.0600 | **overfit** | max_epochs |"
    assert lines[5] == "| mean ± std (3 seeds) | 0.0100 ± 0.0000 | 0.0300 ± 0.0100 | " \
        "0.0600 ± 0.0100 |  |  |"  # fmt: skip
    assert lines[7] == ("**Reading (the fit diagnosis):** `overfit` on 3 of 3 seeds; E_cv - "
                        "E_train is 0.0200 ± 0.0100 (the verdict compares it and E_cv with the "
                        "thresholds of docs/outputs.md).")  # fmt: skip
    # E_cv 0.02 lower on every seed: beyond the spread; E_test the same on every seed: not
    assert lines[9].startswith(
        "**Reading (fit/val_error, paired over 3 seeds against "
        "`experiment=overfit`):** `overfit_regularized` lowers it by 0.0200"
    )
    assert "no setting moves it" in lines[11] and "fit/test_error" in lines[11]
    assert (
        lines[-1]
        == "![learning curves, first seed](studies/overfit_regularized_learning_curves.png)"
    )
    assert (figures / "overfit_regularized_learning_curves.png").read_bytes() == PNG + b"\x00"


def test_the_baseline_is_named_by_the_setting_its_command_gave(tmp_path, figures) -> None:
    plain = tmp_path / "logs" / "overfit_noisy" / "multiruns" / "a"
    cured = tmp_path / "logs" / "overfit_noisy_regularized" / "multiruns" / "b"
    noisy = {"data.label_noise": 0.2, "task_name": "overfit_noisy"}
    fitting_runs(plain, "overfit", [(0.0, 0.2, 0.2)] * 3, noisy)
    fitting_runs(cured, "overfit_regularized", [(0.2, 0.1, 0.1)] * 3)
    lines = reports.report_fitting(cured, find_runs(cured), find_runs(plain))
    assert lines[9].startswith("**Reading (fit/val_error, paired over 3 seeds against "
                               "`experiment=overfit data.label_noise=0.2`):**")  # fmt: skip


def test_imbalance_names_the_rarest_class_and_shows_its_plots(tmp_path, figures) -> None:
    out = tmp_path / "logs" / "imbalance" / "multiruns" / "c"
    job = 0
    for resampler, recall, gain in (("none", 0.2, 0.01), ("random_over", 0.6, 0.02)):
        for seed in (1, 2, 3):
            overrides = {"resampler": resampler, "model.class_weights": "null", "seed": seed}
            metrics = {"test/balanced_acc": 0.8 + (recall + gain * seed) / 10, "test/acc": 0.9,
                       "test/recall/8": recall + gain * seed, "test/recall/1": 0.99}  # fmt: skip
            write_run(out / str(job), overrides, metrics)
            (out / str(job) / "plots").mkdir()
            for plot in ("confusion_matrix", "pr"):
                (out / str(job) / "plots" / f"{plot}_test.png").write_bytes(PNG + bytes([job]))
            job += 1
    lines = reports.report_imbalance(out, find_runs(out))
    header = "| resampler | runs | test/balanced_acc | test/recall/8 | test/acc | "
    assert lines[0] == header + "Δ test/balanced_acc vs baseline | Δ test/recall/8 vs baseline |"
    # recall of 8: +0.41, +0.42, +0.43 over the three seeds (a paired t-test: p ~ 2e-4)
    assert lines[3].endswith("| +0.0420 ± 0.0010 (p<0.001) | +0.4200 ± 0.0100 (p<0.001) |")
    assert "`resampler=random_over` raises it by 0.4200 (p<0.001)" in lines[7]
    assert "rarest class by test recall is `8`" in lines[11]
    assert "(`resampler=random_over`)" in lines[11]
    # the first seed of no remedy (job 0) and of the best remedy (job 3)
    assert (figures / "imbalance_none_confusion_matrix.png").read_bytes() == PNG + b"\x00"
    assert (figures / "imbalance_best_pr.png").read_bytes() == PNG + b"\x03"
    assert lines[-1] == "![pr, resampler=random_over](studies/imbalance_best_pr.png)"


def test_cross_validation_per_fold_and_its_reading(tmp_path: Path) -> None:
    accuracies = {0: [0.98, 0.99], 1: [0.995, 1.0]}  # val/acc per fold, two seeds each
    for job, (fold, seed) in enumerate((f, s) for f in (0, 1) for s in (0, 1)):
        metrics = {"val/acc": accuracies[fold][seed], "test/acc": 0.97 + seed / 100}
        write_run(tmp_path / str(job), {"data.fold": fold, "seed": seed + 1}, metrics)
    lines = reports.report_cross_validation(tmp_path, find_runs(tmp_path))
    assert lines[2:5] == [
        "| 0 | 2 | 0.9850 ± 0.0071 | 0.9750 ± 0.0071 |",
        "| 1 | 2 | 0.9975 ± 0.0035 | 0.9750 ± 0.0071 |",
        "| all 4 runs | 4 | 0.9912 ± 0.0085 | 0.9750 ± 0.0058 |",  # 0.99125, rounded as float
    ]
    assert lines[-1].startswith("**Reading (val/acc over folds):** the folds' mean validation "
                                "accuracies span 0.0125 (0.9850 to 0.9975), while the same runs' "
                                "test accuracy has a std of 0.0058")  # fmt: skip


def test_the_page_has_every_study_its_data_and_time(tmp_path, figures, monkeypatch) -> None:
    logs = tmp_path / "logs"
    fitting_runs(logs / "overfit" / "multiruns" / "a", "overfit", [(0.0, 0.05, 0.06)] * 2)
    fitting_runs(logs / "overfit_regularized" / "multiruns" / "b", "overfit_regularized",
                 [(0.01, 0.03, 0.05)] * 2)  # fmt: skip
    figures.mkdir()
    (figures / "times.json").write_text(json.dumps({"overfit": 60.0, "overfit_regularized": 90}))
    monkeypatch.setattr(studies, "DOCS", tmp_path)
    page = studies.write_doc(studies.STUDIES, logs).read_text()
    assert "a full regeneration took 2 min" in page
    for study in studies.STUDIES:
        assert f"## {study.name}\n" in page
    regularised = page.split("## overfit_regularized")[1].split("## underfit")[0]
    assert "It took 1.5 min." in regularised and "against `experiment=overfit`" in regularised
    assert page.split("## underfit")[1].split("## l1_vs_l2")[0].strip().endswith("Not run yet.")


def test_a_study_not_run_again_keeps_its_section(tmp_path, figures, monkeypatch) -> None:
    logs = tmp_path / "logs"
    fitting_runs(logs / "overfit" / "multiruns" / "a", "overfit", [(0.0, 0.05, 0.06)] * 2)
    fitting_runs(logs / "underfit" / "multiruns" / "b", "underfit", [(0.1, 0.1, 0.1)] * 2)
    figures.mkdir()
    monkeypatch.setattr(studies, "DOCS", tmp_path)
    first = studies.write_doc(studies.STUDIES, logs).read_text()
    assert "## underfit\n" in first and "| 1 | 0.1000 | 0.1000 |" in first
    shutil.rmtree(logs / "underfit")  # its runs gone; overfit's run again, with other numbers
    fitting_runs(logs / "overfit" / "multiruns" / "c", "overfit", [(0.0, 0.07, 0.08)] * 2)
    os.utime(logs / "overfit" / "multiruns" / "c", (2e9, 2e9))  # the newest
    again = studies.write_doc(studies.STUDIES, logs).read_text()
    assert again.split("## underfit")[1] == first.split("## underfit")[1]  # byte for byte
    overfit = again.split("## overfit\n")[1].split("## ")[0]
    assert "| 1 | 0.0000 | 0.0700 | 0.0800 |" in overfit and "0.0500" not in overfit
    assert again.endswith("\n") and first.endswith("\n")


def test_scalar_series_reads_a_jobs_own_event_folder(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(tmp_path / "tensorboard" / "norm=batch,seed=1") as writer:  # a job's
        for step, value in enumerate([0.5, 0.9, 0.97]):
            writer.add_scalar("val/acc", value, step)
    assert reports.scalar_series(tmp_path, "val/acc") == pytest.approx([0.5, 0.9, 0.97])
    assert reports.scalar_series(tmp_path, "val/nope") == []
    assert reports.scalar_series(tmp_path / "none", "val/acc") == []
