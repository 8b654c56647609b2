"""``fitlab-eval ckpt_path=PATH``: test a checkpoint on the test split and write its metrics.

Takes the same ``experiment=``/``data=``/``model=`` overrides as the training run, so the data
split and the model are rebuilt exactly as they were, then Lightning restores the weights.
``main`` checks the command line before torch and Lightning load, as ``fitlab-train`` does.
"""

from __future__ import annotations

import time
import warnings

from omegaconf import DictConfig

from fitlab.entry import eval_main as main
from fitlab.run import checkpoints
from fitlab.run.folders import write_metrics


def evaluate(cfg: DictConfig) -> dict[str, float]:
    from lightning.pytorch.utilities import rank_zero_info

    from fitlab.callbacks.per_class import prints_test_table
    from fitlab.run.pipeline import build_parts, build_trainer, scalar_metrics

    start = time.perf_counter()
    ckpt = checkpoints.resolve(cfg)  # checked before the run folder was made; None is refused
    datamodule, model = build_parts(cfg)
    trainer = build_trainer(cfg)
    with warnings.catch_warnings():
        # The checkpoint holds the states of the training callbacks (early stopping, the
        # checkpoint, ...); testing it needs none of them, and Lightning would list them all.
        warnings.filterwarnings("ignore", message=r"Be aware that when using `ckpt_path`")
        trainer.test(
            model,
            datamodule=datamodule,
            ckpt_path=str(ckpt),
            weights_only=True,
            verbose=not prints_test_table(trainer),  # one test table, rounded: fitlab's
        )
    metrics = scalar_metrics(trainer)
    path = write_metrics(
        cfg.paths.output_dir,
        {**metrics, "ckpt_path": str(ckpt.resolve()), "wall_time_s": time.perf_counter() - start},
    )
    rank_zero_info(f"fitlab: metrics written to {path}")
    return metrics


if __name__ == "__main__":
    main()
