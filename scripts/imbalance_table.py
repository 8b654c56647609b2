"""The imbalance table of docs/imbalance.md from a multirun of ``experiment=imbalance``.

    python scripts/imbalance_table.py logs/imbalance/multiruns/<stamp>

One row per (resampler, class weights): test balanced accuracy and the recall of the class with
the fewest training images, mean +- sample standard deviation over the seeds, as Markdown.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from fitlab.data import ImageDataModule
from fitlab.models.classifier import metric_key
from fitlab.summarize import find_runs, group_runs
from fitlab.tables import markdown_table, mean_std


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
    # Job folders in sweep order (job 10 after job 9): rows come out as the sweep lists them.
    runs = find_runs(sweep)
    name, count = rarest_class(sweep / runs[0].path)
    metrics = ("test/balanced_acc", f"test/recall/{metric_key(name)}")
    groups = group_runs(runs, ["resampler", "model.class_weights"])
    rows = []
    for (resampler, weights), members in groups.items():
        values = [mean_std([float(r.metrics[m]) for r in members], digits=3) for m in metrics]
        weighting = "balanced" if weights == "balanced" else "none"
        rows.append([resampler or "none", weighting, *values, str(len(members))])
    header = ["resampler", "class weights", "test balanced acc"]
    header += [f"recall of '{name}' ({count} training images)", "runs"]
    print("\n".join(markdown_table(header, rows)))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
