"""SentencePiece and pure-byte backends, validated against the `sentencepiece` library."""

from __future__ import annotations

import re

import numpy as np
import pytest
import sentencepiece as spm
from hypothesis import given, settings, strategies as st

from audit.accounting.metabytes import position_bytes, span_sums
from audit.formats.shards import split_documents
from audit.tokenizers import load_tokenizer
from audit.tokenizers.purebyte import PureByteTokenizer
from audit.tokenizers.sentencepiece_model import SentencePieceTokenizer, repair_byte_run
from tests.conftest import chunking, shared_path

SP1024 = ("tokenizers", "sp1024", "fineweb_1024_bpe.model")
SP8192 = ("tokenizers", "sp8192", "fineweb_8192_bpe.model")
_cache: dict = {}


def sp_pair(parts=SP1024):
    path = shared_path(*parts)
    if path not in _cache:
        _cache[path] = (SentencePieceTokenizer.load(path), spm.SentencePieceProcessor(model_file=str(path)))
    return _cache[path]


def formula_from_vocab(vocab_path):
    """tokenizers.md §1, written independently from the `.vocab` text listing (piece<TAB>score)."""
    pieces = [line.split("\t")[0] for line in vocab_path.read_text(encoding="utf-8").splitlines()]
    n = len(pieces)
    base, ls, bd = np.zeros(n, np.int16), np.zeros(n, bool), np.zeros(n, bool)
    for i, p in enumerate(pieces):
        if p in ("<pad>", "<s>", "</s>", "<unk>"):
            bd[i] = True
        elif re.fullmatch(r"<0x[0-9A-F]{2}>", p):
            base[i] = 1
        else:
            if p.startswith("\u2581"):
                ls[i] = True
                p = p[1:]
            base[i] = len(p.encode("utf-8"))
    return base, ls, bd


@pytest.mark.parametrize("parts", [SP1024, SP8192])
def test_canonical_meta_equals_formula(parts):
    tok, _ = sp_pair(parts)
    base, ls, bd = formula_from_vocab(shared_path(*parts).with_suffix(".vocab"))
    m = tok.canonical_meta()
    assert m.base_bytes.dtype == np.int16
    assert np.array_equal(m.base_bytes, base)
    assert np.array_equal(m.has_leading_space, ls)
    assert np.array_equal(m.is_boundary_token, bd)
    padded = tok.canonical_meta(vocab_size=len(base) + 64)
    assert len(padded) == len(base) + 64 and padded.is_boundary_token[len(base):].all()
    assert not padded.base_bytes[len(base):].any() and not padded.has_leading_space[len(base):].any()


def test_special_ids_and_classes():
    tok, sp = sp_pair()
    s = tok.special
    assert (s.pad, s.bos, s.eos, s.unk) == (0, 1, 2, 3)
    cls = tok.id_classes()
    assert cls[1] == "control" and cls[3] == "unknown" and cls[4] == "byte" and cls[260] == "space-piece"
    assert tok.id_bytes()[260] == b" t" and tok.id_bytes()[4 + 0xC3] == b"\xc3"


_ids = st.lists(st.one_of(st.integers(0, 1023), st.sampled_from([0, 1, 3, 939, 260, 4 + 0x41, 4 + 0xC3, 4 + 0xA9,
                                                                  4 + 0xE2, 4 + 0x82, 4 + 0xAC, 4 + 0xF0, 4 + 0x9F])),
                max_size=24)


@settings(max_examples=300, deadline=None)
@given(_ids)
def test_decode_matches_library(ids):
    tok, sp = sp_pair()
    assert tok.decode(ids) == sp.decode_ids(ids).encode("utf-8")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=12))
def test_byte_run_repair_matches_library(run):
    """One U+FFFD per invalid byte, exactly as sentencepiece decodes a run of byte pieces."""
    _, sp = sp_pair()
    assert repair_byte_run(run) == sp.decode_ids([b + 4 for b in run]).encode("utf-8")


@settings(max_examples=25, deadline=None)
@given(st.lists(_ids, max_size=10))
def test_decode_stream_matches_library_per_document(docs):
    tok, sp = sp_pair()
    stream = np.array([t for d in docs for t in [1] + [x for x in d if x != 1]], dtype=np.uint16)
    starts, ends = split_documents(stream, 1)
    db = tok.decode_stream(stream, starts + 1, ends)
    want = [sp.decode_ids(stream[s + 1:e].tolist()).encode("utf-8") for s, e in zip(starts, ends)]
    assert db.to_list() == want


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)


@settings(max_examples=150, deadline=None)
@given(st.lists(_text, min_size=1, max_size=5))
def test_meta_bytes_equal_decoded_for_encoded_text(texts):
    """For any text the model encodes, the canonical meta formula counts exactly the decoded bytes
    (the leading space of a first `▁` piece is dropped by the decoder and not counted after BOS)."""
    tok, sp = sp_pair()
    stream = np.array([t for x in texts for t in [1] + sp.encode(x)], dtype=np.uint16)
    starts, ends = split_documents(stream, 1)
    per_doc = span_sums(position_bytes(stream, tok.canonical_meta()), starts, ends)
    decoded = [len(sp.decode_ids(sp.encode(x)).encode("utf-8")) for x in texts]
    assert per_doc.tolist() == decoded


def test_bad_model_file(tmp_path):
    from audit.errors import InputError

    (tmp_path / "x.model").write_bytes(b"\x00garbage")
    with pytest.raises(InputError, match="SentencePiece"):
        load_tokenizer(tmp_path / "x.model")
    with pytest.raises(InputError, match="no such file"):
        load_tokenizer(tmp_path / "none.model")


def test_purebyte():
    t = load_tokenizer("purebyte")
    assert isinstance(t, PureByteTokenizer) and t.vocab_size == 260
    text = "héllo\x00 ☃"
    ids = t.encode(text)
    assert ids[0] == ord("h") + 4 and t.decode([1] + ids + [2]) == text.encode()
    m = t.canonical_meta()
    assert m.base_bytes[:4].tolist() == [0] * 4 and m.base_bytes[4:].tolist() == [1] * 256
    assert m.is_boundary_token[:4].all() and not m.is_boundary_token[4:].any()
    stream = np.array([1] + t.encode("ab") + [1] + [1] + t.encode("ç"), np.uint16)
    s, e = split_documents(stream, 1)
    assert t.decode_stream(stream, s + 1, e).to_list() == [b"ab", b"", "ç".encode()]
    assert span_sums(position_bytes(stream, m), s, e).tolist() == [2, 0, 2]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.one_of(_ids.flatmap(st.just), st.integers(1024, 1100)).map(
    lambda x: x if isinstance(x, list) else [x]), max_size=6), max_size=8),
    st.sampled_from([3, 7, 64, 1 << 18]))
def test_decoded_lengths_match_library(parts, chunk):
    """decoded_lengths (sizing pass + byte-run check on the ids, no bytes written) equals the
    library's per-document DecodeIds lengths: invalid runs, controls inside runs, documents
    starting with a space piece or an odd id, ids past the model (decoded as skipped), at chunk
    sizes that cut runs."""
    tok, sp = sp_pair()
    docs = [[t for p in d for t in p if t != 1] for d in parts]
    stream = np.array([t for d in docs for t in [1] + d], dtype=np.uint16)
    starts, ends = split_documents(stream, 1)
    with chunking(chunk):
        got = tok.decoded_lengths(stream, starts + 1, ends)
        dec = tok.decode_stream(stream, starts + 1, ends)
        ridden = _lengths_riding_the_meta_pass(tok, stream, starts, ends)
    want = [len(sp.decode_ids([t for t in stream[s + 1:e].tolist() if t < 1024]).encode("utf-8"))
            for s, e in zip(starts, ends)]
    assert got.tolist() == want == dec.lengths.tolist()
    assert ridden is None or ridden.tolist() == want  # None: an id past the model (no rider)
    assert ridden is not None or len(starts) == 0 or int(stream.max(initial=0)) >= 1024


def _lengths_riding_the_meta_pass(tok, stream, starts, ends):
    """decoded lengths counted by the SizingRider inside meta_sums' pass (engine's no-source path)."""
    from audit.accounting.metabytes import meta_sums

    lengths = tok.length_rider(stream, starts + 1, ends)
    if lengths is None:
        return None
    meta_sums(stream, tok.canonical_meta(), starts, ends, rider=lengths.rider)
    return lengths.finish()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(2, 1023), max_size=6), st.lists(_ids, max_size=5), st.sampled_from([2, 5, 64]))
def test_rider_lengths_with_a_prefix_before_the_first_bos(prefix, docs, chunk):
    """Tokens before the first BOS belong to no document; the rider's region starts after it."""
    tok, sp = sp_pair()
    stream = np.array(prefix + [t for d in docs for t in [1] + [x for x in d if x != 1]], dtype=np.uint16)
    starts, ends = split_documents(stream, 1)
    if not len(starts):
        return
    with chunking(chunk):
        ridden = _lengths_riding_the_meta_pass(tok, stream, starts, ends)
    want = [len(sp.decode_ids(stream[s + 1:e].tolist()).encode("utf-8")) for s, e in zip(starts, ends)]
    assert ridden.tolist() == want


def test_a_cut_off_lead_does_not_vouch_for_the_next_document():
    """Doc 1 ends on E2 (cut off); doc 2 starts with the continuation bytes 82 AC. Joined they
    would be '€'; DecodeIds decodes each document on its own: U+FFFD in both."""
    tok, sp = sp_pair()
    stream = np.array([1, 4 + 0xE2, 1, 4 + 0x82, 4 + 0xAC, 1, 4 + 0xE2, 4 + 0x82, 4 + 0xAC], dtype=np.uint16)
    starts, ends = split_documents(stream, 1)
    want = [len(sp.decode_ids(stream[s + 1:e].tolist()).encode("utf-8")) for s, e in zip(starts, ends)]
    assert want == [3, 6, 3]
    assert tok.decoded_lengths(stream, starts + 1, ends).tolist() == want
    assert tok.decode_stream(stream, starts + 1, ends).lengths.tolist() == want
    assert _lengths_riding_the_meta_pass(tok, stream, starts, ends).tolist() == want


@settings(max_examples=60, deadline=None)
@given(st.lists(_ids, min_size=1, max_size=8), st.lists(st.integers(0, 400), max_size=4),
       st.sampled_from([3, 7, 64, 1 << 18]))
def test_compare_stream_equals_decoding_and_comparing(docs, flips, chunk):
    """compare_stream (chunk bytes compared where they are made) finds exactly the documents
    that decode_stream + compare_docs finds, with the same lengths and example offsets; the
    reference is the decoded stream with some bytes changed (same lengths) or, when a flip
    lands on an odd position, one document shortened."""
    from audit.accounting.compare import compare_docs
    from audit.formats.docs import DocBytes
    from audit.tokenizers.base import Tokenizer

    tok, _ = sp_pair()
    stream = np.array([t for d in docs for t in [1] + [x for x in d if x != 1]], dtype=np.uint16)
    starts, ends = split_documents(stream, 1)
    ref_docs = tok.decode_stream(stream, starts + 1, ends).to_list()
    total = sum(map(len, ref_docs))
    buf = bytearray(b"".join(ref_docs))
    for f in flips:
        if total and f % 2 == 0:
            buf[f % total] ^= 0x20
    ref = DocBytes(np.frombuffer(bytes(buf), np.uint8), DocBytes.from_list(ref_docs).offsets)
    if flips and flips[0] % 2 and any(ref_docs):
        k = next(i for i, d in enumerate(ref_docs) if d)
        ref = DocBytes.from_list(ref_docs[:k] + [ref_docs[k][:-1]] + ref_docs[k + 1:])
    with chunking(chunk):
        lengths, got = tok.compare_stream(stream, starts + 1, ends, ref)
    want_len, want = Tokenizer.compare_stream(tok, stream, starts + 1, ends, ref)
    assert lengths.tolist() == want_len.tolist()
    assert got.bad_docs.tolist() == want.bad_docs.tolist() and got.n_bad == want.n_bad
    assert [e.row() for e in got.examples] == [e.row() for e in want.examples]
    assert (got.bytes_a, got.bytes_b) == (want.bytes_a, want.bytes_b)
    assert compare_docs(DocBytes.from_list(ref_docs), ref).n_bad == want.n_bad


def test_compare_stream_fast_path_finds_a_changed_byte(monkeypatch):
    """Valid documents of the reference's lengths take the in-place comparison (no second
    buffer); one changed byte is found in its document, with the offset and excerpts."""
    from audit.formats.docs import DocBytes
    from audit.tokenizers.bytetable import ByteTable

    tok, _ = sp_pair()
    used = []
    real = ByteTable.differing
    monkeypatch.setattr(ByteTable, "differing", lambda self, *a: used.append(1) or real(self, *a))
    stream = np.array([1, 260, 300, 400, 1, 500, 600, 4 + 0xC3, 4 + 0xA9, 1, 700], np.uint16)
    starts, ends = split_documents(stream, 1)
    ref = tok.decode_stream(stream, starts + 1, ends)
    _, same = tok.compare_stream(stream, starts + 1, ends, ref)
    changed = ref.buf.copy()
    changed[int(ref.offsets[1]) + 2] ^= 1
    _, diff = tok.compare_stream(stream, starts + 1, ends, DocBytes(changed, ref.offsets))
    assert used == [1, 1] and same.n_bad == 0
    assert diff.bad_docs.tolist() == [1] and diff.examples[0].offset == 2


_pieces = st.lists(st.one_of(st.integers(5, 1023).filter(lambda i: i not in range(4 + 0x80, 4 + 0x100)),
                             st.sampled_from([4 + 0xC3, 4 + 0xA9]).map(lambda b: [4 + 0xC3, 4 + 0xA9])),
                   max_size=12).map(lambda xs: [t for x in xs for t in (x if isinstance(x, list) else [x])])


@settings(max_examples=60, deadline=None)
@given(st.lists(_pieces, min_size=1, max_size=8), st.integers(0, 3), st.lists(st.integers(0, 10**6), max_size=3),
       st.sampled_from([2, 3, 5, 11, 64, 1 << 18]))
def test_compare_stream_walks_a_reference_stream_as_if_decoded(docs, respell, flips, chunk):
    """A source that is itself a token stream (StreamDocs, never written in full) is compared
    with the candidate chunk by chunk beside it (differing_walk): same documents found, same
    lengths and examples as with the source decoded first, at chunk sizes that make the two
    streams' chunks straddle each other. The candidate respells merged pieces as byte pieces;
    a flip swaps a piece for another of the same byte length (same lengths, other bytes)."""
    from audit.accounting.metabytes import meta_sums
    from audit.formats.docs import StreamDocs

    tok, _ = sp_pair()
    surf = tok.id_bytes()
    src_docs = [[t for t in d if t != 1] for d in docs]
    cand_docs = []
    for i, d in enumerate(src_docs):
        out = []
        for j, t in enumerate(d):
            if respell and (i + j) % (respell + 1) == 0 and j > 0 and len(surf[t]) > 1:
                out += [4 + b for b in surf[t]]
            else:
                out.append(t)
        cand_docs.append(out)
    flat = [(i, j) for i, d in enumerate(cand_docs) for j in range(len(d))]
    same_len = {}
    for t in range(5, 1024):
        same_len.setdefault(len(surf[t]), []).append(t)
    for f in flips:
        if flat:
            i, j = flat[f % len(flat)]
            t = cand_docs[i][j]
            if j > 0 and t >= 260:
                alts = [a for a in same_len[len(surf[t])] if a >= 260 and surf[a] != surf[t]]
                cand_docs[i][j] = alts[f % len(alts)] if alts else t

    def stream(ds):
        return np.array([t for d in ds for t in [1] + d], dtype=np.uint16)

    src, cand = stream(src_docs), stream(cand_docs)
    ss, se = split_documents(src, 1)
    cs, ce = split_documents(cand, 1)
    with chunking(chunk):
        lazy = tok.reference_stream(src, ss + 1, se)
        eager = tok.decode_stream(src, ss + 1, se)
        got_len, got = tok.compare_stream(cand, cs + 1, ce, lazy)
        want_len, want = tok.compare_stream(cand, cs + 1, ce, eager)
        ridden = tok.length_rider(cand, cs + 1, ce)  # the engine's path: the layout from the meta pass
        meta_sums(cand, tok.canonical_meta(), cs, ce, rider=ridden.rider)
        rid_len, rid = tok.compare_stream(cand, cs + 1, ce, lazy, ridden=ridden)
    assert isinstance(lazy, StreamDocs) and lazy.walk is not None
    assert lazy.lengths.tolist() == eager.lengths.tolist() and lazy.total == eager.total
    assert got_len.tolist() == want_len.tolist() == rid_len.tolist()
    assert got.bad_docs.tolist() == want.bad_docs.tolist() == rid.bad_docs.tolist()
    assert [e.row() for e in got.examples] == [e.row() for e in want.examples] == [e.row() for e in rid.examples]
    assert lazy.to_list() == eager.to_list() and lazy.doc(len(docs) - 1) == eager.doc(len(docs) - 1)
