"""The pull-request comment: at most `MAX_LINES_PER_RECORD` lines per record.

Per record: the verdict line, the claimed and recomputed/corrected scores (when the report has
them), the top reasons with their numbers (errors first), and how many more findings the full
report holds. No links: the comment points at the job summary and the uploaded artifact by name,
so it stays correct wherever it is posted.
"""

from __future__ import annotations

from typing import Any

from audit.report import Report
from audit.reporting.markdown import md_code, md_text
from audit.reporting.text import fmt_value, plural

MAX_LINES_PER_RECORD = 12
TOP_REASONS = 7
MESSAGE_CHARS = 160
_ICON = {"record": "✅", "non-record": "☑️", "pass": "✅", "invalid": "❌", "fail": "❌"}
MARKER = "<!-- golfcheck-records-audit -->"  # lets the posting workflow find and update its comment


def _scores(r: Report) -> str | None:
    """Claimed, recomputed and corrected scores from the report's headline figures."""
    parts = []
    for key, v in r.summary.items():
        k = str(key).lower()
        if any(w in k for w in ("claimed", "corrected", "mean val_bpb", "val_bpb (mean")) and v is not None:
            parts.append(f"{md_text(str(key))} **{md_text(fmt_value(v, str(key)))}**")
    if "seeds" in r.summary:
        parts.append(f"{md_text(fmt_value(r.summary['seeds'], 'count'))} seed(s)")
    return " · ".join(parts[:4]) or None


def _shorten(s: str, n: int = MESSAGE_CHARS) -> str:
    return s if len(s) <= n else s[: n - 1].rstrip() + "…"


def record_lines(r: Report, artifact: str = "golfcheck-report") -> list[str]:
    icon = _ICON.get(r.final_verdict, "❔")
    lines = [f"{icon} {md_code(r.subject)}: **{md_text(r.final_verdict)}** — "
             f"{plural(len(r.errors), 'error')}, {plural(len(r.warnings), 'warning')}"]
    scores = _scores(r)
    if scores:
        lines.append(f"- {scores}")
    reasons = [f for f in r.sorted_findings() if f.severity.value != "info"]
    groups: dict[str, list] = {}  # one line per rule: its first finding, and how many like it
    for f in reasons:
        groups.setdefault(f.rule_id, []).append(f)
    room = MAX_LINES_PER_RECORD - len(lines) - 1  # keep one line for "n more"
    shown = list(groups.values())[:min(TOP_REASONS, room)]
    for fs in shown:
        f = fs[0]
        where = f" ({md_code(f'{f.file}:{f.line}' if f.line else f.file)})" if f.file else ""
        like = f" (+{len(fs) - 1} more like it)" if len(fs) > 1 else ""
        lines.append(f"- **{f.rule_id}** {md_text(_shorten(f.message))}{where}{like}")
    more = len(reasons) - sum(len(fs) for fs in shown)
    if more:
        lines.append(f"- … {more} more in the job summary and the `{artifact}` artifact")
    return lines


def format(reports: list[Report], *, title: str | None = None, artifact: str = "golfcheck-report",
           **_: Any) -> str:
    head = [MARKER, f"### {md_text(title or 'golfcheck records audit')}", ""]
    if not reports:
        return "\n".join(head + ["No record folders were added or changed.", ""])
    body: list[str] = []
    for r in reports:
        body += record_lines(r, artifact) + [""]
    return "\n".join(head + body)
