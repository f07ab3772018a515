#!/usr/bin/env bash
# GPU validation of the record preset on one CUDA machine, in under 10 minutes:
#   1. the CUDA/kernel unit tests (fused CE, varlen attention, compile) — skipped tests say why;
#   2. benchmarks/gpu_validate.py: ms/step, tokens/s, peak memory and compile time of the
#      `record` preset next to the 2026-04-29 record's logged figures (per GPU).
# Usage: benchmarks/gpu_validate.sh [OUT_DIR]   (PY=python to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
OUT="${1:-${OUT:-reports}}"
mkdir -p "$OUT"
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_validate: no CUDA device visible to $PY; nothing to validate" >&2
  exit 2
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
"$PY" -c "import importlib.util as u; print('flash_attn_interface (FA3):', bool(u.find_spec('flash_attn_interface')), ' flash_attn (FA2):', bool(u.find_spec('flash_attn')), ' triton:', bool(u.find_spec('triton')))"
# 1. kernel tests (a few seconds each once compiled)
timeout 240 "$PY" -m pytest -q -rs tests/test_trainer_record_model.py tests/test_trainer_record_fast.py tests/test_trainer_cuda.py \
  -k "fused or cuda or flash" 2>&1 | tee "$OUT/gpu_validate_tests.txt" || echo "gpu_validate: kernel tests failed (see above)"
# 2. the record preset's speed (compile + 2x(3 priming + 30 timed) steps at 98,304 tokens)
timeout 420 "$PY" benchmarks/gpu_validate.py --steps "${STEPS:-30}" --prime 3 --json "$OUT/gpu_validate.json" \
  2>&1 | tee "$OUT/gpu_validate.txt"
