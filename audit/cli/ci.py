"""`audit ci` (being built)."""

import click


@click.command("ci")
def ci_cmd() -> int:
    """(being built)"""
    raise click.ClickException("not built yet")
