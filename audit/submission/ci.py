"""`audit ci`: the record folders a pull request adds or changes, each audited.

Only read-only git commands run on the checkout (`rev-parse`, `diff`, `ls-tree`, `archive`); the
head's folders are unpacked into a temporary directory (regular files and links only; links are
recreated as links and never followed) and audited from there, so the working tree is never
touched and the PR's code is never run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from audit.errors import InputError
from audit.report import Report
from audit.reporting.github import report_annotations
from audit.reporting.markdown import render_report

MAX_FILE_BYTES = 512 * 1024 * 1024


@dataclass
class CiResult:
    base: str
    head: str
    folders: list[tuple[str, str]] = field(default_factory=list)  # (folder, "added"/"changed"/"removed")
    reports: list[Report] = field(default_factory=list)
    annotations: list[str] = field(default_factory=list)
    markdown: str = ""

    @property
    def invalid(self) -> list[Report]:
        return [r for r in self.reports if r.final_verdict == "invalid"]


def _git(repo: Path, *args: str, binary: bool = False) -> str | bytes:
    try:
        proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False,
                              env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    except FileNotFoundError:
        raise InputError(None, "git is not installed") from None
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise InputError(repo, f"git {args[0]} failed: {msg[-1] if msg else proc.returncode}")
    return proc.stdout if binary else proc.stdout.decode("utf-8", "replace")


def _commit(repo: Path, rev: str) -> str:
    if rev.startswith("-"):
        raise InputError(None, f"bad revision {rev!r}")
    return str(_git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")).strip()


def record_folder(path: str) -> str | None:
    """records/<track>/<name>/… -> records/<track>/<name>."""
    parts = PurePosixPath(path).parts
    if len(parts) >= 4 and parts[0] == "records":
        return "/".join(parts[:3])
    return None


def changed_folders(repo: Path, base: str, head: str) -> list[tuple[str, str]]:
    try:
        _git(repo, "merge-base", base, head)
        spec = [f"{base}...{head}"]
    except InputError:
        spec = [base, head]  # unrelated histories: compare the trees directly
    out = str(_git(repo, "diff", "--name-status", "-z", "--no-renames", *spec, "--", "records"))
    items = out.split("\0")
    status: dict[str, set[str]] = {}
    for st, path in zip(items[0::2], items[1::2]):
        f = record_folder(path)
        if f:
            status.setdefault(f, set()).add(st[:1])
    res = []
    for f in sorted(status):
        exists = bool(str(_git(repo, "ls-tree", "-d", head, "--", f)).strip())
        kind = "removed" if not exists else ("added" if status[f] == {"A"} else "changed")
        res.append((f, kind))
    return res


def _extract(repo: Path, head: str, folder: str, dest: Path) -> Path:
    tar_path = dest / ".archive.tar"
    with open(tar_path, "wb") as fh:
        proc = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", head, "--", folder],
                              stdout=fh, stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        raise InputError(repo, f"git archive failed: {proc.stderr.decode('utf-8', 'replace').strip()[-200:]}")
    root = dest / "tree"
    with tarfile.open(tar_path) as tar:
        for m in tar:
            rel = PurePosixPath(m.name)
            if rel.is_absolute() or ".." in rel.parts or not m.name.startswith(folder):
                continue
            target = root / rel
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif m.issym():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(m.linkname, target)  # recreated, never followed by the audit
            elif m.isfile() and m.size <= MAX_FILE_BYTES:
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                with open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
    tar_path.unlink()
    return root / folder


def run_ci(repo, base: str, head: str = "HEAD", *, sota=None) -> CiResult:
    from audit.submission.api import audit_submission

    repo = Path(repo)
    if not repo.is_dir():
        raise InputError(repo, "no such folder")
    b, h = _commit(repo, base), _commit(repo, head)
    if not b:
        raise InputError(repo, f"unknown base revision {base!r}")
    if not h:
        raise InputError(repo, f"unknown head revision {head!r}")
    res = CiResult(base=b, head=h, folders=changed_folders(repo, b, h))
    with tempfile.TemporaryDirectory(prefix="golfcheck-ci-") as tmp:
        for i, (folder, kind) in enumerate(res.folders):
            if kind == "removed":
                continue
            work = Path(tmp) / str(i)
            work.mkdir()
            path = _extract(repo, h, folder, work)
            rep = audit_submission(path, sota=sota)
            rep.subject = folder
            rep.summary = {"change": kind, **rep.summary}
            res.reports.append(rep)
            res.annotations += report_annotations(rep, folder)
    res.markdown = render_summary(res)
    return res


_ICON = {"record": "✅", "non-record": "☑️", "invalid": "❌"}


def render_summary(res: CiResult) -> str:
    lines = [f"# Parameter Golf records audit", "",
             f"`{res.base[:12]}`…`{res.head[:12]}`: {len(res.folders)} record folder(s) added or changed, "
             f"{len(res.invalid)} invalid.", ""]
    if not res.folders:
        return "\n".join(lines + ["No record folders were added or changed.", ""])
    lines += ["| record | change | verdict | errors | warnings | seeds | mean val_bpb |", "|---|---|---|---|---|---|---|"]
    by = {r.subject: r for r in res.reports}
    for folder, kind in res.folders:
        r = by.get(folder)
        if r is None:
            lines.append(f"| `{folder}` | {kind} | – | – | – | – | – |")
            continue
        v = r.final_verdict
        lines.append(f"| `{folder}` | {kind} | {_ICON.get(v, '')} **{v}** | {len(r.errors)} | {len(r.warnings)} | "
                     f"{r.summary.get('seeds', '–')} | {r.summary.get('mean val_bpb (logs)', '–')} |")
    lines.append("")
    for r in res.reports:
        lines.append(render_report(r, level=2))
    return "\n".join(lines)
