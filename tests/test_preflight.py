"""`audit preflight`: a code-only folder checked before any GPU run (no logs needed)."""

from __future__ import annotations

import shutil

import pytest

from audit.cli import cli
from audit.rules import Severity
from audit.submission.preflight import preflight
from conftest import shared_path
from record_factory import GOOD_README, code_with


def _folder(tmp_path, code, readme=None):
    d = tmp_path / "cand"
    d.mkdir()
    (d / "train_gpt.py").write_text(code)
    if readme is not None:
        (d / "README.md").write_text(readme)
    return d


def test_code_only_folder_ready(tmp_path):
    rep = preflight(_folder(tmp_path, code_with()))
    assert rep.final_verdict == "ready" and not rep.errors
    f = next(f for f in rep.findings if f.rule_id == "PRE001")
    raw = len(code_with().encode())
    assert f.evidence["raw"] == raw and f.evidence["left_raw"] == 16_000_000 - raw
    assert 0 < f.evidence["compressed_bound"] < raw + 200
    assert "SUB031" in {f.rule_id for f in rep.findings}  # score-first TTT read from the code
    reserve = next(f for f in rep.findings if f.rule_id == "PRE002")
    assert reserve.severity is Severity.INFO and "GPTQ_RESERVE_SECONDS" in reserve.message
    plan = next(f for f in rep.findings if f.rule_id == "PRE003")
    assert "TTT_ENABLED" in plan.message


def test_preflight_finds_illegal_order_and_bad_settings(tmp_path):
    code = code_with(order="train-first").replace('"MAX_WALLCLOCK_SECONDS", 600.0', '"MAX_WALLCLOCK_SECONDS", 660.0')
    rep = preflight(_folder(tmp_path, code, readme=GOOD_README.format(mean=1.08) + "\nNo TTT.\n"))
    ids = {f.rule_id for f in rep.errors}
    assert {"SUB030", "SUB022"} <= ids and rep.final_verdict == "fail"
    t = next(f for f in rep.findings if f.rule_id == "PRE002" and f.severity is Severity.WARNING)
    assert "660 s" in t.message and t.line


def test_preflight_cli_and_no_code(tmp_path, capsys):
    from audit.cli.common import run_guarded

    d = _folder(tmp_path, code_with())
    assert run_guarded(cli, ["preflight", str(d), "-q"]) == 0
    assert "ready" in capsys.readouterr().out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_guarded(cli, ["preflight", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {empty}") and "train_gpt.py" in err


def test_preflight_on_a_real_record_script(tmp_path):
    src = shared_path("records", "merged", "2026-04-29_SmearGateBOSFix_3Seed_1.06141")
    d = tmp_path / "r"
    d.mkdir()
    for name in ("train_gpt.py", "README.md", "submission.json"):
        shutil.copy(src / name, d / name)
    rep = preflight(d)
    assert not rep.errors
    assert rep.summary["code bytes (raw)"] == 152_661
    assert rep.summary["code bytes (compressed, bound)"] == pytest.approx(39_365, abs=50)
