"""Simple (one-to-one) case mappings and the general categories capcode needs.

Loaded from the committed `audit/data/simple_case.txt` (generated from UnicodeData.txt by
`tools/gen_simple_case.py`) into dense arrays over all 0x110000 code points, so both the
per-character reference code and the vectorised decoder use the same table. Go's
`unicode.ToUpper` is the simple mapping: `ß` stays `ß`, `İ` lowercases to `i`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

TABLE = Path(__file__).resolve().parents[2] / "data" / "simple_case.txt"
N_CP = 0x110000

# bit flags per code point
LU, LL, LT, LOTHER, NUM, MARK = 1, 2, 4, 8, 16, 32
LETTER = LU | LL | LT | LOTHER
CASED = LU | LL  # the decoder uppercases these inside a `W` word


class Tables:
    def __init__(self, flags: np.ndarray, upper: np.ndarray, lower: np.ndarray):
        self.flags = flags
        self.upper = upper
        self.lower = lower
        # UTF-8 length change of uppercasing, per code point (the residual no table expresses)
        cp = np.arange(N_CP, dtype=np.int64)
        self.upper_len_delta = (utf8_len(upper) - utf8_len(cp)).astype(np.int8)


def utf8_len(cp: np.ndarray) -> np.ndarray:
    cp = np.asarray(cp)
    return (1 + (cp >= 0x80).astype(np.int8) + (cp >= 0x800) + (cp >= 0x10000)).astype(np.int8)


@lru_cache(maxsize=1)
def tables() -> Tables:
    flags = np.zeros(N_CP, dtype=np.uint8)
    upper = np.arange(N_CP, dtype=np.uint32)
    lower = np.arange(N_CP, dtype=np.uint32)
    code = {"Lu": LU, "Ll": LL, "Lt": LT, "Lm": LOTHER, "Lo": LOTHER}
    for line in TABLE.read_text(encoding="ascii").splitlines():
        if not line or line[0] == "#":
            continue
        kind, a, b = line.split(" ", 2)
        if kind == "R":
            hi, cat = b.split(" ")
            f = code.get(cat) or (NUM if cat[0] == "N" else MARK if cat[0] == "M" else 0)
            flags[int(a, 16):int(hi, 16) + 1] = f
        elif kind == "U":
            upper[int(a, 16)] = int(b, 16)
        elif kind == "L":
            lower[int(a, 16)] = int(b, 16)
    return Tables(flags, upper, lower)


def to_upper(ch: str) -> str:
    return chr(tables().upper[ord(ch)])


def to_lower(ch: str) -> str:
    return chr(tables().lower[ord(ch)])


def flag(ch: str) -> int:
    return int(tables().flags[ord(ch)])


def simple_upper(text: str) -> str:
    """Per-code-point simple uppercase of a whole string (vectorised)."""
    if not text:
        return text
    a = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    return tables().upper[a].tobytes().decode("utf-32-le", "surrogatepass")


def simple_lower(text: str) -> str:
    if not text:
        return text
    a = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    return tables().lower[a].tobytes().decode("utf-32-le", "surrogatepass")
