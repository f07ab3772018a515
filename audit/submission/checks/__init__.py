"""The submission checks: each module declares its rules and a `check(facts) -> findings` that
reads only the frozen `RecordFacts`. `CHECK_MODULES` is the order `audit_submission` runs them in
(imported on first use, so the folder model can import a rule module without the whole set)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from audit.rules import Finding


@dataclass
class Outcome:
    """What one check returns: its findings, and the headline figures / tables it computed."""

    findings: list[Finding]
    summary: dict[str, Any] = field(default_factory=dict)
    tables: list = field(default_factory=list)

CHECK_MODULES = ("files", "seeds", "sizes", "times", "denominator", "claims", "legality", "tokenizer",
                 "significance")


def all_checks() -> list:
    return [importlib.import_module(f"audit.submission.checks.{name}") for name in CHECK_MODULES]
