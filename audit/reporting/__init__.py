"""Report writers: peers behind one interface, `format(reports, **options) -> str`, one module each.

    terminal   rich tables for people (colour only when asked), verdict first and last
    json       schema golfcheck.report v1, for programs
    markdown   report files and the GitHub job summary
    github     workflow-command annotations (`::error file=…,line=…,title=…::`)
    sarif      SARIF 2.1.0 for GitHub code scanning
    comment    the short pull-request comment (`audit ci --comment F`)

Modules load on first use, so `audit --help` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

FORMATS = {
    "terminal": "audit.reporting.terminal",
    "json": "audit.reporting.jsonfmt",
    "markdown": "audit.reporting.markdown",
    "github": "audit.reporting.github",
    "sarif": "audit.reporting.sarif",
    "comment": "audit.reporting.comment",
}
CLI_FORMATS = ("terminal", "json", "markdown", "github", "sarif")


def render(fmt: str, reports, **options: Any) -> str:
    """Render `reports` in format `fmt`; options a format does not use are ignored."""
    try:
        module = importlib.import_module(FORMATS[fmt])
    except KeyError:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})") from None
    return module.format(reports, **options)


def __getattr__(name: str):
    # Former flat API (print_reports, render_json, write_json, render_markdown, write_markdown),
    # resolved lazily so importing the package pulls in neither rich nor numpy.
    where = {"print_reports": "terminal", "render_json": "jsonfmt", "write_json": "jsonfmt",
             "render_markdown": "markdown", "write_markdown": "markdown"}
    if name in where:
        return getattr(importlib.import_module(f"audit.reporting.{where[name]}"), name)
    raise AttributeError(name)


__all__ = ["FORMATS", "CLI_FORMATS", "render", "print_reports", "render_json", "write_json",
           "render_markdown", "write_markdown"]
