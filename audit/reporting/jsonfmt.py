"""JSON writer. Schema `golfcheck.report` version 1:

{"schema": "golfcheck.report", "schema_version": 1, "tool_version": "...",
 "exit_code": 0|1, "reports": [{"kind", "subject", "verdict", "passed", "counts",
 "summary": {...}, "findings": [{"rule", "name", "severity", "message", "evidence",
 "fix", "location", "file", "line"}], "tables": [{"title", "columns", "rows"}]}]}
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from audit import __version__
from audit.report import SCHEMA, SCHEMA_VERSION, Report, exit_code
from audit.atomic import write_text_atomic
from audit.reporting.text import show_text


def plain(o: Any) -> Any:
    """JSON-safe copy: numpy values as Python values, non-finite floats as strings."""
    if isinstance(o, dict):
        return {plain(str(k)): plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, set)):
        return [plain(v) for v in o]
    if isinstance(o, np.generic):
        return plain(o.item())
    if isinstance(o, np.ndarray):
        return plain(o.tolist())
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    if isinstance(o, str):
        try:
            o.encode("utf-8")
            return o
        except UnicodeEncodeError:  # lone surrogates (a non-UTF-8 file name): bytes as \xNN
            return show_text(o)
    if isinstance(o, (int, float, bool)) or o is None:
        return o
    if isinstance(o, bytes):
        return o.decode("latin-1")
    if isinstance(o, Path):
        return str(o)
    return str(o)


def to_document(reports: list[Report]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "tool_version": __version__,
        "exit_code": exit_code(reports),
        "reports": [plain(r.to_dict()) for r in reports],
    }


def render_json(reports: list[Report]) -> str:
    return json.dumps(to_document(reports), indent=2, ensure_ascii=False) + "\n"


def format(reports: list[Report], **_: Any) -> str:
    return render_json(reports)


def write_json(reports: list[Report], path: str | Path) -> None:
    write_text_atomic(path, render_json(reports))
