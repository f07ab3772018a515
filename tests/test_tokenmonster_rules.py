"""Every TM rule with a failing and a passing input (small vocabularies built here)."""

from __future__ import annotations

import numpy as np
import pytest

from audit.tokenizers.tokenmonster.backend import TokenMonsterTokenizer
from audit.tokenizers.tokenmonster.vocab import Entry, Vocab


def tok_of(keys, *, capcode=2, charset=1, norm=0, bos=None, unk=None, extra=()):
    entries = [Entry(k, i) for i, k in enumerate(keys)] + [Entry(k, i) for k, i in extra]
    v = Vocab(path=None, fmt="binary", capcode=capcode, charset=charset, normalization=norm,
              vocab_size=len(keys), entries=entries, unk_id=unk)
    return TokenMonsterTokenizer(v, bos=bos)


FULL = [bytes([b]) for b in range(256)]
CAP2 = [bytes([b]) for b in range(256) if not 0x41 <= b <= 0x5A] + [b"C", b"D", b"W", b"DC", b" the", b"(D"]


def rules_of(tok, meta, counts=None):
    return {f.rule_id: f for f in tok.backend_findings(meta, counts)}


def test_canonical_meta_passes_every_rule():
    tok = tok_of(CAP2, bos=len(CAP2))
    found = rules_of(tok, tok.canonical_meta())
    errors = [f for f in found.values() if f.severity.value == "error"]
    assert errors == []
    assert found["TM002"].severity.value == "info" and "all modelled" in found["TM002"].message


def test_tm001_byte_fallback():
    tok = tok_of(CAP2, bos=len(CAP2))
    m = tok.canonical_meta()
    m.base_bytes[0x80 - 26] = 3  # ids shift by the 26 missing capitals below 0x80
    counts = np.zeros(len(m), np.int64)
    counts[0x80 - 26] = 5
    f = rules_of(tok, m, counts)["TM001"]
    assert f.evidence["ids"] == [0x80 - 26] and f.evidence["bytes_added"] == 10
    assert "TM001" not in rules_of(tok, tok.canonical_meta(), counts)


def test_tm002_markers_unmodelled_and_modelled():
    tok = tok_of(CAP2, bos=len(CAP2))
    m = tok.canonical_meta()
    m.is_boundary_token[:len(CAP2)] = False
    m.has_leading_space[:] = False
    f = rules_of(tok, m)["TM002"]
    assert f.severity.value == "error"
    assert f.evidence["delete_ending"]["unmodelled"] == 3  # D, DC, (D
    assert f.evidence["leading_space"]["unmodelled"] == 2  # " " and " the"
    assert rules_of(tok, tok.canonical_meta())["TM002"].severity.value == "info"


def test_tm003_zero_markers():
    tok = tok_of(CAP2)
    f = rules_of(tok, tok.canonical_meta())["TM003"]
    assert f.severity.value == "info" and f.evidence["count"] == 4
    m = tok.canonical_meta()
    m.base_bytes[CAP2.index(b"C")] = 1
    assert any(x.rule_id == "TM003" and x.severity.value == "error" for x in tok.backend_findings(m, None))


def test_tm004_inner_markers():
    tok = tok_of(CAP2 + [b"D x", b"aDC b"])
    assert rules_of(tok, tok.canonical_meta())["TM004"].severity.value == "info"
    m = tok.canonical_meta()
    m.base_bytes[len(CAP2)] = 3  # "D x" decodes to 1 byte
    assert rules_of(tok, m)["TM004"].severity.value == "warning"
    counts = np.zeros(len(m), np.int64)
    counts[len(CAP2)] = 2
    assert rules_of(tok, m, counts)["TM004"].severity.value == "error"


def test_tm005_defined_zero_bytes_warning_then_error():
    keys = FULL + [b"ab"]
    tok = tok_of(keys, capcode=0, charset=0, extra=[(b"\x00", 256)], bos=None)
    m = tok.canonical_meta()
    m.base_bytes[256] = 0
    counts = np.zeros(len(m), np.int64)
    f = rules_of(tok, m, counts)["TM005"]
    assert f.severity.value == "warning" and "occur 0 times" in f.message
    counts[256] = 1
    assert rules_of(tok, m, counts)["TM005"].severity.value == "error"
    assert "TM005" not in rules_of(tok, tok.canonical_meta(), counts)


def test_tm006_normalization():
    bad, good = tok_of(CAP2, norm=1), tok_of(CAP2)
    assert "nfd" in rules_of(bad, bad.canonical_meta())["TM006"].message
    assert "TM006" not in rules_of(good, good.canonical_meta())


def test_tm007_charset_none_utf8_meta():
    tok = tok_of(FULL + [b"\xe2\x80\x94"], capcode=0, charset=0)
    m = tok.canonical_meta()
    assert "TM007" not in rules_of(tok, m)
    m.base_bytes[0x80:0x100] = 2  # latin-1 string re-encoded as UTF-8
    f = rules_of(tok, m)["TM007"]
    assert f.evidence["count"] >= 128


def test_tm008_byte_coverage():
    tok = tok_of(CAP2[:-6][:150] + [b"C", b"D", b"W"])
    f = rules_of(tok, tok.canonical_meta())["TM008"]
    assert "C4" in f.evidence["missing"] and f.evidence["unk_id"] is None and "lost" in f.message
    full = tok_of(CAP2)
    assert "TM008" not in rules_of(full, full.canonical_meta())


def test_tm009_no_bos():
    tok = tok_of(CAP2)
    assert "TM009" in rules_of(tok, tok.canonical_meta())
    withbos = tok_of(CAP2, bos=len(CAP2))
    assert "TM009" not in rules_of(withbos, withbos.canonical_meta())


def test_tm010_aliases():
    tok = tok_of(CAP2, extra=[(b"D a", CAP2.index(b"a"))])
    f = rules_of(tok, tok.canonical_meta())["TM010"]
    assert f.evidence["count"] == 1 and tok.facts.keys[CAP2.index(b"a")] == b"D a"
    plain = tok_of(CAP2)
    assert "TM010" not in rules_of(plain, plain.canonical_meta())


@pytest.mark.parametrize("rid", [f"TM{i:03d}" for i in range(1, 11)])
def test_rules_catalogued(rid):
    from audit.rules import catalogue

    r = catalogue()[rid]
    assert r.family == "tokenmonster" and r.fix and r.explanation
