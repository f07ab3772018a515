"""The evaluator's byte formula, vectorised over a whole stream, and drift attribution.

    bytes(y | x) = base_bytes[y] + (has_leading_space[y] AND NOT is_boundary_token[x])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit import chunked
from audit.formats.meta import MetaTable


def padded(meta: MetaTable, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(base int32, leading-space, boundary) with ids ≥ len(meta) inert (0 bytes, boundary)."""
    m = len(meta)
    size = max(n, m)
    base = np.zeros(size, dtype=np.int32)
    ls = np.zeros(size, dtype=bool)
    bd = np.ones(size, dtype=bool)
    base[:m] = meta.base_bytes
    ls[:m] = meta.has_leading_space
    bd[:m] = meta.is_boundary_token
    return base, ls, bd


def position_bytes(tokens: np.ndarray, meta: MetaTable) -> np.ndarray:
    """bytes credited at every position (int32); position 0 is never a target and gets 0."""
    n = len(tokens)
    out = np.zeros(n, dtype=np.int32)
    if n < 2:
        return out
    base, ls, bd = padded(meta, 0)
    np.take(base, tokens[1:], out=out[1:])
    out[1:] += ls[tokens[1:]] & ~bd[tokens[:-1]]  # leading-space term via the shifted stream
    return out


@dataclass
class MetaSums:
    full: int  # targets 1..N-1
    plain: int | None  # targets 1..plain_stop-1
    per_span: np.ndarray  # int64, one per span
    occurrences: np.ndarray  # int64 per id, as a target (positions 1..N-1)
    max_id: int  # the largest id in the stream (−1 when empty)


def meta_sums(tokens: np.ndarray, meta: MetaTable, starts: np.ndarray, ends: np.ndarray,
              plain_stop: int | None = None, n_ids: int = 0, rider=None) -> MetaSums:
    """The formula summed over the whole stream, the plain rows and every span, plus the target
    histogram: one chunked pass (audit.chunked), never the per-position array. `rider`: another
    per-chunk computation over the same ids (audit.tokenizers.bytetable.SizingRider: decoded
    lengths) given each chunk's cast ids, so it needs no walk of its own."""
    tokens = np.asarray(tokens)
    n = len(tokens)
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    hi = chunked.maximum(tokens) + 1 if n else 0
    size = max(hi, len(meta), n_ids)
    base, ls, bd = padded(meta, size)
    # two lookups per position: the base bytes (int64), and one byte of flags: the leading-space
    # flag (bit 1) and "not a boundary" (bit 0), so the term's arithmetic runs on bytes
    base64 = base.astype(np.int64)
    flags = (ls.astype(np.uint8) << 1) | (~bd).astype(np.uint8)

    def values(a: int, b: int) -> np.ndarray:
        m = b - a
        if m == 0:
            return np.zeros(0, np.int64)
        ids = chunked.scratch("meta_ids", m, np.intp)
        np.copyto(ids, tokens[a:b])
        if rider is not None:
            rider.chunk(a, b, ids)
        v = np.take(base64, ids, out=chunked.scratch("meta_v", m, np.int64), mode="clip")
        f = np.take(flags, ids, out=chunked.scratch("meta_f", m, np.uint8), mode="clip")
        term = np.right_shift(f, 1, out=chunked.scratch("meta_term", m, np.uint8))  # leading space of y …
        term[1:] &= f[:-1]  # … counts when the previous id x is not a boundary
        term[0] &= int(flags[tokens[a - 1]]) if a > 0 else 0
        term &= 1
        v += term
        if a == 0:
            v[0] = 0  # position 0 is never a target
        return v

    def histogram(a: int, b: int, v: np.ndarray) -> np.ndarray:
        # the ids `values` just cast (same thread, same chunk): no second index cast
        ids = chunked.scratch("meta_ids", b - a, np.intp)[1 if a == 0 else 0:]
        return np.bincount(ids, minlength=size) if len(ids) else np.zeros(size, np.int64)

    points = np.concatenate([starts, ends, [plain_stop if plain_stop is not None else n]])
    at, full, hists = chunked.prefix_at(values, n, points, extra=histogram)
    k = len(starts)
    per_span = at[k:2 * k] - at[:k]
    occ = np.sum(hists, axis=0, dtype=np.int64) if hists else np.zeros(size, np.int64)
    return MetaSums(full, int(at[-1]) if plain_stop is not None else None, per_span, occ, hi - 1)


def span_sums(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """sum(values[s:e]) for each span (sorted, disjoint), via one np.add.reduceat."""
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if starts.size == 0:
        return np.zeros(0, dtype=np.int64)
    ext = np.zeros(len(values) + 1, dtype=values.dtype)  # reduceat index may equal len(values)
    ext[:-1] = values
    contiguous = starts.size == 1 or np.array_equal(starts[1:], ends[:-1])
    if contiguous and ends[-1] == len(values):
        sums = np.add.reduceat(ext, starts, dtype=np.int64)
    else:
        # interleave starts and ends; every other reduceat segment is a span
        idx = np.empty(2 * starts.size, dtype=np.int64)
        idx[0::2], idx[1::2] = starts, ends
        sums = np.add.reduceat(ext, idx, dtype=np.int64)[0::2]
    sums[starts == ends] = 0
    return sums


@dataclass
class IdDrift:
    """meta − reference, attributed to the ids responsible."""

    total: int
    base_by_id: np.ndarray  # int64: (meta base − reference base) × occurrences as a target
    space_by_id: np.ndarray  # leading-space term drift, attributed to the target id y
    boundary_by_id: np.ndarray  # leading-space term drift caused by the boundary flag of x
    occurrences: np.ndarray  # occurrences of each id as a scored target (positions 1..N-1)

    @property
    def by_id(self) -> np.ndarray:
        return self.base_by_id + self.space_by_id + self.boundary_by_id


def attribute_drift(tokens: np.ndarray, meta: MetaTable, ref: MetaTable,
                    occurrences: np.ndarray | None = None) -> IdDrift:
    """Explain sum(meta bytes) − sum(reference bytes) over positions 1..N-1, id by id (one
    chunked pass). `occurrences`: the target histogram when already counted (MetaSums), with a
    row for every id up to the largest in the stream."""
    tokens = np.asarray(tokens)
    if occurrences is not None:  # as meta_sums counts it: one row per id up to the largest in the stream
        hi = len(occurrences)
    else:
        hi = chunked.maximum(tokens) + 1 if len(tokens) else 0
    n = max(hi, len(meta), len(ref))
    bm, lm, dm = padded(meta, n)
    br, lr, dr = padded(ref, n)
    flags_differ = not np.array_equal(lm, lr) or not np.array_equal(dm, dr)

    def part(a: int, b: int):
        y = tokens[max(a, 1):b]
        occ = None if occurrences is not None else np.bincount(y, minlength=n)
        if not flags_differ or len(y) == 0:
            return occ, None, None
        x = tokens[max(a, 1) - 1:b - 1]
        diff = (lm[y] & ~dm[x]).astype(np.int8) - (lr[y] & ~dr[x]).astype(np.int8)
        nz = np.flatnonzero(diff)
        if nz.size == 0:
            return occ, None, None
        d = diff[nz].astype(np.float64)
        yy, xx = y[nz], x[nz]
        flag_y = lm[yy] != lr[yy]  # the target's own leading-space flag is wrong
        return (occ, np.bincount(yy[flag_y], weights=d[flag_y], minlength=n),
                np.bincount(xx[~flag_y], weights=d[~flag_y], minlength=n))

    edges = chunked.bounds(len(tokens))
    parts = chunked.pmap(lambda k: part(int(edges[k]), int(edges[k + 1])), len(edges) - 1)

    def total(i: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.int64)
        for p in parts:
            if p[i] is not None:
                out += p[i].astype(np.int64)
        return out

    occ = total(0)
    if occurrences is not None:
        occ[:len(occurrences)] = occurrences
    base_by_id = occ * (bm.astype(np.int64) - br)
    space, bound = total(1), total(2)
    return IdDrift(int(base_by_id.sum() + space.sum() + bound.sum()), base_by_id, space, bound, occ)
