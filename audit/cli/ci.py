"""`audit ci --base REV [--head REV] [--repo DIR]`: audit the record folders a pull request adds or
changes. GitHub annotations on stdout (at most 10 errors and 10 warnings per record), the Markdown
job summary (also appended to $GITHUB_STEP_SUMMARY), `--comment F` for the pull-request comment,
any `--format`; exit 1 on any invalid record.

The policy comes only from the command line or an explicit `--config` file: a policy file in the
pull request's own tree must not decide how that pull request is judged."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import click

from audit.cli.common import output_options
from audit.errors import InputError


def check_revision(repo: Path, rev: str, option: str) -> None:
    """A revision that is not a commit of `repo` is an input error that names it."""
    bad = rev.startswith("-") or not rev.strip()
    if not bad:
        try:
            proc = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", "--end-of-options",
                                   f"{rev}^{{commit}}"], capture_output=True, check=False,
                                  env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
        except FileNotFoundError:
            raise InputError(None, "git is not installed") from None
        bad = proc.returncode != 0
    if bad:
        raise InputError(repo, f"{option} {rev!r} is not a commit in this repository "
                               f"(fetch it, e.g. actions/checkout with fetch-depth: 0)")


@click.command("ci")
@click.option("--base", required=True, help="Base revision (e.g. the PR's base SHA).")
@click.option("--head", default="HEAD", show_default=True, help="Head revision (the PR's head SHA).")
@click.option("--repo", default=".", type=click.Path(file_okay=False, path_type=Path),
              show_default=True, help="The git checkout (read-only git commands only).")
@click.option("--sota", default=None, metavar="BPB|RECORD_DIR", help="Optional SOTA for the significance test.")
@click.option("--comment", "comment_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the pull-request comment here (Markdown, at most 12 lines per record).")
@output_options
def ci_cmd(base, head, repo, sota, comment_path, out) -> int:
    """Audit the record folders changed between BASE and HEAD of a checkout.

    --markdown F writes the job summary; --json F / --format sarif -o F the machine formats."""
    from audit.atomic import check_outputs
    from audit.cli.common import make_plots, resolve_policy, write_output, write_outputs
    from audit.report import exit_code
    from audit.reporting import render
    from audit.reporting.markdown import render_ci_summary
    from audit.submission.ci import run_ci

    if not Path(repo).is_dir():
        raise InputError(repo, "no such folder")
    check_revision(repo, base, "--base")
    check_revision(repo, head, "--head")
    check_outputs({"--markdown": out.md_path, "--json": out.json_path, "--output": out.output,
                   "--comment": comment_path}, [sota])
    pol = resolve_policy(out, search=False)
    res = run_ci(repo, base, head, sota=sota)
    reports = pol.apply(res.reports)
    plots = make_plots(reports, out.plots_dir) if out.plots_dir is not None else None

    summary = render_ci_summary(res.base, res.head, res.folders, reports)
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        try:
            with open(summary_file, "a", encoding="utf-8") as f:
                f.write(summary + "\n")
        except OSError as e:
            raise InputError(summary_file, f"cannot append the job summary: {e.strerror or e}") from None
    if out.md_path is not None:
        md = summary if plots is None else render_ci_summary(res.base, res.head, res.folders, reports,
                                                              plots.relative_to_file(out.md_path))
        write_output(out.md_path, md)
    if comment_path is not None:
        write_output(comment_path, render("comment", reports))

    rest = dataclasses.replace(out, md_path=None)
    fmt_to_stdout = rest.fmt not in (None, "terminal") and rest.output is None
    claims_stdout = fmt_to_stdout or str(rest.json_path) == "-" or str(out.md_path) == "-"
    annotations_asked = out.fmt == "github" and out.output is None
    if annotations_asked:
        rest = dataclasses.replace(rest, fmt=None)  # written just below, once
    if annotations_asked or not claims_stdout:
        sys.stdout.write(render("github", reports))  # annotations: the CI's channel on stdout
    write_outputs(reports, rest, title="Records audit", stdout_taken=claims_stdout)
    if not res.folders and not out.quiet:
        click.echo(f"no record folders added or changed between {base} and {head}", err=claims_stdout)
    invalid = any(r.final_verdict == "invalid" for r in reports)
    return pol.exit_code(1 if invalid else exit_code(reports))
