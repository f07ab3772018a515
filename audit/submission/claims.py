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

from audit.submission.code import CodeAnalysis, EnvDefault
from audit.submission.code import truth as _truth
from audit.submission.logs import SeedLog
from audit.submission.techniques import COMPLIANCE_KEYS, OTHER_PR, QUALIFIER, TECHNIQUES


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


_COMP = [
    ("lzma", re.compile(r"\b(?:LZMA|xz)[\s\-]?(?:preset[\s\-=]?)?(\d)\b(?![\d.])", re.I)),
    ("brotli", re.compile(r"\bBrotli[\s\-]?(?:q(?:uality)?[\s\-=]?)?(\d{1,2})\b(?![\d.])", re.I)),
    ("zlib", re.compile(r"\bzlib[\s\-]?(?:level[\s\-=]?)?(\d)\b(?![\d.])", re.I)),
    ("zstd", re.compile(r"\bzstd[\s\-]?(?:level[\s\-=]?)?(\d{1,2})\b(?![\d.])", re.I)),
]
_CMD_ENV = re.compile(r"(?:^|\s)([A-Z][A-Z0-9_]{1,60})=([^\s\\]+)")


def _table_line(line: str) -> bool:
    return line.lstrip().startswith("|")


def negative_claims(text: str, source: str) -> list[Claim]:
    """Sentences saying a technique is absent. Not claims: table cells ("Quantized BPB (no TTT)"
    names a column), sentences about another PR, and qualified negatives that disclose a variant."""
    out = []
    for no, line in enumerate(text.splitlines(), start=1):
        if _table_line(line) or OTHER_PR.search(line):
            continue
        for tech in TECHNIQUES.values():
            m = tech.claim.search(line)
            if m and not QUALIFIER.match(line[m.end():]):
                where = f"{source} line {no}" if source == "README.md" else source
                out.append(Claim(f"no_{tech.key}", where, line.strip()[:160]))
    return out


def extract(readme: str, sub: dict | None) -> Claims:
    c = Claims(readme_text=readme)
    c.negatives.extend(negative_claims(readme, "README.md"))
    for no, line in enumerate(readme.splitlines(), start=1):
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
                if k in COMPLIANCE_KEYS and v is True:
                    c.negatives.append(Claim(f"no_{COMPLIANCE_KEYS[k]}", f"submission.json compliance.{k}", f"{k}: true"))
        for key in ("blurb", "technique_summary", "name", "notes"):
            v = sub.get(key)
            if isinstance(v, str):
                c.negatives.extend(negative_claims(v[:5000], f"submission.json {key}"))
                for lib, rx in _COMP:
                    for m in rx.finditer(v[:5000]):
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


def switch(tech: str, code: CodeAnalysis | None, claims: Claims, logs: list[SeedLog]) -> Switch:
    env = None
    if code is not None:
        hits = [e for e in code.env if TECHNIQUES[tech].env.search(e.name)]
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
    names += list(TECHNIQUES[tech].log_names)
    for n in names:
        if n in lg.config:
            t = _truth(lg.config[n])
            if t is not None:
                return t, f"{lg.name} `{n}: {lg.config[n]}`"
    return None
