"""``fitlab-bench``: read the flags; measure (:mod:`~fitlab.bench.epochs` or
:mod:`~fitlab.bench.whole_run`), print the table, write the JSON.

Lightning, torch and fitlab's pipeline are imported where they are used: ``python -m
fitlab.bench.twin`` passes through this package and must not load more than it needs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fitlab.errors import FitlabError, exit_usage


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fitlab-bench",
        description="The same training through fitlab and through a plain PyTorch loop.",
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON to this file")
    parser.add_argument("--device", default="cpu", help="cpu, gpu or auto (default: cpu)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=None, help="resize digits (default 8)")
    parser.add_argument("--channels", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--warmup-epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--train-copies", type=int, default=1, help="tile the training images K times"
    )
    parser.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument(
        "--run-overrides",
        nargs="*",
        default=[],
        help="overrides for the timed fitlab-train run (default: none, the default run); "
        "with --whole-run, for fitlab-train and its twin",
    )
    whole = parser.add_argument_group(
        "whole runs", "--whole-run: instead of the epochs, whole fitlab-train processes against "
        "their plain twin (python -m fitlab.bench.twin), and where fitlab-train's time goes"
    )  # fmt: skip
    whole.add_argument("--whole-run", action="store_true")
    whole.add_argument("--pairs", type=int, default=4, help="pairs of processes (default: 4)")
    whole.add_argument("--whole-run-epochs", type=int, default=20, help="epochs (default: 20)")
    parser.add_argument("--skip-run", action="store_true", help="skip the timed fitlab-train run")
    parser.add_argument(
        "--skip-floor", action="store_true", help="skip the Lightning floor (no callbacks/logger)"
    )
    args = parser.parse_args(argv)
    if args.epochs <= args.warmup_epochs:
        parser.error("--epochs must be larger than --warmup-epochs")
    if args.pairs < 1 or args.whole_run_epochs < 1:
        parser.error("--pairs and --whole-run-epochs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.whole_run:
        from fitlab.bench import whole_run

        try:
            result = whole_run.measure(args)
        except FitlabError as err:  # a run failed; its own message ends its output
            exit_usage(err)
        whole_run.print_table(result)
    else:
        from fitlab.bench import epochs

        result = epochs.measure(args)
        epochs.print_table(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
