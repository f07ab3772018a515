"""End to end: `audit_tokenizer` and the CLI on the real Scylla bundles, on the project's own
TokenMonster bundles, and on the project's corpus encoded with each real vocabulary."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from audit.formats.shards import write_shard
from audit.tokenizer_audit import audit_tokenizer
from audit.tokenizers import load_tokenizer
from audit.tokenizers.tokenmonster.residual import normalization_drift, residual
from fixtures.corpus import corpus_documents
from fixtures.tokenmonster_bundle import build_tm_bundles, encode_corpus, resolve
from tests.conftest import ROOT, shared_path

AUDIT = ROOT / ".venv" / "bin" / "audit"


def ids_of(report):
    return {f.rule_id: f for f in report.findings}


def run_cli(*args):
    return subprocess.run([str(AUDIT), "tokenizer", *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def test_cli_scylla998_strict_exits_1_with_the_community_conclusions():
    d = shared_path("tokenizers", "scylla-998")
    r = run_cli(d / "candidate.meta.npz", "--tokenizer", d / "candidate.vocab", "--strict", "--quiet")
    assert r.returncode == 1, r.stderr
    rep = audit_tokenizer(d / "candidate.meta.npz", tokenizer=d / "candidate.vocab", strict=True)[0]
    f = ids_of(rep)
    assert f["TM001"].evidence["ids"] == list(range(75, 102)) and f["TM001"].evidence["values"] == [3]
    de = f["TM002"].evidence["delete_ending"]
    assert de["unmodelled"] == de["count"] == 35 and de["by_suffix"] == {"D": 19, "DC": 11, "DW": 5}
    assert f["TM006"].evidence["names"] == ["nfd"]
    assert "C4" in f["TM008"].evidence["missing_text_bytes"] and f["TM008"].evidence["unk_id"] is None
    assert f["TM003"].evidence["ids"] == [36, 37, 38, 151, 152]
    assert "TM009" in f


def test_cli_scylla1254_strict_exits_0_with_the_zero_byte_warning():
    d = shared_path("tokenizers", "scylla-1254")
    r = run_cli(d / "scylla.meta.npz", "--tokenizer", d / "scylla.yaml", "--strict")
    assert r.returncode == 0, r.stdout + r.stderr
    rep = audit_tokenizer(d / "scylla.meta.npz", tokenizer=d / "scylla.yaml", strict=True)[0]
    f = ids_of(rep)
    assert f["TM005"].severity.value == "warning" and f["TM005"].evidence["count"] == 75
    assert not [x for x in rep.findings if x.severity.value == "error"]


@pytest.fixture(scope="module")
def corpus():
    return corpus_documents(150, seed=21)


def _bundle(tmp_path, tok, docs, bos):
    stream, lost, _ = encode_corpus(tok, docs, bos)
    write_shard(tmp_path / "fineweb_val_000000.bin", stream)
    from audit.formats.docs import write_docs_jsonl

    write_docs_jsonl(tmp_path / "docs.jsonl", docs)
    return stream, lost


def test_corpus_with_scylla1254_is_exact(tmp_path, corpus):
    d = shared_path("tokenizers", "scylla-1254")
    tok = load_tokenizer(d / "scylla.yaml")
    stream, lost = _bundle(tmp_path, tok, corpus, 1253)
    assert not lost
    rep = audit_tokenizer(d / "scylla.meta.npz", tokenizer=tok, val=tmp_path / "fineweb_val_000000.bin",
                          source=tmp_path / "docs.jsonl", strict=True)[0]
    s = rep.summary
    assert s["exact"] and s["bad documents"] == 0
    assert s["source bytes"] == s["meta bytes (documents)"] == s["decoded bytes"] == sum(len(t.encode()) for t in corpus)
    f = ids_of(rep)
    assert f["TM005"].severity.value == "warning" and "occur 0 times" in f["TM005"].message
    assert rep.passed if hasattr(rep, "passed") else not [x for x in rep.findings if x.severity.value == "error"]


def test_corpus_with_scylla998_is_broken_then_fixed_to_the_residual(tmp_path, corpus):
    d = shared_path("tokenizers", "scylla-998")
    tok = load_tokenizer(d / "candidate.vocab")
    bos = tok.vocab_size  # the real bundle has none; give the test stream one past the vocabulary
    stream, lost = _bundle(tmp_path, tok, corpus, bos)
    assert sum(lost.values()) > 0  # CJK, Cyrillic, emoji … are lost
    from audit.formats.meta import MetaTable, load_meta

    m = load_meta(d / "candidate.meta.npz")
    padded = MetaTable(np.append(m.base_bytes, 0), np.append(m.has_leading_space, False),
                       np.append(m.is_boundary_token, True))
    padded.save(tmp_path / "candidate.meta.npz")
    reps = audit_tokenizer(tmp_path / "candidate.meta.npz", tokenizer=tok, val=tmp_path / "fineweb_val_000000.bin",
                           source=tmp_path / "docs.jsonl", strict=True, bos_id=bos, fix_out=tmp_path / "fixed.npz")
    before, after = reps
    f = ids_of(before)
    bad = f["TOK014"]
    assert bad.evidence["bad_docs"] > 0 and bad.evidence["first"][0][1] >= 0  # first differing offset
    drift = f["TOK011"].evidence["drift"]
    assert drift > 0
    byte_fb = f["TM001"].evidence["bytes_added"]
    assert byte_fb > 0
    # after --fix: meta − decoded is only the context residual, which our residual pass explains
    starts = np.flatnonzero(stream == bos)
    ends = np.append(starts[1:], len(stream))
    res = residual(tok, stream, starts + 1, ends)
    a = after.summary
    assert a["meta bytes (documents)"] - a["decoded bytes"] == res["total"]
    assert abs(res["total"]) < abs(drift) / 5
    assert set(res["by_class"]) <= {"delete-non-space", "delete-through-marker", "case-length", "other-context"}
    assert "TM001" not in ids_of(after) and ids_of(after)["TM002"].severity.value == "info"
    # decoded vs source: NFD and lost bytes, which no table can fix
    nd = normalization_drift(corpus, 1)
    assert nd["drift"] > 0


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("tm")
    return {k: resolve(v, root) for k, v in build_tm_bundles(root / "tokenmonster").items()}


def test_project_exact_bundle(bundles):
    b = bundles["exact"]
    rep = audit_tokenizer(b["meta"], tokenizer=b["vocab"], val=b["val"], source=b["source"], strict=True)[0]
    assert rep.summary["exact"] and b["expect_pass"]
    assert not [x for x in rep.findings if x.severity.value == "error"]
    r = run_cli(b["meta"], "--tokenizer", b["vocab"], "--val", b["val"], "--source", b["source"], "--strict")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr


def test_project_scylla_like_bundle(bundles, tmp_path):
    b = bundles["scylla_like"]
    reps = audit_tokenizer(b["meta"], tokenizer=b["vocab"], val=b["val"], source=b["source"], strict=True,
                           fix_out=tmp_path / "fixed.npz")
    f = ids_of(reps[0])
    for rid in ("TM001", "TM002", "TM006", "TM008", "TOK011", "TOK014"):
        assert rid in f, rid
    assert f["TM001"].evidence["values"] == [3] and f["TM001"].evidence["count"] == 27
    assert "TOK004" not in f  # the generic byte-fallback rule is superseded by TM001, not repeated
    a = reps[1].summary
    before = reps[0].summary
    assert abs(a["meta bytes (documents)"] - a["decoded bytes"]) < (before["meta bytes (documents)"] - before["decoded bytes"]) / 20
