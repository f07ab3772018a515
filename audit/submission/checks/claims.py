"""Claims vs code and logs: README / submission.json statements checked against what ran."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from audit.rules import Finding, Severity, rule
from audit.submission.claims import Claims, switch
from audit.submission.code import CodeAnalysis
from audit.submission.code import truth as _truth
from audit.submission.logs import SeedLog
from audit.submission.techniques import TECHNIQUES

if TYPE_CHECKING:
    from audit.submission.facts import RecordFacts

F = "submission"

CLAIM_CONTRADICTED = rule(
    "SUB022", "claim-contradicts-code", "error",
    "README/submission.json says a technique is absent while the code or logs turn it on",
    explanation="E.g. 'No TTT' while `os.environ.get(\"TTT_ENABLED\", \"1\")` enables it by default and the "
                "scored metric is a TTT one. Not claims: table headers ('Quantized BPB (no TTT)'), sentences "
                "about another PR, qualified negatives disclosing a variant. When the technique ran but the "
                "reported score does not use it (a discarded TTT pass), or only the shipped default differs "
                "from what ran, it is a warning.",
    fix="Correct the claim, or change the default and re-run.", family=F)
COMPRESSION_CLAIM = rule(
    "SUB023", "compression-claim-mismatch", "warning",
    "Claimed compression differs from the code or the logs",
    explanation="E.g. 'LZMA-9' claimed while the code calls `lzma.compress(..., preset=6)`.",
    fix="State the compression the code uses.", family=F)
FEATURE_DISABLED = rule(
    "SUB024", "feature-claim-disabled", "warning",
    "A feature claimed in the README is disabled by the script's defaults and no log shows it on",
    explanation="A claimed feature must be what ran: the code default turns it off and neither the "
                "README's command nor the logs turn it on.",
    fix="Enable the feature by default (or in the documented command), or drop the claim.", family=F)


def check(facts: "RecordFacts") -> list[Finding]:
    if facts.not_a_record:
        return []
    code = facts.parsed_code
    logs = list(facts.runs)
    scored = [s.metric.label.lower() for s in facts.scores]
    out = check_negative_claims(facts.claims, code, logs, scored)
    out += check_compression(facts.claims, code, logs)
    out += check_features(facts.claims, code, logs)
    return out


def check_negative_claims(claims: Claims, code: CodeAnalysis | None, logs: list[SeedLog],
                          scored: list[str] | None = None) -> list[Finding]:
    out: list[Finding] = []
    seen: set[str] = set()
    for cl in claims.negatives:
        if cl.what in seen:
            continue
        tech = cl.what[3:]
        label = TECHNIQUES[tech].label
        sw = switch(tech, code, claims, logs)
        ev: dict[str, Any] = {"claim": cl.text, "claimed_in": cl.source}
        problems = []
        if sw.logs_on:
            problems.append(f"the logs show it running ({sw.log_evidence})")
        if sw.default_on and sw.env is not None:
            problems.append(f"train_gpt.py enables it by default ({sw.env.describe()})")
            ev["code_default"] = sw.env.describe()
        if sw.command_on and sw.env is not None:
            problems.append(f"the README's command sets {sw.env.name}={claims.command_env[sw.env.name]}")
        if sw.env is None and code is not None and tech != "ttt":
            sig = [s for s in code.signals if s.kind == tech]
            if sig:
                problems.append(f"train_gpt.py implements it ({sig[0].detail}, line {sig[0].line})")
        if not problems:
            continue
        seen.add(cl.what)
        if sw.log_evidence:
            ev["log_evidence"] = sw.log_evidence
        # The run itself had it off (logs) but the shipped default turns it on: a reproduction
        # would not match the claim. Still wrong, but the reported score is not affected.
        sev = Severity.WARNING if sw.logs_on is False and not sw.command_on else None
        if sev is None and scored and tech == "ttt" and not any("ttt" in lab for lab in scored):
            # it ran, but the reported score is a pass before it (e.g. a discarded TTT pass)
            sev = Severity.WARNING
            problems.append("the reported score does not use it (its scored metrics: "
                            f"{', '.join(sorted(set(scored)))})")
        out.append(CLAIM_CONTRADICTED.finding(
            f"{cl.source} says no {label} ({cl.text!r}), but " + "; ".join(problems),
            ev, severity=sev, file=cl.source.split(" line")[0].split(" ")[0],
            line=int(cl.source.rsplit(" ", 1)[1]) if " line " in cl.source else None))
    return out


def check_compression(claims: Claims, code: CodeAnalysis | None, logs: list[SeedLog]) -> list[Finding]:
    out: list[Finding] = []
    log_libs = {lib for lg in logs for lib in ("lzma", "brotli", "zlib", "zstd")
                if lg.model_label and lib in lg.model_label.lower()}
    done: set[tuple[str, int]] = set()
    for cc in claims.compression:
        if (cc.lib, cc.level) in done:
            continue
        done.add((cc.lib, cc.level))
        ev: dict[str, Any] = {"claim": cc.text, "claimed_in": cc.source, "claimed": f"{cc.lib}-{cc.level}"}
        if code is not None and code.parsed:
            calls = [c for c in code.compress if c.lib == cc.lib]
            other = sorted({c.lib for c in code.compress} - {cc.lib})
            levels = sorted({c.level for c in calls if c.level is not None})
            if calls and levels and cc.level not in levels:
                c0 = next(c for c in calls if c.level is not None)
                how = f"{c0.lib} level {c0.level} ({c0.level_src}" + (
                    f", default of {c0.via_env}" if c0.via_env else "") + f") at line {c0.line}"
                ev.update({"code": how})
                out.append(COMPRESSION_CLAIM.finding(
                    f"{cc.source} claims {cc.lib.upper()}-{cc.level}, but train_gpt.py uses {how}", ev,
                    location="train_gpt.py"))
                continue
            if not calls and other:
                ev.update({"code_libraries": other})
                out.append(COMPRESSION_CLAIM.finding(
                    f"{cc.source} claims {cc.lib.upper()}-{cc.level}, but train_gpt.py compresses with "
                    f"{', '.join(other)} only", ev, location="train_gpt.py"))
                continue
        if log_libs and cc.lib not in log_libs and not any(c.lib == cc.lib for c in (code.compress if code else [])):
            ev.update({"log_model_label": sorted(log_libs)})
            out.append(COMPRESSION_CLAIM.finding(
                f"{cc.source} claims {cc.lib.upper()}-{cc.level}, but the logs serialize the model with "
                f"{', '.join(sorted(log_libs))}", ev))
    return out


def check_features(claims: Claims, code: CodeAnalysis | None, logs: list[SeedLog]) -> list[Finding]:
    """README-named features whose switch is off by default and shown on nowhere."""
    if code is None or not code.parsed or not claims.readme_text:
        return []
    out: list[Finding] = []
    text = claims.readme_text
    for e in code.env:
        m = re.fullmatch(r"(?:USE_|ENABLE_)?([A-Z][A-Z0-9_]*?)(?:_ENABLED?|_ON)?", e.name)
        if not m or m.group(1) == e.name and not e.name.startswith(("USE_", "ENABLE_")):
            continue  # not an on/off switch name
        feat = m.group(1)
        if e.truthy() is not False or len(feat) < 3:
            continue
        words = [w for w in feat.split("_") if w]
        rx = re.compile(r"(?<![\w])" + r"[\s_\-]*".join(map(re.escape, words)) + r"(?![\w])", re.I)
        hit = None
        for no, line in enumerate(text.splitlines(), start=1):
            mm = rx.search(line)
            if mm and not re.search(r"\b(?:no|without|disabled?|off)\b[\s\w\-]{0,12}$", line[:mm.start()], re.I):
                hit = (no, line.strip()[:160])
                break
        if hit is None:
            continue
        if _truth(claims.command_env.get(e.name)):
            continue
        key = e.name.lower()
        shown = any(_truth(lg.config.get(key)) or _truth(lg.config.get(f"{feat.lower()}_enabled")) or
                    any(k.startswith(feat.lower()) for k in lg.markers) for lg in logs)
        if shown:
            continue
        out.append(FEATURE_DISABLED.finding(
            f"README.md line {hit[0]} claims {feat.replace('_', ' ')}, but {e.describe()} turns it off "
            f"and no log shows it on", {"readme": hit[1], "code_default": e.describe()},
            location="README.md"))
    return out
