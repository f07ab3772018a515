"""Capcode against the canonical Go implementation: every published conformance vector.

`../shared/fixtures/capcode/{decode,encode}.jsonl.gz` were produced by the canonical Go capcode
code (decoder with a 4×len+8 output buffer; encoder on valid UTF-8). Both the per-character
reference loop and the vectorised fast path must reproduce every decode vector byte for byte.
"""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.formats.docs import DocBytes
from audit.tokenizers.tokenmonster import capcode as cc
from audit.tokenizers.tokenmonster import fastdecode
from tests.conftest import shared_path


def _vectors(name: str) -> list[tuple[bytes, bytes]]:
    path = shared_path("capcode", f"{name}.jsonl.gz")
    with gzip.open(path, "rt", encoding="ascii") as f:
        return [(bytes.fromhex(v["in"]), bytes.fromhex(v["out"])) for v in map(json.loads, f)]


@pytest.fixture(scope="module")
def decode_vectors():
    return _vectors("decode")


@pytest.fixture(scope="module")
def encode_vectors():
    return _vectors("encode")


def _mismatches(got: list[bytes], vectors: list[tuple[bytes, bytes]]) -> list[tuple[str, str, str]]:
    return [(i.hex(), o.hex(), g.hex()) for g, (i, o) in zip(got, vectors) if g != o]


def test_reference_loop_decodes_every_vector(decode_vectors):
    assert len(decode_vectors) == 22_500
    bad = _mismatches([cc.decode_bytes(i, 2) for i, _ in decode_vectors], decode_vectors)
    assert not bad, f"{len(bad)} mismatches, first {bad[:3]}"


@pytest.mark.parametrize("chunk", [fastdecode.MACHINE_CHUNK, 257])
def test_fast_path_decodes_every_vector(decode_vectors, monkeypatch, chunk):
    """All vectors as one stream of documents (state never leaks across a document boundary),
    with the default chunk and with chunks small enough to split the stream ~100 ways."""
    monkeypatch.setattr(fastdecode, "MACHINE_CHUNK", chunk)
    got = fastdecode.decode_capcode2(DocBytes.from_list([i for i, _ in decode_vectors])).to_list()
    bad = _mismatches(got, decode_vectors)
    assert not bad, f"{len(bad)} mismatches, first {bad[:3]}"


def test_encoder_matches_every_vector(encode_vectors):
    assert len(encode_vectors) == 9_500
    bad = _mismatches([cc.encode2(i.decode("utf-8")).encode("utf-8") for i, _ in encode_vectors], encode_vectors)
    assert not bad, f"{len(bad)} mismatches, first {bad[:3]}"


def test_encoded_vectors_decode_to_the_simple_case_roundtrip(encode_vectors):
    """The canonical encoder's output, decoded by both paths, gives the text back up to the six
    capitals that do not survive (İ→I, ẞ→ß, …)."""
    want = [cc.roundtrip2_expected(i.decode("utf-8")).encode("utf-8") for i, _ in encode_vectors]
    fast = fastdecode.decode_capcode2(DocBytes.from_list([o for _, o in encode_vectors])).to_list()
    assert fast == want
    assert [cc.decode_bytes(o, 2) for _, o in encode_vectors] == want


def test_capcode1_on_the_vector_texts(encode_vectors):
    """Capcode 1 has no published vectors; where it applies (the same generic texts) it must
    round-trip (a literal 0x7F becomes 0x14, as Go's NoCapcodeEncode substitutes), and the fast
    path must equal the loop on the capcode-1 encodings and on the raw decode inputs (marker
    soups with invalid UTF-8, D turned into 0x7F)."""
    texts = [i.decode("utf-8") for i, _ in encode_vectors]
    enc = [cc.encode1(t).encode("utf-8") for t in texts]
    assert [cc.decode1(e) for e in enc] == [t.replace("\x7f", "\x14").encode("utf-8") for t in texts]
    soups = enc + [i.replace(b"D", b"\x7f") for i, _ in _vectors("decode")]
    assert fastdecode.decode_capcode1(DocBytes.from_list(soups)).to_list() == [cc.decode1(s) for s in soups]


def test_invalid_byte_after_a_marker_is_copied_unchanged():
    """The rule the vectors pin down (a U+FFFD here cost 2 bytes per Ø/Æ/É split into
    byte-fallback tokens on a real Scylla-998 stream)."""
    assert cc.decode_bytes(b"C\x8f", 2) == b"\x8f"  # marker consumed, raw byte kept
    # Scylla-998 has a byte token for C3 but not for B8: `Ø` (encoded `C` + `ø` = C3 B8) keeps C3
    assert cc.decode_bytes(b"DC \xc3x", 2) == b"\xc3x"  # x is not uppercased: the C was used up
    assert cc.decode_bytes(b"DC \xc3\xb8x", 2) == "Øx".encode()  # both bytes present: a valid ø
    assert cc.decode_bytes(b"W\x8fab", 2) == b"\x8fab"  # under W: copied, and the word ends
    for doc in (b"C\x8f", b"DC \xc3x", b"DC \xc3\xb8x", b"W\x8fab"):
        assert fastdecode.decode_capcode2(DocBytes.from_list([doc])).to_list() == [cc.decode_bytes(doc, 2)]


_SOUP = st.lists(st.sampled_from([b"C", b"W", b"D", b" ", b"a", b"B", b"1", b"'", b"\xe2\x80\x99", b"\xcc\x81",
                                  b"\x80", b"\x8f", b"\xc3", b"\xc3\xa9", b"\xe2\x80", b"\xf0\x9f", b"\xed\xa0\x80",
                                  b"\xef\xbf\xbd", "ı".encode(), "ǆ".encode(), "中".encode()]),
                 max_size=24).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(_SOUP, max_size=6))
def test_fast_path_equals_loop_on_marker_soups(docs):
    assert fastdecode.decode_capcode2(DocBytes.from_list(docs)).to_list() == [cc.decode_bytes(d, 2) for d in docs]
