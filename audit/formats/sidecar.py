"""Byte sidecars (`fineweb_val_bytes_XXXXXX.bin`, CaseOps records): the shard layout, one uint16
per token giving the original UTF-8 byte cost of that position."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from audit.errors import InputError
from audit.formats.shards import read_shard

_SHARD = re.compile(r"^(?P<prefix>.*_val)_(?P<num>\d+)\.bin$")


def is_sidecar(path: str | Path) -> bool:
    return "_bytes_" in Path(path).name


def sidecar_path(shard: str | Path) -> Path:
    """`…/fineweb_val_000000.bin` → `…/fineweb_val_bytes_000000.bin`."""
    shard = Path(shard)
    m = _SHARD.match(shard.name)
    if not m:
        return shard.with_name(shard.stem + "_bytes" + shard.suffix)
    return shard.with_name(f"{m['prefix']}_bytes_{m['num']}.bin")


def find_sidecars(shards: list[Path]) -> list[Path] | None:
    """The sidecar of every shard, or None when there are none; a partial set is an input error."""
    paths = [sidecar_path(s) for s in shards]
    present = [p.exists() for p in paths]
    if not any(present):
        return None
    if not all(present):
        missing = paths[present.index(False)]
        raise InputError(missing, "byte sidecar missing while other val shards have one")
    return paths


def read_sidecars(paths: list[Path]) -> np.ndarray:
    parts = [read_shard(p) for p in paths]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
