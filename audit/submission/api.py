"""`audit_submission(record_dir)`: every submission rule over one record folder; `audit_paths`.

Verdicts: "invalid" (any error-level finding), "non-record" (valid but not a record: non-record
track, or not significant against the given SOTA), "record" (everything passes).
"""

from __future__ import annotations

import math
import os
import re
import statistics
from pathlib import Path
from typing import Any

from audit.errors import InputError
from audit.progress import progress
from audit.report import Report, Table
from audit.rules import Finding, Severity
from audit.submission import claims as C
from audit.submission import rules as R
from audit.submission import stats as S
from audit.submission import tokcheck
from audit.submission.code import CodeAnalysis, analyse_file
from audit.submission.logs import Metric, SeedLog, parse_log
from audit.submission.record import RecordFolder, Num, check_schema, load_submission_json, read_text, scan, tolerance

OUTLIER_SLOW = 1.25  # step time above 1.25x the other seeds' median
OUTLIER_STEPS = 0.80  # step count below 0.8x the other seeds' median


def audit_submission(record_dir, *, sota=None, allow_missing_code: bool = False) -> Report:
    root = Path(record_dir)
    if not root.exists():
        raise InputError(root, "no such record folder")
    if not root.is_dir():
        raise InputError(root, "not a folder (a record is a folder with README.md, submission.json, logs)")
    rec = scan(root)
    rep = Report("submission", str(root))
    rep.extend(rec.findings)
    ctx = _Ctx(rec, rep)
    ctx.allow_missing_code = bool(allow_missing_code)
    ctx.files()
    ctx.read_logs()
    ctx.code_checks()
    ctx.seeds_and_values()
    ctx.sizes()
    ctx.times()
    ctx.outliers()
    ctx.claims()
    ctx.legality()
    tf, tt = tokcheck.check(rec, ctx.good_logs, rep.summary)
    rep.extend(tf)
    ctx.significance(sota)
    ctx.tables(tt)
    rep.verdict = ctx.verdict()
    return rep


def is_record_folder(p: Path, *, readme_counts: bool = False) -> bool:
    """A folder holding a record's own files (submission.json, train_gpt.py, logs; README.md only
    when nothing below it is a record: a track folder may have a README of its own)."""
    try:
        names = {e.name.lower() for e in os.scandir(p)}
    except OSError:
        return False
    strong = bool(names & {"submission.json", "train_gpt.py"}) or any(n.endswith(".log") for n in names)
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
    rec = scan(p)
    sub = None
    if rec.submission_json is not None:
        sub, _ = load_submission_json(rec.submission_json)
    logs = [lg for lg in (_safe_parse(x) for x in rec.logs) if lg and lg.final_metrics]
    if not logs:
        raise InputError(p, "the SOTA record folder has no log with a final metric")
    claimed = _claimed_per_seed(sub)
    vals = [lg.score_metric(claimed.get(lg.seed)).val_bpb for lg in logs]
    return vals, f"{p} ({len(vals)} seeds)"


def _safe_parse(p: Path) -> SeedLog | None:
    try:
        lg = parse_log(p)
    except OSError:
        return None
    return None if lg.binary else lg


def _claimed_per_seed(sub: dict | None) -> dict[int, float]:
    out: dict[int, float] = {}
    sr = sub.get("seed_results") if isinstance(sub, dict) else None
    if isinstance(sr, dict):
        for k, row in sr.items():
            v = row.get("val_bpb") if isinstance(row, dict) else None
            if str(k).isdigit() and isinstance(v, (int, float)) and not isinstance(v, bool):
                out[int(k)] = v
    return out


def _fmt_s(ms: float | None) -> str:
    return "?" if ms is None else f"{ms / 1000:.3f} s"


class _Ctx:
    def __init__(self, rec: RecordFolder, rep: Report):
        self.rec, self.rep = rec, rep
        self.sub: dict | None = None
        self.readme = ""
        self.code: CodeAnalysis | None = None
        self.logs: list[SeedLog] = []
        self.good_logs: list[SeedLog] = []
        self.scores: list[tuple[SeedLog, Metric]] = []
        self.claims_obj: C.Claims | None = None
        self.sig: S.Significance | None = None
        self.sig_tested = False
        self.non_record_track = False

    def add(self, f: Finding | None) -> None:
        self.rep.add(f)

    # --- files ------------------------------------------------------------------------------------
    def files(self) -> None:
        rec = self.rec
        if rec.readme is None:
            self.add(R.MISSING_README.finding("no README.md in the record folder", {"folder": str(rec.root)}))
        else:
            self.readme, trunc = read_text(rec.readme)
        if rec.submission_json is None:
            self.add(R.MISSING_SUBMISSION.finding("no submission.json in the record folder",
                                                  {"folder": str(rec.root)}))
        else:
            self.sub, fs = load_submission_json(rec.submission_json)
            self.rep.extend(fs)
            if self.sub is not None:
                self.rep.extend(check_schema(self.sub))
        if rec.code is None:
            sev = Severity.WARNING if self.allow_missing_code else None
            msg = "train_gpt.py is not shipped" + (
                " (--allow-missing-code: code checks skipped)" if self.allow_missing_code else "")
            self.add(R.MISSING_CODE.finding(msg, {"folder": str(rec.root),
                                                  "other_py": [rec.rel(p) for p in rec.other_py]},
                                            severity=sev))
        if not rec.logs:
            self.add(R.MISSING_LOG.finding("no train log (*.log) in the record folder",
                                           {"folder": str(rec.root)}))
        track = str((self.sub or {}).get("track", "")) if isinstance((self.sub or {}).get("track"), str) else ""
        if re.search(r"non[_\- ]?record", track, re.I) or "track_non_record" in str(rec.root):
            self.non_record_track = True
            self.add(R.NON_RECORD_TRACK.finding(f"non-record track ({track or rec.root.parent.name})",
                                                {"track": track or rec.root.parent.name}))

    allow_missing_code = False

    def read_logs(self) -> None:
        for p in self.rec.logs:
            rel = self.rec.rel(p)
            try:
                lg = parse_log(p)
            except OSError as e:
                self.add(R.LOG_UNREADABLE.finding(f"{rel} cannot be read: {e.strerror}", {"log": rel},
                                                  location=rel))
                continue
            self.logs.append(lg)
            if lg.binary:
                self.add(R.LOG_UNREADABLE.finding(f"{rel} is binary, not a text log", {"log": rel},
                                                  location=rel))
                continue
            if lg.long_lines:
                self.add(R.LOG_TRUNCATED_LINES.finding(
                    f"{rel}: {lg.long_lines} line(s) longer than the parser's cap were skipped",
                    {"log": rel, "long_lines": lg.long_lines}, location=rel))
            if not lg.final_metrics:
                self.add(R.NO_FINAL_METRIC.finding(
                    f"{rel} has no final val_bpb metric ({lg.lines:,} lines read)",
                    {"log": rel, "lines": lg.lines}, location=rel))
                continue
            self.good_logs.append(lg)
        seen: dict[int, str] = {}
        for lg in self.good_logs:
            if lg.seed is None:
                continue
            if lg.seed in seen:
                self.add(R.DUPLICATE_SEED.finding(f"seed {lg.seed} is reported by {seen[lg.seed]} and {lg.name}",
                                                  {"seed": lg.seed, "logs": [seen[lg.seed], lg.name]}))
            seen.setdefault(lg.seed, lg.name)

    def code_checks(self) -> None:
        if self.rec.code is None:
            return
        self.code = analyse_file(self.rec.code)
        if self.code.syntax_error:
            self.add(R.CODE_SYNTAX.finding(f"train_gpt.py does not parse: {self.code.syntax_error}",
                                           {"error": self.code.syntax_error}, location="train_gpt.py"))
        elif self.code.not_analysed:
            self.add(R.CODE_NOT_ANALYSED.finding(f"train_gpt.py not analysed: {self.code.not_analysed}",
                                                 {"reason": self.code.not_analysed}, location="train_gpt.py"))
        if self.code.unpacked:
            self.rep.summary["code wrapper"] = " / ".join(self.code.unpacked) + " (unpacked statically)"

    # --- per-seed values ----------------------------------------------------------------------
    def seeds_and_values(self) -> None:
        claimed = _claimed_per_seed(self.sub)
        sr = (self.sub or {}).get("seed_results") if isinstance(self.sub, dict) else None
        sr = sr if isinstance(sr, dict) else {}
        by_seed = {lg.seed: lg for lg in self.good_logs if lg.seed is not None}
        for k in sr:
            if str(k).isdigit() and int(k) not in by_seed and not any(
                    lg.seed == int(k) for lg in self.logs):
                self.add(R.MISSING_LOG.finding(
                    f"submission.json reports seed {k} but no log for it is shipped",
                    {"seed": k, "logs": [lg.name for lg in self.logs]}, location="submission.json"))
        label = self._score_label(claimed)
        for lg in self.good_logs:
            m = None
            if lg.seed in claimed:
                m = lg.score_metric(claimed[lg.seed])
                cv = claimed[lg.seed]
                if abs(m.val_bpb - cv) > max(tolerance(cv), 0.5 * 10 ** -min(m.decimals, 8)):
                    self.add(R.SEED_MISMATCH.finding(
                        f"seed {lg.seed}: submission.json val_bpb {_txt(cv)} is not printed in {lg.name} "
                        f"(its {m.label} is {m.bpb_text}, line {m.line})",
                        {"seed": lg.seed, "claimed": float(cv), "log_value": m.val_bpb, "log_label": m.label,
                         "log_line": m.line}, location=lg.name))
            if m is None:
                m = next((x for x in reversed(lg.final_metrics) if x.label == label), None) or lg.score_metric()
            self.scores.append((lg, m))
            self._other_seed_fields(lg, sr.get(str(lg.seed)) if lg.seed is not None else None)
        self._duplicates()
        self._mean_std()

    def _score_label(self, claimed: dict[int, float]) -> str | None:
        """The metric label the claimed mean refers to (when per-seed claims do not say)."""
        if claimed or not self.good_logs or not isinstance(self.sub, dict):
            return None
        cm = self.sub.get("val_bpb", self.sub.get("mean_val_bpb"))
        if not isinstance(cm, (int, float)) or isinstance(cm, bool):
            return None
        common = set.intersection(*({m.label for m in lg.final_metrics} for lg in self.good_logs))
        best = None
        for lab in common:
            vals = [next(m for m in reversed(lg.final_metrics) if m.label == lab).val_bpb for lg in self.good_logs]
            if abs(S.mean(vals) - cm) <= tolerance(cm) + 5e-9:
                best = lab if best is None or len(lab) > len(best) else best
        return best

    def _other_seed_fields(self, lg: SeedLog, row: Any) -> None:
        if not isinstance(row, dict):
            return
        checks = [("steps", lg.steps, 0.5), ("step_avg_ms", lg.step_avg_ms, None),
                  ("bytes_total", lg.total_bytes, 0.5), ("artifact_bytes", lg.total_bytes, 0.5)]
        for key, have, tol in checks:
            v = row.get(key)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or have is None:
                continue
            t = tol if tol is not None else tolerance(v)
            if abs(have - v) > t + 1e-9:
                self.add(R.SEED_MISMATCH.finding(
                    f"seed {lg.seed}: submission.json {key} {_txt(v)} but {lg.name} shows {have:g}",
                    {"seed": lg.seed, "field": key, "claimed": float(v), "log_value": have}, location=lg.name))
        for key, word in (("roundtrip_val_bpb", "roundtrip"), ("sliding_val_bpb", "sliding")):
            v = row.get(key)
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            cands = [m for m in lg.final_metrics if word in m.label]
            if cands and not any(abs(m.val_bpb - v) <= max(tolerance(v), 0.5 * 10 ** -min(m.decimals, 8))
                                 for m in cands):
                self.add(R.SEED_MISMATCH.finding(
                    f"seed {lg.seed}: submission.json {key} {_txt(v)} matches no {word} metric in {lg.name} "
                    f"({', '.join(f'{m.label} {m.bpb_text}' for m in cands[:3])})",
                    {"seed": lg.seed, "field": key, "claimed": float(v)}, location=lg.name))

    def _duplicates(self) -> None:
        hits = []
        for lg in self.good_logs:
            fm = lg.final_metrics[-200:]  # the final block; bounded on hostile logs
            for i, a in enumerate(fm):
                for b in fm[i + 1:]:
                    if a.base_label != b.base_label and a.bpb_text == b.bpb_text and a.loss_text == b.loss_text \
                            and a.decimals >= 4:
                        hits.append((lg, a, b))
        if hits:
            lg, a, b = hits[0]
            self.add(R.DUPLICATE_LABEL.finding(
                f"{lg.name}: `{b.label}` (line {b.line}) prints the same val_loss/val_bpb as `{a.label}` "
                f"(line {a.line}): {a.loss_text}/{a.bpb_text}" + (
                    f"; same in {len({h[0].name for h in hits}) - 1} more log(s)" if len({h[0].name for h in hits}) > 1
                    else ""),
                {"labels": sorted({h[1].label for h in hits} | {h[2].label for h in hits}),
                 "occurrences": [f"{h[0].name} lines {h[1].line}/{h[2].line}" for h in hits][:10]},
                location=lg.name))

    def _mean_std(self) -> None:
        vals = [m.val_bpb for _, m in self.scores]
        if not vals:
            return
        mean = S.mean(vals)
        std = S.std(vals) if len(vals) > 1 else float("nan")
        labels = sorted({m.label for _, m in self.scores})
        self.rep.summary.update({"seeds": len(vals), "score metric": ", ".join(labels),
                                 "mean val_bpb (logs)": round(mean, 8)})
        if len(vals) > 1:
            self.rep.summary["std val_bpb (logs, ddof=1)"] = round(std, 8)
        if len(vals) < 3:
            self.add(R.FEW_SEEDS.finding(f"{len(vals)} seed(s) with a final metric; records use 3 or more",
                                         {"seeds": len(vals)}))
        if not isinstance(self.sub, dict):
            return
        where = ", ".join(f"{lg.name} line {m.line} `{m.label}`" for lg, m in self.scores)
        for key in ("val_bpb", "mean_val_bpb"):
            v = self.sub.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and abs(mean - v) > tolerance(v) + 5e-9:
                self.add(R.MEAN_MISMATCH.finding(
                    f"submission.json {key} {_txt(v)} but the mean of the {len(vals)} per-seed log values is "
                    f"{mean:.8f}", {"claimed": float(v), "recomputed": mean, "values": vals, "from": where},
                    location="submission.json"))
        for key in ("val_bpb_std", "std_val_bpb"):
            v = self.sub.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and len(vals) > 1:
                pop = S.std(vals, ddof=0)
                if min(abs(std - v), abs(pop - v)) > tolerance(v) + 5e-9:
                    self.add(R.MEAN_MISMATCH.finding(
                        f"submission.json {key} {_txt(v)} but the per-seed log values give std {std:.8f} "
                        f"(ddof=1) / {pop:.8f} (ddof=0)",
                        {"claimed": float(v), "std_ddof1": std, "std_ddof0": pop, "values": vals, "from": where},
                        location="submission.json"))

    # --- size and time ------------------------------------------------------------------------------
    def sizes(self) -> None:
        shipped = self.rec.code.stat().st_size if self.rec.code is not None else None
        totals = []
        for lg in self.good_logs:
            code_b = lg.code_bytes
            total = lg.total_bytes
            if code_b is not None and lg.model_bytes is not None:
                if total is not None and total != code_b + lg.model_bytes:
                    self.add(R.TOTAL_MISMATCH.finding(
                        f"{lg.name}: total {total:,} != code {code_b:,} + model {lg.model_bytes:,} "
                        f"(= {code_b + lg.model_bytes:,})",
                        {"total": total, "code": code_b, "model": lg.model_bytes, "lines": [
                            lg.total_line, lg.code_line, lg.model_line]}, location=lg.name))
                if total is None:
                    total = code_b + lg.model_bytes
            if shipped is not None and code_b is not None and shipped != code_b:
                self.add(R.CODE_SIZE_MISMATCH.finding(
                    f"train_gpt.py is {shipped:,} bytes but {lg.name} logged Code size {code_b:,} (line {lg.code_line})",
                    {"shipped": shipped, "logged": code_b, "log": lg.name}, location="train_gpt.py"))
            if shipped is not None and lg.model_bytes is not None:
                total = max(total or 0, shipped + lg.model_bytes)
            if total is not None:
                totals.append(total)
                if total > R.CAP_BYTES:
                    self.add(R.ARTIFACT_OVER_CAP.finding(
                        f"{lg.name}: artifact {total:,} bytes > {R.CAP_BYTES:,} (over by {total - R.CAP_BYTES:,})",
                        {"total": total, "cap": R.CAP_BYTES, "code": code_b, "model": lg.model_bytes,
                         "shipped_code": shipped}, location=lg.name))
        if totals:
            self.rep.summary["artifact bytes (max)"] = max(totals)

    def times(self) -> None:
        tol = R.OVERRUN_TOLERANCE_MS
        trains, evals = [], []
        for lg in self.good_logs:
            if lg.train_ms is not None:
                trains.append(lg.train_ms)
                over = lg.train_ms - R.TRAIN_CAP_MS
                if over > 0:
                    self.add(R.TRAIN_OVER.finding(
                        f"{lg.name}: training stopped at {lg.train_ms:,.0f} ms, {over:,.0f} ms over the "
                        f"600,000 ms cap", {"train_ms": lg.train_ms, "over_ms": over, "line": lg.stop_line},
                        severity=Severity.WARNING if over <= tol else None, location=lg.name))
                post = lg.post_work_ms
                if post > 0:
                    total = lg.train_ms + post
                    over = total - R.TRAIN_CAP_MS
                    ev = {"train_ms": lg.train_ms, "post_training_ms": post, "total_ms": total,
                          "reserved_ms": lg.reserved_ms, "work": [f"line {p.line}: {p.text}" for p in lg.post_work][:5]}
                    if over > 0:
                        if lg.reserved_ms:
                            msg = (f"{lg.name}: post-training artifact work took {_fmt_s(post)} with "
                                   f"{_fmt_s(lg.reserved_ms)} reserved; training {_fmt_s(lg.train_ms)} + "
                                   f"{_fmt_s(post)} = {_fmt_s(total)}, {over / 1000:.3f} s over 600 s")
                        else:
                            msg = (f"{lg.name}: training stopped at {_fmt_s(lg.train_ms)} and then "
                                   f"{_fmt_s(post)} of post-training artifact work ran with no reservation "
                                   f"(line {lg.post_work[0].line}): {_fmt_s(total)} used of 600 s")
                        self.add(R.POST_CAP_WORK.finding(msg, ev, location=lg.name,
                                                         severity=Severity.WARNING if over <= tol else None))
            ev_ms = lg.eval_ms_total
            if ev_ms:
                evals.append(ev_ms)
                if ev_ms > R.EVAL_CAP_MS:
                    self.add(R.EVAL_OVER.finding(
                        f"{lg.name}: evaluation passes sum to {_fmt_s(ev_ms)} > 600 s",
                        {"eval_ms": ev_ms, "passes": {m.label: m.eval_ms for m in lg.final_metrics if m.eval_ms}},
                        location=lg.name))
        if trains:
            self.rep.summary["train time (max)"] = _fmt_s(max(trains))
        res = [lg.reserved_ms for lg in self.good_logs if lg.reserved_ms]
        if res:
            self.rep.summary["reserved for post-training work"] = _fmt_s(max(res))
        if evals:
            self.rep.summary["eval time per seed"] = f"{min(evals) / 1000:.1f}–{max(evals) / 1000:.1f} s"

    def outliers(self) -> None:
        pts = [(lg, m) for lg, m in self.scores if lg.step_ms is not None or lg.steps is not None]
        if len(pts) < 2:
            return
        vals = [m.val_bpb for _, m in self.scores]
        for lg, m in pts:
            others = [o for o, _ in pts if o is not lg]
            why = []
            so = [o.step_ms for o in others if o.step_ms is not None]
            if lg.step_ms is not None and so and lg.step_ms > OUTLIER_SLOW * statistics.median(so):
                why.append(f"{lg.step_ms:.2f} ms/step vs {statistics.median(so):.2f}")
            st = [o.steps for o in others if o.steps is not None]
            if lg.steps is not None and st and lg.steps < OUTLIER_STEPS * statistics.median(st):
                why.append(f"{lg.steps:,} steps vs {statistics.median(st):,.0f}")
            if why:
                rest = [v for (o, mm), v in zip(self.scores, vals) if o is not lg]
                self.add(R.OUTLIER_SEED.finding(
                    f"seed {lg.seed} ({lg.name}) looks throttled: {'; '.join(why)}; the mean moves from "
                    f"{S.mean(rest):.5f} (without it) to {S.mean(vals):.5f}",
                    {"seed": lg.seed, "step_ms": lg.step_ms, "steps": lg.steps, "val_bpb": m.val_bpb,
                     "mean_with": S.mean(vals), "mean_without": S.mean(rest)}, location=lg.name))

    # --- claims and legality ----------------------------------------------------------------------
    def claims(self) -> None:
        self.claims_obj = C.extract(self.readme, self.sub)
        code = self.code if self.code is not None and self.code.parsed else None
        self.rep.extend(C.check_negative_claims(self.claims_obj, code, self.good_logs))
        self.rep.extend(C.check_compression(self.claims_obj, code, self.good_logs))
        self.rep.extend(C.check_features(self.claims_obj, code, self.good_logs))

    def legality(self) -> None:
        code = self.code if self.code is not None and self.code.parsed else None
        cl = self.claims_obj or C.Claims()
        if code is not None:
            ttt = C.switch("ttt", code, cl, self.good_logs)
            for lo in code.ttt_loops:
                if lo.score_first:
                    self.add(R.TTT_SCORE_FIRST.finding(
                        f"{lo.function}: loop at line {lo.loop_line} scores under no_grad at line "
                        f"{lo.score_line} before the first optimizer step at line {lo.train_line}",
                        {"function": lo.function, "loop": lo.loop_line, "score": lo.score_line,
                         "train": lo.train_line}, location=f"train_gpt.py:{lo.loop_line}"))
                else:
                    self.add(R.TTT_ORDER.finding(
                        f"{lo.function}: loop at line {lo.loop_line} steps the optimizer (line {lo.train_line}) "
                        f"before scoring the chunk (line {lo.score_line})",
                        {"function": lo.function, "loop": lo.loop_line, "score": lo.score_line,
                         "train": lo.train_line, "ttt_effective": ttt.effective},
                        severity=Severity.WARNING if ttt.effective is False else None,
                        location=f"train_gpt.py:{lo.train_line}"))
            for tech, rule in (("slot", R.SLOT), ("pre_quant_ttt", R.PRE_QUANT_TTT)):
                sig = [s for s in code.signals if s.kind == tech]
                if not sig:
                    continue
                sw = C.switch(tech, code, cl, self.good_logs)
                if sw.effective is False:
                    continue  # implemented but off by default, in the command and in the logs
                how = sw.env.describe() if sw.env else "no switch: always on"
                self.add(rule.finding(f"train_gpt.py: {sig[0].detail} (line {sig[0].line}); {how}",
                                      {"lines": [s.line for s in sig][:10], "switch": how,
                                       "log_evidence": sw.log_evidence}, location=f"train_gpt.py:{sig[0].line}"))
            two = [s for s in code.signals if s.kind == "two_pass"]
            if two:
                self.add(R.TWO_PASS.finding(
                    f"train_gpt.py: {two[0].detail} (line {two[0].line})",
                    {"evidence": [f"line {s.line}: {s.detail}" for s in two][:10]},
                    location=f"train_gpt.py:{two[0].line}"))
            ng = [s for s in code.signals if s.kind == "ngram"]
            if ng:
                sw = C.switch("ngram", code, cl, self.good_logs)
                before = [s for s in ng if s.order == "before-score"]
                if sw.effective is not False or before:
                    lead = before[0] if before else ng[0]
                    self.add(R.NGRAM_CACHE.finding(
                        f"train_gpt.py: n-gram cache, {lead.detail}" + (
                            ": built from tokens not yet scored" if before else
                            ("; updated only after scoring: disclosure required" if any(
                                s.order == "after-score" for s in ng) else "; what updates it is not clear: "
                                                                           "disclosure required")),
                        {"evidence": [f"line {s.line}: {s.detail}" for s in ng][:10],
                         "switch": sw.env.describe() if sw.env else None},
                        severity=Severity.ERROR if before else None, location=f"train_gpt.py:{lead.line}"))
            for s in code.signals:
                if s.kind == "val_in_training":
                    self.add(R.VAL_IN_TRAINING.finding(f"train_gpt.py line {s.line}: {s.detail}",
                                                       {"line": s.line, "detail": s.detail},
                                                       location=f"train_gpt.py:{s.line}"))
        for lg in self.good_logs:  # what the logs show, code or not
            tf = lg.config.get("train_files", "")
            if re.search(r"(?:^|[/_])val(?:_|\b)", tf):
                self.add(R.VAL_IN_TRAINING.finding(f"{lg.name}: train_files is {tf}", {"train_files": tf},
                                                   location=lg.name))
            for k, ln in lg.markers.items():
                if re.search(r"rescor|two_?pass|second_?pass", k):
                    self.add(R.TWO_PASS.finding(f"{lg.name} line {ln}: `{k}` in the log", {"line": ln},
                                                location=lg.name))
                    break

    # --- significance, tables, verdict --------------------------------------------------------------
    def significance(self, sota) -> None:
        values, label = sota_values(sota)
        vals = [m.val_bpb for _, m in self.scores]
        self.rep.summary["BPB↔nats"] = S.CONVERSION
        if values is None:
            self.add(R.SIGNIFICANCE_UNTESTED.finding("no --sota given: the improvement was not tested", {}))
            return
        self.sig_tested = True
        if len(vals) < 2:
            self.add(R.NOT_SIGNIFICANT.finding(
                f"{len(vals)} per-seed value(s): a t-test against SOTA {label} needs at least 2 seeds",
                {"seeds": len(vals), "sota": label}))
            self.sig = None
            return
        sig = S.significance(vals, values)
        self.sig = sig
        ev = sig.as_dict() | {"sota": label, "conversion": S.CONVERSION, "values": vals}
        bpt = [m.val_loss / (m.val_bpb * S.LN2) for _, m in self.scores if m.val_bpb > 0]
        if bpt:
            ev["bytes_per_token (logs)"] = S.mean(bpt)
            ev["improvement_nats_per_token"] = sig.improvement_bpb * S.LN2 * S.mean(bpt)
        text = (f"{sig.test}: mean {sig.mean:.5f} vs SOTA {sig.sota_mean:.5f} ({label}): improvement "
                f"{sig.improvement_bpb:.5f} BPB = {sig.improvement_nats:.5f} nats/byte, margin 0.005 nats; "
                f"t={sig.t:.3g}, df={sig.df:.3g}, p={sig.p:.3g}")
        self.rep.summary["significance"] = f"p={sig.p:.3g} ({'significant' if sig.significant else 'not significant'})"
        if sig.significant:
            self.add(R.SIGNIFICANCE.finding(text, ev))
        else:
            self.add(R.NOT_SIGNIFICANT.finding(text, ev))

    def tables(self, extra: list) -> None:
        rows, rows2 = [], []
        for lg, m in sorted(self.scores, key=lambda lm: (lm[0].seed is None, lm[0].seed or 0, lm[0].name)):
            seed = str(lg.seed) if lg.seed is not None else "?"
            rows.append([seed, lg.name, lg.steps, _r(lg.step_ms, 2), _r(lg.train_ms and lg.train_ms / 1000, 3),
                         lg.stop_reason, _r(lg.reserved_ms and lg.reserved_ms / 1000, 1),
                         _r(lg.post_work_ms / 1000, 1), _r(lg.eval_ms_total / 1000, 1), lg.world_size,
                         lg.val_tokens])
            rows2.append([seed, f"{m.label} (line {m.line})", m.val_bpb, lg.code_bytes, lg.model_bytes,
                          lg.total_bytes])
        if rows:
            self.rep.tables.append(Table("Per-seed training and evaluation (from the logs)", [
                "seed", "log", "steps", "ms/step", "train s", "stop", "reserved s", "post-train s", "eval s",
                "world", "val tokens"], rows))
            self.rep.tables.append(Table("Per-seed score and artifact", [
                "seed", "score metric", "val_bpb", "code bytes", "model bytes", "total bytes"], rows2))
            mrows = [[str(lg.seed), mm.label, mm.bpb_text, _r(mm.eval_ms and mm.eval_ms / 1000, 1), mm.line]
                     for lg, _ in self.scores for mm in lg.final_metrics]
            self.rep.tables.append(Table("Final metrics (every label)", ["seed", "label", "val_bpb", "eval s",
                                                                         "line"], mrows))
        if self.code is not None and self.code.parsed:
            cl = self.claims_obj or C.Claims()
            frows = []
            for tech in ("ttt", "slot", "ngram", "pre_quant_ttt"):
                sw = C.switch(tech, self.code, cl, self.good_logs)
                if sw.env is None and sw.logs_on is None:
                    continue
                frows.append([tech, sw.env.describe() if sw.env else "-", _onoff(sw.command_on),
                              f"{_onoff(sw.logs_on)} {sw.log_evidence or ''}".strip(), _onoff(sw.effective)])
            if frows:
                self.rep.tables.append(Table("Techniques: code default, README command, logs",
                                             ["technique", "code default", "command", "logs", "effective"], frows))
            if self.code.compress:
                self.rep.tables.append(Table("Compression calls in train_gpt.py", ["library", "level", "as written",
                                                                                   "env default", "line"],
                                             [[c.lib, c.level, c.level_src, c.via_env, c.line]
                                              for c in self.code.compress[:20]]))
        self.rep.tables.extend(extra)

    def verdict(self) -> str:
        if self.rep.errors:
            return "invalid"
        if self.non_record_track or (self.sig_tested and (self.sig is None or not self.sig.significant)):
            return "non-record"
        return "record"


def _r(v, nd):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(v, nd)


def _onoff(v):
    return "-" if v is None else ("on" if v else "off")


def _txt(v) -> str:
    return v.text if isinstance(v, Num) else f"{v:g}"
