"""Per-seed values and their summary: claimed vs logged, mean and std, reruns, outliers."""

from __future__ import annotations

import re
import statistics
from typing import TYPE_CHECKING

from audit.rules import Finding, Severity, rule
from audit.submission import stats as S
from audit.submission.record import Num, tolerance

if TYPE_CHECKING:
    from audit.submission.facts import RecordFacts, SeedScore

F = "submission"
OUTLIER_SLOW = 1.25  # step time above 1.25x the other seeds' median
OUTLIER_STEPS = 0.80  # step count below 0.8x the other seeds' median
STD_RELATIVE_OK = 0.10  # a claimed std within 10 % of the recomputed one is rounding, not a slip
FEW_BYTES = 8  # integer fields (bytes, steps) differing by at most this are reported, not errors

SEED_MISMATCH = rule(
    "SUB016", "seed-value-mismatch", "error", "A claimed per-seed value is not what its log shows",
    explanation="Each per-seed number in submission.json (val_bpb, steps, artifact bytes) must be "
                "printed in that seed's log; when a seed has several runs, the one printing the claimed "
                "value is the scored run.",
    fix="Copy the numbers from the logs (the final metric line the score is defined by).", family=F)
MEAN_MISMATCH = rule(
    "SUB017", "mean-std-mismatch", "error", "The claimed score is not the mean of the per-seed values",
    explanation="The mean is recomputed from the per-seed values in the logs and compared at the "
                "precision it is written. Reporting one seed's value (best or canonical) instead of the "
                "mean is a warning when the README says so, with the true mean; an undisclosed one, or a "
                "value no seed and no mean supports, is an error. A claimed std is compared too (a "
                "mismatch is a warning: the std is not the score).",
    fix="Report the mean of the per-seed values (std with ddof=1), or say which seed is reported.", family=F)
DUPLICATE_LABEL = rule(
    "SUB018", "duplicated-metric-label", "warning", "The same value is printed under two metric labels",
    explanation="E.g. `final_int8_zlib_roundtrip_exact` printed with the sliding-window numbers: a "
                "parser (or a reviewer) picking the label gets the wrong pass.",
    fix="Print each pass's own value under its own label.", family=F)
OUTLIER_SEED = rule(
    "SUB019", "outlier-seed", "warning", "A seed's step time or step count is far from the others",
    explanation="A seed run on a throttled machine (e.g. 152 ms/step and 3,933 steps vs ~90 ms and "
                "6,500) is not representative; averaging it in moves the mean.",
    fix="Re-run the seed on a healthy machine, or state why it differs.", family=F)
FEW_SEEDS = rule(
    "SUB036", "few-seeds", "warning", "Fewer than 3 seeds",
    explanation="Records are usually judged on the mean of 3 or more seeds with per-seed logs.",
    fix="Run and ship at least 3 seeds.", family=F)
DUPLICATE_SEED = rule(
    "SUB039", "duplicate-seed", "warning", "A seed has more than one run (reruns), counted once",
    explanation="Rerun logs (`train_seed42_rerun.log` next to `train_seed42.log`) are two runs of one "
                "seed, not two seeds. The run whose value submission.json claims is the scored one "
                "(info); when nothing says which, the audit picks the training run and warns.",
    fix="Say in submission.json which run each per-seed value comes from.", family=F)
SEED_LABEL = rule(
    "SUB045", "log-seed-mislabelled", "warning", "A log's file name names another seed than its content",
    explanation="`train_seed0.log` whose hyperparameters say `seed: 1337` is a mislabelled file: the "
                "seed the content states is used.",
    fix="Name each log after the seed it ran.", family=F)


def check(facts: "RecordFacts") -> list[Finding]:
    if facts.not_a_record:
        return []
    out: list[Finding] = []
    out += _labels(facts)
    out += _claimed_seeds(facts)
    out += _reruns(facts)
    for s in facts.scores:
        out += _per_seed(facts, s)
    out += _mean(facts)
    out += _std(facts)
    out += _duplicates(facts)
    out += _outliers(facts)
    n = len({s.seed for s in facts.scores})
    if facts.scores and n < 3:
        out.append(FEW_SEEDS.finding(f"{n} seed(s) with a final metric; records use 3 or more", {"seeds": n}))
    return out


def _labels(facts) -> list[Finding]:
    out = []
    for lg in facts.runs:
        if lg.file_seed is not None and lg.seed_line is not None and lg.seed != lg.file_seed:
            out.append(SEED_LABEL.finding(
                f"{lg.name} is named for seed {lg.file_seed} but its line {lg.seed_line} says seed {lg.seed}",
                {"log": lg.name, "file_seed": lg.file_seed, "content_seed": lg.seed}, file=lg.name, line=lg.seed_line))
    return out


def _claimed_seeds(facts) -> list[Finding]:
    from audit.submission.checks.files import MISSING_LOG
    from audit.submission.facts import claimed_per_seed

    have = {s.seed for s in facts.scores} | {lg.file_seed for lg in facts.runs}
    out = []
    for seed in claimed_per_seed(facts.sub):
        if seed not in have:
            out.append(MISSING_LOG.finding(f"{facts.sub_rel} reports seed {seed} but no log of that seed is shipped",
                                           {"seed": seed, "logs": [lg.name for lg in facts.runs]}, file=facts.sub_rel))
    return out


def _reruns(facts) -> list[Finding]:
    out = []
    for s in facts.scores:
        if not s.reruns:
            continue
        names = ", ".join(r.name for r in s.reruns)
        chosen = "the run printing the claimed value" if s.claimed is not None and \
            s.run.matching(s.claimed, tolerance(s.claimed)) else "the training run (nothing says which)"
        sev = Severity.INFO if s.claimed is not None and s.run.matching(s.claimed, tolerance(s.claimed)) else None
        out.append(DUPLICATE_SEED.finding(
            f"seed {s.seed} has {1 + len(s.reruns)} runs ({s.run.name}, {names}); scored: {s.run.name}, {chosen}",
            {"seed": s.seed, "scored": s.run.name, "other_runs": [r.name for r in s.reruns]},
            severity=sev, file=s.run.name))
    return out


def _train_run(s: "SeedScore"):
    return s.run if s.run.kind == "train" else next((r for r in s.reruns if r.kind == "train"), s.run)


def _per_seed(facts, s: "SeedScore") -> list[Finding]:
    out = []
    m = s.metric
    if s.claimed is not None and abs(m.val_bpb - s.claimed) > max(tolerance(s.claimed), 0.5 * 10 ** -min(m.decimals, 8)):
        out.append(SEED_MISMATCH.finding(
            f"seed {s.seed}: {facts.sub_rel} val_bpb {_txt(s.claimed)} is not printed in any run of the seed "
            f"({s.run.name}'s {m.label} is {m.bpb_text}, line {m.line})",
            {"seed": s.seed, "claimed": float(s.claimed), "log_value": m.val_bpb, "log_label": m.label},
            file=s.run.name, line=m.line))
    row = _seed_row(facts.sub, s.seed)
    if not isinstance(row, dict):
        return out
    tr = _train_run(s)
    for key, have, line in (("steps", tr.steps, tr.stop_line), ("bytes_total", tr.total_bytes, tr.total_line),
                            ("artifact_bytes", tr.total_bytes, tr.total_line)):
        v = row.get(key)
        if not _count(v) or have is None or abs(have - v) < 0.5:
            continue
        sev = Severity.WARNING if abs(have - v) <= FEW_BYTES and key != "steps" else None
        out.append(SEED_MISMATCH.finding(
            f"seed {s.seed}: {facts.sub_rel} {key} {_txt(v)} but {tr.name} shows {have:,}"
            + (f" ({have - v:+,.0f}{'; the log is over the 16,000,000-byte cap' if have > 16_000_000 >= v else ''})"
               if key != "steps" else ""),
            {"seed": s.seed, "field": key, "claimed": float(v), "log_value": have}, severity=sev,
            file=tr.name, line=line))
    return out


def _seed_row(sub, seed):
    sr = sub.get("seed_results") if isinstance(sub, dict) else None
    return sr.get(str(seed)) if isinstance(sr, dict) and seed is not None else None


def _claimed_mean(facts):
    if not isinstance(facts.sub, dict):
        return None, None
    from audit.submission.facts import _plausible

    for key in ("val_bpb", "mean_val_bpb"):
        v = facts.sub.get(key)
        if _plausible(v):
            return key, v
    return None, None


def _mean(facts) -> list[Finding]:
    key, cv = _claimed_mean(facts)
    vals = facts.score_values
    if cv is None or not vals:
        return []
    mean = S.mean(vals)
    digits = max((s.metric.decimals for s in facts.scores), default=8)
    tol = tolerance(cv) + 0.5 * 10 ** -min(digits, 10) + 5e-9
    if abs(mean - cv) <= tol:
        return []
    ev = {"claimed": float(cv), "recomputed": mean, "values": vals,
          "from": [f"{s.run.name} line {s.metric.line} `{s.metric.label}`" for s in facts.scores]}
    one = next((s for s in facts.scores if abs(s.metric.val_bpb - cv) <= max(tolerance(cv), 0.5 * 10 ** -min(
        s.metric.decimals, 8)) + 1e-12), None)
    if one is not None and len(vals) > 1:
        where = _disclosed(facts.readme, one.seed, cv, mean) or _disclosed(
            str((facts.sub or {}).get("blurb", ""))[:5000], None, cv, mean)
        msg = (f"{facts.sub_rel} {key} {_txt(cv)} is seed {one.seed}'s value, not the mean of the {len(vals)} seeds "
               f"({mean:.8f})")
        if where:
            return [MEAN_MISMATCH.finding(msg + f"; the README says so ({where})", ev | {"disclosed": where},
                                          severity=Severity.WARNING, file=facts.sub_rel)]
        return [MEAN_MISMATCH.finding(msg + "; the README does not say a single seed is reported", ev,
                                      file=facts.sub_rel)]
    return [MEAN_MISMATCH.finding(
        f"{facts.sub_rel} {key} {_txt(cv)} but the mean of the {len(vals)} per-seed log values is {mean:.8f}",
        ev, file=facts.sub_rel)]


_DISCLOSE_WORDS = re.compile(r"\b(?:submitted|canonical|best|reported|representative|primary|headline)\b", re.I)


_MEAN_WORD = re.compile(r"\bmean\b", re.I)
_DECIMAL = re.compile(r"(?<![\d.])\d\.\d{3,8}(?![\d])")


def _disclosed(readme: str, seed, value, mean: float | None = None) -> str | None:
    """A README line naming the reported seed (or value) together with a word saying it is the one
    reported ("Submitted: seed 2025 (best)", "canonical rerun, SEED=1337"), or stating the true mean
    next to the word mean ("3-seed mean 1.1570"): the reader is told both numbers."""
    val = _txt(value)
    for no, line in enumerate(readme.splitlines()[:2000], start=1):
        if mean is not None and _MEAN_WORD.search(line) and not line.lstrip().startswith("|"):
            for d in _DECIMAL.findall(line):
                if abs(float(d) - mean) <= 0.5 * 10 ** -(len(d) - 2) + 1e-12:
                    return f"README.md line {no} gives the mean {d}"
        if line.lstrip().startswith("|"):
            continue  # a results table row is data, not a disclosure
        if not _DISCLOSE_WORDS.search(line):
            continue
        if (seed is not None and re.search(rf"(?<![\d.]){seed}(?![\d.])", line)) or val in line:
            return f"README.md line {no}"
    return None


def _std(facts) -> list[Finding]:
    vals = facts.score_values
    if len(vals) < 2 or not isinstance(facts.sub, dict):
        return []
    out = []
    for key in ("val_bpb_std", "std_val_bpb"):
        v = facts.sub.get(key)
        if not isinstance(v, float) or not v == v:
            continue
        s1, s0 = S.std(vals), S.std(vals, ddof=0)
        near = min(abs(s1 - v), abs(s0 - v))
        if near <= tolerance(v) + 5e-9:
            continue
        rel = near / max(min(s1, s0), 1e-12)
        sev = Severity.INFO if rel <= STD_RELATIVE_OK else Severity.WARNING
        out.append(MEAN_MISMATCH.finding(
            f"{facts.sub_rel} {key} {_txt(v)} but the per-seed values give std {s1:.6f} (ddof=1) / {s0:.6f} (ddof=0)"
            + (": rounding" if sev is Severity.INFO else ""),
            {"claimed": float(v), "std_ddof1": s1, "std_ddof0": s0, "values": vals}, severity=sev, file=facts.sub_rel))
    return out


def _duplicates(facts) -> list[Finding]:
    hits = []
    for s in facts.scores:
        fm = s.run.metrics[-200:]
        for i, a in enumerate(fm):
            for b in fm[i + 1:]:
                if a.base_label != b.base_label and a.bpb_text == b.bpb_text and a.loss_text == b.loss_text \
                        and a.decimals >= 4 and not (a.diagnostic or b.diagnostic):
                    hits.append((s.run, a, b))
    if not hits:
        return []
    lg, a, b = hits[0]
    more = len({h[0].name for h in hits}) - 1
    return [DUPLICATE_LABEL.finding(
        f"{lg.name}: `{b.label}` (line {b.line}) prints the same val_loss/val_bpb as `{a.label}` (line {a.line}): "
        f"{a.loss_text}/{a.bpb_text}" + (f"; same in {more} more log(s)" if more else ""),
        {"labels": sorted({h[1].label for h in hits} | {h[2].label for h in hits}),
         "occurrences": [f"{h[0].name} lines {h[1].line}/{h[2].line}" for h in hits][:10]}, file=lg.name, line=b.line)]


def _outliers(facts) -> list[Finding]:
    pts = [s for s in facts.scores if s.run.kind == "train" and (s.run.step_ms is not None or s.run.steps)]
    if len(pts) < 2:
        return []
    out = []
    vals = [s.metric.val_bpb for s in facts.scores]
    for s in pts:
        lg = s.run
        others = [o.run for o in pts if o is not s]
        why = []
        so = [o.step_ms for o in others if o.step_ms is not None]
        if lg.step_ms is not None and so and lg.step_ms > OUTLIER_SLOW * statistics.median(so):
            why.append(f"{lg.step_ms:.2f} ms/step vs {statistics.median(so):.2f}")
        st = [o.steps for o in others if o.steps is not None]
        if lg.steps is not None and st and lg.steps < OUTLIER_STEPS * statistics.median(st):
            why.append(f"{lg.steps:,} steps vs {statistics.median(st):,.0f}")
        if why:
            rest = [o.metric.val_bpb for o in facts.scores if o is not s]
            out.append(OUTLIER_SEED.finding(
                f"seed {s.seed} ({lg.name}) looks throttled: {'; '.join(why)}; the mean moves from "
                f"{S.mean(rest):.5f} (without it) to {S.mean(vals):.5f}",
                {"seed": s.seed, "step_ms": lg.step_ms, "steps": lg.steps, "val_bpb": s.metric.val_bpb,
                 "mean_with": S.mean(vals), "mean_without": S.mean(rest)}, file=lg.name, line=lg.stop_line))
    return out


def _count(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 10**15


def _txt(v) -> str:
    if isinstance(v, Num):
        return v.text
    return f"{v:g}" if isinstance(v, float) or abs(v) < 10**15 else str(v)[:20] + "…"
