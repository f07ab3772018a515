"""Core plumbing: catalogue invariants, report writers, error guard, atomic writes."""

from __future__ import annotations

import json

import click
import pytest

from audit.cli.common import run_guarded
from audit.errors import InputError
from audit.report import Report, Table, exit_code
from audit.reporting import render_json, render_markdown
from audit import rules as rules_mod
from audit.rules import Severity, catalogue, rule


@pytest.fixture(autouse=True)
def _forget_test_rules():
    """Rules declared here are test-only: keep them out of the real catalogue afterwards."""
    yield
    for rid in [k for k in rules_mod._REGISTRY if k.startswith("ZZZ")]:
        del rules_mod._REGISTRY[rid]


def test_catalogue_ids_are_unique_and_complete():
    cat = catalogue()
    names = [r.name for r in cat.values()]
    assert len(names) == len(set(names))
    for rid, r in cat.items():
        assert rid == r.id
        assert r.summary and r.explanation and r.fix, rid
        assert r.family in {"tokenizer", "tokenmonster", "submission", "preflight", "gate"}, rid


def test_duplicate_rule_id_is_refused():
    r = rule("ZZZ999", "test-only-rule", "info", "s", explanation="e", fix="f", family="gate")
    with pytest.raises(ValueError):
        rule("ZZZ999", "test-only-rule-2", "info", "s", explanation="e", fix="f", family="gate")
    assert r.finding("m").severity is Severity.INFO


def test_report_exit_codes_and_writers():
    r = rule("ZZZ998", "test-only-error", "error", "s", explanation="e", fix="do x", family="gate")
    ok = Report("tokenizer", "a")
    bad = Report("tokenizer", "b", summary={"bytes": 12}, tables=[Table("t", ["id", "n"], [[1, 2]])])
    bad.add(r.finding("broken", {"ids": [1, 2]}))
    assert exit_code([ok]) == 0 and exit_code([ok, bad]) == 1
    doc = json.loads(render_json([ok, bad]))
    assert doc["schema"] == "golfcheck.report" and doc["schema_version"] == 1
    assert doc["exit_code"] == 1
    assert doc["reports"][1]["findings"][0]["rule"] == "ZZZ998"
    assert doc["reports"][1]["findings"][0]["evidence"] == {"ids": [1, 2]}
    md = render_markdown([ok, bad])
    assert "ZZZ998" in md and "| 1 | 2 |" in md


def test_guard_turns_input_error_into_exit_2(capsys):
    @click.command()
    def boom():
        raise InputError("x.bin", "wrong magic\n 7")

    assert run_guarded(boom, []) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: x.bin: wrong magic 7"


def test_progress_bar_on_a_terminal_and_silent_otherwise(monkeypatch, capsys):
    import sys

    from audit import progress

    progress.set_enabled(True)  # an earlier CLI test with --quiet may have switched it off
    with progress.progress("quiet pass", 3) as bar:  # stderr is not a terminal under pytest
        bar.advance()
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with progress.progress("long pass", 3) as bar:
        assert type(bar).__name__ == "_Bar"
        bar.advance(3)
    progress.set_enabled(False)
    try:
        with progress.progress("disabled by --quiet", 3) as bar:
            assert type(bar).__name__ == "_Silent"
    finally:
        progress.set_enabled(True)
