"""Significance against SOTA: one-sided Welch t-test at 0.005 nats, p < 0.01."""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit.rules import rule
from audit.submission.checks import Outcome
from audit.submission import stats as S

if TYPE_CHECKING:
    from audit.submission.facts import RecordFacts

F = "submission"
MARGIN_NATS = 0.005
P_THRESHOLD = 0.01

NOT_SIGNIFICANT = rule(
    "SUB020", "not-significant", "warning",
    "The improvement over SOTA is not significant at 0.005 nats, p < 0.01",
    explanation="A record must beat SOTA by at least 0.005 nats with p < 0.01 (one-sided Welch "
                "t-test over the per-seed values).",
    fix="Add seeds, or submit as non-record.", family=F)
SIGNIFICANCE = rule(
    "SUB021", "significance", "info", "Significance test against the given SOTA",
    explanation="States the test, the BPB<->nats conversion used, t, df and p.",
    fix="Nothing to fix.", family=F)
SIGNIFICANCE_UNTESTED = rule(
    "SUB037", "significance-untested", "info", "No SOTA was given; significance was not tested",
    explanation="Pass --sota BPB or --sota RECORD_DIR to test the improvement.",
    fix="Run with --sota.", family=F)


def result(facts: "RecordFacts"):
    """The test against the given SOTA: (values, label, Significance | None); values None when no SOTA."""
    values, label = facts.sota
    vals = facts.score_values
    if values is None or len(vals) < 2:
        return values, label, None
    return values, label, S.significance(vals, values)


def check(facts: "RecordFacts") -> Outcome:
    if facts.not_a_record:
        return Outcome([])
    values, label, sig = result(facts)
    vals = facts.score_values
    summary = {"BPB↔nats": S.CONVERSION}
    if values is None:
        return Outcome([SIGNIFICANCE_UNTESTED.finding("no --sota given: the improvement was not tested", {})], summary)
    if sig is None:
        return Outcome([NOT_SIGNIFICANT.finding(
            f"{len(vals)} per-seed value(s): a t-test against SOTA {label} needs at least 2 seeds",
            {"seeds": len(vals), "sota": label})], summary)
    ev = sig.as_dict() | {"sota": label, "conversion": S.CONVERSION, "values": vals}
    bpt = [s.metric.val_loss / (s.metric.val_bpb * S.LN2) for s in facts.scores if s.metric.val_bpb > 0]
    if bpt:
        ev["bytes_per_token (logs)"] = S.mean(bpt)
        ev["improvement_nats_per_token"] = sig.improvement_bpb * S.LN2 * S.mean(bpt)
    text = (f"{sig.test}: mean {sig.mean:.5f} vs SOTA {sig.sota_mean:.5f} ({label}): improvement "
            f"{sig.improvement_bpb:.5f} BPB = {sig.improvement_nats:.5f} nats/byte, margin 0.005 nats; "
            f"t={sig.t:.3g}, df={sig.df:.3g}, p={sig.p:.3g}")
    summary["significance"] = f"p={sig.p:.3g} ({'significant' if sig.significant else 'not significant'})"
    return Outcome([(SIGNIFICANCE if sig.significant else NOT_SIGNIFICANT).finding(text, ev)], summary)
