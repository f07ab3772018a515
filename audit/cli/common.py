"""Shared CLI plumbing: the error guard, and the output and policy options every report-producing
command takes (one decorator, one `OutputOptions` object, one `emit`)."""

from __future__ import annotations

import functools
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from audit.errors import InputError, describe_unexpected


def run_guarded(cmd: click.Command, argv: list[str] | None = None) -> int:
    """Run a click command; InputError and unexpected failures become one line + exit 2."""
    try:
        rv = cmd.main(args=argv, standalone_mode=False)
    except InputError as e:
        click.echo(f"error: {_safe(e.one_line())}", err=True)
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
        click.echo(f"error: {_safe(describe_unexpected(e))}", err=True)  # names the file and step when tagged
        return 2
    return rv if isinstance(rv, int) else 0


def _safe(s: str) -> str:
    from audit.reporting.text import neutralise_workflow_commands, show_text

    return neutralise_workflow_commands(show_text(s))


@dataclass
class OutputOptions:
    fmt: str | None = None  # --format
    output: Path | None = None  # -o/--output
    json_path: Path | None = None
    md_path: Path | None = None
    quiet: bool = False
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    exit_zero: bool = False
    config: Path | None = None
    plots_dir: Path | None = None


_PATH = click.Path(dir_okay=False, path_type=Path)


def output_options(f):
    """Output and policy options, collected into one `out: OutputOptions` argument."""
    from audit.reporting import CLI_FORMATS

    options = [
        click.option("--format", "fmt", type=click.Choice(CLI_FORMATS), default=None,
                     help="Output format (default terminal). Written to -o FILE, else to stdout."),
        click.option("--output", "-o", "output", type=_PATH, help="Write the --format output here."),
        click.option("--json", "json_path", type=_PATH,
                     help="Also write the report as JSON (schema golfcheck.report v1); '-' for stdout."),
        click.option("--markdown", "md_path", type=_PATH, help="Also write the report as Markdown; '-' for stdout."),
        click.option("--quiet", "-q", is_flag=True,
                     help="Print only the verdict line of each audited thing (no tables, no progress bars)."),
        click.option("--select", multiple=True, metavar="IDS",
                     help="Only these rules: ids or prefixes, comma-separated or repeated (e.g. SUB,TOK001)."),
        click.option("--ignore", multiple=True, metavar="IDS", help="Leave out these rules (ids or prefixes)."),
        click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are error findings."),
        click.option("--config", "config", type=click.Path(dir_okay=False, exists=False, path_type=Path),
                     help="Policy file (golfcheck.toml or pyproject.toml [tool.golfcheck]); default: the "
                          "nearest one above the audited path."),
        click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Write PNG and SVG plots here (needs the [plots] extra) and embed them in --markdown."),
    ]

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        from audit import progress

        out = OutputOptions(**{k: kwargs.pop(k) for k in list(kwargs) if k in OutputOptions.__dataclass_fields__})
        out.select, out.ignore = tuple(out.select or ()), tuple(out.ignore or ())
        progress.set_enabled(not out.quiet)
        return f(*args, out=out, **kwargs)

    for opt in reversed(options):
        wrapper = opt(wrapper)
    return wrapper


def use_color(stream) -> bool:
    """Colour only on a terminal; NO_COLOR (any non-empty value) turns it off, FORCE_COLOR on."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return bool(getattr(stream, "isatty", lambda: False)())


def _width(stream) -> int:
    if getattr(stream, "isatty", lambda: False)():
        return shutil.get_terminal_size((100, 24)).columns
    try:
        return max(40, int(os.environ.get("COLUMNS", "100")))
    except ValueError:
        return 100


def write_output(dest: Path, text: str) -> None:
    if str(dest) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        from audit.atomic import write_text_atomic

        try:
            write_text_atomic(dest, text)
        except OSError as e:
            raise InputError(dest, f"cannot write: {e.strerror or e}") from None


def resolve_policy(out: OutputOptions, start=None, *, search: bool = True):
    from audit import policy

    return policy.resolve(select=out.select, ignore=out.ignore, exit_zero=out.exit_zero, config=out.config,
                          start=start, search=search)


def write_outputs(reports, out: OutputOptions, *, title: str | None = None, plots=None,
                  stdout_taken: bool = False) -> None:
    """Every requested output; the terminal rendering goes to stdout unless a machine format
    claims stdout, in which case the verdict lines go to stderr."""
    from audit.reporting import render

    targets: list[tuple[str, Path]] = []
    if out.fmt not in (None, "terminal") or out.output is not None:
        targets.append((out.fmt or "terminal", out.output if out.output is not None else Path("-")))
    if out.json_path is not None:
        targets.append(("json", out.json_path))
    if out.md_path is not None:
        targets.append(("markdown", out.md_path))
    stdout_taken = stdout_taken or any(str(d) == "-" for _, d in targets)
    for fmt, dest in targets:
        opts = {"title": title}
        if fmt == "markdown" and plots:
            opts["plots"] = plots.relative_to_file(dest)
        write_output(dest, render(fmt, reports, **opts, color=False, width=100, quiet=out.quiet))
    if stdout_taken:
        text = render("terminal", reports, quiet=True, color=use_color(sys.stderr), width=_width(sys.stderr))
        sys.stderr.write(text)
    else:  # the full terminal rendering, unless it was just written to a file
        to_file = any(fmt == "terminal" for fmt, _ in targets)
        sys.stdout.write(render("terminal", reports, quiet=out.quiet or to_file, color=use_color(sys.stdout),
                                width=_width(sys.stdout)))
        sys.stdout.flush()


def emit(reports, out: OutputOptions, *, title: str | None = None, start=None) -> int:
    """Apply the policy, write plots and outputs; return the exit code (0/1, or 0 with --exit-zero)."""
    from audit.report import exit_code

    pol = resolve_policy(out, start)
    reports = pol.apply(reports)
    plots = make_plots(reports, out.plots_dir) if out.plots_dir is not None else None
    write_outputs(reports, out, title=title, plots=plots)
    return pol.exit_code(exit_code(reports))


def make_plots(reports, folder: Path):
    from audit import plots

    if not plots.available():
        click.echo(f"note: --plots needs matplotlib: pip install 'golfcheck[plots]' ({folder} not written)", err=True)
        return None
    return plots.write_report_plots(reports, folder)
