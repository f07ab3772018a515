"""Atomic writes: a report or a fixed meta appears whole or not at all, and never lands on
something it must not replace.

`check_outputs` is called once per run before any work: an output may not be one of the run's
inputs, an existing path that is not a regular file (FIFO, device, folder, link), or another
output of the same run. A previous report of the same name is simply replaced (atomically).
`write_bytes_atomic` refuses a non-regular target again at write time.
"""

from __future__ import annotations

import glob
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterable, Mapping

from audit.errors import InputError, stepped

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symbolic link"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def non_regular(path: str | Path) -> str | None:
    """What an existing non-regular path is ('a FIFO', …); None if absent or a regular file."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _identity(path: str | Path) -> tuple:
    """What two paths share when they name one file: (device, inode) if it exists, else the
    resolved absolute path (so `a/../x` and `x` collide before either exists)."""
    real = os.path.realpath(path)  # `a/missing/../x` is `a/x`, as a later write would see it
    try:
        st = os.stat(real)
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        return ("path", real)


def _expand(item: str | Path) -> list[str]:
    """An input as the paths it names: a glob is expanded, anything else kept as is."""
    s = os.fspath(item)
    if not os.path.lexists(s) and glob.has_magic(s):
        return glob.glob(s)
    return [s]


def check_outputs(outputs: Mapping[str, str | Path | None], inputs: Iterable[str | Path | None]) -> None:
    """Refuse a run whose outputs (option name → path; None or '-' skipped) would overwrite an
    input (file, or a file matched by an input glob), a non-regular path, or each other."""
    taken: dict[tuple, str] = {}
    for item in inputs:
        if item is None or str(item) in ("", "-"):
            continue
        for p in _expand(item):
            if os.path.exists(p):
                taken.setdefault(_identity(p), f"the input {p}")
    for option, path in outputs.items():
        if path is None or str(path) == "-":
            continue
        kind = non_regular(path)
        if kind is not None:
            raise InputError(path, f"{option} refuses to write here: it exists and is {kind}, not a regular file")
        ident = _identity(path)
        if ident in taken:
            raise InputError(path, f"{option} would overwrite {taken[ident]} of this run; choose another path")
        taken[ident] = f"the {option} output"


@stepped("writing an output")
def write_bytes_atomic(path: str | Path, data: bytes, *, overwrite: bool = True) -> None:
    path = Path(path)
    kind = non_regular(path)
    if kind is not None:
        raise InputError(path, f"refusing to write a report here: it exists and is {kind}, not a regular file")
    if not overwrite and path.exists():
        raise FileExistsError(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_replace(path, data, overwrite)
    except FileExistsError:
        if not overwrite:
            raise
        raise InputError(path, "cannot write: a path component exists and is not a folder") from None
    except OSError as e:  # a read-only folder, a parent that is a file, a full disk
        raise InputError(path, f"cannot write: {e.strerror or e}") from None


def _write_replace(path: Path, data: bytes, overwrite: bool) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if path appeared meanwhile
            os.unlink(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | Path, text: str, *, overwrite: bool = True) -> None:
    # backslashreplace: a file name that is not UTF-8 (surrogate-escaped by Python) is written as
    # its `\udcXX` escape instead of failing the whole report
    write_bytes_atomic(path, text.encode("utf-8", "backslashreplace"), overwrite=overwrite)
