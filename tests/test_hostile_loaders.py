"""Regression tests for each hostile input of the fuzz run (issue: every failure a named one-line
error, bounded cost for tiny malicious files). Each went through the catch-all
`internal error: …` or cost seconds and gigabytes before; now each is `error: FILE: PROBLEM`,
exit 2, within a small memory budget (tracemalloc, not wall time)."""

from __future__ import annotations

import json
import struct
import tracemalloc
import zlib

import numpy as np
import pytest

import hostile_factory as H
from audit.cli import cli
from audit.cli.common import run_guarded
from audit.errors import InputError
from audit.formats.docs import read_docs_jsonl
from audit.formats.meta import load_meta
from audit.formats.shards import write_shard
from audit.tokenizers.purebyte import PureByteTokenizer
from audit.tokenizers.tokenmonster.binary import read_binary
from audit.tokenizers.tokenmonster.yamlvocab import read_yaml
from conftest import shared_path


@pytest.fixture
def env(tmp_path):
    meta = tmp_path / "pb.meta.npz"
    PureByteTokenizer().canonical_meta().save(meta)
    ids = [1] + [b + 4 for b in b"hello"] + [1] + [b + 4 for b in b"world"]
    write_shard(tmp_path / "fineweb_val_000000.bin", np.array(ids, np.uint16))
    return tmp_path, meta, tmp_path / "fineweb_val_000000.bin"


def refused(args, path, capsys, *, problem: str = "") -> str:
    """Run the CLI; assert exit 2 with one line `error: PATH: …` (never the catch-all)."""
    rc = run_guarded(cli, [str(a) for a in args])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert "internal error" not in err and "\n" not in err, err
    assert err.startswith(f"error: {path}: "), err
    assert problem in err, err
    return err


def peak_mb(fn) -> float:
    """Peak traced Python/numpy allocation of fn() in MB (fn must raise InputError)."""
    tracemalloc.start()
    try:
        with pytest.raises(InputError):
            fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


# ---- docs.jsonl -------------------------------------------------------------------------------
@pytest.mark.parametrize("line, problem", [
    (b'{"text": "caf\xe9"}', "line 2: not UTF-8"),
    (b'{"text": "\\ud800 lone"}', "line 2: 'text' holds a lone surrogate"),
    (b"[" * 100_000 + b"]" * 100_000, "line 2: JSON nested too deeply"),
    (b'{"text": "x", "n": ' + b"7" * 5000 + b"}", "line 2: not valid JSON"),
])
def test_docs_jsonl_cases(env, capsys, line, problem):
    d, meta, val = env
    docs = d / "docs.jsonl"
    docs.write_bytes(b'{"text": "hello"}\n' + line + b"\n")
    with pytest.raises(InputError, match=problem.split(":")[0]):
        read_docs_jsonl(docs)
    refused(["tokenizer", meta, "--tokenizer", "purebyte", "--val", val, "--source", docs, "-q"], docs, capsys,
            problem=problem)


# ---- meta.npz ---------------------------------------------------------------------------------
def _meta_with(tmp, method, *, corrupt_at=None, flags=0, payload=None):
    pl = H.good_meta_payloads()
    p = tmp / "x.meta.npz"
    H.npz_member_zip(p, method, payload if payload is not None else pl["base_bytes"], corrupt_at=corrupt_at, flags=flags)
    return p


@pytest.mark.parametrize("case, problem", [
    ("deflate", "corrupt deflate stream"),
    ("lzma", "corrupt lzma stream"),
    ("bzip2", "corrupt bzip2 stream"),
    ("method", "unsupported compression method 99"),
    ("encrypted", "is encrypted"),
    ("npy-header", "bad .npy header"),
    ("npy-count", "header says 16 items"),
])
def test_meta_npz_cases(env, capsys, case, problem):
    d, _, _ = env
    if case == "deflate":
        p = _meta_with(d, 8, corrupt_at=2)
    elif case == "lzma":
        p = _meta_with(d, 14, corrupt_at=12)
    elif case == "bzip2":
        p = _meta_with(d, 12, corrupt_at=12)
    elif case == "method":
        p = _meta_with(d, 99)
    elif case == "encrypted":
        p = _meta_with(d, 0, flags=1)
    elif case == "npy-header":
        p = _meta_with(d, 0, payload=H.good_meta_payloads()["base_bytes"][:40])  # header cut short
    else:
        p = _meta_with(d, 8, payload=H.good_meta_payloads()["base_bytes"][:-2])  # one item missing
    with pytest.raises(InputError, match=problem):
        load_meta(p)
    refused(["tokenizer", p, "--tokenizer", "purebyte", "-q"], p, capsys, problem=problem)


def test_meta_deflate_bomb_refused_from_headers(tmp_path, capsys):
    p = H.meta_deflate_bomb(tmp_path / "bomb.meta.npz")  # ~522 KB, 2^27 ids (512 MB inflated)
    assert p.stat().st_size < 600_000
    assert peak_mb(lambda: load_meta(p)) < 8
    refused(["tokenizer", p, "--tokenizer", "purebyte", "-q"], p, capsys, problem="over the budget")


def test_meta_bz2_bomb_with_lying_header_stops_at_the_cap(tmp_path):
    # 2^23 ids of bzip2 (a few hundred bytes) whose headers claim 1,000 bytes: the old reader
    # inflated a whole compressed chunk at once; now inflation stops one byte past the claim
    p = H.meta_bz2_bomb(tmp_path / "bz.meta.npz", ids=1 << 23, declared=1000)
    assert p.stat().st_size < 2000
    assert peak_mb(lambda: load_meta(p)) < 4
    with pytest.raises(InputError, match="inflates past its declared 1,000 bytes"):
        load_meta(p)


def test_meta_lzma_dictionary_size_cannot_allocate(tmp_path):
    pl = H.good_meta_payloads()["base_bytes"]
    p = H.npz_member_zip(tmp_path / "l.meta.npz", 14, pl)
    data = bytearray(p.read_bytes())
    at = data.index(b"\x09\x04\x05\x00") + 5  # LZMA properties: dictionary size follows the lc/lp/pb byte
    data[at:at + 4] = struct.pack("<I", 0xFFFFFFFF)
    p.write_bytes(bytes(data))
    assert peak_mb(lambda: load_meta(p)) < 4  # missing arrays, but the member itself reads fine


def test_meta_ids_over_budget_from_npy_header(tmp_path):
    head = H.npy_header("<i2", 1 << 21)
    p = tmp_path / "ids.meta.npz"
    p.write_bytes(H.raw_zip([("base_bytes.npy", 0, head, zlib.crc32(head), len(head))]))
    with pytest.raises(InputError, match="length is 2,097,152 items, over the budget"):
        load_meta(p)


# ---- manifest ---------------------------------------------------------------------------------
@pytest.mark.parametrize("doc, problem", [
    ({"tokenizers": 5}, "malformed manifest entry"),
    ({"tokenizers": [{"name": "t", "bos_id": "1e400", "meta_path": "pb.meta.npz"}]}, "malformed manifest entry"),
    ({"docs_jsonl": 5}, "docs_jsonl is a int"),
])
def test_manifest_cases(env, capsys, doc, problem):
    d, meta, _ = env
    text = json.dumps(doc).replace('"1e400"', "1e400")  # json.dumps cannot write the literal itself
    (d / "manifest.json").write_text(text)
    refused(["tokenizer", meta, "--data-root", d, "-q"], d / "manifest.json", capsys, problem=problem)


# ---- TokenMonster -----------------------------------------------------------------------------
def test_yaml_delete_entry_with_list_score(tmp_path, capsys):
    p = tmp_path / "v.yaml"
    p.write_text("charset: utf-8\ncapcode: 0\ntokens:\n  - {token: a, id: 0, score: 0.5, encoded: true}\n"
                 "delete:\n  - {token: b, id: 0, score: [1]}\n")
    meta = tmp_path / "m.meta.npz"
    PureByteTokenizer().canonical_meta().save(meta)
    refused(["tokenizer", meta, "--tokenizer", p, "-q"], p, capsys, problem="delete[0]: score")


def test_yaml_alias_bomb(tmp_path, capsys):
    p = H.yaml_alias_bomb(tmp_path / "bomb.yaml", pad=960)  # ~77 KB; 9^9 strings once expanded
    assert 60_000 < p.stat().st_size < 100_000
    assert peak_mb(lambda: read_yaml(p)) < 8
    meta = tmp_path / "m.meta.npz"
    PureByteTokenizer().canonical_meta().save(meta)
    refused(["tokenizer", meta, "--tokenizer", p, "-q"], p, capsys, problem="anchor or alias")


def test_yaml_deep_nesting_and_huge_int(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("charset: utf-8\ncapcode: 0\nx: " + "[" * 10_000 + "]" * 10_000 + "\n")
    with pytest.raises(InputError, match="nesting depth"):
        read_yaml(deep)
    big = tmp_path / "big.yaml"
    big.write_text("charset: utf-8\ncapcode: 0\ntokens:\n  - {token: a, id: " + "9" * 5000 + "}\n")
    with pytest.raises(InputError, match="YAML value cannot be read"):
        read_yaml(big)


def test_vocab_header_claiming_16m_ids(tmp_path, capsys):
    p = H.vocab_id_bomb(tmp_path / "bomb.vocab")  # ~10.7 KB, header: 16.7 M ids
    assert 10_000 < p.stat().st_size < 11_500
    assert peak_mb(lambda: read_binary(p)) < 2
    meta = tmp_path / "m.meta.npz"
    PureByteTokenizer().canonical_meta().save(meta)
    refused(["tokenizer", meta, "--tokenizer", p, "-q"], p, capsys, problem="header vocab size is 16,777,214 ids")


def test_vocab_entry_count_against_file_size(tmp_path):
    p = H.vocab_id_bomb(tmp_path / "n.vocab", claimed=600, entries=600)
    data = bytearray(p.read_bytes())
    data[17:20] = (0xFFFFF0).to_bytes(3, "little")  # n_info: far more entries than bytes
    p.write_bytes(bytes(data))
    with pytest.raises(InputError, match="token entries cannot fit"):
        read_binary(p)


# ---- SentencePiece ----------------------------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def test_sentencepiece_trainer_spec_string_not_utf8(tmp_path, capsys):
    model = shared_path("tokenizers", "sp1024", "fineweb_1024_bpe.model")
    # TrainerSpec (field 2) unk_surface (field 44) as bytes that are not UTF-8: protobuf merges it
    p = tmp_path / "bad.model"
    p.write_bytes(model.read_bytes() + _field(2, _field(44, b"\xff\xfe")))
    meta = tmp_path / "m.meta.npz"
    PureByteTokenizer().canonical_meta().save(meta)
    refused(["tokenizer", meta, "--tokenizer", p, "-q"], p, capsys, problem="building its id tables")


# ---- the last resort names the file and step ----------------------------------------------------
def test_unexpected_failure_names_file_and_step(env, capsys, monkeypatch):
    import audit.formats.meta as meta_mod

    def boom(*a, **k):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(meta_mod, "load_npz", boom)
    _, meta, _ = env
    rc = run_guarded(cli, ["tokenizer", str(meta), "--tokenizer", "purebyte", "-q"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err == f"error: {meta}: internal error while reading a meta archive: RuntimeError: simulated bug"


def test_tokenmonster_ids_without_entries_are_bounded(tmp_path):
    p = H.vocab_id_bomb(tmp_path / "1m.vocab", claimed=1_000_000)  # under the id cap, 600 entries
    with pytest.raises(InputError, match="1,000,000 ids for 600 token entries"):
        read_binary(p)
    y = tmp_path / "sparse.yaml"
    y.write_text("charset: utf-8\ncapcode: 0\ntokens:\n  - {token: a, id: 900000, encoded: true}\n")
    with pytest.raises(InputError, match="ids reach 900,000 with only 1 tokens"):
        read_yaml(y)


def test_manifest_beside_a_vocabulary_names_the_file(tmp_path, capsys):
    """`{"tokenizers": 5}` in the manifest.json beside a TokenMonster vocabulary: a named error."""
    p = tmp_path / "v.yaml"
    p.write_text("charset: utf-8\ncapcode: 0\ntokens:\n  - {token: a, id: 0, score: 0.5, encoded: true}\n")
    (tmp_path / "manifest.json").write_text('{"tokenizers": 5}')
    meta = tmp_path / "m.meta.npz"
    PureByteTokenizer().canonical_meta().save(meta)
    rc = run_guarded(cli, ["tokenizer", str(meta), "--tokenizer", str(p), "-q"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err
    assert err.startswith(f"error: {tmp_path / 'manifest.json'}: ") and "must be a list" in err, err
    assert "internal error" not in err
