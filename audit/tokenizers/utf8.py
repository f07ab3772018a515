"""Where a byte string stops being valid UTF-8, as array operations (no Python loop, no decode).

Used on a *run skeleton*: one byte per token, the byte value of a byte-fallback piece and an
ASCII space for every other token. A SentencePiece document's byte runs are all valid UTF-8
exactly when its skeleton is: an ASCII byte ends any sequence (an unfinished one is then
invalid, as when a merged piece cuts a run) and a continuation byte after it is invalid, which
is how DecodeIds treats any non-byte id between byte pieces. Unlike `bytes.decode`, the check
releases the GIL and runs chunk by chunk on the worker threads.

The rules are RFC 3629's table (the one CPython's decoder implements, checked against it on
every byte string of length ≤ 3 and by a Hypothesis property in tests/test_utf8_runs.py):
  00–7F alone; C2–DF + 1 continuation; E0–EF + 2; F0–F4 + 3 (continuations 80–BF);
  C0, C1, F5–FF never; after E0 the next byte is A0–BF (no overlong), after ED 80–9F (no
  surrogate), after F0 90–BF (no overlong), after F4 80–8F (≤ U+10FFFF).
"""

from __future__ import annotations

import numpy as np

CONTEXT = 3  # bytes of left context a window carries (the longest sequence is 4 bytes)
SPACE = 0x20  # the skeleton byte of every token that is not a byte piece


def window_errors(w: np.ndarray, scratch=None, apart: np.ndarray | None = None) -> np.ndarray:
    """Positions p (0-based, relative to w[CONTEXT]) of the bytes w[CONTEXT:-1] at which UTF-8
    validity fails: a continuation byte no lead expects, an expected continuation that is not
    one, a byte that is never valid, or a lead whose next byte is out of its range.

    `w` is uint8: CONTEXT bytes before the tested range (SPACE where the stream has none), the
    tested bytes, then one byte after it (SPACE at the end). Testing every position of a stream
    once over consecutive windows tests the stream exactly: each rule reads at most 3 bytes back
    and 1 ahead. `scratch(name, size, dtype)` supplies reusable buffers (audit.chunked.scratch):
    every temporary is written into one, no fresh memory per call.

    `apart` (bool, aligned with w) marks positions that separate independent byte strings (the
    BOS between documents; they must hold SPACE): a lead before one never announces a
    continuation after it, so a document starting with a continuation byte fails even when the
    previous one ends on a cut-off lead (which fails on the separator itself)."""
    if scratch is None:
        def scratch(_name, size, dtype):
            return np.empty(size, dtype)
    n = len(w) - CONTEXT - 1
    if n <= 0:
        return np.zeros(0, np.int64)
    hi = np.greater_equal(w, 0x80, out=scratch("u8_hi", len(w), bool))
    if not hi.any():
        return np.zeros(0, np.int64)  # all ASCII: the common case of English text
    t = slice(CONTEXT, CONTEXT + n)  # the tested positions
    tmp = scratch("u8_tmp", len(w), bool)
    # expected[i]: a lead 1, 2 or 3 bytes back announces a continuation here
    # (C2–DF and up announce 1, E0–EF and up 2, F0–F4 3)
    bad = np.greater_equal(w[CONTEXT - 1:CONTEXT - 1 + n], 0xC2, out=scratch("u8_bad", n, bool))
    two = np.greater_equal(w[CONTEXT - 2:CONTEXT - 2 + n], 0xE0, out=tmp[:n])
    three = np.greater_equal(w[:n], 0xF0, out=scratch("u8_three", n, bool))
    if apart is not None:  # only leads of the same string count
        two &= ~apart[CONTEXT - 1:CONTEXT - 1 + n]
        three &= ~apart[CONTEXT - 1:CONTEXT - 1 + n]
        three &= ~apart[CONTEXT - 2:CONTEXT - 2 + n]
    bad |= two
    bad |= three
    cont = np.less(w[t], 0xC0, out=tmp[:n])
    cont &= hi[t]
    bad ^= cont  # expected ≠ is a continuation
    bad |= np.greater_equal(w[t], 0xF5, out=tmp[:n])  # never valid: F5–FF …
    never = np.equal(w[t], 0xC0, out=tmp[:n])
    never |= np.equal(w[t], 0xC1, out=hi[:n])  # … and C0, C1 (hi no longer needed)
    bad |= never
    lead, nxt = w[t], w[CONTEXT + 1:CONTEXT + 1 + n]
    for byte, lo, top in ((0xE0, 0xA0, 0xBF), (0xED, 0x80, 0x9F), (0xF0, 0x90, 0xBF), (0xF4, 0x80, 0x8F)):
        at = np.equal(lead, byte, out=tmp[:n])
        if at.any():  # only these four leads restrict the byte after them
            out_of_range = np.less(nxt, lo, out=scratch("u8_range", n, bool))
            out_of_range |= np.greater(nxt, top, out=hi[:n])
            out_of_range &= at
            bad |= out_of_range
    return np.flatnonzero(bad)


def errors(s: np.ndarray) -> np.ndarray:
    """Positions of `window_errors` over a whole byte array (no context outside it). A sequence
    cut off by the end is reported at a position ≥ len(s) (one of the CONTEXT spaces tested
    after it)."""
    w = np.full(len(s) + 2 * CONTEXT + 1, SPACE, np.uint8)
    w[CONTEXT:CONTEXT + len(s)] = s
    return window_errors(w)
