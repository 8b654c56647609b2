"""``fitlab-eval ckpt_path=PATH``: test a checkpoint on the test split and write its metrics.

Takes the same ``experiment=``/``data=``/``model=`` overrides as the training run, so the data
split and the model are rebuilt exactly as they were, then Lightning restores the weights.
"""

from __future__ import annotations

import time

from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig

from fitlab import checkpoints
from fitlab.pipeline import build_parts, build_trainer, hydra_entry, scalar_metrics, write_metrics


def evaluate(cfg: DictConfig) -> dict[str, float]:
    start = time.perf_counter()
    ckpt = checkpoints.resolve(cfg)  # checked before the run folder was made; None is refused
    datamodule, model = build_parts(cfg)
    trainer = build_trainer(cfg)
    trainer.test(model, datamodule=datamodule, ckpt_path=str(ckpt), weights_only=True)
    metrics = scalar_metrics(trainer)
    path = write_metrics(
        cfg.paths.output_dir,
        {**metrics, "ckpt_path": str(ckpt.resolve()), "wall_time_s": time.perf_counter() - start},
    )
    rank_zero_info(f"fitlab: metrics written to {path}")
    return metrics


main = hydra_entry("eval", evaluate)

if __name__ == "__main__":
    main()
