"""The artifact: per-row symmetric integer quantization (int5/int6/int8), float16 passthrough for
small and control tensors, GPTQ error-compensating rounding, a pickle-free container, and
compression (brotli / lzma / zlib, or per group: trainer.pergroup). Sizes are counted from the exact bytes written.
"""

from __future__ import annotations

import json
import lzma
import os
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
    return gptq_quantize_many([(w, H, bits)], block_size, damp)[0]


GPTQ_BATCH_ELEMENTS = 1 << 26  # float32 elements of stacked weights per batched GPTQ pass (256 MiB)


def gptq_quantize_many(jobs: list[tuple[torch.Tensor, torch.Tensor, int]], block_size: int = 128,
                       damp: float = 0.01) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """GPTQ for many matrices at once: matrices with the same column count are stacked (rows
    zero-padded) and quantized together, column by column. Rows are independent in GPTQ and each
    matrix keeps its own Hessian, so this is the per-matrix algorithm, with one kernel launch per
    column step for the whole stack instead of one per matrix (on a GPU the per-matrix loop is
    launch-bound: ~40 s for the 11-layer model on an H100, over the 12 s export reserve)."""
    out: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(jobs)
    by_cols: dict[tuple[int, torch.device], list[int]] = {}
    for j, (w, H, _) in enumerate(jobs):
        by_cols.setdefault((w.size(1), H.device), []).append(j)
    for (cols, _), idx in by_cols.items():
        idx.sort(key=lambda j: jobs[j][0].size(0))
        group: list[int] = []
        for j in idx:  # chunks that bound the padded stack's size
            rows = jobs[j][0].size(0)
            if group and (len(group) + 1) * rows * cols > GPTQ_BATCH_ELEMENTS:
                _gptq_stack(jobs, group, block_size, damp, out)
                group = []
            group.append(j)
        if group:
            _gptq_stack(jobs, group, block_size, damp, out)
    return out  # type: ignore[return-value]


def _gptq_stack(jobs, group: list[int], block_size: int, damp: float, out: list) -> None:
    dev = jobs[group[0]][1].device
    M, cols = len(group), jobs[group[0]][0].size(1)
    R = max(jobs[j][0].size(0) for j in group)
    W = torch.zeros(M, R, cols, device=dev)
    S = torch.ones(M, R, device=dev)  # padding rows: weight 0 → code 0, error 0
    qmax = torch.tensor([float(qmax_for(jobs[j][2])) for j in group], device=dev)[:, None]
    scales = []
    for m, j in enumerate(group):
        w, _, bits = jobs[j]
        w = w.detach().to(dev)
        W[m, :w.size(0)] = w.float()
        scales.append(row_scales(w, bits))
        S[m, :w.size(0)] = scales[-1]
    H = torch.stack([jobs[j][1].detach().to(dev).float() for j in group])
    diag = H.diagonal(dim1=-2, dim2=-1)  # a view: edits below change H
    dead = diag == 0
    diag.copy_(torch.where(dead, torch.ones_like(diag), diag))
    W.masked_fill_(dead[:, None, :], 0.0)
    diag.add_(damp * diag.mean(dim=-1, keepdim=True))
    L = torch.linalg.cholesky(H)
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(L), upper=True)
    Q = torch.zeros_like(W)
    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        W1 = W[:, :, i1:i2].clone()
        Hi = Hinv[:, i1:i2, i1:i2]
        Err = torch.zeros_like(W1)
        for i in range(i2 - i1):
            col = W1[:, :, i]
            q = torch.minimum(torch.maximum(torch.round(col / S), -qmax), qmax)
            Q[:, :, i1 + i] = q
            err = (col - q * S) / Hi[:, i, i][:, None]
            W1[:, :, i:] -= err[:, :, None] * Hi[:, i, i:][:, None, :]
            Err[:, :, i] = err
        W[:, :, i2:] -= Err @ Hinv[:, i1:i2, i2:]
    for m, j in enumerate(group):
        rows = jobs[j][0].size(0)
        out[j] = (Q[m, :rows].to(torch.int8), scales[m].half())


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
                # Calibration runs under bf16 autocast on CUDA, which would run this matmul (and
                # accumulate H) in bf16: keep the Hessian in float32.
                with torch.autocast(x.device.type, enabled=False):
                    xtx = x.T @ x
                h = hs.get(key)
                hs[key] = xtx if h is None else h + xtx
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


# The official baseline's int8 export (`quant_format = "int8_clean"`), rule for rule as in the
# challenge's train_gpt.py (checked against ../shared/reference/train_gpt_official.py by
# tests/test_trainer_parity.py: same codes, scales and dequantized weights).
INT8_CLIP_Q = 99.99984 / 100.0  # each row clipped at this quantile of |w|
INT8_SCALE_FLOOR = 1.0 / 127.0  # per-row scales never go below this
QUANTILE_MAX_ELEMENTS = 1 << 24  # torch.quantile refuses larger inputs: rows are taken in chunks


def _row_quantiles(t32: torch.Tensor, q: float) -> torch.Tensor:
    rows = max(1, QUANTILE_MAX_ELEMENTS // max(t32.size(1), 1))
    return torch.cat([torch.quantile(t32[i:i + rows].abs(), q, dim=1) for i in range(0, t32.size(0), rows)])


def int8_clean_tensor(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Matrices: per-row clip at the quantile, scale clip/127 floored at 1/127 (stored float16,
    the codes computed with the float32 scale). Other shapes: one float32 scale, no floor."""
    t32 = t.float()
    if t32.ndim == 2:
        clip = _row_quantiles(t32, INT8_CLIP_Q) if t32.numel() else torch.empty(t32.size(0))
        clipped = torch.maximum(torch.minimum(t32, clip[:, None]), -clip[:, None])
        scale = (clip / 127.0).clamp_min(INT8_SCALE_FLOOR)
        q = torch.clamp(torch.round(clipped / scale[:, None]), -127, 127).to(torch.int8)
        return q.contiguous(), scale.half().contiguous()
    clip = float(torch.quantile(t32.abs().flatten(), INT8_CLIP_Q)) if t32.numel() else 0.0
    scale = torch.tensor(clip / 127.0 if clip > 0 else 1.0, dtype=torch.float32)
    q = torch.clamp(torch.round(torch.clamp(t32, -clip, clip) / scale), -127, 127).to(torch.int8)
    return q.contiguous(), scale


def _patterns(text: str) -> tuple[str, ...]:
    return tuple(p for p in str(text).split(",") if p)


def quantize_int8_clean(state: dict[str, torch.Tensor], cfg) -> dict[str, dict]:
    """Non-float tensors pass through exactly; float tensors of ≤ passthrough_numel elements pass
    through (float32 when the name matches a keep-float pattern, else float16 remembering the
    original dtype); larger float tensors become int8."""
    keep32 = _patterns(cfg.int8_keep_float_fp32_name_patterns)
    out: dict[str, dict] = {}
    for name, t in state.items():
        t = t.detach().cpu().contiguous()
        dtype = str(t.dtype).replace("torch.", "")
        if not t.is_floating_point():
            out[name] = {"kind": "raw", "data": t, "dtype": dtype}
        elif t.numel() <= cfg.passthrough_numel:
            if any(p in name for p in keep32):
                out[name] = {"kind": "f32", "data": t.float(), "dtype": "float32"}
            elif t.dtype in (torch.float32, torch.bfloat16):
                out[name] = {"kind": "f16", "data": t.half(), "dtype": dtype}
            else:
                out[name] = {"kind": "raw", "data": t, "dtype": dtype}
        else:
            q, s = int8_clean_tensor(t)
            out[name] = {"kind": "q" if s.ndim else "q1", "q": q, "scale": s, "bits": 8, "dtype": dtype}
    return out


def quantize_state(model: nn.Module, state: dict[str, torch.Tensor], cfg,
                   hessians: dict[str, torch.Tensor] | None = None) -> dict[str, dict]:
    """{name: entry}; entry kind "q" (codes + per-row scales + bits), "q1" (codes + one scale),
    "f16" / "f32" (float passthrough) or "raw" (exact passthrough)."""
    if cfg.quant_format == "int8_clean":
        return quantize_int8_clean(state, cfg)
    from trainer.gptq import quantize_record, record_quant_enabled  # the 2026-04-29 record's export

    if record_quant_enabled(cfg):
        return quantize_record(model, state, cfg, hessians)
    out: dict[str, dict] = {}
    gptq: list[tuple[str, torch.Tensor, torch.Tensor, int]] = []
    for name, t in state.items():
        t = t.detach()
        bits = tensor_bits(model, name, t, cfg)
        dtype = str(t.dtype).replace("torch.", "")
        if bits is None:
            out[name] = {"kind": "f16", "data": t.cpu().half(), "dtype": dtype}
            continue
        H = (hessians or {}).get(name)
        if H is not None:  # on the Hessian's device: GPU when training ran there, CPU otherwise
            gptq.append((name, t.to(H.device), H, bits))
            out[name] = {"kind": "q", "bits": bits, "dtype": dtype}  # codes filled in below
            continue
        q, s = quantize_rows(t.cpu(), bits)
        out[name] = {"kind": "q", "q": q, "scale": s, "bits": bits, "dtype": dtype}
    if gptq:
        done = gptq_quantize_many([(w, H, bits) for _, w, H, bits in gptq], cfg.gptq_block_size, cfg.gptq_damp)
        for (name, *_), (q, s) in zip(gptq, done):
            out[name]["q"], out[name]["scale"] = q.cpu(), s.cpu()
    return out


def dequantize_state(qstate: dict[str, dict]) -> dict[str, torch.Tensor]:
    out = {}
    for name, e in qstate.items():
        dt = getattr(torch, e["dtype"])
        if e["kind"] == "raw":
            out[name] = e["data"]
        elif e["kind"] == "q1":
            out[name] = (e["q"].float() * float(e["scale"])).to(dt).contiguous()
        elif e["kind"] == "q":
            out[name] = dequantize_rows(e["q"], e["scale"]).to(dt).contiguous()
        else:
            out[name] = e["data"].float().to(dt)
    from trainer.gptq import fold_lqer  # low-rank corrections, when the artifact has them

    return fold_lqer(out)


def serialize(qstate: dict[str, dict]) -> bytes:
    """A pickle-free container: MAGIC, header length, JSON header, then the raw arrays."""
    entries, blobs, off = [], [], 0
    for name, e in qstate.items():
        if e["kind"] in ("q", "q1"):
            arrays = [("q", e["q"].numpy().astype(np.int8)),
                      ("scale", e["scale"].numpy().astype("<f2" if e["kind"] == "q" else "<f4"))]
        else:
            data = e["data"].numpy()
            arrays = [("data", data.astype({"f16": "<f2", "f32": "<f4"}.get(e["kind"], data.dtype.newbyteorder("<"))))]
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
    from trainer.gptq import unshuffle_bytes  # a byte-shuffled container undoes itself

    raw = unshuffle_bytes(raw)
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


BROTLI_FRAMES = b"GCB1"  # brotli in independent frames: magic, u32 count, u32 sizes, the streams
BROTLI_FRAME_BYTES = 1 << 21  # 2 MiB: on int6 codes no larger than one stream (measured), 13 frames for 27 MB


def _brotli_frames(data: bytes, level: int) -> bytes:
    """Brotli at quality 11 runs at ~1 MB/s on one core: 30 s for the 27 MB int6 state of the
    record model, over the 12 s export reserve. Fixed-size frames (so the bytes do not depend on
    the machine) are compressed on all cores at once (brotli releases the GIL)."""
    import brotli
    from concurrent.futures import ThreadPoolExecutor

    parts = [data[i:i + BROTLI_FRAME_BYTES] for i in range(0, len(data), BROTLI_FRAME_BYTES)] or [b""]
    with ThreadPoolExecutor(max_workers=min(len(parts), os.cpu_count() or 1)) as ex:
        streams = list(ex.map(lambda part: brotli.compress(part, quality=min(level, 11)), parts))
    return (BROTLI_FRAMES + struct.pack(f"<I{len(streams)}I", len(streams), *map(len, streams))
            + b"".join(streams))


def _brotli_unframe(data: bytes) -> bytes:
    import brotli

    if data[:4] != BROTLI_FRAMES:
        return brotli.decompress(data)  # one plain stream
    (n,) = struct.unpack_from("<I", data, 4)
    sizes = struct.unpack_from(f"<{n}I", data, 8)
    off, out = 8 + 4 * n, []
    if off + sum(sizes) != len(data):
        raise ValueError("corrupt brotli frames (sizes do not add up to the payload)")
    for k in sizes:
        out.append(brotli.decompress(data[off:off + k]))
        off += k
    return b"".join(out)


def compress(data: bytes, method: str, level: int) -> bytes:
    if method == "pergroup":  # the container's arrays regrouped by role, each group compressed apart
        from trainer.pergroup import pack_pergroup

        return pack_pergroup(data, level)
    if method == "brotli":
        return _brotli_frames(data, level)
    if method == "lzma":
        return lzma.compress(data, preset=min(level, 9))
    if method == "zlib":
        return zlib.compress(data, min(level, 9))
    raise ValueError(f"unknown compressor {method!r}")


def decompress(data: bytes, method: str) -> bytes:
    if method == "pergroup":
        from trainer.pergroup import unpack_pergroup

        return unpack_pergroup(data)
    if method == "brotli":
        return _brotli_unframe(data)
    if method == "lzma":
        return lzma.decompress(data)
    if method == "zlib":
        return zlib.decompress(data)
    raise ValueError(f"unknown compressor {method!r}")


def label(cfg) -> str:
    """How the log names the serialized model, e.g. `int6+brotli`, `int5/int6+lzma`."""
    bits = sorted({cfg.quant_bits} | ({5} if cfg.int5_layers else set()))
    return "/".join(f"int{b}" for b in bits) + ("-gptq" if cfg.gptq_enabled else "") + "+" + cfg.compressor
