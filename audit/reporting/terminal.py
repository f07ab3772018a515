"""Terminal writer: verdict first, findings, figure tables, verdict last.

Every piece of report text goes into rich as a `Text` object, never as markup: a `[/]` or `[bold]`
in a submission.json or a file name is shown as written, not parsed (rich would raise
MarkupError on the former). Colour only when asked for (the CLI asks when stdout is a terminal
and NO_COLOR is unset); without colour the output is plain text.
"""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from rich.padding import Padding
from rich.table import Table as RichTable
from rich.text import Text

from audit.report import Report
from audit.reporting.summary import summary_line
from audit.reporting.text import MISSING, fmt_value, neutralise_workflow_commands, show_text, truncate_middle

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
MAX_ROWS = 50
NAME_WIDTH = 48  # long names (paths, pieces) are shortened in the middle to this many characters


def _verdict_style(r: Report) -> str:
    return "bold green" if r.passed else "bold red"


def _cell(v: Any, column: str | None = None) -> Text:
    s = fmt_value(v, column)
    if len(s) > NAME_WIDTH and " " not in s:  # one long word (a path, a piece): keep both ends
        s = truncate_middle(s, NAME_WIDTH)
    return Text(s)


def _summary_table(r: Report) -> RichTable:
    t = RichTable(show_header=False, box=None, pad_edge=False)
    t.add_column(style="dim", no_wrap=True)
    t.add_column()
    for k, v in r.summary.items():
        t.add_row(Text(show_text(str(k))), _cell(v, str(k)))
    return t


def _findings_table(r: Report) -> RichTable:
    t = RichTable(title="Findings", expand=False)
    t.add_column("rule", no_wrap=True)
    t.add_column("severity", no_wrap=True)
    t.add_column("message")  # wraps between words
    t.add_column("where")
    for f in r.sorted_findings():
        where = f.location or (f"{f.file}:{f.line}" if f.file and f.line else f.file) or MISSING
        t.add_row(Text(f.rule_id), Text(f.severity.value, style=_STYLE[f.severity.value]),
                  Text(show_text(f.message)), _cell(where))
    return t


def _natural_width(tab, cells: list[list[str]]) -> int:
    widths = [len(str(c)) for c in tab.columns]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    return sum(widths) + 3 * len(widths) + 1


def _figure_table(tab, console: Console) -> None:
    """A table when it fits the width; else one line per row (`seed 42: steps 6,500, …`), which
    wraps between words instead of cutting numbers or folding names mid-word."""
    rows = tab.rows[:MAX_ROWS]
    cells = [[_cell(c, str(col)).plain for c, col in zip(row, tab.columns)] for row in rows]
    title = show_text(tab.title)
    more = f"{len(tab.rows) - MAX_ROWS:,} more rows in --format json / markdown" if len(tab.rows) > MAX_ROWS else None
    if _natural_width(tab, cells) <= console.width:
        t = RichTable(title=title, caption=more)
        for c in tab.columns:
            t.add_column(Text(show_text(str(c))), no_wrap=True)
        for row in cells:
            t.add_row(*[Text(c) for c in row])
        console.print(t)
        return
    console.print(Text(title, style="bold"))
    names = [show_text(str(c)) for c in tab.columns]
    for row in cells:
        head = f"{names[0]} {row[0]}: " if names[0] else f"{row[0]}: "
        rest = ", ".join(f"{n} {c}" for n, c in zip(names[1:], row[1:]))
        console.print(Padding(Text(head + rest), (0, 0, 0, 2)))
    if more:
        console.print(Text(f"  {more}", style="dim"))


def print_report(r: Report, console: Console) -> None:
    console.print(Text(summary_line(r, console.width), style=_verdict_style(r)), soft_wrap=True)
    console.print(Text(f"{r.kind} audit", style="dim"))
    if r.summary:
        console.print(_summary_table(r))
    if r.findings:
        console.print(_findings_table(r))
        for f in r.sorted_findings():
            diff = f.evidence.get("text_diff")
            if isinstance(diff, list) and diff:
                console.print(Text(f"{f.rule_id}: first text difference", style="bold"))
                for line in diff:  # no wrapping: the ^ marker stays under its character
                    console.print(Text("  " + show_text(str(line))), soft_wrap=True)
        fixes = [f for f in r.sorted_findings() if f.fix and f.severity.value != "info"]
        if fixes:
            console.print(Text("How to fix", style="bold"))
            seen = set()
            for f in fixes:
                if f.rule_id in seen:
                    continue
                seen.add(f.rule_id)
                console.print(Text.assemble((f"  {f.rule_id} ", "bold"), show_text(f.fix)))
    else:
        console.print(Text("No findings.", style="green"))
    for tab in r.tables:
        _figure_table(tab, console)
    console.print()


def print_summary(reports: list[Report], console: Console) -> None:
    for r in reports:
        console.print(Text(summary_line(r, console.width), style=_verdict_style(r)), soft_wrap=True)


def make_console(file=None, *, color: bool = False, width: int | None = None) -> Console:
    return Console(file=file, force_terminal=color, no_color=not color, color_system="auto" if color else None,
                   width=width or 100, highlight=False, emoji=False, markup=False, soft_wrap=False,
                   legacy_windows=False)


def format(reports: list[Report], *, color: bool = False, width: int | None = None,
           quiet: bool = False, **_: Any) -> str:
    """The whole terminal output as a string: every report, then one summary line per report.
    `quiet`: only the summary lines."""
    buf = io.StringIO()
    console = make_console(buf, color=color, width=width)
    if not quiet:
        for r in reports:
            print_report(r, console)
    print_summary(reports, console)
    text = "\n".join(line.rstrip() for line in buf.getvalue().split("\n"))
    return neutralise_workflow_commands(text)


def print_reports(reports: list[Report], console: Console | None = None) -> None:
    """Kept for callers that print straight to a console (the demo, the trainer gate)."""
    import sys

    text = format(reports, color=False, width=console.width if console else None)
    (console.file if console else sys.stdout).write(text)
