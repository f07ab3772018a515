"""The bundled example records (fixtures/records, written by the project for `make demo`) and the
50-folder timing target."""

from __future__ import annotations

import time
from pathlib import Path

from audit.submission import audit_paths, audit_submission
from record_factory import GOOD_README, code_with, make_record

RECORDS = Path(__file__).resolve().parents[1] / "fixtures" / "records"


def test_bundled_examples_have_the_expected_verdicts():
    reps = {Path(r.subject).name: r for r in audit_paths([RECORDS])}
    assert set(reps) == {"example_sp1024_ttt_record", "invalid_no_ttt_claim_post_cap_gptq"}
    good = reps["example_sp1024_ttt_record"]
    assert good.final_verdict == "record" and not good.warnings
    bad = reps["invalid_no_ttt_claim_post_cap_gptq"]
    assert bad.final_verdict == "invalid"
    assert {"SUB014", "SUB022", "SUB030"} <= {f.rule_id for f in bad.errors}
    assert {"SUB019", "SUB023"} <= {f.rule_id for f in bad.warnings}
    # the demo's convention: names starting with "invalid" are expected to fail
    for name, r in reps.items():
        assert r.passed == (not name.startswith(("invalid", "bad")))


def test_fifty_record_folders_under_ten_cpu_seconds(tmp_path):
    for i in range(50):
        opts = {} if i % 2 else {"readme": GOOD_README.format(mean=1.08) + "\nNo TTT.\n",
                                 "code": code_with(order="train-first")}
        make_record(tmp_path, f"r{i:02d}", **opts)
    t = time.process_time()  # CPU seconds, not wall time: the machine may be busy
    reps = audit_paths([tmp_path], sota=1.1147)
    dt = time.process_time() - t
    assert len(reps) == 50 and dt < 10, dt
    assert sum(r.final_verdict == "invalid" for r in reps) == 25


def test_records_under_tracks_are_found(tmp_path):
    make_record(tmp_path / "records" / "track_10min_16mb", "a")
    make_record(tmp_path / "records" / "track_non_record_16mb", "b")
    reps = audit_paths([tmp_path / "records"])
    assert sorted((Path(r.subject).name, r.final_verdict) for r in reps) == [("a", "record"), ("b", "non-record")]
    assert audit_submission(tmp_path / "records" / "track_10min_16mb" / "a").final_verdict == "record"
