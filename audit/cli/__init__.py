"""`audit` command line: a thin click layer over the library.

Exit codes: 0 pass, 1 findings at error level, 2 could not run (one-line error, no traceback).
Each subcommand lives in its own module and is attached here.
"""

from __future__ import annotations

import sys

import click

from audit import __version__
from audit.cli.common import run_guarded


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="audit (golfcheck)")
def cli() -> None:
    """golfcheck: byte-exact tokenizer audits and Parameter Golf submission checks."""


def _attach() -> None:
    from audit.cli import ci, preflight, rules, submission, tokenizer

    cli.add_command(rules.rules_cmd)
    cli.add_command(tokenizer.tokenizer_cmd)
    cli.add_command(submission.submission_cmd)
    cli.add_command(ci.ci_cmd)
    cli.add_command(preflight.preflight_cmd)


_attach()


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_guarded(cli, argv))
