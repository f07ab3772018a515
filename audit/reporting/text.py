"""Readable text for every writer: numbers, missing values, untrusted strings, text differences.

Everything printed from a report passes through here, so the rules are one place:
- integers get thousands separators, except identifiers (ids, seeds, lines, documents);
- floats print as plain decimals (never `1.59527e+07` for a byte count that happens to be float);
- a missing value prints as `—`, never `None`;
- untrusted text (file names, pieces, messages quoting a submission) shows control characters and
  undecodable bytes as `\\xNN`, once: a newline in a file name cannot start a new output line;
- long names are shortened in the middle, keeping both ends (the track and the record name).

No third-party imports: the CLI's `--help` path must stay light.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

MISSING = "—"

# Column or key names whose integers are identifiers: "1,337" is wrong for a seed or a token id.
# ("ids", "docs", "lines" are counts and keep their separators; "seeds" usually lists seeds.)
_ID_WORDS = re.compile(r"(?:^|[\s_(\[])(?:id|seed|seeds|line|doc|document|pr|rank|world)"
                       r"(?:$|[\s_)\]:])", re.IGNORECASE)


def is_id_name(name: str | None) -> bool:
    return bool(name) and bool(_ID_WORDS.search(str(name).strip()))


def fmt_int(v: int, name: str | None = None) -> str:
    return str(v) if is_id_name(name) else f"{v:,}"


def fmt_float(v: float) -> str:
    if not math.isfinite(v):
        return str(v)
    if v == int(v) and abs(v) < 1e15 and abs(v) >= 1000:
        return f"{int(v):,}"
    if abs(v) >= 1000:
        return f"{v:,.2f}"
    if v == 0 or abs(v) >= 1e-4:
        s = f"{v:.8f}".rstrip("0").rstrip(".")
        return s if s not in ("", "-0") else "0"
    return f"{v:.3g}"


def fmt_value(v: Any, name: str | None = None) -> str:
    """One cell or summary value as text; `name` is its column or key (ids keep plain digits)."""
    if v is None:
        return MISSING
    if isinstance(v, bool):
        return "yes" if v else "no"
    if hasattr(v, "item") and not isinstance(v, (list, tuple, dict, str, bytes)):
        try:  # numpy scalars, without importing numpy here
            v = v.item()
        except (TypeError, ValueError):
            pass
        if isinstance(v, bool):
            return "yes" if v else "no"
    if isinstance(v, int):
        return fmt_int(v, name)
    if isinstance(v, float):
        if math.isnan(v):
            return MISSING
        return fmt_float(v)
    if isinstance(v, bytes):
        return show_bytes(v)
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt_value(x, name) for x in v)
    if isinstance(v, dict):
        return ", ".join(f"{show_text(str(k))}: {fmt_value(x, str(k))}" for k, x in v.items())
    return show_text(str(v))


def _escape_char(ch: str) -> str:
    o = ord(ch)
    if 0xDC80 <= o <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape): show the byte
        return f"\\x{o - 0xDC00:02x}"
    if o < 0x100:
        return f"\\x{o:02x}"
    if o <= 0xFFFF:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def _needs_escape(ch: str) -> bool:
    cat = unicodedata.category(ch)
    # Cc: control (newline, CR, ESC, DEL, C1); Cs: lone surrogates; Zl/Zp: line/paragraph
    # separators, which some terminals and the Actions runner also treat as line ends.
    return cat in ("Cc", "Cs", "Zl", "Zp")


def show_text(s: str) -> str:
    """Untrusted text for display: control characters and undecodable bytes as `\\xNN`, the rest
    as itself (so `Mädchen` reads as `Mädchen`, not `M\\xe4dchen`)."""
    if not any(_needs_escape(ch) for ch in s):
        return s
    return "".join(_escape_char(ch) if _needs_escape(ch) else ch for ch in s)


def show_bytes(b: bytes) -> str:
    return show_text(b.decode("utf-8", "surrogateescape"))


def char_name(ch: str) -> str:
    """`U+0308 COMBINING DIAERESIS`; bytes that were not UTF-8 are named as bytes."""
    o = ord(ch)
    if 0xDC80 <= o <= 0xDCFF:
        return f"byte 0x{o - 0xDC00:02X} (not UTF-8)"
    name = unicodedata.name(ch, "")
    if not name:
        name = {"Cc": "<control>", "Cs": "<surrogate>", "Co": "<private use>", "Cn": "<unassigned>"}.get(
            unicodedata.category(ch), "<unnamed>")
    return f"U+{o:04X} {name}"


def _as_text(x: str | bytes) -> str:
    return x.decode("utf-8", "surrogateescape") if isinstance(x, bytes) else x


def text_diff(a: str | bytes, b: str | bytes, *, labels: tuple[str, str] = ("a", "b"),
              context: int = 24, max_named: int = 4) -> list[str]:
    """Two texts as text, the first differing position marked and the differing characters named.

    ['a: Mädchen', 'b: Mädchen', '    ^ first difference at character 1',
     'a has U+0061 LATIN SMALL LETTER A, U+0308 COMBINING DIAERESIS where b has
      U+00E4 LATIN SMALL LETTER A WITH DIAERESIS']
    """
    ta, tb = _as_text(a), _as_text(b)
    if ta == tb:
        return [f"{labels[0]} and {labels[1]} are equal"]
    p = 0
    while p < min(len(ta), len(tb)) and ta[p] == tb[p]:
        p += 1
    s = 0  # common suffix, not overlapping the prefix
    while s < min(len(ta), len(tb)) - p and ta[-1 - s] == tb[-1 - s]:
        s += 1
    start = max(0, p - context)
    pad = max(len(labels[0]), len(labels[1])) + 2
    lines = []
    for lab, t in zip(labels, (ta, tb)):
        shown = t[start:p + context]
        lead = "…" if start > 0 else ""
        tail = "…" if p + context < len(t) else ""
        lines.append(f"{lab}:".ljust(pad) + lead + show_text(shown) + tail)
    col = pad + (1 if start > 0 else 0) + len(show_text(ta[start:p]))
    lines.append(" " * col + f"^ first difference at character {p:,}")
    da, db = ta[p:len(ta) - s], tb[p:len(tb) - s]

    def names(d: str) -> str:
        if not d:
            return "nothing"
        out = ", ".join(char_name(c) for c in d[:max_named])
        return out + (f", … ({len(d):,} characters)" if len(d) > max_named else "")

    lines.append(f"{labels[0]} has {names(da)} where {labels[1]} has {names(db)}")
    return lines


def truncate_middle(s: str, width: int) -> str:
    """`records/track_10min_16mb/2026-…_very_long_name`: both ends kept, the middle elided."""
    if width < 5 or len(s) <= width:
        return s
    keep = width - 1
    head = keep // 2
    return s[:head] + "…" + s[len(s) - (keep - head):]


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def neutralise_workflow_commands(text: str) -> str:
    """A line whose first non-blank characters are `::` is a command to the GitHub Actions runner;
    in human-readable output such a line can only come from untrusted text, so its colon is
    shown escaped (`\\x3a:error…`) and the runner ignores it."""
    out = []
    for line in text.split("\n"):
        stripped = line.lstrip()
        if stripped.startswith("::"):
            i = len(line) - len(stripped)
            line = line[:i] + "\\x3a" + line[i + 1:]
        out.append(line)
    return "\n".join(out)
