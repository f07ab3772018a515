"""The one error type that means "could not run" (exit code 2), and the step tag the CLI's
last-resort handler uses to name the file and step of an unexpected failure.

Every reader raises `InputError(path, problem)` for bad input; the CLI prints it as a single
line `error: PATH: PROBLEM` and exits 2, with no traceback and nothing written. A reader also
runs inside `error_step("reading …", path)`: should anything else escape it (a bug), the exception
carries that file and step, so even the catch-all line says where it happened.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class InputError(Exception):
    """Bad or unreadable input: names the file and the problem in one line."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = " ".join(str(problem).split())  # always one line
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return f"{self.path}: {self.problem}" if self.path else self.problem


STEP_ATTR = "golfcheck_step"  # (file or None, step) set on an unexpected exception


@contextmanager
def error_step(what: str, path: str | Path | None = None) -> Iterator[None]:
    """Tag any unexpected exception leaving the block with (path, what); the innermost tag wins."""
    try:
        yield
    except InputError:
        raise
    except Exception as e:
        if getattr(e, STEP_ATTR, None) is None:
            try:
                setattr(e, STEP_ATTR, (None if path is None else str(path), what))
            except (AttributeError, TypeError):  # an exception type without a __dict__
                pass
        raise


def describe_unexpected(e: BaseException) -> str:
    """The catch-all's one line: `FILE: internal error while STEP: Name: message`."""
    msg = f"internal error: {type(e).__name__}: {' '.join(str(e).split())}"[:300]
    where = getattr(e, STEP_ATTR, None)
    if not where:
        return msg
    path, what = where
    body = f"internal error while {what}: {type(e).__name__}: {' '.join(str(e).split())}"[:300]
    return f"{path}: {body}" if path else body


def stepped(what: str):
    """Decorator for a reader whose first argument is the path: runs it inside `error_step(what, path)`."""
    def deco(fn):
        @functools.wraps(fn)
        def inner(path, *args, **kwargs):
            with error_step(what, path):
                return fn(path, *args, **kwargs)
        return inner
    return deco
