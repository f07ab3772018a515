"""GPU validation of the record preset (run by benchmarks/gpu_validate.sh; not a test).

On one CUDA GPU: the `record` preset (11x512, vocab 8192, 35,945,671 parameters) trains for a
fixed number of steps on synthetic tokens (documents of random length, BOS-separated) at one
rank's share of the record's batch (786,432 / 8 = 98,304 tokens per step), first with the loop
off, then with layers 3-5 looped (as after 35 % of a record run). It prints, next to the
record's own logged figures (2026-04-29, 8xH100, per GPU):

  compile (priming) time, ms/step, tokens/s per GPU, peak memory allocated/reserved,
  which kernels ran (FlashAttention varlen or SDPA, Triton fused CE or PyTorch),
  and two kernel checks: fused softcapped CE vs the PyTorch reference, varlen attention vs masked SDPA.

    python benchmarks/gpu_validate.py [--steps 30] [--prime 3] [--json out.json]
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

from trainer.config import resolve_config  # noqa: E402
from trainer.fast import (document_attention, document_mask, flash_varlen_available, maybe_compile,  # noqa: E402
                          softcapped_ce_reference, softcapped_cross_entropy, triton_available)
from trainer.model import GPT, autocast_context, count_parameters  # noqa: E402
from trainer.optim import Optimizers  # noqa: E402

# From the record's logs (train_seed42_rerun_gptq8s.log, 8xH100): tok/s over all 8 GPUs before
# the loop (500..2000 steps) and at the end (4500 steps, loop on since step 2183); peak memory.
RECORD = {"tok_s_per_gpu_loop_off": 8_291_367 / 8, "tok_s_per_gpu_loop_on_avg": 6_671_956 / 8,
          "peak_alloc_mib": 41_723, "peak_reserved_mib": 47_090, "model_params": 35_945_671}


def synthetic_batch(rows: int, T: int, vocab: int, bos: int, gen: torch.Generator, device):
    x = torch.randint(2, vocab, (rows, T + 1), generator=gen)
    starts = torch.rand(rows, T + 1, generator=gen) < 1 / 700  # documents of ~700 tokens
    x[starts] = bos
    x[:, 0] = bos
    return x[:, :-1].to(device), x[:, 1:].to(device)


def kernel_checks(device) -> dict:
    out = {"flash_varlen": flash_varlen_available(), "triton_fused_ce": triton_available()}
    g = torch.Generator().manual_seed(0)
    z = (torch.randn(256, 8192, generator=g) * 20).to(device, torch.bfloat16).requires_grad_()
    t = torch.randint(0, 8192, (256,), generator=g).to(device)
    a = softcapped_cross_entropy(z, t, 30.0)
    a.backward()
    ga, z.grad = z.grad.clone(), None
    b = softcapped_ce_reference(z, t, 30.0)
    b.backward()
    out["fused_ce_abs_diff"] = abs(float(a) - float(b))
    out["fused_ce_grad_max_diff"] = float((ga.float() - z.grad.float()).abs().max())
    q, k, v = (torch.randn(2, h, 256, 64, generator=g).to(device, torch.bfloat16) for h in (8, 4, 4))
    docs = torch.cumsum((torch.rand(2, 256, generator=g) < 0.02).int(), 1).to(device)
    fa = document_attention(q, k, v, docs)
    ref = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), attn_mask=document_mask(docs))
    out["varlen_attn_max_diff"] = float((fa.float() - ref.float()).abs().max())
    return out


def run_steps(model, fwd, opt, cfg, n: int, rows: int, gen, device) -> float:
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for s in range(n):
        x, y = synthetic_batch(rows, cfg.train_seq_len, cfg.vocab_size, cfg.bos_id, gen, device)
        with autocast_context(device):
            loss = fwd(x, y)
        loss.backward()
        opt.step(s, 1.0)
        opt.zero_grad()
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--prime", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=786_432 // 8, help="tokens per step on this GPU")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("gpu_validate: no CUDA device; nothing to validate here")
        return 2
    device = torch.device("cuda", 0)
    torch.backends.cuda.matmul.allow_tf32 = True
    cfg = resolve_config("record", sets={"train_batch_tokens": str(a.tokens), "grad_accum_steps": "1",
                                         "device": "cuda"}, use_env=False)[0]
    rows = a.tokens // cfg.train_seq_len
    report = {"gpu": torch.cuda.get_device_name(device), "torch": torch.__version__, "tokens_per_step": a.tokens,
              "kernels": kernel_checks(device)}
    torch.manual_seed(cfg.seed)
    model = GPT(cfg).to(device)
    report["model_params"] = count_parameters(model)
    fwd = maybe_compile(model, cfg, device)
    opt = Optimizers(model, cfg)
    gen = torch.Generator().manual_seed(1)
    torch.cuda.reset_peak_memory_stats(device)
    for loop in (False, True):
        model.recur_active = loop
        tag = "loop_on" if loop else "loop_off"
        report[f"prime_s_{tag}"] = run_steps(model, fwd, opt, cfg, a.prime, rows, gen, device)  # compiles
        secs = run_steps(model, fwd, opt, cfg, a.steps, rows, gen, device)
        report[f"ms_per_step_{tag}"] = 1000 * secs / a.steps
        report[f"tok_s_{tag}"] = a.tokens * a.steps / secs
    report["peak_alloc_mib"] = torch.cuda.max_memory_allocated(device) >> 20
    report["peak_reserved_mib"] = torch.cuda.max_memory_reserved(device) >> 20
    report["record"] = RECORD
    print(json.dumps(report, indent=1))
    print(f"\nrecord preset on {report['gpu']}, {a.tokens:,} tokens/step (one rank of 8), compile={cfg.compile}")
    print(f"  params            {report['model_params']:,} (record {RECORD['model_params']:,})")
    print(f"  compile+prime     loop off {report['prime_s_loop_off']:.1f} s, loop on {report['prime_s_loop_on']:.1f} s")
    for tag, rec in (("loop_off", "tok_s_per_gpu_loop_off"), ("loop_on", "tok_s_per_gpu_loop_on_avg")):
        print(f"  {tag:<9} {report[f'ms_per_step_{tag}']:8.1f} ms/step {report[f'tok_s_{tag}']:>12,.0f} tok/s"
              f"   (record, per GPU: {RECORD[rec]:,.0f} tok/s)")
    print(f"  peak memory       {report['peak_alloc_mib']:,} / {report['peak_reserved_mib']:,} MiB alloc/reserved"
          f"   (record: {RECORD['peak_alloc_mib']:,} / {RECORD['peak_reserved_mib']:,})")
    k = report["kernels"]
    print(f"  kernels           flash varlen: {k['flash_varlen']}, triton fused CE: {k['triton_fused_ce']}; "
          f"CE |Δ| {k['fused_ce_abs_diff']:.2e}, grad {k['fused_ce_grad_max_diff']:.2e}; "
          f"varlen attn {k['varlen_attn_max_diff']:.2e}")
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
