"""Window plans, BPB, the score-first ledger and the causality probe (legal vs illegal TTT)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainer.config import resolve_config
from trainer.data import ByteLUT
from trainer.eval import (Ledger, causality_probe, evaluate, plain_windows, run_ttt,
                          sliding_windows)
from trainer.model import GPT


def tiny(**kw):
    base = dict(train_seq_len="32", eval_stride="16", ttt_chunk_tokens="64", ttt_batch_seqs="4",
                ttt_epochs="2", ttt_lr="0.05", probe_tokens="256", eval_batch_seqs="16")
    base.update(kw)
    return resolve_config("tiny", sets=base, use_env=False)[0]


import illegal_ttt  # noqa: E402,F401 - registers the test-only illegal variant


@pytest.fixture(scope="module")
def setup():
    cfg = tiny()
    torch.manual_seed(0)
    m = GPT(cfg)
    g = torch.Generator().manual_seed(5)
    for b in m.blocks:  # non-trivial model: zero-init projections would hide everything
        torch.nn.init.normal_(b.attn.proj.weight, std=0.05, generator=g)
        torch.nn.init.normal_(b.mlp.proj.weight, std=0.05, generator=g)
    val = torch.randint(4, 200, (300,), generator=g)
    val[0] = cfg.bos_id
    val[120] = cfg.bos_id
    V = cfg.vocab_size
    lut = ByteLUT(np.full(V, 2), np.arange(V) % 2 == 0, np.arange(V) < 4)
    return cfg, m, val, lut


@pytest.mark.parametrize("n,T,stride", [(300, 32, 16), (100, 32, 32), (65, 32, 8), (33, 32, 16)])
def test_sliding_windows_score_every_target_once(n, T, stride):
    counts = np.zeros(n, int)
    for s, a, b in sliding_windows(1, n, T, stride):
        assert s <= a - 1 and b - 1 - s <= T  # at most T tokens of context
        assert b - 1 - s == T or s == 0  # maximal context once the stream allows it
        counts[a:b] += 1
    assert counts[0] == 0 and np.all(counts[1:] == 1)


def test_plain_windows_drop_the_tail():
    ws = plain_windows(100, 32)
    assert [(a, b) for _, a, b in ws] == [(1, 33), (33, 65), (65, 97)]


def test_bpb_matches_manual_formula(setup):
    cfg, m, val, lut = setup
    sc = evaluate(m, val, lut, "cpu", 32, 0, 8)
    pos = np.arange(1, 1 + ((len(val) - 1) // 32) * 32)
    assert sc.count == len(pos)
    prev, tgt = val[pos - 1].numpy(), val[pos].numpy()
    nbytes = (2 + ((tgt % 2 == 0) & ~(prev < 4))).sum()
    assert sc.bytes_sum == nbytes
    assert sc.bpb == pytest.approx(sc.nll_sum / math.log(2) / nbytes)
    with torch.no_grad():
        logits = m(val[:-1][: len(pos)].view(-1, 32))
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), val[1:1 + len(pos)])
    assert sc.loss == pytest.approx(float(nll), rel=1e-5)


def test_ledger_verify_unit():
    led = Ledger(20)
    led.scored(0, [(1, 10)])
    led.step(0, 0, [(0, 9)], [(1, 10)])
    assert led.verify() == []
    led.step(1, 0, [(9, 15)], [(10, 16)])  # chunk 1 not scored yet
    probs = led.verify()
    assert len(probs) == 2 and all("position 10 was not scored" in p for p in probs)  # inputs and targets
    led2 = Ledger(10)
    led2.scored(0, [(1, 5)])
    led2.scored(1, [(4, 8)])
    assert "more than once" in led2.verify()[0]


def test_legal_ttt_ledger_and_probe_pass(setup):
    cfg, m, val, lut = setup
    ctx = run_ttt(m, val, cfg, lut, "cpu")
    assert ctx.n_chunks == 5 and ctx.ledger.n_steps > 0
    assert ctx.ledger.verify() == []
    assert np.isfinite(ctx.scores.nll[1:]).all() and ctx.scores.count == len(val) - 1
    assert not torch.equal(ctx.model.blocks[-1].mlp.fc.weight, m.blocks[-1].mlp.fc.weight)  # it adapted
    p = causality_probe(m, val, cfg, lut, "cpu")
    assert p.passed, p
    assert p.max_diff_before == 0.0 and p.max_diff_after > 0


def test_illegal_ttt_fails_ledger_and_probe(setup):
    cfg, m, val, lut = setup
    bad = tiny(ttt_variant="test_train_before_score")
    ctx = run_ttt(m, val, bad, lut, "cpu")
    problems = ctx.ledger.verify()
    assert problems and "was not scored yet" in problems[0]
    p = causality_probe(m, val, bad, lut, "cpu")
    assert not p.passed and p.first_bad is not None and p.first_bad <= p.t
    assert p.max_diff_before > p.tolerance


def test_ttt_freezes_first_blocks(setup):
    cfg, m, val, lut = setup
    ctx = run_ttt(m, val, tiny(ttt_freeze_blocks="2"), lut, "cpu")
    for i, b in enumerate(ctx.model.blocks):
        same = torch.equal(b.attn.q.weight, m.blocks[i].attn.q.weight)
        assert same == (i < 2)


def test_compiled_ttt_scoring_equals_eager(setup):
    """compile=on forces torch.compile of the TTT scoring forward on CPU (inductor, dynamic
    shapes): every per-position loss within 1e-4 of eager (the tolerance of the training
    forward's compile==eager test) through all chunks, the SGD steps between them included; the
    ledger is the same and proves score-first. Dynamo may not fall back to eager here."""
    import torch._dynamo

    cfg, m, val, lut = setup
    eager = run_ttt(m, val, cfg, lut, "cpu")
    torch._dynamo.reset()
    strict = torch._dynamo.config.fail_on_recompile_limit_hit
    torch._dynamo.config.fail_on_recompile_limit_hit = True
    try:
        compiled = run_ttt(m, val, tiny(compile="on"), lut, "cpu")
        graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    finally:
        torch._dynamo.config.fail_on_recompile_limit_hit = strict
        torch._dynamo.reset()
    assert isinstance(compiled.score_model, torch._dynamo.eval_frame.OptimizedModule) and graphs > 0
    assert eager.score_model is eager.model  # compile=auto on CPU: eager
    diff = np.abs(compiled.scores.nll[1:] - eager.scores.nll[1:])
    assert diff.max() < 1e-4, diff.max()
    assert compiled.ledger.events == eager.ledger.events and compiled.ledger.verify() == []
