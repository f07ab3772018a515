"""The 2026-04-29 record's model switches (issue 11): the preset's parameter count, and each
switch's math at small size against a reference formula written out here."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainer.config import resolve_config
from trainer.fast import document_mask, softcapped_ce_reference, softcapped_cross_entropy, triton_available
from trainer.model import GPT, Attention, Block, InputSmearGate, count_parameters, document_ids, expected_parameters

# The record stack at toy size: every record switch on, shapes shrunk.
SMALL = dict(vocab_size="256", num_layers="6", model_dim="64", num_heads="4", num_kv_heads="2", rope_dims="8",
             xsa_last_n="6", recur_layers="2,3", parallel_residual_start="4", gate_window="8",
)


def record_cfg(**kw):
    return resolve_config("record", sets={**SMALL, **kw}, use_env=False)[0]


def record_model(**kw):
    torch.manual_seed(0)
    return GPT(record_cfg(**kw))


def wake(m):
    """Zero-initialised projections and gates make every switch the identity at init; wake them."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.abs().sum() == 0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return m


def test_record_preset_parameter_count_is_the_records():
    cfg = resolve_config("record", use_env=False)[0]
    assert cfg.vocab_size == 8192
    with torch.device("meta"):
        m = GPT(cfg)
    # model_params:35945671 in every log of 2026-04-29_SmearGateBOSFix_3Seed_1.06141
    assert count_parameters(m) == expected_parameters(cfg) == 35_945_671


def test_record_loop_and_unet_resplit_match_the_records_layout():
    cfg = resolve_config("record", use_env=False)[0]
    with torch.device("meta"):
        m = GPT(cfg)
    plan = m.plan()
    assert [i for i, *_ in plan] == list(range(11))
    assert [j for *_, j in plan] == [None] * 5 + [0, 1, 2, 3, 4, None]
    m.recur_active = True
    plan = m.plan()
    seq = [i for i, *_ in plan]
    # the record logs encoder:[0, 1, 2, 3, 4, 5, 3, 4] decoder:[5, 3, 4, 5, 6, 7, 8, 9, 10]
    assert seq[:8] == [0, 1, 2, 3, 4, 5, 3, 4] and seq[8:] == [5, 3, 4, 5, 6, 7, 8, 9, 10]
    assert [push for _, _, push, _ in plan] == [True] * 8 + [False] * 9
    assert [j for *_, j in plan] == [None] * 8 + list(range(8)) + [None]


@pytest.mark.parametrize("kw", [{}, {"skip_gates": "0"}, {"sparse_attn_gate": "0"}, {"parallel_lanes": "0"},
                                {"recur_resplit": "0"}, {"smear_gate_mode": "channel"}, {"recur_loops": "1"},
                                {"unet_skips": "0"}])
def test_expected_parameters_match_instance_for_record_switches(kw):
    cfg = record_cfg(**kw)
    assert count_parameters(GPT(cfg)) == expected_parameters(cfg)


def test_record_switch_parameter_deltas():
    base = count_parameters(record_model())
    L, d, h, w = 6, 64, 4, 8
    assert base - count_parameters(record_model(sparse_attn_gate="0")) == L * h * w
    assert base - count_parameters(record_model(parallel_lanes="0")) == L * 6
    n_seq = L + 2 * 2  # layers 2..3 run twice more
    assert base - count_parameters(record_model(skip_gates="0")) == (n_seq // 2) * d
    assert base - count_parameters(record_model(smear_gate_mode="channel")) == (w + 1) - d


def test_input_smear_gate_reference_formula_and_bos_fix():
    torch.manual_seed(1)
    sg = InputSmearGate(4, bos_id=1)
    with torch.no_grad():
        sg.gate.copy_(torch.randn(4))
        sg.lam.fill_(0.7)
    x = torch.randn(2, 6, 8)
    idx = torch.tensor([[5, 6, 1, 7, 8, 9], [1, 2, 3, 1, 4, 5]])
    out = sg(x, idx)
    ref = x.clone()
    for b in range(2):
        for t in range(1, 6):
            if idx[b, t] != 1:
                ref[b, t] = x[b, t] + 0.7 * torch.sigmoid(x[b, t, :4] @ sg.gate) * x[b, t - 1]
    assert torch.allclose(out, ref, atol=1e-6)
    assert torch.equal(out[0, 2], x[0, 2]) and torch.equal(out[1, 3], x[1, 3])  # BOS takes nothing
    with torch.no_grad():
        sg.lam.zero_()
    assert torch.equal(sg(x, idx), x)  # λ = 0 (init): the identity


def test_sparse_attention_gate_scales_each_head():
    cfg = record_cfg()
    torch.manual_seed(2)
    gated = Attention(cfg, 0, 6)
    plain = Attention(record_cfg(sparse_attn_gate="0"), 0, 6)
    plain.load_state_dict({k: v for k, v in gated.state_dict().items() if k != "attn_gate_w"})
    with torch.no_grad():
        gated.attn_gate_w.copy_(torch.randn(4, 8))
    seen = {}
    for name, mod in (("g", gated), ("p", plain)):
        mod.proj.register_forward_hook(lambda m, inp, out, n=name: seen.__setitem__(n, inp[0]))
    x = torch.randn(2, 5, 64)
    gated(x), plain(x)
    g = torch.sigmoid(x[..., :8] @ gated.attn_gate_w.T)  # (B, T, H)
    ref = (seen["p"].view(2, 5, 4, 16) * g[..., None]).reshape(2, 5, 64)
    assert torch.allclose(seen["g"], ref, atol=1e-6)


def test_skip_gates_lerp_reference():
    m = wake(record_model(recur_layers="", parallel_residual_start="-1", varlen_attn="0"))
    out, seen = {}, {}
    for i in (1, 3):
        m.blocks[i].register_forward_hook(lambda mod, args, o, i=i: out.__setitem__(i, o))
    m.blocks[4].register_forward_pre_hook(lambda mod, args: seen.__setitem__("in", args[0]))
    m.hidden(torch.randint(2, 256, (1, 10)))
    # 6 layers: 0..2 push, layer 3 receives skip 0 (layer 2), layer 4 receives skip 1 (layer 1)
    s = m.skip_weights[1] * out[1]
    ref = s + torch.sigmoid(m.skip_gates[1]) * (out[3] - s)
    assert torch.allclose(seen["in"], ref, atol=1e-5)
    plain = wake(record_model(recur_layers="", parallel_residual_start="-1", varlen_attn="0", skip_gates="0"))
    assert not hasattr(plain, "skip_gates")


def test_two_lane_parallel_block_reference():
    cfg = record_cfg()
    torch.manual_seed(4)
    blk = wake(Block(cfg, 5))
    l0, l1, x0 = torch.randn(3, 1, 7, 64).unbind(0)
    resid, post = torch.tensor([1.1, 0.9]), torch.tensor([[1.0, 0.3], [0.2, 1.0]])
    a0, a1 = blk.forward_lanes(l0, l1, x0, resid, post)
    mix = blk.resid_mix
    a = blk.attn_scale * blk.attn(F.rms_norm(mix[0] * l0 + mix[1] * x0, (64,)) * blk.norm_scale)
    f = blk.mlp_scale * blk.mlp(F.rms_norm(l1, (64,)) * blk.norm_scale)
    assert torch.allclose(a0, 1.1 * l0 + 1.0 * a + 0.2 * f, atol=1e-5)
    assert torch.allclose(a1, 0.9 * l1 + 0.3 * a + 1.0 * f, atol=1e-5)


def test_orthogonal_init():
    m = record_model()
    q = m.blocks[0].attn.q.weight
    fc = m.blocks[0].mlp.fc.weight  # (128, 64): orthonormal columns
    assert torch.allclose(q @ q.T, torch.eye(64), atol=1e-5)
    assert torch.allclose(fc.T @ fc, torch.eye(64), atol=1e-5)
    assert m.blocks[0].attn.proj.weight.abs().sum() == 0 and m.blocks[0].mlp.proj.weight.abs().sum() == 0
    q0 = record_model(ortho_init="0").blocks[0].attn.q.weight
    assert not torch.allclose(q0 @ q0.T, torch.eye(64), atol=1e-2)


def test_document_mask_reference():
    docs = document_ids(torch.tensor([[4, 1, 5, 6, 1, 7]]), bos_id=1)
    assert docs.tolist() == [[0, 1, 1, 1, 2, 2]]
    mask = document_mask(docs)[0, 0]
    ref = torch.tensor([[s <= t and docs[0, s] == docs[0, t] for s in range(6)] for t in range(6)])
    assert torch.equal(mask, ref)


def test_record_stack_never_reads_across_a_document_boundary():
    """Varlen attention plus the SmearGate BOS fix: positions from a BOS on do not depend on
    anything before it, with every record switch on and the loop active."""
    m = wake(record_model())
    m.recur_active = True
    idx = torch.randint(2, 256, (2, 20), generator=torch.Generator().manual_seed(5))
    idx[:, 9] = 1
    other = idx.clone()
    other[:, :9] = (other[:, :9] + 7) % 254 + 2
    la, lb = m.logits(idx), m.logits(other)
    assert torch.allclose(la[:, 9:], lb[:, 9:], atol=1e-5)
    assert not torch.allclose(la[:, :9], lb[:, :9])
    off = wake(record_model(varlen_attn="0"))
    off.recur_active = True
    assert not torch.allclose(off.logits(idx)[:, 9:], off.logits(other)[:, 9:])  # the switch matters


def test_record_model_is_causal_and_lanes_change_output():
    m = wake(record_model())
    m.recur_active = True
    a = torch.randint(2, 256, (2, 16), generator=torch.Generator().manual_seed(6))
    b = a.clone()
    b[:, 11:] = (b[:, 11:] + 3) % 254 + 2
    la, lb = m.logits(a), m.logits(b)
    assert torch.allclose(la[:, :11], lb[:, :11], atol=1e-5)
    for lane in ("attn", "mlp"):
        other = wake(record_model(parallel_final_lane=lane))
        other.recur_active = True
        assert not torch.allclose(other.logits(a), la)


def test_softcapped_ce_fallback_reference():
    torch.manual_seed(7)
    z = torch.randn(10, 50) * 40
    t = torch.randint(0, 50, (10,))
    capped = 30 * torch.tanh(z / 30)
    ref = (torch.logsumexp(capped, -1) - capped[torch.arange(10), t]).mean()
    assert torch.allclose(softcapped_ce_reference(z, t, 30.0), ref, atol=1e-5)
    assert torch.allclose(softcapped_cross_entropy(z, t, 30.0), ref, atol=1e-5)


@pytest.mark.skipif(not triton_available(), reason="fused softcapped CE needs CUDA and Triton (not on this machine)")
def test_fused_softcapped_ce_matches_reference_on_cuda():  # pragma: no cover - CUDA only
    torch.manual_seed(8)
    z = (torch.randn(64, 8192, device="cuda") * 20).bfloat16().requires_grad_()
    t = torch.randint(0, 8192, (64,), device="cuda")
    fused = softcapped_cross_entropy(z, t, 30.0)
    fused.backward()
    g_fused = z.grad.clone()
    z.grad = None
    ref = softcapped_ce_reference(z, t, 30.0)
    ref.backward()
    assert abs(float(fused) - float(ref)) < 1e-3
    assert torch.allclose(g_fused.float(), z.grad.float(), atol=1e-4)
