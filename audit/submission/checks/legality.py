"""Evaluation legality, read from the code (parsed, never run) and the logs: score-first TTT,
two-pass rescoring, n-gram caches, SLOT, pre-quant TTT, val data in training."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from audit.rules import Finding, Severity, rule
from audit.submission import claims as C

if TYPE_CHECKING:
    from audit.submission.facts import RecordFacts

F = "submission"

TWO_PASS = rule(
    "SUB025", "two-pass-rescoring", "error", "The evaluation scores tokens again after seeing them",
    explanation="Two-pass rescoring (score, adapt, score the same tokens again) uses the tokens being "
                "scored; not allowed.",
    fix="Score each token exactly once, before any adaptation on it.", family=F)
NGRAM_CACHE = rule(
    "SUB026", "ngram-cache", "warning", "An n-gram cache is used at evaluation (disclosure required)",
    explanation="A backward-looking cache updated only with already-scored tokens was argued legal; "
                "one built from unscored tokens is not (then reported as an error).",
    fix="Disclose the cache and show it is only updated with already-scored tokens.", family=F)
SLOT = rule(
    "SUB027", "slot", "error", "SLOT (eval-time optimisation on the tokens being scored) is used",
    explanation="SLOT optimises a delta using the tokens it then scores; not allowed / contested.",
    fix="Remove SLOT from the scored evaluation path.", family=F)
PRE_QUANT_TTT = rule(
    "SUB028", "pre-quant-ttt-on-val", "error", "Test-time training on val before quantization",
    explanation="Training on val tokens before the artifact is produced is training on val.",
    fix="Only adapt at evaluation, on already-scored tokens.", family=F)
VAL_IN_TRAINING = rule(
    "SUB029", "val-in-training", "error", "The training loader reads validation files",
    explanation="No access to validation data during training (no paid prefix, no training on val).",
    fix="Point the training loader at fineweb_train_* only.", family=F)
TTT_ORDER = rule(
    "SUB030", "ttt-not-score-first", "error",
    "The TTT loop trains on a chunk before scoring it",
    explanation="Score-first: a chunk is scored (under no_grad/inference_mode), then the model may "
                "train on it, then the next chunk is scored.",
    fix="Score the chunk first, then step the optimizer on it.", family=F)
TTT_SCORE_FIRST = rule(
    "SUB031", "ttt-score-first", "info", "The TTT loop scores each chunk before training on it",
    explanation="Static evidence of the score-first order (line numbers of the scoring block and of "
                "the first optimizer step in the same loop).",
    fix="Nothing to fix.", family=F)
CODE_SYNTAX = rule(
    "SUB032", "code-syntax-error", "error", "train_gpt.py does not parse as Python",
    explanation="Code that does not parse cannot have produced the logs. Parsing accepts the Python "
                "3.12 grammar (PEP 701 f-strings) also when the audit runs on 3.11.",
    fix="Ship the code that ran.", family=F)
CODE_NOT_ANALYSED = rule(
    "SUB033", "code-not-analysed", "warning", "train_gpt.py could not be analysed statically",
    explanation="The file is too large, too deeply nested, or wraps compressed code that could not be "
                "unpacked within bounds; code-based checks were skipped.",
    fix="Ship readable code (a compressed wrapper of at most a few MB is fine).", family=F)


def check(facts: "RecordFacts") -> list[Finding]:
    if facts.not_a_record:
        return []
    out: list[Finding] = []
    code = facts.parsed_code
    logs = list(facts.runs)
    if code is not None:
        rel = facts.code.rel
        out += _ttt_loops(code, facts, rel)
        out += _signals(code, facts, rel)
    for lg in logs:  # what the logs show, code or not
        tf = lg.config.get("train_files", "")
        if re.search(r"(?:^|[/_])val(?:_|\b)", tf):
            out.append(VAL_IN_TRAINING.finding(f"{lg.name}: train_files is {tf}", {"train_files": tf}, file=lg.name))
        for k, ln in lg.markers.items():
            if re.search(r"rescor|two_?pass|second_?pass", k):
                out.append(TWO_PASS.finding(f"{lg.name} line {ln}: `{k}` in the log", {"line": ln},
                                            file=lg.name, line=ln))
                break
    return out


def _ttt_loops(code, facts, rel) -> list[Finding]:
    out = []
    ttt = C.switch("ttt", code, facts.claims, list(facts.runs))
    for lo in code.ttt_loops:
        if lo.score_first:
            out.append(TTT_SCORE_FIRST.finding(
                f"{lo.function}: loop at line {lo.loop_line} scores under no_grad at line {lo.score_line} before "
                f"the first optimizer step at line {lo.train_line}",
                {"function": lo.function, "loop": lo.loop_line, "score": lo.score_line, "train": lo.train_line},
                file=rel, line=lo.loop_line))
        else:
            out.append(TTT_ORDER.finding(
                f"{lo.function}: loop at line {lo.loop_line} steps the optimizer (line {lo.train_line}) before "
                f"scoring the chunk (line {lo.score_line})",
                {"function": lo.function, "loop": lo.loop_line, "score": lo.score_line, "train": lo.train_line,
                 "ttt_effective": ttt.effective},
                severity=Severity.WARNING if ttt.effective is False else None, file=rel, line=lo.train_line))
    return out


def _signals(code, facts, rel) -> list[Finding]:
    out = []
    logs = list(facts.runs)
    for tech, r in (("slot", SLOT), ("pre_quant_ttt", PRE_QUANT_TTT)):
        sig = [s for s in code.signals if s.kind == tech]
        if not sig:
            continue
        sw = C.switch(tech, code, facts.claims, logs)
        if sw.effective is False:
            continue  # implemented but off by default, in the command and in the logs
        how = sw.env.describe() if sw.env else "no switch: always on"
        out.append(r.finding(f"{rel}: {sig[0].detail} (line {sig[0].line}); {how}",
                             {"lines": [s.line for s in sig][:10], "switch": how, "log_evidence": sw.log_evidence},
                             file=rel, line=sig[0].line))
    two = [s for s in code.signals if s.kind == "two_pass"]
    if two:
        out.append(TWO_PASS.finding(f"{rel}: {two[0].detail} (line {two[0].line})",
                                    {"evidence": [f"line {s.line}: {s.detail}" for s in two][:10]},
                                    file=rel, line=two[0].line))
    ng = [s for s in code.signals if s.kind == "ngram"]
    if ng:
        sw = C.switch("ngram", code, facts.claims, logs)
        before = [s for s in ng if s.order == "before-score"]
        if sw.effective is not False or before:
            lead = before[0] if before else ng[0]
            tail = (": built from tokens not yet scored" if before else
                    "; updated only after scoring: disclosure required" if any(s.order == "after-score" for s in ng)
                    else "; what updates it is not clear: disclosure required")
            out.append(NGRAM_CACHE.finding(
                f"{rel}: n-gram cache, {lead.detail}{tail}",
                {"evidence": [f"line {s.line}: {s.detail}" for s in ng][:10],
                 "switch": sw.env.describe() if sw.env else None},
                severity=Severity.ERROR if before else None, file=rel, line=lead.line))
    for s in code.signals:
        if s.kind == "val_in_training":
            out.append(VAL_IN_TRAINING.finding(f"{rel} line {s.line}: {s.detail}", {"line": s.line, "detail": s.detail},
                                               file=rel, line=s.line))
    return out
