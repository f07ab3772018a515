"""Rich terminal rendering: a summary panel, a findings table and the figure tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table as RichTable

from audit.report import Report

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def print_report(r: Report, console: Console) -> None:
    style = "bold green" if r.passed else "bold red"
    console.rule(f"[bold]{r.kind} audit[/]: {r.subject}  [{style}]{r.final_verdict}[/]")
    if r.summary:
        t = RichTable(show_header=False, box=None, pad_edge=False)
        t.add_column(style="dim")
        t.add_column()
        for k, v in r.summary.items():
            t.add_row(str(k), _fmt(v))
        console.print(t)
    if r.findings:
        t = RichTable(title="Findings", show_lines=False, expand=False)
        for col in ("rule", "severity", "message", "fix"):
            t.add_column(col, overflow="fold")
        for f in r.sorted_findings():
            t.add_row(f"{f.rule_id}\n{f.rule_name}", f"[{_STYLE[f.severity.value]}]{f.severity.value}[/]",
                      f.message, f.fix)
        console.print(t)
    else:
        console.print("[green]No findings.[/]")
    for tab in r.tables:
        t = RichTable(title=tab.title)
        for c in tab.columns:
            t.add_column(str(c), overflow="fold")
        for row in tab.rows[:50]:
            t.add_row(*[_fmt(c) for c in row])
        if len(tab.rows) > 50:
            t.caption = f"{len(tab.rows) - 50} more rows in --json / --markdown"
        console.print(t)


def print_reports(reports: list[Report], console: Console | None = None) -> None:
    console = console or Console()
    if len(reports) > 1:
        t = RichTable(title="Summary")
        for c in ("subject", "kind", "verdict", "errors", "warnings"):
            t.add_column(c)
        for r in reports:
            style = "green" if r.passed else "red"
            t.add_row(r.subject, r.kind, f"[{style}]{r.final_verdict}[/]", str(len(r.errors)),
                      str(len(r.warnings)))
        console.print(t)
    for r in reports:
        print_report(r, console)
