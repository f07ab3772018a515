"""TokenMonster binary `.vocab` reader and writer (tokenizers.md §2.1), strict.

Every malformed file is one `InputError` naming the file, the offset and the problem: truncated
data, header values out of range, a key longer than 40 bytes, an id past the vocab size, bytes
after the deleted-token table. Reading is a bounded loop over a byte string, so it cannot hang.
"""

from __future__ import annotations

import struct
from pathlib import Path

from audit.budgets import (MAX_TM_BINARY_BYTES, MAX_VOCAB_IDS, TM_MAX_IDS_WITHOUT_ENTRY, TM_MIN_ENTRY_BYTES,
                           check_file_size, over)
from audit.errors import InputError, stepped
from audit.tokenizers.tokenmonster.vocab import MAX_KEY, NONE_ID, Entry, Vocab

HEADER = 24
TAIL = 256 + 3  # begin-byte table and deleted-token count
MIN_DELETED_BYTES = 1 + 1 + 3 + 4  # len, key ≥ 1, id, score


def _u24(b: bytes, o: int) -> int:
    return b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)


def _p24(v: int) -> bytes:
    return bytes((v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF))


class _Reader:
    def __init__(self, data: bytes, path: Path):
        self.d, self.o, self.path = data, 0, path

    def need(self, n: int, what: str) -> None:
        if self.o + n > len(self.d):
            raise InputError(self.path, f"truncated: {what} at byte {self.o} needs {n} bytes, "
                                        f"only {len(self.d) - self.o} left (file is {len(self.d)} bytes)")

    def u8(self, what: str) -> int:
        self.need(1, what)
        self.o += 1
        return self.d[self.o - 1]

    def u24(self, what: str) -> int:
        self.need(3, what)
        self.o += 3
        return _u24(self.d, self.o - 3)

    def f32(self, what: str) -> float:
        self.need(4, what)
        self.o += 4
        return struct.unpack_from("<f", self.d, self.o - 4)[0]

    def take(self, n: int, what: str) -> bytes:
        self.need(n, what)
        self.o += n
        return self.d[self.o - n:self.o]


@stepped("reading a TokenMonster .vocab")
def read_binary(path: str | Path) -> Vocab:
    path = Path(path)
    check_file_size(path, MAX_TM_BINARY_BYTES, "TokenMonster vocabulary")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror or e}") from None
    return parse_binary(data, path)


def _check_counts(path: Path, size: int, vsize: int, n_info: int) -> None:
    """Header counts against the budget and the file's size, before any table is built."""
    if vsize > MAX_VOCAB_IDS:
        raise over(path, "header vocab size", vsize, MAX_VOCAB_IDS, "ids")
    if vsize > n_info + TM_MAX_IDS_WITHOUT_ENTRY:
        raise InputError(path, f"bad header: {vsize:,} ids for {n_info:,} token entries (at most "
                               f"{TM_MAX_IDS_WITHOUT_ENTRY:,} ids without an entry, audit/budgets.py)")
    room = max(0, size - HEADER - TAIL) // TM_MIN_ENTRY_BYTES
    if n_info > room:
        raise InputError(path, f"bad header: {n_info:,} token entries cannot fit in {size:,} bytes "
                               f"(at most {room:,} at {TM_MIN_ENTRY_BYTES} bytes each)")


def parse_binary(data: bytes, path: Path | None = None) -> Vocab:
    path = path or Path("<bytes>")
    if len(data) < HEADER:
        raise InputError(path, f"truncated: {len(data)} bytes, a TokenMonster header alone is {HEADER}")
    capcode, charset, norm, level, reserve = data[0], data[1], data[2], data[3], data[4]
    unk, vsize, n_rev, n_info, del_id = (_u24(data, o) for o in (8, 11, 14, 17, 20))
    max_len = data[23]
    if capcode > 2:
        raise InputError(path, f"bad header: capcode mode {capcode} (expected 0, 1 or 2)")
    if charset > 2:
        raise InputError(path, f"bad header: charset {charset} (expected 0 none, 1 UTF-8 or 2 UTF-16)")
    if vsize == 0:
        raise InputError(path, "bad header: vocab size 0")
    if n_rev != vsize:
        raise InputError(path, f"bad header: id table size {n_rev} differs from vocab size {vsize}")
    if n_info == 0:
        raise InputError(path, "bad header: 0 token entries")
    if unk != NONE_ID and unk >= vsize:
        raise InputError(path, f"bad header: UNK id {unk} is not below the vocab size {vsize}")
    if del_id != NONE_ID and del_id >= vsize:
        raise InputError(path, f"bad header: delete-token id {del_id} is not below the vocab size {vsize}")
    if max_len == 0 or max_len > MAX_KEY:
        raise InputError(path, f"bad header: max token length {max_len} (expected 1..{MAX_KEY})")
    _check_counts(path, len(data), vsize, n_info)
    r = _Reader(data, path)
    r.o = HEADER
    entries: list[Entry] = []
    for k in range(n_info):
        at = r.o
        n = r.u8(f"entry {k} key length")
        if n == 0:
            raise InputError(path, f"entry {k} at byte {at}: empty key")
        if n > MAX_KEY:
            raise InputError(path, f"entry {k} at byte {at}: key length {n} exceeds {MAX_KEY}")
        key = r.take(n, f"entry {k} key")
        flag, nw = r.u8(f"entry {k} flag"), r.u8(f"entry {k} word count")
        a1, a2, tid = r.u24(f"entry {k} alternative 1"), r.u24(f"entry {k} alternative 2"), r.u24(f"entry {k} id")
        score = r.f32(f"entry {k} score")
        if tid >= vsize:
            raise InputError(path, f"entry {k} at byte {at}: id {tid} is not below the vocab size {vsize}")
        for name, a in (("alternative 1", a1), ("alternative 2", a2)):
            if a != NONE_ID and a >= n_info:
                raise InputError(path, f"entry {k} at byte {at}: {name} index {a} is past the {n_info} entries")
        entries.append(Entry(key, tid, score, flag, nw, a1, a2, bool(flag & 64)))
    begin = r.take(256, "the 256-byte begin-byte table")
    n_del = r.u24("deleted-token count")
    if n_del * MIN_DELETED_BYTES > len(data) - r.o:
        raise InputError(path, f"bad deleted-token count {n_del:,}: at {MIN_DELETED_BYTES} bytes each they need more "
                               f"than the {len(data) - r.o:,} bytes left")
    deleted: list[Entry] = []
    for k in range(n_del):
        at = r.o
        n = r.u8(f"deleted token {k} key length")
        if n == 0 or n > MAX_KEY:
            raise InputError(path, f"deleted token {k} at byte {at}: key length {n} (expected 1..{MAX_KEY})")
        key = r.take(n, f"deleted token {k} key")
        tid, score = r.u24(f"deleted token {k} id"), r.f32(f"deleted token {k} score")
        deleted.append(Entry(key, tid, score))
    if r.o != len(data):
        raise InputError(path, f"{len(data) - r.o} unexpected trailing bytes after the deleted-token table "
                               f"(it ends at byte {r.o}, the file at {len(data)})")
    return Vocab(path=path, fmt="binary", capcode=capcode, charset=charset, normalization=norm,
                 vocab_size=vsize, entries=entries, deleted=deleted,
                 unk_id=None if unk == NONE_ID else unk, delete_id=None if del_id == NONE_ID else del_id,
                 level=level, reserve=reserve, max_token_len=max_len, n_reverse=n_rev, begin_bytes=begin)


def write_binary(v: Vocab) -> bytes:
    """Serialise a vocabulary in the binary layout (used by tests and to convert YAML → binary)."""
    for e in v.entries + v.deleted:
        if not 0 < len(e.key) <= MAX_KEY:
            raise ValueError(f"key {e.key!r} has length {len(e.key)}, expected 1..{MAX_KEY}")
    out = bytearray([v.capcode, v.charset, v.normalization, v.level, v.reserve, 0, 0, 0])
    out += _p24(NONE_ID if v.unk_id is None else v.unk_id)
    out += _p24(v.vocab_size) + _p24(v.n_reverse or v.vocab_size) + _p24(len(v.entries))
    out += _p24(NONE_ID if v.delete_id is None else v.delete_id)
    out.append(v.max_token_len or max(len(e.key) for e in v.entries))
    for e in v.entries:
        flag = e.flag | (64 if e.special else 0)
        out += bytes([len(e.key)]) + e.key + bytes([flag, e.n_words])
        out += _p24(e.alt1) + _p24(e.alt2) + _p24(e.id) + struct.pack("<f", e.score)
    begin = v.begin_bytes
    if begin is None:
        b = bytearray(256)
        for e in v.entries:
            b[e.key[0]] = 1
        begin = bytes(b)
    out += begin + _p24(len(v.deleted))
    for e in v.deleted:
        out += bytes([len(e.key)]) + e.key + _p24(e.id) + struct.pack("<f", e.score)
    return bytes(out)
