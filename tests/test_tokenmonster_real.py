"""Golden tests on the real Scylla bundles in ../shared (skipped with the reason when absent)."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil

import numpy as np
import pytest

from audit.formats.meta import load_meta
from audit.tokenizers import load_tokenizer
from tests.conftest import shared_path


def test_scylla998_reader_facts():
    tok = load_tokenizer(shared_path("tokenizers", "scylla-998", "candidate.vocab"))
    v = tok.vocab
    assert (v.capcode, v.charset, v.normalization, v.vocab_size, len(v.entries), len(v.deleted)) == (2, 1, 1, 998, 1229, 31)
    assert v.unk_id is None and tok.special.bos is None  # manifest: bos_id -1
    assert [tok.facts.keys[i] for i in (36, 37, 38, 151, 152)] == [b"C", b"D", b"W", b"DC", b"DW"]
    assert tok.facts.keys[19] == b"D 0"  # last entry wins over `0`
    bf = np.flatnonzero(tok.facts.byte_fallback & (tok.facts.base != 0))
    assert set(range(75, 102)) <= set(bf.tolist())
    ends_d = [i for i, k in enumerate(tok.facts.keys) if k.endswith(b"D")]
    assert len(ends_d) == 19 and 102 in ends_d and 138 in ends_d
    assert sum(k.startswith(b" ") for k in tok.facts.keys) == 629
    assert 0xC4 in tok.missing_bytes and 0x80 not in tok.missing_bytes


def test_scylla998_meta_is_the_official_token_decoded_reading():
    """The shipped meta is exactly len(token_decoded.encode('utf-8')): our reader + capcode agree."""
    tok = load_tokenizer(shared_path("tokenizers", "scylla-998", "candidate.vocab"))
    meta = load_meta(shared_path("tokenizers", "scylla-998", "candidate.meta.npz"))
    assert tok.official_meta().equals(meta)
    canon = tok.canonical_meta()
    assert (canon.base_bytes[75:102] == 1).all() and (meta.base_bytes[75:102] == 3).all()
    assert canon.is_boundary_token[[37, 102, 138, 151, 152]].all()


def test_scylla1254_reader_facts():
    p = shared_path("tokenizers", "scylla-1254", "scylla.yaml")
    assert hashlib.sha256(p.read_bytes()).hexdigest().startswith("a0177241")
    tok = load_tokenizer(p)
    assert tok.vocab.vocab_size == 1253 and tok.vocab_size == 1254 and tok.special.bos == 1253
    groups = tok.vocab.alias_groups()
    assert len(groups) == 75 and sorted(g[0] for g in groups.values()) == list(range(75))
    assert tok.missing_bytes == []
    meta = load_meta(shared_path("tokenizers", "scylla-1254", "scylla.meta.npz"))
    canon = tok.canonical_meta()
    same = np.arange(75, 1254)
    assert np.array_equal(canon.base_bytes[same], meta.base_bytes[same])
    assert (meta.base_bytes[:75] == 0).all() and (canon.base_bytes[:75] == 1).all()
    assert canon.is_boundary_token[1253] and not canon.has_leading_space.any()


def test_scylla_vocab_roundtrips_through_our_writers(tmp_path):
    from audit.tokenizers.tokenmonster.binary import parse_binary, write_binary
    from audit.tokenizers.tokenmonster.yamlvocab import parse_yaml, write_yaml

    src = shared_path("tokenizers", "scylla-998", "candidate.vocab")
    v = load_tokenizer(src).vocab
    assert write_binary(v) == src.read_bytes()  # byte-exact
    assert parse_yaml(write_yaml(v)).id_bytes == v.id_bytes
    y = load_tokenizer(shared_path("tokenizers", "scylla-1254", "scylla.yaml")).vocab
    assert parse_binary(write_binary(y)).id_bytes == y.id_bytes


def test_official_package_cross_check():
    """Optional: compare decodes with the official package when it AND its helper binary exist."""
    if importlib.util.find_spec("tokenmonster") is None:
        pytest.skip("optional cross-check: the official `tokenmonster` package is not installed (never downloaded)")
    if shutil.which("tokenmonsterserver") is None:
        pytest.skip("optional cross-check: the tokenmonster helper binary is not installed (it is downloaded "
                    "on first use, which this project never does)")
    import tokenmonster  # pragma: no cover (only where the binary exists)

    p = shared_path("tokenizers", "scylla-998", "candidate.vocab")
    ref = tokenmonster.load(str(p))
    tok = load_tokenizer(p)
    text = "The QUICK brown fox, İstanbul and Straße. 42 apples!"
    ids = list(ref.tokenize(text))
    assert tok.decode(ids).decode("utf-8", "replace") == ref.decode(ids)
