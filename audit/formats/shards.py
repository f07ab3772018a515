"""Token shards (`fineweb_{val,train}_*.bin`) and byte sidecars (`fineweb_val_bytes_*.bin`).

Layout: 256 little-endian int32 header words ([0] magic 20240520, [1] version 1, [2] count),
then `count` little-endian uint16 values. Nothing may follow. Reads are memory-mapped.
"""

from __future__ import annotations

import glob as _glob
from pathlib import Path

import numpy as np

from audit.atomic import write_bytes_atomic
from audit.errors import InputError, stepped

MAGIC = 20240520
VERSION = 1
HEADER_WORDS = 256
HEADER_BYTES = HEADER_WORDS * 4


@stepped("reading a token shard header")
def read_header(path: str | Path) -> int:
    """Validate the header and file length; return the token count."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    if not path.is_file():
        raise InputError(path, "not a regular file")
    try:
        size = path.stat().st_size
        if size < HEADER_BYTES:
            raise InputError(path, f"truncated shard: {size} bytes, shorter than the {HEADER_BYTES}-byte header")
        header = np.fromfile(path, dtype="<i4", count=HEADER_WORDS)
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror or e}") from None
    if int(header[0]) != MAGIC:
        raise InputError(path, f"wrong magic {int(header[0])} (expected {MAGIC}): not a token shard")
    if int(header[1]) != VERSION:
        raise InputError(path, f"unsupported shard version {int(header[1])} (expected {VERSION})")
    count = int(header[2])
    if count < 0:
        raise InputError(path, f"negative token count {count} in header")
    expected = HEADER_BYTES + 2 * count
    if size < expected:
        raise InputError(path, f"truncated shard: header says {count:,} tokens "
                               f"({expected:,} bytes) but the file has {size:,} bytes")
    if size > expected:
        raise InputError(path, f"token count mismatch: header says {count:,} tokens but "
                               f"{size - expected:,} extra bytes follow them")
    return count


@stepped("mapping a token shard")
def read_shard(path: str | Path) -> np.ndarray:
    """The shard's uint16 values, memory-mapped read-only."""
    count = read_header(path)
    if count == 0:
        return np.zeros(0, dtype=np.uint16)
    # A plain ndarray view of the map: lazy like np.memmap, without the subclass overhead that
    # makes fancy indexing with it several times slower.
    try:
        return np.memmap(path, dtype="<u2", mode="r", offset=HEADER_BYTES, shape=(count,)).view(np.ndarray)
    except OSError as e:  # a file that changed under us, a file system without mmap
        raise InputError(path, f"cannot map: {e.strerror or e}") from None


def shard_bytes(values: np.ndarray) -> bytes:
    values = np.asarray(values)
    if values.size and (values.min() < 0 or values.max() > 0xFFFF):
        raise ValueError("shard values must fit in uint16")
    header = np.zeros(HEADER_WORDS, dtype="<i4")
    header[0], header[1], header[2] = MAGIC, VERSION, values.size
    return header.tobytes() + values.astype("<u2").tobytes()


def write_shard(path: str | Path, values: np.ndarray) -> None:
    write_bytes_atomic(path, shard_bytes(values))


def resolve_glob(pattern: str | Path) -> list[Path]:
    """Sorted files matching a glob (or the single file named)."""
    p = Path(pattern)
    if p.is_file():
        return [p]
    files = sorted(Path(f) for f in _glob.glob(str(pattern)))
    if not files:
        raise InputError(pattern, "no shard matches this path or glob")
    return files


def read_stream(pattern: str | Path) -> np.ndarray:
    """All shards of a glob, concatenated in name order (one shard: no copy)."""
    files = resolve_glob(pattern)
    parts = [read_shard(f) for f in files]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts)


def check_ids(tokens: np.ndarray, vocab_size: int, path: str | Path, max_id: int | None = None) -> None:
    """Every id must be < vocab_size (vectorised); max_id: the stream's maximum, when known."""
    if tokens.size == 0:
        return
    # (self-contained: the exported training script carries this function)
    mx = int(tokens.max()) if max_id is None else max_id
    if mx >= vocab_size:
        bad = np.flatnonzero(tokens >= vocab_size)
        raise InputError(path, f"id {int(tokens[bad[0]])} at position {int(bad[0]):,} is out of range "
                               f"for vocab size {vocab_size} ({bad.size:,} ids out of range)")


def split_documents(tokens: np.ndarray, bos_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Document spans of a BOS-delimited stream, vectorised.

    Returns (starts, ends): document k is tokens[starts[k]:ends[k]], BOS included at starts[k].
    Tokens before the first BOS (none in a well-formed stream) are not a document.
    """
    return spans_from_bos(np.flatnonzero(np.asarray(tokens) == bos_id), len(tokens))


def spans_from_bos(starts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the documents whose BOS positions are `starts` in a stream of n ids."""
    ends = np.empty_like(starts)
    if starts.size:
        ends[:-1] = starts[1:]
        ends[-1] = n
    return starts, ends
