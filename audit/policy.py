"""Which rules count: `--select` / `--ignore` (rule ids or id prefixes), `--exit-zero`, and the same
settings from a policy file.

The policy file is `golfcheck.toml` (top-level keys) or the `[tool.golfcheck]` table of a
`pyproject.toml`, the nearest one found walking up from the audited path:

    [tool.golfcheck]
    select = ["SUB", "TOK"]      # only these rules (ids or prefixes); default: all
    ignore = ["SUB041", "TM00"]  # never these (applied after select)
    exit-zero = false            # exit 0 even with error findings

Options given on the command line replace the file's value of the same key. A selector that
matches no rule in the catalogue is an input error (a typo must not silently select nothing).
Filtered findings are gone from every output; the report's summary says how many were ignored,
and a report whose every error was ignored passes.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from audit.errors import InputError

CONFIG_NAMES = ("golfcheck.toml", "pyproject.toml")
KEYS = {"select", "ignore", "exit-zero", "exit_zero"}


@dataclass(frozen=True)
class Policy:
    select: tuple[str, ...] = ()  # empty: every rule
    ignore: tuple[str, ...] = ()
    exit_zero: bool = False
    source: str | None = None  # the policy file it came from, if any

    @property
    def active(self) -> bool:
        return bool(self.select or self.ignore)

    def keeps(self, rule_id: str) -> bool:
        rid = rule_id.upper()
        if self.select and not any(rid.startswith(s) for s in self.select):
            return False
        return not any(rid.startswith(s) for s in self.ignore)

    def apply(self, reports: list) -> list:
        """Copies of the reports with the findings this policy drops removed."""
        if not self.active:
            return reports
        out = []
        for r in reports:
            kept = [f for f in r.findings if self.keeps(f.rule_id)]
            dropped = len(r.findings) - len(kept)
            if not dropped:
                out.append(r)
                continue
            verdict = r.verdict
            if verdict is not None and not any(f.severity.value == "error" for f in kept) and r.errors:
                verdict = None  # the errors that made it fail are ignored: it passes under this policy
            summary = dict(r.summary)
            summary["ignored by policy"] = f"{dropped} finding(s)" + (f" ({self.source})" if self.source else "")
            out.append(dataclasses.replace(r, findings=kept, verdict=verdict, summary=summary))
        return out

    def exit_code(self, code: int) -> int:
        return 0 if self.exit_zero and code == 1 else code


def _selectors(values: Iterable[str], where: str) -> tuple[str, ...]:
    from audit.rules import catalogue

    ids = list(catalogue())
    out = []
    for v in values:
        for part in str(v).split(","):
            s = part.strip().upper()
            if not s:
                continue
            if not any(i.startswith(s) for i in ids):
                raise InputError(where, f"{part.strip()!r} matches no rule id (see `audit rules`)")
            out.append(s)
    return tuple(out)


def find_config(start: str | Path) -> Path | None:
    """The nearest golfcheck.toml, or pyproject.toml with a [tool.golfcheck] table, at or above
    `start` (a file or a folder)."""
    p = Path(start).resolve()
    if not p.is_dir():
        p = p.parent
    for folder in (p, *p.parents):
        for name in CONFIG_NAMES:
            cand = folder / name
            if cand.is_file() and (name == "golfcheck.toml" or _has_tool_table(cand)):
                return cand
    return None


def _has_tool_table(path: Path) -> bool:
    try:
        return "golfcheck" in _read_toml(path).get("tool", {})
    except InputError:
        return False


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(path, f"not valid TOML: {e}") from None


def load_config(path: str | Path) -> dict:
    """The policy table of a golfcheck.toml or pyproject.toml, validated."""
    path = Path(path)
    doc = _read_toml(path)
    table = doc if path.name != "pyproject.toml" else doc.get("tool", {}).get("golfcheck", {})
    if not isinstance(table, dict):
        raise InputError(path, "[tool.golfcheck] must be a table")
    unknown = set(table) - KEYS
    if unknown:
        raise InputError(path, f"unknown setting(s) {', '.join(sorted(unknown))} (known: select, ignore, exit-zero)")
    for key in ("select", "ignore"):
        v = table.get(key, [])
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise InputError(path, f"{key} must be a list of rule ids or prefixes")
        table[key] = v
    ez = table.get("exit-zero", table.get("exit_zero", False))
    if not isinstance(ez, bool):
        raise InputError(path, "exit-zero must be true or false")
    table["exit-zero"] = ez
    return table


def resolve(*, select: Iterable[str] = (), ignore: Iterable[str] = (), exit_zero: bool = False,
            config: str | Path | None = None, start: str | Path | None = None,
            search: bool = True) -> Policy:
    """The effective policy: an explicit `config` file, else (when `search`) the nearest one from
    `start`; command-line values replace the file's."""
    path = Path(config) if config is not None else (find_config(start or ".") if search else None)
    if config is not None and not path.is_file():
        raise InputError(path, "no such policy file")
    table = load_config(path) if path is not None else {}
    src = str(path) if path is not None else None
    select, ignore = list(select), list(ignore)
    sel = _selectors(select, "--select") if select else _selectors(table.get("select", []), src or "")
    ign = _selectors(ignore, "--ignore") if ignore else _selectors(table.get("ignore", []), src or "")
    return Policy(select=sel, ignore=ign, exit_zero=exit_zero or table.get("exit-zero", False), source=src)
