"""audit.tokenizers.utf8: the array-operation UTF-8 check equals CPython's decoder."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import chunked
from audit.tokenizers import utf8


def valid(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def arr(b: bytes) -> np.ndarray:
    return np.frombuffer(b, np.uint8)


def test_every_byte_and_every_pair():
    for x in range(256):
        assert (utf8.errors(arr(bytes([x]))).size == 0) == valid(bytes([x])), hex(x)
    for x, y in itertools.product(range(256), repeat=2):
        b = bytes([x, y])
        assert (utf8.errors(arr(b)).size == 0) == valid(b), b.hex()


# every class boundary of RFC 3629's table
EDGES = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC,
         0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF]


FOUR = [0x41, 0x80, 0x8F, 0x90, 0xBF, 0xC2, 0xE0, 0xED, 0xF0, 0xF4, 0xF5]  # the 4-byte rules' edges


def test_every_triple_and_quadruple_of_class_edges():
    for n, edges in ((3, EDGES), (4, FOUR)):
        for t in itertools.product(edges, repeat=n):
            b = bytes(t)
            assert (utf8.errors(arr(b)).size == 0) == valid(b), b.hex()


text_bytes = st.one_of(st.binary(max_size=40),
                       st.text(max_size=15).map(lambda s: s.encode("utf-8", "surrogatepass")),
                       st.lists(st.sampled_from(EDGES), max_size=30).map(bytes))


@settings(max_examples=400, deadline=None)
@given(text_bytes)
def test_random_bytes(b):
    assert (utf8.errors(arr(b)).size == 0) == valid(b)


@settings(max_examples=200, deadline=None)
@given(text_bytes, st.lists(st.integers(0, 40), max_size=5))
def test_windows_test_every_position_once(b, cuts):
    """Consecutive windows (3 bytes of context, 1 ahead) find exactly the whole array's errors,
    with and without the reusable scratch buffers."""
    s = arr(b)
    edges = sorted({min(c, len(s)) for c in cuts} | {0, len(s)})
    padded = np.concatenate([np.full(utf8.CONTEXT, utf8.SPACE, np.uint8), s,
                             np.full(utf8.CONTEXT + 1, utf8.SPACE, np.uint8)])
    found = []
    for a, z in zip(edges[:-1], edges[1:]):
        z_test = z + (utf8.CONTEXT if z == len(s) else 0)
        w = padded[a:z_test + utf8.CONTEXT + 1]
        for scratch in (None, chunked.scratch):
            got = utf8.window_errors(w, scratch) + a
            assert got.tolist() == (utf8.window_errors(w) + a).tolist()
        found += got.tolist()
    if not edges[:-1]:
        found = utf8.errors(s).tolist()
    assert found == utf8.errors(s).tolist()
    assert (len(found) == 0) == valid(b)
