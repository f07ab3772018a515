"""The artifact: per-row symmetric integer quantization (int5/int6/int8), float16 passthrough for
small and control tensors, GPTQ error-compensating rounding, a pickle-free container, and
compression (brotli / lzma / zlib). Sizes are counted from the exact bytes written.
"""

from __future__ import annotations

import json
import lzma
import struct
import zlib

import numpy as np
import torch
import torch.nn as nn

QMAGIC = b"GCQ1"
EMBED_SUFFIXES = ("tok_emb.weight", "table.weight", "ve_table.weight", "lm_head.weight")


def qmax_for(bits: int) -> int:
    return 2 ** (bits - 1) - 1  # int8 ±127, int6 ±31, int5 ±15


def row_scales(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-row scale max|w|/qmax as the float16 value that is stored (what is stored is what is
    used), rounded UP: a scale rounded down would push the row's largest value past ±qmax, where
    clamping makes the error exceed half a step."""
    s = (w.float().abs().amax(dim=1) / qmax_for(bits)).clamp_min(6e-8)  # fp16's smallest step
    h = s.half()
    low = h.float() < s
    if low.any():
        h[low] = torch.nextafter(h[low], torch.full_like(h[low], float("inf")))
    return h.float()


def quantize_rows(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Round-to-nearest: returns (int8 codes, float16 scales)."""
    s = row_scales(w, bits)
    q = torch.clamp(torch.round(w.float() / s[:, None]), -qmax_for(bits), qmax_for(bits))
    return q.to(torch.int8), s.half()


def dequantize_rows(q: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    return q.float() * s.float()[:, None]


def gptq_quantize(w: torch.Tensor, H: torch.Tensor, bits: int, block_size: int = 128,
                  damp: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """GPTQ: quantize columns in order, pushing each column's rounding error onto the columns
    not yet quantized, weighted by the inverse Hessian of the calibration inputs (H = XᵀX)."""
    W = w.detach().float().clone()
    H = H.detach().float().clone()
    cols = W.size(1)
    dead = torch.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    H += damp * torch.diag(H).mean() * torch.eye(cols, device=H.device)
    L = torch.linalg.cholesky(H)
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(L), upper=True)
    s = row_scales(w, bits)
    qmax = qmax_for(bits)
    Q = torch.zeros_like(W)
    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        W1 = W[:, i1:i2].clone()
        Hi = Hinv[i1:i2, i1:i2]
        Err = torch.zeros_like(W1)
        for i in range(i2 - i1):
            col = W1[:, i]
            q = torch.clamp(torch.round(col / s), -qmax, qmax)
            Q[:, i1 + i] = q
            err = (col - q * s) / Hi[i, i]
            W1[:, i:] -= err[:, None] * Hi[i, i:][None, :]
            Err[:, i] = err
        W[:, i2:] -= Err @ Hinv[i1:i2, i2:]
    return Q.to(torch.int8), s.half()


def tensor_bits(model: nn.Module, name: str, t: torch.Tensor, cfg) -> int | None:
    """The integer width a state tensor is stored with, or None for float16 passthrough."""
    if not t.is_floating_point() or t.ndim != 2 or t.numel() <= cfg.passthrough_numel:
        return None
    if name.endswith(EMBED_SUFFIXES):
        return cfg.embed_bits
    mod = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else None
    return getattr(mod, "qat_bits", cfg.quant_bits)


@torch.no_grad()
def collect_hessians(model: nn.Module, batches: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """H = Σ xᵀx of every quantized linear layer's inputs over the calibration batches."""
    from trainer.model import CastedLinear

    hs: dict[str, torch.Tensor] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, CastedLinear):
            def hook(mod, inp, out, key=name + ".weight"):
                x = inp[0].detach().float().reshape(-1, inp[0].size(-1))
                h = hs.get(key)
                hs[key] = x.T @ x if h is None else h + x.T @ x
            hooks.append(m.register_forward_hook(hook))
    try:
        for b in batches:
            model(b)
    finally:
        for h in hooks:
            h.remove()
    return hs


@torch.no_grad()
def self_generate(model: nn.Module, n_seqs: int, seq_len: int, bos_id: int, seed: int,
                  device: torch.device) -> torch.Tensor:
    """Calibration text sampled auto-regressively from the model itself, starting at BOS."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    seqs = torch.full((n_seqs, 1), bos_id, dtype=torch.long, device=device)
    for _ in range(seq_len - 1):
        logits = model(seqs)[:, -1].float()
        probs = torch.softmax(logits, dim=-1).cpu()
        nxt = torch.multinomial(probs, 1, generator=g).to(device)
        seqs = torch.cat((seqs, nxt), dim=1)
    return seqs


def quantize_state(model: nn.Module, state: dict[str, torch.Tensor], cfg,
                   hessians: dict[str, torch.Tensor] | None = None) -> dict[str, dict]:
    """{name: entry}; entry kind "q" (codes + scales + bits) or "f16" (passthrough)."""
    out: dict[str, dict] = {}
    for name, t in state.items():
        t = t.detach().cpu()
        bits = tensor_bits(model, name, t, cfg)
        if bits is None:
            out[name] = {"kind": "f16", "data": t.half(), "dtype": str(t.dtype).replace("torch.", "")}
            continue
        H = (hessians or {}).get(name)
        if H is not None:
            # on the Hessian's device: GPU when training ran there, CPU otherwise
            q, s = gptq_quantize(t.to(H.device), H, bits, cfg.gptq_block_size, cfg.gptq_damp)
            q, s = q.cpu(), s.cpu()
        else:
            q, s = quantize_rows(t, bits)
        out[name] = {"kind": "q", "q": q, "scale": s, "bits": bits, "dtype": str(t.dtype).replace("torch.", "")}
    return out


def dequantize_state(qstate: dict[str, dict]) -> dict[str, torch.Tensor]:
    out = {}
    for name, e in qstate.items():
        dt = getattr(torch, e["dtype"])
        out[name] = (dequantize_rows(e["q"], e["scale"]) if e["kind"] == "q" else e["data"].float()).to(dt)
    return out


def serialize(qstate: dict[str, dict]) -> bytes:
    """A pickle-free container: MAGIC, header length, JSON header, then the raw arrays."""
    entries, blobs, off = [], [], 0
    for name, e in qstate.items():
        if e["kind"] == "q":
            arrays = [("q", e["q"].numpy().astype(np.int8)), ("scale", e["scale"].numpy().astype("<f2"))]
        else:
            arrays = [("data", e["data"].numpy().astype("<f2"))]
        rec = {"name": name, "kind": e["kind"], "dtype": e["dtype"], "bits": e.get("bits")}
        for key, a in arrays:
            b = a.tobytes()
            rec[key] = {"offset": off, "nbytes": len(b), "shape": list(a.shape), "np": a.dtype.str}
            blobs.append(b)
            off += len(b)
        entries.append(rec)
    header = json.dumps({"format": 1, "tensors": entries}, separators=(",", ":")).encode()
    return QMAGIC + struct.pack("<I", len(header)) + header + b"".join(blobs)


def deserialize(raw: bytes) -> dict[str, dict]:
    if raw[:4] != QMAGIC:
        raise ValueError("not a golfcheck quantized model (magic mismatch)")
    (hlen,) = struct.unpack("<I", raw[4:8])
    header = json.loads(raw[8:8 + hlen])
    base = 8 + hlen
    out = {}
    for rec in header["tensors"]:
        e = {"kind": rec["kind"], "dtype": rec["dtype"]}
        if rec.get("bits") is not None:
            e["bits"] = rec["bits"]
        for key in ("q", "scale", "data"):
            if key in rec:
                r = rec[key]
                a = np.frombuffer(raw, dtype=np.dtype(r["np"]), count=int(np.prod(r["shape"], dtype=np.int64)),
                                  offset=base + r["offset"]).reshape(r["shape"])
                e[key] = torch.from_numpy(a.copy())
        out[rec["name"]] = e
    return out


def compress(data: bytes, method: str, level: int) -> bytes:
    if method == "brotli":
        import brotli

        return brotli.compress(data, quality=min(level, 11))
    if method == "lzma":
        return lzma.compress(data, preset=min(level, 9))
    if method == "zlib":
        return zlib.compress(data, min(level, 9))
    raise ValueError(f"unknown compressor {method!r}")


def decompress(data: bytes, method: str) -> bytes:
    if method == "brotli":
        import brotli

        return brotli.decompress(data)
    if method == "lzma":
        return lzma.decompress(data)
    if method == "zlib":
        return zlib.decompress(data)
    raise ValueError(f"unknown compressor {method!r}")


def label(cfg) -> str:
    """How the log names the serialized model, e.g. `int6+brotli`, `int5/int6+lzma`."""
    bits = sorted({cfg.quant_bits} | ({5} if cfg.int5_layers else set()))
    return "/".join(f"int{b}" for b in bits) + ("-gptq" if cfg.gptq_enabled else "") + "+" + cfg.compressor
