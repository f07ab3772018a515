"""The installed package is self-sufficient: the `trainer` and `audit` console scripts, run from a
directory outside the repository (so neither the repository's `fixtures` nor its sources are on
the path), build the tiny preset's data into a fresh cache, train, gate, publish a record, and
audit it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def console(name: str) -> Path:
    exe = Path(sys.executable).with_name(name)
    if not exe.exists():
        pytest.skip(f"console script {name!r} not installed beside {sys.executable} (pip install -e . first)")
    return exe


@pytest.mark.slow
def test_installed_trainer_and_audit_from_outside_the_repo(tmp_path):
    trainer, audit = console("trainer"), console("audit")
    work = tmp_path / "elsewhere"
    work.mkdir()
    assert ROOT not in work.parents
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RANK", "WORLD_SIZE", "LOCAL_RANK")
           and not k.startswith(("TTT_", "NUM_", "ITERATIONS", "DATA_PATH", "TOKENIZER_PATH"))}
    env.update(GOLFCHECK_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    probe = subprocess.run([sys.executable, "-c", "import fixtures"], cwd=work, env=env, capture_output=True, text=True)
    assert probe.returncode != 0  # the repository's fixtures package is not reachable from here
    sets = ["iterations=6", "warmup_steps=1", "val_max_tokens=4096", "ttt_enabled=0", "eval_stride=0",
            "gptq_calib_seqs=2"]
    p = subprocess.run([str(trainer), "run", "--preset", "tiny", "--run-name", "outside", "--quiet",
                        *[a for s in sets for a in ("--set", s)]], cwd=work, env=env, capture_output=True,
                       text=True, timeout=1800)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "Traceback" not in p.stderr
    record = work / "records" / "outside"
    assert (record / "train_gpt.py").is_file() and (record / "tiny_sp1024.model").is_file()
    assert list((tmp_path / "cache").glob("tiny-*/datasets/tiny_sp1024/fineweb_train_000000.bin"))
    # a fixture run is not on the challenge's 151,080,633-byte val set: SUB041 is its only error
    a = subprocess.run([str(audit), "submission", str(record), "-q"], cwd=work, env=env, capture_output=True,
                       text=True, timeout=600)
    assert a.returncode == 1 and "1 error" in a.stdout and "(SUB041" in a.stdout, a.stdout[-3000:] + a.stderr[-3000:]
    a = subprocess.run([str(audit), "submission", str(record), "--ignore", "SUB041"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=600)
    assert a.returncode == 0, a.stdout[-3000:] + a.stderr[-3000:]
