"""The artifact: code + compressed model ≤ 16,000,000 bytes, as the records count it.

Accepted convention (../shared/fixtures/records/merged/EXPECTED.md): until mid-April records count
the raw `train_gpt.py` bytes; from then on they count the compressed code the artifact carries
("Code size (compressed): 31385 bytes", built by the script's `_compressed_code_size`: pyminify,
lzma, base85 inside an exec wrapper). The cap applies to the logged total. The raw case is checked
exactly against the shipped file; the compressed case against an upper bound (the same wrapper over
the unminified file), since golfcheck does not run the minifier.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit.rules import Finding, Severity, rule
from audit.submission.checks import Outcome

if TYPE_CHECKING:
    from audit.submission.facts import RecordFacts

F = "submission"
CAP_BYTES = 16_000_000  # decimal, not 16 MiB
FEW_BYTES = 8  # a code-size difference up to this (a trailing newline, CRLF) is a warning
BOUND_SLACK = 1.01  # the logged compressed size may exceed the unminified bound by 1 % (lzma jitter)

ARTIFACT_OVER_CAP = rule(
    "SUB010", "artifact-over-cap", "error", "Artifact (code + compressed model) exceeds 16,000,000 bytes",
    explanation="The cap is decimal: 16,000,000 bytes = code bytes + compressed model bytes, as the log "
                "totals them (raw code, or the compressed code the artifact carries).",
    fix="Shrink the model (quantization, pruning, compression) or the code.", family=F)
CODE_SIZE_MISMATCH = rule(
    "SUB011", "code-size-mismatch", "error", "The shipped code is not the code whose size the log counted",
    explanation="When the log counts raw code bytes, the shipped file must have exactly that size: a "
                "different size means the logs come from other code (a few bytes: a warning). When it "
                "counts compressed code, the logged figure is checked against the same wrapper built "
                "over the shipped file (an upper bound, no minifier); differences are warnings.",
    fix="Ship the exact train_gpt.py that produced the logs (or re-run).", family=F)
TOTAL_MISMATCH = rule(
    "SUB012", "total-size-mismatch", "error", "Logged total differs from logged code + model bytes",
    explanation="`Total submission size` must equal the counted code size + compressed model bytes.",
    fix="Fix the size accounting in the script and re-run.", family=F)
CODE_COMPRESSED = rule(
    "SUB046", "compressed-code-counted", "info", "The code is counted compressed, as the artifact carries it",
    explanation="States the logged compressed code size and the bound golfcheck computes from the shipped "
                "file (lzma + base85 wrapper over the unminified file).",
    fix="Nothing to fix.", family=F)


def check(facts: "RecordFacts") -> Outcome:
    if facts.not_a_record:
        return Outcome([])
    out: list[Finding] = []
    runs = _size_runs(facts)
    totals = []
    for lg in runs:
        total, f = _total(lg)
        out += f
        if total is not None:
            totals.append(total)
            if total > CAP_BYTES:
                out.append(ARTIFACT_OVER_CAP.finding(
                    f"{lg.name}: artifact {total:,} bytes > {CAP_BYTES:,} (over by {total - CAP_BYTES:,})",
                    {"total": total, "cap": CAP_BYTES, "code": lg.code_compressed or lg.code_bytes,
                     "model": lg.model_bytes}, file=lg.name, line=lg.total_line))
    out += _code(facts, runs)
    return Outcome(out, {"artifact bytes (max)": max(totals)} if totals else {})


def _size_runs(facts):
    """The training runs the score rests on (one per seed); every run when nothing is scored."""
    seen, runs = set(), []
    for s in facts.scores:
        for lg in (s.run, *s.reruns):
            if lg.kind == "train" and lg.name not in seen and (lg is s.run or s.run.kind != "train"):
                seen.add(lg.name)
                runs.append(lg)
    return runs or [lg for lg in facts.runs if lg.kind == "train"]


def _total(lg) -> tuple[int | None, list[Finding]]:
    code = lg.code_compressed if lg.code_compressed is not None else lg.code_bytes
    if lg.total_bytes is not None:
        if code is not None and lg.model_bytes is not None and lg.total_bytes != code + lg.model_bytes:
            return lg.total_bytes, [TOTAL_MISMATCH.finding(
                f"{lg.name}: total {lg.total_bytes:,} != code {code:,} + model {lg.model_bytes:,} "
                f"(= {code + lg.model_bytes:,})", {"total": lg.total_bytes, "code": code, "model": lg.model_bytes},
                file=lg.name, line=lg.total_line)]
        return lg.total_bytes, []
    if code is not None and lg.model_bytes is not None:
        return code + lg.model_bytes, []
    return None, []


def _code(facts, runs) -> list[Finding]:
    if facts.code is None:
        return []
    shipped, rel = facts.code.size, facts.code.rel
    out: list[Finding] = []
    raw_diff = [(lg, lg.code_bytes) for lg in runs if lg.code_compressed is None and lg.code_bytes is not None
                and lg.code_bytes != shipped]
    claimed_code = facts.sub.get("bytes_code") if isinstance(facts.sub, dict) else None
    for lg, logged in raw_diff:
        d = logged - shipped
        # An error when the artifact size the submission claims rests on the code that ran, not the
        # shipped file; a warning when the submission re-counted its artifact with the shipped file
        # (its bytes_code is the shipped size), or when a few bytes differ.
        recounted = isinstance(claimed_code, int) and claimed_code == shipped
        sev = Severity.WARNING if abs(d) <= FEW_BYTES or recounted else None
        out.append(CODE_SIZE_MISMATCH.finding(
            f"{rel} is {shipped:,} bytes but {lg.name} logged Code size {logged:,} ({d:+,} bytes): the logs "
            f"come from other code" + (f" ({facts.sub_rel} counts the shipped {shipped:,} bytes)" if recounted else ""),
            {"shipped": shipped, "logged": logged, "log": lg.name},
            severity=sev, file=lg.name, line=lg.code_line))
    comp = [lg for lg in runs if lg.code_compressed is not None]
    if comp:
        bound = facts.code.compressed_estimate
        logged = sorted({lg.code_compressed for lg in comp})
        out.append(CODE_COMPRESSED.finding(
            f"code counted compressed: logged {', '.join(f'{v:,}' for v in logged)} bytes; the lzma+base85 wrapper "
            f"over the shipped {rel} ({shipped:,} bytes, unminified) is {bound:,} bytes",
            {"logged": logged, "bound_unminified": bound, "shipped_raw": shipped}, file=rel))
        for lg in comp:
            if bound is not None and lg.code_compressed > bound * BOUND_SLACK:
                out.append(CODE_SIZE_MISMATCH.finding(
                    f"{lg.name} logged compressed code {lg.code_compressed:,} bytes, more than the {bound:,} bytes "
                    f"the shipped {rel} compresses to even unminified: other code ran", {"logged": lg.code_compressed,
                                                                                          "bound": bound},
                    severity=Severity.WARNING, file=lg.name, line=lg.code_compressed_line))
        raws = sorted({lg.code_uncompressed for lg in comp if lg.code_uncompressed not in (None, shipped)})
        if raws:
            lg0 = next(lg for lg in comp if lg.code_uncompressed in raws)
            out.append(CODE_SIZE_MISMATCH.finding(
                f"{rel} is {shipped:,} bytes but the logs report uncompressed code of "
                f"{', '.join(f'{v:,}' for v in raws)} bytes: the shipped file is not byte-identical to the code "
                f"that ran (the counted size is the compressed one)", {"shipped": shipped, "logged_uncompressed": raws},
                severity=Severity.WARNING, file=lg0.name, line=lg0.code_line))
    return out
