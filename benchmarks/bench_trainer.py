"""Trainer benchmark (not a test): the costs the gate budgets for, at record scale, on this CPU.

  export    proteus-size model (11x512, vocab 1024): per-row int6/int8 quantization, the container,
            brotli-11 and lzma-9, compressed bytes and seconds (random weights compress worse
            than trained ones, so the bytes are an upper bound)
  gptq      one 512x1536 MLP matrix with a 1536-dim Hessian, GPTQ vs round-to-nearest time
  plans     sliding-window plan and score-first ledger proof over a 62,021,846-token val stream
  step      tiny-preset training step time
  baseline  the official int8 export (quantize, zlib 9) of the 17M-parameter baseline; its counted code
  pergroup  record-size state (11x512, vocab 8192, SDClip int6 / int7 embedding / LQER) of synthetic
            Gaussian rows, with and without a spread of column scales: brotli-11 after the record's
            byte shuffle vs compressor=pergroup, bytes and seconds (no trained weights here)

    .venv/bin/python benchmarks/bench_trainer.py [--skip-export] [--skip-pergroup]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer.bundle import export_code  # noqa: E402
from trainer.config import resolve_config  # noqa: E402
from trainer.eval import Ledger, sliding_windows  # noqa: E402
from trainer.model import GPT, count_parameters  # noqa: E402
from trainer.optim import Optimizers  # noqa: E402
from trainer.quant import compress, gptq_quantize, quantize_rows, quantize_state, serialize  # noqa: E402

VAL_TOKENS = 62_021_846


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def synthetic_record_state(column_spread: float) -> tuple[bytes, int]:
    """The record preset's quantized container for Gaussian weights: rows with log-normal
    scales (sigma 0.3), columns scaled by exp(column_spread * z) (0 = every column alike)."""
    cfg = resolve_config("record", use_env=False)[0]
    torch.manual_seed(0)
    m = GPT(cfg)
    g = torch.Generator().manual_seed(1)
    state = m.state_dict()
    for name, t in state.items():
        if t.ndim == 2 and t.numel() > cfg.passthrough_numel:
            w = torch.randn(t.shape, generator=g) * torch.exp(0.3 * torch.randn(t.shape[0], 1, generator=g))
            state[name] = 0.02 * w * torch.exp(column_spread * torch.randn(1, t.shape[1], generator=g))
    return serialize(quantize_state(m, state, cfg)), count_parameters(m)


def pergroup_figures(fig: dict, column_spread: float) -> None:
    from trainer.gptq import shuffle_bytes

    raw, params = synthetic_record_state(column_spread)
    tag = f"record_synthetic_colspread{column_spread:g}"
    fig[f"{tag}_params"], fig[f"{tag}_container_bytes"] = params, len(raw)
    blob, fig[f"{tag}_brotli_shuffle_s"] = timed(lambda: compress(shuffle_bytes(raw), "brotli", 11))
    fig[f"{tag}_brotli_shuffle_bytes"] = len(blob)
    blob, fig[f"{tag}_pergroup_s"] = timed(lambda: compress(raw, "pergroup", 11))
    fig[f"{tag}_pergroup_bytes"] = len(blob)
    from trainer.pergroup import describe_pergroup

    chosen: dict[str, int] = {}
    for s in describe_pergroup(blob):
        key = f"{s['codec']} {s['layout']}"
        chosen[key] = chosen.get(key, 0) + s["raw"]
    fig[f"{tag}_pergroup_raw_bytes_by_choice"] = chosen
    print(f"{tag}: brotli+shuffle {fig[f'{tag}_brotli_shuffle_bytes']:,} B, pergroup {len(blob):,} B", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-export", action="store_true")
    ap.add_argument("--skip-pergroup", action="store_true")
    args = ap.parse_args()
    fig: dict = {}
    if not args.skip_pergroup:
        for spread in (0.0, 0.5):
            pergroup_figures(fig, spread)
    if not args.skip_export:
        cfg = resolve_config("proteus", use_env=False)[0]
        torch.manual_seed(0)
        m = GPT(cfg)
        fig["proteus_params"] = count_parameters(m)
        qs, fig["quantize_s"] = timed(lambda: quantize_state(m, m.state_dict(), cfg))
        raw, fig["serialize_s"] = timed(lambda: serialize(qs))
        fig["serialized_bytes"] = len(raw)
        for method, level in (("brotli", 11), ("lzma", 9)):
            blob, fig[f"{method}_s"] = timed(lambda: compress(raw, method, level))
            fig[f"{method}_bytes"] = len(blob)
        # the baseline's official int8 export (percentile clip per row) + zlib 9, and its counted code
        base = resolve_config("baseline", use_env=False)[0]
        mb = GPT(base)
        qb, fig["baseline_int8_quantize_s"] = timed(lambda: quantize_state(mb, mb.state_dict(), base))
        blob, fig["baseline_zlib9_s"] = timed(lambda: compress(serialize(qb), "zlib", 9))
        fig["baseline_artifact_bytes"] = len(blob)
        code, fig["baseline_export_code_s"] = timed(lambda: export_code(base))
        fig["baseline_code_bytes"] = len(code.encode("utf-8"))
    g = torch.Generator().manual_seed(0)
    W = torch.randn(512, 1536, generator=g) * 0.02
    X = torch.randn(4096, 1536, generator=g)
    H = X.T @ X
    _, fig["gptq_512x1536_s"] = timed(lambda: gptq_quantize(W, H, 6, 128))
    _, fig["rtn_512x1536_s"] = timed(lambda: quantize_rows(W, 6))
    ws, fig["sliding_plan_s"] = timed(lambda: sliding_windows(1, VAL_TOKENS, 2048, 64))
    fig["sliding_windows"] = len(ws)
    led = Ledger(VAL_TOKENS)
    chunk = 32768
    for c, lo in enumerate(range(1, VAL_TOKENS, chunk)):
        hi = min(lo + chunk, VAL_TOKENS)
        led.scored(c, [(lo, hi)])
        if hi < VAL_TOKENS:
            for e in range(3):
                led.step(c, e, [(lo - 1, hi - 1)], [(lo, hi)])
    problems, fig["ledger_verify_s"] = timed(led.verify)
    fig["ledger_events"] = len(led.events)
    assert problems == []
    cfg = resolve_config("tiny", use_env=False)[0]
    m = GPT(cfg)
    opt = Optimizers(m, cfg)
    x = torch.randint(0, cfg.vocab_size, (cfg.train_batch_tokens // cfg.train_seq_len, cfg.train_seq_len))
    times = []
    for i in range(8):
        t = time.perf_counter()
        m(x, torch.roll(x, -1, 1)).backward()
        opt.step(i, 1.0)
        opt.zero_grad()
        times.append(time.perf_counter() - t)
    fig["tiny_step_ms_median"] = round(sorted(times[2:])[len(times[2:]) // 2] * 1000, 1)
    for k, v in fig.items():
        print(f"{k:>24}: {v:,.3f}" if isinstance(v, float) else f"{k:>24}: {v:,}")
    print(json.dumps(fig))
    return 0


if __name__ == "__main__":
    sys.exit(main())
