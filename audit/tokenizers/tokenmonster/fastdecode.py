"""Vectorised decoding of whole val streams (many documents at once).

1. gather: every id's bytes are copied from one flat table (`audit.tokenizers.bytetable`, shared
   with SentencePiece); ids past the table and positions between documents (BOS) contribute nothing. For capcode 0 this IS the decode (charset none and UTF-8 alike: bytes pass
   through unchanged).
2. capcode 2: the state machine of `capcode.decode2` rewritten as array operations over the code
   points of a chunk of documents. Each state bit is "the last event that sets it came after the
   last event that clears it", i.e. a comparison of running maxima of event positions:
     - a non-marker character is deleted iff its preceding run of markers holds a `D`;
     - `in_char` holds at i iff the last `C` is after the last `W`, the last kept non-space
       character and the document start;
     - `in_word` holds iff the last `W` is after the last `C`, the last kept space not right
       after a `W` (ignore), and the last kept character that is not a cased letter, number,
       apostrophe or combining mark.
   Chunks with no marker byte at all skip the machine. Tested against the per-character
   reference on random and real text.
3. capcode 1: only documents holding 0x7F are rewritten (a regex does the left-to-right
   "0x7F deletes itself and the next byte").
"""

from __future__ import annotations

import re

import numpy as np

from audit import chunked
from audit.formats.docs import DocBytes
from audit.tokenizers.tokenmonster.unicase import CASED, MARK, NUM, tables

MACHINE_CHUNK = 1 << 20  # bytes of text per capcode-2 step (bounds the temporaries to ~50 MB per thread)
_DEL1 = re.compile(rb"\x7f[\s\S]?")


def decode_capcode1(docs: DocBytes) -> DocBytes:
    has = np.flatnonzero(docs.buf == 0x7F)
    if has.size == 0:
        return docs
    which = np.unique(np.searchsorted(docs.offsets, has, side="right") - 1)
    lst = docs.to_list()
    for k in which.tolist():
        lst[k] = _DEL1.sub(b"", lst[k])
    return DocBytes.from_list(lst)


def _last_before(mask: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """For every i, the largest j < i with mask[j] (−1 when none)."""
    v = np.where(mask, idx, -1)
    out = np.empty_like(v)
    out[0] = -1
    np.maximum.accumulate(v[:-1], out=out[1:])
    return out


def machine2(cps: np.ndarray, doc_start: np.ndarray):
    """Capcode-2 decode of code points `cps` (documents start where `doc_start` says, as the
    index of each char's document start). Returns (kept mask, output code points for all chars,
    uppercased mask, deleted mask)."""
    t = tables()
    n = len(cps)
    idx = np.arange(n, dtype=np.int64)
    is_c, is_w, is_d = cps == 0x43, cps == 0x57, cps == 0x44
    mk = is_c | is_w | is_d
    sp = cps == 0x20
    other = ~mk & ~sp
    floor = doc_start - 1  # events before the document start do not count
    prev_nm = np.maximum(_last_before(~mk, idx), floor)  # last non-marker before i
    cd = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(is_d, out=cd[1:])
    cw = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(is_w, out=cw[1:])
    run_lo = prev_nm + 1
    deleted = ~mk & (cd[idx] - cd[run_lo] > 0)
    ignore = sp & (cw[idx] - cw[run_lo] > 0)
    kept = ~mk & ~deleted
    last_c = _last_before(is_c, idx)
    last_w = _last_before(is_w, idx)
    last_other = _last_before(other & kept, idx)
    in_char = other & kept & (last_c > np.maximum(np.maximum(last_w, last_other), floor))
    f = t.flags[cps]
    apos = (cps == 0x27) | (cps == 0x2019)
    keeps_word = ((f & (CASED | NUM | MARK)) != 0) | apos
    clear_sp = _last_before(sp & kept & ~ignore, idx)
    clear_other = _last_before(other & kept & ~keeps_word, idx)
    in_word = last_w > np.maximum(np.maximum(last_c, np.maximum(clear_sp, clear_other)), floor)
    up = other & kept & (in_char | (in_word & ((f & CASED) != 0)))
    # an invalid byte (surrogate escape) maps to itself in the case table: copied unchanged in
    # every state, as the canonical Go decoder does (never U+FFFD)
    out = np.where(up, t.upper[cps], cps).astype(np.uint32)
    return kept, out, up, deleted


def _chunks(offsets: np.ndarray, limit: int):
    k, nd = 0, len(offsets) - 1
    while k < nd:
        target = offsets[k] + limit
        j = int(np.searchsorted(offsets, target, side="right")) - 1
        j = max(j, k + 1)
        yield k, min(j, nd)
        k = min(j, nd)


def utf8_lengths(cps: np.ndarray) -> np.ndarray:
    """Bytes each code point takes when written back (a surrogate escape is its one raw byte)."""
    esc = (cps >= 0xDC80) & (cps <= 0xDCFF)
    n = 1 + (cps >= 0x80).astype(np.int64) + (cps >= 0x800) + (cps >= 0x10000)
    return np.where(esc, 1, n)


def decode_capcode2(docs: DocBytes, stats: dict | None = None) -> DocBytes:
    """Capcode-2 decode of every document (bytes in, bytes out); chunks of documents run on the
    worker threads (audit.chunked: numpy releases the GIL inside the machine's array passes)."""
    raw = docs.buf.tobytes()
    o = docs.offsets.tolist()
    lengths = np.zeros(docs.n_docs, dtype=np.int64)
    spans = list(_chunks(docs.offsets, MACHINE_CHUNK))

    def run(i: int) -> tuple[bytes, bool]:
        k0, k1 = spans[i]
        piece = raw[o[k0]:o[k1]]
        if not any(m in piece for m in (b"C", b"W", b"D")):
            lengths[k0:k1] = np.diff(docs.offsets[k0:k1 + 1])
            return piece, False
        strs = [raw[o[k]:o[k + 1]].decode("utf-8", "surrogateescape") for k in range(k0, k1)]
        nchar = np.fromiter((len(s) for s in strs), dtype=np.int64, count=k1 - k0)
        text = "".join(strs)
        if not text:
            return b"", False
        cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        first = np.zeros(len(nchar) + 1, dtype=np.int64)
        np.cumsum(nchar, out=first[1:])
        doc_start = np.repeat(first[:-1], nchar)
        kept, out, _, _ = machine2(cps, doc_start)
        kept_out = out[kept]
        doc_of = np.repeat(np.arange(k1 - k0), nchar)[kept]
        lengths[k0:k1] = np.bincount(doc_of, weights=utf8_lengths(kept_out), minlength=k1 - k0).astype(np.int64)
        return kept_out.tobytes().decode("utf-32-le", "surrogatepass").encode("utf-8", "surrogateescape"), True

    done = chunked.pmap(run, len(spans))
    outs = [b for b, _ in done]
    if stats is not None:
        machine = sum(m for _, m in done)
        stats["chunks_machine"] = stats.get("chunks_machine", 0) + machine
        stats["chunks_skipped"] = stats.get("chunks_skipped", 0) + len(done) - machine
    offsets = np.zeros(docs.n_docs + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    buf = np.frombuffer(b"".join(outs), dtype=np.uint8)
    if len(buf) != offsets[-1]:  # cannot happen unless the length arithmetic is wrong
        raise AssertionError(f"capcode-2 decode length mismatch {len(buf)} vs {offsets[-1]}")
    return DocBytes(buf, offsets)
