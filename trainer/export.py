"""What a record ships: the counted single-file `train_gpt.py` and the record folder.

`export_code(cfg)` inlines the trainer's modules (and the few `audit` helpers they read shards
with) into one script that needs only pip packages, and bakes the run's config in as explicit
`os.environ.get("NAME", "default")` lines — so what the script does by default is visible to
anyone (and to `audit submission`) reading it. `write_record` stages a folder and publishes it
with one rename; an existing folder is never touched.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import json
import os
import shutil
import tempfile
from pathlib import Path

from trainer.config import TrainConfig

BUNDLE = ("audit.errors", "audit.budgets", "audit.atomic", "audit.formats.shards", "audit.formats.npz",
          "audit.formats.meta",
          "trainer.config", "trainer.data", "trainer.model", "trainer.optim", "trainer.quant",
          "trainer.eval", "trainer.run")


class BundleError(RuntimeError):
    pass


def _strip(src: str) -> tuple[str, set[str]]:
    """The module's code without bundle-internal imports, `__future__` imports, its docstring
    and `if __name__ == "__main__"` block. Returns (code, top-level names)."""
    tree = ast.parse(src)
    lines = src.splitlines()
    drop: dict[int, str] = {}  # 0-based line → replacement ("" = delete)

    def blank(node: ast.AST, keep_block: bool) -> None:
        indent = lines[node.lineno - 1][:node.col_offset]
        for ln in range(node.lineno - 1, node.end_lineno):
            drop[ln] = ""
        if keep_block:  # a nested import: leave a `pass` so the block stays valid
            drop[node.lineno - 1] = indent + "pass"

    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        blank(body[0], False)
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            blank(node, False)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        names.add(n.id)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.module == "__future__":
                blank(node, False)
            elif node.module in BUNDLE:
                blank(node, node.col_offset > 0)
    out = [drop.get(i, ln) for i, ln in enumerate(lines)]
    code = "\n".join(out).strip("\n")
    while "\n\n\n\n" in code:
        code = code.replace("\n\n\n\n", "\n\n\n")
    return code, names


def _env_line(name: str, value) -> str:
    env = name.upper()
    if isinstance(value, bool):
        return f'{env} = os.environ.get("{env}", "{int(value)}") == "1"'
    if isinstance(value, int):
        return f'{env} = int(os.environ.get("{env}", "{value}"))'
    if isinstance(value, float):
        return f'{env} = float(os.environ.get("{env}", "{value!r}"))'
    return f'{env} = os.environ.get("{env}", {json.dumps(str(value))})'


def export_code(cfg: TrainConfig) -> str:
    """The single self-contained train_gpt.py for this config."""
    parts = ['"""train_gpt.py — written by `trainer export-code` (golfcheck). Self-contained: needs only\n'
             'numpy, torch and brotli. Run: `torchrun --standalone --nproc_per_node=8 train_gpt.py`\n'
             '(or `python train_gpt.py`). Every setting below can be overridden by its environment variable."""',
             "from __future__ import annotations", "", "import os", "import sys"]
    seen: dict[str, str] = {}
    for mod in BUNDLE:
        src = inspect.getsource(importlib.import_module(mod))
        code, names = _strip(src)
        for n in names:
            if n in seen and not n.startswith("__"):
                raise BundleError(f"top-level name {n!r} defined in both {seen[n]} and {mod}")
            seen[n] = mod
        parts += ["", "", f"# {'=' * 20} {mod} {'=' * (70 - len(mod))}", code]
    parts += ["", "", f"# {'=' * 20} the configuration of this record {'=' * 38}"]
    env_names = []
    for f in dataclasses.fields(cfg):
        if f.name in ("records_dir", "reports_dir", "use_fixtures"):
            continue  # gate/dev settings: the shipped script neither gates nor knows the fixtures
        if f.name.upper() in seen:
            raise BundleError(f"setting {f.name.upper()} collides with a top-level name of {seen[f.name.upper()]}")
        parts.append(_env_line(f.name, getattr(cfg, f.name)))
        env_names.append(f.name)
    parts += ["", "", "def _record_config() -> TrainConfig:",
              "    cfg = TrainConfig(" + ", ".join(f"{n}={n.upper()}" for n in env_names) + ")",
              "    validate(cfg)", "    return cfg", "", "",
              "_BUNDLED = True", "", 'if __name__ == "__main__":', "    sys.exit(main(cfg=_record_config()))", ""]
    text = "\n".join(parts)
    try:
        compile(text, "train_gpt.py", "exec")
    except SyntaxError as e:  # pragma: no cover - a bundler bug, never a user error
        raise BundleError(f"bundled train_gpt.py does not compile: {e}") from e
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for m in mods:
                if m.split(".")[0] in ("trainer",) or m in BUNDLE:
                    raise BundleError(f"bundled code still imports {m} (line {node.lineno})")
    return text


def record_config(cfg: TrainConfig, shipped: dict[str, str]) -> TrainConfig:
    """The config as the shipped script should default to it: shipped tokenizer/meta by file name."""
    c = dataclasses.replace(cfg, use_fixtures=False)
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
        ("compression", f"{cfg.compressor} level {cfg.compress_level}"),
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
| training time | {res.train_seconds:.1f} s + export {res.export_seconds:.1f} s |
| evaluation time | {res.eval_seconds:.1f} s |
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

