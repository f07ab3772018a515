"""Every technique switch changes the model as specified (shapes, parameter counts, known outputs)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trainer.config import resolve_config
from trainer.model import GPT, MLP, Block, Rotary, count_parameters, expected_parameters


def cfg_of(preset="tiny", **kw):
    return resolve_config(preset, sets=kw, use_env=False)[0]


def model_of(**kw):
    torch.manual_seed(0)
    return GPT(cfg_of(**kw))


def live(m):
    """Zero-initialised output projections make every block the identity at init; wake them up."""
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for b in m.blocks:
            b.attn.proj.weight.copy_(torch.randn(b.attn.proj.weight.shape, generator=g) * 0.1)
            b.mlp.proj.weight.copy_(torch.randn(b.mlp.proj.weight.shape, generator=g) * 0.1)
    return m


IDX = torch.randint(4, 1024, (2, 24), generator=torch.Generator().manual_seed(1))


def test_proteus_parameter_count_in_record_range():
    cfg = cfg_of("proteus")
    n = expected_parameters(cfg)
    with torch.device("meta"):
        m = GPT(cfg)
    print(f"proteus parameters at vocab {cfg.vocab_size}: {n:,}")
    assert count_parameters(m) == n
    assert 26_900_000 <= n <= 30_200_000
    real = GPT(cfg)  # once on a real instance too
    assert count_parameters(real) == n
    assert real.blocks[0].attn.k.weight.shape == (4 * 64, 512)  # GQA: 4 KV heads of 64


@pytest.mark.parametrize("kw", [{}, {"unet_skips": "0"}, {"resid_mix": "0"}, {"bigram_vocab_size": "0"},
                                {"smear_gate": "0"}, {"ve_dim": "0"}, {"recur_untied_mlp": "1"},
                                {"tie_embeddings": "0"}, {"int5_layers": "1"}])
def test_expected_parameters_match_instance(kw):
    cfg = cfg_of(**kw)
    assert count_parameters(GPT(cfg)) == expected_parameters(cfg)


def test_switch_parameter_deltas():
    base = count_parameters(model_of())
    c = cfg_of()
    d, L = c.model_dim, c.num_layers
    assert base - count_parameters(model_of(unet_skips="0")) == (L // 2) * d
    assert base - count_parameters(model_of(resid_mix="0")) == 2 * d * L
    assert base - count_parameters(model_of(bigram_vocab_size="0")) == c.bigram_vocab_size * c.bigram_dim + c.bigram_dim * d
    assert base - count_parameters(model_of(smear_gate="0")) == d
    kvd = c.num_kv_heads * c.head_dim
    assert base - count_parameters(model_of(ve_dim="0")) == c.vocab_size * c.ve_dim + c.ve_dim * kvd + 2
    hidden = int(c.mlp_mult * d)
    assert count_parameters(model_of(recur_untied_mlp="1")) - base == 2 * d * hidden  # one recurred layer
    assert count_parameters(model_of(tie_embeddings="0")) - base == c.vocab_size * d


def test_partial_rope_rotates_only_first_dims():
    x = torch.randn(1, 2, 6, 32)
    y = Rotary(32, 8, 10000.0)(x)
    assert torch.equal(y[..., 8:], x[..., 8:])  # the rest pass unrotated
    assert torch.equal(y[:, :, 0], x[:, :, 0])  # position 0: angle 0
    assert not torch.allclose(y[:, :, 3, :8], x[:, :, 3, :8])
    full = Rotary(32, 0, 10000.0)(x)
    assert not torch.allclose(full[:, :, 3, 8:], x[:, :, 3, 8:])
    # rotation preserves the norm of each rotated pair
    assert torch.allclose(y[..., :8].norm(dim=-1), x[..., :8].norm(dim=-1), atol=1e-5)


def test_qk_gain_is_per_head_and_changes_output():
    m = model_of(qk_gain_init="2.5")
    a = m.blocks[0].attn
    assert a.q_gain.shape == (cfg_of().num_heads,) and torch.all(a.q_gain == 2.5)
    # give the attention a non-zero output projection so the gain is visible
    torch.nn.init.normal_(a.proj.weight, std=0.1)
    x = torch.randn(1, 10, cfg_of().model_dim)
    y1 = a(x)
    with torch.no_grad():
        a.q_gain.fill_(0.0)  # zero gain → uniform attention over the prefix
    y0 = a(x)
    assert not torch.allclose(y1, y0)
    v = a.v(x).view(1, 10, a.kv, a.hd)
    vv = v.repeat_interleave(a.h // a.kv, dim=2)
    prefix_mean = vv.cumsum(1) / torch.arange(1, 11).view(1, 10, 1, 1)
    if not a.xsa:
        assert torch.allclose(y0, a.proj(prefix_mean.reshape(1, 10, -1)), atol=1e-5)


def test_xsa_removes_component_along_own_value():
    m = model_of(xsa_last_n="2")
    c = cfg_of()
    flags = [b.attn.xsa for b in m.blocks]
    assert flags == [i >= c.num_layers - 2 for i in range(c.num_layers)]
    a = m.blocks[-1].attn
    captured = {}
    a.proj.register_forward_hook(lambda mod, inp, out: captured.setdefault("y", inp[0]))
    x = torch.randn(1, 12, c.model_dim)
    a(x)
    y = captured["y"].view(1, 12, a.h, a.hd)
    v = a.v(x).view(1, 12, a.kv, a.hd).repeat_interleave(a.h // a.kv, dim=2)
    assert (y * v).sum(-1).abs().max() < 1e-4  # orthogonal to the token's own value vector
    assert count_parameters(model_of(xsa_last_n="0")) == count_parameters(m)


def test_leaky_relu_squared_known_output():
    c = cfg_of(mlp_leaky_slope="0.5")
    mlp = MLP(c, 6)
    d, h = c.model_dim, int(c.mlp_mult * c.model_dim)
    with torch.no_grad():
        mlp.fc.weight.zero_()
        mlp.fc.weight[:d, :d] = torch.eye(d)
        mlp.proj.weight.zero_()
        mlp.proj.weight[:d, :d] = torch.eye(d)
    x = torch.tensor([[-2.0, 3.0] + [0.0] * (d - 2)])
    out = mlp(x)
    assert out[0, 0].item() == pytest.approx(1.0)  # (0.5 * -2)^2
    assert out[0, 1].item() == pytest.approx(9.0)
    mlp.slope = 0.0  # the baseline's ReLU²
    assert mlp(x)[0, 0].item() == 0.0
    assert h == 2 * d


def test_ln_scale():
    on, off = model_of(ln_scale="1"), model_of(ln_scale="0")
    assert [b.norm_scale for b in on.blocks] == pytest.approx([1 / math.sqrt(i + 1) for i in range(len(on.blocks))])
    assert all(b.norm_scale == 1.0 for b in off.blocks)


def test_unet_skips_feed_second_half():
    m = model_of(unet_skips="1", recur_layers="")
    assert m.skip_weights.shape == (2, cfg_of().model_dim)
    out1 = m.logits(IDX)
    with torch.no_grad():
        m.skip_weights.zero_()
    out0 = m.logits(IDX)
    assert not torch.allclose(out1, out0)  # the skips carry signal
    assert not hasattr(model_of(unet_skips="0"), "skip_weights")


def test_resid_mix_known_output():
    c = cfg_of()
    blk = Block(c, 0)
    assert blk.resid_mix.shape == (2, c.model_dim)
    x, x0 = torch.randn(1, 5, c.model_dim), torch.randn(1, 5, c.model_dim)
    with torch.no_grad():
        blk.resid_mix[0].zero_()
        blk.resid_mix[1].fill_(1.0)
        blk.attn_scale.zero_()
        blk.mlp_scale.zero_()
    assert torch.allclose(blk(x, x0), x0)  # input replaced by the initial embedding


def test_bigram_hash_uses_previous_token():
    m = model_of()
    b = m.bigram
    ids = b.bucket_ids(torch.tensor([[5, 6, 7], [9, 6, 7]]))
    assert ids[0, 0] == 0 and ids[1, 0] == 0
    assert ids[0, 1] != ids[1, 1]  # same current token, different previous
    assert torch.equal(ids[:, 2], ids[:, 2].flip(0))  # same (prev, cur) → same bucket
    assert int(ids.max()) < b.buckets
    assert model_of(bigram_vocab_size="0").bigram is None


def test_smear_gate_never_mixes_across_bos():
    c = cfg_of()
    m = model_of()
    sg = m.smear
    with torch.no_grad():
        sg.gate.fill_(20.0)  # g ≈ 1: each position takes the previous one
    x = torch.randn(1, 4, c.model_dim)
    idx = torch.tensor([[7, 8, c.bos_id, 9]])
    y = sg(x, idx)
    assert torch.allclose(y[0, 1], x[0, 0], atol=1e-6)
    assert torch.allclose(y[0, 2], x[0, 2])  # BOS keeps its own embedding
    assert torch.allclose(y[0, 3], x[0, 2], atol=1e-6)
    assert torch.allclose(y[0, 0], x[0, 0])
    assert model_of(smear_gate="0").smear is None


def test_value_embeddings_only_in_listed_layers():
    m = model_of(ve_dim="32", ve_layers="2,3")
    assert [b.attn.use_ve for b in m.blocks] == [False, False, True, True]
    assert m.ve_table.weight.shape == (1024, 32)
    for b in m.blocks:  # zero-initialised projections would hide the values
        torch.nn.init.normal_(b.attn.proj.weight, std=0.1)
    out1 = m.logits(IDX)
    with torch.no_grad():
        for b in m.blocks[2:]:
            b.attn.ve_scale.zero_()
    assert not torch.allclose(out1, m.logits(IDX))


def test_tied_embeddings_and_softcap():
    m = model_of(logit_softcap="5.0")
    assert not hasattr(m, "lm_head")
    with torch.no_grad():
        m.tok_emb.weight.mul_(1000)
    logits = m.logits(IDX)
    assert logits.abs().max() <= 5.0 + 1e-4
    assert logits.abs().max() > 4.0  # the cap is reached, not just respected
    assert hasattr(model_of(tie_embeddings="0"), "lm_head")


def test_parallel_residuals_read_same_input():
    m = model_of(parallel_residual_start="2")
    assert [b.parallel for b in m.blocks] == [False, False, True, True]
    c = cfg_of()
    blk = Block(c, 3)
    blk.parallel = True
    torch.nn.init.normal_(blk.attn.proj.weight, std=0.1)
    seen = {}
    blk.mlp.register_forward_hook(lambda mod, inp, out: seen.setdefault("in", inp[0]))
    x, x0 = torch.randn(1, 6, c.model_dim), torch.randn(1, 6, c.model_dim)
    with torch.no_grad():
        blk.resid_mix.copy_(torch.stack((torch.ones(c.model_dim), torch.zeros(c.model_dim))))
    blk(x, x0)
    assert torch.allclose(seen["in"], F.rms_norm(x, (c.model_dim,)) * blk.norm_scale, atol=1e-6)
    seen.clear()
    blk.parallel = False
    blk(x, x0)
    assert not torch.allclose(seen["in"], F.rms_norm(x, (c.model_dim,)) * blk.norm_scale, atol=1e-4)


def test_depth_recurrence_switches_on():
    m = live(model_of(recur_layers="1,2"))
    assert m.layer_order() == [(0, 0), (1, 0), (2, 0), (3, 0)]
    before = m.logits(IDX)
    m.recur_active = True
    assert m.layer_order() == [(0, 0), (1, 0), (2, 0), (1, 1), (2, 1), (3, 0)]
    assert not torch.allclose(before, m.logits(IDX))
    assert model_of(recur_layers="").recur is None


def test_model_is_causal_with_every_switch_on():
    m = live(model_of())
    m.recur_active = True
    a = IDX.clone()
    b = IDX.clone()
    b[:, 15:] = (b[:, 15:] + 3) % 1024
    la, lb = m.logits(a), m.logits(b)
    assert torch.allclose(la[:, :15], lb[:, :15], atol=1e-5)
    assert not torch.allclose(la[:, 15:], lb[:, 15:])


def test_late_qat_fake_quantizes_forward():
    m = model_of()
    out = m.logits(IDX)
    m.set_qat(True)
    assert all(mod.qat for mod in m.modules() if hasattr(mod, "qat"))
    for b in m.blocks:  # non-zero projections so the quantization error reaches the output
        torch.nn.init.normal_(b.mlp.proj.weight, std=0.05)
    q = m.logits(IDX)
    m.set_qat(False)
    assert not torch.allclose(q, m.logits(IDX))
    assert out.shape == q.shape
