"""Muon (Newton–Schulz, momentum warmup, Nesterov, decoupled WD), Adam groups, schedules, EMA/SWA."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from trainer.config import resolve_config
from trainer.model import GPT
from trainer.optim import EMA, SWA, Muon, Optimizers, lr_scale, newton_schulz, param_groups


def tiny(**kw):
    return resolve_config("tiny", sets=kw, use_env=False)[0]


def test_newton_schulz_orthogonalises():
    g = torch.randn(32, 64, generator=torch.Generator().manual_seed(0))
    sv = torch.linalg.svdvals(newton_schulz(g, 5))
    assert sv.min() > 0.5 and sv.max() < 1.3  # the quintic lands singular values near 1
    tall = newton_schulz(g.T, 5)
    assert tall.shape == (64, 32)
    assert torch.allclose(torch.linalg.svdvals(tall), sv, atol=1e-4)


def test_muon_decoupled_weight_decay_and_nesterov():
    p = torch.nn.Parameter(torch.ones(4, 4))
    opt = Muon([p], lr=0.1, momentum=0.9, weight_decay=0.5)
    p.grad = torch.zeros(4, 4)
    opt.step()
    assert torch.allclose(p.detach(), torch.full((4, 4), 0.95))  # only the decay acted
    q = torch.nn.Parameter(torch.zeros(8, 8))
    o2 = Muon([q], lr=1.0, momentum=0.5, nesterov=True)
    grad = torch.randn(8, 8, generator=torch.Generator().manual_seed(1))
    q.grad = grad.clone()
    o2.step()
    # first step: buf = g, nesterov update direction = g + 0.5 g
    assert torch.allclose(q.detach(), -newton_schulz(1.5 * grad, 5), atol=1e-5)


def test_param_groups_cover_each_parameter_once():
    m = GPT(tiny())
    g = param_groups(m)
    names = [n for grp in g.values() for n, _ in grp]
    assert sorted(names) == sorted(n for n, _ in m.named_parameters())
    assert "tok_emb.weight" in dict(g["embed"])
    assert "blocks.0.attn.q.weight" in dict(g["matrix"])
    assert "blocks.0.attn.q_gain" in dict(g["scalar"]) and "skip_weights" in dict(g["scalar"])


def test_param_routing_by_module_type_with_untied_head():
    """The official split: embedding tables → Adam at EMBED_LR (TIED_EMBED_LR when tied), the untied
    head → Adam at HEAD_LR, linear weights → Muon, directly held parameters (2-D resid_mix and
    skip_weights too) → Adam at SCALAR_LR — decided by the owning module, not the name."""
    cfg = resolve_config("baseline", sets={"tie_embeddings": "0", "num_layers": "2", "model_dim": "64",
                                            "num_heads": "4", "num_kv_heads": "2"}, use_env=False)[0]
    m = GPT(cfg)
    g = param_groups(m)
    assert [n for n, _ in g["head"]] == ["lm_head.weight"]
    assert "lm_head.weight" not in dict(g["matrix"])
    assert "blocks.0.resid_mix" in dict(g["scalar"]) and "skip_weights" in dict(g["scalar"])
    assert all(p.ndim == 2 for _, p in g["matrix"]) and len(g["matrix"]) == 2 * 6
    o = Optimizers(m, cfg)
    lrs = sorted(grp["lr"] for grp in o.adam.param_groups)
    assert lrs == sorted([cfg.embed_lr, cfg.head_lr, cfg.scalar_lr]) == sorted([0.6, 0.008, 0.04])
    tied = Optimizers(GPT(dataclasses.replace(cfg, tie_embeddings=True)), dataclasses.replace(cfg, tie_embeddings=True))
    assert sorted(grp["lr"] for grp in tied.adam.param_groups) == sorted([cfg.tied_embed_lr, cfg.scalar_lr])


def test_momentum_warmup():
    cfg = tiny(muon_momentum_warmup_start="0.8", muon_momentum="0.9", muon_momentum_warmup_steps="10")
    o = Optimizers(GPT(cfg), cfg)
    assert o.momentum_at(0) == pytest.approx(0.8)
    assert o.momentum_at(5) == pytest.approx(0.85)
    assert o.momentum_at(50) == pytest.approx(0.9)


def test_lr_schedule_warmdown_and_wallclock_no_lr_warmup():
    # WARMUP_STEPS are priming steps (undone before training, as the official script), not an LR ramp
    cfg = tiny(warmup_steps="4", warmdown_iters="10", iterations="100")
    assert lr_scale(cfg, 0, 0, None) == 1.0
    assert lr_scale(cfg, 50, 0, None) == 1.0
    assert lr_scale(cfg, 95, 0, None) == pytest.approx(0.5)
    # 1 s per step, 100 s budget, 95 s spent: 5 s left for a 10-step warmdown → 0.5
    assert lr_scale(cfg, 95, 95.0, 100.0) == pytest.approx(0.5)
    assert lr_scale(cfg, 20, 20.0, 100.0) == 1.0


def test_ema_and_swa_math():
    m = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        m.weight.fill_(1.0)
    ema = EMA(m, 0.9)
    with torch.no_grad():
        m.weight.fill_(3.0)
    ema.update(m)
    assert torch.allclose(ema.state(m)["weight"], torch.full((2, 2), 1.2))
    swa = SWA()
    swa.add({"weight": torch.full((2, 2), 1.0)})
    swa.add({"weight": torch.full((2, 2), 3.0)})
    assert torch.allclose(swa.state(m)["weight"], torch.full((2, 2), 2.0))


def test_optimizer_step_reduces_loss():
    cfg = tiny()
    torch.manual_seed(0)
    m = GPT(cfg)
    o = Optimizers(m, cfg)
    x = torch.randint(0, 1024, (4, 32), generator=torch.Generator().manual_seed(3))
    y = torch.roll(x, -1, 1)
    first = float(m(x, y).detach())
    for step in range(15):
        m(x, y).backward()
        o.step(step, 1.0)
        o.zero_grad()
    assert float(m(x, y).detach()) < first - 0.5
