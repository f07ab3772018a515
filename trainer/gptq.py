"""The 2026-04-29 record's export: GPTQ with SDClip scales and act-order, int7 GPTQ on the tied
embedding (Hessian of the head's input), LQER asymmetric low-rank correction of the largest
quantization errors, and a byte shuffle before compression.

- SDClip: a row's scale is clip_sigmas·std(row)/qmax (not max|w|/qmax): values past
  ±clip_sigmas standard deviations are clipped, and the rest get a finer grid.
- act-order: columns are quantized in order of decreasing Hessian diagonal, so the columns
  that matter most are rounded first and the later ones absorb their error.
- LQER: for the top-K tensors by ‖W − Ŵ‖_F, the error's best rank-r factors A = U_r·S_r,
  B = V_rᵀ are stored too, A as int2 codes in [-2, 1] with one scale |A|max/1.5, B as int4
  codes in [-8, 7] with one scale |B|max/7.5 per group of `group` values (row-major over B):
  the dequantized weight is Ŵ + Â·B̂.

Entries use the container of `trainer.quant`: the codes and scales of a matrix are one "q"
entry; LQER factors are extra entries named `<tensor>::lqer_*`, folded back by `fold_lqer`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from trainer.quant import qmax_for, row_scales, tensor_bits

LQER_SUFFIXES = ("::lqer_a", "::lqer_a_scale", "::lqer_b", "::lqer_b_scale")
SHUFFLE_MAGIC = b"GCS2"  # byte-shuffled (stride 2) container


def record_quant_enabled(cfg) -> bool:
    return bool(cfg.gptq_sdclip or cfg.gptq_act_order or cfg.embed_gptq or cfg.lqer_rank)


def clip_sigmas_for(name: str, cfg) -> float:
    """The record's per-family SDClip width (embeddings, MLP, attention, other matrices)."""
    if "tok_emb" in name:
        return cfg.embed_clip_sigmas
    if ".mlp." in name:
        return cfg.mlp_clip_sigmas
    if ".attn." in name:
        return cfg.attn_clip_sigmas
    return cfg.matrix_clip_sigmas


def sdclip_scales(w: torch.Tensor, bits: int, clip_sigmas: float) -> torch.Tensor:
    """clip_sigmas·std(row)/qmax, as the float16 value that is stored."""
    s = (clip_sigmas * w.float().std(dim=1) / qmax_for(bits)).clamp_min(1e-10)
    return s.half().float()


def gptq_sdclip(w: torch.Tensor, H: torch.Tensor, bits: int, clip_sigmas: float | None, block_size: int = 128,
                damp: float = 0.01, act_order: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """GPTQ of one matrix → (int8 codes, float16 per-row scales). `clip_sigmas` None = max-abs scales."""
    W = w.detach().float().clone()
    rows, cols = W.shape
    scale = sdclip_scales(W, bits, clip_sigmas) if clip_sigmas else row_scales(W, bits)
    H = H.detach().float().to(W.device).clone()
    dead = H.diagonal() == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    H.diagonal().add_(damp * H.diagonal().mean())
    perm = torch.argsort(H.diagonal(), descending=True) if act_order else torch.arange(cols, device=W.device)
    W, H = W[:, perm], H[perm][:, perm]
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    qmax = qmax_for(bits)
    Q = torch.zeros_like(W)
    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        W1, Hi = W[:, i1:i2].clone(), Hinv[i1:i2, i1:i2]
        Err = torch.zeros_like(W1)
        for i in range(i2 - i1):
            col = W1[:, i]
            q = torch.clamp(torch.round(col / scale), -qmax, qmax)
            Q[:, i1 + i] = q
            err = (col - q * scale) / Hi[i, i]
            W1[:, i:] -= err[:, None] * Hi[i, i:][None, :]
            Err[:, i] = err
        W[:, i2:] -= Err @ Hinv[i1:i2, i2:]
    return Q[:, torch.argsort(perm)].to(torch.int8), scale.half()


# --- LQER ----------------------------------------------------------------------------------------
def lqer_factors(err: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The best rank-r approximation of the error as A (rows×r) @ B (r×cols)."""
    U, S, Vh = torch.linalg.svd(err.float(), full_matrices=False)
    r = min(rank, S.numel())
    return (U[:, :r] * S[:r]).contiguous(), Vh[:r].contiguous()


def pack_asym(A: torch.Tensor, B: torch.Tensor, group: int):
    """A → int2 codes and one scale; B → int4 codes with a scale per `group` consecutive values
    (one group per row of B when `group` does not divide its size)."""
    sA = (A.abs().amax().clamp_min(1e-10) / 1.5).half()
    qA = torch.clamp(torch.round(A / sA.float()), -2, 1).to(torch.int8)
    if B.numel() % group:
        group = B.size(1)
    grouped = B.reshape(-1, group)
    sB = (grouped.abs().amax(dim=1).clamp_min(1e-10) / 7.5).half()
    qB = torch.clamp(torch.round(grouped / sB.float()[:, None]), -8, 7).to(torch.int8)
    return qA, sA.reshape(1), qB.view(B.shape), sB


def unpack_asym(qA, sA, qB, sB) -> torch.Tensor:
    """Â @ B̂ from the packed factors (the group size is B's size over the number of scales)."""
    A = qA.float() * sA.float().reshape(())
    grouped = qB.reshape(sB.numel(), -1).float() * sB.float()[:, None]
    return A @ grouped.view(qB.shape)


def fold_lqer(deq: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Add every stored low-rank correction to its matrix and drop the factor entries."""
    out = {k: v for k, v in deq.items() if not k.endswith(LQER_SUFFIXES)}
    for k in deq:
        if k.endswith("::lqer_a"):
            name = k[:-len("::lqer_a")]
            corr = unpack_asym(*(deq[name + s] for s in LQER_SUFFIXES))
            out[name] = (out[name].float() + corr).to(out[name].dtype)
    return out


# --- the record's quantized state ----------------------------------------------------------------
def quantize_record(model: nn.Module, state: dict[str, torch.Tensor], cfg,
                    hessians: dict[str, torch.Tensor] | None = None) -> dict[str, dict]:
    """Matrices above the passthrough size: GPTQ (SDClip, act-order) where a Hessian exists,
    else round-to-nearest on the same scales; embeddings only with `embed_gptq`. Then LQER on
    the `lqer_top_k` largest errors. Small and control tensors pass through as float16."""
    out: dict[str, dict] = {}
    errors: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        t = t.detach()
        bits = tensor_bits(model, name, t, cfg)
        dtype = str(t.dtype).replace("torch.", "")
        if bits is None:
            out[name] = {"kind": "f16", "data": t.cpu().half(), "dtype": dtype}
            continue
        sig = clip_sigmas_for(name, cfg) if cfg.gptq_sdclip else None
        H = (hessians or {}).get(name)
        if H is not None and ("tok_emb" not in name or cfg.embed_gptq):
            q, s = gptq_sdclip(t.to(H.device), H, bits, sig, cfg.gptq_block_size, cfg.gptq_damp, cfg.gptq_act_order)
        else:
            s = (sdclip_scales(t, bits, sig) if sig else row_scales(t, bits)).half()
            q = torch.clamp(torch.round(t.float() / s.float()[:, None]), -qmax_for(bits), qmax_for(bits)).to(torch.int8)
        q, s = q.cpu(), s.cpu()
        out[name] = {"kind": "q", "q": q, "scale": s, "bits": bits, "dtype": dtype}
        errors[name] = t.cpu().float() - q.float() * s.float()[:, None]
    if cfg.lqer_rank > 0:
        top = sorted(errors, key=lambda n: -float(errors[n].norm()))[:cfg.lqer_top_k]
        for name in top:
            packed = pack_asym(*lqer_factors(errors[name], cfg.lqer_rank), cfg.lqer_asym_group)
            for suffix, arr in zip(LQER_SUFFIXES, packed):
                kind = "raw" if arr.dtype == torch.int8 else "f16"
                out[name + suffix] = {"kind": kind, "data": arr, "dtype": str(arr.dtype).replace("torch.", "")}
    return out


def head_input_hessian_hook(model: nn.Module, hessians: dict[str, torch.Tensor]):
    """A forward hook on the head's input (the final hidden state): H_emb = Σ hᵀh, what GPTQ
    of the tied embedding weighs its columns with. Returns the handle."""
    def hook(mod, inp, out):
        x = out.detach().float().reshape(-1, out.size(-1))
        with torch.autocast(x.device.type, enabled=False):
            xtx = x.T @ x
        hessians["tok_emb.weight"] = hessians["tok_emb.weight"] + xtx if "tok_emb.weight" in hessians else xtx
    return model.head_in.register_forward_hook(hook)


# --- byte shuffle --------------------------------------------------------------------------------
def shuffle_bytes(data: bytes, stride: int = 2) -> bytes:
    """Byte k of every `stride`-byte word together (low bytes, then high bytes of the float16
    scales and factors): more alike neighbours for the compressor. Self-describing by magic."""
    a = np.frombuffer(data, dtype=np.uint8)
    return SHUFFLE_MAGIC + bytes([stride]) + b"".join(a[k::stride].tobytes() for k in range(stride))


def unshuffle_bytes(data: bytes) -> bytes:
    if data[:4] != SHUFFLE_MAGIC:
        return data
    stride = data[4]
    a = np.frombuffer(data, dtype=np.uint8, offset=5)
    out = np.empty(len(a), dtype=np.uint8)
    off = 0
    for k in range(stride):
        n = len(range(k, len(a), stride))
        out[k::stride] = a[off:off + n]
        off += n
    return out.tobytes()
