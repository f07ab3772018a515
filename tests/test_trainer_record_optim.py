"""The 2026-04-29 record's optimiser switches (issue 11): Polar-Express Newton–Schulz, MuonEq-R
row normalisation, the warmdown fraction with its MIN_LR floor, per-group weight decay."""

from __future__ import annotations

import pytest
import torch

from trainer.config import resolve_config
from trainer.model import GPT
from trainer.optim import PE_COEFFS, Muon, Optimizers, lr_scale, newton_schulz, ns_schedule, param_groups

SMALL = dict(vocab_size="256", num_layers="4", model_dim="64", num_heads="4", num_kv_heads="2", rope_dims="8",
             xsa_last_n="4", recur_layers="1,2", parallel_residual_start="3", gate_window="8")


def record_cfg(**kw):
    return resolve_config("record", sets={**SMALL, **kw}, use_env=False)[0]


def test_polar_express_schedule():
    assert ns_schedule(5, "polar_express") == list(PE_COEFFS)
    assert ns_schedule(3, "polar_express") == list(PE_COEFFS[:3])
    assert ns_schedule(7, "polar_express") == list(PE_COEFFS)  # more steps than tuples: the five once
    assert len(set(ns_schedule(5, "quintic"))) == 1


@pytest.mark.parametrize("shape", [(64, 64), (128, 64), (64, 192)])
def test_polar_express_lands_closer_to_the_polar_factor(shape):
    g = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    U, _, Vh = torch.linalg.svd(g.double(), full_matrices=False)
    polar = (U @ Vh).float()

    def dist(u):
        return float((u - polar).norm() / polar.norm())

    pe, quintic = newton_schulz(g, 5, variant="polar_express"), newton_schulz(g, 5, variant="quintic")
    assert pe.shape == g.shape
    assert dist(pe) < 0.75 * dist(quintic)
    assert dist(pe) < 0.15


def test_muoneq_r_normalises_rows_before_orthogonalising():
    torch.manual_seed(1)
    p = torch.nn.Parameter(torch.randn(32, 16))
    g = torch.randn(32, 16) * torch.logspace(-2, 2, 32)[:, None]  # rows of very different norms
    p.grad = g.clone()
    start = p.detach().clone()
    opt = Muon([p], lr=1.0, momentum=0.0, steps=5, nesterov=False, ns="polar_express", row_normalize=True)
    opt.step()
    rows = g / g.norm(dim=-1, keepdim=True)
    expect = newton_schulz(rows, 5, variant="polar_express") * (32 / 16) ** 0.5
    assert torch.allclose(start - p.detach(), expect, atol=1e-5)
    q = torch.nn.Parameter(start.clone())
    q.grad = g.clone()
    Muon([q], lr=1.0, momentum=0.0, steps=5, nesterov=False, ns="polar_express").step()
    assert not torch.allclose(q.detach(), p.detach(), atol=1e-3)  # the switch changes the update


def test_warmdown_fraction_with_min_lr_floor():
    cfg = record_cfg(iterations="1000")
    assert (cfg.warmdown_frac, cfg.min_lr) == (0.75, 0.1)
    # by iterations (no wall-clock budget): flat for the first 25 %, then linear, floored at 0.1
    assert lr_scale(cfg, 0, 0.0, None) == 1.0
    assert lr_scale(cfg, 249, 0.0, None) == 1.0
    assert lr_scale(cfg, 625, 0.0, None) == pytest.approx(0.5)
    assert lr_scale(cfg, 900, 0.0, None) == pytest.approx(0.1 / 0.75)  # above the floor
    assert lr_scale(cfg, 990, 0.0, None) == pytest.approx(0.1)  # floored
    # by the wall clock: the fraction is elapsed / budget
    assert lr_scale(cfg, 10, 296.0, 592.0) == pytest.approx(((1 - 0.5) / 0.75))
    assert lr_scale(cfg, 10, 100.0, 592.0) == 1.0
    off = record_cfg(warmdown_frac="0", min_lr="0", warmdown_iters="100", iterations="1000")
    assert lr_scale(off, 950, 0.0, None) == pytest.approx(0.5)  # the warmdown_iters path is unchanged


def test_per_group_weight_decay_and_routing():
    cfg = record_cfg()
    m = GPT(cfg)
    groups = {k: {n for n, _ in v} for k, v in param_groups(m).items()}
    for name in ("blocks.0.attn.attn_gate_w", "skip_gates", "parallel_resid_lambdas", "parallel_post_lambdas",
                 "smear.gate", "smear.lam"):
        assert name in groups["scalar"], name  # control tensors go to Adam, never Muon
    assert "tok_emb.weight" in groups["embed"]
    assert "blocks.0.attn.q.weight" in groups["matrix"]
    opt = Optimizers(m, cfg)
    assert opt.muon.param_groups[0]["weight_decay"] == 0.095
    assert opt.muon.param_groups[0]["ns"] == "polar_express" and opt.muon.param_groups[0]["row_normalize"]
    wd = {round(g["base_lr"], 6): g["weight_decay"] for g in opt.adam.param_groups}
    assert wd == {0.03: 0.085, 0.02: 0.02}  # embeddings (tied LR 0.03) 0.085, scalars 0.02
