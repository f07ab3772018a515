"""Chunked, threaded passes equal their whole-array definitions at every chunk size, with one
thread or several: chunk edges inside documents, runs and tokens must not change a result."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import chunked
from audit.accounting.metabytes import attribute_drift, meta_sums, position_bytes, span_sums
from audit.formats.meta import MetaTable
from audit.formats.shards import split_documents
from audit.tokenizers.bytetable import ByteTable
from tests.conftest import chunking


sizes = st.sampled_from([1, 2, 3, 5, 8, 64])
threads = st.sampled_from([1, 2, 3])


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.integers(-5, 9), max_size=60), points=st.lists(st.integers(0, 60), max_size=10),
       size=sizes, th=threads)
def test_prefix_at_is_the_running_sum(values, points, size, th):
    v = np.array(values, dtype=np.int64)
    pts = np.array([min(p, len(v)) for p in points], dtype=np.int64)
    with chunking(size, th):
        at, total, extra = chunked.prefix_at(lambda a, b: v[a:b], len(v), pts, extra=lambda a, b, x: (a, b))
    assert at.tolist() == [int(v[:p].sum()) for p in pts.tolist()]
    assert total == int(v.sum())
    covered = [i for a, b in extra for i in range(a, b)]
    assert covered == list(range(len(v)))  # every position exactly once, in order


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.integers(0, 4), max_size=50), size=sizes, th=threads)
def test_whole_array_helpers(values, size, th):
    v = np.array(values, dtype=np.uint16)
    with chunking(size, th):
        assert chunked.where_equal(v, 2).tolist() == np.flatnonzero(v == 2).tolist()
        assert chunked.count_equal(v, 3) == int(np.count_nonzero(v == 3))
        got, want = chunked.split_documents(v, 1), split_documents(v, 1)
        assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()
        if len(v):
            assert chunked.maximum(v) == int(v.max())
        w = v.copy()
        assert chunked.equal(v, w)
        if len(v):
            w[-1] += 1
            assert not chunked.equal(v, w)
        assert not chunked.equal(v, v[:-1]) or len(v) == 0


@settings(max_examples=150, deadline=None)
@given(pieces=st.lists(st.binary(max_size=5), min_size=1, max_size=12),
       stream=st.lists(st.integers(0, 14), max_size=80), cuts=st.lists(st.integers(0, 80), max_size=8),
       gap=st.integers(1, 3), skips=st.lists(st.booleans(), max_size=10), size=sizes, th=threads)
def test_gather_at_every_chunk_size(pieces, stream, cuts, gap, skips, size, th):
    """Spans with gaps of 1 (the BOS case) or more, empty spans, ids past the table (silent),
    zero-length pieces, and the first byte of some spans dropped."""
    table = ByteTable(pieces)
    tokens = np.array(stream, dtype=np.uint16)
    b = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    starts = np.array(b[:-1], dtype=np.int64)
    ends = np.maximum(np.array(b[1:], dtype=np.int64) - gap, starts)

    def piece(t):
        return pieces[t] if t < len(pieces) else b""

    skip = np.array([(skips[k] if k < len(skips) else False) and s < e and len(piece(stream[s])) > 0
                     for k, (s, e) in enumerate(zip(starts.tolist(), ends.tolist()))], dtype=bool)
    with chunking(size, th):
        docs, pos = table.gather(tokens, starts, ends, with_positions=True, skip_first=skip)
    expect, want_pos = [], []
    for k, (s, e) in enumerate(zip(starts.tolist(), ends.tolist())):
        out, where = b"", []
        for i in range(s, e):
            out += piece(stream[i])
            where += [i] * len(piece(stream[i]))
        if skip[k]:
            out, where = out[1:], where[1:]
        expect.append(out)
        want_pos += where
    assert docs.to_list() == expect
    assert pos.tolist() == want_pos


V = 10
metas = st.tuples(st.lists(st.integers(0, 5), min_size=V, max_size=V),
                  st.lists(st.booleans(), min_size=V, max_size=V),
                  st.lists(st.booleans(), min_size=V, max_size=V)).map(
    lambda t: MetaTable(np.array(t[0], np.int16), np.array(t[1]), np.array(t[2])))


@settings(max_examples=100, deadline=None)
@given(stream=st.lists(st.integers(0, V - 1), max_size=70), meta=metas, bos=st.integers(0, V - 1),
       stop=st.integers(0, 70), size=sizes, th=threads)
def test_meta_sums_at_every_chunk_size(stream, meta, bos, stop, size, th):
    tokens = np.array(stream, dtype=np.uint16)
    starts = np.flatnonzero(tokens == bos)
    ends = np.append(starts[1:], len(tokens)).astype(np.int64)
    stop = min(stop, len(tokens))
    with chunking(size, th):
        ms = meta_sums(tokens, meta, starts, ends, stop)
    pos = position_bytes(tokens, meta)
    assert ms.full == int(pos.sum())
    assert ms.plain == int(pos[:stop].sum())  # position 0 is never a target, so [1:stop] = [:stop]
    assert ms.per_span.tolist() == span_sums(pos, starts, ends).tolist()
    assert ms.occurrences[:V].tolist() == np.bincount(tokens[1:], minlength=V)[:V].tolist()
    assert ms.max_id == (int(tokens.max()) if len(tokens) else -1)


def test_scratch_is_reused_and_sized():
    a = chunked.scratch("t", 10, np.int64)
    b = chunked.scratch("t", 5, np.int64)
    assert len(a) == 10 and len(b) == 5 and np.shares_memory(a, b)
    c = chunked.scratch("t", 5, np.int32)  # another dtype: a new buffer
    assert c.dtype == np.int32


def test_thread_count_from_the_environment(monkeypatch):
    monkeypatch.setenv("GOLFCHECK_THREADS", "3")
    assert chunked.workers() == 3
    monkeypatch.setenv("GOLFCHECK_THREADS", "zero")
    assert 1 <= chunked.workers() <= 8
    assert chunked.pmap(lambda i: i * i, 5) == [0, 1, 4, 9, 16]


@settings(max_examples=80, deadline=None)
@given(stream=st.lists(st.integers(0, V - 1), max_size=70), meta=metas, ref=metas, size=sizes, th=threads,
       given_occ=st.booleans())
def test_drift_attribution_at_every_chunk_size(stream, meta, ref, size, th, given_occ):
    tokens = np.array(stream, dtype=np.uint16)
    occ = np.bincount(tokens[1:], minlength=V) if given_occ and len(tokens) else None
    with chunking(size, th):
        d = attribute_drift(tokens, meta, ref, occ)
    assert d.total == int(position_bytes(tokens, meta).sum()) - int(position_bytes(tokens, ref).sum())
    assert d.total == int(d.by_id.sum())
    assert d.occurrences[:V].tolist() == np.bincount(tokens[1:], minlength=V)[:V].tolist()


def test_pmap_in_a_forked_child(monkeypatch):
    """A child forked after the pool exists gets threads of its own instead of hanging."""
    import os

    monkeypatch.setenv("GOLFCHECK_THREADS", "2")
    assert chunked.pmap(lambda i: i, 3) == [0, 1, 2]  # the pool exists now
    pid = os.fork()
    if pid == 0:  # child: a hang (threads that do not exist here) ends by SIGALRM, a failure
        import signal

        signal.alarm(20)
        ok = chunked.pmap(lambda i: i + 1, 3) == [1, 2, 3]
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


@settings(max_examples=150, deadline=None)
@given(stream=st.lists(st.one_of(st.integers(0, 9), st.sampled_from([10, 11, 12, 13, 14, 15, 16, 17])), max_size=80),
       cuts=st.lists(st.integers(0, 80), max_size=8), gap=st.integers(1, 2), size=sizes, th=threads)
def test_byte_run_check_at_every_chunk_size(stream, cuts, gap, size, th):
    """ByteTable.lengths/gather with check_runs: a span is flagged exactly when its byte-piece
    runs (ids 10..17, non-byte ids end a run) are not all valid UTF-8, whatever the chunking."""
    byte_of = {10: 0xE2, 11: 0x82, 12: 0xAC, 13: 0xC3, 14: 0xA9, 15: 0x41, 16: 0xF0, 17: 0x9F}
    pieces = [b"a", b" b", b"", b"cd", b"\xc3\xa9", b"x", b"", b"yz", b"-", b"q"] + [bytes([byte_of[i]]) for i in range(10, 18)]
    run_bytes = np.array([0x20] * 10 + [byte_of[i] for i in range(10, 18)], np.uint8)
    table = ByteTable(pieces, run_bytes)
    tokens = np.array(stream, dtype=np.uint16)
    b = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    starts = np.array(b[:-1], dtype=np.int64)
    ends = np.maximum(np.array(b[1:], dtype=np.int64) - gap, starts)

    def runs_valid(ids):
        skel = bytes(int(run_bytes[i]) for i in ids)
        try:
            skel.decode("utf-8")
            return True
        except UnicodeDecodeError:
            return False

    want_bad = [not runs_valid(stream[s:e]) for s, e in zip(starts.tolist(), ends.tolist())]
    want_len = [sum(len(pieces[t]) for t in stream[s:e]) for s, e in zip(starts.tolist(), ends.tolist())]
    with chunking(size, th):
        lengths, bad = table.lengths(tokens, starts, ends, check_runs=True)
        docs, bad2 = table.gather(tokens, starts, ends, check_runs=True)
    assert bad.tolist() == want_bad and bad2.tolist() == want_bad
    assert lengths.tolist() == want_len == docs.lengths.tolist()


def test_maximum_is_remembered_only_for_read_only_arrays():
    """A read-only stream's maximum is computed once; a writable array, or a read-only view of
    one, is recomputed every time (its values may change)."""
    ro = np.arange(10, dtype=np.uint16)
    ro.flags.writeable = False
    assert chunked.maximum(ro) == 9
    assert id(ro) in chunked._MAX
    w = np.arange(5)
    assert chunked.maximum(w) == 4
    w[0] = 99
    assert chunked.maximum(w) == 99
    base = np.arange(6)
    view = base[:]
    view.flags.writeable = False
    assert chunked.maximum(view) == 5
    base[1] = 50
    assert chunked.maximum(view) == 50
    key = id(ro)
    del ro
    assert key not in chunked._MAX
