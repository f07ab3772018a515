"""TokenMonster normalisation flags (tokenizers.md §2.3 step 6), by name.

The encoder applies them before tokenising; the decoder never undoes them, so any flag other
than none means a tokenised stream need not reproduce its source bytes.
"""

from __future__ import annotations

import re
import unicodedata

from audit.tokenizers.tokenmonster.unicase import simple_lower

# bit → name, in the order the flags are usually written
FLAGS = {
    1: "nfd",
    2: "lowercase",
    4: "accents",
    8: "quotemarks",
    16: "collapse",
    32: "trim",
    64: "leadingspace",
    128: "newlines",
}
DESCRIPTION = {
    "nfd": "Unicode NFD decomposition (é → e + U+0301: 2 bytes become 3)",
    "lowercase": "lowercasing",
    "accents": "accents removed",
    "quotemarks": "curly quotes made straight",
    "collapse": "runs of spaces collapsed",
    "trim": "leading/trailing whitespace trimmed",
    "leadingspace": "a leading space added",
    "newlines": "CRLF turned into LF",
}
ALIASES = {"unixlines": "newlines", "crlf": "newlines", "removeaccents": "accents", "quotes": "quotemarks",
           "collapsespaces": "collapse", "addleadingspace": "leadingspace", "lower": "lowercase"}


def names(flags: int) -> list[str]:
    return [name for bit, name in FLAGS.items() if flags & bit]


def describe(flags: int) -> str:
    return ", ".join(names(flags)) or "none"


def parse(text: str) -> int:
    """`none`, `nfd`, `NFD Collapse`, `nfd|trim` … → flag bits. Raises ValueError on unknown names."""
    s = str(text).strip().lower()
    if s in ("", "none", "null", "false", "0"):
        return 0
    bits = 0
    by_name = {v: k for k, v in FLAGS.items()}
    for part in re.split(r"[\s,|+;]+", s):
        if not part:
            continue
        part = ALIASES.get(part, part)
        if part not in by_name:
            raise ValueError(f"unknown normalization {part!r} (known: {', '.join(FLAGS.values())})")
        bits |= by_name[part]
    return bits


_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
_SPACES = re.compile(" {2,}")


def apply(text: str, flags: int) -> str:
    """Apply the flags to a text (NFD is exact; the others follow their names)."""
    if not flags:
        return text
    if flags & 128:
        text = text.replace("\r\n", "\n")
    if flags & 8:
        text = text.translate(_QUOTES)
    if flags & 4:
        text = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.category(c) == "Mn")
    if flags & 1:
        text = unicodedata.normalize("NFD", text)
    if flags & 2:
        text = simple_lower(text)
    if flags & 16:
        text = _SPACES.sub(" ", text)
    if flags & 32:
        text = text.strip()
    if flags & 64 and not text.startswith(" "):
        text = " " + text
    return text
