"""The composite action (action.yml), the workflows that use it, and the documented challenge-repo
workflows: safe by construction, and the action's audit step run here as GitHub would run it."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("git") is None or shutil.which("bash") is None,
                                reason="git and bash are needed")


def _load(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text())
    if True in doc:  # YAML 1.1 reads a bare `on` key as True
        doc["on"] = doc.pop(True)
    return doc


def _action() -> dict:
    return _load(ROOT / "action.yml")


def test_action_installs_from_its_own_checkout_and_passes_inputs_as_env():
    act = _action()
    assert act["runs"]["using"] == "composite"
    steps = act["runs"]["steps"]
    install = next(s for s in steps if "Install" in s.get("name", ""))
    assert install["env"]["ACTION_PATH"] == "${{ github.action_path }}" and '"$ACTION_PATH"' in install["run"]
    for s in steps:
        assert "${{" not in s.get("run", ""), f"expression spliced into a script: {s.get('name')}"
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()"
    audit = next(s for s in steps if s.get("id") == "audit")
    assert "ci --repo" in audit["run"] and "--comment" in audit["run"] and "--format sarif" in audit["run"]


def _run_audit_step(tmp_path: Path, env_extra: dict) -> tuple[dict, Path]:
    """The action's audit step, run by bash with GitHub's environment variables faked."""
    step = next(s for s in _action()["runs"]["steps"] if s.get("id") == "audit")
    runner_temp = tmp_path / "runner"
    bindir = runner_temp / "golfcheck-venv" / "bin"
    bindir.mkdir(parents=True)
    shim = bindir / "audit"  # stands in for the venv the install step makes
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "from audit.cli import main; main()" "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    gh_out, summary = tmp_path / "github_output", tmp_path / "summary.md"
    env = {**os.environ, "RUNNER_TEMP": str(runner_temp), "GITHUB_OUTPUT": str(gh_out),
           "GITHUB_STEP_SUMMARY": str(summary), "PYTHONPATH": str(ROOT),
           "IN_SOTA": "", "IN_SELECT": "", "IN_IGNORE": "", "IN_CONFIG": "", "IN_EXIT_ZERO": "false",
           "PR_NUMBER": "17", **env_extra}
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], env=env,
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    outputs = dict(line.split("=", 1) for line in gh_out.read_text().splitlines())
    outputs["stdout"] = proc.stdout
    outputs["summary"] = summary.read_text()
    return outputs, runner_temp / "golfcheck-report"


def test_action_audit_step_on_the_fixture_records(tmp_path):
    lines = subprocess.run(["bash", str(ROOT / ".github" / "scripts" / "fixture-repo.sh"), str(tmp_path / "pg")],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    revs = dict(line.split("=", 1) for line in lines)
    out, folder = _run_audit_step(tmp_path, {"IN_REPO": str(tmp_path / "pg"), "IN_BASE": revs["base"],
                                             "IN_HEAD": revs["head"]})
    assert out["exit-code"] == "1"
    sarif = json.loads(Path(out["sarif"]).read_text())
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"]
    comment = Path(out["comment"]).read_text()
    assert "example_sp1024_ttt_record`: **record**" in comment
    assert "invalid_no_ttt_claim_post_cap_gptq`: **invalid**" in comment
    assert (folder / "pr-number.txt").read_text().strip() == "17"
    assert (folder / "report.md").read_text().startswith("# Parameter Golf records audit")
    assert "invalid_no_ttt_claim_post_cap_gptq" in out["summary"]
    errors = [ln for ln in out["stdout"].splitlines() if ln.startswith("::error ")]
    assert errors and all("invalid_no_ttt_claim_post_cap_gptq" in ln for ln in errors)
    # policy inputs reach the command line
    out2, _ = _run_audit_step(tmp_path / "again", {"IN_REPO": str(tmp_path / "pg"), "IN_BASE": revs["base"],
                                                   "IN_HEAD": revs["head"], "IN_EXIT_ZERO": "true"})
    assert out2["exit-code"] == "0"


def test_this_repository_runs_the_action_on_its_fixtures():
    wf = _load(ROOT / ".github" / "workflows" / "action-self-test.yml")
    assert wf["permissions"] == {"contents": "read"}
    steps = wf["jobs"]["action"]["steps"]
    uses = next(s for s in steps if s.get("uses") == "./")
    assert uses["with"]["repo"] == "${{ runner.temp }}/pg"
    assert any("fixture-repo.sh" in s.get("run", "") for s in steps)


def test_documented_pull_request_workflow_is_read_only():
    wf = _load(ROOT / "docs" / "workflows" / "records-audit.yml")
    assert "pull_request" in wf["on"] and "pull_request_target" not in wf["on"]
    assert wf["permissions"] == {"contents": "read"}
    text = (ROOT / "docs" / "workflows" / "records-audit.yml").read_text()
    assert "${{ secrets" not in text and "pip install" not in text
    steps = wf["jobs"]["audit"]["steps"]
    assert any(s.get("uses", "").startswith("OWNER/golfcheck@") for s in steps)
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["persist-credentials"] is False


def test_documented_comment_workflow_never_runs_pull_request_code():
    path = ROOT / "docs" / "workflows" / "records-audit-comment.yml"
    wf = _load(path)
    assert list(wf["on"]) == ["workflow_run"] and wf["on"]["workflow_run"]["workflows"] == ["records-audit"]
    assert wf["permissions"]["pull-requests"] == "write" and wf["permissions"]["contents"] == "read"
    assert "pull_request_target" not in wf["on"]
    steps = wf["jobs"]["comment"]["steps"]
    assert not any(s.get("uses", "").startswith("actions/checkout") for s in steps)
    for s in steps:
        assert "${{" not in s.get("run", "")  # artifact contents are data, never spliced into a script
    run = " ".join(s.get("run", "") for s in steps)
    assert "*[!0-9]*" in run  # the PR number from the artifact is checked to be a number
