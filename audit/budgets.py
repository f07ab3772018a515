"""Every resource budget of the audit, in one place (README "Budgets" lists them).

A budget is checked BEFORE the work it bounds (from a header, a file size, a declared length)
and, where a header can lie, again while streaming with a hard cap. An input over a budget is an
`InputError` naming the file and the budget, never a slow success: a few kilobytes must not buy
gigabytes of memory or minutes of CPU. Real inputs sit far below every figure here (the largest
shipped tokenizer has 8,192 ids; shard ids are uint16, so a usable vocabulary has ≤ 65,536 ids).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from audit.errors import InputError

KiB, MiB = 1024, 1024 * 1024

# ---- vocabularies (meta.npz, SentencePiece, TokenMonster) -------------------------------------
MAX_VOCAB_IDS = 1 << 20  # ids in any table; 16x the largest id a uint16 shard can hold
MAX_META_FILE_BYTES = 64 * MiB  # a *.meta.npz on disk (a real one is a few KB)
MAX_NPZ_MEMBERS = 32  # members in a meta archive (numpy writes 7)
MAX_NPZ_MEMBER_BYTES = 16 * MiB  # one member decompressed (1 M ids of int64 = 8 MB)
MAX_NPZ_TOTAL_BYTES = 48 * MiB  # all members decompressed together
MAX_NPY_HEADER_BYTES = 64 * KiB  # numpy's own reader refuses headers over 10 KB by default
MAX_SP_MODEL_BYTES = 64 * MiB  # SentencePiece .model (real: 250-370 KB)
MAX_TM_BINARY_BYTES = 64 * MiB  # TokenMonster .vocab (real: under 1 MB)
MAX_TM_YAML_BYTES = 32 * MiB  # TokenMonster .yaml (real: 116 KB for 1,254 ids, ~10 MB for 100 k)
MAX_YAML_NODES = 2_000_000  # YAML nodes (a token item is 9); counted from events before building
MAX_YAML_DEPTH = 64  # YAML nesting (a vocabulary needs 3); anchors and aliases are refused outright
TM_MIN_ENTRY_BYTES = 1 + 1 + 1 + 1 + 3 + 3 + 3 + 4  # len, key ≥ 1, flag, n_words, alt1, alt2, id, score
# TokenMonster ids are dense (every id has an entry; Scylla-998: 998 ids, 1,229 entries), so a
# header or YAML may name at most this many ids more than it has entries: a 10 KB file cannot
# claim a million ids
TM_MAX_IDS_WITHOUT_ENTRY = 4096

# ---- documents and streams --------------------------------------------------------------------
MAX_DOCS_LINE_BYTES = 64 * MiB  # one docs.jsonl line (one document as JSON)
MAX_JSON_DEPTH = 32  # nesting of any JSON object read (docs lines, manifest, submission.json)
MAX_JSON_INT_DIGITS = 100  # longer integer literals are refused before int() sees them
MAX_MANIFEST_BYTES = 4 * MiB

# ---- record folders (used by audit/submission) ------------------------------------------------
MAX_SUBMISSION_JSON_BYTES = 1_000_000
MAX_TEXT_BYTES = 2_000_000  # README.md and other prose read whole
MAX_CODE_BYTES = 8_000_000  # train_gpt.py and friends: larger files are not parsed
MAX_CODE_LINES = 100_000  # the longest real train_gpt.py is ~3,000 lines
MAX_AST_NODES = 1_000_000  # nodes of one parsed code file
MAX_LOG_LINE_CHARS = 64 * KiB  # longer log lines are skipped (counted) before any regex sees them
MAX_LOG_BYTES = 4 * 1024 * MiB  # bytes of one log streamed (line by line, never held whole)

# ---- audit ci (head tree read with git plumbing) ----------------------------------------------
MAX_CI_BLOB_BYTES = 512 * MiB  # one file of a record folder
MAX_CI_TREE_BYTES = 2 * 1024 * MiB  # all files of one record folder together
MAX_CI_ENTRIES = 5_000  # files and links in one record folder


def over(path: str | Path | None, what: str, value: int, budget: int, unit: str = "") -> InputError:
    """The error for a value over its budget (one wording everywhere)."""
    unit = f" {unit}" if unit else ""
    return InputError(path, f"{what} is {value:,}{unit}, over the budget of {budget:,}{unit} "
                            f"(audit/budgets.py); refused before reading further")


def check(path: str | Path | None, what: str, value: int, budget: int, unit: str = "") -> None:
    if value > budget:
        raise over(path, what, value, budget, unit)


def check_file_size(path: str | Path, budget: int, what: str = "file") -> int:
    """The file's size, refused over `budget` (stat only, nothing read)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror or e}") from None
    check(path, f"{what} size", size, budget, "bytes")
    return size


def read_lines_capped(path: str | Path, *, max_line: int = MAX_LOG_LINE_CHARS,
                      max_bytes: int = MAX_LOG_BYTES) -> Iterator[tuple[int, str | None]]:
    """(line number, text) for each line of a file, streamed in bounded memory.

    A line longer than `max_line` bytes yields (lineno, None) and is never held whole; its
    remainder is skipped in chunks. Decoding is UTF-8 with replacement (logs are not trusted
    to be valid). Reading stops with an InputError after `max_bytes`."""
    path = Path(path)
    total, lineno = 0, 0
    try:
        fh = open(path, "rb")
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror or e}") from None
    with fh:
        while True:
            raw = fh.readline(max_line + 1)
            if not raw:
                return
            lineno += 1
            total += len(raw)
            if len(raw) > max_line and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # skip the rest of an overlong line
                    raw = fh.readline(64 * KiB)
                    total += len(raw)
                    check(path, "bytes read", total, max_bytes, "bytes")
                yield lineno, None
                continue
            check(path, "bytes read", total, max_bytes, "bytes")
            yield lineno, raw.decode("utf-8", "replace").rstrip("\r\n")

