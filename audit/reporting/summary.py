"""The verdict line every command ends with, one per audited thing:

    records/…/pr1405: invalid — 9 errors, 5 warnings (SUB014, SUB041, TOK001, …)

Plain text (no markup, no colour codes) so it reads the same piped, in a log, and at 80 columns.
"""

from __future__ import annotations

from audit.report import Report
from audit.reporting.text import plural, show_text, truncate_middle

MAX_IDS = 3


def rule_ids(r: Report) -> list[str]:
    """Distinct rule ids, errors first, then warnings (in the report's order)."""
    seen: list[str] = []
    for f in r.errors + r.warnings:
        if f.rule_id not in seen:
            seen.append(f.rule_id)
    return seen


def summary_line(r: Report, width: int = 80) -> str:
    """Subject, verdict and counts always; the subject shortened in the middle only when it does not
    fit; then as many rule ids as the width leaves room for."""
    counts = f"{plural(len(r.errors), 'error')}, {plural(len(r.warnings), 'warning')}"
    core = f": {r.final_verdict} — {counts}"
    subject = show_text(r.subject)
    subject = truncate_middle(subject, max(24, width - len(core) - (13 if r.errors or r.warnings else 0)))
    ids = rule_ids(r)
    tail = ""
    for n in range(min(len(ids), MAX_IDS), 0, -1):
        shown = ", ".join(ids[:n]) + (", …" if len(ids) > n else "")
        if len(subject) + len(core) + len(shown) + 3 <= width or n == 1:
            tail = f" ({shown})"
            break
    return subject + core + tail


def summary_lines(reports: list[Report], width: int = 80) -> list[str]:
    return [summary_line(r, width) for r in reports]
