"""Markdown writer: a `$GITHUB_STEP_SUMMARY` / report-file friendly rendering.

Untrusted text (file names, messages quoting a submission) is escaped for Markdown: no table
can be broken by a `|`, no HTML, link or @-mention can be injected by a record's contents.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audit.atomic import write_text_atomic
from audit.report import Report
from audit.reporting.summary import summary_line
from audit.reporting.text import fmt_value, show_text

_ICON = {"error": "❌", "warning": "⚠️", "info": "ℹ️"}
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*[]|"} | {"<": "&lt;", ">": "&gt;", "@": "&#64;"})


def md_text(s: str) -> str:
    """Untrusted text as inert Markdown (control characters shown as \\xNN, specials escaped)."""
    return show_text(s).translate(_MD_SPECIAL)


def md_code(s: str) -> str:
    """Untrusted text as an inline code span (a fence longer than any backtick run inside; `|`
    escaped, which GitHub's tables honour inside code spans)."""
    s = show_text(s).replace("|", "\\|")
    longest, cur = 0, 0
    for ch in s:
        cur = cur + 1 if ch == "`" else 0
        longest = max(longest, cur)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def _cell(v: Any, column: str | None = None) -> str:
    return md_text(fmt_value(v, column))


def _table(columns: list[str], rows: list[list[Any]], raw: tuple[int, ...] = ()) -> list[str]:
    """`raw`: indexes of columns whose cells are already Markdown (icons, code spans)."""
    out = ["| " + " | ".join(md_text(str(c)) for c in columns) + " |",
           "|" + "---|" * len(columns)]
    for row in rows:
        cells = [str(c) if i in raw else _cell(c, str(col))
                 for i, (c, col) in enumerate(zip(row, columns))]
        out.append("| " + " | ".join(cells) + " |")
    return out


def _where(f) -> str:
    if f.file:
        return md_code(f"{f.file}:{f.line}" if f.line else f.file)
    return md_text(f.location) if f.location else "—"


def render_report(r: Report, level: int = 2, plots: list[tuple[str, str]] | None = None) -> str:
    h = "#" * level
    lines = [f"{h} {r.kind} audit: {md_code(r.subject)} — **{md_text(r.final_verdict)}**", "",
             md_text(summary_line(r, width=200)), ""]
    if r.summary:
        lines += _table(["figure", "value"], [[k, v] for k, v in r.summary.items()]) + [""]
    if r.findings:
        lines += [f"{h}# Findings", ""]
        lines += _table(
            ["", "rule", "severity", "message", "where", "fix"],
            [[_ICON[f.severity.value], f"{f.rule_id} {f.rule_name}", f.severity.value, f.message,
              _where(f), f.fix] for f in r.sorted_findings()], raw=(0, 4),
        ) + [""]
        for f in r.sorted_findings():
            if f.evidence:
                lines.append(f"<details><summary>{md_text(f.rule_id)} evidence</summary>\n")
                diff = f.evidence.get("text_diff")
                if isinstance(diff, list) and diff:
                    lines += ["```text", *[show_text(str(x)).replace("```", "`\u200b``") for x in diff], "```", ""]
                lines += _table(["key", "value"], [[k, v] for k, v in f.evidence.items() if k != "text_diff"])
                lines.append("\n</details>\n")
    else:
        lines += ["No findings.", ""]
    for t in r.tables:
        lines += [f"{h}# {md_text(t.title)}", ""] + _table(t.columns, t.rows) + [""]
    for caption, path in plots or []:
        lines += [f"![{md_text(caption)}]({path.replace(' ', '%20')})", ""]
    return "\n".join(lines)


def render_markdown(reports: list[Report], title: str | None = None,
                    plots: dict[str, list[tuple[str, str]]] | None = None) -> str:
    """`plots`: per report subject, (caption, image path relative to the Markdown file)."""
    parts = []
    if title:
        parts.append(f"# {md_text(title)}\n")
    if len(reports) > 1:
        parts.append("\n".join(_table(
            ["subject", "kind", "verdict", "errors", "warnings"],
            [[md_code(r.subject), r.kind, r.final_verdict, len(r.errors), len(r.warnings)]
             for r in reports], raw=(0,))) + "\n")
    parts += [render_report(r, plots=(plots or {}).get(r.subject)) for r in reports]
    parts.append("\n".join(f"- {md_text(summary_line(r, width=200))}" for r in reports) + "\n")
    return "\n".join(parts)


def format(reports: list[Report], *, title: str | None = None,
           plots: dict[str, list[tuple[str, str]]] | None = None, **_: Any) -> str:
    return render_markdown(reports, title, plots)


def write_markdown(reports: list[Report], path: str | Path, title: str | None = None,
                   plots: dict[str, list[tuple[str, str]]] | None = None) -> None:
    write_text_atomic(path, render_markdown(reports, title, plots))


_CI_ICON = {"record": "✅", "non-record": "☑️", "invalid": "❌", "pass": "✅", "fail": "❌"}


def render_ci_summary(base: str, head: str, folders: list[tuple[str, str]], reports: list[Report],
                      plots: dict[str, list[tuple[str, str]]] | None = None) -> str:
    """The job summary of `audit ci`: one table row per added/changed/removed record folder, then
    each record's full report."""
    invalid = [r for r in reports if not r.passed or r.final_verdict in ("invalid", "fail")]
    lines = ["# Parameter Golf records audit", "",
             f"`{base[:12]}`…`{head[:12]}`: {plural_folders(len(folders))} added or changed, "
             f"{len(invalid)} invalid.", ""]
    if not folders:
        return "\n".join(lines + ["No record folders were added or changed.", ""])
    lines += ["| record | change | verdict | errors | warnings | seeds | mean val_bpb |",
              "|---|---|---|---|---|---|---|"]
    by = {r.subject: r for r in reports}
    for folder, kind in folders:
        r = by.get(folder)
        if r is None:
            lines.append(f"| {md_code(folder)} | {md_text(kind)} | — | — | — | — | — |")
            continue
        v = r.final_verdict
        lines.append(f"| {md_code(folder)} | {md_text(kind)} | {_CI_ICON.get(v, '')} **{md_text(v)}** | "
                     f"{len(r.errors)} | {len(r.warnings)} | {_cell(r.summary.get('seeds'), 'count')} | "
                     f"{_cell(r.summary.get('mean val_bpb (logs)'))} |")
    lines.append("")
    for r in reports:
        lines.append(render_report(r, level=2, plots=(plots or {}).get(r.subject)))
    lines.append("\n".join(f"- {md_text(summary_line(r, width=200))}" for r in reports) + "\n")
    return "\n".join(lines)


def plural_folders(n: int) -> str:
    return f"{n} record folder" + ("" if n == 1 else "s")
