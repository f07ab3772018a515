"""The 2026-04-29 record's export (issue 11): GPTQ with SDClip and act-order, int7 GPTQ on the tied
embedding, LQER asymmetric low-rank correction, byte shuffle — against reference formulas."""

from __future__ import annotations

import pytest
import torch

from trainer.config import resolve_config
from trainer.gptq import (fold_lqer, gptq_sdclip, head_input_hessian_hook, lqer_factors, pack_asym, quantize_record,
                          sdclip_scales, shuffle_bytes, unpack_asym, unshuffle_bytes)
from trainer.model import GPT
from trainer.quant import (collect_hessians, compress, decompress, dequantize_state, deserialize, quantize_rows,
                           quantize_state, serialize)

SMALL = dict(vocab_size="256", num_layers="4", model_dim="64", num_heads="4", num_kv_heads="2", rope_dims="8",
             xsa_last_n="4", recur_layers="1,2", parallel_residual_start="3", gate_window="8",
             passthrough_numel="2048", gptq_block_size="16")


def record_cfg(**kw):
    return resolve_config("record", sets={**SMALL, **kw}, use_env=False)[0]


def problem(rows=24, cols=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(400, cols, generator=g) * torch.linspace(0.2, 3.0, cols)  # unequal column importance
    X = X + 0.5 * torch.randn(400, 1, generator=g)  # and correlated columns
    W = torch.randn(rows, cols, generator=g) * 0.05
    W[0, 3] = 0.6  # an outlier SDClip clips
    return W, X.T @ X


def hess_err(W, Wq, H):
    D = W - Wq
    return float(torch.einsum("ij,jk,ik->", D, H, D))


def test_sdclip_scale_reference():
    W, _ = problem()
    s = sdclip_scales(W, 6, 12.85)
    assert torch.allclose(s, (12.85 * W.std(dim=1) / 31).half().float())


@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_beats_round_to_nearest_in_the_hessian_norm(act_order):
    W, H = problem()
    q, s = gptq_sdclip(W, H, 6, 12.85, block_size=16, act_order=act_order)
    assert q.dtype == torch.int8 and int(q.abs().max()) <= 31 and s.dtype == torch.float16
    Wq = q.float() * s.float()[:, None]
    rtn = torch.clamp(torch.round(W / s.float()[:, None]), -31, 31) * s.float()[:, None]
    assert hess_err(W, Wq, H) < 0.95 * hess_err(W, rtn, H)


def test_gptq_blocking_is_exact_and_act_order_is_a_permutation():
    W, H = problem()
    a = gptq_sdclip(W, H, 6, 12.85, block_size=5, act_order=True)[0]
    b = gptq_sdclip(W, H, 6, 12.85, block_size=128, act_order=True)[0]
    assert torch.equal(a, b)  # lazy block updates change nothing
    Hd = H.clone()
    Hd.diagonal().add_(0.01 * H.diagonal().mean())
    perm = torch.argsort(Hd.diagonal(), descending=True)
    # act-order on (W, H) = plain GPTQ on the permuted problem, then un-permuted (same scales:
    # SDClip's row std does not depend on column order)
    c = gptq_sdclip(W[:, perm], H[perm][:, perm], 6, 12.85, act_order=False)[0]
    assert torch.equal(a, c[:, torch.argsort(perm)])
    assert not torch.equal(a, gptq_sdclip(W, H, 6, 12.85, act_order=False)[0])


def test_sdclip_clips_the_outlier_max_abs_does_not():
    W, H = problem()
    q, s = gptq_sdclip(W, H, 6, 3.0, act_order=False)
    assert int(q[0, 3]) == 31 and float(q[0, 3] * s[0].float()) < 0.6 * 0.9  # clipped
    q2, s2 = gptq_sdclip(W, H, 6, None, act_order=False)
    assert float(q2[0, 3] * s2[0].float()) == pytest.approx(0.6, rel=0.05)


def test_lqer_factors_are_the_best_rank_r_approximation():
    E = torch.randn(40, 64, generator=torch.Generator().manual_seed(1))
    A, B = lqer_factors(E, 4)
    assert A.shape == (40, 4) and B.shape == (4, 64)
    S = torch.linalg.svdvals(E)
    assert float((E - A @ B).norm() ** 2) == pytest.approx(float((S[4:] ** 2).sum()), rel=1e-4)  # Eckart–Young


def test_lqer_asymmetric_packing_reference():
    g = torch.Generator().manual_seed(2)
    A, B = torch.randn(40, 4, generator=g), torch.randn(4, 48, generator=g)  # 192 values: 3 groups of 64
    qA, sA, qB, sB = pack_asym(A, B, 64)
    assert int(qA.min()) >= -2 and int(qA.max()) <= 1 and int(qB.min()) >= -8 and int(qB.max()) <= 7
    assert sA.numel() == 1 and sB.numel() == 3 and qB.shape == B.shape
    assert float(sA) == pytest.approx(float(A.abs().max()) / 1.5, rel=1e-3)
    flat = B.reshape(-1)
    assert float(sB[1]) == pytest.approx(float(flat[64:128].abs().max()) / 7.5, rel=1e-3)
    ref_A = torch.clamp(torch.round(A / sA.float()), -2, 1) * sA.float()
    ref_B = torch.cat([torch.clamp(torch.round(flat[i:i + 64] / sB[i // 64].float()), -8, 7) * sB[i // 64].float()
                       for i in range(0, 192, 64)]).view(4, 48)
    assert torch.allclose(unpack_asym(qA, sA, qB, sB), ref_A @ ref_B, atol=1e-5)
    Bo = B[:, :47]  # 188 values, not a multiple of 64: one group per row of B
    odd = pack_asym(A, Bo, 64)
    assert odd[3].numel() == 4
    assert torch.allclose(odd[3].float(), (Bo.abs().amax(dim=1) / 7.5).half().float())
    ref_Bo = torch.clamp(torch.round(Bo / odd[3].float()[:, None]), -8, 7) * odd[3].float()[:, None]
    assert torch.allclose(unpack_asym(*odd), ref_A @ ref_Bo, atol=1e-5)


def calibrated(cfg):
    torch.manual_seed(0)
    m = GPT(cfg)
    with torch.no_grad():
        for b in m.blocks:
            b.attn.proj.weight.normal_(0, 0.05)
            b.mlp.proj.weight.normal_(0, 0.05)
    hs: dict = {}
    handle = head_input_hessian_hook(m, hs)
    batches = [torch.randint(2, 256, (4, 32), generator=torch.Generator().manual_seed(i)) for i in range(2)]
    try:
        hs.update(collect_hessians(m, batches))
    finally:
        handle.remove()
    return m, hs


def test_record_quantized_state_roundtrip_with_int7_embedding_and_lqer():
    cfg = record_cfg()
    m, hs = calibrated(cfg)
    state = m.state_dict()
    assert hs["tok_emb.weight"].shape == (64, 64)
    qs = quantize_state(m, state, cfg, hs)  # dispatches to the record's export
    assert qs["tok_emb.weight"]["bits"] == 7 and int(qs["tok_emb.weight"]["q"].abs().max()) <= 63
    assert qs["blocks.0.mlp.fc.weight"]["bits"] == 6
    lq = sorted(k for k in qs if k.endswith("::lqer_a"))
    assert len(lq) == 3  # lqer_top_k
    assert qs["smear.gate"]["kind"] == "f16"
    blob = compress(shuffle_bytes(serialize(qs)), "brotli", 5)
    back = dequantize_state(deserialize(decompress(blob, "brotli")))
    assert set(back) == set(state)
    direct = fold_lqer(dequantize_state(qs))
    for k in state:
        assert torch.equal(back[k], direct[k]), k
    rt = GPT(cfg)
    rt.load_state_dict(back)
    # the LQER correction reduces the error of the tensors it was applied to
    no_lqer = dequantize_state({k: v for k, v in qs.items() if "::lqer" not in k})
    for k in lq:
        name = k[:-len("::lqer_a")]
        assert (state[name] - back[name]).norm() < (state[name] - no_lqer[name]).norm()


def test_embedding_gptq_uses_the_head_input_hessian():
    cfg = record_cfg(lqer_rank="0")
    m, hs = calibrated(cfg)
    with_gptq = quantize_record(m, m.state_dict(), cfg, hs)["tok_emb.weight"]
    rtn = quantize_record(m, m.state_dict(), record_cfg(lqer_rank="0", embed_gptq="0"), hs)["tok_emb.weight"]
    assert not torch.equal(with_gptq["q"], rtn["q"])
    W, H = m.tok_emb.weight.detach(), hs["tok_emb.weight"]

    def deq(e):
        return e["q"].float() * e["scale"].float()[:, None]

    assert hess_err(W, deq(with_gptq), H) < hess_err(W, deq(rtn), H)


@pytest.mark.parametrize("n", [0, 1, 7, 1000])
def test_byte_shuffle_roundtrip(n):
    data = bytes(range(256)) * 4
    data = data[:n]
    sh = shuffle_bytes(data)
    assert unshuffle_bytes(sh) == data
    assert unshuffle_bytes(data) == data or data[:4] == b"GCS2"
    if n >= 4:
        assert sh[5:5 + (n + 1) // 2] == data[0::2]


def test_plain_preset_export_unchanged():
    cfg = resolve_config("tiny", use_env=False)[0]
    m = GPT(cfg)
    qs = quantize_state(m, m.state_dict(), cfg)
    assert not any("::lqer" in k for k in qs)
    w = m.blocks[0].attn.q.weight.detach()
    assert torch.equal(qs["blocks.0.attn.q.weight"]["q"], quantize_rows(w, cfg.quant_bits)[0])
