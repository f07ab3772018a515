"""`audit ci` on a temporary git repository: base commit + a PR commit adding a good and a bad record."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from audit.cli import cli
from audit.cli.common import run_guarded
from audit.reporting.github import annotation
from audit.submission.ci import record_folder, run_ci
from record_factory import GOOD_README, make_record

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(repo, *args):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    r = tmp_path / "pg"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    make_record(r / "records" / "track_10min_16mb", "2026-04-01_old_record")
    (r / "README.md").write_text("challenge\n")
    git(r, "add", "-A")
    git(r, "commit", "-q", "-m", "base")
    base = git(r, "rev-parse", "HEAD")
    git(r, "checkout", "-q", "-b", "pr")
    tracks = r / "records" / "track_10min_16mb"
    make_record(tracks, "2026-05-01_good")
    bad = make_record(tracks, "2026-05-02_bad", readme=GOOD_README.format(mean=1.08) + "\nNo TTT here.\n",
                      log_options={"train_ms": 599_800, "reserve_s": None,
                                   "post_work": ["gptq:generated 64 sequences in 210619ms"]})
    os.symlink("/etc/passwd", bad / "notes.txt")
    (r / "README.md").write_text("challenge, edited\n")  # outside records/: ignored
    git(r, "add", "-A")
    git(r, "commit", "-q", "-m", "PR: two records")
    head = git(r, "rev-parse", "HEAD")
    git(r, "checkout", "-q", "main")  # the working tree is NOT the head: ci must read the head from git
    return r, base, head


def test_run_ci_library(repo):
    r, base, head = repo
    res = run_ci(r, base, head)
    assert [f for f, _ in res.folders] == ["records/track_10min_16mb/2026-05-01_good",
                                          "records/track_10min_16mb/2026-05-02_bad"]
    assert {rep.subject: rep.final_verdict for rep in res.reports} == {
        "records/track_10min_16mb/2026-05-01_good": "record",
        "records/track_10min_16mb/2026-05-02_bad": "invalid"}
    bad = next(x for x in res.reports if x.subject.endswith("bad"))
    assert {"SUB007", "SUB014", "SUB022"} <= {f.rule_id for f in bad.errors}
    assert "2026-05-01_good" in res.markdown and "2026-05-02_bad" in res.markdown
    assert "❌ **invalid**" in res.markdown and "✅ **record**" in res.markdown
    assert any(a.startswith("::error file=records/track_10min_16mb/2026-05-02_bad/README.md")
               and "SUB022" in a for a in res.annotations)
    assert not any("2026-05-01_good" in a and a.startswith("::error") for a in res.annotations)
    assert git(r, "status", "--porcelain") == ""  # read-only on the checkout


def test_audit_ci_cli_exit_1_summary_and_annotations(repo, tmp_path, capsys, monkeypatch):
    r, base, head = repo
    summary = tmp_path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    md = tmp_path / "ci.md"
    code = run_guarded(cli, ["ci", "--repo", str(r), "--base", base, "--head", head, "--markdown", str(md), "-q"])
    assert code == 1
    out = capsys.readouterr().out
    errors = [ln for ln in out.splitlines() if ln.startswith("::error ")]
    assert errors and all("2026-05-02_bad" in ln for ln in errors)
    for text in (summary.read_text(), md.read_text()):
        assert "2026-05-01_good" in text and "2026-05-02_bad" in text


def test_audit_ci_no_record_changes_exit_0(repo, capsys):
    r, base, _ = repo
    assert run_guarded(cli, ["ci", "--repo", str(r), "--base", base, "--head", base]) == 0
    assert "no record folders" in capsys.readouterr().out


@pytest.mark.parametrize("option", ["--base", "--head"])
def test_audit_ci_bad_revision_is_one_line_naming_it(repo, capsys, option):
    r, base, _ = repo
    argv = ["ci", "--repo", str(r), "--base", base, option, "nope"]
    assert run_guarded(cli, argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    assert f"{option} 'nope' is not a commit in this repository" in err


def test_audit_ci_comment_sarif_and_policy(repo, tmp_path, capsys):
    r, base, head = repo
    comment, sarif = tmp_path / "comment.md", tmp_path / "ci.sarif"
    argv = ["ci", "--repo", str(r), "--base", base, "--head", head, "-q", "--comment", str(comment),
            "--format", "sarif", "-o", str(sarif)]
    assert run_guarded(cli, argv) == 1
    text = comment.read_text()
    assert "2026-05-02_bad`: **invalid**" in text and "2026-05-01_good`: **record**" in text
    doc = json.loads(sarif.read_text())
    uris = {x["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for x in doc["runs"][0]["results"]}
    assert "records/track_10min_16mb/2026-05-02_bad/README.md" in uris
    out = capsys.readouterr().out.splitlines()
    assert out[-1].endswith("2026-05-02_bad: invalid — " + out[-1].split("invalid — ")[1])
    assert any(ln.startswith("::error file=records/track_10min_16mb/2026-05-02_bad/") for ln in out)
    # a policy file inside the pull request's tree is not read; an explicit --config is
    (r / "golfcheck.toml").write_text('exit-zero = true\n')
    assert run_guarded(cli, ["ci", "--repo", str(r), "--base", base, "--head", head, "-q"]) == 1
    assert run_guarded(cli, ["ci", "--repo", str(r), "--base", base, "--head", head, "-q",
                             "--config", str(r / "golfcheck.toml")]) == 0
    assert run_guarded(cli, ["ci", "--repo", str(r), "--base", base, "--head", head, "-q", "--exit-zero"]) == 0


def test_audit_ci_file_name_cannot_spoof_a_workflow_command(tmp_path, capsys):
    r = tmp_path / "pg"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    (r / "README.md").write_text("challenge\n")
    git(r, "add", "-A")
    git(r, "commit", "-q", "-m", "base")
    base = git(r, "rev-parse", "HEAD")
    # track "t[" and name "]x…": the record folder records/t[/]x… holds a closing markup tag
    name = "]x\n::error file=README.md,line=1::spoofed by a folder name"
    make_record(r / "records" / "t[", name, readme=GOOD_README.format(mean=1.08) + "\nNo TTT.\n")
    git(r, "add", "-A")
    git(r, "commit", "-q", "-m", "PR")
    code = run_guarded(cli, ["ci", "--repo", str(r), "--base", base, "--head", "HEAD"])
    assert code == 1  # before the fix: exit 2 (MarkupError), or a spoofed line in the output
    out = capsys.readouterr().out
    commands = [ln for ln in out.splitlines() if ln.lstrip().startswith("::")]
    assert commands and all(ln.startswith("::error file=records/t[/]x%0A%3A%3Aerror file=README.md%2Cline=1")
                            and ",title=SUB" in ln for ln in commands)


def test_record_folder_and_escaping():
    assert record_folder("records/track_10min_16mb/x/train_gpt.py") == "records/track_10min_16mb/x"
    assert record_folder("records/track_10min_16mb/README.md") is None
    assert record_folder("src/records/a/b/c") is None
    a = annotation("error", "50% done\nnext", file="a,b:c.py", line=3, title="SUB001 x")
    assert a == "::error file=a%2Cb%3Ac.py,line=3,title=SUB001 x::50%25 done%0Anext"
