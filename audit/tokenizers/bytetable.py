"""One flat byte table per tokenizer, and the vectorised gather every backend decodes with.

Id i's bytes are flat[off[i]:off[i] + length[i]]; one extra silent id stands for every id past
the table. `gather` concatenates the bytes of many document spans of a stream at once, in
chunks of the stream (audit.chunked) and on the worker threads:

  1. sizes: per chunk, lengths by one table lookup, positions outside the spans zeroed; the
     running sums at the span starts give every document's offset in the output;
  2. bytes: per chunk again, output byte p of token i reads flat[p + off[i] − start[i]]: the
     indices as each token's shift repeated over its bytes (`np.repeat`) plus the output
     position, then one `np.take` straight into the output.

No Python loop over tokens or documents, no whole-stream temporary wider than the output.
`invalid_utf8_docs` finds the documents of a gathered buffer that are not valid UTF-8, by
decoding megabyte pieces of the whole buffer (documents are looked at one by one only inside a
piece that fails).
"""

from __future__ import annotations

import numpy as np

from audit import chunked
from audit.formats.docs import DocBytes


class ByteTable:
    def __init__(self, id_bytes: list[bytes]):
        lens = [len(b) for b in id_bytes] + [0]  # + the silent id
        self.n = len(id_bytes)
        self.length = np.array(lens, dtype=np.int64)
        self.flat = np.frombuffer(b"".join(id_bytes) + b"\0", dtype=np.uint8)
        self.off = np.zeros(len(lens), dtype=np.int64)
        np.cumsum(lens[:-1], out=self.off[1:])

    def gather(self, tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray,
               with_positions: bool = False, skip_first: np.ndarray | None = None,
               zero_positions: bool = False):
        """Bytes of tokens[starts[k]:ends[k]] for every k (sorted, disjoint spans) → DocBytes;
        with_positions also returns the stream position each output byte came from;
        zero_positions returns instead the stream positions of the tokens that contribute no
        byte (inside the spans, or a gap between them: the caller tells them apart).
        skip_first (bool per span) drops the first byte of those spans' first token (the caller
        guarantees that token has one)."""
        tokens = np.asarray(tokens)
        starts = np.asarray(starts, dtype=np.int64)
        ends = np.asarray(ends, dtype=np.int64)
        ndoc = len(starts)
        if ndoc == 0:
            empty = DocBytes(np.zeros(0, np.uint8), np.zeros(1, np.int64))
            return (empty, np.zeros(0, np.int64)) if with_positions or zero_positions else empty
        lo, hi = int(starts[0]), int(ends[-1])
        region = tokens[lo:hi]
        if region.size and chunked.maximum(region) >= self.n:
            region = np.where(region < self.n, region, self.n)  # ids past the table are silent
        spans = _Spans(starts - lo, ends - lo, len(region), skip_first)

        def sizes(a: int, b: int) -> np.ndarray:
            return spans.lengths(self.length, region, a, b)

        edges = chunked.bounds(len(region))
        # one sizing pass: running sums at every span start, at the end, and at the chunk edges
        # (where each chunk's output begins)
        at, total, _ = chunked.prefix_at(sizes, len(region), np.concatenate([starts - lo, [hi - lo], edges]))
        offsets, out_at = at[:ndoc + 1], at[ndoc + 1:]
        buf = np.empty(total, dtype=np.uint8)
        pos = np.empty(total, dtype=np.int64) if with_positions else None

        def write(k: int):
            a, b = int(edges[k]), int(edges[k + 1])
            o, o_end = int(out_at[k]), int(out_at[k + 1])
            m, tot = b - a, o_end - o
            ids = chunked.scratch("ids", m, np.intp)
            np.copyto(ids, region[a:b])  # one index cast per chunk, used by every lookup
            ln = spans.lengths(self.length, region, a, b, ids, out=chunked.scratch("ln", m, np.int64))
            zeros = np.flatnonzero(ln == 0) + (a + lo) if zero_positions else None
            if tot == 0:
                return zeros
            start = np.cumsum(ln, out=chunked.scratch("start", m, np.int64))
            start -= ln  # where each token's bytes begin in this chunk's output
            # output byte p of token i reads flat[p + shift[i]], shift[i] = off[i] − start[i]:
            # each token's shift repeated over its bytes (zero-length tokens vanish), plus p
            shift = np.take(self.off, ids, out=chunked.scratch("shift", m, np.int64), mode="clip")
            shift -= start
            spans.shift_skipped(shift, a)
            idx = np.repeat(shift, ln)
            idx += _arange(tot)
            np.take(self.flat, idx, out=buf[o:o_end], mode="clip")  # clip: no buffered copy of out
            if pos is not None:
                pos[o:o_end] = np.repeat(np.arange(a + lo, b + lo, dtype=np.int64), ln)
            return zeros

        zeros = chunked.pmap(write, len(edges) - 1)
        out = DocBytes(buf, offsets)
        if zero_positions:
            return out, np.concatenate(zeros) if zeros else np.zeros(0, np.int64)
        return (out, pos) if with_positions else out


_ARANGE = np.arange(0, dtype=np.int64)


def _arange(n: int) -> np.ndarray:
    """0..n-1 from one shared, read-only array (grown when a chunk needs more)."""
    global _ARANGE
    a = _ARANGE
    if len(a) < n:
        a = np.arange(max(n, 2 * len(a), chunked.CHUNK * 8), dtype=np.int64)
        a.flags.writeable = False
        _ARANGE = a
    return a[:n]


def invalid_utf8_docs(docs: DocBytes, piece: int = 1 << 22) -> np.ndarray:
    """Which documents are not valid UTF-8 on their own. The buffer is decoded in pieces of about
    `piece` bytes cut before a byte that is not a continuation byte (10xxxxxx); a piece that
    fails, or holds a document starting with a continuation byte (whose predecessor may then end
    on an incomplete sequence that this one completes), has its documents decoded one by one."""
    buf, off = docs.buf, docs.offsets
    n = docs.n_docs
    bad = np.zeros(n, dtype=bool)
    if len(buf) == 0:
        return bad
    starts = off[:-1]
    nonempty = off[1:] > starts
    first = buf[np.minimum(starts, len(buf) - 1)]
    cont_start = starts[nonempty & ((first & 0xC0) == 0x80)]
    cuts = [0]
    while cuts[-1] + piece < len(buf):
        c = cuts[-1] + piece
        while c < len(buf) and (buf[c] & 0xC0) == 0x80:
            c += 1
        if c >= len(buf):
            break
        cuts.append(c)
    cuts.append(len(buf))
    mv = memoryview(buf)
    for a, b in zip(cuts[:-1], cuts[1:]):
        has_cont = np.searchsorted(cont_start, a, side="left") < np.searchsorted(cont_start, b, side="left")
        if not has_cont:
            try:
                str(mv[a:b], "utf-8")
                continue
            except UnicodeDecodeError:
                pass
        k0 = int(np.searchsorted(off, a, side="right")) - 1
        k1 = int(np.searchsorted(off, b, side="left"))
        for k in range(max(k0, 0), min(k1, n)):
            try:
                str(mv[off[k]:off[k + 1]], "utf-8")
            except UnicodeDecodeError:
                bad[k] = True
    return bad


class _Spans:
    """Which stream positions lie inside the spans, chunk by chunk; and the skipped first bytes."""

    def __init__(self, starts: np.ndarray, ends: np.ndarray, n: int, skip_first):
        self.starts, self.ends = starts, ends
        gap_lo, gap_hi = ends[:-1], starts[1:]
        self.usual = bool(np.all(gap_hi - gap_lo == 1))  # exactly one position (a BOS) between spans
        self.gaps = gap_lo
        self.edges = chunked.bounds(n)
        self.chunk_at = {int(e): k for k, e in enumerate(self.edges[:-1].tolist())}
        if self.usual:
            self.gap_r = chunked.locate(self.gaps, self.edges)
        self.skip = None
        if skip_first is not None and np.any(skip_first):
            self.skip = starts[np.asarray(skip_first, dtype=bool) & (starts < ends)]
            self.skip_r = chunked.locate(self.skip, self.edges)

    def _chunk(self, a: int) -> int:
        return self.chunk_at[a]

    def lengths(self, length: np.ndarray, region: np.ndarray, a: int, b: int, ids=None, out=None) -> np.ndarray:
        ln = np.take(length, region[a:b] if ids is None else ids, out=out, mode="clip")
        k = self._chunk(a)
        if self.usual:
            ln[self.gaps[self.gap_r[k]:self.gap_r[k + 1]] - a] = 0
        else:
            ln[~self._inside(a, b)] = 0
        if self.skip is not None:
            ln[self.skip[self.skip_r[k]:self.skip_r[k + 1]] - a] -= 1
        return ln

    def shift_skipped(self, shift: np.ndarray, a: int) -> None:
        if self.skip is not None:
            k = self._chunk(a)
            shift[self.skip[self.skip_r[k]:self.skip_r[k + 1]] - a] += 1

    def _inside(self, a: int, b: int) -> np.ndarray:
        """Positions a..b-1 inside some span: a ±1 cover over the chunk, seeded by the state at a."""
        s, e = self.starts, self.ends
        cover = np.zeros(b - a + 1, dtype=np.int8)
        k = int(np.searchsorted(s, a, side="right")) - 1
        cover[0] = 1 if k >= 0 and a < e[k] else 0
        si = s[(s > a) & (s < b)] - a  # span starts strictly inside the chunk
        ei = e[(e > a) & (e < b)] - a
        cover[si] += 1
        cover[ei] -= 1
        return np.cumsum(cover[:-1], dtype=np.int8) > 0
