"""`audit tokenizer` (being built)."""

import click


@click.command("tokenizer")
def tokenizer_cmd() -> int:
    """(being built)"""
    raise click.ClickException("not built yet")
