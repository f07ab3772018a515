"""GitHub Actions workflow commands: `::error file=…,line=…,title=…::message` annotations.

Escaping follows the runner's rules (checked against actions/toolkit's `command.ts`:
`escapeData` replaces % CR LF, `escapeProperty` also : and ,). Untrusted text therefore can never
end the command early nor start a new line that the runner would read as a second command.

GitHub shows at most 10 error and 10 warning annotations per step; more are dropped silently.
So each record gets at most `MAX_PER_LEVEL` of each, the most severe first, and one notice
that says how many more there are and that the step summary lists them all.
"""

from __future__ import annotations

from typing import Any

from audit.report import Report
from audit.rules import Finding, Severity

MAX_PER_LEVEL = 10


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


def _from_location(location: str | None) -> tuple[str | None, int | None]:
    """Fallback for findings that only carry a free-text location like `README.md:64`."""
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
    return loc, line


def finding_path(f: Finding, folder: str | None) -> tuple[str | None, int | None]:
    """The finding's file relative to the repository (the audited folder joined with the finding's
    folder-relative file) and its line."""
    file, line = (f.file, f.line) if f.file else _from_location(f.location)
    if file is None:
        return None, None
    if folder and not file.startswith("/"):
        file = f"{folder.rstrip('/')}/{file}"
    return relative_to_cwd(file), (line if line and line > 0 else None)


def relative_to_cwd(path: str) -> str:
    """Annotations and SARIF locations are relative to the repository root, which is where the
    workflow runs: an absolute path inside the working directory is made relative to it."""
    import os

    if os.path.isabs(path):
        try:
            rel = os.path.relpath(path)
        except ValueError:
            return path
        if not rel.startswith(".."):
            return rel
    return path


def report_annotations(rep: Report, folder: str | None = None,
                       max_per_level: int = MAX_PER_LEVEL) -> list[str]:
    """Error and warning annotations of one report (info findings are left out), capped per level."""
    folder = folder or rep.subject
    out: list[str] = []
    left = {Severity.ERROR: 0, Severity.WARNING: 0}
    shown = {Severity.ERROR: 0, Severity.WARNING: 0}
    for f in rep.sorted_findings():
        if f.severity not in left:
            continue
        if shown[f.severity] >= max_per_level:
            left[f.severity] += 1
            continue
        shown[f.severity] += 1
        file, line = finding_path(f, folder)
        out.append(annotation(f.severity.value, f"{folder}: {f.message}", file=file, line=line,
                              title=f"{f.rule_id} {f.rule_name}"))
    if left[Severity.ERROR] or left[Severity.WARNING]:
        out.append(annotation(
            "notice", f"{folder}: {left[Severity.ERROR]} more error(s) and {left[Severity.WARNING]} more "
                      f"warning(s) than annotated here; the job summary lists every finding",
            title=f"golfcheck: {rep.final_verdict}"))
    return out


def format(reports: list[Report], **_: Any) -> str:
    lines = []
    for r in reports:
        lines += report_annotations(r)
    return "".join(line + "\n" for line in lines)
