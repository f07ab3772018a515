"""Markdown writer: a PR comment / `$GITHUB_STEP_SUMMARY` friendly rendering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audit.atomic import write_text_atomic
from audit.report import Report

_ICON = {"error": "❌", "warning": "⚠️", "info": "ℹ️"}


def _cell(v: Any) -> str:
    if isinstance(v, float):
        s = f"{v:.6g}"
    elif isinstance(v, int) and not isinstance(v, bool):
        s = f"{v:,}"
    else:
        s = str(v)
    return s.replace("|", "\\|").replace("\n", " ")


def _table(columns: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(_cell(c) for c in columns) + " |",
           "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def render_report(r: Report, level: int = 2) -> str:
    h = "#" * level
    lines = [f"{h} {r.kind} audit: `{r.subject}` — **{r.final_verdict}**", ""]
    if r.summary:
        lines += _table(["figure", "value"], [[k, v] for k, v in r.summary.items()]) + [""]
    if r.findings:
        lines += [f"{h}# Findings", ""]
        lines += _table(
            ["", "rule", "severity", "message", "fix"],
            [[_ICON[f.severity.value], f"{f.rule_id} {f.rule_name}", f.severity.value,
              f.message, f.fix] for f in r.sorted_findings()],
        ) + [""]
        for f in r.sorted_findings():
            if f.evidence:
                lines.append(f"<details><summary>{f.rule_id} evidence</summary>\n")
                lines += _table(["key", "value"], [[k, v] for k, v in f.evidence.items()])
                lines.append("\n</details>\n")
    else:
        lines += ["No findings.", ""]
    for t in r.tables:
        lines += [f"{h}# {t.title}", ""] + _table(t.columns, t.rows) + [""]
    return "\n".join(lines)


def render_markdown(reports: list[Report], title: str | None = None) -> str:
    parts = []
    if title:
        parts.append(f"# {title}\n")
    if len(reports) > 1:
        parts.append("\n".join(_table(
            ["subject", "kind", "verdict", "errors", "warnings"],
            [[f"`{r.subject}`", r.kind, r.final_verdict, len(r.errors), len(r.warnings)]
             for r in reports])) + "\n")
    parts += [render_report(r) for r in reports]
    return "\n".join(parts)


def write_markdown(reports: list[Report], path: str | Path, title: str | None = None) -> None:
    write_text_atomic(path, render_markdown(reports, title))
