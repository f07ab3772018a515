"""Benchmark of hostile inputs (not a test): each small file that used to cost seconds and
gigabytes is built, then the CLI runs on it in a fresh process; the child's CPU time (user +
system), wall time and peak RSS (all from os.wait4) are reported. Target for each: refused
(exit 2, one `error: FILE: …` line; a record folder: a verdict) in under 2 s of CPU and under
300 MB peak RSS. CPU time is the figure judged because on a shared machine wall time mostly
measures the wait for a core (the start-up alone, imports included, is shown as the baseline).

    .venv/bin/python benchmarks/bench_bombs.py [--quick]

--quick skips the 2^27-id bzip2 bomb, whose building alone takes ~6 s of bzip2.
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

MAX_SECONDS, MAX_RSS_MB = 2.0, 300.0


def run_cli(args: list[str], kill_after: float = 60.0) -> dict:
    """The CLI in a fresh process: exit code, wall seconds, peak RSS (MB), the stderr line.
    A run past `kill_after` seconds is killed (exit -9) so one slow case cannot stall the rest."""
    cmd = [sys.executable, "-c", "from audit.cli import main; main()", *map(str, args)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    timer = threading.Timer(kill_after, proc.kill)
    timer.start()
    err = proc.stderr.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    cpu = usage.ru_utime + usage.ru_stime
    return {"exit": proc.returncode, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "stderr": err.strip().splitlines()[-1][:160] if err.strip() else ""}


def build(d: Path, quick: bool) -> list[tuple[str, int, list]]:
    """(name, input bytes, CLI args) for each bomb. A bomb given to `audit tokenizer` must be
    refused (exit 2); one shipped in a record folder must give a verdict (the record is invalid)."""
    import hostile_factory as H
    from audit.tokenizers.purebyte import PureByteTokenizer
    from record_factory import make_record

    meta = d / "pb.meta.npz"
    PureByteTokenizer().canonical_meta().save(meta)
    cases = []
    p = H.meta_deflate_bomb(d / "deflate.meta.npz")
    cases.append(("meta.npz deflate, 2^27 ids", p.stat().st_size, ["tokenizer", p, "--tokenizer", "purebyte", "-q"]))
    p = H.meta_bz2_bomb(d / "bz2lie.meta.npz", ids=1 << 24, declared=1000)
    cases.append(("meta.npz bzip2, 2^24 ids, header lies", p.stat().st_size,
                  ["tokenizer", p, "--tokenizer", "purebyte", "-q"]))
    if not quick:
        p = H.meta_bz2_bomb(d / "bz2.meta.npz")
        cases.append(("meta.npz bzip2, 2^27 ids", p.stat().st_size, ["tokenizer", p, "--tokenizer", "purebyte", "-q"]))
    p = H.vocab_id_bomb(d / "bomb.vocab")
    cases.append((".vocab header claiming 16.7 M ids", p.stat().st_size, ["tokenizer", meta, "--tokenizer", p, "-q"]))
    p = H.yaml_alias_bomb(d / "bomb.yaml", pad=960)
    cases.append(("YAML alias bomb", p.stat().st_size, ["tokenizer", meta, "--tokenizer", p, "-q"]))
    rec = make_record(d / "records", "2026-05-01_bomb")
    H.yaml_alias_bomb(rec / "bomb.yaml", pad=960)
    PureByteTokenizer().canonical_meta().save(rec / "bomb.meta.npz")
    cases.append(("YAML alias bomb in a record folder", (rec / "bomb.yaml").stat().st_size, ["submission", rec, "-q"]))
    rec = make_record(d / "records", "2026-05-01_code", code="x = 1\n" * 1_000_000)
    cases.append(("train_gpt.py of 1 M lines", (rec / "train_gpt.py").stat().st_size, ["submission", rec, "-q"]))
    rec = make_record(d / "records", "2026-05-01_log")
    log = rec / "train_seed42.log"
    with open(log, "a") as fh:
        for _ in range(100):
            fh.write("a" + " " * 60000 + "x\n")
    cases.append(("log with 100 lines of a<60000 spaces>x", log.stat().st_size, ["submission", rec, "-q"]))
    return cases


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    base = run_cli(["rules"])
    print(f"baseline `audit rules` (start-up alone): {base['cpu_seconds']:.2f} s CPU, {base['seconds']:.2f} s wall, "
          f"{base['peak_rss_mb']:.0f} MB peak RSS")
    rows, over = [], []
    with tempfile.TemporaryDirectory(prefix="golfcheck-bombs-") as tmp:
        for name, size, cli_args in build(Path(tmp), args.quick):
            r = run_cli(cli_args)
            if cli_args[0] == "submission":  # a verdict (or a named refusal) for a record folder
                ok = r["exit"] in (0, 1) or (r["exit"] == 2 and "internal error" not in r["stderr"])
            else:
                ok = r["exit"] == 2 and r["stderr"].startswith("error: ") and "internal error" not in r["stderr"]
            ok = ok and r["cpu_seconds"] < MAX_SECONDS and r["peak_rss_mb"] < MAX_RSS_MB
            rows.append({"case": name, "input_bytes": size, **r, "ok": ok})
            if not ok:
                over.append(name)
            print(f"{'ok ' if ok else 'BAD'} {name:<42} {size:>10,} B  exit {r['exit']}  {r['cpu_seconds']:5.2f} s CPU  "
                  f"{r['seconds']:5.2f} s wall  {r['peak_rss_mb']:6.0f} MB  {r['stderr'][:70]}")
    print(json.dumps({"baseline": base, "cases": rows, "over_budget": over}))
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
