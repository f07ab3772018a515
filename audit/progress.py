"""Progress for long passes: a rich bar on a terminal's stderr, silent otherwise."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator, Protocol


class Progress(Protocol):
    def advance(self, n: int = 1) -> None: ...


class _Silent:
    def advance(self, n: int = 1) -> None:
        pass


class _Bar:
    def __init__(self, prog, task):
        self._p, self._t = prog, task

    def advance(self, n: int = 1) -> None:
        self._p.advance(self._t, n)


_ENABLED = True


def set_enabled(on: bool) -> None:
    global _ENABLED
    _ENABLED = on


@contextmanager
def progress(description: str, total: int | None) -> Iterator[Progress]:
    if not (_ENABLED and sys.stderr.isatty()):
        yield _Silent()
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress,
                               TextColumn, TimeElapsedColumn)

    with RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=Console(stderr=True), transient=True) as p:
        yield _Bar(p, p.add_task(description, total=total))
