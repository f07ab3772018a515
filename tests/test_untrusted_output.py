"""Untrusted text in every output (issue 12, point 3): a `[/]` in a submission or a path must not
crash the rich terminal output (MarkupError), and no file name, message or piece may start a line
that the GitHub Actions runner would read as a workflow command (`::error …`). Only the writers'
long-standing entry points are used, so these tests also run against the code before the fix."""

from __future__ import annotations

import io
import json

from rich.console import Console

from audit.cli import cli
from audit.cli.common import run_guarded
from audit.report import Report, Table
from audit.reporting.github import annotation, report_annotations
from audit.reporting.jsonfmt import write_json
from audit.reporting.markdown import render_markdown, write_markdown
from audit.reporting.terminal import print_reports
from audit.rules import catalogue
from record_factory import make_record


def _hostile_report():
    r = Report(kind="submission", subject="recs/[/]x\n::error file=README.md::spoofed", verdict="invalid")
    r.add(catalogue()["SUB022"].finding(
        "README says [bold]no TTT[/] [/]\n::error::spoofed too\r\n::set-env name=X::1",
        {"name": "[/] \udcff"}, location="a,b:c\n::warning::x.md:3"))
    r.summary = {"name": "[/]", "bad bytes": "\udcff\udcfe"}
    r.tables.append(Table("t [/]", ["seed", "piece"], [[1, "[/]\n::error::x"]]))
    return r


def _terminal(reports) -> str:
    buf = io.StringIO()
    print_reports(reports, Console(file=buf, width=100))
    return buf.getvalue()


def _commands(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.lstrip().startswith("::")]


def test_markup_in_untrusted_text_is_shown_not_parsed():
    out = _terminal([_hostile_report()])  # raised rich.errors.MarkupError before the fix
    assert "[/]" in out and "[bold]no TTT[/]" in out


def test_no_untrusted_line_becomes_a_workflow_command():
    reps = [_hostile_report()]
    assert _commands(_terminal(reps)) == []
    assert _commands(render_markdown(reps)) == []
    gh = report_annotations(reps[0])
    assert len(gh) == 1 and "\n" not in gh[0] and "\r" not in gh[0]
    assert gh[0].startswith("::error file=recs/[/]x%0A%3A%3Aerror file=README.md%3A%3Aspoofed/a%2Cb%3Ac%0A")
    assert "::spoofed too%0D%0A%3A%3Aset-env" not in gh[0] and "spoofed too%0D%0A::set-env" in gh[0]
    assert annotation("error", "50% done\nnext", file="a,b:c.py", line=3, title="SUB001 x") == \
        "::error file=a%2Cb%3Ac.py,line=3,title=SUB001 x::50%25 done%0Anext"


def test_reports_with_non_utf8_names_are_written(tmp_path):
    reps = [_hostile_report()]
    write_markdown(reps, tmp_path / "r.md")  # a lone surrogate could not be encoded before the fix
    write_json(reps, tmp_path / "r.json")
    assert "\\\\xff\\\\xfe" in (tmp_path / "r.md").read_text(encoding="utf-8")  # \xff, Markdown-escaped
    doc = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert doc["reports"][0]["summary"]["bad bytes"] == "\\xff\\xfe"


def test_cli_with_markup_in_the_record_path(tmp_path, capsys):
    # "[/]" spread over two folder names: the subject printed by the CLI contains it
    d = make_record(tmp_path / "[" / "]recs", "rec")
    assert run_guarded(cli, ["submission", str(d)]) == 0
    assert "[/]recs" in capsys.readouterr().out


def test_error_line_with_a_crafted_path_stays_one_line(tmp_path, capsys):
    bad = str(tmp_path / "missing\n::error file=README.md::spoofed")
    assert run_guarded(cli, ["submission", bad]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "missing\\x0a::error" in err
