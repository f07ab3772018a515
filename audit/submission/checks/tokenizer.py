"""Tokenizer: a shipped meta runs the tokenizer audit; a non-standard tokenizer that is not
shipped is judged by whether the logs' byte denominator checks out (SUB041)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit.submission.checks import Outcome
from audit.submission import tokcheck
from audit.submission.checks.denominator import TOLERANCE, VAL_BYTES, implied_bytes
from audit.submission.tokcheck import TOKENIZER_FAILED, TOKENIZER_UNVERIFIED  # noqa: F401 - declared there

if TYPE_CHECKING:
    from audit.submission.facts import RecordFacts


def denominator_ok(facts: "RecordFacts") -> bool | None:
    """True when every scored run prints a val token count and its score implies the fixed val set's
    bytes; False when one does not; None when no run can be checked."""
    seen = False
    for s in facts.scores:
        lg = s.run
        if not lg.val_tokens:
            continue
        b = implied_bytes(lg.val_tokens, s.metric.val_loss, s.metric.val_bpb)
        if b is None:
            continue
        seen = True
        if abs(b / (facts.val_bytes or VAL_BYTES) - 1) > TOLERANCE:
            return False
    return True if seen else None


def check(facts: "RecordFacts") -> Outcome:
    if facts.not_a_record:
        return Outcome([])
    summary: dict = {}
    findings, tables = tokcheck.check(facts.folder, list(facts.runs), summary, denominator_ok(facts))
    return Outcome(findings, summary, tables)
