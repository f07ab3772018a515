"""Fuzz every loader the CLI reaches with malformed inputs (Hypothesis, derandomised: the same
cases on every run, so a failure reproduces).

Each case must end in a normal result or an `InputError` naming the file; any other exception
(what the CLI's catch-all would print as `internal error`) fails the test, and so does a case
whose traced allocations (tracemalloc: Python objects and numpy buffers) pass CASE_BUDGET_MB.
Inputs are valid files with a few bytes damaged, cut, repeated or replaced, plus generated
structures (JSON, YAML, npy members under each zip method). Wall time is not asserted: the
budgets (audit/budgets.py) bound it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import tempfile
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hostile_factory as H
from audit.cli import cli
from audit.cli.common import run_guarded
from audit.errors import InputError
from audit.formats.docs import read_docs_jsonl
from audit.formats.manifest import load_manifest
from audit.formats.meta import load_meta
from audit.formats.shards import read_shard, shard_bytes
from audit.tokenizers import load_tokenizer
from audit.tokenizers.purebyte import PureByteTokenizer
from audit.tokenizers.tokenmonster.binary import write_binary
from audit.tokenizers.tokenmonster.vocab import Entry, Vocab
from audit.tokenizers.tokenmonster.yamlvocab import write_yaml

CASE_BUDGET_MB = 64


def fuzz(n: int):
    return settings(max_examples=n, derandomize=True, database=None, deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


@pytest.fixture(scope="module")
def work():
    with tempfile.TemporaryDirectory(prefix="golfcheck-fuzz-") as d:
        yield Path(d)


def bounded(fn, path: Path, *, names: Path | None = None):
    """Run fn(path): a result, or an InputError naming a file below `names` (default: path).
    Allocations are traced only around the call (tracing Hypothesis itself would triple the cost)."""
    tracemalloc.start()
    try:
        return fn(path)
    except InputError as e:
        assert e.path is not None, e.one_line()
        want = str(names or path)
        assert e.path.startswith(want), f"{e.one_line()} does not name {want}"
    finally:
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        assert peak < CASE_BUDGET_MB, f"{path.name}: {peak:.0f} MB traced"


def cli_bounded(args: list, path: Path) -> int:
    """The CLI in-process: exit 0/1 (a verdict) or 2 with `error: <path…>: …`, never the catch-all."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = run_guarded(cli, [str(a) for a in args])
    text = err.getvalue().strip()
    assert "internal error" not in text, text
    if rc == 2:
        assert text.startswith(f"error: {path}") and "\n" not in text, text
    else:
        assert rc in (0, 1), (rc, text)
    return rc


# ---- mutations of a valid file ----------------------------------------------------------------
EXTREMES = [0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]


@st.composite
def mutated(draw, seed: bytes, max_ops: int = 4) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, max_ops))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "byte", "word", "cut", "insert", "repeat", "drop"]))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte":
            data[i] = draw(st.sampled_from([0, 0x7F, 0x80, 0xFF]) | st.integers(0, 255))
        elif op == "word":
            data[i:i + 4] = struct.pack("<I", draw(st.sampled_from(EXTREMES)))
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=12))
        elif op == "repeat":
            j = draw(st.integers(i, min(len(data), i + 64)))
            data[i:i] = data[i:j] * draw(st.integers(1, 8))
        else:
            del data[i:i + draw(st.integers(1, 16))]
    return bytes(data)


def _meta_seed(compressed: bool) -> bytes:
    raw = PureByteTokenizer().canonical_meta().to_npz_bytes()
    if not compressed:
        return raw
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    return out.getvalue()


def _small_vocab() -> Vocab:
    keys = [bytes([c]) for c in range(97, 123)] + [b" the", b"ing", b"\x7fD", b"\xe2\x80\x94"]
    entries = [Entry(k, i, -float(i) / 10) for i, k in enumerate(keys)]
    return Vocab(path=None, fmt="binary", capcode=2, charset=1, normalization=0, vocab_size=len(keys),
                 entries=entries, deleted=[Entry(b"zz", 3, 0.0)])


# ---- shards -----------------------------------------------------------------------------------
@fuzz(250)
@given(data=mutated(shard_bytes(np.arange(64, dtype=np.uint16) % 9)))
def test_fuzz_shard(work, data):
    p = work / "fineweb_val_000000.bin"
    p.write_bytes(data)
    arr = bounded(read_shard, p)
    if arr is not None:
        assert arr.dtype == np.uint16


# ---- meta.npz ---------------------------------------------------------------------------------
@fuzz(500)
@given(data=st.sampled_from([_meta_seed(False), _meta_seed(True)]).flatmap(mutated))
def test_fuzz_meta_bytes(work, data):
    p = work / "m.meta.npz"
    p.write_bytes(data)
    bounded(load_meta, p)


NPY = H.good_meta_payloads(24)


@fuzz(400)
@given(method=st.sampled_from([0, 8, 12, 14]), key=st.sampled_from(sorted(NPY)),
       payload=st.sampled_from(sorted(NPY.values())).flatmap(lambda b: mutated(b, 3)),
       lie=st.sampled_from([None, 0, 1, 100, 2**31]))
def test_fuzz_meta_members(work, method, key, payload, lie):
    """One member damaged inside a well-formed zip (right CRC), under each compression method,
    with the declared size sometimes a lie."""
    p = work / "mm.meta.npz"
    H.npz_member_zip(p, method, payload, name=f"{key}.npy")
    members = [(f"{k}.npy", 0, v, zlib.crc32(v), len(v)) for k, v in NPY.items() if k != key]
    if lie is not None:
        data = bytearray(p.read_bytes())
        struct.pack_into("<L", data, 22, lie)  # local header: uncompressed size
        p.write_bytes(bytes(data))
    one = H.raw_zip(members) if lie is None and method == 0 else None
    bounded(load_meta, p)
    if one is not None:
        (work / "two.meta.npz").write_bytes(one)
        bounded(load_meta, work / "two.meta.npz")


META_DTYPES = ["<i2", "<i8", "<u8", ">i4", "|u1", "|i1", "<f4", "|b1"]
meta_values = st.integers(-2**40, 2**40) | st.sampled_from([0, 1, -1, 32767, -32768, 2**63 - 1])


@fuzz(150)
@given(n=st.integers(1, 300), dt=st.sampled_from(META_DTYPES), fill=st.lists(meta_values, min_size=1, max_size=5),
       vocab_size=st.none() | meta_values, kind=st.sampled_from(["", "purebyte", "sentencepiece", "x" * 300]),
       flags=st.sampled_from(["|b1", "<i2", "<f4"]), longer=st.booleans())
def test_fuzz_meta_arrays_cli(work, n, dt, fill, vocab_size, kind, flags, longer):
    """Loadable metas with odd dtypes, values, lengths and scalars through the whole tokenizer
    audit (static checks included): a verdict or a named refusal."""
    p = work / "arr.meta.npz"
    arrays = dict(base_bytes=np.resize(np.array(fill).astype(dt, casting="unsafe"), n),
                  has_leading_space=np.resize(np.array([0, 1]), n).astype(flags),
                  is_boundary_token=np.resize(np.array([1, 0, 0]), n + longer).astype("|b1"),
                  tokenizer_kind=np.str_(kind))
    if vocab_size is not None:
        arrays["vocab_size"] = np.int64(vocab_size)
    np.savez(p, **arrays)
    cli_bounded(["tokenizer", p, "--tokenizer", "purebyte", "-q"], p)


@fuzz(150)
@given(data=mutated(shard_bytes(np.array([1, 108, 105, 1, 104, 105, 259, 0], np.uint16))))
def test_fuzz_val_shard_cli(work, data):
    d = work / "val"
    d.mkdir(exist_ok=True)
    meta = d / "pb.meta.npz"
    if not meta.exists():
        PureByteTokenizer().canonical_meta().save(meta)
    p = d / "fineweb_val_000000.bin"
    p.write_bytes(data)
    cli_bounded(["tokenizer", meta, "--tokenizer", "purebyte", "--val", p, "-q"], p)


# ---- SentencePiece .model ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def sp_seed() -> bytes:
    import sentencepiece as spm

    text = ["The quick brown fox jumps over the lazy dog. Grüße aus İzmir 🙂 ", "hello world, hello there"] * 40
    m = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(text), model_writer=m, vocab_size=300, model_type="bpe",
                                   byte_fallback=True, normalization_rule_name="identity", minloglevel=2,
                                   hard_vocab_limit=False)
    return m.getvalue()


@fuzz(250)
@given(data=st.data())
def test_fuzz_sentencepiece(work, sp_seed, data):
    from audit.tokenizers.sentencepiece_model import SentencePieceTokenizer

    p = work / "tok.model"
    p.write_bytes(data.draw(mutated(sp_seed)))
    tok = bounded(SentencePieceTokenizer.load, p)
    if tok is not None:
        tok.canonical_meta()


# ---- TokenMonster .vocab and .yaml ------------------------------------------------------------
VOCAB = _small_vocab()


@fuzz(400)
@given(data=mutated(write_binary(VOCAB)))
def test_fuzz_tokenmonster_binary(work, data):
    p = work / "tm.vocab"
    p.write_bytes(data)
    tok = bounded(load_tokenizer, p)
    if tok is not None:
        tok.id_bytes()


YAML_TEXT = write_yaml(VOCAB).encode()
yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                         st.text(max_size=12), st.sampled_from(["1e400", "0x1F", "~", "&a x", "*a", "!!binary AA=="]))
yaml_values = st.recursive(yaml_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c,
                                                                                                max_size=3), max_leaves=8)


@fuzz(250)
@given(data=mutated(YAML_TEXT, 3))
def test_fuzz_tokenmonster_yaml_text(work, data):
    p = work / "tm.yaml"
    p.write_bytes(data)
    bounded(load_tokenizer, p)


@fuzz(250)
@given(field=st.sampled_from(["token", "id", "score", "encoded"]), value=yaml_values,
       section=st.sampled_from(["tokens", "special", "delete"]),
       top=st.dictionaries(st.sampled_from(["charset", "capcode", "normalization", "unk-id", "unk", "extra"]),
                           yaml_values, max_size=2))
def test_fuzz_tokenmonster_yaml_fields(work, field, value, section, top):
    import yaml

    doc = {"charset": "utf-8", "capcode": 2, "normalization": "none",
           "tokens": [{"token": "a", "id": 0, "score": 0.5, "encoded": True},
                      {"token": "b", "id": 1, "score": 0.25, "encoded": False}]}
    doc.setdefault(section, [{"token": "c", "id": 1, "score": 0.0, "encoded": True}])
    doc[section][-1][field] = value
    doc.update(top)
    p = work / "f.yaml"
    try:
        p.write_text(yaml.safe_dump(doc, allow_unicode=True))
    except (yaml.YAMLError, ValueError):
        return  # not representable (e.g. a surrogate): nothing to read back
    bounded(load_tokenizer, p)


# ---- manifest.json (library and CLI) ----------------------------------------------------------
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=10))
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c,
                                                                                                max_size=3), max_leaves=8)
RAW_NUMBERS = ["1e400", "-1e400", "9" * 5000, "-0", "1.5"]


def _manifest_doc(draw) -> str:
    tok = {"name": "pb", "kind": "purebyte", "vocab_size": 260, "bos_id": 1, "meta_path": "pb.meta.npz",
           "path": "purebyte"}
    ds = {"name": "d", "tokenizer_name": "pb", "val_glob": "fineweb_val_*.bin", "bos_id": 1, "vocab_size": 260}
    doc = {"tokenizers": [tok], "datasets": [ds], "docs_jsonl": "docs.jsonl", "num_val_docs": 2}
    where = draw(st.sampled_from(["top", "tok", "ds"]))
    target = {"top": doc, "tok": tok, "ds": ds}[where]
    key = draw(st.sampled_from(sorted(target) + ["extra"]))
    raw = draw(st.sampled_from([None] + RAW_NUMBERS))
    target[key] = "@RAW@" if raw else draw(json_values)
    return json.dumps(doc).replace('"@RAW@"', raw or "")


@fuzz(150)
@given(data=st.data())
def test_fuzz_manifest_cli(work, data):
    d = work / "root"
    d.mkdir(exist_ok=True)
    meta = d / "pb.meta.npz"
    if not meta.exists():
        PureByteTokenizer().canonical_meta().save(meta)
        (d / "fineweb_val_000000.bin").write_bytes(shard_bytes(np.array([1, 108, 105, 1, 104], np.uint16)))
        (d / "docs.jsonl").write_text('{"text": "hi"}\n{"text": "yo"}\n')
    text = _manifest_doc(data.draw)
    if data.draw(st.booleans()):
        text = data.draw(mutated(text.encode(), 2)).decode("utf-8", "surrogateescape")
    (d / "manifest.json").write_text(text, encoding="utf-8", errors="surrogateescape")
    bounded(load_manifest, d, names=d)
    cli_bounded(["tokenizer", meta, "--data-root", d, "-q"], d)


# ---- docs.jsonl -------------------------------------------------------------------------------
doc_lines = st.one_of(
    json_values.map(lambda v: json.dumps({"text": v})),
    json_values.map(json.dumps),
    st.text(max_size=30).map(lambda t: json.dumps({"text": t}, ensure_ascii=False)),
    st.sampled_from(['{"text": "\\ud800"}', '{"text": "x", "n": ' + "1" * 5000 + "}", "[" * 3000 + "]" * 3000,
                     '{"text": NaN}', '{"text": "a"} trailing', '\ufeff{"text": "bom"}']),
).map(str.encode) | st.binary(max_size=30)


@fuzz(400)
@given(lines=st.lists(doc_lines, min_size=1, max_size=4), n=st.sampled_from([None, 1, 3]))
def test_fuzz_docs_jsonl(work, lines, n):
    p = work / "docs.jsonl"
    p.write_bytes(b"\n".join(lines) + b"\n")
    texts = bounded(lambda q: read_docs_jsonl(q, n), p)
    if texts is not None:
        assert all(isinstance(t, str) for t in texts)
        for t in texts:
            t.encode("utf-8")


# ---- submission.json (through the submission audit) -------------------------------------------
@pytest.fixture(scope="module")
def record(work):
    from record_factory import make_record

    rec = make_record(work / "records", "2026-05-01_fuzz")
    return rec, (rec / "submission.json").read_bytes()


@fuzz(150)
@given(data=st.data())
def test_fuzz_submission_json(record, data):
    from audit.submission.api import audit_submission

    rec, good = record
    if data.draw(st.booleans()):
        body = data.draw(mutated(good, 3))
    else:
        doc = json.loads(good)
        key = data.draw(st.sampled_from(sorted(doc) + ["seed_results", "extra"]))
        doc[key] = data.draw(json_values)
        raw = data.draw(st.sampled_from([None] + RAW_NUMBERS))
        body = json.dumps(doc).encode()
        if raw:
            body = body.replace(b'"val_bpb": ', b'"val_bpb": ' + raw.encode() + b', "was": ', 1)
    (rec / "submission.json").write_bytes(body)
    rep = bounded(audit_submission, rec)
    if rep is not None:
        assert rep.final_verdict in ("record", "non-record", "invalid")


def test_fuzz_suite_leaves_no_stray_files(work):
    """The loaders write nothing: the fuzz folder holds only what the tests wrote."""
    made = {p.name for p in work.rglob("*") if p.is_file()}
    assert not any(n.startswith(".") and n.endswith(".tmp") for n in made)
    assert os.access(work, os.W_OK)
