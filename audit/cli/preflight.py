"""`audit preflight FOLDER`: the checks that need no logs, before any GPU run."""

from __future__ import annotations

from pathlib import Path

import click

from audit.cli.common import emit, output_options


@click.command("preflight")
@click.argument("folder", type=click.Path(path_type=Path))
@output_options
def preflight_cmd(folder, out) -> int:
    """Check a folder with only code (and tokenizer + meta) before spending GPU time.

    Code bytes (raw and compressed) and the model budget left, the time reserves the code sets,
    score-first TTT and evaluation legality, README/json claims vs code defaults, and the
    tokenizer's static audit. Exit 0 ready, 1 errors, 2 bad input."""
    from audit.atomic import check_outputs
    from audit.errors import InputError
    from audit.submission.preflight import preflight

    if not folder.is_dir():
        raise InputError(folder, "not a folder (preflight reads a folder with train_gpt.py)")
    check_outputs({"--json": out.json_path, "--markdown": out.md_path, "--output": out.output}, [folder])
    return emit([preflight(folder)], out, title="Preflight", start=folder)
