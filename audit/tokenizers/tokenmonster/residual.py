"""The drift no per-token table can express, measured on a val stream, in bytes.

For every stream position the canonical table credits base[y] + (leading_space[y] and not
boundary[x]); the decoder's output bytes are attributed to the position whose id produced them.
The per-position difference is the residual; its total equals canonical meta − decoded over the
documents. Positions with a difference are classed by cause (capcode 2):
  - `delete-non-space`: a `D` from an earlier id deleted a character other than a space;
  - `delete-through-marker`: a `D` deleted the leading space of an id it does not directly
    precede (a marker-only id such as `C` sits between them);
  - `case-length`: uppercasing changed a character's UTF-8 length (ı→I, ɐ→Ɐ, İ round trip; an
    invalid byte under `C` is copied unchanged, so it is no drift);
  - `other-context`: anything else (e.g. an uppercase state carried into an alias id).
Capcode 1 positions are classed `delete-marker-context`. Normalisation drift (NFD) is measured
against source text by `normalization_drift`.
"""

from __future__ import annotations

import numpy as np

from audit.tokenizers.tokenmonster import fastdecode, normalize
from audit.tokenizers.tokenmonster.unicase import tables

CLASSES = ("delete-non-space", "delete-through-marker", "case-length", "other-context")


def _formula(tokens: np.ndarray, meta) -> np.ndarray:
    """The evaluator's bytes per position; ids past the table are inert (0 bytes, boundary)."""
    from audit.accounting.metabytes import padded

    n = len(tokens)
    out = np.zeros(n, dtype=np.int64)
    if n < 2:
        return out
    base, ls, bd = padded(meta, int(tokens.max()) + 1)
    out[1:] = base[tokens[1:]] + (ls[tokens[1:]] & ~bd[tokens[:-1]])
    return out


def residual(tok, tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray, meta=None) -> dict:
    """{"total": bytes, "by_class": {class: bytes}, "positions": {class: count}} for the documents
    tokens[starts[k]:ends[k]] (the canonical table unless `meta` is given)."""
    tokens = np.asarray(tokens).astype(np.int64)
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    meta = meta if meta is not None else tok.canonical_meta()
    formula = _formula(tokens, meta)
    in_doc = np.zeros(len(tokens) + 1, dtype=np.int32)
    np.add.at(in_doc, starts, 1)
    np.add.at(in_doc, ends, -1)
    in_doc = np.cumsum(in_doc[:-1]) > 0
    actual = np.zeros(len(tokens), dtype=np.int64)
    cls = np.full(len(tokens), -1, dtype=np.int8)
    raw, pos = tok._table.gather(tokens, starts, ends, with_positions=True)
    v = tok.vocab
    if v.capcode == 2 and v.charset != 2:
        _capcode2(raw, pos, actual, cls)
    elif v.capcode == 0 and v.charset != 2:
        np.add.at(actual, pos, 1)
    else:  # capcode 1 or UTF-16: per document, attributed to the document's first position
        dec = tok.decode_stream(tokens, starts, ends)
        first = starts[starts < ends]
        np.add.at(actual, first, dec.lengths[starts < ends])
        np.add.at(formula, first, 0)
    diff = np.where(in_doc, formula - actual, 0)
    total = int(diff.sum())
    by_class: dict[str, int] = {}
    counts: dict[str, int] = {}
    nz = np.flatnonzero(diff)
    if v.capcode == 2 and v.charset != 2:
        c = cls[nz]
        c = np.where(c < 0, 3, c)
        for k, name in enumerate(CLASSES):
            sel = nz[c == k]
            if sel.size:
                by_class[name] = int(diff[sel].sum())
                counts[name] = int(sel.size)
    elif total:
        name = "delete-marker-context" if v.capcode == 1 else "other-context"
        by_class[name], counts[name] = total, int(nz.size)
    return {"total": total, "by_class": by_class, "positions": counts}


def _capcode2(raw, pos: np.ndarray, actual: np.ndarray, cls: np.ndarray) -> None:
    t = tables()
    buf = raw.buf.tobytes()
    o = raw.offsets.tolist()
    for k0, k1 in fastdecode._chunks(raw.offsets, fastdecode.MACHINE_CHUNK):
        strs = [buf[o[k]:o[k + 1]].decode("utf-8", "surrogateescape") for k in range(k0, k1)]
        nchar = np.fromiter((len(s) for s in strs), dtype=np.int64, count=k1 - k0)
        text = "".join(strs)
        if not text:
            continue
        cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        first = np.zeros(len(nchar) + 1, dtype=np.int64)
        np.cumsum(nchar, out=first[1:])
        doc_start = np.repeat(first[:-1], nchar)
        kept, out, up, deleted = fastdecode.machine2(cps, doc_start)
        # the stream position of every character (its first byte's)
        blen = fastdecode.utf8_lengths(cps)
        boff = np.zeros(len(cps), dtype=np.int64)
        np.cumsum(blen[:-1], out=boff[1:])
        cpos = pos[o[k0] + boff]
        # unchanged characters credit each byte to the id it came from (a character split over
        # byte-fallback ids is not a drift); an uppercased one credits its first byte's id
        same = kept & ~up
        byte_same = np.repeat(same, blen)
        np.add.at(actual, pos[o[k0]:o[k0] + len(byte_same)][byte_same], 1)
        np.add.at(actual, cpos[kept & up], fastdecode.utf8_lengths(out[kept & up]))
        # causes
        idx = np.arange(len(cps), dtype=np.int64)
        last_d = fastdecode._last_before(cps == 0x44, idx)
        d_pos = np.where(last_d >= 0, cpos[np.maximum(last_d, 0)], -1)
        cross = deleted & (d_pos != cpos)
        is_sp = cps == 0x20
        first_char = np.ones(len(cps), dtype=bool)
        first_char[1:] = cpos[1:] != cpos[:-1]
        through = cross & is_sp & ~(first_char & (d_pos == cpos - 1))
        case = up & (t.upper_len_delta[cps] != 0)
        for k, mask in ((2, case), (1, through), (0, cross & ~is_sp)):  # later wins: priority order
            cls[cpos[mask]] = k


def normalization_drift(texts: list[str], flags: int) -> dict:
    """Bytes the normalisation adds (NFD: é 2 → 3) over source texts, and documents changed."""
    before = after = changed = 0
    for t in texts:
        a = len(t.encode("utf-8", "surrogatepass"))
        n = normalize.apply(t, flags)
        b = len(n.encode("utf-8", "surrogatepass"))
        before += a
        after += b
        changed += n != t
    return {"source_bytes": before, "normalized_bytes": after, "drift": after - before, "documents_changed": changed}
