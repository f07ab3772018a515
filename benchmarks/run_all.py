"""Run every benchmark in one go (`make bench`), one after another on a quiet machine, and
collect the one-line JSON figures each prints into benchmarks/out/figures.json.

Benchmarks are not tests: they build full-val-scale synthetic data (gigabytes of shards) and
need ../shared/fixtures for the real tokenizers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [["bench_tokenizer_audit.py"], ["bench_tokenizer_audit.py", "--shape", "multilingual"],
           ["bench_tokenmonster.py"], ["bench_submission.py"], ["bench_bombs.py"], ["bench_trainer.py"]]


def main() -> int:
    figures, failed = {}, []
    for script, *args in BENCHES:
        name = " ".join([script, *args])
        t = time.time()
        print(f"== {name}", flush=True)
        proc = subprocess.run([sys.executable, str(HERE / script), *args], capture_output=True, text=True)
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0:
            failed.append(name)
            sys.stdout.write(proc.stderr[-2000:])
        last = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        figures[name] = {"exit": proc.returncode, "seconds": round(time.time() - t, 1),
                         "figures": json.loads(last[-1]) if last else None}
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures in {HERE / 'out' / 'figures.json'}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
