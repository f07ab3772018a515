"""Benchmark of the submission audit (not a test).

1. 50 synthetic record folders (3 seeds each, code + README + submission.json; varied: good ones,
   claims contradicting code, throttled seeds, post-cap GPTQ) audited with `audit_paths` on the
   parent folder. Target: under 10 s.
2. The 30 accepted records of ../shared/fixtures/records/merged (when present), each audited in a
   fresh call: CPU seconds per folder on one core (the audit is single-threaded). Target: < 2 s each.
3. One 200 MB train log (real-looking head and tail, 200 MB of progress lines between) parsed
   with the streaming parser: seconds and peak RSS growth.

Prints the figures and one JSON line.

    .venv/bin/python benchmarks/bench_submission.py [--records 50] [--log-mb 200]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_records(parent: Path, n: int) -> None:
    from record_factory import GOOD_README, code_with, make_record

    for i in range(n):
        kind = i % 4
        opts: dict = {}
        if kind == 1:
            opts["readme"] = GOOD_README.format(mean=1.08) + "\nNo TTT.\n"
        elif kind == 2:
            opts["per_seed"] = {2026: {"step_ms": 152.58, "steps": 3933, "value": 1.087}}
        elif kind == 3:
            opts["code"] = code_with(order="train-first")
            opts["log_options"] = {"train_ms": 599_800, "reserve_s": None,
                                   "post_work": ["gptq:generated 64 sequences in 210619ms"]}
        make_record(parent, f"2026-05-{i:03d}_bench", **opts)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=50)
    ap.add_argument("--log-mb", type=int, default=200)
    a = ap.parse_args()
    from audit.submission import audit_paths
    from audit.submission.logs import parse_log
    from test_submission_logs import _big_log

    figures: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        parent = Path(tmp) / "records"
        build_records(parent, a.records)
        t = time.perf_counter()
        reps = audit_paths([parent], sota=1.1147)
        dt = time.perf_counter() - t
        verdicts: dict[str, int] = {}
        for r in reps:
            verdicts[r.final_verdict] = verdicts.get(r.final_verdict, 0) + 1
        figures.update(records=len(reps), audit_s=round(dt, 3), per_record_ms=round(1000 * dt / len(reps), 1),
                       verdicts=verdicts, under_10s=dt < 10)
        print(f"{len(reps)} record folders audited in {dt:.2f} s ({1000 * dt / len(reps):.1f} ms each); "
              f"verdicts {verdicts}")
        merged = ROOT.parent / "shared" / "fixtures" / "records" / "merged"
        if merged.is_dir():
            from audit.submission import audit_submission

            per = {}
            for d in sorted(p for p in merged.iterdir() if p.is_dir()):
                c0 = time.process_time()
                audit_submission(d)
                per[d.name] = time.process_time() - c0
            worst = max(per, key=per.get)
            figures.update(conformance_folders=len(per), conformance_max_cpu_s=round(per[worst], 3),
                           conformance_total_cpu_s=round(sum(per.values()), 2), conformance_under_2s=per[worst] < 2)
            print(f"{len(per)} accepted records: {sum(per.values()):.2f} CPU s in all, slowest {per[worst]:.2f} s "
                  f"({worst})")
        log = _big_log(Path(tmp) / "train_seed9.log", a.log_mb)
        size = log.stat().st_size
        r0 = rss_mb()
        t = time.perf_counter()
        lg = parse_log(log)
        dt = time.perf_counter() - t
        figures.update(log_mb=round(size / 1e6, 1), log_lines=lg.lines, log_parse_s=round(dt, 2),
                       log_mb_per_s=round(size / 1e6 / dt, 1), log_rss_growth_mb=round(rss_mb() - r0, 1))
        print(f"{size / 1e6:.0f} MB log ({lg.lines:,} lines) parsed in {dt:.2f} s "
              f"({size / 1e6 / dt:.0f} MB/s), peak RSS grew {rss_mb() - r0:.1f} MB; "
              f"score {lg.score_metric().label} {lg.score_metric().val_bpb}")
    print(json.dumps({"benchmark": "submission", **figures}))
    return 0 if figures["under_10s"] and figures.get("conformance_under_2s", True) else 1


if __name__ == "__main__":
    sys.exit(main())
