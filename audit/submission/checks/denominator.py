"""SUB041: the byte denominator, checked from the logs alone.

A log's own figures imply the number of bytes its evaluator divided by:
    implied_bytes = scored_val_tokens × val_loss / (val_bpb × ln 2)
(val_loss in nats per token, val_bpb in bits per byte). The fixed FineWeb val set is 151,080,633
UTF-8 bytes (sp1024 decode; the raw documents give 151,080,891). Checked against every log of the
30 accepted records in ../shared/fixtures/records/merged (sp1024, sp4096, sp8192, CaseOps: all
within 0.006 %) and the PR #1143 Scylla logs (+4.12 %, the byte-table over-count reviewers found).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from audit.rules import Finding, Severity, rule
from audit.submission.checks import Outcome

if TYPE_CHECKING:
    from audit.submission.facts import RecordFacts

F = "submission"
VAL_BYTES = 151_080_633
VAL_BYTES_RAW_DOCS = 151_080_891
TOLERANCE = 0.001  # 0.1 %: rounding of 4-decimal log values stays within 0.01 %
SUBSET_10K_RATIO = 0.198  # a 10,000-document val subset holds ~19.8 % of the bytes
# Val token counts of the published tokenizers' val streams (from the accepted records' logs).
KNOWN_VAL_TOKENS = {"fineweb_1024_bpe": 62_021_632, "fineweb_8192_bpe": 40_540_160}

DENOMINATOR = rule(
    "SUB041", "byte-denominator-from-logs", "error",
    "The byte count a log's score was divided by is not the fixed val set's",
    explanation="For every log with a final metric and a val token count, implied bytes = tokens × "
                "val_loss / (val_bpb × ln 2) must equal the 151,080,633 bytes of the fixed FineWeb val set "
                "(within 0.1 %), whatever the tokenizer. A larger figure means the byte table over-counts "
                "(the score looks better than it is); a much smaller one, a val subset or another stream. "
                "The finding gives the implied bytes, the ratio and the corrected score "
                "(claimed × implied / 151,080,633). A pass whose loss and BPB are in different units (a "
                "byte-level mixture) cannot form the ratio; it is named, not counted.",
    fix="Compute BPB over the full val set with an exact byte table (`audit tokenizer --fix`).", family=F)


def implied_bytes(tokens: int, val_loss: float, val_bpb: float) -> float | None:
    if tokens <= 0 or val_bpb <= 0 or val_loss <= 0 or not math.isfinite(val_loss * val_bpb):
        return None
    return tokens * val_loss / (val_bpb * math.log(2))


def check(facts: "RecordFacts") -> Outcome:
    if facts.not_a_record:
        return Outcome([])
    out: list[Finding] = []
    ratios = []
    scored = {id(s.run): s for s in facts.scores}
    val_bytes = facts.val_bytes or VAL_BYTES
    for lg in facts.runs:
        if not lg.val_tokens:
            continue
        figs = [(m, implied_bytes(lg.val_tokens, m.val_loss, m.val_bpb)) for m in lg.metrics]
        figs = [(m, b) for m, b in figs if b is not None]
        if not figs:
            continue
        # The log's denominator: the figure most of its passes agree on (the most precise first).
        best = max(figs, key=lambda mb: (sum(abs(b / mb[1] - 1) <= TOLERANCE for _, b in figs),
                                         mb[0].decimals + mb[0].loss_decimals))
        ref = best[1]
        odd = [(m, b) for m, b in figs if abs(b / ref - 1) > TOLERANCE]
        ratio = ref / val_bytes
        ratios.append(ratio)
        s = scored.get(id(lg))
        if odd:
            out.append(DENOMINATOR.finding(
                f"{lg.name}: the ratio cannot be formed for {', '.join(f'`{m.label}` (line {m.line})' for m, _ in odd[:3])}"
                f": its loss and BPB are not in matching units (implied {odd[0][1]:,.0f} bytes, while the log's "
                f"other passes imply {ref:,.0f})", {"log": lg.name, "labels": [m.label for m, _ in odd]},
                severity=Severity.INFO, file=lg.name, line=odd[0][0].line))
        if abs(ratio - 1) <= TOLERANCE:
            continue
        out.append(_off(facts, lg, best[0], ref, ratio, s, val_bytes))
    if ratios:
        worst = max(ratios, key=lambda r: abs(r - 1))
        text = (f"{min(ratios) * val_bytes:,.0f}–{max(ratios) * val_bytes:,.0f} bytes implied "
                f"({(worst - 1) * 100:+.4f} % at most)")
    else:
        text = "not checkable: no log prints a val token count"
    return Outcome(out, {"byte denominator (logs)": text})


def _off(facts, lg, metric, ref, ratio, s, val_bytes: int) -> Finding:
    claimed = s.metric.val_bpb if s is not None else metric.val_bpb
    corrected = claimed * ratio
    ev = {"log": lg.name, "val_tokens": lg.val_tokens, "implied_bytes": round(ref), "val_bytes": val_bytes,
          "ratio": ratio, "claimed_bpb": claimed, "corrected_bpb": corrected, "metric": metric.label,
          "cause": _cause(lg, ratio)}
    return DENOMINATOR.finding(
        f"{lg.name}: {lg.val_tokens:,} tokens × val_loss {metric.loss_text} / (val_bpb {metric.bpb_text} × ln 2) "
        f"= {ref:,.0f} bytes, {(ratio - 1) * 100:+.2f} % vs the {val_bytes:,}-byte val set; corrected score "
        f"{claimed:.5f} × {ratio:.4f} = {corrected:.5f}" + (f" ({ev['cause']})" if ev["cause"] else ""),
        ev, file=lg.name, line=metric.line)


def _cause(lg, ratio: float) -> str | None:
    if abs(ratio - SUBSET_10K_RATIO) < 0.01:
        return "a 10,000-document val subset"
    stem = (lg.tokenizer.get("tokenizer_path") or "").replace("\\", "/").rsplit("/", 1)[-1].split(".")[0]
    known = KNOWN_VAL_TOKENS.get(stem)
    if known is not None and lg.val_tokens != known:
        return f"a val stream of {lg.val_tokens:,} tokens, not the {known:,} of the canonical {stem} val set"
    if ratio > 1:
        return "the byte table counts more bytes than the text has (e.g. byte-fallback pieces over-counted)"
    return "fewer bytes than the val set: a subset or a transformed (e.g. casefolded) val stream"
