"""The one error path for user mistakes.

Code raises :class:`FitlabError` for anything a user can fix (a bad config value, a missing
folder, an unreadable checkpoint). The entry points turn it into one line on stderr,
``fitlab: error: <what is wrong>; <how to fix it>``, and exit status 2. Bugs stay tracebacks.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import NoReturn

EXIT_USAGE = 2


class FitlabError(Exception):
    """A user mistake: ``what`` is wrong and ``fix`` says how to put it right."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(f"{what}; {fix}")
        self.what = what
        self.fix = fix


def find_fitlab_error(exc: BaseException | None) -> FitlabError | None:
    """Return the FitlabError behind ``exc`` (Hydra's instantiate wraps the exceptions it meets)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, FitlabError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def report(err: FitlabError, exc: BaseException | None = None) -> None:
    """Print the one-line message; under HYDRA_FULL_ERROR=1 the traceback of ``exc`` (what
    raised it, by default ``err``) instead."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        traceback.print_exception(exc or err)
        sys.stderr.flush()
        return
    message = str(err).replace("\n", " ")
    print(f"fitlab: error: {message}", file=sys.stderr, flush=True)


def exit_usage(err: FitlabError, exc: BaseException | None = None) -> NoReturn:
    """A user mistake: :func:`report` it, then exit with status 2, traceback shown or not."""
    report(err, exc)
    sys.exit(EXIT_USAGE)
