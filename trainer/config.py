"""One resolved training config: defaults → preset → TOML/JSON file → environment → flags.

The dataclass defaults are the record stack (PROTEUS-style, `trainer.md`); presets override,
and the default preset is `baseline`: the challenge's own train_gpt.py, every one of its
environment variables with its default. Every technique is one field named as the records name
it; the environment variable for a field is its upper-cased name (`NUM_LAYERS`, `TTT_ENABLED`,
`DATA_PATH`, …), read by the one parser in `trainer.settings` (also used by the exported
script). Fields are stored flat (one per env var); `cfg.model`, `cfg.optim`, `cfg.data`,
`cfg.export`, `cfg.eval`, `cfg.gate` are read-only grouped views of them. `resolve_config` also
returns where each value came from, so the log states the one config that ran and why.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from audit.errors import InputError
from trainer.settings import parse_int_list, parse_setting


@dataclass
class TrainConfig:
    # --- run and data -------------------------------------------------------------------------
    run_name: str = ""  # record folder name; empty = derived from preset, seed and time
    run_id: str = ""  # the official RUN_ID: log name of the shipped script (logs/<run_id>.txt); empty = a uuid
    preset: str = "baseline"
    seed: int = 1337
    data_path: str = ""  # dataset folder holding fineweb_{train,val}_*.bin; empty + use_fixtures = bundled
    train_files: str = ""  # glob; empty = <data_path>/fineweb_train_*.bin
    val_files: str = ""  # glob; empty = <data_path>/fineweb_val_*.bin
    tokenizer_path: str = ""  # .model the val bytes are counted with
    meta_path: str = ""  # *.meta.npz shipped with the tokenizer (preferred byte source)
    use_tiny_data: bool = False  # fill empty data/tokenizer paths from trainer.tinydata (built once, cached)
    vocab_size: int = 1024
    bos_id: int = 1
    device: str = "auto"  # auto | cpu | cuda
    cpu_threads: int = 0  # torch threads per process on CPU; 0 = torch's default (tiny: 1, robust on a busy machine)
    # --- model shape ----------------------------------------------------------------------------
    num_layers: int = 11
    model_dim: int = 512
    num_heads: int = 8
    num_kv_heads: int = 4  # GQA
    mlp_mult: float = 3.0
    tie_embeddings: bool = True
    tied_embed_init_std: float = 0.005
    logit_softcap: float = 30.0  # 0 = off
    rope_base: float = 10000.0
    # --- techniques (record defaults) -----------------------------------------------------------
    rope_dims: int = 16  # partial RoPE: rotary on the first k dims of each head; 0 = all dims
    qk_gain_init: float = 1.5  # learnable per-head query gain
    ln_scale: bool = True  # norm output scaled by 1/sqrt(layer+1)
    mlp_leaky_slope: float = 0.5  # LeakyReLU(slope)^2; 0.0 = the baseline's ReLU^2
    unet_skips: bool = True
    resid_mix: bool = True
    xsa_last_n: int = 4  # exclusive self-attention on the last N layers
    bigram_vocab_size: int = 2048  # BigramHash buckets; 0 = off
    bigram_dim: int = 128
    smear_gate: bool = True
    ve_dim: int = 128  # value embeddings; 0 = off
    ve_layers: str = "9,10"
    parallel_residual_start: int = 7  # first layer with parallel attn/MLP; -1 = off
    recur_layers: str = "4,5"  # first,last layer run twice once recurrence is on; "" = off
    recur_start_step: int = 3000
    recur_untied_mlp: bool = False  # second pass uses its own MLPs
    # --- optimisation ---------------------------------------------------------------------------
    iterations: int = 20000
    train_seq_len: int = 2048
    train_batch_tokens: int = 786432  # global, all ranks together
    grad_accum_steps: int = 0  # micro-batches per rank per step; 0 = 8 // world_size, as the official script
    warmup_steps: int = 20  # compile-priming steps; weights, optimizer state and data then restart from init
    warmdown_iters: int = 3500
    max_wallclock_seconds: float = 600.0  # cap on training + artifact-producing data work (audit.timing); 0 = no cap
    export_reserve_seconds: float = 12.0  # stop training this long before the cap, for the artifact work (GPTQ calibration)
    matrix_lr: float = 0.025
    scalar_lr: float = 0.025
    tied_embed_lr: float = 0.035
    embed_lr: float = 0.6  # untied input embedding (official EMBED_LR)
    head_lr: float = 0.008  # untied output head (official HEAD_LR)
    muon_momentum: float = 0.99
    muon_momentum_warmup_start: float = 0.92
    muon_momentum_warmup_steps: int = 1500
    muon_backend_steps: int = 5
    muon_nesterov: bool = True
    muon_wd: float = 0.04
    adam_wd: float = 0.04
    beta1: float = 0.9
    beta2: float = 0.95
    adam_eps: float = 1e-8
    grad_clip_norm: float = 0.3  # 0 = off
    ema_enabled: bool = True
    ema_decay: float = 0.997
    swa_enabled: bool = False
    swa_every: int = 50
    swa_start_frac: float = 0.2  # average snapshots once the LR scale is below this
    late_qat: bool = True
    qat_threshold: float = 0.15  # fake-quantize matrices once the LR scale falls below this
    train_log_every: int = 100
    val_loss_every: int = 0  # 0 = only at the end
    val_batch_size: int = 524288  # tokens per plain-eval batch over all ranks and micro-steps (official VAL_BATCH_SIZE); 0 = eval_batch_seqs
    # --- export (the artifact) ------------------------------------------------------------------
    quant_bits: int = 6  # attention and MLP matrices
    int5_layers: str = ""  # layers whose MLP matrices use int5 ("mixed int5/int6")
    embed_bits: int = 8
    passthrough_numel: int = 65536  # tensors this small (and all vectors) stay float16
    gptq_enabled: bool = True
    gptq_calibration: str = "train"  # train | self (sampled auto-regressively from the model)
    gptq_calib_seqs: int = 64
    gptq_calib_seq_len: int = 0  # 0 = train_seq_len
    gptq_block_size: int = 128
    gptq_damp: float = 0.01
    compressor: str = "brotli"  # brotli | lzma | zlib | pergroup (tensors grouped by role, trainer/pergroup.py)
    compress_level: int = 11
    quant_format: str = "rows"  # rows: per-row max-abs at quant_bits/embed_bits | int8_clean: the official int8 export
    control_tensor_name_patterns: str = "attn_scale,attn_scales,mlp_scale,mlp_scales,resid_mix,resid_mixes,q_gain,skip_weight,skip_weights"
    int8_keep_float_fp32_name_patterns: str = "attn_scale,attn_scales,mlp_scale,mlp_scales,resid_mix,resid_mixes,q_gain,skip_weight,skip_weights"
    # --- evaluation -----------------------------------------------------------------------------
    eval_seq_len: int = 0  # 0 = train_seq_len
    eval_stride: int = 64  # sliding window stride; 0 = plain rows only
    eval_batch_seqs: int = 32
    ttt_enabled: bool = True
    ttt_variant: str = "score_first"
    ttt_lr: float = 0.002
    ttt_momentum: float = 0.9
    ttt_epochs: int = 3
    ttt_chunk_tokens: int = 32768
    ttt_freeze_blocks: int = 2
    ttt_grad_clip: float = 1.0
    ttt_batch_seqs: int = 32
    probe_tokens: int = 4096  # val slice the causality probe replays with TTT on
    max_eval_seconds: float = 600.0  # cap on the scored eval passes (audit.timing)
    val_max_tokens: int = 0  # evaluate on the first N val tokens only (CPU smoke runs); 0 = all
    # --- gate and record ------------------------------------------------------------------------
    artifact_limit_bytes: int = 16_000_000
    records_dir: str = "records"
    reports_dir: str = "reports"
    author: str = "golfcheck trainer"
    github_id: str = "golfcheck"
    strict_tokenizer_audit: bool = True

    # === record stack of 2026-04-29 (issue 11) — every switch off/neutral unless a preset sets it ===
    # model (trainer/model.py)
    smear_gate_mode: str = "channel"  # channel: σ(per-channel gate) mix | input: x_t += λ·σ(W·x_t[:gate_window])·x_{t-1}
    gate_window: int = 12  # leading residual dims feeding the input-dependent smear and sparse attention gates
    sparse_attn_gate: bool = False  # per-head output gate σ(scale·W·x[:gate_window]) before the output projection
    sparse_attn_gate_scale: float = 1.0
    skip_gates: bool = False  # U-Net skip merged by lerp(w·skip, x, σ(gate)) instead of added
    parallel_lanes: bool = False  # parallel residuals on two lanes mixed by learned lambdas (else one shared input)
    parallel_final_lane: str = "mean"  # mean | attn | mlp: the lane the head reads
    recur_loops: int = 1  # extra passes over recur_layers once recurrence is on (record: 2, three passes)
    recur_start_frac: float = 0.0  # >0: recurrence on at this fraction of training (replaces recur_start_step)
    recur_resplit: bool = False  # U-Net encoder/decoder split over the looped layer sequence
    ortho_init: bool = False  # orthogonal init of Q/K/V/MLP-up (projections stay zero)
    varlen_attn: bool = False  # per-document attention: no token attends across a BOS
    # optimisation (trainer/optim.py)
    muon_ns: str = "quintic"  # quintic (fixed coefficients) | polar_express (per-step coefficients)
    muon_row_normalize: bool = False  # MuonEq-R: rows of the update normalised before Newton–Schulz
    warmdown_frac: float = 0.0  # >0: linear warmdown over the last fraction of training (replaces warmdown_iters)
    min_lr: float = 0.0  # floor of the LR scale during warmdown
    embed_wd: float = -1.0  # AdamW decay of embedding tables; <0 = adam_wd
    scalar_wd: float = 0.0  # AdamW decay of scalars, vectors and control tensors
    # export (trainer/gptq.py)
    gptq_sdclip: bool = False  # GPTQ scale = clip_sigmas·row_std/qmax (SDClip) instead of max|w|/qmax
    gptq_act_order: bool = False  # quantize columns by descending Hessian diagonal
    matrix_clip_sigmas: float = 12.85
    attn_clip_sigmas: float = 13.0
    mlp_clip_sigmas: float = 12.0
    embed_clip_sigmas: float = 15.0
    embed_gptq: bool = False  # GPTQ on the tied embedding, Hessian of the head's input (final hidden state)
    lqer_rank: int = 0  # LQER: rank-r correction of the quantization error; 0 = off
    lqer_top_k: int = 3  # on the K tensors with the largest error norm
    lqer_asym_group: int = 64  # asymmetric packing: A int2 per tensor, B int4 in groups of this size
    byte_shuffle: bool = False  # de-interleave the container's bytes (stride 2) before compression
    # evaluation: phased score-first TTT (trainer/ttt_phased.py) and CaseOps bytes (trainer/caseops.py)
    phased_ttt_num_phases: int = 3
    phased_ttt_prefix_docs: int = 2000
    ttt_lora_rank: int = 96
    ttt_lora_lr: float = 0.0001
    ttt_chunk_size: int = 48  # tokens per LoRA scoring/adapting chunk inside a document
    ttt_lora_batch_docs: int = 64
    global_ttt_lr: float = 0.001
    global_ttt_chunk_tokens: int = 32768
    caseops: bool = False  # BPB from the per-token byte sidecar (fineweb_val_bytes_*.bin)
    val_bytes_files: str = ""  # glob; empty = <data_path>/fineweb_val_bytes_*.bin
    # fast path (trainer/fast.py)
    compile: str = "auto"  # auto (on for CUDA) | on | off
    fused_ce: bool = True  # Triton softcapped cross-entropy on CUDA when installed; PyTorch otherwise
    grad_reduce: str = "bucketed"  # bucketed (overlapped, per bucket) | flat (one blocking all-reduce)
    # === end of the record-stack block ==================================================================

    # derived helpers ------------------------------------------------------------------------------
    def int_list(self, name: str) -> list[int]:
        """A comma-separated list setting, parsed once per value (the model asks per layer)."""
        raw = getattr(self, name)
        cache = self.__dict__.setdefault("_parsed_lists", {})
        if cache.get(name, (None,))[0] != raw:
            cache[name] = (raw, parse_int_list(raw))
        return list(cache[name][1])

    # grouped, read-only views over the flat (one field per env var) storage
    @property
    def model(self) -> "ConfigView":
        return ConfigView(self, "model")

    @property
    def optim(self) -> "ConfigView":
        return ConfigView(self, "optim")

    @property
    def data(self) -> "ConfigView":
        return ConfigView(self, "data")

    @property
    def export(self) -> "ConfigView":
        return ConfigView(self, "export")

    @property
    def eval(self) -> "ConfigView":
        return ConfigView(self, "eval")

    @property
    def gate(self) -> "ConfigView":
        return ConfigView(self, "gate")

    @property
    def head_dim(self) -> int:
        return self.model_dim // self.num_heads

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Which view a field belongs to: explicit names first, then name prefixes; the rest is "model".
_GROUP_NAMES = {
    "data": ("run_name", "run_id", "preset", "seed", "data_path", "train_files", "val_files", "tokenizer_path",
             "meta_path", "use_tiny_data", "vocab_size", "bos_id", "device", "cpu_threads", "val_bytes_files", "caseops"),
    "optim": ("iterations", "train_seq_len", "train_batch_tokens", "grad_accum_steps", "warmup_steps",
              "warmdown_iters", "warmdown_frac", "min_lr", "max_wallclock_seconds", "export_reserve_seconds",
              "matrix_lr", "scalar_lr", "tied_embed_lr", "embed_lr", "head_lr", "beta1", "beta2", "adam_eps",
              "adam_wd", "embed_wd", "scalar_wd", "grad_clip_norm", "late_qat", "qat_threshold",
              "train_log_every", "val_loss_every", "compile", "fused_ce", "grad_reduce"),
    "export": ("quant_bits", "int5_layers", "embed_bits", "passthrough_numel", "compressor", "compress_level",
               "quant_format", "control_tensor_name_patterns", "int8_keep_float_fp32_name_patterns",
               "matrix_clip_sigmas", "attn_clip_sigmas", "mlp_clip_sigmas", "embed_clip_sigmas", "embed_gptq",
               "byte_shuffle"),
    "eval": ("eval_seq_len", "eval_stride", "eval_batch_seqs", "probe_tokens", "max_eval_seconds",
             "val_batch_size", "val_max_tokens", "global_ttt_lr", "global_ttt_chunk_tokens"),
    "gate": ("artifact_limit_bytes", "records_dir", "reports_dir", "author", "github_id", "strict_tokenizer_audit"),
}
_GROUP_PREFIXES = (("muon_", "optim"), ("ema_", "optim"), ("swa_", "optim"), ("gptq_", "export"),
                   ("lqer_", "export"), ("ttt_", "eval"), ("phased_ttt_", "eval"))


def group_of(name: str) -> str:
    for group, names in _GROUP_NAMES.items():
        if name in names:
            return group
    for prefix, group in _GROUP_PREFIXES:
        if name.startswith(prefix):
            return group
    return "model"


class ConfigView:
    """`cfg.optim.matrix_lr` is `cfg.matrix_lr`; a view lists and reads only its group's fields."""

    __slots__ = ("_cfg", "_group")

    def __init__(self, cfg: "TrainConfig", group: str):
        object.__setattr__(self, "_cfg", cfg)
        object.__setattr__(self, "_group", group)

    def names(self) -> list[str]:
        return [f.name for f in fields(self._cfg) if group_of(f.name) == self._group]

    def __getattr__(self, name: str):
        if group_of(name) != self._group or name not in FIELDS:
            raise AttributeError(f"{name!r} is not a setting of the {self._group!r} group")
        return getattr(self._cfg, name)

    def __setattr__(self, name, value):
        raise AttributeError("config views are read-only; set the flat field (cfg.NAME)")

    def to_dict(self) -> dict[str, Any]:
        return {n: getattr(self._cfg, n) for n in self.names()}


PRESETS: dict[str, dict[str, Any]] = {
    # The record stack is the dataclass default.
    "proteus": {},
    # The challenge's own train_gpt.py (../shared/reference/train_gpt_official.py), switch for switch:
    # 9x512, ReLU^2 MLP 2x, its int8 export + zlib 9, 20 priming steps, 8 // world_size micro-steps,
    # its env-var defaults. It reserves nothing: the int8 export after the cap is export (audit.timing).
    "baseline": dict(
        data_path="./data/datasets/fineweb10B_sp1024", tokenizer_path="./data/tokenizers/fineweb_1024_bpe.model",
        iterations=20000, warmup_steps=20, grad_accum_steps=0, max_wallclock_seconds=600.0,
        train_log_every=200, val_loss_every=1000, val_batch_size=524288, embed_lr=0.6, head_lr=0.008,
        muon_backend_steps=5, beta1=0.9, beta2=0.95, adam_eps=1e-8, tie_embeddings=True, rope_base=10000.0,
        logit_softcap=30.0, vocab_size=1024, model_dim=512, num_heads=8, num_kv_heads=4, unet_skips=True,
        resid_mix=True, passthrough_numel=65536, quant_format="int8_clean", embed_bits=8,
        swa_enabled=False, fused_ce=False, grad_reduce="flat",
        num_layers=9, mlp_mult=2.0, rope_dims=0, qk_gain_init=1.5, ln_scale=False, mlp_leaky_slope=0.0,
        xsa_last_n=0, bigram_vocab_size=0, smear_gate=False, ve_dim=0, ve_layers="",
        parallel_residual_start=-1, recur_layers="", train_seq_len=1024, train_batch_tokens=524288,
        warmdown_iters=1200, matrix_lr=0.04, scalar_lr=0.04, tied_embed_lr=0.05, muon_momentum=0.95,
        muon_momentum_warmup_start=0.85, muon_momentum_warmup_steps=500, muon_wd=0.0, adam_wd=0.0,
        grad_clip_norm=0.0, ema_enabled=False, late_qat=False, quant_bits=8, gptq_enabled=False,
        compressor="zlib", compress_level=9, eval_stride=0, ttt_enabled=False,
        export_reserve_seconds=0.0, tied_embed_init_std=0.005),
    # A CPU smoke run on self-built toy data (trainer.tinydata): every technique switched on at toy
    # size, about a minute on 2 quiet cores. It keeps the challenge's 600 s caps and shrinks what it
    # evaluates instead (val_max_tokens), so a machine 5x slower still passes them.
    "tiny": dict(
        use_tiny_data=True, grad_accum_steps=1, val_batch_size=0, val_max_tokens=32768, cpu_threads=1,
        num_layers=4, model_dim=96, num_heads=4, num_kv_heads=2, mlp_mult=2.0,
        rope_dims=8, xsa_last_n=2, bigram_vocab_size=512, bigram_dim=32, ve_dim=32, ve_layers="2,3",
        parallel_residual_start=3, recur_layers="1,1", recur_start_step=120, iterations=250,
        train_seq_len=128, train_batch_tokens=2048, warmup_steps=2, warmdown_iters=80,
        max_wallclock_seconds=600.0, export_reserve_seconds=10.0, matrix_lr=0.04, scalar_lr=0.03,
        tied_embed_lr=0.05, muon_momentum_warmup_steps=100, train_log_every=25, ema_decay=0.95,
        gptq_calib_seqs=8, gptq_block_size=32, passthrough_numel=512, eval_stride=64, eval_batch_seqs=64,
        ttt_chunk_tokens=16384, ttt_batch_seqs=32, ttt_epochs=1, ttt_lr=0.002, probe_tokens=1024,
        max_eval_seconds=600.0, artifact_limit_bytes=16_000_000),
    # === the 2026-04-29 record (SmearGate BOS fix, 1.06141 BPB), from its logged hyperparameters ===
    "record": dict(
        vocab_size=8192, bos_id=1, mlp_mult=4.0, qk_gain_init=5.0, xsa_last_n=11, bigram_vocab_size=0,
        smear_gate=True, smear_gate_mode="input", gate_window=12, sparse_attn_gate=True, skip_gates=True,
        ve_dim=0, ve_layers="", parallel_residual_start=8, parallel_lanes=True, parallel_final_lane="mean",
        recur_layers="3,5", recur_loops=2, recur_start_frac=0.35, recur_resplit=True, ortho_init=True,
        varlen_attn=True, matrix_lr=0.026, scalar_lr=0.02, tied_embed_lr=0.03, muon_momentum=0.97,
        muon_ns="polar_express", muon_row_normalize=True, warmdown_frac=0.75, min_lr=0.1, muon_wd=0.095,
        adam_wd=0.02, embed_wd=0.085, scalar_wd=0.02, ema_decay=0.9965, late_qat=False,
        export_reserve_seconds=8.0, embed_bits=7, gptq_sdclip=True, gptq_act_order=True, embed_gptq=True,
        gptq_calib_seqs=768, lqer_rank=4, lqer_top_k=3, lqer_asym_group=64, byte_shuffle=True,
        eval_seq_len=2048, ttt_variant="phased", caseops=True, train_log_every=500, val_loss_every=4000),
}


class ConfigError(InputError):
    pass


def _coerce(f: dataclasses.Field, value: Any, origin: str) -> Any:
    """Convert a file/env/flag value to the field's type (trainer.settings); reject what does not fit."""
    typ = f.type if isinstance(f.type, str) else f.type.__name__
    try:
        return parse_setting(typ, value)
    except KeyError:
        raise ConfigError(origin, f"{f.name}: unsupported field type {typ}") from None
    except ValueError as e:
        raise ConfigError(origin, f"{f.name}: {e}") from None


FIELDS = {f.name: f for f in fields(TrainConfig)}


def _apply(values: dict[str, Any], overrides: dict[str, Any], origin: str, sources: dict[str, str]) -> None:
    for k, v in overrides.items():
        key = k.strip().lower().replace("-", "_")
        if key not in FIELDS:
            raise ConfigError(origin, f"unknown setting {k!r}")
        values[key] = _coerce(FIELDS[key], v, origin)
        sources[key] = origin


def load_file(path: str | Path) -> dict[str, Any]:
    """A TOML or JSON file of settings (tables are flattened: their keys are field names)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(p, "no such config file")
    raw = p.read_bytes()
    try:
        if p.suffix.lower() == ".json":
            obj = json.loads(raw.decode("utf-8"))
        else:
            import tomllib

            obj = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(p, f"cannot parse: {' '.join(str(e).split())}") from None
    if not isinstance(obj, dict):
        raise ConfigError(p, "top level must be a table/object")
    flat: dict[str, Any] = {}
    for k, v in obj.items():
        if isinstance(v, dict):  # [model], [optim] ... sections are only for readability
            flat.update(v)
        else:
            flat[k] = v
    return flat


def env_overrides(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Settings given by the challenge's environment variable names (upper-cased field names)."""
    env = os.environ if environ is None else environ
    return {name: env[name.upper()] for name in FIELDS if name.upper() in env}


def parse_sets(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    out = {}
    for p in pairs:
        if "=" not in p:
            raise ConfigError("--set", f"expected KEY=VALUE, got {p!r}")
        k, v = p.split("=", 1)
        out[k] = v
    return out


def resolve_config(preset: str | None = None, file: str | Path | None = None,
                   sets: dict[str, Any] | None = None, environ: dict[str, str] | None = None,
                   use_env: bool = True) -> tuple[TrainConfig, dict[str, str]]:
    """Defaults → preset → file → environment → flags. Returns (config, field → origin)."""
    values = {f.name: f.default for f in fields(TrainConfig)}
    sources = {k: "default" for k in values}
    sets = dict(sets or {})
    file_vals = load_file(file) if file else {}
    env_vals = env_overrides(environ) if use_env else {}
    name = preset or sets.get("preset") or env_vals.get("preset") or file_vals.get("preset") or "baseline"
    if name not in PRESETS:
        raise ConfigError("--preset", f"unknown preset {name!r} (choose from {', '.join(PRESETS)})")
    _apply(values, PRESETS[name], f"preset:{name}", sources)
    values["preset"], sources["preset"] = name, f"preset:{name}"
    _apply(values, {k: v for k, v in file_vals.items() if k != "preset"}, str(file), sources)
    _apply(values, {k: v for k, v in env_vals.items() if k != "preset"}, "env", sources)
    _apply(values, {k: v for k, v in sets.items() if k != "preset"}, "flag", sources)
    cfg = TrainConfig(**values)
    validate(cfg)
    return cfg, sources


def validate(cfg: TrainConfig) -> None:
    """Shape and plan consistency, checked before anything runs."""
    def bad(msg: str):
        raise ConfigError("config", msg)

    if cfg.model_dim % cfg.num_heads:
        bad(f"model_dim {cfg.model_dim} is not divisible by num_heads {cfg.num_heads}")
    if cfg.num_heads % cfg.num_kv_heads:
        bad(f"num_heads {cfg.num_heads} is not a multiple of num_kv_heads {cfg.num_kv_heads}")
    if cfg.head_dim % 2 or cfg.rope_dims % 2 or cfg.rope_dims > cfg.head_dim:
        bad(f"rope_dims {cfg.rope_dims} must be even and ≤ head_dim {cfg.head_dim}")
    for name in ("ve_layers", "int5_layers", "recur_layers"):
        try:
            ids = cfg.int_list(name)
        except ValueError:
            bad(f"{name} must be comma-separated integers, got {getattr(cfg, name)!r}")
        if any(not 0 <= i < cfg.num_layers for i in ids):
            bad(f"{name} {ids} names a layer outside 0..{cfg.num_layers - 1}")
    rec = cfg.int_list("recur_layers")
    if rec and (len(rec) != 2 or rec[0] > rec[1]):
        bad(f"recur_layers must be 'first,last', got {cfg.recur_layers!r}")
    if cfg.xsa_last_n < 0 or cfg.xsa_last_n > cfg.num_layers:
        bad(f"xsa_last_n {cfg.xsa_last_n} outside 0..{cfg.num_layers}")
    if cfg.train_seq_len <= 0 or cfg.train_batch_tokens % cfg.train_seq_len:
        bad(f"train_batch_tokens {cfg.train_batch_tokens} is not a multiple of train_seq_len {cfg.train_seq_len}")
    ev = cfg.eval_seq_len or cfg.train_seq_len
    if cfg.eval_stride < 0 or cfg.eval_stride > ev:
        bad(f"eval_stride {cfg.eval_stride} must be in 0..eval_seq_len {ev}")
    if cfg.ttt_enabled and cfg.ttt_chunk_tokens < ev:
        bad(f"ttt_chunk_tokens {cfg.ttt_chunk_tokens} is smaller than eval_seq_len {ev}")
    if cfg.grad_accum_steps < 0:
        bad(f"grad_accum_steps must be ≥ 0 (0 = 8 // world_size), got {cfg.grad_accum_steps}")
    if cfg.quant_format == "int8_clean" and (cfg.quant_bits != 8 or cfg.embed_bits != 8 or cfg.gptq_enabled):
        bad("quant_format int8_clean is the official int8 export: quant_bits=8, embed_bits=8, gptq off")
    # one test per setting (not a loop): a shipped script that fixes a setting folds its test away
    if cfg.quant_format not in ("rows", "int8_clean"):
        bad(_not_one_of("quant_format", cfg.quant_format, ("rows", "int8_clean")))
    if cfg.compressor not in ("brotli", "lzma", "zlib", "pergroup"):
        bad(_not_one_of("compressor", cfg.compressor, ("brotli", "lzma", "zlib", "pergroup")))
    if cfg.gptq_calibration not in ("train", "self"):
        bad(_not_one_of("gptq_calibration", cfg.gptq_calibration, ("train", "self")))
    if cfg.device not in ("auto", "cpu", "cuda"):
        bad(_not_one_of("device", cfg.device, ("auto", "cpu", "cuda")))
    for name in ("quant_bits", "embed_bits"):
        if getattr(cfg, name) not in (5, 6, 7, 8):
            bad(f"{name} must be 5, 6, 7 or 8, got {getattr(cfg, name)}")
    _validate_record_block(cfg, bad)


def _not_one_of(name: str, value, allowed: tuple[str, ...]) -> str:
    return f"{name} must be one of {', '.join(allowed)}, got {value!r}"


def _validate_record_block(cfg: TrainConfig, bad) -> None:
    """The switches of the record-stack block (issue 11)."""
    # one test per setting, so that a shipped script that fixes a setting folds its test away
    if cfg.smear_gate_mode not in ("channel", "input"):
        bad(_not_one_of("smear_gate_mode", cfg.smear_gate_mode, ("channel", "input")))
    if cfg.parallel_final_lane not in ("mean", "attn", "mlp"):
        bad(_not_one_of("parallel_final_lane", cfg.parallel_final_lane, ("mean", "attn", "mlp")))
    if cfg.muon_ns not in ("quintic", "polar_express"):
        bad(_not_one_of("muon_ns", cfg.muon_ns, ("quintic", "polar_express")))
    if cfg.compile not in ("auto", "on", "off"):
        bad(_not_one_of("compile", cfg.compile, ("auto", "on", "off")))
    if cfg.grad_reduce not in ("bucketed", "flat"):
        bad(_not_one_of("grad_reduce", cfg.grad_reduce, ("bucketed", "flat")))
    if (cfg.smear_gate_mode == "input" or cfg.sparse_attn_gate) and not 0 < cfg.gate_window <= cfg.model_dim:
        bad(f"gate_window {cfg.gate_window} must be in 1..model_dim {cfg.model_dim}")
    if cfg.recur_loops < 1:
        bad(f"recur_loops must be ≥ 1, got {cfg.recur_loops}")
    if not 0.0 <= cfg.warmdown_frac <= 1.0 or not 0.0 <= cfg.min_lr < 1.0 or not 0.0 <= cfg.recur_start_frac < 1.0:
        bad("warmdown_frac and recur_start_frac must be in [0, 1], min_lr in [0, 1)")
    if cfg.lqer_rank and cfg.lqer_asym_group <= 0:
        bad(f"lqer_asym_group must be positive, got {cfg.lqer_asym_group}")


def fill_data_paths(cfg: TrainConfig) -> TrainConfig:
    """Resolve empty data/tokenizer paths (the self-built toy data for `tiny`, else <data_path>/...)."""
    cfg = dataclasses.replace(cfg)
    if cfg.use_tiny_data and not (cfg.data_path or cfg.train_files):
        from trainer.tinydata import ensure_tiny_data  # lazy: only the tiny preset needs it

        td = ensure_tiny_data()
        cfg.data_path = str(td.dataset_dir)
        cfg.tokenizer_path = cfg.tokenizer_path or str(td.model)
        cfg.meta_path = cfg.meta_path or str(td.meta)
        cfg.vocab_size, cfg.bos_id = td.vocab_size, td.bos_id
    if cfg.data_path:
        cfg.train_files = cfg.train_files or str(Path(cfg.data_path) / "fineweb_train_*.bin")
        cfg.val_files = cfg.val_files or str(Path(cfg.data_path) / "fineweb_val_*.bin")
    if not (cfg.train_files and cfg.val_files):
        raise ConfigError("config", "no data configured: set data_path (DATA_PATH) or train_files and val_files")
    if not (cfg.meta_path or cfg.tokenizer_path):
        raise ConfigError("config", "no byte table for BPB: set meta_path or tokenizer_path (TOKENIZER_PATH)")
    return cfg


def describe(cfg: TrainConfig, sources: dict[str, str] | None = None) -> str:
    """The resolved config, one `name: value` per line, then where each non-default came from
    (kept apart so a log parser reading `name: value` sees only the value)."""
    lines = ["config:"] + [f"  {f.name}: {getattr(cfg, f.name)!r}" for f in fields(cfg)]
    changed = [(k, v) for k, v in (sources or {}).items() if v != "default"]
    if changed:
        lines.append("config_origins:")
        lines += [f"  {k} <- {v}" for k, v in changed]
    return "\n".join(lines)
