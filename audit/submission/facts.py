"""`RecordFacts`: everything the submission checks read, gathered once from a record folder.

Building it does all the I/O (folder scan, README, submission.json, code analysis, logs) and the
interpretation every check shares: which logs are copies of one run, which runs are reruns of a
seed, which run and metric each claimed per-seed value rests on. Checks never open files.
"""

from __future__ import annotations

import base64
import lzma
import re
from dataclasses import dataclass
from pathlib import Path

from audit.errors import InputError
from audit.rules import Finding
from audit.submission import claims as C
from audit.submission.code import CodeAnalysis, analyse_file
from audit.submission.logs import Metric, SeedLog, nest_timings, parse_log
from audit.submission.record import (Num, RecordFolder, is_not_a_record, load_submission_json, read_text,
                                     scan, tolerance)
from audit.timing import is_record_track

# A stub `exec(open(__file__.replace("train_gpt.py", "other.py")).read())` runs another shipped file.
_STUB_CALL = re.compile(r"exec\(\s*open\(")
_PY_LITERAL = re.compile(r"""["']([\w.\-]{1,100}\.py)["']""")
MAX_STUB_BYTES = 4096


@dataclass(frozen=True)
class CodeFacts:
    path: Path
    rel: str
    size: int  # bytes of the file that runs (the stub's target when the shipped file is a stub)
    analysis: CodeAnalysis
    stub: str | None = None  # rel path of the stub that execs this file
    compressed_estimate: int | None = None  # the script's lzma+b85 wrapper over the raw file (no minifier)


@dataclass(frozen=True)
class SeedScore:
    """The score of one seed: the run and the metric line it rests on."""

    seed: int | None
    run: SeedLog
    metric: Metric
    claimed: float | None  # submission.json's per-seed value, when it gives one
    reruns: tuple[SeedLog, ...] = ()  # other distinct runs of the same seed (not counted as seeds)


@dataclass(frozen=True)
class RecordFacts:
    root: Path
    folder: RecordFolder
    readme: str
    sub: dict | None
    sub_rel: str
    load_findings: tuple[Finding, ...]
    code: CodeFacts | None
    logs: tuple[SeedLog, ...]  # every log parsed, in folder order
    runs: tuple[SeedLog, ...]  # distinct runs with a final metric (copies removed)
    copies: tuple[tuple[str, str], ...]  # (copy, original) log pairs
    scores: tuple[SeedScore, ...]
    claims: C.Claims
    record_track: bool
    not_a_record: bool
    allow_missing_code: bool = False
    unreadable: tuple[tuple[str, str], ...] = ()  # (log, why)
    sota: tuple = (None, None)  # (values or value, label) of --sota
    val_bytes: int | None = None  # the val set's byte count when it is not the challenge's (a trainer's toy run)

    def rel(self, p: Path) -> str:
        return self.folder.rel(p)

    @property
    def parsed_code(self) -> CodeAnalysis | None:
        return self.code.analysis if self.code is not None and self.code.analysis.parsed else None

    @property
    def score_values(self) -> list[float]:
        return [s.metric.val_bpb for s in self.scores]


def build(record_dir: Path, *, allow_missing_code: bool = False, sota: tuple = (None, None),
          val_bytes: int | None = None) -> RecordFacts:
    root = Path(record_dir)
    if not root.exists():
        raise InputError(root, "no such record folder")
    if not root.is_dir():
        raise InputError(root, "not a folder (a record is a folder with README.md, submission.json, logs)")
    rec = scan(root)
    found: list[Finding] = list(rec.findings)
    readme = read_text(rec.readme)[0] if rec.readme is not None else ""
    sub, sub_rel = None, "submission.json"
    if rec.submission_json is not None:
        sub_rel = rec.rel(rec.submission_json)
        sub, fs = load_submission_json(rec.submission_json, sub_rel)
        found.extend(fs)
    logs, unreadable = _read_logs(rec)
    runs, copies = _distinct_runs(logs)
    claims = C.extract(readme, sub)
    return RecordFacts(
        root=root, folder=rec, readme=readme, sub=sub, sub_rel=sub_rel, load_findings=tuple(found),
        code=_code_facts(rec), logs=tuple(logs), runs=tuple(runs), copies=tuple(copies),
        scores=tuple(_scores(runs, sub)), claims=claims,
        record_track=_record_track(root, sub), not_a_record=is_not_a_record(rec),
        allow_missing_code=allow_missing_code, unreadable=tuple(unreadable), sota=sota, val_bytes=val_bytes)


def _record_track(root: Path, sub: dict | None) -> bool:
    track = sub.get("track") if isinstance(sub, dict) else None
    # the track folder the record sits in (records/<track>/<record>), and the json's own `track`
    return is_record_track(root.resolve().parent.name) and (not isinstance(track, str) or is_record_track(track))


def _read_logs(rec: RecordFolder) -> tuple[list[SeedLog], list[tuple[str, str]]]:
    logs, bad = [], []
    for p in rec.logs:
        rel = rec.rel(p)
        try:
            lg = parse_log(p, name=rel)
        except OSError as e:
            bad.append((rel, e.strerror or type(e).__name__))
            continue
        nest_timings(lg)
        logs.append(lg)
    return logs, bad


def _same_run(a: SeedLog, b: SeedLog) -> bool:
    """Byte copies, or the same run saved twice (same seed, steps, train time and metric lines)."""
    if a.sha256 and a.sha256 == b.sha256:
        return True
    key = lambda lg: (lg.seed, lg.steps, lg.train_ms, tuple((m.label, m.bpb_text, m.loss_text) for m in lg.metrics))
    return bool(a.metrics) and key(a) == key(b)


def _distinct_runs(logs: list[SeedLog]) -> tuple[list[SeedLog], list[tuple[str, str]]]:
    runs: list[SeedLog] = []
    copies: list[tuple[str, str]] = []
    # a log named after its seed is the original; `train.log` next to it is the copy
    for lg in sorted((x for x in logs if x.metrics and not x.binary), key=lambda x: (x.file_seed is None, x.name)):
        orig = next((r for r in runs if _same_run(r, lg)), None)
        if orig is None:
            runs.append(lg)
        else:
            copies.append((lg.name, orig.name))
    runs.sort(key=lambda x: x.name)
    return runs, copies


def claimed_per_seed(sub: dict | None) -> dict[int, float]:
    out: dict[int, float] = {}
    sr = sub.get("seed_results") if isinstance(sub, dict) else None
    if isinstance(sr, dict):
        for k, row in sr.items():
            v = row.get("val_bpb") if isinstance(row, dict) else None
            if str(k).isascii() and str(k).isdigit() and len(str(k)) <= 18 and _plausible(v):
                out[int(k)] = v
    return out


def _plausible(v) -> bool:
    """A number that can be a BPB (a 401-digit integer cannot, and would overflow a float)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and (isinstance(v, float) or abs(v) < 10**6)


def _scores(runs: list[SeedLog], sub: dict | None) -> list[SeedScore]:
    """One score per seed. When a seed has several runs (reruns, eval-only re-evaluations), the
    one whose final metric prints the claimed per-seed value is the scored one; else the training
    run first, then the first by name."""
    claimed = claimed_per_seed(sub)
    top = sub.get("val_bpb") if isinstance(sub, dict) else None
    top = top if _plausible(top) else None
    by_seed: dict[int | None, list[SeedLog]] = {}
    for r in runs:
        by_seed.setdefault(r.seed, []).append(r)
    out: list[SeedScore] = []
    for seed, rs in by_seed.items():
        groups = [[r] for r in rs] if seed is None else [rs]
        for group in groups:
            cv = claimed.get(seed) if seed is not None else None
            # one seed run several times and no per-seed claim: the claimed score picks the run
            want = cv if cv is not None else (top if len(group) > 1 and not claimed else None)
            pick = None
            if want is not None:
                tol = tolerance(want)
                hits = [(r, r.matching(want, tol)) for r in group]
                hits = [(r, m) for r, m in hits if m is not None]
                if hits:
                    pick = hits[0]
            if pick is None:
                order = sorted(group, key=lambda r: (r.kind != "train", "rerun" in r.name.lower(), r.name))
                r0 = order[0]
                pick = (r0, r0.score_metric(cv))
            run, metric = pick
            if metric is None:
                continue
            out.append(SeedScore(seed, run, metric, cv, tuple(r for r in group if r is not run)))
    return sorted(out, key=lambda s: (s.seed is None, s.seed or 0, s.run.name))


def _code_facts(rec: RecordFolder) -> CodeFacts | None:
    if rec.code is None:
        return None
    path, stub = rec.code, None
    try:
        size = path.stat().st_size
        if size <= MAX_STUB_BYTES:
            text = path.read_text("utf-8", "replace")
            names = [n for n in _PY_LITERAL.findall(text) if n != path.name] if _STUB_CALL.search(text) else []
            if names:
                target = path.parent / names[-1]
                if target in rec.files:
                    stub, path = rec.rel(path), target
                    size = path.stat().st_size
    except OSError:
        return None
    analysis = analyse_file(path)
    return CodeFacts(path=path, rel=rec.rel(path), size=size, analysis=analysis, stub=stub,
                     compressed_estimate=_compressed_estimate(path, size))


def _compressed_estimate(path: Path, size: int) -> int | None:
    """The size of the self-extracting wrapper the records build for their code
    (`exec(lzma.decompress(base64.b85decode(...)))`, see `_compressed_code_size` in the
    2026-04-29 record), over the raw file. The records minify first (pyminify), which golfcheck
    does not run, so this is an upper bound of what they log, not the exact figure."""
    if size > 8_000_000:
        return None
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    head = b'import lzma as L,base64 as B\nexec(L.decompress(B.b85decode("'
    # preset 6 as lzma.compress uses, with the dictionary sized to the file: the same bytes out (checked
    # on every record script in ../shared: identical lengths) without preset 6's ~90 MB of match-finder memory
    dict_size = max(1 << 16, 1 << (max(len(raw), 2) - 1).bit_length())
    packed = lzma.compress(raw, format=lzma.FORMAT_XZ,
                           filters=[{"id": lzma.FILTER_LZMA2, "preset": 6, "dict_size": dict_size}])
    return len(head) + len(base64.b85encode(packed)) + len(b'")))\n')


def num_text(v) -> str:
    return v.text if isinstance(v, Num) else f"{v:g}"
