"""`audit ci --base REV [--head REV] [--repo DIR]`: audit the record folders a pull request adds or
changes; Markdown summary (also appended to $GITHUB_STEP_SUMMARY), GitHub annotations on stdout,
exit 1 on any invalid record."""

from __future__ import annotations

import os
from pathlib import Path

import click

from audit.cli.common import emit


@click.command("ci")
@click.option("--base", required=True, help="Base revision (e.g. the PR's base SHA).")
@click.option("--head", default="HEAD", show_default=True, help="Head revision (the PR's head SHA).")
@click.option("--repo", default=".", type=click.Path(file_okay=False, path_type=Path),
              show_default=True, help="The git checkout (read-only git commands only).")
@click.option("--sota", default=None, metavar="BPB|RECORD_DIR", help="Optional SOTA for the significance test.")
@click.option("--markdown", "md_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the Markdown summary here ('-' for stdout).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the reports as JSON ('-' for stdout).")
@click.option("--quiet", "-q", is_flag=True, help="No terminal tables (annotations are still printed).")
def ci_cmd(base, head, repo, sota, md_path, json_path, quiet) -> int:
    """Audit the record folders changed between BASE and HEAD of a checkout."""
    from audit.atomic import check_outputs, write_text_atomic
    from audit.submission.ci import run_ci

    check_outputs({"--markdown": md_path, "--json": json_path}, [sota])
    res = run_ci(repo, base, head, sota=sota)
    for line in res.annotations:
        click.echo(line)
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        with open(summary_file, "a", encoding="utf-8") as f:
            f.write(res.markdown + "\n")
    if md_path is not None:
        if str(md_path) == "-":
            click.echo(res.markdown)
        else:
            write_text_atomic(md_path, res.markdown)
    code = emit(res.reports, json_path, None, quiet or str(md_path) == "-")
    if not res.reports and not quiet:
        click.echo(f"no record folders added or changed between {base} and {head}")
    return 1 if res.invalid else code
