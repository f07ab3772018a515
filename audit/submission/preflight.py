"""`preflight(folder)`: the checks that need no logs, for a folder with only code (and optionally
a tokenizer, its meta, README, submission.json), before any GPU time is spent.

It reads the same frozen `RecordFacts` as the submission audit and runs the checks that do not
depend on a run (legality, claims vs code defaults, the tokenizer's static audit), plus three
preflight rules: the code's counted size and the model budget it leaves, the time settings the
code's defaults make, and the evaluation passes they switch on.
"""

from __future__ import annotations

import re
from pathlib import Path

from audit.errors import InputError
from audit.report import Report, Table
from audit.rules import Finding, Severity, rule
from audit.submission.checks import Outcome, claims, legality, tokenizer
from audit.submission.checks.sizes import CAP_BYTES
from audit.submission.facts import RecordFacts, build
from audit.timing import TRAIN_CAP_S

F = "preflight"

CODE_BUDGET = rule(
    "PRE001", "preflight-code-budget", "info", "Code bytes as the script will count them, and the model budget left",
    explanation="The raw size of the code and the lzma+base85 wrapper the April records count (an upper "
                "bound: the records also minify); what is left of 16,000,000 bytes for the compressed model. "
                "An error when the code alone leaves no room.",
    fix="Shrink the code (strip docs, minify and compress it as the records do).", family=F)
TIME_SETTINGS = rule(
    "PRE002", "preflight-time-settings", "warning", "The code's default time settings break the 600 s budget",
    explanation="The training cap the code defaults to (MAX_WALLCLOCK_SECONDS) must leave room for the "
                "data-dependent artifact work after training (GPTQ calibration, Hessians): a GPTQ script "
                "needs a reserve (GPTQ_RESERVE_SECONDS or similar) inside the 600 s, as the accepted "
                "records have (12 s).",
    fix="Default MAX_WALLCLOCK_SECONDS to 600 and reserve the GPTQ time inside it.", family=F)
EVAL_PLAN = rule(
    "PRE003", "preflight-eval-plan", "info", "Evaluation passes the code's defaults switch on",
    explanation="The evaluation switches (TTT, sliding window, n-gram, SLOT) and their defaults, so the "
                "planned evaluation can be costed before the run.",
    fix="Nothing to fix.", family=F)


def preflight(folder) -> Report:
    root = Path(folder)
    facts = build(root)
    if facts.code is None:
        raise InputError(root, "no train_gpt.py (or train_gpt*.py) here: preflight reads the code")
    rep = Report("preflight", str(root))
    for mod in (legality, claims, tokenizer):
        out = mod.check(facts)
        out = out if isinstance(out, Outcome) else Outcome(out)
        rep.extend(out.findings)
        rep.summary.update(out.summary)
        rep.tables.extend(out.tables)
    rep.extend(_budget(facts, rep))
    rep.extend(_time_settings(facts))
    rep.extend(_eval_plan(facts, rep))
    rep.verdict = "fail" if rep.errors else ("ready, with warnings" if rep.warnings else "ready")
    return rep


def _budget(facts: RecordFacts, rep: Report) -> list[Finding]:
    code = facts.code
    left_raw, left_comp = CAP_BYTES - code.size, CAP_BYTES - (code.compressed_estimate or code.size)
    rep.summary.update({"code bytes (raw)": code.size, "code bytes (compressed, bound)": code.compressed_estimate,
                        "model budget left (raw code)": left_raw, "model budget left (compressed code)": left_comp})
    sev = Severity.ERROR if left_comp <= 0 else None
    return [CODE_BUDGET.finding(
        f"{code.rel}: {code.size:,} bytes raw, {code.compressed_estimate:,} bytes as an lzma+base85 wrapper; "
        f"{left_raw:,} bytes left for the model counting raw code, {left_comp:,} counting it compressed",
        {"raw": code.size, "compressed_bound": code.compressed_estimate, "left_raw": left_raw,
         "left_compressed": left_comp}, severity=sev, file=code.rel)]


def _env_default(ca, *names):
    for e in ca.env:
        if e.name in names:
            return e
    return None


def _number(v):
    try:
        return float(str(v).strip())
    except (TypeError, ValueError):
        return None


def _time_settings(facts: RecordFacts) -> list[Finding]:
    ca = facts.parsed_code
    if ca is None:
        return []
    out = []
    cap = _env_default(ca, "MAX_WALLCLOCK_SECONDS")
    cap_s = _number(cap.default) if cap else None
    reserve = next((e for e in ca.env if "RESERVE" in e.name.upper()), None)
    gptq = any("gptq" in n.lower() or "hessian" in n.lower() for n in ca.defs)
    if cap_s is not None and cap_s > TRAIN_CAP_S:
        out.append(TIME_SETTINGS.finding(f"{cap.describe()} defaults the training cap to {cap_s:g} s > {TRAIN_CAP_S:g} s",
                                         {"default_s": cap_s}, file=facts.code.rel, line=cap.line))
    if gptq and reserve is None and (cap_s is None or cap_s >= TRAIN_CAP_S):
        line = min(ln for n, ln in ca.defs.items() if "gptq" in n.lower() or "hessian" in n.lower())
        out.append(TIME_SETTINGS.finding(
            f"{facts.code.rel} calibrates GPTQ after training (line {line}) but sets no reserve and trains to "
            f"{cap_s if cap_s is not None else 'an unknown cap'} s: the calibration would run past 600 s",
            {"cap_s": cap_s}, file=facts.code.rel, line=line))
    elif reserve is not None:
        out.append(TIME_SETTINGS.finding(f"{reserve.describe()}: {reserve.default} s reserved inside the cap",
                                         {"reserve": reserve.default}, severity=Severity.INFO, file=facts.code.rel,
                                         line=reserve.line))
    return out


_EVAL_SWITCH = ("TTT", "SLIDING", "EVAL_STRIDE", "NGRAM", "N_GRAM", "SLOT", "EVAL_SEQ_LEN")


def _eval_plan(facts: RecordFacts, rep: Report) -> list[Finding]:
    ca = facts.parsed_code
    if ca is None:
        return []
    rows = [[e.name, e.default_src or "—", e.line] for e in ca.env
            if any(k in e.name.upper() for k in _EVAL_SWITCH)][:40]
    if not rows:
        return []
    rep.tables.append(Table("Evaluation settings (code defaults)", ["variable", "default", "line"], rows))
    switches = [e for e in ca.env if any(k in e.name.upper() for k in _EVAL_SWITCH)
                and re.search(r"(?:_ENABLED?|_ON)$|^(?:USE|ENABLE)_", e.name)]
    on = sorted({e.name for e in switches if e.truthy()})
    return [EVAL_PLAN.finding(f"{len(rows)} evaluation settings in {facts.code.rel}; on by default: "
                              f"{', '.join(on) if on else 'none'}", {"settings": rows[:20]}, file=facts.code.rel)]
