"""The challenge's data/ layout and manifest, and how `audit tokenizer META` finds its tokenizer.

Manifest kinds and keys as the challenge's pipeline writes them (`sentencepiece_bpe`, `byte`,
`model_path`); the fixture tree in that layout audited with `--data-root` alone (three-way,
exact); record folders that ship the manifest with the files beside it; a meta whose tokenizer
cannot be found is never `pass`.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from audit.cli import cli
from audit.cli.common import run_guarded
from audit.errors import InputError
from audit.formats.manifest import load_manifest
from audit.rules import Severity
from audit.tokenizer_audit import AuditOptions, audit_tokenizer
from audit.tokenizer_audit.api import strict_severity
from audit.tokenizers import (BACKENDS, backend_for_kind, is_tokenizer_file, load_tokenizer,
                              tokenizer_stem)
from audit.tokenizers.purebyte import PureByteTokenizer
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def fx():
    from fixtures.build import ensure_built

    return ensure_built()


def rules(rep) -> dict:
    return {f.rule_id: f for f in rep.findings}


# ---- the backend table and the manifest ----------------------------------------------------
@pytest.mark.parametrize("kind,backend", [("sentencepiece_bpe", "sentencepiece"), ("sentencepiece", "sentencepiece"),
                                          ("byte", "purebyte"), ("pure_byte", "purebyte"),
                                          ("tokenmonster", "tokenmonster"), ("SentencePiece_BPE", "sentencepiece")])
def test_official_kinds_and_aliases(kind, backend):
    assert backend_for_kind(kind).kind == backend
    assert backend_for_kind("char") is None and backend_for_kind("") is None


def test_backend_table_classifies_files():
    assert {b.kind for b in BACKENDS} == {"sentencepiece", "tokenmonster", "purebyte"}
    assert all(is_tokenizer_file(n) for n in ("x.model", "x.vocab", "x.yaml", "x.yml", "fineweb_pure_byte_260.json"))
    assert not any(is_tokenizer_file(n) for n in ("submission.json", "manifest.json", "x.meta.npz", "log.txt"))
    assert tokenizer_stem("tokenizers/x.meta.npz") == "x" and tokenizer_stem("a\\b\\y.model") == "y"


def test_manifest_official_shape(tmp_path):
    (tmp_path / "tokenizers").mkdir()
    (tmp_path / "tokenizers" / "fineweb_1024_bpe.model").write_bytes(b"")
    (tmp_path / "tokenizers" / "fineweb_pure_byte_260.json").write_text("{}")
    doc = {"docs_jsonl": "docs_selected.jsonl", "tokenizers": [
        {"name": "sp_bpe_1024", "kind": "sentencepiece_bpe", "vocab_size": 1024, "bos_id": 1,
         "model_path": "tokenizers/fineweb_1024_bpe.model", "vocab_path": "tokenizers/fineweb_1024_bpe.vocab"},
        {"name": "pure_byte_260", "kind": "byte", "vocab_size": 260, "bos_id": 1,
         "path": "tokenizers/fineweb_pure_byte_260.json"},
        {"name": "c", "kind": "char", "path": "tokenizers/fineweb_char.json"}],
        "datasets": [{"name": "fineweb10B_sp1024", "tokenizer_name": "sp_bpe_1024", "bos_id": 1,
                      "val_glob": "datasets/fineweb10B_sp1024/fineweb_val_*.bin"}]}
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    m = load_manifest(tmp_path)
    sp, byte, char = m.tokenizers
    assert (sp.kind, sp.manifest_kind, sp.path.name) == ("sentencepiece", "sentencepiece_bpe", "fineweb_1024_bpe.model")
    assert (byte.kind, byte.manifest_kind) == ("purebyte", "byte") and not char.supported
    assert m.reference_dataset()[0].name == "fineweb10B_sp1024" and not m.has_val(m.datasets[0])
    # the official sp entry has no meta_path: a meta of the same stem belongs to it
    assert m.tokenizer_for_meta(tmp_path / "tokenizers" / "fineweb_1024_bpe.meta.npz") is sp
    assert m.tokenizer_for_meta(tmp_path / "other.meta.npz") is None


def test_manifest_paths_fall_back_to_the_file_beside_it(tmp_path):
    (tmp_path / "cand.vocab").write_bytes(b"x")
    doc = {"tokenizers": [{"name": "t", "kind": "tokenmonster", "path": "tokenizers/cand.vocab",
                           "meta_path": "tokenizers/cand.meta.npz"}]}
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    m = load_manifest(tmp_path)
    assert m.tokenizers[0].path == tmp_path / "cand.vocab"
    assert any("using cand.vocab beside the manifest" in n for n in m.notes)
    assert m.tokenizers[0].meta_path == tmp_path / "tokenizers" / "cand.meta.npz"  # absent everywhere: as named


def test_pure_byte_json_as_the_pipeline_writes_it(tmp_path):
    cfg = {"pad_id": 0, "bos_id": 1, "eos_id": 2, "unk_id": 3, "byte_offset": 4, "byte_count": 256}
    p = tmp_path / "fineweb_pure_byte_260.json"
    p.write_text(json.dumps({"tokenizer_type": "pure_byte", "config": cfg, "vocab_size": 260}))
    assert isinstance(load_tokenizer(p), PureByteTokenizer)
    p.write_text(json.dumps({"tokenizer_type": "pure_byte", "config": {**cfg, "byte_offset": 3}}))
    with pytest.raises(InputError, match="non-standard"):
        load_tokenizer(p)
    p.write_text(json.dumps({"tokenizer_type": "char"}))
    with pytest.raises(InputError, match="pure_byte"):
        load_tokenizer(p, "byte")


# ---- the official-layout fixture tree -------------------------------------------------------
def test_fixture_tree_is_the_official_layout(fx):
    d = fx.data_root
    for rel in ("manifest.json", "docs_selected.jsonl", "tokenizers/fineweb_1024_bpe.model",
                "datasets/fineweb10B_sp1024/fineweb_val_000000.bin"):
        assert (d / rel).is_file(), rel
    raw = json.loads((d / "manifest.json").read_text())
    assert {t["kind"] for t in raw["tokenizers"]} == {"sentencepiece_bpe", "tokenmonster"}
    assert all(not str(v).startswith("/") for t in raw["tokenizers"] for k, v in t.items() if k.endswith("path"))


def test_data_root_alone_runs_the_three_way_audit(fx):
    """The 'done when' of the official layout: candidate meta + --data-root, nothing else."""
    (rep,) = audit_tokenizer(fx.candidate["meta"], AuditOptions(data_root=fx.data_root, strict=True))
    s = rep.summary
    assert rep.passed and s["exact"] and s["documents"] == fx.n_val_docs
    assert s["source bytes"] == s["meta bytes (documents)"] == s["decoded bytes"] > 0
    assert s["dataset"] == "fineweb10B_candidate" and s["BOS id"] == fx.candidate["bos_id"]
    assert "sp1024" in s["source"] and "the default of a data root" in s["inputs"]
    assert "candidate.yaml" in s["tokenizer found"]
    assert "TOK025" in rules(rep)


def test_data_root_without_sp1024_uses_the_raw_documents(fx, tmp_path):
    """No SentencePiece dataset on disk: the raw documents are the source, and the report says so."""
    d = tmp_path / "data"
    shutil.copytree(fx.data_root, d, ignore=shutil.ignore_patterns("fineweb10B_sp1024"))
    (rep,) = audit_tokenizer(d / "tokenizers" / "candidate.meta.npz", data_root=d)
    assert rep.summary["source"].startswith("raw documents of docs_selected.jsonl")
    assert "no SentencePiece dataset on disk" in rep.summary["inputs"]
    assert rep.summary["meta bytes (documents)"] == rep.summary["decoded bytes"]  # the candidate is exact
    assert "TOK012" in rules(rep)  # but the raw text is not the normalised text it encodes


def test_cli_data_root_alone(fx, capsys, tmp_path):
    rc = run_guarded(cli, ["tokenizer", str(fx.candidate["meta"]), "--data-root", str(fx.data_root), "--strict",
                           "-q", "--json", str(tmp_path / "r.json")])
    assert rc == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "r.json").read_text())["reports"][0]["summary"]["exact"] is True


# ---- finding the tokenizer -----------------------------------------------------------------
def test_manifest_one_folder_up_names_the_tokenizer(fx):
    (rep,) = audit_tokenizer(fx.candidate["meta"])  # data/tokenizers/x.meta.npz → data/manifest.json
    assert rep.passed and "named by the manifest beside the meta" in rep.summary["tokenizer found"]
    assert rep.summary["mode"] == "static (no val data)"  # val only with --data-root


def test_single_fitting_tokenizer_beside_the_meta(fx, tmp_path):
    shutil.copy(fx.model, tmp_path / "mine.model")
    shutil.copy(fx.meta, tmp_path / "mine.meta.npz")
    (rep,) = audit_tokenizer(tmp_path / "mine.meta.npz", val=fx.val_glob, strict=True)
    assert rep.passed and rep.summary["exact"] and "the only tokenizer file beside the meta" in rep.summary["tokenizer found"]
    shutil.copy(fx.candidate["vocab"], tmp_path / "other.yaml")  # 957 ids: does not fit 1024
    (rep,) = audit_tokenizer(tmp_path / "mine.meta.npz", strict=True)
    assert rep.passed
    shutil.copy(fx.model, tmp_path / "again.model")  # two that fit: ambiguous, not guessed
    (rep,) = audit_tokenizer(tmp_path / "mine.meta.npz")
    assert rep.final_verdict == "incomplete" and "several tokenizer files" in rules(rep)["TOK027"].message


def test_no_tokenizer_is_never_pass(fx, tmp_path):
    meta = tmp_path / "lonely.meta.npz"
    shutil.copy(fx.meta, meta)
    (rep,) = audit_tokenizer(meta, val=fx.val_glob, bos_id=1)
    f = rules(rep)["TOK027"]
    assert rep.final_verdict == "incomplete" and f.severity is Severity.WARNING
    assert "--tokenizer" in f.message and "--data-root" in f.message
    (rep,) = audit_tokenizer(meta, strict=True)
    assert rep.final_verdict == "fail" and rules(rep)["TOK027"].severity is Severity.ERROR


def test_scylla_998_meta_alone_is_audited_against_the_vocab_its_manifest_names(tmp_path):
    folder = shared_path("tokenizers", "scylla-998")
    (rep,) = audit_tokenizer(folder / "candidate.meta.npz", strict=True)
    assert not rep.passed and rep.summary["tokenizer"] == "candidate.vocab"
    assert {"TM001", "TM002", "TM006"} <= set(rules(rep))
    assert "using candidate.vocab beside the manifest" in rep.summary["inputs"]
    # --data-root on the record-style folder: the same vocab; its val glob has no shards there
    (rep,) = audit_tokenizer(folder / "candidate.meta.npz", data_root=folder, strict=True)
    assert not rep.passed and "static checks only" in rep.summary["inputs"]
    # the meta without its folder: nothing to find, --strict fails and says what to pass
    shutil.copy(folder / "candidate.meta.npz", tmp_path / "candidate.meta.npz")
    (rep,) = audit_tokenizer(tmp_path / "candidate.meta.npz", strict=True)
    assert [f.rule_id for f in rep.errors] == ["TOK027"] and "--tokenizer" in rep.errors[0].message


def test_data_root_that_does_not_name_the_meta_is_bad_input(fx, tmp_path):
    meta = tmp_path / "unrelated.meta.npz"
    shutil.copy(fx.meta, meta)
    with pytest.raises(InputError, match="no tokenizer entry ships the meta"):
        audit_tokenizer(meta, data_root=fx.data_root)


# ---- the options object and --strict ---------------------------------------------------------
def test_options_are_frozen_and_validated(tmp_path):
    o = AuditOptions(strict=True)
    with pytest.raises(Exception):
        o.strict = False  # type: ignore[misc]
    with pytest.raises(InputError):
        AuditOptions(claimed_bpb=0)
    (tmp_path / "exists.npz").write_bytes(b"")
    with pytest.raises(InputError, match="overwrite"):
        AuditOptions(fix_out=tmp_path / "exists.npz")


def test_strict_severity_is_decided_in_one_place():
    assert strict_severity(True) is Severity.ERROR and strict_severity(True, 0.0) is Severity.ERROR
    assert strict_severity(False) is None
    assert strict_severity(False, 1e-6) is Severity.WARNING and strict_severity(False, -2e-5) is Severity.ERROR


def test_canonical_meta_is_computed_once(fx):
    tok = load_tokenizer(fx.model)
    a, b = tok.canonical_meta(), tok.canonical_meta()
    assert a is not b and a.equals(b)  # callers get their own copy ...
    a.base_bytes[:] = 99
    assert tok.canonical_meta().equals(b)  # ... of one table built once
    assert tok._canonical_memo is not None
    assert np.array_equal(tok.canonical_meta(2048).base_bytes[:1024], b.base_bytes)  # padded variant
