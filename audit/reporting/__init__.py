"""Report writers: peers behind one interface, `render(reports) -> str` (terminal prints)."""

from audit.reporting.jsonfmt import render_json, write_json
from audit.reporting.markdown import render_markdown, write_markdown
from audit.reporting.terminal import print_reports

__all__ = ["print_reports", "render_json", "write_json", "render_markdown", "write_markdown"]
