"""Builds synthetic record folders for the submission-audit tests and the benchmark.

`make_record(tmp, **options)` writes README.md, submission.json, train_gpt.py and one log per seed
in the `step:N/M … train_time:…ms step_avg:…ms` dialect, with sizes that add up and per-seed values
that the claims repeat exactly, so the default record passes every rule. Each option breaks (or
changes) one thing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

BYTES_PER_TOKEN = 2.436

GOOD_CODE = '''\
"""Reference record: score-first TTT, brotli-11 artifact."""
import os
import brotli
import torch


class Hyperparameters:
    seed = int(os.environ.get("SEED", 1337))
    iterations = int(os.environ.get("ITERATIONS", 20000))
    max_wallclock_seconds = float(os.environ.get("MAX_WALLCLOCK_SECONDS", 600.0))
    gptq_reserve_seconds = float(os.environ.get("GPTQ_RESERVE_SECONDS", 12.0))
    ttt_enabled = bool(int(os.environ.get("TTT_ENABLED", "1")))
    ttt_lr = float(os.environ.get("TTT_LR", 0.005))
    ema_enabled = bool(int(os.environ.get("EMA_ENABLED", "1")))
    train_files = os.environ.get("TRAIN_FILES", "./data/datasets/fineweb10B_sp1024/fineweb_train_*.bin")
    val_files = os.environ.get("VAL_FILES", "./data/datasets/fineweb10B_sp1024/fineweb_val_*.bin")
    brotli_quality = int(os.environ.get("BROTLI_QUALITY", "11"))
#EXTRA_HP#


def serialize(blob, args):
    return brotli.compress(blob, quality=args.brotli_quality)


def eval_val_ttt(model, chunks, args):
    opt = torch.optim.SGD(model.parameters(), lr=args.ttt_lr)
    total = 0.0
    for chunk in chunks:
#TTT_BODY#
    return total


#EXTRA_FUNCS#


def main():
    args = Hyperparameters()
    train_loader = TokenLoader(args.train_files, args.seed)
    model = train(train_loader, args)
    blob = serialize(model.state_dict(), args)
    if args.ttt_enabled:
        eval_val_ttt(model, load_chunks(args.val_files), args)


if __name__ == "__main__":
    main()
'''

SCORE = '''\
        with torch.no_grad():
            loss = model(chunk)
            total += float(loss)
'''
TRAIN = '''\
        for _ in range(3):
            opt.zero_grad()
            train_loss = model(chunk)
            train_loss.backward()
            opt.step()
'''

GOOD_README = """# Record: sp1024 baseline + legal score-first TTT

**val_bpb = {mean:.5f}** (3-seed mean)

## Method
- Legal score-first TTT (SGD, 3 epochs per chunk): each chunk is scored under `torch.no_grad()`
  before any update on it.
- EMA of the weights.
- GPTQ int6 + Brotli-11 compression.
- No SLOT, no n-gram cache.

## Reproduction
```bash
SEED=42 torchrun --standalone --nproc_per_node=8 train_gpt.py
```
"""


def ttt_code(order: str = "score-first") -> str:
    body = SCORE + TRAIN if order == "score-first" else TRAIN + SCORE
    return GOOD_CODE.replace("#TTT_BODY#\n", body)


def code_with(*, order="score-first", extra_hp="", extra_funcs="", replace=None) -> str:
    c = ttt_code(order).replace("#EXTRA_HP#", extra_hp).replace("#EXTRA_FUNCS#", extra_funcs)
    for a, b in (replace or {}).items():
        assert a in c, a
        c = c.replace(a, b)
    return c


def log_text(*, seed: int, value: float, code_bytes: int, model_bytes: int = 15_500_000, steps: int = 6500,
             step_ms: float = 90.0, train_ms: float | None = None, reserve_s: float | None = 12.0,
             post_work: list[str] | None = None, total_bytes: int | None = None, dup_label: bool = False,
             eval_ms: tuple[int, int, int] = (20_000, 90_000, 300_000), ttt: bool = True,
             final: bool = True, extra_lines: list[str] | None = None, compressor: str = "brotli",
             val_tokens: int = 62_021_632, content_seed: int | None = None, code_compressed: int | None = None,
             tokenizer_line: str = "val_bpb:enabled tokenizer_kind=sentencepiece "
                                   "tokenizer_path=./data/tokenizers/fineweb_1024_bpe.model") -> str:
    if train_ms is None:
        train_ms = min(steps * step_ms, 588_000.0 if reserve_s else 599_900.0)
    rt, sl = value + 0.02, value + 0.002
    nats = lambda bpb: bpb * math.log(2) * BYTES_PER_TOKEN  # noqa: E731 - loss consistent with the BPB
    loss = nats(value)
    lines = [
        "logs/run.txt",
        tokenizer_line,
        "train_loader:dataset:fineweb10B_sp1024 train_shards:80",
        f"val_loader:shards pattern=./data/datasets/fineweb10B_sp1024/fineweb_val_*.bin tokens:{val_tokens}",
        "model_params:26911580",
        "world_size:8 grad_accum_steps:1",
        f"train_batch_tokens:786432 train_seq_len:2048 iterations:20000 max_wallclock_seconds:600.000",
        f"seed:{seed if content_seed is None else content_seed}",
        f"ttt_enabled:{ttt}",
    ]
    if reserve_s:
        lines.append(f"gptq:reserving {reserve_s:g}s, effective={int(600_000 - reserve_s * 1000)}ms")
    for s in (1, 2, 100, steps // 2):
        lines.append(f"step:{s}/20000 train_loss:3.0000 train_time:{int(s * step_ms)}ms step_avg:{step_ms:.2f}ms")
    lines += extra_lines or []
    lines += [
        f"step:{steps}/20000 val_loss:{nats(value + 0.02):.4f} val_bpb:{value + 0.02:.4f} train_time:{int(train_ms)}ms "
        f"step_avg:{step_ms:.2f}ms",
        f"stopping_early: wallclock_cap train_time:{int(train_ms)}ms step:{steps}/20000",
        "peak memory allocated: 21655 MiB reserved: 22246 MiB",
        "ema:applying EMA weights",
    ]
    lines += post_work if post_work is not None else ["GPTQ:collected 67 Hessians in 11.5s"]
    if total_bytes is None:
        total_bytes = code_bytes + model_bytes
    code_lines = [f"Code size: {code_bytes} bytes"] if code_compressed is None else [
        f"Code size (uncompressed): {code_bytes} bytes", f"Code size (compressed): {code_compressed} bytes"]
    if total_bytes is None and code_compressed is not None:
        total_bytes = code_compressed + model_bytes
    lines += [
        "Serialized model: 105994166 bytes",
        *code_lines,
        f"Serialized model int6+{compressor}: {model_bytes} bytes",
        f"Total submission size int6+{compressor}: {total_bytes} bytes",
    ]
    if final:
        lines += [
            f"final_int6_roundtrip val_loss:{nats(rt):.4f} val_bpb:{rt:.4f} eval_time:{eval_ms[0]}ms",
            f"final_int6_roundtrip_exact val_loss:{nats(rt):.8f} val_bpb:{rt:.8f}",
            f"final_int6_sliding_window val_loss:{nats(sl):.4f} val_bpb:{sl:.4f} stride:64 eval_time:{eval_ms[1]}ms",
            f"final_int6_sliding_window_exact val_loss:{nats(sl):.8f} val_bpb:{sl:.8f}",
        ]
        if dup_label:
            lines.append(f"final_int8_zlib_roundtrip_exact val_loss:{nats(sl):.8f} val_bpb:{sl:.8f}")
        if ttt:
            lines += [f"ttt_sliding:start chunks=1863 chunk_tokens=32768 ttt_lr=0.005 ttt_epochs=3"]
            lines += [f"  ttt_chunk [{i}/1863] bpb={value:.6f} time={i * 0.2:.1f}s" for i in (1, 11, 1863)]
            lines += [f"legal_ttt val_loss:{loss:.4f} val_bpb:{value:.4f} eval_time:{eval_ms[2]}ms",
                      f"legal_ttt_exact val_loss:{loss:.8f} val_bpb:{value:.8f}"]
    return "\n".join(lines) + "\n"


def make_record(parent: Path, name: str = "2026-05-01_test_record", *, seeds=(42, 1337, 2026),
                values=(1.08010, 1.08050, 1.08090), code: str | None = None, ship_code: bool = True,
                readme: str | None = None, submission: dict | None = None, drop_keys=(),
                log_options: dict | None = None, per_seed: dict | None = None, missing_logs=(),
                extra_files: dict | None = None, code_bytes_override: int | None = None,
                ttt: bool = True) -> Path:
    """Write a record folder; `per_seed={seed: {log option: value}}` changes one seed's log."""
    d = Path(parent) / name
    d.mkdir(parents=True, exist_ok=True)
    code = code if code is not None else code_with()
    code_bytes = len(code.encode())
    if ship_code:
        (d / "train_gpt.py").write_text(code, encoding="utf-8")
    logged_code = code_bytes_override if code_bytes_override is not None else code_bytes
    vals = list(values)
    model_bytes = 15_500_000
    seed_results = {}
    for seed, v in zip(seeds, vals):
        opts = {"model_bytes": model_bytes, "ttt": ttt, **(log_options or {}), **((per_seed or {}).get(seed, {}))}
        v = opts.pop("value", v)
        if seed not in missing_logs:
            (d / f"train_seed{seed}.log").write_text(
                log_text(seed=seed, value=v, code_bytes=logged_code, **opts), encoding="utf-8")
        score = v if ttt else v + 0.002
        seed_results[str(seed)] = {"val_bpb": round(score, 8), "bytes_total": logged_code + opts["model_bytes"],
                                   "steps": opts.get("steps", 6500),
                                   "step_avg_ms": opts.get("step_ms", 90.0)}
    scores = [r["val_bpb"] for r in seed_results.values()]
    mean = sum(scores) / len(scores)
    std = math.sqrt(sum((x - mean) ** 2 for x in scores) / (len(scores) - 1)) if len(scores) > 1 else 0.0
    sub = {"name": "Test record", "author": "Test Author", "github_id": "tester", "date": "2026-05-01",
           "track": "10min_16mb", "val_bpb": round(mean, 8), "val_bpb_std": round(std, 8),
           "seeds": list(seeds), "seed_results": seed_results,
           "compliance": {"no_slot": True, "no_ngram_cache": True, "score_first_ttt": True}}
    sub.update(submission or {})
    for k in drop_keys:
        sub.pop(k, None)
    (d / "submission.json").write_text(json.dumps(sub, indent=2), encoding="utf-8")
    (d / "README.md").write_text(readme if readme is not None else GOOD_README.format(mean=mean), encoding="utf-8")
    for rel, content in (extra_files or {}).items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, encoding="utf-8")
    return d
