"""The tokenizer interface the accounting engine and the audits rely on.

A backend knows its ids, what bytes each id contributes, how a whole document decodes
(exactly, as bytes), its special ids, and the best per-token metadata the evaluator's
formula can express for it. The engine knows no backend by name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from audit.formats.meta import MetaTable


@dataclass
class SpecialIds:
    bos: int | None = None
    eos: int | None = None
    pad: int | None = None
    unk: int | None = None
    # ids that decode to nothing and act as document/segment boundaries (control, unused, …)
    control: frozenset[int] = field(default_factory=frozenset)


class Tokenizer(ABC):
    kind: str = ""  # "sentencepiece" | "purebyte" | "tokenmonster"
    name: str = ""
    path: Path | None = None

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids the artifact defines (ids 0..vocab_size-1)."""

    @property
    @abstractmethod
    def special(self) -> SpecialIds: ...

    @abstractmethod
    def id_bytes(self) -> list[bytes]:
        """The raw bytes each id contributes before document-level decoding
        (SentencePiece: `▁` already turned into a space; TokenMonster: key bytes incl. markers)."""

    @abstractmethod
    def decode(self, ids: Sequence[int] | np.ndarray) -> bytes:
        """One document's ids (no BOS) → its exact decoded bytes."""

    def decode_many(self, tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> list[bytes]:
        """Decode tokens[starts[k]:ends[k]] for every k. Backends override with bulk paths."""
        return [self.decode(tokens[s:e]) for s, e in zip(starts.tolist(), ends.tolist())]

    @abstractmethod
    def canonical_meta(self) -> MetaTable:
        """The best table the evaluator's byte formula can express for this tokenizer."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Some valid tokenisation of `text` (used to build fixtures and test streams)."""

    @property
    def byte_preserving(self) -> bool:
        """Whether decode(encode(text)) reproduces the text's bytes (no normalisation)."""
        return True

    #: generic rule ids this backend's own findings replace (same ids, reported once, sharper)
    superseded_rules: frozenset[str] = frozenset()

    def backend_findings(self, meta: MetaTable, counts: np.ndarray | None) -> list:
        """Backend-specific static findings (e.g. TokenMonster capcode markers, byte fallback).

        `counts[i]` is how often id i occurs in the candidate val stream (None without val data).
        Returns `audit.rules.Finding`s. The generic checks live in `audit.tokenizer_audit`."""
        return []

    def describe(self) -> dict:
        """Facts for report summaries."""
        return {"tokenizer": self.name, "kind": self.kind, "ids": self.vocab_size}
