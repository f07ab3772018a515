"""Quantization round trips, GPTQ vs plain rounding, exact compressed-size accounting."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trainer.config import resolve_config
from trainer.model import GPT
from trainer.quant import (compress, decompress, dequantize_rows, dequantize_state, deserialize, gptq_quantize,
                           quantize_rows, quantize_state, serialize)
from trainer.run import export_artifact, load_artifact, state_digest


def tiny(**kw):
    return resolve_config("tiny", sets=kw, use_env=False)[0]


@pytest.mark.parametrize("bits,qmax", [(8, 127), (6, 31), (5, 15)])
def test_roundtrip_error_within_half_step(bits, qmax):
    w = torch.randn(64, 96, generator=torch.Generator().manual_seed(bits))
    q, s = quantize_rows(w, bits)
    assert q.dtype == torch.int8 and int(q.abs().max()) == qmax  # the row max hits the top code
    err = (w - dequantize_rows(q, s)).abs()
    step = s.float()[:, None]
    assert torch.all(err <= step / 2 + 1e-6)
    rel = float(err.pow(2).mean() / w.pow(2).mean())
    # uniform rounding noise: step²/12 relative to the weight power, with step = max|w|/qmax
    assert rel < {8: 2e-4, 6: 3e-3, 5: 1.2e-2}[bits]


def test_error_grows_as_bits_shrink():
    w = torch.randn(128, 128, generator=torch.Generator().manual_seed(0))
    errs = [float((w - dequantize_rows(*quantize_rows(w, b))).pow(2).mean()) for b in (8, 6, 5)]
    assert errs[0] < errs[1] < errs[2]


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 20), cols=st.integers(1, 40), bits=st.sampled_from([5, 6, 8]),
       scale=st.floats(1e-3, 1e3))
def test_roundtrip_property(rows, cols, bits, scale):
    w = torch.randn(rows, cols, generator=torch.Generator().manual_seed(rows * 41 + cols)) * scale
    q, s = quantize_rows(w, bits)
    err = (w - dequantize_rows(q, s)).abs()
    assert torch.all(err <= s.float()[:, None] / 2 * (1 + 1e-3) + 1e-6 * scale)


def test_gptq_beats_plain_rounding_on_calibration_loss():
    g = torch.Generator().manual_seed(0)
    # correlated calibration inputs (low rank + noise), as real activations are
    X = torch.randn(2048, 16, generator=g) @ torch.randn(16, 128, generator=g) + 0.1 * torch.randn(2048, 128, generator=g)
    W = torch.randn(64, 128, generator=g) * 0.05
    H = X.T @ X
    for bits in (6, 5):
        q_rtn, s_rtn = quantize_rows(W, bits)
        q_g, s_g = gptq_quantize(W, H, bits, block_size=32)
        loss_rtn = float((X @ (W - dequantize_rows(q_rtn, s_rtn)).T).pow(2).mean())
        loss_g = float((X @ (W - dequantize_rows(q_g, s_g)).T).pow(2).mean())
        print(f"int{bits}: calibration MSE plain {loss_rtn:.3e} gptq {loss_g:.3e}")
        assert loss_g < 0.7 * loss_rtn
        assert int(q_g.abs().max()) <= 2 ** (bits - 1) - 1


def test_state_classification_and_container_roundtrip():
    cfg = tiny()
    m = GPT(cfg)
    qs = quantize_state(m, m.state_dict(), cfg)
    assert qs["tok_emb.weight"]["bits"] == 8  # embeddings int8
    assert qs["blocks.0.attn.q.weight"]["bits"] == 6
    assert qs["blocks.0.attn.q_gain"]["kind"] == "f16"  # control tensors pass through
    assert qs["skip_weights"]["kind"] == "f16"  # small matrices too
    cfg5 = tiny(int5_layers="1")
    qs5 = quantize_state(GPT(cfg5), GPT(cfg5).state_dict(), cfg5)
    assert qs5["blocks.1.mlp.fc.weight"]["bits"] == 5 and qs5["blocks.1.attn.q.weight"]["bits"] == 6
    back = deserialize(serialize(qs))
    a, b = dequantize_state(qs), dequantize_state(back)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method", ["brotli", "lzma", "zlib"])
def test_compressors_roundtrip(method):
    data = bytes(range(256)) * 50
    assert decompress(compress(data, method, 9), method) == data


@pytest.mark.parametrize("calibration", ["train", "self"])
def test_artifact_size_accounting_equals_bytes_written(tmp_path, calibration):
    cfg = tiny(gptq_calibration=calibration, gptq_calib_seqs="2", gptq_calib_seq_len="16")
    from trainer.config import fill_data_paths

    cfg = fill_data_paths(cfg)
    m = GPT(cfg)
    path = tmp_path / "m.ptz"
    blob = export_artifact(m, cfg, m.state_dict(), path, torch.device("cpu"), rank=0)
    assert len(blob) == os.path.getsize(path) == len(path.read_bytes())
    assert path.read_bytes() == blob
    rt = load_artifact(path, cfg)
    m2 = GPT(cfg)
    m2.load_state_dict(rt)
    assert state_digest(m2.state_dict()) == state_digest(rt)
    assert not (tmp_path / "m.ptz.tmp").exists()


def test_brotli_frames_roundtrip_and_read_plain_streams(monkeypatch):
    import brotli

    import trainer.quant as Q

    monkeypatch.setattr(Q, "BROTLI_FRAME_BYTES", 1000)  # several frames from a small input
    data = bytes(range(256)) * 20 + b"tail"
    blob = compress(data, "brotli", 11)
    assert blob[:4] == Q.BROTLI_FRAMES and int.from_bytes(blob[4:8], "little") == 6
    assert decompress(blob, "brotli") == data
    assert compress(data, "brotli", 11) == blob  # deterministic: frames are a fixed size
    assert decompress(brotli.compress(data, quality=5), "brotli") == data  # a plain stream still reads
    assert decompress(compress(b"", "brotli", 11), "brotli") == b""
    with pytest.raises(ValueError, match="corrupt"):
        decompress(blob[:-1], "brotli")
