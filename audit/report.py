"""What every audit returns: a `Report` of findings plus the figures behind them.

One model for all front ends (tokenizer, submission, CI, trainer gate); the writers in
`audit.reporting` render it (terminal, JSON with a versioned schema, Markdown, GitHub annotations,
SARIF, the PR comment).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from audit.rules import Finding, Severity

SCHEMA = "golfcheck.report"
SCHEMA_VERSION = 1


@dataclass
class Table:
    """A titled table of figures (e.g. per-id drift, per-seed values)."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "columns": self.columns, "rows": self.rows}


@dataclass
class Report:
    kind: str  # "tokenizer" | "submission" | "ci" | "gate"
    subject: str  # what was audited (a path, a run name)
    findings: list[Finding] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)  # headline figures, in order
    tables: list[Table] = field(default_factory=list)
    verdict: str | None = None  # overrides the default pass/fail wording when set
    # Series for `--plots` (audit/plots.py), not part of the JSON: "doc_drift" (per-document
    # meta − reference bytes) for a tokenizer audit, "seed_curves" (see plots.plot_seed_curves)
    # for a submission audit.
    plot_data: dict[str, Any] = field(default_factory=dict)

    def add(self, finding: Finding | None) -> None:
        if finding is not None:
            self.findings.append(finding)

    def extend(self, findings) -> None:
        for f in findings:
            self.add(f)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]

    @property
    def passed(self) -> bool:
        return not self.errors

    @property
    def final_verdict(self) -> str:
        return self.verdict or ("pass" if self.passed else "fail")

    def sorted_findings(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: (-f.severity.rank, f.rule_id))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "verdict": self.final_verdict,
            "passed": self.passed,
            "counts": {
                "error": len(self.errors),
                "warning": len(self.warnings),
                "info": len(self.findings) - len(self.errors) - len(self.warnings),
            },
            "summary": self.summary,
            "findings": [f.to_dict() for f in self.sorted_findings()],
            "tables": [t.to_dict() for t in self.tables],
        }


def exit_code(reports: list[Report]) -> int:
    """0 = every report passes, 1 = at least one error-level finding."""
    return 0 if all(r.passed for r in reports) else 1
