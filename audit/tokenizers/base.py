"""The tokenizer interface the accounting engine and the audits rely on.

A backend knows its ids, what bytes each id contributes, how a whole document decodes
(exactly, as bytes), its special ids, and the best per-token metadata the evaluator's
formula can express for it. The engine knows no backend by name. Every method a caller uses is
declared here, with a default where one is correct for any backend (callers never probe with
`hasattr`); backends override the defaults with faster or sharper versions.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from audit.formats.docs import DocBytes
from audit.formats.meta import MetaTable


@dataclass
class SpecialIds:
    bos: int | None = None
    eos: int | None = None
    pad: int | None = None
    unk: int | None = None
    # ids that decode to nothing and act as document/segment boundaries (control, unused, …)
    control: frozenset[int] = field(default_factory=frozenset)


def _computed_once(fn):
    """canonical_meta() is built once per tokenizer; each caller gets its own copy (some edit it)."""
    @functools.wraps(fn)
    def canonical_meta(self, *args, **kwargs):
        if args or kwargs:  # a padded variant: not cached
            return fn(self, *args, **kwargs)
        memo = self.__dict__.get("_canonical_memo")
        if memo is None:
            memo = self.__dict__["_canonical_memo"] = fn(self)
        return memo.copy()

    canonical_meta.computed_once = True
    return canonical_meta


class Tokenizer(ABC):
    kind: str = ""  # "sentencepiece" | "purebyte" | "tokenmonster" (audit.tokenizers.BACKENDS)
    name: str = ""
    path: Path | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        fn = cls.__dict__.get("canonical_meta")
        if fn is not None and not getattr(fn, "computed_once", False):
            cls.canonical_meta = _computed_once(fn)

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

    def decode_stream(self, tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> DocBytes:
        """Every document tokens[starts[k]:ends[k]] decoded into one buffer (sorted, disjoint
        spans). The whole-val-stream path; backends override it with vectorised decoders."""
        return DocBytes.from_list(self.decode_many(np.asarray(tokens), np.asarray(starts), np.asarray(ends)))

    def decoded_lengths(self, tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """len(decode_stream(...) document k) for every k (int64). Backends that can count
        without writing the bytes override it (the audit needs only lengths without a source)."""
        return self.decode_stream(tokens, starts, ends).lengths

    def length_rider(self, tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray):
        """None, or an object with `.rider` (carried by the meta pass: see
        audit.accounting.metabytes.meta_sums) and `.finish()` → what `decoded_lengths` returns:
        the decoded lengths counted inside the meta formula's own pass over the stream."""
        return None

    def reference_stream(self, tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray):
        """The documents of a reference (source) stream: a DocBytes, or an
        audit.formats.docs.StreamDocs that decodes only when its bytes are asked for."""
        return self.decode_stream(tokens, starts, ends)

    def compare_stream(self, tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray, reference,
                       max_examples: int = 20, ridden=None):
        """(decoded lengths, audit.accounting.compare.DocComparison with `reference`): every
        document decoded and compared with the reference document of the same index (equal
        document counts; `reference` is a DocBytes or a StreamDocs; `ridden`: what this
        backend's length_rider returned, after the meta pass). Backends override it to compare
        without keeping the decoded bytes."""
        from audit.accounting.compare import compare_docs

        dec = self.decode_stream(tokens, starts, ends)
        return dec.lengths, compare_docs(dec, reference, max_examples)

    def id_classes(self) -> np.ndarray:
        """A class name per id (for drift tables): `control` for boundary ids, else `piece`."""
        canon = self.canonical_meta()
        return np.where(canon.is_boundary_token[:self.vocab_size], "control", "piece").astype(object)

    def piece_text(self, i: int) -> str:
        """How id i is shown in reports (default: its bytes, escaped)."""
        from audit.accounting.compare import escape

        ib = self.id_bytes()
        return escape(ib[i]) if 0 <= i < len(ib) else f"<id {i} beyond the tokenizer>"

    @abstractmethod
    def canonical_meta(self) -> MetaTable:
        """The best table the evaluator's byte formula can express for this tokenizer
        (computed once per tokenizer: see `_computed_once`)."""

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
