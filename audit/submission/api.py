"""`audit_submission(record_dir)`: facts gathered once, then every check over them; `audit_paths`.

Verdicts: "invalid" (any error-level finding), "non-record" (valid but not a record: non-record
track, or not significant against the given SOTA), "record" (everything passes), "not a record
folder" (a folder holding only logs).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from audit.errors import InputError
from audit.progress import progress
from audit.report import Report, Table
from audit.submission import claims as C
from audit.submission.checks import Outcome, all_checks
from audit.submission.checks import significance as SIG
from audit.submission.facts import RecordFacts, build, claimed_per_seed
from audit.submission.logs import parse_log
from audit.submission.record import scan

NOT_A_RECORD_VERDICT = "not a record folder"


def audit_submission(record_dir, *, sota=None, allow_missing_code: bool = False,
                     val_bytes: int | None = None) -> Report:
    """`val_bytes`: the byte count of the val set the logs scored, when it is not the challenge's
    fixed 151,080,633-byte set (the trainer's gate on its own fixture data); SUB041 checks against it."""
    facts = build(Path(record_dir), allow_missing_code=allow_missing_code,
                  sota=sota_values(sota) if sota is not None else (None, None), val_bytes=val_bytes)
    rep = Report("submission", str(record_dir))
    summary, tables = {}, []
    for mod in all_checks():
        out = mod.check(facts)
        if isinstance(out, Outcome):
            rep.extend(out.findings)
            summary.update(out.summary)
            tables.extend(out.tables)
        else:
            rep.extend(out)
    _summary(facts, rep, summary)
    _tables(facts, rep, tables)
    rep.plot_data["seed_curves"] = seed_curves(facts)
    rep.verdict = _verdict(facts, rep)
    return rep


def is_record_folder(p: Path, *, readme_counts: bool = False) -> bool:
    """A folder holding a record's own files (submission*.json, train_gpt*.py, logs; README.md only
    when nothing below it is a record: a track folder may have a README of its own)."""
    try:
        names = {e.name.lower() for e in os.scandir(p)}
    except OSError:
        return False
    strong = any(n.startswith("submission") and n.endswith(".json") for n in names) or any(
        n.startswith("train_gpt") and n.endswith(".py") for n in names) or any(n.endswith(".log") for n in names)
    return strong or (readme_counts and "readme.md" in names)


def find_records(path: Path, max_depth: int = 3) -> list[Path]:
    """A record folder, or the record folders below a folder (records/<track>/<name>/)."""
    if is_record_folder(path):
        return [path]
    out: list[Path] = []
    stack = [(path, 0)]
    while stack:
        d, depth = stack.pop()
        try:
            kids = sorted((Path(e.path) for e in os.scandir(d) if e.is_dir(follow_symlinks=False)
                           and not e.name.startswith(".")), reverse=True)
        except OSError:
            continue
        for k in kids:
            if is_record_folder(k):
                out.append(k)
            elif depth + 1 < max_depth:
                stack.append((k, depth + 1))
    if not out and is_record_folder(path, readme_counts=True):
        return [path]
    return sorted(out)


def audit_paths(paths, **kw) -> list[Report]:
    reports: list[Report] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise InputError(p, "no such file or folder")
        if not p.is_dir():
            raise InputError(p, "not a folder (pass a record folder or a folder of record folders)")
        found = find_records(p)
        if not found:
            raise InputError(p, "no record folder here (none has submission.json, or README.md with logs/code)")
        with progress(f"auditing {len(found)} record folder(s) in {p}", len(found)) as bar:
            for r in found:
                reports.append(audit_submission(r, **kw))
                bar.advance()
    return reports


def sota_values(sota) -> tuple[list[float] | float | None, str | None]:
    """--sota: a BPB number, or a record folder whose per-seed log values are used."""
    if sota is None:
        return None, None
    if isinstance(sota, (int, float)):
        return float(sota), f"{float(sota)}"
    s = str(sota)
    try:
        v = float(s)
        if not 0 < v < 20:
            raise InputError(None, f"--sota {s}: not a plausible BPB")
        return v, s
    except ValueError:
        pass
    p = Path(s)
    if not p.is_dir():
        raise InputError(p, "--sota must be a BPB number or a record folder")
    facts = build(p)
    vals = facts.score_values
    if not vals:
        raise InputError(p, "the SOTA record folder has no log with a final metric")
    return vals, f"{p} ({len(vals)} seeds)"


def _summary(facts: RecordFacts, rep: Report, computed: dict) -> None:
    if facts.not_a_record:
        return
    vals = facts.score_values
    if vals:
        from audit.submission import stats as S

        rep.summary["seeds"] = len(vals)
        rep.summary["score metric"] = ", ".join(sorted({s.metric.label for s in facts.scores}))
        rep.summary["mean val_bpb (logs)"] = round(S.mean(vals), 8)
        if len(vals) > 1:
            rep.summary["std val_bpb (logs, ddof=1)"] = round(S.std(vals), 8)
    from audit.submission.checks.seeds import _claimed_mean

    key, claimed = _claimed_mean(facts)
    if claimed is not None:
        rep.summary[f"claimed {key}"] = float(claimed)
    ratios = [f.evidence["ratio"] for f in rep.findings if f.rule_id == "SUB041" and "ratio" in f.evidence]
    if claimed is not None and ratios:
        worst = max(ratios, key=lambda r: abs(r - 1))
        rep.summary["corrected val_bpb (byte denominator)"] = round(float(claimed) * worst, 5)
    if facts.code is not None and facts.code.analysis.unpacked:
        rep.summary["code wrapper"] = " / ".join(facts.code.analysis.unpacked) + " (unpacked statically)"
    rep.summary.update(computed)


def seed_curves(facts: RecordFacts) -> dict:
    """Per scored run, the curves `audit.plots.plot_seed_curves` draws (val BPB by step, train loss
    by wall time): a throttled seed ends early in the first and lags in the second."""
    out = {}
    for s in facts.scores:
        label = f"seed {s.seed}" if s.seed is not None else s.run.name
        if s.run.val_curve or s.run.train_curve:
            out[label] = {"val_bpb": list(s.run.val_curve), "train_loss_vs_time": list(s.run.train_curve)}
    return out


def _verdict(facts: RecordFacts, rep: Report) -> str:
    if facts.not_a_record:
        return NOT_A_RECORD_VERDICT
    if rep.errors:
        return "invalid"
    values, _, sig = SIG.result(facts)
    if not facts.record_track or (values is not None and (sig is None or not sig.significant)):
        return "non-record"
    return "record"


def _tables(facts: RecordFacts, rep: Report, computed: list) -> None:
    rows, rows2 = [], []
    for s in facts.scores:
        lg, m = s.run, s.metric
        seed = str(s.seed) if s.seed is not None else "?"
        rows.append([seed, lg.name, lg.kind, lg.steps, _r(lg.step_ms, 2), _r(lg.train_ms and lg.train_ms / 1000, 3),
                     lg.stop_reason, _r(lg.reserved_ms and lg.reserved_ms / 1000, 1),
                     _r(sum(t.seconds for t in lg.timings if t.nested_in is None and t.phase.counted_in), 1),
                     lg.world_size, lg.val_tokens])
        rows2.append([seed, f"{m.label} (line {m.line})", m.val_bpb, lg.code_compressed or lg.code_bytes,
                      lg.model_bytes, lg.total_bytes])
    if rows:
        rep.tables.append(Table("Per-seed runs (from the logs)", [
            "seed", "log", "kind", "steps", "ms/step", "train s", "stop", "reserved s", "artifact work s", "world",
            "val tokens"], rows))
        rep.tables.append(Table("Per-seed score and artifact", [
            "seed", "score metric", "val_bpb", "code bytes (counted)", "model bytes", "total bytes"], rows2))
        mrows = [[str(s.seed), mm.label, mm.bpb_text, _r(mm.eval_ms and mm.eval_ms / 1000, 1),
                  "diagnostic" if mm.diagnostic else "scored", mm.line] for s in facts.scores for mm in s.run.metrics]
        rep.tables.append(Table("Final metrics (every label)", ["seed", "label", "val_bpb", "eval s", "pass", "line"],
                                mrows))
    code = facts.parsed_code
    if code is not None:
        frows = []
        for tech in ("ttt", "slot", "ngram", "pre_quant_ttt"):
            sw = C.switch(tech, code, facts.claims, list(facts.runs))
            if sw.env is None and sw.logs_on is None:
                continue
            frows.append([tech, sw.env.describe() if sw.env else "-", _onoff(sw.command_on),
                          f"{_onoff(sw.logs_on)} {sw.log_evidence or ''}".strip(), _onoff(sw.effective)])
        if frows:
            rep.tables.append(Table("Techniques: code default, README command, logs",
                                    ["technique", "code default", "command", "logs", "effective"], frows))
    rep.tables.extend(computed)


def _r(v, nd):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(v, nd)


def _onoff(v):
    return "-" if v is None else ("on" if v else "off")


__all__ = ["audit_submission", "audit_paths", "sota_values", "find_records", "is_record_folder",
           "claimed_per_seed", "parse_log", "scan"]
