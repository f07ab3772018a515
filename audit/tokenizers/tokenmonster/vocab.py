"""The parsed TokenMonster vocabulary, common to the binary `.vocab` and the `.yaml` readers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

NONE_ID = 0xFFFFFF  # "no such id" in the binary format
MAX_KEY = 40  # keys longer than this make a vocabulary invalid
CHARSETS = {0: "none", 1: "utf-8", 2: "utf-16"}


@dataclass
class Entry:
    key: bytes  # the token's bytes (capcode-encoded text, or raw bytes)
    id: int
    score: float = 0.0
    flag: int = 0
    n_words: int = 0
    alt1: int = NONE_ID
    alt2: int = NONE_ID
    special: bool = False


@dataclass
class Vocab:
    path: Path | None
    fmt: str  # "binary" | "yaml"
    capcode: int
    charset: int
    normalization: int
    vocab_size: int
    entries: list[Entry]
    deleted: list[Entry] = field(default_factory=list)
    unk_id: int | None = None
    delete_id: int | None = None
    level: int = 0
    reserve: int = 0
    max_token_len: int = 0
    n_reverse: int = 0
    begin_bytes: bytes | None = None
    id_bytes: list[bytes] = field(default_factory=list)
    defined: np.ndarray | None = None  # bool per id: at least one entry carries it
    extra: dict = field(default_factory=dict)  # YAML-only top-level fields kept for the record

    def __post_init__(self):
        if not self.id_bytes:
            self.rebuild()

    def rebuild(self) -> None:
        """id → bytes, entry by entry in file order: the LAST entry with an id wins."""
        table: list[bytes] = [b""] * self.vocab_size
        defined = np.zeros(self.vocab_size, dtype=bool)
        for e in self.entries:
            table[e.id] = e.key
            defined[e.id] = True
        self.id_bytes = table
        self.defined = defined
        if not self.n_reverse:
            self.n_reverse = self.vocab_size
        if not self.max_token_len and self.entries:
            self.max_token_len = max(len(e.key) for e in self.entries)

    @property
    def charset_name(self) -> str:
        return CHARSETS[self.charset]

    @property
    def special_ids(self) -> list[int]:
        return sorted({e.id for e in self.entries if e.special})

    def alias_groups(self) -> dict[bytes, list[int]]:
        """Byte strings carried by more than one id (after last-wins): bytes → ids, ascending."""
        by: dict[bytes, list[int]] = {}
        for i, b in enumerate(self.id_bytes):
            if self.defined[i] and b:
                by.setdefault(b, []).append(i)
        return {b: ids for b, ids in by.items() if len(ids) > 1}

    def duplicate_entries(self) -> list[tuple[int, bytes, bytes]]:
        """(id, overridden key, winning key) for ids carried by more than one entry."""
        first: dict[int, bytes] = {}
        out = []
        for e in self.entries:
            if e.id in first and first[e.id] != e.key:
                out.append((e.id, first[e.id], self.id_bytes[e.id]))
            first.setdefault(e.id, e.key)
        return out
