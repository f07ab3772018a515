"""The submission checks: each module declares its rules and a `check(facts) -> findings` that
reads only the frozen `RecordFacts`. `CHECK_MODULES` is the order `audit_submission` runs them in
(imported on first use, so the folder model can import a rule module without the whole set)."""

from __future__ import annotations

import importlib

CHECK_MODULES = ("files", "seeds", "sizes", "times", "denominator", "claims", "legality", "tokenizer",
                 "significance")


def all_checks() -> list:
    return [importlib.import_module(f"audit.submission.checks.{name}") for name in CHECK_MODULES]
