"""Muon (Newton–Schulz, momentum warmup, Nesterov, decoupled WD), Adam groups, schedules, EMA/SWA."""

from __future__ import annotations

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


def test_momentum_warmup():
    cfg = tiny(muon_momentum_warmup_start="0.8", muon_momentum="0.9", muon_momentum_warmup_steps="10")
    o = Optimizers(GPT(cfg), cfg)
    assert o.momentum_at(0) == pytest.approx(0.8)
    assert o.momentum_at(5) == pytest.approx(0.85)
    assert o.momentum_at(50) == pytest.approx(0.9)


def test_lr_schedule_warmup_warmdown_and_wallclock():
    cfg = tiny(warmup_steps="4", warmdown_iters="10", iterations="100")
    assert lr_scale(cfg, 0, 0, None) == pytest.approx(0.25)
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
