"""Per-token byte metadata (`*.meta.npz`), schema-checked and loaded with allow_pickle=False."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audit.atomic import write_bytes_atomic
from audit.budgets import MAX_VOCAB_IDS
from audit.errors import InputError, stepped
from audit.formats.npz import load_npz

ARRAY_KEYS = {"base_bytes": np.int16, "has_leading_space": np.bool_, "is_boundary_token": np.bool_}
SCALAR_KEYS = ("format_version", "tokenizer_kind", "source_model_name", "vocab_size")


@dataclass
class MetaTable:
    base_bytes: np.ndarray  # int16, one per id
    has_leading_space: np.ndarray  # bool
    is_boundary_token: np.ndarray  # bool
    tokenizer_kind: str = ""
    source_model_name: str = ""
    vocab_size: int = 0
    format_version: int = 1
    path: Path | None = field(default=None, compare=False)

    def __post_init__(self):
        self.base_bytes = np.asarray(self.base_bytes)
        self.has_leading_space = np.asarray(self.has_leading_space, dtype=bool)
        self.is_boundary_token = np.asarray(self.is_boundary_token, dtype=bool)
        if not self.vocab_size:
            self.vocab_size = len(self.base_bytes)

    def __len__(self) -> int:
        return len(self.base_bytes)

    def copy(self) -> "MetaTable":
        return MetaTable(self.base_bytes.copy(), self.has_leading_space.copy(),
                         self.is_boundary_token.copy(), self.tokenizer_kind,
                         self.source_model_name, self.vocab_size, self.format_version)

    def equals(self, other: "MetaTable") -> bool:
        return (len(self) == len(other)
                and np.array_equal(self.base_bytes.astype(np.int64), other.base_bytes.astype(np.int64))
                and np.array_equal(self.has_leading_space, other.has_leading_space)
                and np.array_equal(self.is_boundary_token, other.is_boundary_token))

    def to_npz_bytes(self) -> bytes:
        if len(self.base_bytes) and (self.base_bytes.min() < -32768 or self.base_bytes.max() > 32767):
            raise ValueError("base_bytes does not fit in int16")
        buf = io.BytesIO()
        np.savez(buf, format_version=np.int64(self.format_version),
                 tokenizer_kind=np.str_(self.tokenizer_kind),
                 source_model_name=np.str_(self.source_model_name),
                 vocab_size=np.int64(self.vocab_size),
                 base_bytes=self.base_bytes.astype(np.int16),
                 has_leading_space=self.has_leading_space.astype(bool),
                 is_boundary_token=self.is_boundary_token.astype(bool))
        return buf.getvalue()

    def save(self, path: str | Path, *, overwrite: bool = False) -> None:
        """Write atomically; refuses to overwrite unless asked."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise InputError(path, "refusing to overwrite an existing file; choose a new path")
        write_bytes_atomic(path, self.to_npz_bytes(), overwrite=overwrite)


def _scalar(a: np.ndarray):
    """A 0-d member as a Python value; anything else is kept as the array (then refused by type)."""
    return a.item() if a.ndim == 0 else a


@stepped("reading a meta archive")
def load_meta(path: str | Path) -> MetaTable:
    """Read a meta archive with every budget checked before allocation (audit/formats/npz.py)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    if not path.is_file():
        raise InputError(path, "not a regular file")
    if not zipfile.is_zipfile(path):
        raise InputError(path, "not an .npz archive (zip signature missing or archive damaged)")
    members = load_npz(path, set(ARRAY_KEYS) | set(SCALAR_KEYS), max_items=MAX_VOCAB_IDS)
    missing = [k for k in ARRAY_KEYS if k not in members]
    if missing:
        raise InputError(path, f"missing key(s) {', '.join(missing)} (have: {', '.join(sorted(members)) or 'none'})")
    arrays = {}
    for k in ARRAY_KEYS:
        a = members[k]
        if a.ndim != 1:
            raise InputError(path, f"array {k!r} has shape {a.shape}, expected one dimension")
        arrays[k] = a
    scalars = {k: _scalar(members[k]) for k in SCALAR_KEYS if k in members}
    n = {k: len(a) for k, a in arrays.items()}
    if len(set(n.values())) != 1:
        raise InputError(path, "array lengths differ: " + ", ".join(f"{k}={v}" for k, v in n.items()))
    bb = arrays["base_bytes"]
    if not np.issubdtype(bb.dtype, np.integer) or bb.dtype == np.bool_:
        raise InputError(path, f"base_bytes has dtype {bb.dtype}, expected an integer type")
    for k in ("has_leading_space", "is_boundary_token"):
        a = arrays[k]
        if a.dtype != np.bool_:
            if np.issubdtype(a.dtype, np.integer) and set(np.unique(a).tolist()) <= {0, 1}:
                arrays[k] = a.astype(bool)
            else:
                raise InputError(path, f"{k} has dtype {a.dtype}, expected bool")
    if len(bb) == 0:
        raise InputError(path, "empty meta: zero ids")
    vs = scalars.get("vocab_size")
    if vs is not None and (isinstance(vs, (bool, np.bool_)) or not isinstance(vs, (int, np.integer))):
        raise InputError(path, f"vocab_size is {str(vs)[:40]!r}, expected an integer")
    if vs is not None and not 0 <= int(vs) <= MAX_VOCAB_IDS:
        raise InputError(path, f"vocab_size {int(vs):,} is outside 0..{MAX_VOCAB_IDS:,} (audit/budgets.py)")
    fv = scalars.get("format_version", 1)
    fv = int(fv) if isinstance(fv, (int, np.integer)) and not isinstance(fv, (bool, np.bool_)) and abs(int(fv)) < 2**31 else -1
    return MetaTable(base_bytes=bb, has_leading_space=arrays["has_leading_space"],
                     is_boundary_token=arrays["is_boundary_token"],
                     tokenizer_kind=str(scalars.get("tokenizer_kind", "")),
                     source_model_name=str(scalars.get("source_model_name", "")),
                     vocab_size=int(vs) if vs is not None else len(bb),
                     format_version=fv,
                     path=path)
