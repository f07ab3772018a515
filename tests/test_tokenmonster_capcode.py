"""Capcode encode/decode properties, the simple case table, and the vectorised decoder vs the reference."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.tokenizers.tokenmonster import capcode as cc
from audit.tokenizers.bytetable import ByteTable
from audit.tokenizers.tokenmonster import fastdecode
from audit.tokenizers.tokenmonster.unicase import simple_upper, tables, to_lower, to_upper

EDGE = ["İstanbul", "ılık", "IĞDIR", "Straße", "STRASSE", "ẞ", "ΟΔΥΣΣΕΥΣ", "λόγος", "ǅemal", "ǄEMAL", "ǆ",
        "e\u0301te\u0301", "E\u0301TE", "don't", "O'Brien", "O’NEIL", "rock'n'roll", "42nd", "A1b", "ABc",
        "HTTPServer", "x²", "Ⅳ", "中文ABC", "ß1", "K", "Ω", "Å", "ϴ", " ", "  A", "\t\nB", "CWD", "cwd", "ÆØÅ"]
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40) | \
    st.lists(st.sampled_from(EDGE + [" ", "'", "1", "a", "B", ".", "\u0301"]), max_size=12).map("".join)


def test_simple_case_is_not_python_full_case():
    assert to_upper("ß") == "ß" and "ß".upper() == "SS"
    assert to_lower("İ") == "i" and "İ".lower() == "i\u0307"
    assert to_upper("ǆ") == "Ǆ" and to_upper("ı") == "I"
    assert simple_upper("straße ı") == "STRAßE I"
    t = tables()
    assert t.upper_len_delta[ord("ı")] == -1 and t.upper_len_delta[ord("ɐ")] == 1


def test_examples():
    assert cc.encode2("Hello") == "DC hello"
    assert cc.encode2("(The") == "(DC the"
    assert cc.encode2("ABc") == "DC aDC bc"
    assert cc.decode2("DC aDC bc") == "ABc"
    assert cc.decode2(cc.encode2("İ")) == "I"  # one of the 6 capitals that do not survive
    assert cc.decode2("DW abD 1D c") == "AB1C"  # a deleted space does not end the W word
    assert cc.decode2("Dxy") == "y"  # D deletes any character, not only a space
    assert cc.decode1(b"\x7f ab\x7f\x7fc\x7f") == b"abc"


@settings(max_examples=300, deadline=None)
@given(text)
def test_capcode2_roundtrip(s):
    assert cc.decode2(cc.encode2(s)) == cc.roundtrip2_expected(s)


@settings(max_examples=100, deadline=None)
@given(text.filter(lambda s: all(tables().flags[ord(c)] & 1 == 0 or to_upper(to_lower(c)) == c for c in s)))
def test_capcode2_roundtrip_exact_without_the_six_capitals(s):
    assert cc.decode2(cc.encode2(s)) == s


@settings(max_examples=200, deadline=None)
@given(text)
def test_capcode1_roundtrip(s):
    e = cc.encode1(s)
    assert cc.decode1(e.encode("utf-8", "surrogatepass")).decode("utf-8", "surrogatepass") == s.replace("\x7f", "\x14")


def _fast(docs: list[bytes]) -> list[bytes]:
    from audit.formats.docs import DocBytes

    return fastdecode.decode_capcode2(DocBytes.from_list(docs)).to_list()


raw_docs = st.lists(st.one_of(
    st.text(st.sampled_from(list("CWD ab'1.\u0301ıß") + ["ǆ", "İ"]), max_size=30).map(lambda s: s.encode()),
    st.binary(max_size=20),
    text.map(lambda s: cc.encode2(s).encode("utf-8", "surrogatepass"))), max_size=6)


@settings(max_examples=300, deadline=None)
@given(raw_docs)
def test_vectorised_capcode2_equals_reference(docs):
    assert _fast(docs) == [cc.decode_bytes(d, 2) for d in docs]


def test_vectorised_capcode2_chunks(monkeypatch):
    monkeypatch.setattr(fastdecode, "MACHINE_CHUNK", 16)
    docs = [cc.encode2(s).encode() for s in EDGE] + [b"", b"plain text", b"W", b"D"]
    assert _fast(docs) == [cc.decode_bytes(d, 2) for d in docs]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\x00", b"\x7f")), max_size=6))
def test_vectorised_capcode1_equals_reference(docs):
    from audit.formats.docs import DocBytes

    assert fastdecode.decode_capcode1(DocBytes.from_list(docs)).to_list() == [cc.decode1(d) for d in docs]


def test_gather_skips_bos_and_out_of_range_ids():
    table = ByteTable([b"a", b"bc", b""])
    tokens = np.array([2, 0, 1, 2, 1, 9, 0], dtype=np.uint16)
    out = table.gather(tokens, np.array([1, 4]), np.array([3, 7]))
    assert out.to_list() == [b"abc", b"bca"]
