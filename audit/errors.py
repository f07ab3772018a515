"""The one error type that means "could not run" (exit code 2).

Every reader raises `InputError(path, problem)` for bad input; the CLI prints it as a single
line `error: PATH: PROBLEM` and exits 2, with no traceback and nothing written.
"""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad or unreadable input: names the file and the problem in one line."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = " ".join(str(problem).split())  # always one line
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return f"{self.path}: {self.problem}" if self.path else self.problem
