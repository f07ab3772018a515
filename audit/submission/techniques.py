"""The evaluation techniques the audit recognises, in one registry: how each is named in code
(environment switches, function names), in logs (line prefixes, metric labels) and in README
claims ("no TTT"). Claims, legality and the technique table all read this."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Technique:
    key: str  # "ttt"
    label: str  # as said in a message: "TTT"
    env: re.Pattern  # the on/off switch's environment variable name
    log_names: tuple[str, ...]  # config keys in a log's hyperparameter dump
    claim: re.Pattern  # a README sentence saying it is NOT used


TECHNIQUES: dict[str, Technique] = {t.key: t for t in (
    Technique("ttt", "TTT", re.compile(r"^(?:USE_|ENABLE_)?(?:LEGAL_)?TTT(?:_ENABLED?|_ON|_USE)?$"),
              ("ttt_enabled",),
              re.compile(r"\b(?:no|without|disables?d?)\s+(?:test[- ]time[- ]training|TTT)\b(?!\s*on\s+val)", re.I)),
    Technique("slot", "SLOT", re.compile(r"^(?:USE_|ENABLE_)?SLOT(?:_ENABLED?|_ON)?$"), ("slot_enabled",),
              re.compile(r"\b(?:no|without)\s+(?:causal\s+)?SLOT\b", re.I)),
    Technique("ngram", "an n-gram cache", re.compile(r"^(?:USE_|ENABLE_)?N_?GRAM(?:_CACHE)?(?:_ENABLED?|_ON)?$"),
              ("ngram_enabled", "ngram_cache"),
              re.compile(r"\b(?:no|without)\s+(?:\w+[- ])?n-?gram(?:\s+(?:caches?|mixing|tilt))?\b", re.I)),
    Technique("pre_quant_ttt", "pre-quant TTT", re.compile(r"^(?:USE_|ENABLE_)?PRE_?QUANT_?TTT(?:_ENABLED?)?$"),
              ("pre_quant_ttt", "prequant_ttt"),
              re.compile(r"\b(?:no|without)\s+pre-?quant(?:ization|ized)?\s+TTT\b", re.I)),
)}

# submission.json `compliance` keys that state a technique is absent
COMPLIANCE_KEYS = {"no_ttt": "ttt", "no_slot": "slot", "no_ngram_cache": "ngram", "no_ngram": "ngram",
                   "no_pre_quant_ttt": "pre_quant_ttt"}

# A negative phrase qualified right after ("no hashed n-gram cache *with uncontrolled tables*") restricts
# what is absent: it discloses a variant, it does not claim the technique is absent.
QUALIFIER = re.compile(r"^\s*(?:\*\*)?\s*(?:with|that|which|whose|beyond|except|other than|using|built|"
                       r"updated|from|on unscored|over unscored)\b", re.I)
# A sentence about another submission ("PR #1234 uses no TTT") is not a claim about this one.
OTHER_PR = re.compile(r"(?:\bPR\s*#?\s*\d{2,}|#\d{3,}|\bpull request\b)", re.I)
