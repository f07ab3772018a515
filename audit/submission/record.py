"""The record folder model: what a folder ships, read defensively.

Nothing is followed out of the folder (a symlink to elsewhere is a finding and is not opened),
nothing but regular files is opened (a FIFO would block the audit), JSON and text are read with
size caps, and JSON nesting is bounded (a deeply nested file is a finding, not a crash).
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.rules import Finding, Severity
from audit.submission.checks import files as R
from audit.submission.logs import looks_like_log
from audit.tokenizers import TOKENIZER_SUFFIXES  # the backend table's artifact suffixes

from audit.budgets import MAX_CI_ENTRIES as MAX_ENTRIES  # noqa: E402 - budgets stated in one place
from audit.budgets import MAX_JSON_DEPTH, MAX_TEXT_BYTES  # noqa: E402
from audit.budgets import MAX_SUBMISSION_JSON_BYTES as MAX_JSON_BYTES  # noqa: E402
MAX_DEPTH = 4  # folder levels scanned below the record folder
LOG_SUFFIXES = (".log",)
_IGNORED_DIRS = {".git", "__pycache__", ".venv", "node_modules"}


class Num(float):
    """A JSON number that remembers how it was written (its printed precision matters)."""

    text: str

    def __new__(cls, text: str):
        obj = super().__new__(cls, text)
        obj.text = text
        return obj

    @property
    def decimals(self) -> int:
        t = self.text.lower().split("e", 1)[0]
        return len(t.split(".", 1)[1]) if "." in t else 0


def tolerance(value: float) -> float:
    """Half a unit in the last printed decimal of a claimed number (plain floats: 5e-9)."""
    d = value.decimals if isinstance(value, Num) else 8
    return 0.5 * 10 ** -min(d, 10) + 1e-12


@dataclass
class RecordFolder:
    root: Path
    readme: Path | None = None
    submission_json: Path | None = None
    code: Path | None = None
    logs: list[Path] = field(default_factory=list)
    tokenizers: list[Path] = field(default_factory=list)
    metas: list[Path] = field(default_factory=list)
    manifest: Path | None = None
    other_py: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    naming: list[str] = field(default_factory=list)  # files found under other names than the challenge's
    findings: list[Finding] = field(default_factory=list)

    def rel(self, p: Path) -> str:
        try:
            return str(p.relative_to(self.root))
        except ValueError:
            return str(p)


def _inside(root_real: str, target: str) -> bool:
    return target == root_real or target.startswith(root_real.rstrip(os.sep) + os.sep)


def scan(root: Path) -> RecordFolder:
    """List the record folder's files (bounded), classify them, report unsafe entries."""
    root = Path(os.path.abspath(root))
    rec = RecordFolder(root=root)
    root_real = os.path.realpath(root)
    stack: list[tuple[Path, int]] = [(root, 0)]
    n = 0
    while stack:
        d, depth = stack.pop()
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as e:
            rec.findings.append(R.UNSAFE_PATH.finding(
                f"cannot list {d}: {e.strerror}", {"path": str(d)}, location=str(d)))
            continue
        for e in entries:
            n += 1
            if n > MAX_ENTRIES:
                rec.findings.append(R.UNSAFE_PATH.finding(
                    f"more than {MAX_ENTRIES} entries; the rest of the folder was not scanned",
                    {"limit": MAX_ENTRIES}, severity=Severity.WARNING))
                return _classify(rec)
            p = Path(e.path)
            if e.is_symlink():
                target = os.path.realpath(p)
                if not _inside(root_real, target):
                    rec.findings.append(R.UNSAFE_PATH.finding(
                        f"{rec.rel(p)} is a symlink to {os.readlink(p)!s} outside the record folder; "
                        f"not followed", {"link": rec.rel(p), "target": os.readlink(p)},
                        file=rec.rel(p)))
                    continue
                try:
                    st = os.stat(target)
                except OSError:
                    rec.findings.append(R.UNSAFE_PATH.finding(
                        f"{rec.rel(p)} is a broken symlink", {"link": rec.rel(p)}, file=rec.rel(p)))
                    continue
            else:
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
            if stat.S_ISDIR(st.st_mode):
                if e.name not in _IGNORED_DIRS and depth + 1 <= MAX_DEPTH and not e.is_symlink():
                    stack.append((p, depth + 1))
                continue
            if not stat.S_ISREG(st.st_mode):
                rec.findings.append(R.UNSAFE_PATH.finding(
                    f"{rec.rel(p)} is not a regular file (FIFO/device/socket); not opened",
                    {"path": rec.rel(p)}, file=rec.rel(p)))
                continue
            rec.files.append(p)
    return _classify(rec)


def _classify(rec: RecordFolder) -> RecordFolder:
    """Find the record's own files, also when they are named otherwise (`submission_ternary.json`,
    `train_gpt_v5.py`, logs as `*.txt` or under `logs/`). Names that differ from the challenge's
    are remembered in `rec.naming` and reported (a warning), never guessed silently."""
    top = [p for p in rec.files if p.parent == rec.root]
    for p in sorted(rec.files, key=lambda q: (len(q.parts), str(q))):
        name = p.name.lower()
        if name == "readme.md" and rec.readme is None and p.parent == rec.root:
            rec.readme = p
        elif name == "submission.json" and p.parent == rec.root:
            rec.submission_json = p
        elif name == "train_gpt.py" and p.parent == rec.root:
            rec.code = p
        elif name.endswith(".meta.npz"):
            rec.metas.append(p)
        elif name.endswith(LOG_SUFFIXES):
            rec.logs.append(p)
        elif name.endswith(".txt") and not name.startswith(("requirements", "readme", "license")) \
                and _looks_like_log(p):
            rec.logs.append(p)
        elif name.endswith(TOKENIZER_SUFFIXES):
            rec.tokenizers.append(p)
        elif name == "manifest.json" and rec.manifest is None:
            rec.manifest = p
        elif name.endswith(".py") and p in top:
            rec.other_py.append(p)
    if rec.readme is None:  # README.MD / readme.txt variants
        for p in top:
            if p.name.lower().startswith("readme"):
                rec.readme = p
                break
    if rec.submission_json is None:
        alts = sorted(p for p in top if p.name.lower().startswith("submission") and p.name.lower().endswith(".json"))
        if alts:
            rec.submission_json = alts[0]
            rec.naming.append(f"submission.json is shipped as {rec.rel(alts[0])}")
    if rec.code is None:
        alts = sorted((p for p in rec.other_py if p.name.lower().startswith("train_gpt")),
                      key=lambda q: (-_size(q), q.name))
        if alts:
            rec.code = alts[0]
            rec.other_py.remove(alts[0])
            rec.naming.append(f"train_gpt.py is shipped as {rec.rel(alts[0])}")
    return rec


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def _looks_like_log(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            head = f.read(65536)
            f.seek(max(0, _size(p) - 65536))
            tail = f.read(65536)
    except OSError:
        return False
    # Logs echo their code first: the facts may start after the first 64 KB, so the tail counts too.
    return looks_like_log(head) or looks_like_log(tail)


def is_not_a_record(rec: RecordFolder) -> bool:
    """Only logs (no README, no submission json, no code): a stray folder, not a record."""
    return bool(rec.logs) and rec.readme is None and rec.submission_json is None and rec.code is None \
        and not rec.other_py


def read_text(p: Path, cap: int = MAX_TEXT_BYTES) -> tuple[str, bool]:
    """Text of a file, at most `cap` bytes (returns (text, truncated))."""
    with open(p, "rb") as f:
        data = f.read(cap + 1)
    return data[:cap].decode("utf-8", "replace"), len(data) > cap


def _depth(obj: Any) -> int:
    """Nesting depth, iteratively (no recursion on hostile input)."""
    best, stack = 0, [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, dict):
            best = max(best, d)
            stack.extend((v, d + 1) for v in o.values())
        elif isinstance(o, list):
            best = max(best, d)
            stack.extend((v, d + 1) for v in o)
    return best


def load_submission_json(p: Path, rel: str = "submission.json") -> tuple[dict | None, list[Finding]]:
    """Parse submission.json with a size cap and bounded nesting; problems become findings."""
    size = p.stat().st_size
    if size > MAX_JSON_BYTES:
        return None, [R.JSON_INVALID.finding(
            f"{rel} is {size:,} bytes (cap {MAX_JSON_BYTES:,}); not parsed",
            {"bytes": size, "cap": MAX_JSON_BYTES}, file=rel)]
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return None, [R.JSON_INVALID.finding(f"{rel} is not UTF-8 (byte {e.start})", {"offset": e.start},
                                             file=rel)]
    # Cheap bracket pre-count: refuse absurd nesting before the (recursive) C parser sees it.
    depth = cur = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            cur += 1
            depth = max(depth, cur)
        elif ch in "]}":
            cur -= 1
    if depth > MAX_JSON_DEPTH:
        return None, [R.JSON_INVALID.finding(
            f"{rel} is nested {depth} levels deep (limit {MAX_JSON_DEPTH}); not parsed",
            {"depth": depth, "limit": MAX_JSON_DEPTH}, file=rel)]
    try:
        obj = json.loads(text, parse_float=Num, parse_constant=_no_constant)
    except RecursionError:
        return None, [R.JSON_INVALID.finding(f"{rel} is nested too deeply to parse", {}, file=rel)]
    except ValueError as e:
        return None, [R.JSON_INVALID.finding(f"{rel} is not valid JSON: {' '.join(str(e).split())}",
                                             {}, file=rel)]
    if not isinstance(obj, dict):
        return None, [R.JSON_INVALID.finding(f"{rel} holds a {type(obj).__name__}, not an object",
                                             {}, file=rel)]
    d = _depth(obj)
    if d > MAX_JSON_DEPTH:
        return None, [R.JSON_INVALID.finding(f"{rel} is nested {d} levels deep", {"depth": d}, file=rel)]
    return obj, []


def _no_constant(name: str):
    raise ValueError(f"non-standard constant {name}")


# submission.json schema: field -> (accepted types, required)
_NUMBER = (int, float)
SCHEMA: dict[str, tuple[tuple[type, ...], bool]] = {
    "name": ((str,), True),
    "author": ((str,), True),
    "github_id": ((str,), True),
    "val_bpb": (_NUMBER, True),
    "date": ((str,), False),
    "track": ((str,), False),
    "val_bpb_std": (_NUMBER, False),
    "std_val_bpb": (_NUMBER, False),
    "mean_val_bpb": (_NUMBER, False),
    "bytes_total": ((int,), False),
    "bytes_code": ((int,), False),
    "seeds": ((list, dict), False),  # a list of seeds, or a dict keyed by seed (both accepted)
    "seed_results": ((dict,), False),
    "compliance": ((dict,), False),
    "blurb": ((str,), False),
    "technique_summary": ((str,), False),
}


def check_schema(obj: dict, rel: str = "submission.json") -> list[Finding]:
    out: list[Finding] = []
    for key, (types, required) in SCHEMA.items():
        if key not in obj:
            if required:
                out.append(R.JSON_SCHEMA.finding(f"{rel}: required field `{key}` is missing",
                                                 {"field": key}, file=rel))
            continue
        v = obj[key]
        if isinstance(v, bool) or not isinstance(v, types):
            want = "/".join(t.__name__ for t in types)
            out.append(R.JSON_SCHEMA.finding(
                f"{rel}: `{key}` should be {want}, got {type(v).__name__} {str(v)[:60]!r}",
                {"field": key, "type": type(v).__name__}, file=rel))
        elif key == "val_bpb" and not (isinstance(v, float) or abs(v) < 10**6) or key == "val_bpb" and not (
                0 < float(v) < 20):
            out.append(R.JSON_SCHEMA.finding(f"{rel}: `val_bpb` {v} is not a plausible BPB",
                                             {"field": key, "value": float(v)}, file=rel))
    sr = obj.get("seed_results")
    if isinstance(sr, dict):
        for seed, row in sr.items():
            if not isinstance(row, dict):
                out.append(R.JSON_SCHEMA.finding(f"{rel}: seed_results[{seed!r}] is not an object",
                                                 {"seed": seed}, file=rel))
                continue
            for k, v in row.items():
                if k in ("val_bpb", "step_avg_ms", "roundtrip_val_bpb", "sliding_val_bpb") and (
                        isinstance(v, bool) or not isinstance(v, _NUMBER)):
                    out.append(R.JSON_SCHEMA.finding(
                        f"{rel}: seed_results[{seed!r}].{k} should be a number, got {type(v).__name__}",
                        {"seed": seed, "field": k}, file=rel))
    return out
