"""Shared CLI plumbing: error guard, report output options."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from audit.errors import InputError, describe_unexpected
from audit.report import Report, exit_code


def run_guarded(cmd: click.Command, argv: list[str] | None = None) -> int:
    """Run a click command; InputError and unexpected failures become one line + exit 2."""
    try:
        rv = cmd.main(args=argv, standalone_mode=False)
    except InputError as e:
        click.echo(f"error: {e.one_line()}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        return 2
    except click.ClickException as e:
        e.show()
        return 2
    except (KeyboardInterrupt, BrokenPipeError):
        return 2
    except MemoryError:
        click.echo("error: out of memory", err=True)
        return 2
    except Exception as e:  # noqa: BLE001 - last line of defence: never a traceback
        if os.environ.get("GOLFCHECK_DEBUG"):
            raise
        click.echo(f"error: {describe_unexpected(e)}", err=True)  # names the file and step when tagged
        return 2
    return rv if isinstance(rv, int) else 0


def output_options(f):
    """--json F, --markdown F, --quiet: shared by every report-producing command."""

    @click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
                  help="Write the report as JSON (schema golfcheck.report v1); '-' for stdout.")
    @click.option("--markdown", "md_path", type=click.Path(dir_okay=False, path_type=Path),
                  help="Write the report as Markdown; '-' for stdout.")
    @click.option("--quiet", "-q", is_flag=True, help="No terminal tables or progress bars.")
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        from audit import progress

        progress.set_enabled(not kwargs.get("quiet"))
        return f(*args, **kwargs)

    return wrapper


def emit(reports: list[Report], json_path: Path | None, md_path: Path | None, quiet: bool,
         title: str | None = None) -> int:
    """Render reports to the requested outputs; return the exit code (0/1)."""
    from audit.reporting import print_reports, render_json, render_markdown, write_json, write_markdown

    to_stdout = str(json_path) == "-" or str(md_path) == "-"
    if not quiet and not to_stdout:
        print_reports(reports)
    if json_path is not None:
        if str(json_path) == "-":
            sys.stdout.write(render_json(reports))
        else:
            write_json(reports, json_path)
    if md_path is not None:
        if str(md_path) == "-":
            sys.stdout.write(render_markdown(reports, title))
        else:
            write_markdown(reports, md_path, title)
    return exit_code(reports)
