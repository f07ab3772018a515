"""The fast path for CUDA, each piece with a plain PyTorch fallback that is the reference:

- per-document (varlen) attention: FlashAttention 3/2 `varlen` when installed (its offsets built
  once per forward, max_seqlen the row length), else SDPA with a block-diagonal causal mask;
- softcapped cross-entropy fused in one Triton kernel pair (forward: softcap, log-sum-exp and the
  target's logit in one pass over the vocabulary; backward recomputes instead of storing the
  softcapped logits), else `cap·tanh(z/cap)` then `F.cross_entropy`;
- `torch.compile` of the training model and of the TTT scoring forward (on by default on CUDA);
- a bucketed gradient all-reduce launched from gradient hooks while backward still runs, instead of
  one blocking flat all-reduce after it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

try:  # FlashAttention 3 (Hopper) first, then 2
    from flash_attn_interface import flash_attn_varlen_func as _flash_varlen  # type: ignore
except ImportError:  # pragma: no cover - depends on the machine
    try:
        from flash_attn import flash_attn_varlen_func as _flash_varlen  # type: ignore
    except ImportError:
        _flash_varlen = None

try:
    import triton  # type: ignore
    import triton.language as tl  # type: ignore
except ImportError:  # pragma: no cover - CPU wheels ship no Triton
    triton = None


def flash_varlen_available() -> bool:
    return _flash_varlen is not None and torch.cuda.is_available()


def triton_available() -> bool:
    return triton is not None and torch.cuda.is_available()


# --- per-document attention ----------------------------------------------------------------------
def document_mask(docs: torch.Tensor) -> torch.Tensor:
    """(B, T) document ids → (B, 1, T, T) boolean mask: causal and within one document."""
    T = docs.size(1)
    causal = torch.ones(T, T, dtype=torch.bool, device=docs.device).tril()
    same = docs[:, :, None] == docs[:, None, :]
    return (same & causal)[:, None]


VARLEN_CU_BUCKET = 64  # cu_seqlens entries, padded up to a multiple of this (as the record's loader)


class Segments(NamedTuple):
    """Document ids of a (B, T) batch with the offsets FlashAttention varlen reads, built once
    per forward (one host sync) instead of once per attention call (one per layer pass)."""

    ids: torch.Tensor
    cu_seqlens: torch.Tensor
    max_seqlen: int


def _cu_seqlens(docs: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Start offsets of every (row, document) segment of the flattened (B·T) tokens, ending with
    B·T, and max_seqlen.

    max_seqlen is T: no segment is longer than its row, and FlashAttention reads max_seqlen
    only as an upper bound (for its grid), so the `.max()` over segment lengths, a host sync,
    is gone (the record also passes the row length in training).
    The starts still come from `nonzero`, one host sync: a sync-free cu_seqlens needs a static
    length, i.e. padding with empty segments up to the largest possible count, B·T. The record
    shows FA3 accepts trailing empty segments (it pads to a multiple of 64), but FA2's forward
    and FA3's backward launch one grid row per segment on a grid dimension CUDA caps at 65,535
    (B·T is 98,304 at the record's shape), and every empty segment still launches its blocks:
    B·T entries would cost far more than the sync. Padding to a multiple of VARLEN_CU_BUCKET
    (the record's convention) keeps the number of distinct shapes, hence recompiles, small."""
    B, T = docs.shape
    new = torch.ones_like(docs, dtype=torch.bool)
    new[:, 1:] = docs[:, 1:] != docs[:, :-1]
    starts = torch.nonzero(new.reshape(-1)).flatten().to(torch.int32)
    ends = torch.full((1 + (-(starts.numel() + 1)) % VARLEN_CU_BUCKET,), B * T, dtype=torch.int32, device=docs.device)
    return torch.cat((starts, ends)), T


def document_segments(docs: torch.Tensor) -> torch.Tensor | Segments:
    """What the attention layers of one forward share: the ids, plus FlashAttention's offsets
    when its varlen kernel will run (CUDA)."""
    if _flash_varlen is None or not docs.is_cuda:
        return docs
    return Segments(docs, *_cu_seqlens(docs))


def document_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, docs: torch.Tensor | Segments) -> torch.Tensor:
    """Causal attention restricted to each position's document; (B, H, T, D) in and out.
    `docs`: (B, T) document ids, or the Segments of document_segments."""
    B, H, T, D = q.shape
    ids = docs.ids if isinstance(docs, Segments) else docs
    if _flash_varlen is not None and q.is_cuda and q.dtype in (torch.bfloat16, torch.float16):
        cu, max_len = (docs.cu_seqlens, docs.max_seqlen) if isinstance(docs, Segments) else _cu_seqlens(ids)
        flat = [t.transpose(1, 2).reshape(B * T, t.size(1), D) for t in (q, k, v)]
        out = _flash_varlen(*flat, cu_seqlens_q=cu, cu_seqlens_k=cu, max_seqlen_q=max_len,
                            max_seqlen_k=max_len, causal=True)
        out = out[0] if isinstance(out, tuple) else out
        return out.view(B, T, H, D).transpose(1, 2)
    if k.size(1) != H:
        rep = H // k.size(1)
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=document_mask(ids))


# --- softcapped cross-entropy --------------------------------------------------------------------
def softcapped_ce_reference(logits: torch.Tensor, targets: torch.Tensor, cap: float) -> torch.Tensor:
    """mean over rows of CE(cap·tanh(z/cap)), computed in float32 (the eager path)."""
    z = logits.float()
    return F.cross_entropy(cap * torch.tanh(z / cap), targets)


if triton is not None:  # pragma: no cover - needs CUDA
    @triton.jit
    def _tanh(x):
        return 2 * tl.sigmoid(2 * x) - 1

    @triton.jit
    def _softcap_ce_fwd(z_ptr, t_ptr, loss_ptr, lse_ptr, stride, V, cap, BLOCK: tl.constexpr):
        row = tl.program_id(0)
        base = z_ptr + row.to(tl.int64) * stride
        tgt = tl.load(t_ptr + row)
        m = -float("inf")
        s = 0.0
        for off in range(0, V, BLOCK):
            cols = off + tl.arange(0, BLOCK)
            z = tl.load(base + cols, mask=cols < V, other=0.0).to(tl.float32)
            c = cap * _tanh(z / cap)
            c = tl.where(cols < V, c, -float("inf"))
            m_new = tl.maximum(m, tl.max(c, 0))
            s = s * tl.exp(m - m_new) + tl.sum(tl.exp(c - m_new), 0)
            m = m_new
        lse = m + tl.log(s)
        zt = tl.load(base + tgt).to(tl.float32)
        tl.store(loss_ptr + row, lse - cap * _tanh(zt / cap))
        tl.store(lse_ptr + row, lse)

    @triton.jit
    def _softcap_ce_bwd(z_ptr, t_ptr, lse_ptr, g_ptr, dz_ptr, stride, V, cap, BLOCK: tl.constexpr):
        row = tl.program_id(0)
        base = z_ptr + row.to(tl.int64) * stride
        dbase = dz_ptr + row.to(tl.int64) * stride
        tgt = tl.load(t_ptr + row)
        lse = tl.load(lse_ptr + row)
        g = tl.load(g_ptr + row)
        for off in range(0, V, BLOCK):
            cols = off + tl.arange(0, BLOCK)
            z = tl.load(base + cols, mask=cols < V, other=0.0).to(tl.float32)
            th = _tanh(z / cap)
            p = tl.exp(cap * th - lse)
            d = (p - tl.where(cols == tgt, 1.0, 0.0)) * (1 - th * th) * g
            tl.store(dbase + cols, d.to(dz_ptr.dtype.element_ty), mask=cols < V)


class _FusedSoftcapCE(torch.autograd.Function):  # pragma: no cover - needs CUDA and Triton
    @staticmethod
    def forward(ctx, logits, targets, cap):
        logits = logits.contiguous()
        N, V = logits.shape
        loss = torch.empty(N, device=logits.device, dtype=torch.float32)
        lse = torch.empty_like(loss)
        _softcap_ce_fwd[(N,)](logits, targets, loss, lse, logits.stride(0), V, cap, BLOCK=1024)
        ctx.save_for_backward(logits, targets, lse)
        ctx.cap = cap
        return loss.mean()

    @staticmethod
    def backward(ctx, grad):
        logits, targets, lse = ctx.saved_tensors
        N, V = logits.shape
        g = (grad.float() / N).expand(N).contiguous()
        dz = torch.empty_like(logits)
        _softcap_ce_bwd[(N,)](logits, targets, lse, g, dz, logits.stride(0), V, ctx.cap, BLOCK=1024)
        return dz, None, None


@torch.compiler.disable
def _fused_softcap_ce(logits: torch.Tensor, targets: torch.Tensor, cap: float) -> torch.Tensor:
    """Outside any compiled graph (one graph break after the logits): Triton kernels are not
    traced, they run as they are inside a compiled training step."""
    return _FusedSoftcapCE.apply(logits, targets, cap)


def softcapped_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, cap: float) -> torch.Tensor:
    """Mean softcapped cross-entropy of (N, V) pre-softcap logits: the fused Triton kernels on
    CUDA when Triton is installed, the eager reference otherwise."""
    if triton is not None and logits.is_cuda:
        return _fused_softcap_ce(logits, targets, float(cap))
    return softcapped_ce_reference(logits, targets, cap)


# --- torch.compile -------------------------------------------------------------------------------
def compile_enabled(cfg, device: torch.device) -> bool:
    return cfg.compile == "on" or (cfg.compile == "auto" and device.type == "cuda")


def maybe_compile(model: nn.Module, cfg, device: torch.device) -> nn.Module:
    """The module training calls: compiled (static shapes) when the switch says so, else itself.
    Compilation happens at the first call, i.e. during the untimed priming steps."""
    if not compile_enabled(cfg, device):
        return model
    return torch.compile(model, dynamic=False)


def maybe_compile_scoring(model: nn.Module, cfg, device: torch.device) -> nn.Module:
    """The TTT scoring forward, under the same switch. Dynamic shapes: window lengths and batch
    sizes change from chunk to chunk, and one graph per shape would recompile past Dynamo's
    limit. It compiles at its first call, inside the timed evaluation."""
    if not compile_enabled(cfg, device):
        return model
    return torch.compile(model, dynamic=True)


# --- bucketed, overlapped gradient all-reduce ----------------------------------------------------
class BucketedAllReduce:
    """Average gradients across ranks in buckets of about `bucket_mb` MiB, each launched
    asynchronously as soon as the last gradient of the bucket is accumulated (so communication
    overlaps the rest of backward). Buckets follow reverse registration order, the order backward
    produces gradients in. `armed` is set on the last micro-step only (accumulation steps do not
    communicate); `finish()` waits, averages and writes the gradients back. Parameters that got no
    gradient on this rank count as zero, as in the flat reduce."""

    def __init__(self, params: list[nn.Parameter], bucket_mb: float = 25.0):
        self.world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        self.params = [p for p in params if p.requires_grad]
        self.buckets: list[list[nn.Parameter]] = []
        limit, cur, size = int(bucket_mb * 2 ** 20), [], 0
        for p in reversed(self.params):
            cur.append(p)
            size += p.numel() * 4
            if size >= limit:
                self.buckets.append(cur)
                cur, size = [], 0
        if cur:
            self.buckets.append(cur)
        self.bucket_of = {id(p): b for b, ps in enumerate(self.buckets) for p in ps}
        self.armed = False
        self._reset()
        self._hooks = [p.register_post_accumulate_grad_hook(self._ready) for p in self.params] if self.world > 1 else []

    def _reset(self) -> None:
        self.pending = [len(b) for b in self.buckets]
        self.inflight: dict[int, tuple[torch.Tensor, object]] = {}
        self.next = 0  # buckets launch strictly in index order: every rank issues the same sequence

    def _ready(self, p: nn.Parameter) -> None:
        if not self.armed:
            return
        self.pending[self.bucket_of[id(p)]] -= 1
        while self.next < len(self.buckets) and self.pending[self.next] == 0:
            self._launch(self.next)
            self.next += 1

    def _launch(self, b: int) -> None:
        ps = self.buckets[b]
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float() for p in ps])
        self.inflight[b] = (flat, dist.all_reduce(flat, op=dist.ReduceOp.SUM, async_op=True))

    def finish(self) -> None:
        if self.world <= 1:
            return
        for b in range(self.next, len(self.buckets)):  # buckets with a parameter that got no gradient
            self._launch(b)
        for b, (flat, work) in self.inflight.items():
            work.wait()
            flat /= self.world
            off = 0
            for p in self.buckets[b]:
                n = p.numel()
                p.grad = flat[off:off + n].view_as(p).to(p.dtype)
                off += n
        self.armed = False
        self._reset()

    def remove(self) -> None:
        for h in self._hooks:
            h.remove()
