"""Capcode, TokenMonster's reversible case encoding (tokenizers.md §2.3 step 4-5 and §2.4).

Capcode 2 markers: `C` uppercases the next character, `W` uppercases the letters of the next
word, `D` deletes the next character (usually a space, so ` word` tokens serve words that follow
punctuation or start a document). Capcode 1 only has the delete marker 0x7F.

These are the per-character REFERENCE implementations (exact, simple to read, used on short
texts, in tests and by the encoder); `fastdecode.py` is the vectorised decoder for whole val
streams and is tested against `decode2` here. Invalid UTF-8 bytes travel as surrogate escapes
(U+DC80..U+DCFF, Python's `surrogateescape`), one per byte, as Go's `utf8.DecodeRune` reads an
invalid byte as RuneError of width 1. The canonical Go decoder copies such a byte unchanged in
every state: under `in_char` the marker is consumed and the raw byte is written (never U+FFFD),
under `in_word` it is written and ends the word. Checked against the canonical Go code and its
22,500 decode vectors (`tests/test_capcode_conformance.py`).
"""

from __future__ import annotations

from audit.tokenizers.tokenmonster.unicase import CASED, LETTER, LL, LU, MARK, NUM, tables

APOSTROPHES = ("'", "\u2019")
MARKERS2 = ("C", "W", "D")
DEL1 = "\x7f"


def decode2(text: str) -> str:
    """The capcode-2 decoder state machine, one character at a time (§2.3 step 5)."""
    t = tables()
    flags, upper = t.flags, t.upper
    out: list[str] = []
    in_char = in_word = delete = ignore = False
    for ch in text:
        if ch == "C":
            in_char, in_word = True, False
            continue
        if ch == "W":
            in_word, ignore, in_char = True, True, False
            continue
        if ch == "D":
            delete = True
            continue
        if ch == " ":
            if delete:
                delete = False
            else:
                out.append(" ")
                if not ignore:
                    in_word = False
        elif delete:
            delete = False
        elif in_char:
            in_char = False
            out.append(chr(upper[ord(ch)]))  # an invalid byte's escape maps to itself
        elif in_word:
            f = flags[ord(ch)]
            if f & CASED:
                out.append(chr(upper[ord(ch)]))
            else:
                out.append(ch)
                if not (f & (NUM | MARK)) and ch not in APOSTROPHES:
                    in_word = False
        else:
            out.append(ch)
        ignore = False
    return "".join(out)


def encode2(text: str) -> str:
    """The capcode-2 encoder (§2.4): lowercases capitals and inserts C/W/D markers."""
    t = tables()
    flags, lower = t.flags, t.lower

    def fl(ch):
        return 0 if ch is None else int(flags[ord(ch)])

    out: list[str] = []
    last = last2 = None
    in_run = multi = False
    w_pos = -1
    run_later: list[tuple[int, bool]] = []  # (position, follows "D ") of capitals after the run's first
    for ch in text:
        f = fl(ch)
        if not in_run:
            if f & LL:
                if not (last == " " or fl(last) & (LL | MARK)
                        or (last in APOSTROPHES and fl(last2) & LETTER)):
                    out += ["D", " "]
                out.append(ch)
            elif f & LU:
                in_run, multi, run_later = True, False, []
                if last == " ":
                    out[-1] = "W"
                    out.append(" ")
                else:
                    out += ["D", "W", " "]
                w_pos = len(out) - 2
                out.append(chr(lower[ord(ch)]))
            elif f & NUM:
                if not (last == " " or fl(last) & NUM):
                    out += ["D", " "]
                out.append(ch)
            else:
                out.append(ch)
        else:
            after_letter = bool(fl(last) & (LETTER | MARK)) or last in APOSTROPHES
            if f & LU:
                ds = not after_letter
                if ds:
                    out += ["D", " "]
                run_later.append((len(out), ds))
                out.append(chr(lower[ord(ch)]))
                multi = True
            elif f & LL:
                out[w_pos] = "C"  # a capitalised word, not all caps
                if multi:  # every later capital of the run needs its own C
                    for pos, ds in reversed(run_later):
                        if ds:
                            out.insert(pos - 1, "C")  # "D" "C" " " letter
                        else:
                            out[pos:pos] = ["D", "C", " "]
                in_run = False
                if not after_letter:
                    out += ["D", " "]
                out.append(ch)
            elif f & NUM:
                if not fl(last) & NUM:
                    out += ["D", " "]
                out.append(ch)
            else:
                if not (ch in APOSTROPHES or f & MARK):
                    in_run = False
                out.append(ch)
        last2, last = last, ch
    return "".join(out)


def decode1(data: bytes) -> bytes:
    """Capcode 1: the byte 0x7F deletes itself and the byte after it (left to right)."""
    if 0x7F not in data:
        return data
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        if data[i] == 0x7F:
            i += 2
            continue
        out.append(data[i])
        i += 1
    return bytes(out)


def encode1(text: str) -> str:
    """Capcode 1 (§2.4): a 0x7F-space before letters/numbers that do not follow a word; 0x7F → 0x14."""
    t = tables()
    flags = t.flags

    def fl(ch):
        return 0 if ch is None else int(flags[ord(ch)])

    out: list[str] = []
    last = last2 = None
    for ch in text:
        f = fl(ch)
        if f & LETTER:
            if not (last == " " or fl(last) & (LETTER | MARK)
                    or (last in APOSTROPHES and fl(last2) & LETTER)):
                out += [DEL1, " "]
        elif f & NUM:
            if not (last == " " or fl(last) & NUM):
                out += [DEL1, " "]
        out.append("\x14" if ch == DEL1 else ch)
        last2, last = last, ch
    return "".join(out)


def roundtrip2_expected(text: str) -> str:
    """What decode2(encode2(text)) gives: every capital c becomes upper(lower(c)) (İ→I, ẞ→ß, …)."""
    t = tables()
    fl, up, lo = t.flags, t.upper, t.lower
    return "".join(chr(up[lo[ord(c)]]) if fl[ord(c)] & LU else c for c in text)


def decode_bytes(data: bytes, capcode: int) -> bytes:
    """Reference decode of one document's concatenated UTF-8 token bytes."""
    if capcode == 1:
        return decode1(data)
    if capcode == 2:
        return decode2(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
    return data
