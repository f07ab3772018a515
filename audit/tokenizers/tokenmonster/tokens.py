"""Per-id facts derived from a TokenMonster vocabulary: markers, leading space, what the id
decodes to on its own, and the best per-token table the evaluator's formula can express.

The formula is `bytes(y | x) = base[y] + (has_leading_space[y] and not is_boundary_token[x])`.
With capcode a `D` marker deletes the next character — in practice the leading space of the next
token — so the best table (tokenizers.md §2.3, accounting.md):
  - base = bytes the id decodes to on its own (markers give 0; a `D` inside the id deletes inside
    it; a lone byte-fallback id is its 1 raw byte, never U+FFFD), minus a leading space;
  - has_leading_space = the id starts with a space (that a `D` before it may delete);
  - is_boundary_token = the id ends with a `D` still waiting (`D`, `\\nD`, `DC`, `DW`, …), so the
    next id's leading space is not counted;
  - BOS: 0 bytes, no space; a boundary only for capcode 0 (with capcode a document may start with
    a ` word` id whose space is real and must be counted).
What no table can express (measured by `residual.py`): uppercasing that changes UTF-8 length,
a `D` deleting a non-space character or reaching past a marker-only id, NFD vs the source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit.formats.meta import MetaTable
from audit.tokenizers.tokenmonster import capcode as cc
from audit.tokenizers.tokenmonster.vocab import Vocab


@dataclass
class IdFacts:
    n: int  # ids covered (artifact ids + BOS)
    keys: list[bytes]
    defined: np.ndarray  # bool: the artifact has an entry for the id
    byte_fallback: np.ndarray  # single-byte key that is not a marker
    marker_only: np.ndarray  # key is only capcode markers (C/W/D, or 0x7F)
    has_marker: np.ndarray
    inner_marker: np.ndarray  # a marker followed by a non-marker inside the key
    pending_delete: np.ndarray  # ends with a delete marker still waiting
    ends_cw: np.ndarray  # ends with C or W still waiting (uppercases into the next id)
    leading_space: np.ndarray
    standalone: list[bytes]  # decode of the id alone, fresh state, raw bytes
    base: np.ndarray  # canonical base bytes
    official_len: np.ndarray  # len(token_decoded.encode('utf-8')) as the official package reads it


def _text(key: bytes, charset: int) -> str:
    if charset == 2:
        return key.decode("utf-16-le", "replace")
    return key.decode("utf-8", "surrogateescape")


def _decode_text(text: str, capcode: int) -> bytes:
    if capcode == 2:
        return cc.decode2(text).encode("utf-8", "surrogateescape")
    raw = text.encode("utf-8", "surrogateescape")
    return cc.decode1(raw) if capcode == 1 else raw


def _pending1(key: bytes) -> bool:
    i, n = 0, len(key)
    while i < n:
        if key[i] == 0x7F:
            if i + 1 >= n:
                return True
            i += 2
        else:
            i += 1
    return False


def analyse(v: Vocab, n_ids: int, bos: int | None) -> IdFacts:
    n = max(n_ids, v.vocab_size)
    keys = list(v.id_bytes) + [b""] * (n - v.vocab_size)
    defined = np.zeros(n, dtype=bool)
    defined[:v.vocab_size] = v.defined
    arr = {k: np.zeros(n, dtype=bool) for k in ("bf", "mo", "hm", "im", "pd", "cw", "ls")}
    standalone: list[bytes] = [b""] * n
    base = np.zeros(n, dtype=np.int64)
    official = np.zeros(n, dtype=np.int64)
    cap, cs = v.capcode, v.charset
    for i in range(n):
        key = keys[i]
        if not defined[i] or not key:
            continue
        if cs == 2:
            text = _text(key, cs)
        else:
            text = key.decode("utf-8", "surrogateescape")
        if cap == 2:
            is_m = [ch in cc.MARKERS2 for ch in text]
        elif cap == 1:
            is_m = [ch == cc.DEL1 for ch in text]
        else:
            is_m = [False] * len(text)
        hm = any(is_m)
        arr["hm"][i] = hm
        arr["mo"][i] = hm and all(is_m)
        arr["im"][i] = any(is_m[j] and not is_m[j + 1] for j in range(len(text) - 1))
        if cap == 2:
            j = len(text)
            while j and is_m[j - 1]:
                j -= 1
            tail = text[j:]
            arr["pd"][i] = "D" in tail
            last_cw = max(tail.rfind("C"), tail.rfind("W"))
            arr["cw"][i] = last_cw >= 0
        elif cap == 1:
            arr["pd"][i] = _pending1(key)
        # a lone space under capcode is a leading-space id (base 0 + the space), not byte fallback
        arr["bf"][i] = len(key) == 1 and not arr["mo"][i] and not (cap and key == b" ")
        ls = cap != 0 and text.startswith(" ")
        arr["ls"][i] = ls
        if cap == 0 and cs != 2:
            out = key
            base[i] = len(key)
        else:
            out = _decode_text(text, cap)
            body = _decode_text(text[1:], cap) if ls else out
            base[i] = len(body)
        standalone[i] = out
        # the official Python package: the token decoded alone, then bytes → str
        # (charset none: latin-1; otherwise UTF-8 with errors="replace": a lone 0x80 → U+FFFD)
        s = out.decode("latin-1") if cs == 0 else out.decode("utf-8", "replace")
        official[i] = len(s.encode("utf-8"))
    if bos is not None and bos < n:
        for k in arr.values():
            k[bos] = False
    return IdFacts(n, keys, defined, arr["bf"], arr["mo"], arr["hm"], arr["im"], arr["pd"], arr["cw"],
                   arr["ls"], standalone, base, official)


def canonical_table(v: Vocab, facts: IdFacts, bos: int | None, name: str) -> MetaTable:
    n = facts.n
    base = facts.base.copy()
    ls = facts.leading_space.copy()
    bd = facts.pending_delete.copy()
    inert = ~facts.defined  # ids without an entry decode to nothing
    bd[inert] = True
    base[inert] = 0
    if bos is not None and bos < n:
        base[bos] = 0
        ls[bos] = False
        bd[bos] = v.capcode == 0
    return MetaTable(base.astype(np.int16), ls, bd, tokenizer_kind="tokenmonster", source_model_name=name,
                     vocab_size=n)


def official_table(v: Vocab, facts: IdFacts, bos: int | None, name: str) -> MetaTable:
    """The table built the way the Scylla-998 bundle was: len(token_decoded.encode('utf-8')),
    no leading-space or boundary modelling (used to build the deliberately broken fixture)."""
    n = facts.n
    bd = np.zeros(n, dtype=bool)
    base = facts.official_len.copy()
    if bos is not None and bos < n:
        base[bos] = 0
        bd[bos] = True
    return MetaTable(base.astype(np.int16), np.zeros(n, dtype=bool), bd, tokenizer_kind="tokenmonster",
                     source_model_name=name, vocab_size=n)
