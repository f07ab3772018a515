"""The TokenMonster backend behind `audit.tokenizers.base.Tokenizer`.

Reads binary `.vocab` and `.yaml` vocabularies offline (no helper binary), decodes documents
exactly as bytes, and knows its BOS from a `manifest.json` beside the vocabulary (the
challenge's bundles ship one: Scylla-998 says `bos_id: -1`, scylla-1254 `bos_id: 1253` with
`vocab_size: 1254`, one more id than the artifact defines).
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np

from audit.errors import InputError
from audit.formats.docs import DocBytes
from audit.formats.meta import MetaTable
from audit.tokenizers.base import SpecialIds, Tokenizer
from audit.tokenizers.bytetable import ByteTable
from audit.tokenizers.tokenmonster import capcode as cc
from audit.tokenizers.tokenmonster import fastdecode, normalize
from audit.tokenizers.tokenmonster.binary import read_binary
from audit.tokenizers.tokenmonster.encoder import Encoded, Encoder
from audit.tokenizers.tokenmonster.tokens import IdFacts, analyse, canonical_table, official_table
from audit.tokenizers.tokenmonster.vocab import Vocab
from audit.tokenizers.tokenmonster.yamlvocab import read_yaml


def read_vocab(path: str | Path) -> Vocab:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    if path.suffix.lower() in (".yaml", ".yml"):
        return read_yaml(path)
    head = path.read_bytes()[:64]
    if head.lstrip().startswith((b"charset", b"capcode", b"normalization", b"tokens", b"#", b"---")):
        return read_yaml(path)  # a YAML vocabulary saved as .vocab
    return read_binary(path)


def manifest_entry(path: Path) -> tuple[dict | None, Path | None]:
    """The manifest.json tokenizer entry that names this vocabulary file (beside it or one up)."""
    for folder in (path.parent, path.parent.parent):
        m = folder / "manifest.json"
        if not m.is_file():
            continue
        try:
            data = json.loads(m.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError, RecursionError) as e:
            raise InputError(m, f"manifest is not valid JSON: {' '.join(str(e).split())[:200]}") from None
        entries = data.get("tokenizers") if isinstance(data, dict) else None
        if entries is not None and not isinstance(entries, list):
            raise InputError(m, f"`tokenizers` must be a list, got {type(entries).__name__}")
        for t in entries or []:
            if isinstance(t, dict) and isinstance(t.get("path"), str) and Path(t["path"]).name == path.name:
                return t, m
    return None, None


class TokenMonsterTokenizer(Tokenizer):
    kind = "tokenmonster"
    # byte fallback ≠ 1 byte is TM001 (and TM005 for zero-byte alias copies), with byte values
    superseded_rules = frozenset({"TOK004"})

    def __init__(self, vocab: Vocab, *, bos: int | None = None, n_ids: int | None = None,
                 bos_source: str = "", name: str = ""):
        self.vocab = vocab
        self.path = vocab.path
        self.name = name or (vocab.path.name if vocab.path else "tokenmonster")
        n = max(vocab.vocab_size, n_ids or 0, (bos + 1) if bos is not None else 0)
        if bos is not None and bos < vocab.vocab_size and vocab.defined[bos]:
            raise InputError(vocab.path, f"BOS id {bos} is a token of the vocabulary ({vocab.id_bytes[bos]!r})")
        self._n = n
        self.bos = bos
        self.bos_source = bos_source
        self.facts: IdFacts = analyse(vocab, n, bos)
        self._table = ByteTable(self.facts.keys)
        self.decode_stats: dict = {}

    @classmethod
    def load(cls, path: str | Path, *, bos: int | None | str = "auto") -> "TokenMonsterTokenizer":
        path = Path(path)
        v = read_vocab(path)
        n_ids = None
        src = ""
        if bos == "auto":
            bos = None
            entry, mpath = manifest_entry(path)
            if entry is not None:
                b = entry.get("bos_id")
                if isinstance(b, int) and not isinstance(b, bool) and b >= 0:
                    bos = b
                vs = entry.get("vocab_size")
                if isinstance(vs, int) and not isinstance(vs, bool) and vs > 0:
                    n_ids = vs
                src = f"{mpath.name}: bos_id {entry.get('bos_id')}"
        return cls(v, bos=bos, n_ids=n_ids, bos_source=src)

    # ---- interface -----------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self._n

    @property
    def special(self) -> SpecialIds:
        ctrl = set() if self.bos is None else {self.bos}
        ctrl |= set(np.flatnonzero(~self.facts.defined).tolist())
        return SpecialIds(bos=self.bos, unk=self.vocab.unk_id, control=frozenset(ctrl))

    def id_bytes(self) -> list[bytes]:
        return list(self.facts.keys)

    def id_classes(self) -> np.ndarray:
        f = self.facts
        out = np.array(["piece"] * f.n, dtype=object)
        out[f.leading_space] = "space-piece"
        out[f.inner_marker] = "inner-marker"
        out[f.pending_delete & ~f.marker_only] = "delete-ending"
        out[f.marker_only] = "marker"
        out[f.byte_fallback] = "byte"
        for ids in self.vocab.alias_groups().values():
            out[ids[:-1]] = "alias"
        out[~f.defined] = "unused"
        if self.vocab.unk_id is not None:
            out[self.vocab.unk_id] = "unknown"
        for i in self.vocab.special_ids:
            out[i] = "special"
        if self.bos is not None:
            out[self.bos] = "control"
        return out

    def piece_text(self, i: int) -> str:
        if not 0 <= i < self._n:
            return f"<id {i} beyond the vocabulary>"
        if i == self.bos:
            return "<BOS>"
        if not self.facts.defined[i]:
            return "<unused>"
        k = self.facts.keys[i]
        s = k.decode("utf-8", "backslashreplace") if self.vocab.charset != 2 else k.decode("utf-16-le", "replace")
        return s.encode("unicode_escape").decode("ascii").replace("\\\\x", "\\x")

    def decode(self, ids: Sequence[int] | np.ndarray) -> bytes:
        """One document's ids → its exact decoded bytes (reference path, one document)."""
        keys, n = self.facts.keys, self._n
        raw = b"".join(keys[t] for t in np.asarray(ids, dtype=np.int64).tolist() if 0 <= t < n)
        return self._decode_raw(raw)

    def _decode_raw(self, raw: bytes) -> bytes:
        v = self.vocab
        if v.charset == 2:  # UTF-16: decoded text is reported in UTF-8
            text = raw.decode("utf-16-le", "replace")
            if v.capcode == 2:
                text = cc.decode2(text)
            out = text.encode("utf-8")
            return cc.decode1(out) if v.capcode == 1 else out
        return cc.decode_bytes(raw, v.capcode)

    def decode_many(self, tokens, starts, ends) -> list[bytes]:
        return self.decode_stream(tokens, starts, ends).to_list()

    def decode_stream(self, tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> DocBytes:
        """Every document of a stream at once: numpy gather, then the capcode pass."""
        raw = self._table.gather(tokens, starts, ends)
        v = self.vocab
        if v.charset == 2:
            return DocBytes.from_list([self._decode_raw(d) for d in raw.to_list()])
        if v.capcode == 2:
            return fastdecode.decode_capcode2(raw, self.decode_stats)
        if v.capcode == 1:
            return fastdecode.decode_capcode1(raw)
        return raw

    @cached_property
    def _canonical(self) -> MetaTable:
        return canonical_table(self.vocab, self.facts, self.bos, self.name)

    def canonical_meta(self) -> MetaTable:
        return self._canonical.copy()

    def official_meta(self) -> MetaTable:
        """The table the official package's per-token `token_decoded` strings give (Scylla-998's way)."""
        return official_table(self.vocab, self.facts, self.bos, self.name)

    @cached_property
    def encoder(self) -> Encoder:
        return Encoder(self.vocab)

    def encode(self, text: str) -> list[int]:
        return self.encoder.encode(text).ids

    def encode_full(self, text: str) -> Encoded:
        return self.encoder.encode(text)

    @cached_property
    def missing_bytes(self) -> list[int]:
        """Byte values that text can contain but no single-byte key covers (see findings)."""
        from audit.tokenizers.tokenmonster.findings import needed_bytes

        have = {e.key[0] for e in self.vocab.entries if len(e.key) == 1}
        return [b for b in needed_bytes(self.vocab) if b not in have]

    @property
    def byte_preserving(self) -> bool:
        v = self.vocab
        return v.normalization == 0 and v.capcode == 0 and not self.missing_bytes

    def backend_findings(self, meta: MetaTable, counts: np.ndarray | None) -> list:
        from audit.tokenizers.tokenmonster.findings import findings

        return findings(self, meta, counts)

    def describe(self) -> dict:
        v = self.vocab
        return {"tokenizer": self.name, "kind": self.kind, "ids": self._n, "format": v.fmt,
                "capcode": v.capcode, "charset": v.charset_name,
                "normalization": normalize.describe(v.normalization),
                "BOS": self.bos if self.bos is not None else "none"}
