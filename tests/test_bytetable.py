"""The shared vectorised gather equals a plain Python join, for any table and any spans."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.tokenizers.bytetable import ByteTable


def _case(pieces, stream, cuts):
    """The table, the stream, and spans cut at `cuts`, separated by one skipped position (a BOS),
    like documents."""
    bounds = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    starts = np.array(bounds[:-1], dtype=np.int64)
    ends = np.maximum(np.array(bounds[1:], dtype=np.int64) - 1, starts)
    return ByteTable(pieces), np.array(stream, dtype=np.uint16), starts, ends


@settings(max_examples=150, deadline=None)
@given(pieces=st.lists(st.binary(max_size=6), min_size=1, max_size=20),
       stream=st.lists(st.integers(0, 30), max_size=200), cuts=st.lists(st.integers(0, 200), max_size=12))
def test_gather_equals_python_join(pieces, stream, cuts):
    table, tokens, starts, ends = _case(pieces, stream, cuts)
    docs, pos = table.gather(tokens, starts, ends, with_positions=True)
    expect = [b"".join(pieces[t] if t < len(pieces) else b"" for t in stream[s:e])
              for s, e in zip(starts.tolist(), ends.tolist())]
    assert docs.to_list() == expect
    want_pos = [i for s, e in zip(starts.tolist(), ends.tolist()) for i in range(s, e)
                for _ in range(len(pieces[stream[i]]) if stream[i] < len(pieces) else 0)]
    assert pos.tolist() == want_pos


@settings(max_examples=150, deadline=None)
@given(pieces=st.lists(st.binary(max_size=6), min_size=1, max_size=20),
       stream=st.lists(st.integers(0, 30), max_size=200), cuts=st.lists(st.integers(0, 200), max_size=12))
def test_zero_positions_are_the_silent_tokens(pieces, stream, cuts):
    table, tokens, starts, ends = _case(pieces, stream, cuts)
    plain = table.gather(tokens, starts, ends)
    docs, zeros = table.gather(tokens, starts, ends, zero_positions=True)
    assert docs.to_list() == plain.to_list()
    inside = {i for s, e in zip(starts.tolist(), ends.tolist()) for i in range(s, e)}
    silent = {i for i in inside if stream[i] >= len(pieces) or not pieces[stream[i]]}
    assert silent <= set(zeros.tolist()) and set(zeros.tolist()) - silent <= set(range(len(stream))) - inside


_utf8_bits = st.sampled_from([b"a", b" ", "é".encode(), "中".encode(), "🙂".encode(), b"\xc3", b"\xa9", b"\xe2\x82",
                              b"\xac", b"\xf0\x9f", b"\x80", b"\xed\xa0\x80", b"\xff", b""])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_utf8_bits, max_size=8).map(b"".join), max_size=12), st.integers(1, 16))
def test_invalid_utf8_docs_equals_decoding_each_document(docs, piece):
    """Small pieces put cuts everywhere: documents that are invalid alone but valid concatenated
    (an incomplete sequence completed by the next document) are still found."""
    from audit.formats.docs import DocBytes
    from audit.tokenizers.bytetable import invalid_utf8_docs

    def bad(d):
        try:
            d.decode("utf-8")
            return False
        except UnicodeDecodeError:
            return True

    assert invalid_utf8_docs(DocBytes.from_list(docs), piece=piece).tolist() == [bad(d) for d in docs]
