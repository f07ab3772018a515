"""The accounting engine against straightforward per-position / per-document loops."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from audit.accounting import run_accounting
from audit.accounting.compare import compare_docs
from audit.accounting.metabytes import attribute_drift, position_bytes, span_sums
from audit.accounting.positions import Scoring
from audit.accounting.reconcile import reconcile
from audit.formats.docs import DocBytes
from audit.formats.meta import MetaTable
from audit.tokenizers.purebyte import PureByteTokenizer

V = 12


def _meta(draw_base, draw_ls, draw_bd):
    return MetaTable(np.array(draw_base, np.int16), np.array(draw_ls), np.array(draw_bd))


metas = st.tuples(st.lists(st.integers(0, 5), min_size=V, max_size=V),
                  st.lists(st.booleans(), min_size=V, max_size=V),
                  st.lists(st.booleans(), min_size=V, max_size=V)).map(lambda t: _meta(*t))
streams = st.lists(st.integers(0, V - 1), max_size=80).map(lambda x: np.array(x, np.uint16))


@settings(max_examples=80, deadline=None)
@given(streams, metas)
def test_position_bytes_is_the_formula(tokens, meta):
    want = [0] + [int(meta.base_bytes[y]) + int(meta.has_leading_space[y] and not meta.is_boundary_token[x])
                  for x, y in zip(tokens[:-1].tolist(), tokens[1:].tolist())]
    assert position_bytes(tokens, meta).tolist() == want[:len(tokens)]


@settings(max_examples=80, deadline=None)
@given(streams, metas, metas)
def test_drift_attribution_sums_exactly(tokens, meta, ref):
    d = attribute_drift(tokens, meta, ref)
    total = int(position_bytes(tokens, meta).sum()) - int(position_bytes(tokens, ref).sum())
    assert d.total == total == int(d.by_id.sum())


@settings(max_examples=80, deadline=None)
@given(streams, st.integers(0, V - 1))
def test_span_sums_per_document(tokens, bos):
    vals = np.arange(len(tokens), dtype=np.int32) % 7
    starts = np.flatnonzero(tokens == bos)
    ends = np.append(starts[1:], len(tokens)).astype(np.int64)
    assert span_sums(vals, starts, ends).tolist() == [int(vals[s:e].sum()) for s, e in zip(starts, ends)]
    # non-contiguous spans (BOS excluded), empty ones included
    assert span_sums(vals, starts + 1, ends).tolist() == [int(vals[s + 1:e].sum()) for s, e in zip(starts, ends)]


def test_scoring_plain_and_sliding():
    sc = Scoring(62_021_846, 1024, 64)
    assert sc.plain_dropped == 213  # the published sp1024 tail at 1024
    assert Scoring(62_021_846, 2048, None).plain_dropped == 213
    assert Scoring(10, None, None).plain_stop is None
    assert Scoring(1 + 10, 4, 2).sliding_windows == 1 + 3  # 10 targets: window 0 covers 4, then 3 more


def test_compare_docs_first_difference():
    a = DocBytes.from_list([b"hello", b"same", b"abc"])
    b = DocBytes.from_list([b"help!", b"same", b"abcd"])
    c = compare_docs(a, b)
    assert c.n_bad == 2 and c.bad_docs.tolist() == [0, 2]
    assert c.examples[0].offset == 3 and c.examples[1].offset == 3
    assert compare_docs(a, a).n_bad == 0


def test_engine_purebyte_exact_and_no_bos():
    t = PureByteTokenizer()
    texts = ["ab c", "", "é\x00\n"]
    stream = np.array([x for s in texts for x in [1] + t.encode(s)], np.uint16)
    src = DocBytes.from_list([s.encode() for s in texts])
    acc = run_accounting(stream, t.canonical_meta(), bos_id=1, tokenizer=t, reference_meta=t.canonical_meta(),
                         source=src, seq_len=4)
    assert acc.n_docs == 3 and acc.meta_docs_total == acc.decoded_total == acc.source_total == src.total
    assert acc.decoded_vs_source.n_bad == 0 and acc.meta_vs_source_bad == 0
    assert acc.meta_plain == int(position_bytes(stream, t.canonical_meta())[1:9].sum())
    one = run_accounting(stream[stream != 1], t.canonical_meta(), bos_id=None, tokenizer=t, source=src)
    assert not one.has_docs and one.decoded_total == src.total and one.decoded_vs_source is None


def test_engine_sidecar_checks():
    t = PureByteTokenizer()
    stream = np.array([1] + t.encode("ab") + [1] + t.encode("c"), np.uint16)
    side = np.array([0, 1, 1, 0, 1], np.uint16)
    src = DocBytes.from_list([b"ab", b"c"])
    acc = run_accounting(stream, t.canonical_meta(), bos_id=1, source=src, sidecar=side)
    assert acc.sidecar.full == 3 and acc.sidecar.bos_nonzero == 0 and acc.sidecar.docs_vs_source_bad == 0
    bad = run_accounting(stream, t.canonical_meta(), bos_id=1, source=src, sidecar=np.array([0, 1, 1, 2, 1], np.uint16))
    assert bad.sidecar.bos_nonzero == 1 and bad.sidecar.docs_vs_source_bad == 1
    assert not run_accounting(stream, t.canonical_meta(), bos_id=1, sidecar=side[:3]).sidecar.length_matches


def test_reconcile_classes():
    raw = ["  Hello\n\nworld\t ﬁne\x00 ", "plain"]
    ref = [b"Hello world fine", b"plain"]
    rec = reconcile(raw, ref)
    assert rec.explained_docs == 2 and rec.unexplained_bytes == 0
    assert rec.by_class["NFKC"][0] == len("fi") - len("ﬁ".encode())
    assert rec.by_class["control characters removed"] == [-1, 1]
    assert rec.by_class["leading/trailing whitespace trimmed"][0] == -2
    assert rec.raw_bytes + sum(v[0] for v in rec.by_class.values()) == rec.reference_bytes
