"""Per-group compression (`compressor = "pergroup"`, trainer/pergroup.py): lossless on real and
random quantized states, the row permutation restored, the similarity order paying on
near-duplicate rows, hostile artifacts refused with a ValueError without large allocations,
and the switch wired through the config, the export code and a trainer run."""

from __future__ import annotations

import functools
import runpy
import struct
import sys
import tracemalloc
import zlib

import brotli
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import trainer.pergroup as PG
from trainer.config import ConfigError, fill_data_paths, resolve_config
from trainer.model import GPT
from trainer.quant import compress, decompress, dequantize_state, deserialize, quantize_state, serialize

FAST = 1  # brotli quality / lzma preset for tests that only check losslessness


def tiny_container(**sets) -> bytes:
    cfg = resolve_config("tiny", sets=sets, use_env=False)[0]
    torch.manual_seed(0)
    m = GPT(cfg)
    with torch.no_grad():  # zero-initialised projections would make every group trivially small
        for p in m.parameters():
            p.add_(torch.randn(p.shape) * 0.02)
    return serialize(quantize_state(m, m.state_dict(), cfg))


def record_container() -> bytes:
    """A record-preset state at toy size: int7 embedding, LQER factors (raw int8 + float16)."""
    from tests.test_trainer_record_quant import calibrated, record_cfg

    cfg = record_cfg()
    m, hs = calibrated(cfg)
    return serialize(quantize_state(m, m.state_dict(), cfg, hs))


def prototype_rows(k=12, copies=24, cols=384, noise=0.1, seed=0) -> np.ndarray:
    """Shuffled copies of k int6 prototype rows, each copy with a fraction of its codes redrawn."""
    rng = np.random.default_rng(seed)
    protos = np.clip(np.round(rng.normal(0, 4, (k, cols))), -31, 31).astype(np.int8)
    m = np.repeat(protos, copies, axis=0)
    redraw = rng.random(m.shape) < noise
    m[redraw] = np.clip(np.round(rng.normal(0, 4, int(redraw.sum()))), -31, 31).astype(np.int8)
    return m[rng.permutation(len(m))]


def container_of(matrices: dict[str, np.ndarray]) -> bytes:
    qs = {name: {"kind": "q", "q": torch.from_numpy(m), "scale": torch.ones(m.shape[0]).half(), "bits": 6,
                 "dtype": "float32"} for name, m in matrices.items()}
    return serialize(qs)


def stream_table(blob: bytes):
    return PG._read_table(blob)[1]


# --- lossless ------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [tiny_container, record_container], ids=["tiny", "record-lqer"])
def test_real_quantized_state_round_trips_bit_exact(make):
    raw = make()
    blob = compress(raw, "pergroup", FAST)
    assert blob[:4] == PG.PG_MAGIC and blob[4] == PG.PG_VERSION
    assert decompress(blob, "pergroup") == raw
    a, b = dequantize_state(deserialize(raw)), dequantize_state(deserialize(decompress(blob, "pergroup")))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_groups_follow_roles_across_layers():
    raw = tiny_container()
    header, arrays = PG._split_container(raw)
    groups = dict(PG.plan_groups(arrays))
    q = groups[("rows", "blocks.*.attn.q.weight", 96, 6)]
    assert [a["name"] for a in q] == [f"blocks.{i}.attn.q.weight" for i in range(4)]  # every layer, in order
    assert [a["name"] for a in groups[("rows", "tok_emb.weight", 96, 8)]] == ["tok_emb.weight"]  # alone
    scales = groups[("bytes", "scale", 2)]
    assert len(scales) == sum(a["key"] == "q" for a in arrays)  # one scale array per code matrix
    blob = compress(raw, "pergroup", FAST)
    assert len(stream_table(blob)) == 1 + len(groups)
    described = PG.describe_pergroup(blob)
    assert [d["group"] for d in described[1:]] == [" ".join(map(str, role)) for role in groups]
    assert sum(d["raw"] for d in described[1:]) == len(raw) - 8 - len(header)


@st.composite
def random_state(draw):
    """Code matrices of random shapes under names that share roles across random layers, plus
    float16 and raw integer passthrough arrays of random shapes."""
    qs = {}
    for i in range(draw(st.integers(1, 8))):
        role = draw(st.sampled_from(["attn.q", "attn.k", "mlp.fc", "mlp.proj"]))
        layer = draw(st.integers(0, 3))
        rows, cols = draw(st.integers(0, 40)), draw(st.integers(1, 24))
        seed = draw(st.integers(0, 2 ** 16))
        g = torch.Generator().manual_seed(seed)
        q = torch.randint(-31, 32, (rows, cols), generator=g, dtype=torch.int8)
        if draw(st.booleans()):  # rows repeated: gives the similarity order something to find
            q = q[torch.randint(0, max(rows, 1), (rows,), generator=g)] if rows else q
        qs[f"blocks.{layer}.{role}.weight"] = {"kind": "q", "q": q, "scale": torch.rand(rows, generator=g).half(),
                                                   "bits": draw(st.sampled_from([5, 6, 8])), "dtype": "float32"}
        if draw(st.booleans()):
            shape = draw(st.lists(st.integers(0, 6), min_size=0, max_size=3))
            qs[f"extra{i}"] = {"kind": "f16", "data": torch.randn(shape, generator=g).half(), "dtype": "float32"}
        if draw(st.booleans()):
            qs[f"raw{i}"] = {"kind": "raw", "data": torch.randint(-9, 9, (draw(st.integers(0, 9)),), generator=g),
                             "dtype": "int64"}
    return qs


@settings(max_examples=40, deadline=None)
@given(qs=random_state())
def test_round_trip_property_on_random_states(qs):
    raw = serialize(qs)
    assert PG.unpack_pergroup(PG.pack_pergroup(raw, FAST)) == raw


# --- the similarity order ------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(rows=st.integers(0, 600), cols=st.integers(1, 40), seed=st.integers(0, 1000), layout=st.sampled_from(PG.ROW_LAYOUTS))
def test_every_row_layout_restores_the_original_order(rows, cols, seed, layout):
    m = np.random.default_rng(seed).integers(-31, 32, (rows, cols)).astype(np.int8)
    role = ("rows", "w", cols, 6)
    stream = PG.encode_layout(role, m.tobytes(), layout)
    size, n_rows = PG.stream_bytes(role, [{"nbytes": m.nbytes}], layout)
    assert len(stream) == size and n_rows == rows
    assert PG.decode_layout(role, stream, layout, rows) == m.tobytes()


def test_the_stored_permutation_is_the_similarity_order_and_is_undone():
    m = prototype_rows()
    order = PG.similarity_order(m)
    assert sorted(order.tolist()) == list(range(len(m))) and not np.array_equal(order, np.arange(len(m)))
    stream = PG.encode_layout(("rows", "w", m.shape[1], 6), m.tobytes(), PG.SORTED)
    stored = np.frombuffer(stream, "<u2", count=len(m))  # 288 rows: two bytes per index
    assert np.array_equal(stored, order)
    body = np.frombuffer(stream, np.int8, offset=2 * len(m)).reshape(m.shape)
    assert np.array_equal(body, m[order])
    # near-duplicates end up adjacent: neighbours in the order share far more codes than in the input
    same = lambda x: float((x[1:] == x[:-1]).mean())  # noqa: E731
    assert same(m[order]) > 2 * same(m)


def test_similarity_order_makes_near_duplicate_rows_compress_smaller(monkeypatch):
    m = prototype_rows()
    raw = container_of({"blocks.0.mlp.fc.weight": m})
    with_sort = PG.pack_pergroup(raw, 11)
    layout = stream_table(with_sort)[1][1]  # stream 0 is the header, 1 the code rows, 2 their scales
    assert layout & PG.SORTED and PG.unpack_pergroup(with_sort) == raw
    assert "sorted" in PG.describe_pergroup(with_sort)[1]["layout"]
    monkeypatch.setattr(PG, "ROW_LAYOUTS", (0, PG.COLUMNS))  # the same pipeline, sorting not allowed
    without = PG.pack_pergroup(raw, 11)
    print(f"near-duplicate rows: {len(with_sort)} bytes with the similarity order (permutation included), "
          f"{len(without)} without, {len(compress(raw, 'brotli', 11))} brotli of the container")
    assert len(with_sort) < len(without)


def test_a_group_takes_its_smallest_layout_and_codec():
    raw = container_of({"blocks.0.attn.q.weight": prototype_rows(cols=64), "blocks.1.attn.q.weight":
                        np.zeros((40, 64), np.int8)})
    header, arrays = PG._split_container(raw)
    role, members = PG.plan_groups(arrays)[0]  # the code rows of both layers
    assert role[0] == "rows" and len(members) == 2
    entry = stream_table(PG.pack_pergroup(raw, 11))[1]
    sizes = {}
    for lay, stream in PG._candidates(role, members, memoryview(raw), 8 + len(header)):
        for codec in range(len(PG.CODECS)):
            sizes[(codec, lay)] = sum(len(PG._compress_frame(codec, 11, f)) for f in PG._frames(stream))
    assert sum(entry[3]) == min(sizes.values()) == sizes[(entry[0], entry[1])]


# --- hostile input -------------------------------------------------------------------------------
def small_blob() -> tuple[bytes, bytes]:
    raw = container_of({"blocks.0.attn.q.weight": prototype_rows(k=3, copies=4, cols=16)})
    return raw, PG.pack_pergroup(raw, FAST)


def test_every_truncation_is_a_value_error():
    _, blob = small_blob()
    for n in range(len(blob)):
        with pytest.raises(ValueError):
            PG.unpack_pergroup(blob[:n])
    with pytest.raises(ValueError):
        PG.unpack_pergroup(blob + b"\0")


def test_every_corrupted_byte_is_refused_or_harmless():
    """No single flipped byte yields other bytes than the original or an error but a ValueError."""
    raw, blob = small_blob()
    refused = 0
    for i in range(len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 0x5A
        try:
            assert PG.unpack_pergroup(bytes(bad)) == raw
        except ValueError:
            refused += 1
    assert refused >= 0.9 * len(blob)  # a flip in a stream's slack bits may decode the same


@functools.lru_cache(maxsize=1)
def zeros_bomb() -> bytes:
    return brotli.compress(b"\0" * (64 << 20), quality=1)  # 64 MiB of zeros in a few hundred bytes


def _table_blob(entries, tail=b"", crc=0) -> bytes:
    out = PG.PG_MAGIC + struct.pack("<BII", PG.PG_VERSION, crc, len(entries))
    for codec, layout, raw, frames in entries:
        out += struct.pack("<BBII", codec, layout, raw, len(frames)) + struct.pack(f"<{len(frames)}I", *frames)
    return out + tail


@pytest.mark.parametrize("case", ["magic", "version", "stream count", "frame count", "frame sizes", "codec",
                                  "header too big", "bomb frame", "array too big", "bad layout", "nested json",
                                  "bad dtype"])
def test_hostile_headers_are_value_errors_without_large_allocations(case):
    bomb = zeros_bomb()
    header = b'{"format":1,"tensors":[{"name":"w","kind":"q","dtype":"float32","bits":6,' \
             b'"q":{"offset":0,"nbytes":1099511627776,"shape":[1073741824,1024],"np":"|i1"}}]}'
    hb = brotli.compress(header)

    def header_blob(text: bytes) -> bytes:
        packed = brotli.compress(text)
        return _table_blob([(0, 0, len(text), [len(packed)])], packed)

    blobs = {
        "magic": b"GCPX" + bytes(20),
        "version": PG.PG_MAGIC + bytes([99]) + bytes(20),
        "stream count": PG.PG_MAGIC + struct.pack("<BII", PG.PG_VERSION, 0, 0xFFFFFFFF),
        "frame count": _table_blob([(0, 0, 100, [1] * 5000)]),
        "frame sizes": _table_blob([(0, 0, 100, [0xFFFFFFFF])], b"x"),
        "codec": _table_blob([(7, 0, 10, [1])], b"x"),
        "header too big": _table_blob([(0, 0, 0xFFFFFFFF, [1] * 2048)], b"x" * 2048),
        "bomb frame": _table_blob([(0, 0, 100, [len(bomb)])], bomb),
        "array too big": _table_blob([(0, 0, len(header), [len(hb)])], hb),
        "bad layout": _table_blob([(0, 3, 100, [1])], b"x"),
        "nested json": header_blob(b"[" * 200_000),
        "bad dtype": header_blob(header.replace(b'"|i1"', b'"V99999999999999999999"')),
    }
    tracemalloc.start()
    try:
        with pytest.raises(ValueError):
            PG.unpack_pergroup(blobs[case])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{case}: {peak} bytes allocated"


def test_pack_refuses_what_is_not_a_serialized_container():
    from trainer.gptq import shuffle_bytes

    raw = tiny_container()
    for bad in (shuffle_bytes(raw), raw[:-1], raw + b"\0", b"GCQ1" + struct.pack("<I", 5) + b"{}{}{"):
        with pytest.raises(ValueError):
            compress(bad, "pergroup", FAST)


def test_bounded_read_without_brotli_output_limit(monkeypatch):
    """brotli < 1.2 has no output_buffer_limit: the reader then feeds small pieces, still bounded."""
    real = brotli.Decompressor

    class OldDecompressor:
        def __init__(self):
            self.d = real()

        def process(self, data, **kw):
            if kw:
                raise TypeError("process() takes no keyword arguments")
            return self.d.process(data)

        def is_finished(self):
            return self.d.is_finished()

    monkeypatch.setattr(PG.brotli, "Decompressor", OldDecompressor)
    raw, blob = small_blob()
    assert PG.unpack_pergroup(blob) == raw
    bomb = zeros_bomb()
    with pytest.raises(ValueError):
        PG.unpack_pergroup(_table_blob([(0, 0, 100, [len(bomb)])], bomb))


def test_checksum_catches_a_consistent_but_wrong_payload():
    raw, blob = small_blob()
    crc_at = 5
    bad = blob[:crc_at] + struct.pack("<I", zlib.crc32(raw) ^ 1) + blob[crc_at + 4:]
    with pytest.raises(ValueError, match="checksum"):
        PG.unpack_pergroup(bad)


# --- the switch ----------------------------------------------------------------------------------
def test_config_accepts_pergroup_and_rejects_unknown_compressors():
    assert resolve_config("tiny", sets={"compressor": "pergroup"}, use_env=False)[0].compressor == "pergroup"
    assert resolve_config("tiny", environ={"COMPRESSOR": "pergroup"})[0].compressor == "pergroup"
    assert resolve_config("record", use_env=False)[0].compressor == "brotli"  # the record's own default
    with pytest.raises(ConfigError, match="compressor must be one of brotli, lzma, zlib, pergroup"):
        resolve_config("tiny", sets={"compressor": "zstd"}, use_env=False)
    with pytest.raises(ValueError, match="unknown compressor"):
        compress(b"", "zstd", 1)


def test_export_code_ships_pergroup_only_when_switched_on(tmp_path):
    from trainer.export import export_code

    on = export_code(fill_data_paths(resolve_config("tiny", sets={"compressor": "pergroup"}, use_env=False)[0]))
    off = export_code(fill_data_paths(resolve_config("tiny", use_env=False)[0]))
    assert "def pack_pergroup" in on and "def unpack_pergroup" in on and "def similarity_order" in on
    assert "def pack_pergroup" not in off and "def similarity_order" not in off and "PG_MAGIC" not in off
    assert "def _brotli_frames" in off and "def _brotli_frames" not in on
    # the shipped code alone (trainer/audit unimportable) reads and writes the same bytes
    (tmp_path / "train_gpt.py").write_text(on)
    raw = tiny_container()
    saved = {m: sys.modules[m] for m in ("trainer", "audit") if m in sys.modules}
    try:
        sys.modules.update({"trainer": None, "audit": None})
        g = runpy.run_path(str(tmp_path / "train_gpt.py"), run_name="probe")
    finally:
        for m in ("trainer", "audit"):
            sys.modules.pop(m)
        sys.modules.update(saved)
    blob = g["compress"](raw, "pergroup", FAST)
    assert blob == compress(raw, "pergroup", FAST) and g["decompress"](blob, "pergroup") == raw


@pytest.mark.slow
def test_gated_tiny_run_with_pergroup_writes_an_artifact_that_scores_as_its_quantized_state(tmp_path, monkeypatch):
    """`trainer run --preset tiny` with COMPRESSOR=pergroup in the environment: the gate passes
    (its roundtrip check included), the artifact is the pergroup container, re-read it gives the
    exact weights of the quantized state before compression (so the scored model is the one
    the uncompressed export would give), each within half a quantization step of the trained
    weight (round-to-nearest: the bound tests/test_trainer_quant.py uses), and the README and
    the shipped code say pergroup."""
    from click.testing import CliRunner

    import trainer.run as R
    from trainer.cli import main as cli
    from trainer.run import state_digest

    exports = []
    real = R.write_artifact

    def spy(model, cfg, state, hessians, path, rank):  # the real export; it keeps what it was given
        blob = real(model, cfg, state, hessians, path, rank)
        exports.append((cfg, {k: v.detach().clone() for k, v in state.items()}, blob))
        return blob

    monkeypatch.setattr(R, "write_artifact", spy)
    args = ["run", "--preset", "tiny", "--records-dir", str(tmp_path / "records"), "--reports-dir",
            str(tmp_path / "reports"), "--run-name", "pg", "--quiet"]
    for kv in ("iterations=20", "ttt_enabled=0", "gptq_enabled=0", "val_max_tokens=4096", "train_log_every=0"):
        args += ["--set", kv]
    r = CliRunner().invoke(cli, args, env={"COMPRESSOR": "pergroup"})
    assert r.exit_code == 0, r.output[-4000:]
    cfg, state, blob = exports[-1]  # the run's export (the first is the gate's dry run)
    assert cfg.compressor == "pergroup" and blob[:4] == PG.PG_MAGIC
    direct = dequantize_state(quantize_state(GPT(cfg), state, cfg))
    qs = deserialize(decompress(blob, "pergroup"))
    back = dequantize_state(qs)
    assert back.keys() == direct.keys() and all(torch.equal(back[k], direct[k]) for k in back)
    for name, e in qs.items():
        if e["kind"] == "q":
            step = e["scale"].float()[:, None]
            assert torch.all((state[name].float() - back[name].float()).abs() <= step / 2 + 1e-6), name
    rec = tmp_path / "records" / "pg"
    log = next(rec.glob("*.log")).read_text()
    assert f"Serialized model int6+pergroup: {len(blob)} bytes" in log
    gate = (tmp_path / "reports" / "gate_pg.json").read_text()
    assert f'"artifact_sha256": "{state_digest(direct)}"' in gate  # the gate's roundtrip check, on these weights
    readme = (rec / "README.md").read_text()
    assert "per-group" in readme and "compressor pergroup" not in readme
    code = (rec / "train_gpt.py").read_text()
    assert "def unpack_pergroup" in code and "'compressor':'pergroup'" in code
    print(f"tiny pergroup artifact {len(blob)} bytes, brotli of the same container "
          f"{len(compress(serialize(qs), 'brotli', 11))}")


def test_record_preset_with_pergroup_skips_the_whole_container_shuffle(tmp_path):
    """The record preset shuffles the container's bytes before brotli; pergroup shuffles per group
    and reads only the plain container, so write_artifact leaves the shuffle out for it."""
    from tests.test_trainer_record_quant import record_cfg
    from trainer.run import load_artifact, write_artifact

    cfg = record_cfg(compressor="pergroup")
    assert cfg.byte_shuffle
    torch.manual_seed(0)
    m = GPT(cfg)
    blob = write_artifact(m, cfg, m.state_dict(), None, tmp_path / "m.ptz", rank=0)
    assert blob[:4] == PG.PG_MAGIC and (tmp_path / "m.ptz").read_bytes() == blob
    assert PG.unpack_pergroup(blob)[:4] == b"GCQ1"  # not the shuffled form
    direct = dequantize_state(quantize_state(m, m.state_dict(), cfg))
    back = load_artifact(tmp_path / "m.ptz", cfg)
    assert back.keys() == direct.keys() and all(torch.equal(back[k], direct[k]) for k in back)
