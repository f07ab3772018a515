"""The shared vectorised gather equals a plain Python join, for any table and any spans."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.tokenizers.bytetable import ByteTable


@settings(max_examples=150, deadline=None)
@given(pieces=st.lists(st.binary(max_size=6), min_size=1, max_size=20),
       stream=st.lists(st.integers(0, 30), max_size=200), cuts=st.lists(st.integers(0, 200), max_size=12))
def test_gather_equals_python_join(pieces, stream, cuts):
    table = ByteTable(pieces)
    tokens = np.array(stream, dtype=np.uint16)
    bounds = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    # spans separated by one skipped position (a BOS), like documents
    starts = np.array(bounds[:-1], dtype=np.int64)
    ends = np.maximum(np.array(bounds[1:], dtype=np.int64) - 1, starts)
    docs, pos = table.gather(tokens, starts, ends, with_positions=True)
    expect = [b"".join(pieces[t] if t < len(pieces) else b"" for t in stream[s:e])
              for s, e in zip(starts.tolist(), ends.tolist())]
    assert docs.to_list() == expect
    want_pos = [i for s, e in zip(starts.tolist(), ends.tolist()) for i in range(s, e)
                for _ in range(len(pieces[stream[i]]) if stream[i] < len(pieces) else 0)]
    assert pos.tolist() == want_pos
