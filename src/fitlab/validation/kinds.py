"""The words of the rule tables: what a value must be (a :class:`Kind`) and which key must be
it (a :class:`Rule`). Kinds that only the Trainer's keys take live in
:mod:`~fitlab.validation.trainer`.
"""

from __future__ import annotations

import math
import re
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from fitlab.models.settings import FIT_METRICS


@dataclass(frozen=True)
class Kind:
    """What a value must be: ``accepts`` tests it, ``words`` says it in the error message."""

    accepts: Callable[[Any], bool]
    words: str
    detail: str = ""  # more for the fix than fits in the message, e.g. a long list of names


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (is_int(v) or isinstance(v, float)) and math.isfinite(v)


def integer(low: int, high: int | None = None) -> Kind:
    words = f"an integer >= {low}" + (f" and <= {high}" if high is not None else "")
    return Kind(lambda v: is_int(v) and v >= low and (high is None or v <= high), words)


def number(low: float, high: float | None = None, *, above: bool = False) -> Kind:
    """A finite number >= low (> low with ``above``), and < high when high is given."""
    words = f"a number in [{low}, {high})" if high else f"a number {'>' if above else '>='} {low}"

    def accepts(v: Any) -> bool:
        return _is_number(v) and (v > low if above else v >= low) and (high is None or v < high)

    return Kind(accepts, words)


def one_of(options: Iterable[Any]) -> Kind:
    options = list(options)
    words = ", ".join(str(o) for o in options)
    return Kind(lambda v: v in options, f"one of {words}" if len(options) > 1 else words)


def either(*kinds: Kind) -> Kind:
    return Kind(lambda v: any(k.accepts(v) for k in kinds), " or ".join(k.words for k in kinds))


def named(options: Iterable[str], words: str = "", detail: str = "") -> Kind:
    """An option name, in any case (as Lightning reads it), or a ``_target_`` config of a class."""
    options = list(options)

    def accepts(v: Any) -> bool:
        return (isinstance(v, str) and v.lower() in options) or is_target(v)

    return Kind(accepts, words or f"one of {', '.join(options)}", detail)


def is_target(v: Any) -> bool:
    return isinstance(v, DictConfig) and "_target_" in v  # its import is checked by check_targets


BOOLEAN = Kind(lambda v: isinstance(v, bool), "true or false")
PROBABILITY = number(0, 1)  # [0, 1): a dropout of 1 drops everything
PENALTY = number(0)
SEED = integer(0, 2**32 - 1)  # what NumPy and Lightning accept
NAME = Kind(lambda v: isinstance(v, str) and re.fullmatch(r"[\w.-]+", v) is not None, "a name")
# Only what fit logs: the checkpoint, early stopping and the sweepers follow it while training.
METRIC = Kind(
    lambda v: v in FIT_METRICS,
    "a metric the model logs during fit",
    f"one of {', '.join(FIT_METRICS)}; test/* metrics exist only after fit, and choosing the "
    "best epoch or trial by the test set would not be an honest test",
)
MODE = one_of(["min", "max"])
FRACTION = Kind(lambda v: isinstance(v, float) and 0 < v <= 1, "a fraction in (0, 1]")
BATCHES = either(integer(0), Kind(lambda v: isinstance(v, float) and 0 <= v <= 1, "a fraction"))
PATH = Kind(lambda v: isinstance(v, str) and v != "", "a path")
FINITE = Kind(_is_number, "a finite number")
SIGNAL = Kind(lambda v: v in signal.Signals.__members__, "a signal name such as SIGUSR1")
# An int, or its digits as text: oc.env interpolations (the SLURM launcher's) give text.
COUNT = Kind(lambda v: integer(1).accepts(int(v) if str(v).isdigit() else v), "an integer >= 1")


@dataclass(frozen=True)
class Rule:
    key: str
    kind: Kind
    null: bool = False  # null is allowed
    blocks: bool = False  # one value for every CNN block, or a list with one per block


def switches(section: str, names: str, null: bool = False) -> tuple[Rule, ...]:
    """A true-or-false rule for each of ``names`` (space-separated) under ``section``."""
    return tuple(Rule(f"{section}.{name}", BOOLEAN, null=null) for name in names.split())
