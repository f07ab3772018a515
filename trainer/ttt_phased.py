"""Phased score-first TTT (the 2026-04-29 record's evaluation), with the score-first ledger.

The val stream is cut into documents at BOS: document d owns the targets (s_d, s_{d+1}] (its
own tokens and the next BOS, which ends it). Documents are sorted by length and taken in batches
(longest batch first, as the record does). Within a batch every document gets its own LoRA
adapters (reset per batch), and its targets are visited in chunks of `ttt_chunk_size`: a chunk is
scored (each target with up to eval_seq_len tokens of left context from its own document), then
— unless it is the document's last chunk — one Adam step on that chunk's loss adapts only that
document's LoRA. After the first `phased_ttt_prefix_docs` documents, at `phased_ttt_num_phases`
evenly spaced boundaries, a global phase runs SGD on the base weights over the documents scored
so far; later batches are scored by the adapted base.

Every score and every optimizer step (LoRA or global) is written to a ledger with the stream
positions it consumed, so the order is checked, not trusted. BOS positions that open a document
are known without scoring anything (they are the boundaries the plan is built from) and may be
read as inputs; every other input and every target of a step must have been scored before.

Differences from the record, on purpose: LoRA on the attention output projection's input rather
than a parallel adapter from the block input; batches are dealt to ranks in fixed rounds (not
claimed from a shared queue), so a run is deterministic.
"""

from __future__ import annotations

import copy
import math
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from trainer.eval import Ledger, ProbeResult, Scores, _all_sum, _merge, _world, target_bytes, verify_score_first
from trainer.model import MLP, CastedLinear, autocast_context

LORA_ALPHA = 144.0  # output scaled by alpha/rank, as the record


def find_documents(val: torch.Tensor, bos_id: int) -> list[tuple[int, int]]:
    """(s, e): the document opened at s owns targets s+1 .. e (e = next BOS, or the last position)."""
    starts = torch.nonzero(val == bos_id).flatten().tolist()
    if not starts or starts[0] != 0:
        starts = [0] + starts
    ends = starts[1:] + [len(val) - 1]
    return [(s, e) for s, e in zip(starts, ends) if e > s]


# --- batched per-document LoRA -------------------------------------------------------------------
class BatchedLoRA(nn.Module):
    """Δ(x) = (α/r)·(x Aᵀ) Bᵀ with one (A, B) per document of the batch; B = 0 at reset. A batch
    of fewer documents uses the first rows (the adapters are allocated once, for the largest)."""

    def __init__(self, bsz: int, d_in: int, d_out: int, rank: int, gen: torch.Generator):
        super().__init__()
        self.A = nn.Parameter(torch.zeros(bsz, rank, d_in))
        self.B = nn.Parameter(torch.zeros(bsz, d_out, rank))
        self.scale = LORA_ALPHA / rank
        self.reset(gen, bsz)

    @torch.no_grad()
    def reset(self, gen: torch.Generator, n: int) -> None:
        bound = 1.0 / math.sqrt(self.A.size(2))
        self.A.zero_()
        self.A[:n] = ((torch.rand(n, *self.A.shape[1:], generator=gen) * 2 - 1) * bound).to(self.A.device)
        self.B.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.size(0)
        down = torch.bmm(x, self.A[:n].transpose(1, 2).to(x.dtype))
        return torch.bmm(down, self.B[:n].transpose(1, 2).to(x.dtype)) * self.scale


class DocumentLoRA(nn.Module):
    """Adapters on every block's Q, K, V, output projection and MLP and on the head, attached by
    forward hooks (the model's own forward is unchanged); a layer that runs several times (the
    loop) gets one adapter per pass, as the record's per-slot LoRA. The hooks stay for the whole
    evaluation (a compiled forward is traced with them once): `reset` starts the adapters of the
    next batch, `active` switches them off for the global phases, `detach()` removes them."""

    def __init__(self, model: nn.Module, bsz: int, rank: int, seed: int):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)  # the same adapters for the same batch, run after run
        passes = Counter(i for i, _ in model.layer_order())
        self.adapters = nn.ModuleDict()
        self.calls: dict = {}  # per forward: passes seen per module, and the head's input
        self.active = True
        device = next(model.parameters()).device
        self.handles = [model.register_forward_pre_hook(lambda mod, args: self.calls.clear())]
        for name, mod in model.named_modules():
            if not name.startswith("blocks."):
                continue
            leaf = name.rsplit(".", 1)[-1]
            if isinstance(mod, CastedLinear) and leaf in ("q", "k", "v", "proj") and ".attn." in name:
                d_in, d_out = mod.weight.shape[1], mod.weight.shape[0]
            elif isinstance(mod, MLP):
                d_in = d_out = mod.fc.weight.shape[1]
            else:
                continue
            key = name.replace(".", "_")
            n = passes[int(name.split(".")[1])]
            self.adapters[key] = nn.ModuleList(BatchedLoRA(bsz, d_in, d_out, rank, gen) for _ in range(n)).to(device)
            self.handles.append(mod.register_forward_hook(self._hook(key)))
        # the head: logits (before the softcap) += LoRA(final hidden state)
        vocab, dim = model.tok_emb.weight.shape
        self.head = BatchedLoRA(bsz, dim, vocab, rank, gen).to(device)
        self.handles.append(model.head_in.register_forward_hook(lambda mod, inp, out: self.calls.__setitem__("h", out)))
        self.handles.append(model.head_out.register_forward_hook(self._head_hook))

    def reset(self, n: int, seed: int) -> None:
        """Fresh adapters for a batch of n documents: the values a new DocumentLoRA(model, n,
        rank, seed) would draw, in its order."""
        gen = torch.Generator().manual_seed(seed)
        for passes in self.adapters.values():
            for a in passes:
                a.reset(gen, n)
        self.head.reset(gen, n)

    def _hook(self, key: str):
        def add(mod, inp, out):
            if not self.active:
                return out
            k = self.calls.get(key, 0)  # which pass of this layer within the current forward
            self.calls[key] = k + 1
            return out + self.adapters[key][k](inp[0]).to(out.dtype)
        return add

    def _head_hook(self, mod, inp, out):
        return out + self.head(self.calls["h"]).to(out.dtype) if self.active else out

    def detach(self) -> None:
        for h in self.handles:
            h.remove()


# --- the plan ------------------------------------------------------------------------------------
@dataclass
class PhasedResult:
    scores: Scores
    ledger: "DocLedger"
    n_chunks: int  # scoring events
    phases_run: int
    global_steps: int
    lora_steps: int


class DocLedger(Ledger):
    """The score-first ledger with the BOS positions that open documents readable as inputs
    (never as targets): they are the boundaries the plan is built from, not scored content."""

    def __init__(self, n_tokens: int, doc_starts: list[int]):
        super().__init__(n_tokens)
        self.doc_starts = np.asarray(doc_starts, dtype=np.int64)

    def summary(self) -> dict:
        out = super().summary()
        out["global_steps"] = sum(e.get("phase") == "global" for e in self.events)
        return out

    def verify(self) -> list[str]:
        return verify_ledger(self)


def verify_ledger(ledger: DocLedger) -> list[str]:
    free = np.zeros(ledger.n_tokens, dtype=bool)
    free[ledger.doc_starts] = True  # a document's opening BOS is read as input, never a target
    return verify_score_first(ledger.events, ledger.n_tokens, free_inputs=free,
                              describe=lambda k, e: f"event {k} ({e.get('phase', 'lora')} chunk {e['chunk']})")


class PhasedTTT:
    def __init__(self, model, val: torch.Tensor, cfg, lut, device):
        self.model = copy.deepcopy(model)  # never adapt the roundtrip model itself
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.val, self.cfg, self.lut, self.device = val, cfg, lut, device
        self.T = cfg.eval_seq_len or cfg.train_seq_len
        self.docs = find_documents(val, cfg.bos_id)
        n = len(val)
        self.ledger = DocLedger(n, [s for s, _ in self.docs])
        self.scores = Scores(np.full(n, np.nan))
        self.events = self.global_steps = self.lora_steps = self.phases_run = 0
        self.rank, self.world = _world()
        self.lora: DocumentLoRA | None = None  # one set of adapters for the run, reset per batch
        self.fwd = self.model  # the scoring (and LoRA training) forward; compiled in run() when switched on

    # one chunk of a batch of documents -----------------------------------------------------------
    def _windows(self, batch, ci):
        """Per document: (window start, chunk start, chunk end) in stream positions (targets
        [cs, ce)), or None when the document has no chunk ci."""
        C = self.cfg.ttt_chunk_size
        out = []
        for s, e in batch:
            cs = s + 1 + ci * C
            if cs > e:
                out.append(None)
                continue
            ce = min(cs + C, e + 1)
            out.append((max(s, ce - 1 - self.T), cs, ce))
        return out

    def _batch_chunk(self, batch, ci, lora, opt) -> None:
        wins = self._windows(batch, ci)
        L = max(ce - 1 - ws for ws, _, ce in filter(None, wins))
        x = torch.zeros(len(batch), L, dtype=torch.long)
        y = torch.zeros(len(batch), L, dtype=torch.long)
        for b, w in enumerate(wins):
            if w:
                ws, _, ce = w
                x[b, :ce - 1 - ws], y[b, :ce - 1 - ws] = self.val[ws:ce - 1], self.val[ws + 1:ce]
        x, y = x.to(self.device), y.to(self.device)
        self.model.train()
        with autocast_context(torch.device(self.device)):
            logits = self.fwd(x)
        nll = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1),
                              reduction="none").view(y.shape)
        ranges, train_terms, inputs, targets = [], [], [], []
        for b, w in enumerate(wins):
            if not w:
                continue
            ws, cs, ce = w
            seg = nll[b, cs - 1 - ws:ce - 1 - ws]
            self._record_scores(cs, ce, seg.detach())
            ranges.append((cs, ce))
            if ce <= batch[b][1]:  # not the document's last chunk: adapt on it
                train_terms.append(seg.mean())
                inputs.append((ws, ce - 1))
                targets.append((cs, ce))
        self.ledger.scored(self.events, ranges)
        self.events += 1
        if train_terms:
            opt.zero_grad(set_to_none=True)
            torch.stack(train_terms).sum().backward()
            opt.step()
            self.lora_steps += 1
            self.ledger.step(self.events - 1, 0, inputs, targets)

    def _record_scores(self, cs: int, ce: int, seg: torch.Tensor) -> None:
        pos = torch.arange(cs, ce)
        sc = self.scores
        sc.nll[cs:ce] = seg.double().cpu().numpy()
        sc.nll_sum += float(seg.double().sum())
        sc.bytes_sum += float(target_bytes(self.lut, self.val, pos).sum())
        sc.count += ce - cs

    # the global phase ----------------------------------------------------------------------------
    def _global_phase(self, docs) -> None:
        """SGD on the base weights over these (scored) documents: pairs (x, y) inside each
        document only, cut into chunks of global_ttt_chunk_tokens, rows of eval_seq_len, cosine
        LR over the chunks; the last chunk is not trained on (as the record)."""
        cfg, T = self.cfg, self.T
        xs = torch.cat([torch.arange(s, e) for s, e in docs])  # input positions; targets are +1
        C = cfg.global_ttt_chunk_tokens
        n_chunks = -(-len(xs) // C)
        params = [p for p in self.model.parameters()]
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.SGD(params, lr=cfg.global_ttt_lr, momentum=cfg.ttt_momentum)
        self.model.train()
        for ci in range(n_chunks - 1):
            lr = cfg.global_ttt_lr * 0.5 * (1 + math.cos(math.pi * ci / max(n_chunks - 1, 1)))
            for g in opt.param_groups:
                g["lr"] = lr
            chunk = xs[ci * C:(ci + 1) * C]
            rows = [chunk[i:i + T] for i in range(0, len(chunk), T)]  # the last row may be short
            groups = [rows[i:i + cfg.ttt_batch_seqs] for i in range(0, len(rows), cfg.ttt_batch_seqs)]
            if len(groups[-1][-1]) < T:  # the short row alone (a batch has one length)
                groups[-1:] = [g for g in (groups[-1][:-1], groups[-1][-1:]) if g]
            for grp in groups:
                pos = torch.stack(grp)
                self._global_step(opt, pos[self.rank::self.world], len(pos), params)
                if cfg.ttt_grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.ttt_grad_clip)
                opt.step()
                self.global_steps += 1
                flat = pos.flatten().tolist()
                self.ledger.events.append({"kind": "step", "phase": "global", "chunk": ci, "epoch": 0,
                                           "inputs": _merge((p, p + 1) for p in flat),
                                           "targets": _merge((p + 1, p + 2) for p in flat)})
        for p in params:
            p.requires_grad_(False)

    def _global_step(self, opt, mine: torch.Tensor, n_rows: int, params) -> None:
        """This rank's rows' share of the mean loss over all `n_rows`; gradients summed over ranks."""
        opt.zero_grad(set_to_none=False)
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        if len(mine):
            xb, yb = self.val[mine].to(self.device), self.val[mine + 1].to(self.device)
            with autocast_context(torch.device(self.device)):
                loss = self.model(xb, yb) * (len(mine) / n_rows)
            loss.backward()
        if self.world > 1:
            for p in params:
                _all_sum(p.grad)

    def _run_batch(self, batch_ids: list[int], seed: int) -> None:
        """One batch of documents, each with its own LoRA: chunk by chunk, score then adapt."""
        cfg = self.cfg
        batch = [self.docs[d] for d in batch_ids]
        self.lora.reset(len(batch), seed)
        opt = torch.optim.AdamW(self.lora.parameters(), lr=cfg.ttt_lora_lr, betas=(0.0, 0.999), eps=1e-10,
                                weight_decay=1.0)
        n_chunks = max(-(-(e - s) // cfg.ttt_chunk_size) for s, e in batch)
        self.lora.active = True
        try:
            for ci in range(n_chunks):
                self._batch_chunk(batch, ci, self.lora, opt)
        finally:
            self.lora.active = False  # the global phases train the base model alone

    def run(self) -> PhasedResult:
        from trainer.fast import maybe_compile_scoring

        bs = max(1, self.cfg.ttt_lora_batch_docs)
        self.lora = DocumentLoRA(self.model, bs, self.cfg.ttt_lora_rank, self.cfg.seed)
        self.fwd = maybe_compile_scoring(self.model, self.cfg, torch.device(self.device))  # after the hooks
        try:
            return self._run()
        finally:
            self.lora.detach()

    def _run(self) -> PhasedResult:
        cfg = self.cfg
        order = sorted(range(len(self.docs)), key=lambda d: self.docs[d][1] - self.docs[d][0])
        bs = max(1, cfg.ttt_lora_batch_docs)
        batches = [order[i:i + bs] for i in range(0, len(order), bs)]
        batches.sort(key=lambda b: -max(self.docs[d][1] - self.docs[d][0] for d in b))
        prefix = min(len(self.docs), cfg.phased_ttt_prefix_docs)
        phases = max(1, cfg.phased_ttt_num_phases)
        bounds = [prefix * (k + 1) // phases for k in range(phases)] if prefix else []
        scored_docs: list[int] = []
        offsets = np.cumsum([0] + [len(b) for b in batches])  # adapters seeded by the batch, not the rank
        # Rounds of one batch per rank; the documents of a round count as scored when it ends
        # (the collective ops of a global phase wait for every rank's batch).
        for k in range(0, len(batches), self.world):
            start = len(self.ledger.events)
            if k + self.rank < len(batches):
                self._run_batch(batches[k + self.rank], cfg.seed + int(offsets[k + self.rank]))
            self._tag(start, k, self.rank)
            scored_docs += [d for b in batches[k:k + self.world] for d in b]
            start = len(self.ledger.events)
            while self.phases_run < len(bounds) and len(scored_docs) >= bounds[self.phases_run]:
                if bounds[self.phases_run]:
                    self._global_phase([self.docs[d] for d in scored_docs[:bounds[self.phases_run]]])
                self.phases_run += 1
            self._tag(start, k, -1)  # global steps: after every rank's batch of the round
        if self.world > 1:
            self._gather()
        return PhasedResult(self.scores, self.ledger, self.events, self.phases_run, self.global_steps,
                            self.lora_steps)

    def _tag(self, start: int, round_: int, rank: int) -> None:
        for e in self.ledger.events[start:]:
            e["round"], e["rank"] = round_, rank

    def _gather(self) -> None:
        """Every rank ends with all scores and one ledger: per round, each rank's events (they
        are independent: own documents, own adapters, frozen base), then the round's global steps."""
        sc, dev = self.scores, self.device
        nll = torch.from_numpy(np.nan_to_num(sc.nll, nan=0.0)).to(dev)
        mask = torch.from_numpy((~np.isnan(sc.nll)).astype(np.float64)).to(dev)
        tot = torch.tensor([sc.nll_sum, sc.bytes_sum, sc.count, self.events, self.lora_steps], dtype=torch.float64,
                           device=dev)
        for t in (nll, mask, tot):
            _all_sum(t)
        sc.nll = np.where(mask.cpu().numpy() > 0, nll.cpu().numpy(), np.nan)
        sc.nll_sum, sc.bytes_sum, count, events, lora = tot.cpu().tolist()
        sc.count, self.events, self.lora_steps = int(count), int(events), int(lora)
        mine = [e for e in self.ledger.events if e["rank"] >= 0]
        every: list = [None] * self.world
        dist.all_gather_object(every, mine)
        glob = [e for e in self.ledger.events if e["rank"] < 0]
        merged = sorted((e for part in every for e in part), key=lambda e: (e["round"], e["rank"]))
        out, gi = [], 0
        for e in merged:
            while gi < len(glob) and glob[gi]["round"] < e["round"]:
                out.append(glob[gi])
                gi += 1
            out.append(e)
        self.ledger.events = out + glob[gi:]


def run_phased(model, val: torch.Tensor, cfg, lut, device) -> PhasedResult:
    t0 = time.perf_counter()
    res = PhasedTTT(model, val, cfg, lut, device).run()
    res.scores.seconds = time.perf_counter() - t0
    return res


# --- the causality probe, in processing order ----------------------------------------------------
def phased_causality_probe(model, val: torch.Tensor, cfg, lut, device, tolerance: float = 1e-6,
                           seed: int = 0) -> ProbeResult:
    """Phased TTT visits documents by length, not in stream order, so "the future" is what is
    scored later. Run once; take a cut (the first scoring event after a global phase, else the
    middle one); give every non-BOS target
    scored after it another non-BOS token (documents, hence the plan, stay the same); run again.
    Every target scored up to that event must keep its loss exactly; a later one must move."""
    n = min(len(val), max(cfg.probe_tokens, 2))
    sl = val[:n].clone()
    base = run_phased(model, sl, cfg, lut, device)
    events = base.ledger.events
    score_events = [e for e in events if e["kind"] == "score"]
    first_global = next((i for i, e in enumerate(events) if e.get("phase") == "global"), None)
    # the cut: the first scoring after a global phase (that phase must not have seen the future),
    # else the middle scoring event
    k = len(score_events) // 2
    if first_global is not None:
        k = min(sum(e["kind"] == "score" for e in events[:first_global]), len(score_events) - 1)
    past = np.zeros(n, dtype=bool)
    for e in score_events[:k + 1]:
        for a, b in e["ranges"]:
            past[a:b] = True
    future = ~past
    future[0] = False
    future &= (sl != cfg.bos_id).numpy()
    g = torch.Generator().manual_seed(seed)
    pert = sl.clone()
    idx = torch.from_numpy(np.flatnonzero(future))
    new = torch.randint(0, cfg.vocab_size, (len(idx),), generator=g)
    new = torch.where(new == cfg.bos_id, (new + 1) % cfg.vocab_size, new)
    new = torch.where(new == sl[idx], (new + 1 + (new + 1 == cfg.bos_id).long()) % cfg.vocab_size, new)
    pert[idx] = new
    other = run_phased(model, pert, cfg, lut, device).scores.nll
    d = np.abs(np.nan_to_num(base.scores.nll - other, nan=np.inf))
    before, after = d[past & ~np.isnan(base.scores.nll)], d[future]
    bad = np.flatnonzero(past & (d > tolerance) & ~np.isnan(base.scores.nll))
    mb = float(before.max()) if before.size else 0.0
    ma = float(after.max()) if after.size else 0.0
    t = int(np.flatnonzero(past).max()) if past.any() else 0
    return ProbeResult(passed=bad.size == 0 and ma > tolerance, t=t, tokens=n, chunk_tokens=cfg.ttt_chunk_size,
                       max_diff_before=mb, max_diff_after=ma, first_bad=int(bad[0]) if bad.size else None,
                       tolerance=tolerance)
