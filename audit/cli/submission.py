"""`audit submission PATH... [--sota BPB|RECORD_DIR] [--allow-missing-code]`: thin layer over
`audit.submission.audit_paths`."""

from __future__ import annotations

from pathlib import Path

import click

from audit.cli.common import emit, output_options


@click.command("submission")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--sota", default=None, metavar="BPB|RECORD_DIR",
              help="Current SOTA: a BPB number, or a record folder whose per-seed log values are used "
                   "(one-sided Welch t-test, 0.005-nat margin, p < 0.01).")
@click.option("--allow-missing-code", is_flag=True,
              help="Audit a published record that does not ship train_gpt.py (missing code is a warning).")
@output_options
def submission_cmd(paths, sota, allow_missing_code, out) -> int:
    """Audit record folder(s): files, logs, sizes, times, claims, legality, statistics, tokenizer.

    PATH is a record folder or a folder of record folders. Exit 0: every record valid
    (`record` or `non-record`); 1: at least one `invalid`; 2: could not run.
    """
    from audit.atomic import check_outputs
    from audit.submission import audit_paths
    from audit.submission.api import sota_values

    sota_values(sota)  # a bad --sota is an input error before any work
    check_outputs({"--json": out.json_path, "--markdown": out.md_path, "--output": out.output}, [*paths, sota])
    reports = audit_paths(paths, sota=sota, allow_missing_code=allow_missing_code)
    return emit(reports, out, title="Submission audit", start=paths[0])
