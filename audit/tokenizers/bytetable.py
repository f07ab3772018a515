"""One flat byte table per tokenizer, and the vectorised gather every backend decodes with.

Id i's bytes are flat[off[i]:off[i] + length[i]]; one extra silent id stands for every id past
the table. `gather` concatenates the bytes of many document spans of a stream at once: lengths
by one table lookup, positions outside the spans (the BOS between documents) zeroed, per-document
sizes by `np.add.reduceat`, then the bytes copied in chunks by `np.repeat` index arithmetic. No
Python loop over tokens or documents.
"""

from __future__ import annotations

import numpy as np

from audit.formats.docs import DocBytes

CHUNK = 1 << 22  # tokens per copy step: bounds the index temporaries to ~100 MB


class ByteTable:
    def __init__(self, id_bytes: list[bytes]):
        lens = [len(b) for b in id_bytes] + [0]  # + the silent id
        self.n = len(id_bytes)
        # A small dtype makes the per-token length lookup (the hottest gather) cheaper.
        self.length = np.array(lens, dtype=np.uint8 if max(lens) < 256 else np.int32)
        self.off = np.zeros(len(lens), dtype=np.int64)
        np.cumsum(lens[:-1], out=self.off[1:])
        self.flat = np.frombuffer(b"".join(id_bytes) + b"\0", dtype=np.uint8)

    def _indices(self, ids: np.ndarray, ln: np.ndarray, tot: int) -> np.ndarray:
        """flat-table index of every output byte of `ids`, as one running sum: +1 per byte, and at
        each token's first byte a jump from the previous token's last byte to its own offset.
        int32 and no per-byte repeat/arange keep it to two passes over the output."""
        keep = ln > 0
        first_out = (np.cumsum(ln) - ln)[keep]
        off = self.off[ids[keep]]
        last_prev = np.empty_like(off)
        last_prev[0] = 0  # idx[0] = step[0] = off[0]
        last_prev[1:] = off[:-1] + ln[keep][:-1] - 1
        dtype = np.int32 if len(self.flat) < 2**31 else np.int64
        step = np.ones(tot, dtype=dtype)
        step[first_out] = off - last_prev
        return np.cumsum(step, dtype=dtype)

    def gather(self, tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray,
               with_positions: bool = False):
        """Bytes of tokens[starts[k]:ends[k]] for every k (sorted, disjoint spans) → DocBytes;
        with_positions also returns the stream position each output byte came from."""
        tokens = np.asarray(tokens)
        starts = np.asarray(starts, dtype=np.int64)
        ends = np.asarray(ends, dtype=np.int64)
        ndoc = len(starts)
        if ndoc == 0:
            empty = DocBytes(np.zeros(0, np.uint8), np.zeros(1, np.int64))
            return (empty, np.zeros(0, np.int64)) if with_positions else empty
        lo, hi = int(starts[0]), int(ends[-1])
        region = tokens[lo:hi]
        if region.size and int(region.max()) >= self.n:
            region = np.where(region < self.n, region, self.n)  # ids past the table are silent
        lens = np.zeros(len(region) + 1, dtype=self.length.dtype)
        lens[:-1] = self.length[region]
        gap_lo, gap_hi = ends[:-1] - lo, starts[1:] - lo
        if np.any(gap_hi - gap_lo != 1):  # general case: mask everything outside the spans
            cover = np.zeros(len(region) + 1, dtype=np.int32)
            np.add.at(cover, starts - lo, 1)
            np.add.at(cover, ends - lo, -1)
            lens[:-1][np.cumsum(cover[:-1]) <= 0] = 0
        elif gap_lo.size:  # the usual case: exactly one BOS between documents
            lens[gap_lo] = 0
        doc_len = np.add.reduceat(lens, starts - lo, dtype=np.int64)
        doc_len[starts == ends] = 0
        offsets = np.zeros(ndoc + 1, dtype=np.int64)
        np.cumsum(doc_len, out=offsets[1:])
        buf = np.empty(int(offsets[-1]), dtype=np.uint8)
        pos = np.empty(len(buf), dtype=np.int64) if with_positions else None
        o = 0
        for a in range(0, len(region), CHUNK):
            ids = region[a:a + CHUNK]
            ln = lens[a:a + len(ids)].astype(np.int64)
            tot = int(ln.sum())
            if tot == 0:
                continue
            buf[o:o + tot] = self.flat[self._indices(ids, ln, tot)]
            if pos is not None:
                pos[o:o + tot] = np.repeat(np.arange(a, a + len(ids), dtype=np.int64) + lo, ln)
            o += tot
        out = DocBytes(buf, offsets)
        return (out, pos) if with_positions else out
