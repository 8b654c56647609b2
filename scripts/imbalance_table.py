"""The imbalance table of docs/imbalance.md from a multirun of ``experiment=imbalance``.

    python scripts/imbalance_table.py logs/imbalance/multiruns/<stamp>

One row per (resampler, class weights): test balanced accuracy and the recall of the class with
the fewest training images, mean +- sample standard deviation over the seeds, as Markdown.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from fitlab.data import ImageDataModule
from fitlab.models.classifier import metric_key


def rarest_class(job: Path) -> tuple[str, int]:
    """The class with the fewest training images, from the data config the job ran with."""
    data = OmegaConf.to_container(OmegaConf.load(job / ".hydra" / "config.yaml").data)
    for key in ("_target_", "_recursive_", "resampler"):
        data.pop(key, None)
    datamodule = ImageDataModule(**data)
    datamodule.setup("test")
    counts = datamodule.class_counts
    rarest = int(np.argmin(counts))
    return datamodule.class_names[rarest], counts[rarest]


def main(sweep: Path) -> None:
    # Job folders are numbered in sweep order: rows come out in the order the sweep lists them.
    jobs = sorted((p.parent for p in sweep.glob("*/metrics.json")), key=lambda p: int(p.name))
    name, count = rarest_class(jobs[0])
    cells: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for job in jobs:
        overrides = dict(o.split("=", 1) for o in OmegaConf.load(job / ".hydra" / "overrides.yaml"))
        metrics = json.loads((job / "metrics.json").read_text())
        key = (overrides.get("resampler", "none"), overrides.get("model.class_weights", "null"))
        cells[key].append(
            (metrics["test/balanced_acc"], metrics[f"test/recall/{metric_key(name)}"])
        )
    print(f"| resampler | class weights | test balanced acc | recall of '{name}' ({count} "
          "training images) | runs |")  # fmt: skip
    print("| --- | --- | --- | --- | --- |")
    for (resampler, weights), values in cells.items():
        acc, recall = np.array(values).T
        print(
            f"| {resampler} | {'balanced' if weights == 'balanced' else 'none'} "
            f"| {acc.mean():.3f} ± {acc.std(ddof=1):.3f} "
            f"| {recall.mean():.3f} ± {recall.std(ddof=1):.3f} | {len(values)} |"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
