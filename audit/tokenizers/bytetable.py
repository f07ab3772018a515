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
`lengths` is the sizing pass alone: every document's decoded length without writing a byte.
With `run_bytes` the sizing pass also checks that every byte-fallback run is valid UTF-8
(audit.tokenizers.utf8, on the ids themselves); `invalid_utf8_docs` is the check on decoded
bytes for the cases that path does not cover, by decoding megabyte pieces of the buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit import chunked
from audit.formats.docs import DocBytes
from audit.tokenizers import utf8


class ByteTable:
    def __init__(self, id_bytes: list[bytes], run_bytes: np.ndarray | None = None):
        """`run_bytes` (uint8 per id): the byte of each byte-fallback id and utf8.SPACE for every
        other id, when byte runs must be valid UTF-8 on their own (SentencePiece): then
        `layout(check_runs=True)` finds the documents with an invalid run in its sizing pass."""
        lens = [len(b) for b in id_bytes] + [0]  # + the silent id
        self.n = len(id_bytes)
        self.length = np.array(lens, dtype=np.int64)
        self.flat = np.frombuffer(b"".join(id_bytes) + b"\0", dtype=np.uint8)
        self.off = np.zeros(len(lens), dtype=np.int64)
        np.cumsum(lens[:-1], out=self.off[1:])
        self.run_bytes = None
        if run_bytes is not None:
            self.run_bytes = np.append(np.asarray(run_bytes, np.uint8), np.uint8(utf8.SPACE))

    def layout(self, tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray,
               skip_first: np.ndarray | None = None, check_runs: bool = False) -> "Layout":
        """The sizing pass: every document's decoded length (offsets) and where each chunk's
        output begins, without writing a byte; with check_runs also which documents hold a byte
        run that is not valid UTF-8 (`Layout.bad_runs`), from the same pass."""
        tokens = np.asarray(tokens)
        starts = np.asarray(starts, dtype=np.int64)
        ends = np.asarray(ends, dtype=np.int64)
        lo, hi = int(starts[0]), int(ends[-1])
        # ids past the table need no remapping: every lookup is np.take(mode="clip") into a
        # table whose last entry, index n, is the silent id (no bytes, a space in a run skeleton)
        region = tokens[lo:hi]
        spans = _Spans(starts - lo, ends - lo, len(region), skip_first)
        runs = _RunCheck(self.run_bytes, region, spans) if check_runs and self.run_bytes is not None else None

        def sizes(a: int, b: int) -> np.ndarray:
            m = b - a
            ids = chunked.scratch("size_ids", m, np.intp)
            np.copyto(ids, region[a:b])  # one index cast per chunk, used by every lookup
            return spans.lengths(self.length, region, a, b, ids, out=chunked.scratch("size_ln", m, np.int64))

        edges = chunked.bounds(len(region))
        # the run check reads the ids `sizes` just cast (same thread, same chunk, same scratch)
        extra = (lambda a, b, _v: runs.errors(a, b, chunked.scratch("size_ids", b - a, np.intp))) if runs else None
        # running sums at every span start, at the end, and at the chunk edges (where each
        # chunk's output begins)
        at, total, errs = chunked.prefix_at(sizes, len(region), np.concatenate([starts - lo, [hi - lo], edges]),
                                            extra=extra)
        ndoc = len(starts)
        bad = runs.documents(errs) if runs else None
        return Layout(region, lo, spans, edges, at[:ndoc + 1], at[ndoc + 1:], total, bad)

    def lengths(self, tokens, starts, ends, skip_first=None, check_runs: bool = False):
        """Decoded length of every document (int64), and with check_runs the bad-run mask."""
        if len(starts) == 0:
            return np.zeros(0, np.int64), (np.zeros(0, bool) if check_runs else None)
        lay = self.layout(tokens, starts, ends, skip_first, check_runs)
        return np.diff(lay.offsets), lay.bad_runs

    def gather(self, tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray,
               with_positions: bool = False, skip_first: np.ndarray | None = None,
               zero_positions: bool = False, check_runs: bool = False):
        """Bytes of tokens[starts[k]:ends[k]] for every k (sorted, disjoint spans) → DocBytes;
        with_positions also returns the stream position each output byte came from;
        zero_positions returns instead the stream positions of the tokens that contribute no
        byte (inside the spans, or a gap between them: the caller tells them apart);
        check_runs returns instead the documents with an invalid byte run (see `layout`).
        skip_first (bool per span) drops the first byte of those spans' first token (the caller
        guarantees that token has one)."""
        starts = np.asarray(starts, dtype=np.int64)
        if len(starts) == 0:
            empty = DocBytes(np.zeros(0, np.uint8), np.zeros(1, np.int64))
            if check_runs:
                return empty, np.zeros(0, bool)
            return (empty, np.zeros(0, np.int64)) if with_positions or zero_positions else empty
        lay = self.layout(tokens, starts, ends, skip_first, check_runs)
        buf = np.empty(lay.total, dtype=np.uint8)
        pos = np.empty(lay.total, dtype=np.int64) if with_positions else None
        def write(k: int):
            o, o_end = int(lay.out_at[k]), int(lay.out_at[k + 1])
            ln = self._write(lay, k, buf[o:o_end])
            if pos is not None and o_end > o:
                a, b = int(lay.edges[k]) + lay.lo, int(lay.edges[k + 1]) + lay.lo
                pos[o:o_end] = np.repeat(np.arange(a, b, dtype=np.int64), ln)
            return np.flatnonzero(ln == 0) + (int(lay.edges[k]) + lay.lo) if zero_positions else None

        zeros = chunked.pmap(write, len(lay.edges) - 1)
        out = DocBytes(buf, lay.offsets)
        if check_runs:
            return out, lay.bad_runs
        if zero_positions:
            return out, np.concatenate(zeros) if zeros else np.zeros(0, np.int64)
        return (out, pos) if with_positions else out

    def differing(self, lay: "Layout", ref: np.ndarray, ref_at: int) -> np.ndarray:
        """Documents whose bytes differ from the reference bytes ref[ref_at + offset …], where
        every document has the reference document's length (the caller checked). Each chunk's
        bytes go to a reused scratch buffer and are compared with the reference slice at the same
        offset: no second output buffer (fresh memory costs more than decoding it, in a VM)."""
        def chunk(k: int) -> np.ndarray:
            o, o_end = int(lay.out_at[k]), int(lay.out_at[k + 1])
            if o_end == o:
                return np.zeros(0, np.int64)
            mine = chunked.scratch("cmp_bytes", o_end - o, np.uint8)
            self._write(lay, k, mine)
            theirs = ref[ref_at + o:ref_at + o_end]
            if np.array_equal(mine, theirs):
                return np.zeros(0, np.int64)
            diff = np.flatnonzero(mine != theirs) + o
            return np.unique(np.searchsorted(lay.offsets, diff, side="right") - 1)

        parts = chunked.pmap(chunk, len(lay.edges) - 1)
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    def differing_walk(self, lay: "Layout", ref_table: "ByteTable", ref: "Layout") -> np.ndarray:
        """`differing` against a reference that is itself a token stream (its table and layout),
        neither stream written in full: every document has the reference document's length (the
        caller checked), so both streams' bytes line up offset for offset. The chunks are cut
        into one contiguous range per worker; each walks its range in order, decoding this
        stream's chunk and the reference chunks under it into reused scratch windows."""
        n_chunks = len(lay.edges) - 1
        cut = np.linspace(0, n_chunks, min(chunked.workers(), max(n_chunks, 1)) + 1).astype(np.int64)
        ref_sizes = np.diff(ref.out_at)
        window_cap = int(np.diff(lay.out_at).max(initial=0)) + 2 * int(ref_sizes.max(initial=0)) + 1

        def walk(r: int) -> np.ndarray:
            k0, k1 = int(cut[r]), int(cut[r + 1])
            bad: list[np.ndarray] = []
            if k0 == k1:
                return np.zeros(0, np.int64)
            window = chunked.scratch("walk_ref", window_cap, np.uint8)
            j = int(np.searchsorted(ref.out_at, lay.out_at[k0], side="right")) - 1
            w_lo = w_hi = int(ref.out_at[max(j, 0)])
            for k in range(k0, k1):
                o, o_end = int(lay.out_at[k]), int(lay.out_at[k + 1])
                if o_end == o:
                    continue
                while w_hi < o_end:  # append the reference chunks under this one
                    size = int(ref_sizes[j])
                    ref_table._write(ref, j, window[w_hi - w_lo:w_hi - w_lo + size])
                    w_hi += size
                    j += 1
                mine = chunked.scratch("walk_mine", o_end - o, np.uint8)
                self._write(lay, k, mine)
                theirs = window[o - w_lo:o_end - w_lo]
                if not np.array_equal(mine, theirs):
                    diff = np.flatnonzero(mine != theirs) + o
                    bad.append(np.unique(np.searchsorted(lay.offsets, diff, side="right") - 1))
                keep = w_hi - o_end  # the reference bytes past this chunk move to the front
                window[:keep] = window[o_end - w_lo:w_hi - w_lo]
                w_lo = o_end
            return np.concatenate(bad) if bad else np.zeros(0, np.int64)

        parts = chunked.pmap(walk, len(cut) - 1)
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    def _write(self, lay: "Layout", k: int, out: np.ndarray):
        """Chunk k's bytes into `out` (its size is the chunk's output): output byte p of token i
        reads flat[p + off[i] − start[i]]. Returns the token lengths (a scratch buffer)."""
        region, spans = lay.region, lay.spans
        a, b = int(lay.edges[k]), int(lay.edges[k + 1])
        m, tot = b - a, len(out)
        ids = chunked.scratch("ids", m, np.intp)
        np.copyto(ids, region[a:b])
        ln = spans.lengths(self.length, region, a, b, ids, out=chunked.scratch("ln", m, np.int64))
        if tot == 0:
            return ln
        start = np.cumsum(ln, out=chunked.scratch("start", m, np.int64))
        start -= ln  # where each token's bytes begin in this chunk's output
        # each token's shift off[i] − start[i] repeated over its bytes (zero-length tokens
        # vanish), plus the output position p
        shift = np.take(self.off, ids, out=chunked.scratch("shift", m, np.int64), mode="clip")
        shift -= start
        spans.shift_skipped(shift, a, b)
        idx = np.repeat(shift, ln)
        idx += _arange(tot)
        np.take(self.flat, idx, out=out, mode="clip")  # clip: no buffered copy of out
        return ln


class SizingRider:
    """The sizing pass of `ByteTable.lengths` carried along another chunked pass over the whole
    stream (audit.accounting.metabytes.meta_sums): that pass casts each chunk's ids once and
    hands them over (`chunk`), so decoded lengths and the byte-run check cost no second walk
    over the stream. `result()` after the pass: (per-document lengths, bad-run mask or None)."""

    def __init__(self, table: "ByteTable", tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                 skip_first=None, check_runs: bool = False):
        starts = np.asarray(starts, dtype=np.int64)
        ends = np.asarray(ends, dtype=np.int64)
        self.table, self.lo = table, int(starts[0])
        self.region = np.asarray(tokens)[self.lo:int(ends[-1])]
        self.n = len(self.region)
        self.spans = _Spans(starts - self.lo, ends - self.lo, self.n, skip_first)
        self.runs = _RunCheck(table.run_bytes, self.region, self.spans) \
            if check_runs and table.run_bytes is not None else None
        # running sums wanted at the documents' starts, the end, and the edges of the chunks a
        # later write pass will use (so the result is a whole Layout); kept sorted for lookups
        self.edges = chunked.bounds(self.n)
        wanted = np.concatenate([starts - self.lo, [self.n], self.edges])
        self.order = np.argsort(wanted, kind="stable")
        self.points = wanted[self.order]
        self.n_docs = len(starts)
        self.parts: dict[int, tuple] = {}

    def chunk(self, a: int, b: int, ids: np.ndarray) -> None:
        """Stream chunk [a, b) whose ids (intp) the carrying pass has cast."""
        ra, rb = max(a - self.lo, 0), min(b - self.lo, self.n)
        if ra >= rb:
            return
        sub = ids[ra + self.lo - a:rb + self.lo - a]
        ln = self.spans.lengths(self.table.length, self.region, ra, rb, sub,
                                out=chunked.scratch("rider_ln", rb - ra, np.int64))
        i, j = np.searchsorted(self.points, ra), np.searchsorted(self.points, rb)
        at, total = chunked.prefix_within(ln, self.points[i:j] - ra)
        errs = self.runs.errors(ra, rb, sub) if self.runs is not None else None
        self.parts[ra] = (i, j, at, total, errs)  # (one chunk per key: safe across threads)

    def layout(self) -> "Layout":
        """After the carrying pass: what ByteTable.layout would have returned."""
        at = np.zeros(len(self.points), np.int64)
        base = 0
        for ra in sorted(self.parts):
            i, j, part, total, _ = self.parts[ra]
            at[i:j] = part + base
            base += total
        at[self.points >= self.n] = base
        prefix = np.empty_like(at)
        prefix[self.order] = at
        errs = [self.parts[ra][4] for ra in sorted(self.parts)]
        bad = self.runs.documents(errs) if self.runs is not None else None
        k = self.n_docs
        return Layout(self.region, self.lo, self.spans, self.edges, prefix[:k + 1], prefix[k + 1:], base, bad)

    def result(self) -> tuple[np.ndarray, np.ndarray | None]:
        """After the carrying pass: (per-document lengths, bad-run mask or None)."""
        lay = self.layout()
        return np.diff(lay.offsets), lay.bad_runs


@dataclass(frozen=True)
class Layout:
    """What the sizing pass learnt: the region of the stream the spans cover (from `lo`), the
    chunk edges, each document's offset in the output, each chunk's output offset."""

    region: np.ndarray
    lo: int
    spans: "_Spans"
    edges: np.ndarray
    offsets: np.ndarray  # ndoc + 1
    out_at: np.ndarray  # per chunk edge
    total: int
    bad_runs: np.ndarray | None  # per document: an invalid byte run (check_runs only)


class _RunCheck:
    """UTF-8 validity of every byte run of the spans, chunk by chunk (audit.tokenizers.utf8):
    the run skeleton of a chunk plus 3 positions of left context and 1 ahead, positions between
    spans (the BOS) forced to a space so runs never join across documents."""

    def __init__(self, run_bytes: np.ndarray, region: np.ndarray, spans: "_Spans"):
        self.run_bytes, self.region, self.spans = run_bytes, region, spans
        self.n = len(region)

    def _context(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(skeleton bytes, outside-the-spans) at a few positions p: SPACE and outside beyond
        the region or between spans."""
        inside = (p >= 0) & (p < self.n)
        inside[inside] = self.spans.inside_at(p[inside])
        out = np.full(len(p), utf8.SPACE, np.uint8)
        out[inside] = self.run_bytes[np.minimum(self.region[p[inside]], len(self.run_bytes) - 1)]
        return out, ~inside

    def errors(self, a: int, b: int, ids: np.ndarray) -> np.ndarray:
        m, c = b - a, utf8.CONTEXT
        tail = c if b == self.n else 0  # after the last chunk: test that no sequence is cut off
        size = c + m + tail + 1
        w = chunked.scratch("runs_w", size, np.uint8)
        apart = chunked.scratch("runs_apart", size, bool)
        w[:c], apart[:c] = self._context(np.arange(a - c, a))
        np.take(self.run_bytes, ids, out=w[c:c + m], mode="clip")
        apart[c:c + m] = False
        self.spans.blank_outside(w[c:c + m], a, b, utf8.SPACE, apart[c:c + m])
        w[c + m:], apart[c + m:] = self._context(np.arange(b, b + tail + 1))
        return utf8.window_errors(w, chunked.scratch, apart) + a

    def documents(self, errs: list) -> np.ndarray:
        """Each failing position belongs to the last span starting at or before it (a run cut
        off by the end of its document fails on the BOS after it)."""
        bad = np.zeros(len(self.spans.starts), bool)
        pos = np.concatenate(errs) if errs else np.zeros(0, np.int64)
        if pos.size:
            d = np.searchsorted(self.spans.starts, np.minimum(pos, self.n - 1), side="right") - 1
            bad[d[d >= 0]] = True
        return bad


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
    """Which positions of a region lie inside the spans, for any range [a, b) of it (chunks of a
    pass over the region, or of a pass over the whole stream that carries this one along); and
    the skipped first bytes."""

    def __init__(self, starts: np.ndarray, ends: np.ndarray, n: int, skip_first):
        self.starts, self.ends = starts, ends
        gap_lo, gap_hi = ends[:-1], starts[1:]
        self.usual = bool(np.all(gap_hi - gap_lo == 1))  # exactly one position (a BOS) between spans
        self.gaps = gap_lo
        self.skip = None
        if skip_first is not None and np.any(skip_first):
            self.skip = starts[np.asarray(skip_first, dtype=bool) & (starts < ends)]

    @staticmethod
    def _within(points: np.ndarray, a: int, b: int) -> np.ndarray:
        """The sorted points in [a, b), relative to a."""
        return points[np.searchsorted(points, a):np.searchsorted(points, b)] - a

    def lengths(self, length: np.ndarray, region: np.ndarray, a: int, b: int, ids=None, out=None) -> np.ndarray:
        ln = np.take(length, region[a:b] if ids is None else ids, out=out, mode="clip")
        if self.usual:
            ln[self._within(self.gaps, a, b)] = 0
        else:
            ln[~self._inside(a, b)] = 0
        if self.skip is not None:
            ln[self._within(self.skip, a, b)] -= 1
        return ln

    def shift_skipped(self, shift: np.ndarray, a: int, b: int) -> None:
        if self.skip is not None:
            shift[self._within(self.skip, a, b)] += 1

    def inside_at(self, p: np.ndarray) -> np.ndarray:
        """Whether each position p lies inside some span."""
        k = np.searchsorted(self.starts, p, side="right") - 1
        return (k >= 0) & (p < self.ends[np.maximum(k, 0)])

    def blank_outside(self, values: np.ndarray, a: int, b: int, fill, mark: np.ndarray) -> None:
        """values[i] = fill and mark[i] = True for every position a + i outside the spans."""
        at = self._within(self.gaps, a, b) if self.usual else ~self._inside(a, b)
        values[at] = fill
        mark[at] = True

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
