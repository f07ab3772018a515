"""GitHub Actions workflow commands: `::error file=…,line=…,title=…::message` annotations.

Escaping follows the runner's rules: data escapes %, CR, LF; properties also escape ':' and ','.
"""

from __future__ import annotations

from audit.report import Report
from audit.rules import Severity


def _data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(s: str) -> str:
    return _data(s).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, message: str, *, file: str | None = None, line: int | None = None,
               title: str | None = None) -> str:
    props = []
    if file:
        props.append(f"file={_prop(file)}")
    if line:
        props.append(f"line={int(line)}")
    if title:
        props.append(f"title={_prop(title)}")
    return f"::{level}{' ' + ','.join(props) if props else ''}::{_data(message)}"


def _where(folder: str, location: str | None) -> tuple[str | None, int | None]:
    if not location:
        return None, None
    loc = location.split(" (", 1)[0].strip()
    line = None
    if ":" in loc:
        head, _, tail = loc.rpartition(":")
        if tail.isdigit():
            loc, line = head, int(tail)
    if not loc or " " in loc:
        return None, None
    return f"{folder.rstrip('/')}/{loc}", line


def report_annotations(rep: Report, folder: str | None = None) -> list[str]:
    """One annotation per error/warning finding of a report (info findings are left out)."""
    folder = folder or rep.subject
    out = []
    for f in rep.sorted_findings():
        if f.severity is Severity.INFO:
            continue
        file, line = _where(folder, f.location)
        out.append(annotation("error" if f.severity is Severity.ERROR else "warning",
                              f"{folder}: {f.message}", file=file, line=line,
                              title=f"{f.rule_id} {f.rule_name}"))
    return out
