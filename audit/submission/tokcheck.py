"""Tokenizer checks of a record: a shipped meta runs the tokenizer audit; a non-standard tokenizer
named in the logs without a shipped meta/artifact cannot be verified (an error)."""

from __future__ import annotations

import json

from audit.errors import InputError
from audit.report import Report
from audit.rules import Finding, Severity, rule
from audit.submission.logs import SeedLog
from audit.submission.record import RecordFolder
from audit.tokenizers import tokenizer_stem

F = "submission"

TOKENIZER_UNVERIFIED = rule(
    "SUB034", "custom-tokenizer-unverified", "error",
    "A non-standard tokenizer is used and its byte accounting cannot be verified",
    explanation="Tokenizer changes must prove the byte denominator is right. A shipped tokenizer and meta "
                "run the tokenizer audit. When they are not shipped (hosted elsewhere) but the logs' own "
                "figures show the fixed val set's byte count (SUB041), the score is supported and this is a "
                "warning; with no way to check the denominator at all, it is an error.",
    fix="Ship the tokenizer (.model/.vocab/.yaml) and its meta.npz; run `audit tokenizer` on them.", family=F)
TOKENIZER_FAILED = rule(
    "SUB035", "tokenizer-audit-failed", "error", "The shipped tokenizer meta fails the tokenizer audit",
    explanation="The audit's own findings (TOK/TM ids) are listed next to this one.",
    fix="Fix the meta (`audit tokenizer --fix`) and re-evaluate.", family=F)

# The challenge's published tokenizers; everything else must prove its byte accounting.
STANDARD = {"fineweb_1024_bpe", "fineweb_8192_bpe"}




def named_tokenizers(logs: list[SeedLog]) -> dict[str, str]:
    """tokenizer stem -> evidence, from the logs' tokenizer_path / tokenizer_kind lines."""
    out: dict[str, str] = {}
    for lg in logs:
        path = lg.tokenizer.get("tokenizer_path")
        kind = lg.tokenizer.get("tokenizer_kind", "")
        if path:
            out.setdefault(tokenizer_stem(path), f"{lg.name}: tokenizer_path {path}" + (f" (kind {kind})" if kind else ""))
        elif kind and kind.lower() not in ("sentencepiece", "sp"):
            out.setdefault(f"<{kind}>", f"{lg.name}: tokenizer_kind {kind}")
    return out


def _pair(rec: RecordFolder, meta) -> object | None:
    stem = tokenizer_stem(meta.name)
    for t in rec.tokenizers:
        if tokenizer_stem(t.name) == stem:
            return t
    if rec.manifest is not None:
        try:
            if rec.manifest.stat().st_size < 1_000_000:
                man = json.loads(rec.manifest.read_text("utf-8", "replace"))
                for te in man.get("tokenizers", []) if isinstance(man, dict) else []:
                    if isinstance(te, dict) and tokenizer_stem(str(te.get("meta_path", ""))) == stem:
                        want = tokenizer_stem(str(te.get("path", "")))
                        for t in rec.tokenizers:
                            if tokenizer_stem(t.name) == want:
                                return t
        except (ValueError, RecursionError, OSError):
            pass
    return rec.tokenizers[0] if len(rec.tokenizers) == 1 else None


def check(rec: RecordFolder, logs: list[SeedLog], summary: dict,
          denominator_ok: bool | None = None) -> tuple[list[Finding], list]:
    """Findings (SUB034/SUB035 plus the tokenizer audit's own) and its tables."""
    findings: list[Finding] = []
    tables: list = []
    named = named_tokenizers(logs)
    custom = {s: ev for s, ev in named.items() if s not in STANDARD}
    shipped_custom = [t for t in rec.tokenizers if tokenizer_stem(t.name) not in STANDARD]
    summary["tokenizer"] = ", ".join(sorted(named)) if named else "not named in the logs"
    for meta in rec.metas:
        tok = _pair(rec, meta)
        rel = rec.rel(meta)
        try:
            from audit.tokenizer_audit import audit_tokenizer  # lazy: a sibling package

            # only a tokenizer paired inside the folder; no discovery that could leave it
            reports: list[Report] = audit_tokenizer(meta, tokenizer=tok, discover=False)
        except InputError as e:
            findings.append(TOKENIZER_UNVERIFIED.finding(
                f"the shipped meta {rel} cannot be verified: {e.problem}",
                {"meta": rel, "tokenizer": rec.rel(tok) if tok else None, "problem": e.problem}, file=rel))
            continue
        except Exception as e:  # noqa: BLE001 - a tokenizer-audit failure is a finding here, not a crash
            findings.append(TOKENIZER_UNVERIFIED.finding(
                f"the shipped meta {rel} cannot be verified: the tokenizer audit failed "
                f"({type(e).__name__}: {' '.join(str(e).split())[:200]})",
                {"meta": rel, "tokenizer": rec.rel(tok) if tok else None}, file=rel))
            continue
        rep = reports[0]
        for f in rep.findings:
            if f.severity is not Severity.INFO:
                f.location = f"{rel}" + (f" ({f.location})" if f.location and f.location != str(meta) else "")
                findings.append(f)
        summary[f"tokenizer audit {rel}"] = rep.final_verdict
        tables.extend(rep.tables[:3])
        if not rep.passed:
            findings.append(TOKENIZER_FAILED.finding(
                f"the shipped meta {rel} fails the tokenizer audit ({len(rep.errors)} error(s): "
                f"{', '.join(sorted({f.rule_id for f in rep.errors}))}); the claimed val_bpb rests on it",
                {"meta": rel, "tokenizer": rec.rel(tok) if tok else None,
                 "errors": sorted({f.rule_id for f in rep.errors})}, file=rel))
    if not rec.metas and (custom or shipped_custom):
        findings.append(_unshipped(rec, custom, shipped_custom, denominator_ok))
    return findings, tables


def _unshipped(rec: RecordFolder, custom: dict, shipped_custom: list, denominator_ok: bool | None) -> Finding:
    what = ", ".join(sorted(set(custom) | {t.name for t in shipped_custom}))
    ev = {"tokenizers": sorted(custom) + [rec.rel(t) for t in shipped_custom],
          "evidence": list(custom.values())[:3], "denominator_from_logs": denominator_ok}
    shipped = "is shipped without its meta.npz" if shipped_custom else "is not shipped (nor its meta)"
    if denominator_ok:
        return TOKENIZER_UNVERIFIED.finding(
            f"non-standard tokenizer {what} {shipped}; the logs' own figures imply the fixed val set's byte "
            f"count (SUB041), so the score's denominator checks out", ev, severity=Severity.WARNING)
    why = "and no log gives a val token count to check the denominator" if denominator_ok is None else \
        "and the logs' denominator is off (SUB041)"
    return TOKENIZER_UNVERIFIED.finding(f"non-standard tokenizer {what} {shipped}, {why}: the byte accounting "
                                        f"cannot be verified", ev)
