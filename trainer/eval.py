"""Evaluation: plain rows, sliding window, and legal score-first test-time training (TTT) with a
ledger that proves every token was scored before any optimizer step used it; plus a causality
probe that perturbs the future and checks the past's per-position loss did not move.

A *window* is (s, a, b): the model reads inputs val[s : b-1] and the targets val[s+1 : b]; the
targets at positions [a, b) are scored. Position 0 (the stream's first BOS) is never a target.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from trainer.data import ByteLUT
from trainer.model import autocast_context

Window = tuple[int, int, int]


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_sum(t: torch.Tensor) -> torch.Tensor:
    if _world()[1] > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


# --- window plans --------------------------------------------------------------------------------
def plain_windows(n: int, seq_len: int) -> list[Window]:
    """Rows of seq_len; scores targets 1 .. ((n-1)//seq_len)*seq_len, drops the tail."""
    return [(k * seq_len, k * seq_len + 1, (k + 1) * seq_len + 1) for k in range((n - 1) // seq_len)]


def sliding_windows(lo: int, hi: int, seq_len: int, stride: int) -> list[Window]:
    """Score targets [lo, hi) once each, each with up to seq_len tokens of left context: the
    first window of the stream scores all its targets, later ones the last `stride`."""
    out, a = [], lo
    first = seq_len if lo <= 1 else stride
    b = min(a + first, hi)
    while a < hi:
        out.append((max(0, b - 1 - seq_len), a, b))
        a, b = b, min(b + stride, hi)
    return out


@dataclass
class Scores:
    """Per-position NLL of the scored targets (nan where not scored) and the totals."""

    nll: np.ndarray  # float64, one per stream position
    nll_sum: float = 0.0
    bytes_sum: float = 0.0
    count: int = 0
    seconds: float = 0.0

    @property
    def loss(self) -> float:
        return self.nll_sum / max(self.count, 1)

    @property
    def bpb(self) -> float:
        return self.nll_sum / math.log(2) / max(self.bytes_sum, 1)


@torch.no_grad()
def score_windows(model, val: torch.Tensor, windows: list[Window], lut: ByteLUT, device,
                  batch_seqs: int, out: Scores, split_ranks: bool = True) -> list[tuple[int, int]]:
    """Score the windows (this rank's share), add to `out`; returns the scored ranges [a, b)."""
    rank, world = _world() if split_ranks else (0, 1)
    mine = windows[rank::world]
    by_len: dict[int, list[Window]] = {}
    for w in mine:
        by_len.setdefault(w[2] - 1 - w[0], []).append(w)
    if not windows:
        return []
    # Buffers span only the targets these windows score (a TTT chunk, not the whole stream).
    base = min(a for _, a, _ in windows)
    span = max(b for _, _, b in windows) - base
    nll_local = torch.zeros(span, dtype=torch.float64)
    for L, ws in by_len.items():
        for i in range(0, len(ws), batch_seqs):
            batch = ws[i:i + batch_seqs]
            x = torch.stack([val[s:b - 1] for s, _, b in batch]).to(device)
            y = torch.stack([val[s + 1:b] for s, _, b in batch]).to(device)
            with torch.inference_mode(), autocast_context(torch.device(device)):
                logits = model(x)
            nll = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1),
                                  reduction="none").view(y.shape).double().cpu()
            for j, (s, a, b) in enumerate(batch):
                nll_local[a - base:b - base] = nll[j, a - (s + 1):]
    mask = torch.zeros(span, dtype=torch.float64)
    for s, a, b in mine:
        mask[a - base:b - base] = 1.0
    if world > 1:  # every rank ends with the full picture (NCCL needs device tensors)
        nll_local = _all_sum(nll_local.to(device)).cpu()
        mask = _all_sum(mask.to(device)).cpu()
    ranges = [(a, b) for _, a, b in windows]
    rel = torch.nonzero(mask > 0).flatten()
    if len(rel):
        pos = rel + base
        out.nll[pos.numpy()] = nll_local[rel].numpy()
        out.nll_sum += float(nll_local[rel].sum())
        out.bytes_sum += float(target_bytes(lut, val, pos).sum())
        out.count += int(len(pos))
    return ranges


def target_bytes(lut, val: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Bytes of the targets at stream positions `pos`: from the per-token byte sidecar when the
    byte source has one (CaseOps, `trainer.caseops`), else bytes(y | x) from the LUT."""
    if hasattr(lut, "bytes_at"):
        return lut.bytes_at(pos)
    return lut.bytes_for(val[pos - 1], val[pos])


def evaluate(model, val: torch.Tensor, lut: ByteLUT, device, seq_len: int, stride: int,
             batch_seqs: int) -> Scores:
    """Plain (stride 0) or sliding-window evaluation of the whole val stream."""
    t0 = time.perf_counter()
    model.eval()
    windows = sliding_windows(1, len(val), seq_len, stride) if stride else plain_windows(len(val), seq_len)
    sc = Scores(np.full(len(val), np.nan))
    score_windows(model, val, windows, lut, device, batch_seqs, sc)
    sc.seconds = time.perf_counter() - t0
    return sc


# --- the score-first ledger ----------------------------------------------------------------------
@dataclass
class Ledger:
    """What happened, in order: which target positions each chunk scored, which positions
    (inputs and targets) each optimizer step consumed."""

    n_tokens: int
    events: list[dict] = field(default_factory=list)

    def scored(self, chunk: int, ranges: list[tuple[int, int]]) -> None:
        self.events.append({"kind": "score", "chunk": chunk, "ranges": _merge(ranges)})

    def step(self, chunk: int, epoch: int, inputs: list[tuple[int, int]], targets: list[tuple[int, int]]) -> None:
        self.events.append({"kind": "step", "chunk": chunk, "epoch": epoch,
                            "inputs": _merge(inputs), "targets": _merge(targets)})

    @property
    def n_steps(self) -> int:
        return sum(e["kind"] == "step" for e in self.events)

    def verify(self) -> list[str]:
        """Violations (empty = proven): a step consumed a position not yet scored, or a target
        was scored twice. Position 0, the stream's first BOS, is context that is never a
        target, so it may be consumed."""
        done = np.zeros(self.n_tokens, dtype=bool)
        done[0] = True
        return verify_score_first(self.events, self.n_tokens, done=done,
                                  describe=lambda k, e: f"event {k} (chunk {e['chunk']}, epoch {e['epoch']})")

    def summary(self) -> dict:
        return {"events": len(self.events), "optimizer_steps": self.n_steps,
                "scored_chunks": sum(e["kind"] == "score" for e in self.events)}


def verify_score_first(events, n_tokens: int, *, done=None, free_inputs=None, describe=None) -> list[str]:
    """The score-first proof over a ledger's events, shared by every TTT evaluator: each step's
    inputs and targets must already be scored (`done` starts as given; `free_inputs` may be read as
    inputs without being scored, e.g. the BOS opening a document), and no target is scored twice."""
    scored = np.zeros(n_tokens, dtype=np.int32)
    done = np.zeros(n_tokens, dtype=bool) if done is None else done.copy()
    describe = describe or (lambda k, e: f"event {k}")
    problems: list[str] = []
    for k, e in enumerate(events):
        if e["kind"] == "score":
            for a, b in e["ranges"]:
                scored[a:b] += 1
                done[a:b] = True
            continue
        for what in ("inputs", "targets"):
            for a, b in e[what]:
                ok = done[a:b] | (free_inputs[a:b] if what == "inputs" and free_inputs is not None else False)
                if not ok.all():
                    first = a + int(np.flatnonzero(~ok)[0])
                    problems.append(f"{describe(k, e)} consumed {what} [{a}, {b}) but position {first} was not "
                                    f"scored yet ({int((~ok).sum())} unscored positions)")
                    break
    twice = np.flatnonzero(scored > 1)
    if twice.size:
        problems.append(f"{twice.size} target positions were scored more than once (first {int(twice[0])})")
    return problems


def _merge(ranges) -> list[list[int]]:
    out: list[list[int]] = []
    for a, b in sorted((int(a), int(b)) for a, b in ranges):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


# --- test-time training --------------------------------------------------------------------------
class TTTContext:
    """One TTT pass over a val stream: chunks, the model being adapted, its optimizer, the ledger.

    A variant drives it by calling `score_chunk(c)` and `train_chunk(c)` in the order it wants;
    the ledger records what actually happened, so the order is checked, not trusted.
    """

    def __init__(self, model, val: torch.Tensor, cfg, lut: ByteLUT, device, chunk_tokens: int | None = None):
        from trainer.fast import maybe_compile_scoring

        self.model = copy.deepcopy(model)  # never adapt the exported/roundtrip model itself
        self.score_model = maybe_compile_scoring(self.model, cfg, torch.device(device))  # the same weights
        self.val, self.cfg, self.lut, self.device = val, cfg, lut, device
        self.seq_len = cfg.eval_seq_len or cfg.train_seq_len
        self.stride = cfg.eval_stride or self.seq_len
        chunk = chunk_tokens or cfg.ttt_chunk_tokens
        n = len(val)
        self.chunks = [(lo, min(lo + chunk, n)) for lo in range(1, n, chunk)]
        self.ledger = Ledger(n)
        self.scores = Scores(np.full(n, np.nan))
        frozen = set()
        for blk in list(self.model.blocks)[:cfg.ttt_freeze_blocks]:
            frozen |= {id(p) for p in blk.parameters()}
        self.params = [p for p in self.model.parameters() if id(p) not in frozen]
        for p in self.model.parameters():
            p.requires_grad_(id(p) not in frozen)
        self.opt = torch.optim.SGD(self.params, lr=cfg.ttt_lr, momentum=cfg.ttt_momentum)

    @property
    def n_chunks(self) -> int:
        return len(self.chunks)

    def score_chunk(self, c: int) -> None:
        lo, hi = self.chunks[c]
        self.model.eval()
        ranges = score_windows(self.score_model, self.val, sliding_windows(lo, hi, self.seq_len, self.stride),
                               self.lut, self.device, self.cfg.eval_batch_seqs, self.scores)
        self.ledger.scored(c, ranges)

    def train_chunk(self, c: int) -> None:
        """SGD on the chunk's tokens (inputs val[lo-1:hi-1], targets val[lo:hi]), cosine LR over chunks."""
        lo, hi = self.chunks[c]
        T, cfg = self.seq_len, self.cfg
        rank, world = _world()
        lr = cfg.ttt_lr * 0.5 * (1 + math.cos(math.pi * c / max(self.n_chunks - 1, 1)))
        for g in self.opt.param_groups:
            g["lr"] = lr
        rows = [(s, min(s + T, hi)) for s in range(lo, hi, T)]  # target ranges
        self.model.train()
        for epoch in range(cfg.ttt_epochs):
            for i in range(0, len(rows), cfg.ttt_batch_seqs * world):
                batch = rows[i:i + cfg.ttt_batch_seqs * world]
                mine = batch[rank::world]
                self.opt.zero_grad(set_to_none=True)
                loss_sum = torch.zeros((), device=self.device)
                n_tgt = sum(b - a for a, b in batch)
                for a, b in mine:
                    x = self.val[a - 1:b - 1].to(self.device)[None]
                    y = self.val[a:b].to(self.device)[None]
                    with autocast_context(torch.device(self.device)):
                        loss_sum = loss_sum + self.model(x, y, reduction="sum").float().sum()
                if mine:  # a rank with no rows in this batch contributes zero gradients
                    (loss_sum / n_tgt).backward()
                if world > 1:
                    for p in self.params:
                        if p.grad is None:
                            p.grad = torch.zeros_like(p)
                        _all_sum(p.grad)
                if cfg.ttt_grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.params, cfg.ttt_grad_clip)
                self.opt.step()
                self.ledger.step(c, epoch, [(a - 1, b - 1) for a, b in batch], [(a, b) for a, b in batch])


def score_first(ctx: TTTContext) -> None:
    """The legal order: score chunk c under inference_mode, then (except the last) train on it."""
    for c in range(ctx.n_chunks):
        ctx.score_chunk(c)
        if c < ctx.n_chunks - 1:
            ctx.train_chunk(c)


TTT_VARIANTS: dict[str, Callable[[TTTContext], None]] = {"score_first": score_first}


def register_ttt_variant(name: str, fn: Callable[[TTTContext], None]) -> None:
    """Tests register deliberately illegal variants here to prove the gate catches them."""
    TTT_VARIANTS[name] = fn


def run_ttt(model, val: torch.Tensor, cfg, lut: ByteLUT, device, chunk_tokens: int | None = None) -> TTTContext:
    if cfg.ttt_variant == "phased":  # per-document LoRA + global phases (trainer.ttt_phased)
        from trainer.ttt_phased import run_phased

        return run_phased(model, val, cfg, lut, device)
    if cfg.ttt_variant not in TTT_VARIANTS:
        raise ValueError(f"unknown ttt_variant {cfg.ttt_variant!r} (have {', '.join(TTT_VARIANTS)})")
    t0 = time.perf_counter()
    ctx = TTTContext(model, val, cfg, lut, device, chunk_tokens)
    TTT_VARIANTS[cfg.ttt_variant](ctx)
    ctx.scores.seconds = time.perf_counter() - t0
    return ctx


# --- causality probe -----------------------------------------------------------------------------
@dataclass
class ProbeResult:
    passed: bool
    t: int
    tokens: int
    chunk_tokens: int
    max_diff_before: float  # max |Δ loss| at positions ≤ t (must be ~0)
    max_diff_after: float  # max |Δ loss| after t (must be > 0, else the probe proved nothing)
    first_bad: int | None
    tolerance: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def causality_probe(model, val: torch.Tensor, cfg, lut: ByteLUT, device, tolerance: float = 1e-6,
                    seed: int = 0) -> ProbeResult:
    """With TTT on, perturb every token after position t; the per-position loss at or before t
    must not change. The slice has several chunks and t sits inside the second one, so a
    variant that trains on a chunk before scoring it moves losses before t."""
    if cfg.ttt_variant == "phased":  # documents are visited by length: "the past" is what was scored first
        from trainer.ttt_phased import phased_causality_probe

        return phased_causality_probe(model, val, cfg, lut, device, tolerance, seed)
    T = cfg.eval_seq_len or cfg.train_seq_len
    chunk = max(T, cfg.probe_tokens // 4)
    n = min(len(val), max(cfg.probe_tokens, 3 * chunk) + 1)
    sl = val[:n].clone()
    t = 1 + chunk + chunk // 2
    base = run_ttt(model, sl, cfg, lut, device, chunk).scores.nll
    g = torch.Generator().manual_seed(seed)
    pert = sl.clone()
    shift = torch.randint(1, cfg.vocab_size, (n - t - 1,), generator=g)
    pert[t + 1:] = (pert[t + 1:] + shift) % cfg.vocab_size
    other = run_ttt(model, pert, cfg, lut, device, chunk).scores.nll
    d = np.abs(np.nan_to_num(base - other, nan=np.inf))
    before, after = d[1:t + 1], d[t + 1:]
    bad = np.flatnonzero(before > tolerance)
    mb = float(before.max()) if before.size else 0.0
    ma = float(after.max()) if after.size else 0.0
    return ProbeResult(passed=bad.size == 0 and ma > tolerance, t=t, tokens=n, chunk_tokens=chunk,
                       max_diff_before=mb, max_diff_after=ma,
                       first_bad=int(bad[0]) + 1 if bad.size else None, tolerance=tolerance)
