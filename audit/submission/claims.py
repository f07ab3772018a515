"""What a record says about itself (README.md, submission.json) against what its code and logs show.

Claims read: "No TTT", "no SLOT", "no n-gram cache", "no pre-quant TTT" (text and `compliance`
keys), compression claims ("LZMA-9", "Brotli-11", "zlib level 9", "zstd-22"), and features named in
the README whose switches the code has (`X_ENABLED`, `USE_X`, `ENABLE_X`). The effective setting of a
switch is: the logs' hyperparameter dump when present, else the README's command line
(`TTT_ENABLED=1 torchrun …`), else the code default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from audit.rules import Finding, Severity
from audit.submission import rules as R
from audit.submission.code import CodeAnalysis, EnvDefault
from audit.submission.code import truth as _truth
from audit.submission.logs import SeedLog


@dataclass
class Claim:
    what: str  # "no_ttt" / "no_slot" / "no_ngram" / "no_pre_quant_ttt"
    source: str  # "README.md line 12" / "submission.json compliance.no_slot"
    text: str


@dataclass
class CompressionClaim:
    lib: str
    level: int
    source: str
    text: str


@dataclass
class Claims:
    negatives: list[Claim] = field(default_factory=list)
    compression: list[CompressionClaim] = field(default_factory=list)
    command_env: dict[str, str] = field(default_factory=dict)  # VAR=value from README commands
    readme_text: str = ""


_NEG = {
    "no_ttt": re.compile(r"\b(?:no|without|disables?d?)\s+(?:test[- ]time[- ]training|TTT)\b(?!\s*on\s+val)", re.I),
    "no_slot": re.compile(r"\b(?:no|without)\s+(?:causal\s+)?SLOT\b", re.I),
    "no_ngram": re.compile(r"\b(?:no|without)\s+(?:\w+[- ])?n-?gram(?:\s+(?:caches?|mixing|tilt))?\b", re.I),
    "no_pre_quant_ttt": re.compile(r"\b(?:no|without)\s+pre-?quant(?:ization|ized)?\s+TTT\b", re.I),
}
_KEYS = {"no_ttt": "no_ttt", "no_slot": "no_slot", "no_ngram_cache": "no_ngram", "no_ngram": "no_ngram",
         "no_pre_quant_ttt": "no_pre_quant_ttt"}
_COMP = [
    ("lzma", re.compile(r"\b(?:LZMA|xz)[\s\-]?(?:preset[\s\-=]?)?(\d)\b(?![\d.])", re.I)),
    ("brotli", re.compile(r"\bBrotli[\s\-]?(?:q(?:uality)?[\s\-=]?)?(\d{1,2})\b(?![\d.])", re.I)),
    ("zlib", re.compile(r"\bzlib[\s\-]?(?:level[\s\-=]?)?(\d)\b(?![\d.])", re.I)),
    ("zstd", re.compile(r"\bzstd[\s\-]?(?:level[\s\-=]?)?(\d{1,2})\b(?![\d.])", re.I)),
]
_CMD_ENV = re.compile(r"(?:^|\s)([A-Z][A-Z0-9_]{1,60})=([^\s\\]+)")


def extract(readme: str, sub: dict | None) -> Claims:
    c = Claims(readme_text=readme)
    for no, line in enumerate(readme.splitlines(), start=1):
        for what, rx in _NEG.items():
            m = rx.search(line)
            if m:
                c.negatives.append(Claim(what, f"README.md line {no}", line.strip()[:160]))
        for lib, rx in _COMP:
            for m in rx.finditer(line):
                c.compression.append(CompressionClaim(lib, int(m.group(1)), f"README.md line {no}",
                                                      line.strip()[:160]))
        if re.search(r"torchrun|python3?\s|\.py\b", line):
            for k, v in _CMD_ENV.findall(line):
                c.command_env.setdefault(k, v.strip("'\""))
    if sub:
        comp = sub.get("compliance")
        if isinstance(comp, dict):
            for k, v in comp.items():
                if k in _KEYS and v is True:
                    c.negatives.append(Claim(_KEYS[k], f"submission.json compliance.{k}", f"{k}: true"))
        for key in ("blurb", "technique_summary", "name", "notes"):
            v = sub.get(key)
            if isinstance(v, str):
                for what, rx in _NEG.items():
                    if rx.search(v):
                        c.negatives.append(Claim(what, f"submission.json {key}", v[:160]))
                for lib, rx in _COMP:
                    for m in rx.finditer(v):
                        c.compression.append(CompressionClaim(lib, int(m.group(1)), f"submission.json {key}",
                                                              v[:160]))
    return c


@dataclass
class Switch:
    """A technique's on/off state from code default, README command and logs."""

    env: EnvDefault | None
    default_on: bool | None
    command_on: bool | None
    logs_on: bool | None
    log_evidence: str | None

    @property
    def effective(self) -> bool | None:
        for v in (self.logs_on, self.command_on, self.default_on):
            if v is not None:
                return v
        return None


_TECH_ENV = {
    "ttt": r"^(?:USE_|ENABLE_)?(?:LEGAL_)?TTT(?:_ENABLED?|_ON|_USE)?$",
    "slot": r"^(?:USE_|ENABLE_)?SLOT(?:_ENABLED?|_ON)?$",
    "ngram": r"^(?:USE_|ENABLE_)?N_?GRAM(?:_CACHE)?(?:_ENABLED?|_ON)?$",
    "pre_quant_ttt": r"^(?:USE_|ENABLE_)?PRE_?QUANT_?TTT(?:_ENABLED?)?$",
}


def switch(tech: str, code: CodeAnalysis | None, claims: Claims, logs: list[SeedLog]) -> Switch:
    env = None
    if code is not None:
        hits = code.env_matching(_TECH_ENV[tech])
        env = hits[0] if hits else None
    default_on = env.truthy() if env else None
    command_on = _truth(claims.command_env.get(env.name)) if env and env.name in claims.command_env else None
    logs_on, ev = None, None
    for lg in logs:
        seen = _log_shows(tech, lg, env)
        if seen is not None:
            on, where = seen
            if on:
                logs_on, ev = True, where
                break
            if logs_on is None:
                logs_on, ev = False, where
    return Switch(env, default_on, command_on, logs_on, ev)


def _log_shows(tech: str, lg: SeedLog, env: EnvDefault | None) -> tuple[bool, str] | None:
    if tech == "ttt":
        ln = lg.ttt_seen()
        if ln is not None:
            return True, f"{lg.name} line {ln}"
    else:
        key = {"slot": "slot", "ngram": "ngram", "pre_quant_ttt": "pre_quant_ttt"}[tech]
        for k, ln in lg.markers.items():
            kk = k.replace("-", "_")
            if (tech == "pre_quant_ttt" and re.search(r"pre_?quant\w*ttt", kk)) or (
                    tech != "pre_quant_ttt" and re.match(rf"{key}(?:_|$)", kk.replace("n_gram", "ngram"))):
                return True, f"{lg.name} line {ln}"
        for m in lg.final_metrics:
            if tech != "pre_quant_ttt" and key in m.label.lower().replace("-", ""):
                return True, f"{lg.name} line {m.line}"
    names = [env.name.lower()] if env else []
    names += {"ttt": ["ttt_enabled"], "slot": ["slot_enabled"], "ngram": ["ngram_enabled", "ngram_cache"],
              "pre_quant_ttt": ["pre_quant_ttt", "prequant_ttt"]}[tech]
    for n in names:
        if n in lg.config:
            t = _truth(lg.config[n])
            if t is not None:
                return t, f"{lg.name} `{n}: {lg.config[n]}`"
    return None


_TECH_LABEL = {"no_ttt": ("ttt", "TTT"), "no_slot": ("slot", "SLOT"), "no_ngram": ("ngram", "an n-gram cache"),
               "no_pre_quant_ttt": ("pre_quant_ttt", "pre-quant TTT")}


def check_negative_claims(claims: Claims, code: CodeAnalysis | None, logs: list[SeedLog]) -> list[Finding]:
    out: list[Finding] = []
    seen: set[str] = set()
    for cl in claims.negatives:
        if cl.what in seen:
            continue
        tech, label = _TECH_LABEL[cl.what]
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
        out.append(R.CLAIM_CONTRADICTED.finding(
            f"{cl.source} says no {label} ({cl.text!r}), but " + "; ".join(problems),
            ev, severity=sev, location=cl.source.split(" line")[0]))
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
                out.append(R.COMPRESSION_CLAIM.finding(
                    f"{cc.source} claims {cc.lib.upper()}-{cc.level}, but train_gpt.py uses {how}", ev,
                    location="train_gpt.py"))
                continue
            if not calls and other:
                ev.update({"code_libraries": other})
                out.append(R.COMPRESSION_CLAIM.finding(
                    f"{cc.source} claims {cc.lib.upper()}-{cc.level}, but train_gpt.py compresses with "
                    f"{', '.join(other)} only", ev, location="train_gpt.py"))
                continue
        if log_libs and cc.lib not in log_libs and not any(c.lib == cc.lib for c in (code.compress if code else [])):
            ev.update({"log_model_label": sorted(log_libs)})
            out.append(R.COMPRESSION_CLAIM.finding(
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
        out.append(R.FEATURE_DISABLED.finding(
            f"README.md line {hit[0]} claims {feat.replace('_', ' ')}, but {e.describe()} turns it off "
            f"and no log shows it on", {"readme": hit[1], "code_default": e.describe()},
            location="README.md"))
    return out
