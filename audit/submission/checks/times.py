"""Time: training plus artifact-producing work ≤ 600 s, scored evaluation ≤ 600 s.

The convention and its tolerance live in `audit.timing` (shared with the trainer's gate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit.rules import Finding, Severity, rule
from audit.submission.checks import Outcome
from audit.timing import EVAL_CAP_S, TOLERANCE_S, TRAIN_CAP_S, Phase, Timed, budget

if TYPE_CHECKING:
    from audit.submission.facts import RecordFacts

F = "submission"

TRAIN_OVER = rule(
    "SUB013", "train-time-over", "error", "Training ran past the 600 s wall-clock cap",
    explanation=f"Training may use at most {TRAIN_CAP_S:.0f} s on 8xH100. The clock is read between steps, so "
                f"an overrun within {TOLERANCE_S:g} s is reported as info with its number.",
    fix="Lower the cap in the script (MAX_WALLCLOCK_SECONDS) so the last step ends before 600 s.", family=F)
POST_CAP_WORK = rule(
    "SUB014", "post-cap-artifact-work", "error",
    "Training plus the work that produces the artifact (GPTQ calibration, Hessians) exceeds 600 s",
    explanation="Data-dependent work that produces the artifact (GPTQ calibration, Hessian collection, "
                "self-generated calibration text) belongs to the 600 s training budget; accepted records "
                "reserve it inside the cap (`gptq:reserving 12s, effective=588000ms`). Quantizing and "
                "compressing the final weights afterwards is export: reported, not counted. Nested "
                f"timings count once. Beyond {TOLERANCE_S:g} s over the cap is an error.",
    fix="Reserve the post-training work inside the cap (stop training early by its duration).", family=F)
EVAL_OVER = rule(
    "SUB015", "eval-time-over", "error", "The scored evaluation passes sum to more than 600 s",
    explanation="Evaluation may use at most 600 s. The passes of the artifact are summed (quantized "
                "roundtrip, sliding window, TTT); passes labelled diagnostic or evaluating the weights "
                "before quantization are reported and left out.",
    fix="Make evaluation cheaper (larger stride, fewer TTT epochs) or drop passes.", family=F)
NON_RECORD_TRACK = rule(
    "SUB038", "non-record-track", "info", "The submission is on a non-record track",
    explanation="Folders under a non-record track (or `track` naming it) are not records and are not "
                "held to the 600 s caps.",
    fix="Nothing to fix.", family=F)


def check(facts: "RecordFacts") -> Outcome:
    if facts.not_a_record:
        return Outcome([])
    out: list[Finding] = []
    if not facts.record_track:
        track = facts.sub.get("track") if isinstance(facts.sub, dict) else None
        out.append(NON_RECORD_TRACK.finding(f"non-record track ({track or facts.root.parent.name}): the 600 s "
                                            f"caps are not applied", {"track": track or facts.root.parent.name}))
    sev_cap = None if facts.record_track else Severity.INFO
    trains, evals, exports = [], [], []
    for s in facts.scores:
        tr = s.run if s.run.kind == "train" else next((r for r in s.reruns if r.kind == "train"), None)
        if tr is not None and tr.train_ms is not None:
            found = _train(tr, sev_cap)
            fits = [r for r in s.reruns if r.kind == "train" and r.train_ms is not None
                    and not _budget(r).train_breaks_cap]
            for f in found:
                if f.severity is Severity.ERROR and fits:  # say so: the reviewer may accept the rerun
                    f.message += (f"; a rerun of seed {s.seed} fits ({fits[0].name}: "
                                  f"{_budget(fits[0]).train_s:.1f} s), but the claimed value is this run's")
            out += found
            b = _budget(tr)
            trains.append(b.train_s)
            exports.append(b.export_s)
        out += _eval(s.run, sev_cap)
        evals.append(_eval_s(s.run)[0])
    summary = {}
    if trains:
        summary["train + artifact work (max)"] = f"{max(trains):.1f} s"
    if any(exports):
        summary["export, not counted (max)"] = f"{max(exports):.1f} s"
    if any(evals):
        summary["scored eval per seed"] = f"{min(evals):.1f}–{max(evals):.1f} s"
    return Outcome(out, summary)


def _budget(lg):
    items = [Timed(Phase.TRAIN, lg.train_ms / 1000.0, "training")]
    items += [t.timed() for t in lg.timings if t.nested_in is None]
    return budget(items)


def _train(lg, sev_cap) -> list[Finding]:
    train_s = lg.train_ms / 1000.0
    b = _budget(lg)
    work = b.train_s - train_s
    out = []
    over = train_s - TRAIN_CAP_S
    if over > 0 and work <= 0:
        sev = Severity.INFO if over <= TOLERANCE_S else sev_cap
        out.append(TRAIN_OVER.finding(
            f"{lg.name}: training stopped at {train_s:.3f} s, {over:.3f} s past the {TRAIN_CAP_S:.0f} s cap"
            + (" (within the tolerance)" if over <= TOLERANCE_S else ""),
            {"train_s": train_s, "over_s": over}, severity=sev, file=lg.name, line=lg.stop_line))
    if work > 0 and b.train_over_s > 0:
        counted = [t for t in lg.timings if t.nested_in is None and t.phase is Phase.ARTIFACT_WORK]
        nested = [t for t in lg.timings if t.nested_in is not None]
        # the effective cap is exact where the printed reserve is rounded ("reserving 0s, effective=599500ms")
        reserved_s = (TRAIN_CAP_S - lg.effective_cap_ms / 1000 if lg.effective_cap_ms is not None else
                      lg.reserved_ms / 1000 if lg.reserved_ms is not None else None)
        reserve = f"{reserved_s:g} s reserved" if reserved_s is not None else "no reservation"
        sev = Severity.INFO if b.train_over_s <= TOLERANCE_S else sev_cap
        msg = (f"{lg.name}: training {train_s:.3f} s + {work:.1f} s of artifact work after it "
               f"({'; '.join(f'line {t.line}: {t.seconds:g} s' for t in counted[:3])}) = {b.train_s:.1f} s, "
               f"{b.train_over_s:.1f} s over {TRAIN_CAP_S:.0f} s ({reserve})")
        if nested:
            msg += f"; nested timings counted once (line {nested[0].line} is inside line {nested[0].nested_in})"
        out.append(POST_CAP_WORK.finding(msg, {
            "train_s": train_s, "artifact_work_s": work, "total_s": b.train_s, "reserved_s": reserved_s or 0.0,
            "export_s_not_counted": b.export_s, "work": [f"line {t.line}: {t.text}" for t in counted][:5]},
            severity=sev, file=lg.name, line=counted[0].line if counted else lg.stop_line))
    return out


def _eval_s(lg) -> tuple[float, list[str], list[str]]:
    scored, diag, total = [], [], 0.0
    for label, (ms, line, diagnostic) in lg.eval_passes.items():
        if diagnostic:
            diag.append(f"{label} {ms / 1000:.1f} s (line {line})")
        else:
            scored.append(f"{label} {ms / 1000:.1f} s (line {line})")
            total += ms / 1000.0
    return total, scored, diag


def _eval(lg, sev_cap) -> list[Finding]:
    total, scored, diag = _eval_s(lg)
    if total - EVAL_CAP_S <= TOLERANCE_S:
        return []
    return [EVAL_OVER.finding(
        f"{lg.name}: scored evaluation passes sum to {total:.1f} s > {EVAL_CAP_S:.0f} s ({'; '.join(scored)})"
        + (f"; left out as diagnostic: {'; '.join(diag)}" if diag else ""),
        {"eval_s": total, "passes": scored, "diagnostic": diag}, severity=sev_cap, file=lg.name)]
