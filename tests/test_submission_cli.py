"""`audit submission` through the real CLI entry point: exit codes, outputs, one-line errors."""

from __future__ import annotations

import json

import pytest

from audit.cli import cli
from audit.cli.common import run_guarded
from record_factory import GOOD_README, make_record


def run(argv):
    return run_guarded(cli, argv)


def test_cli_record_and_invalid_with_summary(tmp_path, capsys):
    make_record(tmp_path / "recs", "a_good")
    make_record(tmp_path / "recs", "b_bad", readme=GOOD_README.format(mean=1.08) + "\nNo TTT.\n")
    out = tmp_path / "r.json"
    md = tmp_path / "r.md"
    code = run(["submission", str(tmp_path / "recs"), "--sota", "1.1147", "--json", str(out),
                "--markdown", str(md)])
    assert code == 1
    doc = json.loads(out.read_text())
    verdicts = {r["subject"].rsplit("/", 1)[-1]: r["verdict"] for r in doc["reports"]}
    assert verdicts == {"a_good": "record", "b_bad": "invalid"}
    text = md.read_text()
    assert "a_good" in text and "b_bad" in text and "SUB022" in text
    printed = capsys.readouterr().out.splitlines()
    assert printed[-2].endswith("a_good: record — 0 errors, 0 warnings")
    assert printed[-1].endswith("b_bad: invalid — 1 error, 0 warnings (SUB022)")


def test_cli_pass_exit_0_quiet(tmp_path, capsys):
    d = make_record(tmp_path)
    assert run(["submission", str(d), "-q"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.endswith(": record — 0 errors, 0 warnings\n")  # the verdict line only


@pytest.mark.parametrize("argv,needle", [
    (["submission", "/nonexistent/rec"], "no such file or folder"),
    (["submission", "{tmp}", "--sota", "abc"], "--sota must be a BPB number or a record folder"),
    (["submission", "{tmp}/empty"], "no record folder here"),
])
def test_cli_input_errors_one_line(tmp_path, capsys, argv, needle):
    (tmp_path / "empty").mkdir()
    make_record(tmp_path, "r")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert run(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and needle in err and "\n" not in err


def test_cli_allow_missing_code(tmp_path):
    d = make_record(tmp_path, ship_code=False)
    assert run(["submission", str(d), "-q"]) == 1
    assert run(["submission", str(d), "-q", "--allow-missing-code"]) == 0
