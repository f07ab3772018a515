"""Document-by-document comparison of two `DocBytes` (decoded vs source, …)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from audit import chunked
from audit.formats.docs import DocBytes
from audit.reporting.text import show_bytes

EXCERPT = 24  # bytes each side of the first difference


def escape(b: bytes) -> str:
    """A one-line rendering of bytes: text where UTF-8 is valid, control characters and invalid
    bytes as \\xNN, once (not Python's repr, which hid `ä` behind `\\xe4`)."""
    return show_bytes(b)


@dataclass
class BadDoc:
    doc: int
    offset: int  # first differing byte offset within the document
    len_a: int
    len_b: int
    excerpt_a: str
    excerpt_b: str
    raw_a: bytes = field(default=b"", repr=False)  # the excerpts' bytes, for a named-character diff
    raw_b: bytes = field(default=b"", repr=False)

    def row(self) -> list:
        return [self.doc, self.offset, self.len_a, self.len_b, self.excerpt_a, self.excerpt_b]


@dataclass
class DocComparison:
    n_docs: int
    n_bad: int
    bad_docs: np.ndarray  # indices of documents that differ
    examples: list[BadDoc] = field(default_factory=list)
    bytes_a: int = 0
    bytes_b: int = 0


def first_difference(a: bytes, b: bytes) -> int:
    m = min(len(a), len(b))
    if m:
        ne = np.flatnonzero(np.frombuffer(a, np.uint8, m) != np.frombuffer(b, np.uint8, m))
        if ne.size:
            return int(ne[0])
    return m


def bad_doc(k: int, a: bytes, b: bytes) -> BadDoc:
    off = first_difference(a, b)
    lo = max(off - EXCERPT, 0)
    ea, eb = a[lo:off + EXCERPT], b[lo:off + EXCERPT]
    return BadDoc(k, off, len(a), len(b), escape(ea), escape(eb), ea, eb)


def compare_docs(a: DocBytes, b: DocBytes, max_examples: int = 20) -> DocComparison:
    """Which documents differ; the first `max_examples` with offset and excerpts. Requires equal doc counts."""
    assert a.n_docs == b.n_docs
    la, lb = a.lengths, b.lengths
    same_len = la == lb
    if same_len.all() and a.total == b.total and chunked.equal(
            a.buf[a.offsets[0]:a.offsets[-1]], b.buf[b.offsets[0]:b.offsets[-1]]):
        return DocComparison(a.n_docs, 0, np.zeros(0, np.int64), [], a.total, b.total)
    bad = ~same_len
    # equal-length documents: compare bytes (a Python loop only over those, memcmp each)
    ra, rb = a.buf.tobytes(), b.buf.tobytes()
    oa, ob = a.offsets.tolist(), b.offsets.tolist()
    for k in np.flatnonzero(same_len).tolist():
        if ra[oa[k]:oa[k + 1]] != rb[ob[k]:ob[k + 1]]:
            bad[k] = True
    idx = np.flatnonzero(bad)
    ex = [bad_doc(k, ra[oa[k]:oa[k + 1]], rb[ob[k]:ob[k + 1]]) for k in idx[:max_examples].tolist()]
    return DocComparison(a.n_docs, int(idx.size), idx, ex, a.total, b.total)
