"""The `baseline` preset against the challenge's own train_gpt.py (../shared/reference), run on CPU
in a subprocess from a patched temporary copy (its CUDA-only lines made CPU-safe; it is trusted
code, never a submission). Same parameters key for key, same loss on the same weights, same
int8+zlib artifact (codes, scales, dequantized weights; size within 0.1 %), same first training
losses from the same init with the official priming warmup.

CPU arm of the Newton–Schulz rule: the official script runs it in bf16 (GPU); golfcheck runs bf16
on GPU and fp32 on CPU, so the copy is patched to fp32 here — the same rule on the same device.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch

from trainer.config import resolve_config
from trainer.model import GPT, count_parameters
from trainer.official import from_official, official_name, to_official
from trainer.quant import compress, dequantize_state, deserialize, quantize_state, serialize

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL = ROOT.parent / "shared" / "reference" / "train_gpt_official.py"

# (what the official script says, what the CPU copy says instead)
PATCHES = (
    ("    zeropower_via_newtonschulz5 = torch.compile(zeropower_via_newtonschulz5)\n", "\n"),
    ("    X = G.bfloat16()\n", "    X = G.float()\n"),  # the CPU arm of the NS rule (module docstring)
    ("device=params[0].device, dtype=torch.bfloat16)", "device=params[0].device, dtype=torch.float32)"),
    ('    if not torch.cuda.is_available():\n        raise RuntimeError("CUDA is required")\n', ""),
    ('    device = torch.device("cuda", local_rank)\n    torch.cuda.set_device(device)\n',
     '    device = torch.device("cpu")\n'),
    ("    enable_cudnn_sdp(False)\n    enable_flash_sdp(True)\n    enable_mem_efficient_sdp(False)\n"
     "    enable_math_sdp(False)\n", ""),
    ('subprocess.run(["nvidia-smi"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False).stdout',
     '"no nvidia-smi on CPU"'),
    ("torch.cuda.synchronize()", "pass"),
    ("torch.cuda.max_memory_allocated()", "0"),
    ("torch.cuda.max_memory_reserved()", "0"),
    ("compiled_model = torch.compile(base_model, dynamic=False, fullgraph=True)", "compiled_model = base_model"),
    ("fused=True", "fused=False"),
    ('torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=True)',
     'torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=False)'),
    # golfcheck keeps every weight in fp32 (its documented deviation: no bf16 embedding table)
    ("    ).to(device).bfloat16()\n", "    ).to(device)\n"),
    # full-precision loss lines and the initial weights, for the comparison
    ("train_loss:{train_loss.item():.4f}", "train_loss:{train_loss.item():.8f}"),
    ("    restore_low_dim_params_to_fp32(base_model)\n",
     "    restore_low_dim_params_to_fp32(base_model)\n"
     "    torch.save(base_model.state_dict(), 'official_init.pt')\n"),
)


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> Path:
    if not OFFICIAL.is_file():
        pytest.skip(f"optional resource missing: {OFFICIAL} (the ../shared reference is not beside this checkout)")
    src = OFFICIAL.read_text(encoding="utf-8")
    for old, new in PATCHES:
        assert old in src, f"the official script changed: {old!r} not found (update PATCHES)"
        src = src.replace(old, new)
    out = tmp_path_factory.mktemp("official") / "train_gpt_cpu.py"
    out.write_text(src, encoding="utf-8")
    return out


def run_official(script: Path, body: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """Import the patched copy in a fresh interpreter and run `body` with it bound to `off`."""
    driver = cwd / "driver.py"
    driver.write_text("import importlib.util, sys, io, zlib, json, torch\n"
                      f"spec = importlib.util.spec_from_file_location('official', {str(script)!r})\n"
                      "off = importlib.util.module_from_spec(spec); spec.loader.exec_module(off)\n" + body)
    clean = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    p = subprocess.run([sys.executable, str(driver)], cwd=cwd, env=dict(clean, OMP_NUM_THREADS="1", **(env or {})),
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def baseline(**sets):
    return resolve_config("baseline", sets={k: str(v) for k, v in sets.items()}, use_env=False)[0]


def random_state(model: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Weights like trained ones: mostly small, some rows large (the clip and the scale floor both act)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in model.state_dict().items():
        t = torch.randn(v.shape, generator=g) * 0.05
        if t.ndim == 2:
            t[::7] *= 40.0  # rows well above 1: scales above the 1/127 floor
        out[k] = t.to(v.dtype)
    return out


def test_same_parameters_key_for_key(official, tmp_path):
    cfg = baseline()
    ours = {official_name(k): tuple(v.shape) for k, v in GPT(cfg).state_dict().items()}
    run_official(official, "m = off.GPT(vocab_size=1024, num_layers=9, model_dim=512, num_heads=8, num_kv_heads=4,"
                 " mlp_mult=2, tie_embeddings=True, tied_embed_init_std=0.005, logit_softcap=30.0, rope_base=10000.0,"
                 " qk_gain_init=1.5)\n"
                 "json.dump({k: list(v.shape) for k, v in m.state_dict().items()}, open('shapes.json', 'w'))\n",
                 tmp_path)
    theirs = {k: tuple(v) for k, v in json.loads((tmp_path / "shapes.json").read_text()).items()}
    assert ours == theirs
    assert count_parameters(GPT(cfg)) == sum(torch.Size(s).numel() for s in theirs.values()) == 17_059_912


def test_same_loss_on_same_weights(official, tmp_path):
    cfg = baseline(num_layers=3)
    model = GPT(cfg)
    state = random_state(model)
    model.load_state_dict(state)
    torch.save({"state": to_official(state), "x": (x := torch.randint(0, 1024, (2, 256))),
                "y": (y := torch.randint(0, 1024, (2, 256)))}, tmp_path / "in.pt")
    run_official(official, "d = torch.load('in.pt')\n"
                 "m = off.GPT(vocab_size=1024, num_layers=3, model_dim=512, num_heads=8, num_kv_heads=4, mlp_mult=2,"
                 " tie_embeddings=True, tied_embed_init_std=0.005, logit_softcap=30.0, rope_base=10000.0,"
                 " qk_gain_init=1.5)\n"
                 "m.load_state_dict(d['state'])\n"
                 "with torch.no_grad(): torch.save(m(d['x'], d['y']), 'loss.pt')\n", tmp_path)
    with torch.no_grad():
        ours = model(x, y)
    theirs = torch.load(tmp_path / "loss.pt")
    assert abs(float(ours) - float(theirs)) < 1e-5, (float(ours), float(theirs))


def test_same_int8_zlib_artifact(official, tmp_path):
    cfg = baseline(num_layers=2)
    state = random_state(GPT(cfg), seed=1)
    torch.save(to_official(state), tmp_path / "state.pt")
    run_official(official, "sd = torch.load('state.pt')\n"
                 "obj, stats = off.quantize_state_dict_int8(sd)\n"
                 "buf = io.BytesIO(); torch.save(obj, buf)\n"
                 "blob = zlib.compress(buf.getvalue(), level=9)\n"
                 "deq = off.dequantize_state_dict_int8(torch.load(io.BytesIO(zlib.decompress(blob))))\n"
                 "torch.save({'n': len(blob), 'deq': deq, 'q': obj['quantized'], 's': obj['scales']}, 'out.pt')\n",
                 tmp_path)
    theirs = torch.load(tmp_path / "out.pt")
    q = quantize_state(GPT(cfg), state, cfg)
    blob = compress(serialize(q), cfg.compressor, cfg.compress_level)
    assert cfg.compressor == "zlib" and cfg.compress_level == 9
    print(f"int8+zlib artifact: golfcheck {len(blob)} bytes, official {theirs['n']} bytes")
    assert abs(len(blob) - theirs["n"]) <= 0.001 * theirs["n"], (len(blob), theirs["n"])
    for name, e in q.items():  # the same codes and the same stored scales
        if e["kind"] in ("q", "q1"):
            assert torch.equal(e["q"], theirs["q"][official_name(name)]), name
            assert torch.equal(e["scale"], theirs["s"][official_name(name)]), name
    ours = dequantize_state(deserialize(zlib.decompress(blob)))
    deq = from_official(theirs["deq"])
    assert ours.keys() == deq.keys()
    for k in ours:
        assert torch.equal(ours[k], deq[k]), k


def _tiny_data():
    from trainer.tinydata import ensure_tiny_data

    return ensure_tiny_data()


def test_same_first_training_losses_with_priming(official, tmp_path):
    """From the official script's own init (saved by the patched copy), both run 2 priming steps
    (weights, optimizer state and data then restored) and 3 training steps on the same stream."""
    td = _tiny_data()
    shape = dict(VOCAB_SIZE=1024, NUM_LAYERS=2, MODEL_DIM=64, NUM_HEADS=4, NUM_KV_HEADS=2, TRAIN_SEQ_LEN=64,
                 TRAIN_BATCH_TOKENS=1024, ITERATIONS=3, WARMUP_STEPS=2, WARMDOWN_ITERS=1200, VAL_LOSS_EVERY=0,
                 TRAIN_LOG_EVERY=1, VAL_BATCH_SIZE=8192, MAX_WALLCLOCK_SECONDS=0)
    env = {k: str(v) for k, v in shape.items()}
    env.update(DATA_PATH=str(td.dataset_dir), TOKENIZER_PATH=str(td.model), RUN_ID="parity", SEED="1337")
    run_official(official, "off.main()\n", tmp_path, env)
    log = (tmp_path / "logs" / "parity.txt").read_text()
    theirs = [float(m) for m in re.findall(r"^step:\d+/3 train_loss:([\d.]+)", log, re.M)]
    assert len(theirs) == 3 and "warmup_step:2/2" in log

    from trainer.run import train

    cfg = resolve_config("baseline", sets={k.lower(): v for k, v in env.items()} | {"device": "cpu"},
                         use_env=False)[0]
    init = from_official(torch.load(tmp_path / "official_init.pt"))
    res = train(cfg, out_dir=tmp_path / "ours", echo=False, probe=False, init_state=init)
    assert len(res.losses) == 3
    print(f"first losses: golfcheck {res.losses}, official {theirs}")
    for a, b in zip(res.losses, theirs):
        assert abs(a - b) < 1e-3, (res.losses, theirs)
    assert res.losses[2] < res.losses[0]  # it trained


def test_every_official_env_var_with_its_default():
    """Each `os.environ.get("NAME", default)` of the official script is a setting of the default
    preset (baseline) with the same value."""
    import ast

    if not OFFICIAL.is_file():
        pytest.skip(f"optional resource missing: {OFFICIAL}")
    tree = ast.parse(OFFICIAL.read_text(encoding="utf-8"))
    cfg = resolve_config(use_env=False)[0]
    assert cfg.preset == "baseline"
    seen = 0
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and ast.unparse(node.func) == "os.environ.get" and len(node.args) == 2):
            continue
        name = node.args[0].value
        if name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
            continue  # torchrun's, read at run time by trainer.run.setup_distributed as by the official script
        try:
            default = ast.literal_eval(node.args[1])
        except ValueError:  # the two computed defaults
            if name == "INT8_KEEP_FLOAT_FP32_NAME_PATTERNS":  # defaults to the control patterns
                assert cfg.int8_keep_float_fp32_name_patterns == cfg.control_tensor_name_patterns
            else:
                assert name == "RUN_ID"  # a fresh uuid per run: ours is "" = a uuid at start
            continue
        ours = getattr(cfg, name.lower())
        if isinstance(ours, bool):
            assert ours == bool(int(default)), name
        elif isinstance(ours, (int, float)):
            assert ours == float(default), name
        else:
            assert ours == str(default), name
        seen += 1
    assert seen >= 37  # the literal defaults of the 2026-05-02 snapshot
