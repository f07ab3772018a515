"""What a record ships: the counted single-file `train_gpt.py` (written by `trainer.bundle`)
and the record folder. `stage_record` stages a folder and `publish` moves it into place with
one rename; an existing folder is never touched.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

from trainer.bundle import BundleError, export_code  # noqa: F401 - re-exported: the record's code file
from trainer.config import TrainConfig


def record_config(cfg: TrainConfig, shipped: dict[str, str]) -> TrainConfig:
    """The config as the shipped script should default to it: shipped tokenizer/meta by file name."""
    c = dataclasses.replace(cfg, use_tiny_data=False)
    if "tokenizer" in shipped:
        c.tokenizer_path = shipped["tokenizer"]
    if "meta" in shipped:
        c.meta_path = shipped["meta"]
    return c


def is_custom_tokenizer(cfg: TrainConfig) -> bool:
    """The challenge ships `fineweb_1024_bpe.model`; any other tokenizer travels with the record."""
    return Path(cfg.tokenizer_path).name != "fineweb_1024_bpe.model" if cfg.tokenizer_path else bool(cfg.meta_path)


def shipped_names(cfg: TrainConfig) -> dict[str, str]:
    out = {}
    if is_custom_tokenizer(cfg):
        if cfg.tokenizer_path:
            out["tokenizer"] = Path(cfg.tokenizer_path).name
        if cfg.meta_path:
            out["meta"] = Path(cfg.meta_path).name
    return out


def stage_record(records_dir: Path, run_name: str, files: dict[str, bytes | Path]) -> Path:
    """Write the folder under records_dir/.staging-*/<run_name>; returns its path."""
    records_dir.mkdir(parents=True, exist_ok=True)
    stage_root = Path(tempfile.mkdtemp(prefix=f".staging-{run_name}-", dir=records_dir))
    folder = stage_root / run_name
    folder.mkdir()
    for name, content in files.items():
        dst = folder / name
        if isinstance(content, Path):
            shutil.copyfile(content, dst)
        else:
            dst.write_bytes(content)
    return folder


def publish(staged: Path, records_dir: Path, run_name: str) -> Path:
    """Move the staged folder into place with one rename; never replaces an existing folder."""
    final = records_dir / run_name
    if final.exists():
        raise FileExistsError(final)
    os.rename(staged, final)  # atomic on one filesystem; the staging dir is inside records_dir
    shutil.rmtree(staged.parent, ignore_errors=True)
    return final


def discard(staged: Path) -> None:
    shutil.rmtree(staged.parent, ignore_errors=True)


def readme_text(cfg: TrainConfig, res, run_name: str, code_bytes: int, checks: list) -> str:
    f = res.final
    on = lambda b: "on" if b else "off"  # noqa: E731
    tech = [
        ("GQA attention", f"{cfg.num_heads} heads, {cfg.num_kv_heads} KV heads, head dim {cfg.head_dim}"),
        ("partial RoPE", f"{cfg.rope_dims or cfg.head_dim} of {cfg.head_dim} dims"),
        ("QK gain init", f"{cfg.qk_gain_init}"),
        ("XSA", f"last {cfg.xsa_last_n} layers" if cfg.xsa_last_n else "off"),
        ("MLP", f"LeakyReLU({cfg.mlp_leaky_slope})² ×{cfg.mlp_mult:g}" if cfg.mlp_leaky_slope else f"ReLU² ×{cfg.mlp_mult:g}"),
        ("LN scale", on(cfg.ln_scale)), ("U-Net skips", on(cfg.unet_skips)), ("resid mix", on(cfg.resid_mix)),
        ("BigramHash", f"{cfg.bigram_vocab_size}×{cfg.bigram_dim}" if cfg.bigram_vocab_size else "off"),
        ("SmearGate", on(cfg.smear_gate)),
        ("value embeddings", f"dim {cfg.ve_dim}, layers {cfg.ve_layers}" if cfg.ve_dim else "off"),
        ("parallel residuals", f"from layer {cfg.parallel_residual_start}" if cfg.parallel_residual_start >= 0 else "off"),
        ("depth recurrence", f"layers {cfg.recur_layers} from step {cfg.recur_start_step}" if cfg.recur_layers else "off"),
        ("EMA", f"{cfg.ema_decay}" if cfg.ema_enabled else "off"), ("SWA", on(cfg.swa_enabled)),
        ("late QAT", f"below LR scale {cfg.qat_threshold}" if cfg.late_qat else "off"),
        ("GPTQ", f"{cfg.gptq_calibration} calibration" if cfg.gptq_enabled else "off"),
        ("compression", compression_summary(cfg)),
        ("TTT", f"legal score-first, {cfg.ttt_epochs} epoch(s), chunks of {cfg.ttt_chunk_tokens}" if cfg.ttt_enabled else "off"),
        ("sliding window eval", f"stride {cfg.eval_stride}" if cfg.eval_stride else "off"),
    ]
    when = {"depth recurrence": "depth_recurrence", "late QAT": "late_qat"}
    tech = [(k, v if k not in when or v == "off" else
             v + (f" (switched on at step {res.switched_on[when[k]]})" if when[k] in res.switched_on
                  else " (not reached in this run)")) for k, v in tech]
    rows = "\n".join(f"| {k} | {v} |" for k, v in tech)
    scores = "\n".join(f"| {k} | {s.loss:.6f} | {s.bpb:.6f} | {s.seconds:.1f} |" for k, s in res.scores.items())
    gate = "\n".join(f"- {c.message}" for c in checks)
    return f"""# {run_name}

Trained by golfcheck's gated reference trainer (preset `{cfg.preset}`, seed {cfg.seed}) on
`{cfg.train_files}`, scored on `{cfg.val_files}`. This is a non-record submission: the gate
verified it but it was not trained on the challenge's hardware or data.

**val_bpb {f.bpb:.6f}** ({res.final_label}, computed on the de-quantized artifact).

| figure | value |
|---|---|
| steps | {res.steps} |
| training time (counted) | {res.total_train_seconds:.1f} s (loop {res.train_seconds:.1f} s + artifact work {res.artifact_seconds:.1f} s) |
| export (reported, not counted) | {res.export_seconds:.1f} s |
| evaluation time (scored passes) | {res.eval_seconds:.1f} s (+ {res.budget.diagnostic_s:.1f} s diagnostic, not counted) |
| parameters | {res.params:,} |
| code (train_gpt.py) | {code_bytes:,} bytes |
| compressed model | {res.model_bytes:,} bytes |
| artifact total | {code_bytes + res.model_bytes:,} bytes |

| eval pass | val_loss | val_bpb | seconds |
|---|---|---|---|
{scores}

## Techniques (as run; the script's defaults are these values)
| technique | setting |
|---|---|
{rows}

## Gate checks
{gate}

## Reproduce
`python train_gpt.py` from this folder (set `DATA_PATH` to the dataset folder if it moved).
"""


def compression_summary(cfg: TrainConfig) -> str:
    if cfg.compressor == "pergroup":
        return (f"per-group (trainer/pergroup.py): tensors grouped by role across layers, each group's rows "
                f"similarity-sorted and/or column-major and its bytes shuffled where smaller, then brotli or "
                f"lzma, whichever is smaller; level {cfg.compress_level}")
    return f"{cfg.compressor} level {cfg.compress_level}" + (" after a stride-2 byte shuffle" if cfg.byte_shuffle else "")


def submission_json(cfg: TrainConfig, res, run_name: str, code_bytes: int, date: str) -> dict:
    f = res.final
    sc = res.scores
    tag = f"final_int{cfg.quant_bits}"
    row = {"val_bpb": round(f.bpb, 8), "val_loss": round(f.loss, 8), "steps": res.steps,
           "step_avg_ms": round(res.train_seconds * 1000 / max(res.steps, 1), 2)}
    if f"{tag}_roundtrip" in sc:
        row["roundtrip_val_bpb"] = round(sc[f"{tag}_roundtrip"].bpb, 8)
    if f"{tag}_sliding_window" in sc:
        row["sliding_val_bpb"] = round(sc[f"{tag}_sliding_window"].bpb, 8)
    return {
        "name": run_name, "author": cfg.author, "github_id": cfg.github_id,
        "val_bpb": round(f.bpb, 8), "date": date, "track": "track_non_record_16mb",
        "bytes_total": code_bytes + res.model_bytes, "bytes_code": code_bytes,
        "seeds": [cfg.seed], "seed_results": {str(cfg.seed): row},
        "compliance": {"score_first_ttt": bool(cfg.ttt_enabled), "ttt": bool(cfg.ttt_enabled),
                       "ngram_cache": False, "slot": False, "two_pass_rescoring": False,
                       "train_time_s": round(res.total_train_seconds, 3), "eval_time_s": round(res.eval_seconds, 3),
                       "artifact_limit_bytes": cfg.artifact_limit_bytes},
        "blurb": f"golfcheck gated trainer, preset {cfg.preset}; {res.final_label}",
        "technique_summary": (f"{cfg.num_layers}x{cfg.model_dim} GQA; {quant_summary(cfg)}; "
                              f"TTT {'score-first' if cfg.ttt_enabled else 'off'}"),
    }


def quant_summary(cfg: TrainConfig) -> str:
    from trainer.quant import label

    return f"{label(cfg)} level {cfg.compress_level}"

