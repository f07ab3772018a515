"""The rule catalogue: every check has a stable id, a severity, a summary, an explanation and a
fix hint. Rules are declared (not implemented) here-style in the modules that check them, by
calling `rule(...)` at import time; `catalogue()` imports all of those modules and returns the
registry. Findings are made from a rule, so a finding can never name an unknown rule.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 2, "warning": 1, "info": 0}[self.value]


@dataclass(frozen=True)
class Rule:
    id: str  # stable, e.g. "TOK001"
    name: str  # kebab-case, e.g. "byte-piece-not-one-byte"
    severity: Severity
    summary: str  # one line: what the rule checks
    explanation: str  # why it matters, what evidence it gives
    fix: str  # how to fix it
    family: str  # "tokenizer", "tokenmonster", "submission", "gate"

    def finding(
        self,
        message: str,
        evidence: dict[str, Any] | None = None,
        *,
        fix: str | None = None,
        location: str | None = None,
        severity: Severity | None = None,
        file: str | None = None,
        line: int | None = None,
    ) -> "Finding":
        if location is None and file is not None:
            location = f"{file}:{line}" if line else file
        return Finding(
            rule_id=self.id,
            rule_name=self.name,
            severity=severity or self.severity,
            message=message,
            evidence=dict(evidence or {}),
            fix=fix or self.fix,
            location=location,
            file=file,
            line=line,
        )


@dataclass
class Finding:
    rule_id: str
    rule_name: str
    severity: Severity
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    fix: str = ""
    location: str | None = None  # "file:line" or a free description of where
    file: str | None = None  # the file the evidence came from, relative to the audited folder
    line: int | None = None  # 1-based line in `file`

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule_id,
            "name": self.rule_name,
            "severity": self.severity.value,
            "message": self.message,
            "evidence": self.evidence,
            "fix": self.fix,
            "location": self.location,
            "file": self.file,
            "line": self.line,
        }


_REGISTRY: dict[str, Rule] = {}

# Modules that declare rules. Importing them fills the registry.
RULE_MODULES = (
    "audit.tokenizer_audit.rules",
    "audit.tokenizers.tokenmonster.rules",
    "audit.submission.rules",
    "audit.submission.preflight",
    "trainer.gate_rules",
)


def rule(
    id: str,
    name: str,
    severity: Severity | str,
    summary: str,
    *,
    explanation: str,
    fix: str,
    family: str,
) -> Rule:
    """Declare a rule. Ids and names are unique across the whole catalogue."""
    sev = Severity(severity)
    r = Rule(id=id, name=name, severity=sev, summary=summary, explanation=explanation.strip(),
             fix=fix.strip(), family=family)
    old = _REGISTRY.get(id)
    if old is not None and old != r:
        raise ValueError(f"rule id {id} declared twice")
    for other in _REGISTRY.values():
        if other.name == name and other.id != id:
            raise ValueError(f"rule name {name} used by {other.id} and {id}")
    _REGISTRY[id] = r
    return r


def catalogue() -> dict[str, Rule]:
    """All rules, sorted by id."""
    for mod in RULE_MODULES:
        importlib.import_module(mod)
    return dict(sorted(_REGISTRY.items()))


def lookup(id_or_name: str) -> Rule | None:
    cat = catalogue()
    key = id_or_name.strip()
    if key.upper() in cat:
        return cat[key.upper()]
    for r in cat.values():
        if r.name == key:
            return r
    return None
