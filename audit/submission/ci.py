"""`audit ci`: the record folders a pull request adds or changes, each audited.

Only read-only git plumbing runs on the checkout (`rev-parse`, `merge-base`, `diff-tree`,
`ls-tree`, `cat-file --batch`): no checkout, no `git archive`, so no attribute of the pull request
(export-ignore, filter=, eol) applies. The head's folders are written from the raw objects into a
temporary directory (regular files and links only; links recreated as links and never followed),
refusing crafted trees whose paths repeat or pass through a file or link, with every write checked
to stay below that directory; the audit runs there, so the working tree is never touched and the
PR's code is never run.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from audit.budgets import MAX_CI_BLOB_BYTES, MAX_CI_ENTRIES, MAX_CI_TREE_BYTES, check
from audit.errors import InputError, stepped
from audit.report import Report
from audit.reporting.github import report_annotations
from audit.reporting.markdown import render_report


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


# Git runs with literal pathspecs (a folder named `*` or `:(glob)` matches only itself) and
# never prompts; only plumbing that reads objects is used, so the pull request's own
# .gitattributes (export-ignore, filter=, diff=) can neither hide nor rewrite a file.
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_LITERAL_PATHSPECS": "1", "GIT_NO_REPLACE_OBJECTS": "1"}


def _git(repo: Path, *args: str, binary: bool = False) -> str | bytes:
    try:
        proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False,
                              env={**os.environ, **_GIT_ENV})
    except FileNotFoundError:
        raise InputError(None, "git is not installed") from None
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise InputError(repo, f"git {args[0]} failed: {msg[-1] if msg else proc.returncode}")
    # surrogateescape: a non-UTF-8 path name round-trips back to git unchanged
    return proc.stdout if binary else proc.stdout.decode("utf-8", "surrogateescape")


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
        since = str(_git(repo, "merge-base", base, head)).strip()
    except InputError:
        since = base  # unrelated histories: compare the trees directly
    out = str(_git(repo, "diff-tree", "-r", "-z", "--name-status", "--no-renames", "--no-ext-diff",
                   "--no-textconv", since, head, "--", "records"))
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


@dataclass
class TreeEntry:
    mode: str  # 100644 / 100755 file, 120000 link, 160000 submodule
    sha: str
    size: int  # -1 for a submodule
    parts: tuple[str, ...]  # path components, checked


def list_tree(repo: Path, head: str, folder: str) -> list[TreeEntry]:
    """Every entry below `folder` in the head tree (`ls-tree -r -l -z`), refused when a path could
    escape or collide: empty/dot components, a path listed twice, a file or link that is also a
    folder (a link `x` beside a tree `x/` would let a later write follow the link)."""
    raw = str(_git(repo, "ls-tree", "-r", "-l", "-z", "--full-tree", head, "--", folder))
    entries: list[TreeEntry] = []
    for rec in filter(None, raw.split("\0")):
        meta, _, path = rec.partition("\t")
        fields = meta.split()
        if len(fields) != 4 or not path:
            raise InputError(repo, f"unexpected git ls-tree output {rec[:80]!r}")
        mode, kind, sha, size = fields
        parts = tuple(path.split("/"))
        if any(p in ("", ".", "..") for p in parts) or not path.startswith(folder + "/"):
            raise InputError(repo, f"head tree entry {path!r} has an empty, '.' or '..' path component; refused")
        want = "commit" if mode == "160000" else "blob"
        if mode not in ("100644", "100755", "120000", "160000") or kind != want or not (size.isdigit() or size == "-"):
            raise InputError(repo, f"head tree entry {path!r} has unsupported mode {mode} ({kind}); refused")
        entries.append(TreeEntry(mode, sha, -1 if size == "-" else int(size), parts))
    check(repo, f"entries in {folder}", len(entries), MAX_CI_ENTRIES)
    seen: set[tuple[str, ...]] = set()
    for e in entries:
        if e.parts in seen:
            raise InputError(repo, f"head tree lists {'/'.join(e.parts)!r} twice (a crafted tree); refused")
        seen.add(e.parts)
    for e in entries:
        for k in range(1, len(e.parts)):
            if e.parts[:k] in seen:
                raise InputError(repo, f"head tree has {'/'.join(e.parts[:k])!r} both as a file or link and as a "
                                       f"folder (a crafted tree); refused")
    total = sum(e.size for e in entries if e.size > 0)
    check(repo, f"bytes in {folder}", total, MAX_CI_TREE_BYTES, "bytes")
    return entries


def _inside(root: Path, target: Path) -> None:
    """`target`'s folder, resolved, must be `root` or below it (no link on the way)."""
    parent = Path(os.path.realpath(target.parent))
    if parent != root and root not in parent.parents:
        raise InputError(target, f"would be written outside the extraction folder {root}; refused")


def _mkdirs(root: Path, parts: tuple[str, ...]) -> Path:
    """Create root/parts[0]/…/parts[-2] one level at a time, refusing anything but real folders."""
    at = root
    for name in parts[:-1]:
        at = at / name
        try:
            os.mkdir(at)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(at).st_mode):
                raise InputError(at, "path component exists and is not a folder; refused") from None
        except OSError as e:
            raise InputError(at, f"cannot create folder: {e.strerror or e}") from None
    target = at / parts[-1]
    _inside(root, target)
    return target


class _CatFile:
    """One `git cat-file --batch` process: raw object bytes, no filters, no attributes."""

    def __init__(self, repo: Path):
        self.repo = repo
        self.proc = subprocess.Popen(["git", "-C", str(repo), "cat-file", "--batch"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env={**os.environ, **_GIT_ENV})

    def stream(self, sha: str, size: int, out) -> None:
        """Write blob `sha` (expected `size` bytes) to the file object `out`."""
        self.proc.stdin.write(sha.encode() + b"\n")
        self.proc.stdin.flush()
        header = self.proc.stdout.readline(200).split()
        if len(header) != 3 or header[1] != b"blob" or header[2] != str(size).encode():
            raise InputError(self.repo, f"git cat-file: unexpected answer {b' '.join(header)[:80]!r} for {sha}")
        left = size
        while left:
            chunk = self.proc.stdout.read(min(left, 1 << 20))
            if not chunk:
                raise InputError(self.repo, f"git cat-file: blob {sha} ended early")
            out.write(chunk)
            left -= len(chunk)
        self.proc.stdout.read(1)  # the newline after each object

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.stdout.close()
        self.proc.wait()


@stepped("extracting a record folder from git")
def extract_tree(repo: Path, head: str, folder: str, dest: Path) -> Path:
    """The head's `folder` written below `dest` from git objects; returns dest/tree/<folder>.

    Regular files first (created exclusively, never through a link), then links recreated as
    links (never followed by the audit), so no write can pass through a link from the tree."""
    entries = list_tree(repo, head, folder)
    root = Path(os.path.realpath(dest)) / "tree"
    root.mkdir()
    links: list[tuple[tuple[str, ...], bytes]] = []
    cat = _CatFile(repo)
    try:
        for e in entries:
            if e.mode == "160000":
                continue  # a submodule: a commit id, no content to audit
            check(repo, f"size of {'/'.join(e.parts)}", e.size, MAX_CI_BLOB_BYTES, "bytes")
            if e.mode == "120000":
                if e.size > 4096:
                    raise InputError(repo, f"link {'/'.join(e.parts)!r} has a {e.size:,}-byte target; refused")
                buf = io.BytesIO()
                cat.stream(e.sha, e.size, buf)
                links.append((e.parts, buf.getvalue()))
                continue
            target = _mkdirs(root, e.parts)
            mode = 0o755 if e.mode == "100755" else 0o644
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
            except OSError as err:  # a name too long for this file system, …
                raise InputError(repo, f"cannot write {'/'.join(e.parts)!r}: {err.strerror or err}") from None
            with os.fdopen(fd, "wb") as out:
                cat.stream(e.sha, e.size, out)
    finally:
        cat.close()
    for parts, link in links:
        target = _mkdirs(root, parts)
        try:
            os.symlink(os.fsdecode(link), target)  # recreated, never followed by the audit
        except (OSError, ValueError) as e:  # a NUL in the target, a name too long
            raise InputError(repo, f"link {'/'.join(parts)!r} cannot be recreated: {e}") from None
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
            path = extract_tree(repo, h, folder, work)
            rep = audit_submission(path, sota=sota)
            rep.subject = folder
            rep.summary = {"change": kind, **rep.summary}
            res.reports.append(rep)
            res.annotations += report_annotations(rep, folder)
    res.markdown = render_summary(res)
    return res


_ICON = {"record": "✅", "non-record": "☑️", "invalid": "❌"}


def render_summary(res: CiResult) -> str:
    lines = ["# Parameter Golf records audit", "",
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
