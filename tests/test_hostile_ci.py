"""`audit ci` integrity: the head tree is read with git plumbing, so the pull request's own
.gitattributes cannot hide or rewrite files, and crafted trees cannot write outside the
temporary folder. Each case here passed through `git archive` before (and went wrong)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from audit.cli import cli
from audit.cli.common import run_guarded
from audit.errors import InputError
from audit.submission.ci import extract_tree, list_tree, run_ci
from record_factory import make_record

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
TRACK = "records/track_10min_16mb"


def git(repo, *args, stdin: bytes | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e"}
    out = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, input=stdin,
                         env=env).stdout
    return out.decode().strip()


@pytest.fixture
def base_repo(tmp_path):
    r = tmp_path / "pg"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    (r / "README.md").write_text("challenge\n")
    git(r, "add", "-A")
    git(r, "commit", "-q", "-m", "base")
    return r, git(r, "rev-parse", "HEAD")


def commit_all(r: Path, msg: str) -> str:
    git(r, "add", "-A")
    git(r, "commit", "-q", "-m", msg)
    return git(r, "rev-parse", "HEAD")


def test_export_ignore_cannot_hide_a_file(base_repo, tmp_path):
    r, base = base_repo
    rec = make_record(r / TRACK, "2026-05-01_x")
    (rec / "custom.meta.npz").write_bytes(b"PK\x03\x04 not really a meta archive")
    (r / ".gitattributes").write_text("*.meta.npz export-ignore\n")
    head = commit_all(r, "PR")
    dest = tmp_path / "out"
    dest.mkdir()
    got = extract_tree(r, head, f"{TRACK}/2026-05-01_x", dest)
    assert (got / "custom.meta.npz").read_bytes().startswith(b"PK\x03\x04 not really")
    # end to end: the damaged meta is audited, so the verdict is not the clean record's
    rep = run_ci(r, base, head).reports[0]
    assert any("custom.meta.npz" in (f.location or "") for f in rep.findings)
    assert rep.final_verdict != "record"


def test_configured_smudge_filter_never_runs(base_repo, tmp_path):
    r, base = base_repo
    marker = tmp_path / "filter-ran"
    git(r, "config", "filter.evil.smudge", f"touch {marker}; sed s/42/99/")
    git(r, "config", "filter.evil.clean", "cat")
    rec = make_record(r / TRACK, "2026-05-01_x")
    (rec / ".gitattributes").write_text("* filter=evil\n")
    raw = (rec / "submission.json").read_bytes()
    head = commit_all(r, "PR")
    dest = tmp_path / "out"
    dest.mkdir()
    got = extract_tree(r, head, f"{TRACK}/2026-05-01_x", dest)
    assert (got / "submission.json").read_bytes() == raw
    assert not marker.exists()
    run_ci(r, base, head)
    assert not marker.exists()


def _raw_tree(entries: list[tuple[str, str, str]]) -> bytes:
    """A tree object from (mode, name, sha) in the given order: duplicates are kept."""
    return b"".join(f"{mode} {name}".encode() + b"\0" + bytes.fromhex(sha) for mode, name, sha in entries)


def _replace(r: Path, tree: str, path: list[str], new: str) -> str:
    """`tree` with the subtree at `path` replaced by `new` (parents rebuilt with mktree)."""
    if not path:
        return new
    lines = git(r, "ls-tree", tree).splitlines()
    out = []
    for ln in lines:
        meta, name = ln.split("\t", 1)
        mode, kind, sha = meta.split()
        if name == path[0]:
            sha = _replace(r, sha, path[1:], new)
        out.append(f"{mode} {kind} {sha}\t{name}")
    return git(r, "mktree", stdin=("\n".join(out) + "\n").encode())


def _crafted_head(r: Path, folder: str, extra: list[tuple[str, str, str]]) -> str:
    """A commit whose `folder` tree also holds the crafted `extra` entries (written literally)."""
    sub = git(r, "rev-parse", f"HEAD:{folder}")
    entries = []
    for ln in git(r, "ls-tree", sub).splitlines():
        meta, name = ln.split("\t", 1)
        mode, _, sha = meta.split()
        entries.append((mode, name, sha))
    entries += extra
    entries.sort(key=lambda e: e[1] + ("/" if e[0] == "40000" else ""))
    new_sub = git(r, "hash-object", "-w", "-t", "tree", "--literally", "--stdin", stdin=_raw_tree(entries))
    root = _replace(r, git(r, "rev-parse", "HEAD^{tree}"), folder.split("/"), new_sub)
    return git(r, "commit-tree", root, "-p", "HEAD", "-m", "crafted")


def test_link_and_folder_of_one_name_is_refused(base_repo, tmp_path):
    r, base = base_repo
    make_record(r / TRACK, "2026-05-01_x")
    commit_all(r, "PR")
    outside = tmp_path / "outside"
    outside.mkdir()
    link = git(r, "hash-object", "-w", "--stdin", stdin=str(outside).encode())
    payload = git(r, "hash-object", "-w", "--stdin", stdin=b"escaped\n")
    inner = git(r, "mktree", stdin=f"100644 blob {payload}\tpwn.txt\n".encode())
    folder = f"{TRACK}/2026-05-01_x"
    head = _crafted_head(r, folder, [("120000", "x", link), ("40000", "x", inner)])
    with pytest.raises(InputError, match="both as a file or link and as a folder"):
        list_tree(r, head, folder)
    assert run_guarded(cli, ["ci", "--repo", str(r), "--base", base, "--head", head, "-q"]) == 2
    assert list(outside.iterdir()) == []


def test_duplicate_entry_is_refused(base_repo, tmp_path):
    r, base = base_repo
    make_record(r / TRACK, "2026-05-01_x")
    commit_all(r, "PR")
    a = git(r, "hash-object", "-w", "--stdin", stdin=b"one\n")
    b = git(r, "hash-object", "-w", "--stdin", stdin=b"two\n")
    folder = f"{TRACK}/2026-05-01_x"
    head = _crafted_head(r, folder, [("100644", "dup.txt", a), ("100644", "dup.txt", b)])
    with pytest.raises(InputError, match="twice"):
        run_ci(r, base, head)


def test_links_are_recreated_not_followed(base_repo, tmp_path):
    r, base = base_repo
    rec = make_record(r / TRACK, "2026-05-01_x")
    os.symlink("/etc/passwd", rec / "notes.txt")
    head = commit_all(r, "PR")
    dest = tmp_path / "out"
    dest.mkdir()
    got = extract_tree(r, head, f"{TRACK}/2026-05-01_x", dest)
    assert os.readlink(got / "notes.txt") == "/etc/passwd"
    for p in dest.rglob("*"):  # every written path resolves below dest (links aside)
        if not p.is_symlink():
            assert Path(os.path.realpath(p)).is_relative_to(Path(os.path.realpath(dest)))
