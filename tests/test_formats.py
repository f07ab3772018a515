"""Data layer: shards, document split, meta schema, manifest, docs, sidecars."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from audit.errors import InputError
from audit.formats.docs import DocBytes, read_docs_jsonl, read_text_dir, write_docs_jsonl
from audit.formats.manifest import load_manifest
from audit.formats.meta import MetaTable, load_meta
from audit.formats.shards import (HEADER_BYTES, check_ids, read_shard, read_stream, shard_bytes,
                                  split_documents, write_shard)
from audit.formats.sidecar import find_sidecars, is_sidecar, sidecar_path

ids = st.lists(st.integers(0, 0xFFFF), max_size=300)


@settings(max_examples=40, deadline=None)
@given(ids)
def test_shard_round_trip(tmp_path_factory, values):
    p = tmp_path_factory.mktemp("s") / "fineweb_val_000000.bin"
    write_shard(p, np.array(values, dtype=np.int64))
    back = read_shard(p)
    assert back.dtype == np.dtype("<u2") and back.tolist() == values


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(2, 50), max_size=8), max_size=12))
def test_split_join(docs):
    bos = 1
    stream = np.array([t for d in docs for t in [bos] + d], dtype=np.uint16)
    starts, ends = split_documents(stream, bos)
    assert len(starts) == len(docs)
    assert [stream[s + 1:e].tolist() for s, e in zip(starts, ends)] == docs
    joined = np.concatenate([stream[s:e] for s, e in zip(starts, ends)]) if docs else stream
    assert joined.tolist() == stream.tolist()


def test_shard_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_shard(tmp_path / "missing.bin")
    good = shard_bytes(np.arange(10))
    bad_magic = bytearray(good)
    bad_magic[0] ^= 0xFF
    (tmp_path / "m.bin").write_bytes(bytes(bad_magic))
    with pytest.raises(InputError, match="wrong magic"):
        read_shard(tmp_path / "m.bin")
    (tmp_path / "t.bin").write_bytes(good[:HEADER_BYTES + 6])
    with pytest.raises(InputError, match="truncated"):
        read_shard(tmp_path / "t.bin")
    (tmp_path / "h.bin").write_bytes(good[:100])
    with pytest.raises(InputError, match="truncated"):
        read_shard(tmp_path / "h.bin")
    (tmp_path / "x.bin").write_bytes(good + b"\0\0")
    with pytest.raises(InputError, match="count mismatch"):
        read_shard(tmp_path / "x.bin")
    with pytest.raises(InputError, match="no shard matches"):
        read_stream(str(tmp_path / "nothing_*.bin"))
    with pytest.raises(InputError, match="out of range"):
        check_ids(np.array([1, 2, 1024], np.uint16), 1024, "v.bin")
    check_ids(np.array([1, 2, 1023], np.uint16), 1024, "v.bin")


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_meta_schema(tmp_path):
    m = MetaTable(np.array([0, 1, 2], np.int16), np.array([False, True, False]), np.array([True, False, False]),
                  tokenizer_kind="sentencepiece", source_model_name="x")
    m.save(tmp_path / "ok.npz")
    assert load_meta(tmp_path / "ok.npz").equals(m)
    with pytest.raises(InputError, match="overwrite"):
        m.save(tmp_path / "ok.npz")
    obj = np.array([1, "a"], dtype=object)
    _npz(tmp_path / "obj.npz", base_bytes=obj, has_leading_space=np.zeros(2, bool), is_boundary_token=np.zeros(2, bool))
    with pytest.raises(InputError, match="pickle|object"):
        load_meta(tmp_path / "obj.npz")
    _npz(tmp_path / "miss.npz", base_bytes=np.zeros(2, np.int16), has_leading_space=np.zeros(2, bool))
    with pytest.raises(InputError, match="missing key"):
        load_meta(tmp_path / "miss.npz")
    _npz(tmp_path / "len.npz", base_bytes=np.zeros(3, np.int16), has_leading_space=np.zeros(2, bool),
         is_boundary_token=np.zeros(3, bool))
    with pytest.raises(InputError, match="lengths differ"):
        load_meta(tmp_path / "len.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="npz"):
        load_meta(tmp_path / "junk.npz")
    with pytest.raises(InputError, match="no such file"):
        load_meta(tmp_path / "none.npz")


def test_manifest_and_docs(tmp_path):
    (tmp_path / "tokenizers").mkdir()
    (tmp_path / "tokenizers" / "t.meta.npz").write_bytes(b"")
    doc = {"num_val_docs": 2, "docs_jsonl": "docs_selected.jsonl",
           "tokenizers": [{"name": "t", "kind": "sentencepiece", "vocab_size": 8, "bos_id": 1,
                           "path": "tokenizers/t.model", "meta_path": "tokenizers/t.meta.npz"},
                          {"name": "n", "kind": "tokenmonster", "vocab_size": 9, "bos_id": -1,
                           "path": "n.vocab", "meta_path": "n.meta.npz"}],
           "datasets": [{"name": "d_t", "tokenizer_name": "t", "val_glob": "datasets/d/fineweb_val_*.bin", "bos_id": 1},
                        {"name": "d_n", "tokenizer_name": "n", "val_glob": "x/*.bin", "bos_id": -1}]}
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    m = load_manifest(tmp_path)
    ds, te = m.dataset_for_meta(tmp_path / "tokenizers" / "t.meta.npz")
    assert ds.name == "d_t" and te.bos_id == 1 and ds.val_glob.endswith("datasets/d/fineweb_val_*.bin")
    assert m.tokenizer("n").bos_id is None  # -1 means: no BOS
    assert m.reference_dataset()[0].name == "d_t"
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InputError, match="JSON"):
        load_manifest(tmp_path / "bad.json")
    texts = ["a\r\nb", "é\t", "x"]
    write_docs_jsonl(tmp_path / "docs_selected.jsonl", texts)
    assert read_docs_jsonl(tmp_path / "docs_selected.jsonl") == texts
    assert read_docs_jsonl(tmp_path / "docs_selected.jsonl", 2) == texts[:2]
    with pytest.raises(InputError, match="fewer"):
        read_docs_jsonl(tmp_path / "docs_selected.jsonl", 5)
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "b.txt").write_bytes(b"B")
    (tmp_path / "txt" / "a.txt").write_bytes(b"A\n")
    assert read_text_dir(tmp_path / "txt") == [b"A\n", b"B"]
    db = DocBytes.from_list([b"ab", b"", b"c"])
    assert db.to_list() == [b"ab", b"", b"c"] and db.total == 3 and db.lengths.tolist() == [2, 0, 1]


def test_sidecar_paths(tmp_path):
    s = tmp_path / "fineweb_val_000003.bin"
    assert sidecar_path(s).name == "fineweb_val_bytes_000003.bin" and is_sidecar(sidecar_path(s))
    write_shard(s, np.arange(3))
    assert find_sidecars([s]) is None
    write_shard(sidecar_path(s), np.arange(3))
    assert find_sidecars([s]) == [sidecar_path(s)]
    s2 = tmp_path / "fineweb_val_000004.bin"
    write_shard(s2, np.arange(3))
    with pytest.raises(InputError, match="sidecar missing"):
        find_sidecars([s, s2])
