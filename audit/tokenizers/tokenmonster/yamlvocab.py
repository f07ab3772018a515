"""TokenMonster YAML vocabulary reader and writer (tokenizers.md §2.2).

Loaded with yaml's safe loader only. `TokenMonsterHexEncode{hh…}` inside a token string stands
for raw bytes; the literal text around it is UTF-8 (UTF-16-LE for a `charset: utf-16` vocab).
Items with `encoded: false` are normalised and capcode-encoded first, as TokenMonster does.
Several items with one id: the last one wins, as in the binary format.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import yaml

from audit.budgets import (MAX_TM_YAML_BYTES, MAX_VOCAB_IDS, MAX_YAML_DEPTH, MAX_YAML_NODES, TM_MAX_IDS_WITHOUT_ENTRY,
                           check_file_size, over)
from audit.errors import InputError, stepped
from audit.tokenizers.tokenmonster import capcode as cc
from audit.tokenizers.tokenmonster import normalize
from audit.tokenizers.tokenmonster.vocab import MAX_KEY, Entry, Vocab

HEX_OPEN = "TokenMonsterHexEncode{"
_HEX_RUN = re.compile(r"TokenMonsterHexEncode\{([^}]*)\}")
CHARSET_NAMES = {"none": 0, "": 0, "utf-8": 1, "utf8": 1, "utf-16": 2, "utf16": 2}
MAX_ID = MAX_VOCAB_IDS - 1


def _loader():
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def token_bytes(s: str, charset: int, where: str, path: Path) -> bytes:
    """A token string → its bytes (hex segments raw, literal text in the charset's encoding)."""
    enc = "utf-16-le" if charset == 2 else "utf-8"
    out = bytearray()
    pos = 0
    for m in _HEX_RUN.finditer(s):
        out += s[pos:m.start()].encode(enc, "surrogatepass")
        h = m.group(1)
        if len(h) % 2 or not re.fullmatch(r"[0-9A-Fa-f]*", h) or not h:
            raise InputError(path, f"{where}: bad hex escape {m.group(0)!r} (need an even number of hex digits)")
        out += bytes.fromhex(h)
        pos = m.end()
    rest = s[pos:]
    if HEX_OPEN in rest:
        raise InputError(path, f"{where}: unterminated {HEX_OPEN}…}} escape")
    try:
        out += rest.encode(enc)
    except UnicodeEncodeError:
        raise InputError(path, f"{where}: token text is not encodable ({enc})") from None
    return bytes(out)


def _int(v, what: str, path: Path, lo: int = 0, hi: int = MAX_ID) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise InputError(path, f"{what} is {v!r}, expected an integer {lo}..{hi}")
    return v


def _token_text(tok, where: str, path: Path) -> str:
    """A token string; YAML may type a bare token as a number or null (`1`, `~`)."""
    if isinstance(tok, str):
        return tok
    if tok is None:
        return ""
    if isinstance(tok, (int, float)) and not isinstance(tok, bool):
        text = str(tok) if isinstance(tok, float) or abs(tok) < 10**100 else None
        if text is not None:
            return text
    raise InputError(path, f"{where}: token is a {type(tok).__name__}, expected a string")


def _score(v, where: str, path: Path) -> float:
    if v is None:
        return 0.0
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, int) and abs(v) > 2**64) \
            or math.isnan(float(v)):
        raise InputError(path, f"{where}: score {str(v)[:40]!r} is not a number")
    return float(v)


@stepped("reading a TokenMonster YAML vocabulary")
def read_yaml(path: str | Path) -> Vocab:
    path = Path(path)
    check_file_size(path, MAX_TM_YAML_BYTES, "TokenMonster YAML")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(path, f"not UTF-8 text at byte {e.start}") from None
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror or e}") from None
    return parse_yaml(text, path)


def _yaml_problem(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    where = f" at line {mark.line + 1}" if mark is not None else ""
    return f"not valid YAML{where}: {getattr(e, 'problem', None) or type(e).__name__}"


def check_yaml_shape(text: str, path: Path) -> None:
    """One pass over the parser's events, before anything is built: aliases are refused (an
    alias bomb expands exponentially once walked; TokenMonster never writes anchors), and the
    node count and nesting depth are capped."""
    nodes = depth = 0
    try:
        for ev in yaml.parse(text, Loader=_loader()):
            if isinstance(ev, yaml.AliasEvent) or getattr(ev, "anchor", None) is not None:
                line = ev.start_mark.line + 1 if ev.start_mark is not None else "?"
                raise InputError(path, f"YAML anchor or alias at line {line}: refused in a vocabulary "
                                       f"(alias expansion is unbounded; TokenMonster never writes them)")
            if isinstance(ev, (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                nodes += 1
                if nodes > MAX_YAML_NODES:
                    raise over(path, "YAML node count", nodes, MAX_YAML_NODES, "nodes")
            if isinstance(ev, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise over(path, "YAML nesting depth", depth, MAX_YAML_DEPTH, "levels")
            elif isinstance(ev, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
    except yaml.YAMLError as e:
        raise InputError(path, _yaml_problem(e)) from None


def parse_yaml(text: str, path: Path | None = None) -> Vocab:
    path = path or Path("<yaml>")
    check_yaml_shape(text, path)
    try:
        doc = yaml.load(text, Loader=_loader())  # noqa: S506 (a safe loader)
    except yaml.YAMLError as e:
        raise InputError(path, _yaml_problem(e)) from None
    except (ValueError, OverflowError, TypeError, RecursionError) as e:  # e.g. a 5,000-digit int
        raise InputError(path, f"YAML value cannot be read: {' '.join(str(e).split())[:120]}") from None
    if not isinstance(doc, dict):
        raise InputError(path, "not a TokenMonster YAML vocabulary (top level is not a mapping)")
    if "charset" not in doc:
        raise InputError(path, "missing top-level key 'charset'")
    cs = doc["charset"]
    cs_key = "none" if cs is None else str(cs).strip().lower()
    if cs_key not in CHARSET_NAMES:
        raise InputError(path, f"unknown charset {cs!r} (expected none, utf-8 or utf-16)")
    charset = CHARSET_NAMES[cs_key]
    capcode = doc.get("capcode", None)
    if capcode is None:
        raise InputError(path, "missing top-level key 'capcode'")
    if isinstance(capcode, bool):
        capcode = int(capcode)
    capcode = _int(capcode, "capcode", path, 0, 2)
    try:
        norm = normalize.parse("none" if doc.get("normalization") is None else doc.get("normalization"))
    except (ValueError, TypeError, AttributeError) as e:
        raise InputError(path, str(e)) from None
    entries: list[Entry] = []
    for section, special in (("tokens", False), ("special", True)):
        items = doc.get(section) or []
        if not isinstance(items, list):
            raise InputError(path, f"'{section}' is not a list")
        for k, it in enumerate(items):
            where = f"{section}[{k}]"
            if not isinstance(it, dict) or "token" not in it or "id" not in it:
                raise InputError(path, f"{where}: expected a mapping with 'token' and 'id'")
            tok = _token_text(it["token"], where, path)
            tid = _int(it["id"], f"{where}: id", path)
            score = _score(it.get("score", 0.0), where, path)
            encoded = it.get("encoded", False)
            if not isinstance(encoded, bool):
                raise InputError(path, f"{where}: encoded is {encoded!r}, expected true or false")
            if not encoded and not special:
                tok = _encode_token(tok, capcode, norm)
            key = token_bytes(tok, charset, where, path)
            if not key:
                raise InputError(path, f"{where}: empty token")
            if len(key) > MAX_KEY:
                raise InputError(path, f"{where}: token is {len(key)} bytes, longer than {MAX_KEY}")
            entries.append(Entry(key, tid, float(score), special=special))
    if not entries:
        raise InputError(path, "no tokens")
    deleted = []
    dels = doc.get("delete") or []
    if not isinstance(dels, list):
        raise InputError(path, "'delete' is not a list")
    for k, it in enumerate(dels):
        if not isinstance(it, dict) or "token" not in it:
            raise InputError(path, f"delete[{k}]: expected a mapping with 'token'")
        where = f"delete[{k}]"
        key = token_bytes(_token_text(it["token"], where, path), charset, where, path)
        deleted.append(Entry(key, _int(it.get("id", 0), f"{where}: id", path), _score(it.get("score", 0.0), where, path)))
    vsize = max(e.id for e in entries) + 1
    unk = doc.get("unk-id")
    unk_id = None
    if unk is not None:
        unk_id = _int(unk, "unk-id", path, 0, vsize)
        vsize = max(vsize, unk_id + 1)
    elif doc.get("unk") is True:
        unk_id = vsize  # TokenMonster appends the UNK token after the last id
        vsize += 1
    if vsize > len(entries) + TM_MAX_IDS_WITHOUT_ENTRY:
        raise InputError(path, f"ids reach {vsize - 1:,} with only {len(entries):,} tokens (at most "
                               f"{TM_MAX_IDS_WITHOUT_ENTRY:,} ids without a token, audit/budgets.py)")
    known = {"charset", "normalization", "capcode", "training-param", "unk", "unk-id", "tokens",
             "special", "delete", "level", "reserve"}
    extra = {k: v for k, v in doc.items() if k not in ("tokens", "special", "delete")}
    unknown = sorted(str(k) for k in doc if k not in known)
    if unknown:
        extra["unknown_keys"] = unknown
    return Vocab(path=path, fmt="yaml", capcode=capcode, charset=charset, normalization=norm,
                 vocab_size=vsize, entries=entries, deleted=deleted, unk_id=unk_id, extra=extra)


def _encode_token(tok: str, capcode: int, norm: int) -> str:
    # TokenMonster skips tokens that already hold capcode markers (normalizeSafe).
    if capcode == 2 and any(m in tok for m in cc.MARKERS2):
        return tok
    if capcode == 1 and cc.DEL1 in tok:
        return tok
    tok = normalize.apply(tok, norm)
    if capcode == 2:
        return cc.encode2(tok)
    if capcode == 1:
        return cc.encode1(tok)
    return tok


def _escape_token(key: bytes, charset: int) -> str:
    """Bytes → a token string: valid text literally, invalid bytes as hex escapes."""
    if charset == 2:
        try:
            text = key.decode("utf-16-le")
            if HEX_OPEN not in text:
                return text
        except UnicodeDecodeError:
            pass
        return HEX_OPEN + key.hex() + "}"
    s = key.decode("utf-8", "surrogateescape")
    if HEX_OPEN in s:  # literal text that would read as an escape: write it all as hex
        return HEX_OPEN + key.hex() + "}"
    out: list[str] = []
    run: list[str] = []
    for ch in s:
        if "\udc80" <= ch <= "\udcff":  # an invalid byte (surrogateescape)
            run.append(f"{ord(ch) - 0xDC00:02x}")
            continue
        if run:
            out.append(HEX_OPEN + "".join(run) + "}")
            run = []
        out.append(ch)
    if run:
        out.append(HEX_OPEN + "".join(run) + "}")
    return "".join(out)


def _float(x: float) -> str:
    r = repr(float(x))
    if "e" in r and "." not in r:  # YAML 1.1 reads 1e-05 as a string; 1.0e-05 is a float
        r = r.replace("e", ".0e", 1)
    return r


def write_yaml(v: Vocab) -> str:
    """A YAML rendering of a vocabulary that `parse_yaml` reads back to the same id → bytes table."""
    cs = {0: "none", 1: "utf-8", 2: "utf-16"}[v.charset]
    head = {"charset": cs, "normalization": normalize.describe(v.normalization).replace(", ", " "),
            "capcode": v.capcode}
    if v.unk_id is not None:
        head["unk-id"] = v.unk_id
    lines = [yaml.safe_dump(head, sort_keys=False, allow_unicode=True).rstrip()]
    for section, special in (("tokens", False), ("special", True)):
        items = [e for e in v.entries if e.special == special]
        if not items:
            continue
        lines.append(f"{section}:")
        for e in items:
            lines.append("    - token:   " + _quote(_escape_token(e.key, v.charset)))
            lines.append(f"      id:      {e.id}")
            lines.append(f"      score:   {_float(e.score)}")
            lines.append("      encoded: true")
    return "\n".join(lines) + "\n"


def _quote(s: str) -> str:
    """A YAML double-quoted scalar (escapes for control characters, quotes and backslashes)."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif o < 0x20 or o == 0x7F or 0x80 <= o < 0xA0 or o in (0x2028, 0x2029, 0xFEFF) or 0xD800 <= o <= 0xDFFF:
            out.append(f"\\u{o:04x}" if o > 0xFF else f"\\x{o:02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
