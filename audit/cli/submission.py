"""`audit submission` (being built)."""

import click


@click.command("submission")
def submission_cmd() -> int:
    """(being built)"""
    raise click.ClickException("not built yet")
