"""Reference documents: `docs_selected.jsonl` (one JSON object with `text` per line) or a folder
of text files (one document per file, in name order). Returned as `DocBytes`."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audit.budgets import MAX_DOCS_LINE_BYTES, MAX_JSON_INT_DIGITS, over
from audit.errors import InputError, stepped


@dataclass
class DocBytes:
    """Documents as one byte buffer plus offsets: doc k is buf[offsets[k]:offsets[k+1]]."""

    buf: np.ndarray  # uint8
    offsets: np.ndarray  # int64, n_docs + 1

    @property
    def n_docs(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def total(self) -> int:
        return int(self.offsets[-1] - self.offsets[0])

    def doc(self, k: int) -> bytes:
        return self.buf[self.offsets[k]:self.offsets[k + 1]].tobytes()

    @classmethod
    def from_list(cls, docs: list[bytes]) -> "DocBytes":
        offsets = np.zeros(len(docs) + 1, dtype=np.int64)
        if docs:
            np.cumsum([len(d) for d in docs], out=offsets[1:])
        buf = np.frombuffer(b"".join(docs), dtype=np.uint8)
        return cls(buf, offsets)

    def replace(self, docs: dict[int, bytes]) -> "DocBytes":
        """A copy with the given documents' bytes replaced (one pass over the buffer)."""
        if not docs:
            return self
        keys = sorted(docs)
        lengths = self.lengths.copy()
        lengths[keys] = [len(docs[k]) for k in keys]
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        parts, at = [], int(self.offsets[0])
        for k in keys:
            parts += [self.buf[at:self.offsets[k]], np.frombuffer(docs[k], np.uint8)]
            at = int(self.offsets[k + 1])
        parts.append(self.buf[at:self.offsets[-1]])
        return DocBytes(np.concatenate(parts), offsets)

    def to_list(self) -> list[bytes]:
        raw = self.buf.tobytes()
        o = self.offsets.tolist()
        return [raw[o[k]:o[k + 1]] for k in range(len(o) - 1)]


class StreamDocs:
    """Documents of a token stream, decoded only when their bytes are asked for: the lengths are
    known from the decoder's sizing pass, `doc(k)` decodes one document, `buf`/`offsets`/
    `to_list()` decode the whole stream once (cached). `walk` is what the decoder needs to
    regenerate the bytes chunk by chunk beside another stream's (a byte table and its layout):
    comparing two streams that way writes neither in full (fresh memory is the costly part)."""

    def __init__(self, lengths: np.ndarray, decode_all, decode_one, walk=None):
        self._lengths = np.asarray(lengths, dtype=np.int64)
        self._decode_all, self._decode_one, self.walk = decode_all, decode_one, walk
        self._docs: DocBytes | None = None

    @property
    def n_docs(self) -> int:
        return len(self._lengths)

    @property
    def lengths(self) -> np.ndarray:
        return self._lengths

    @property
    def total(self) -> int:
        return int(self._lengths.sum())

    def doc(self, k: int) -> bytes:
        return self._docs.doc(k) if self._docs is not None else self._decode_one(k)

    def materialised(self) -> DocBytes:
        if self._docs is None:
            self._docs = self._decode_all()
        return self._docs

    @property
    def buf(self) -> np.ndarray:
        return self.materialised().buf

    @property
    def offsets(self) -> np.ndarray:
        return self.materialised().offsets

    def to_list(self) -> list[bytes]:
        return self.materialised().to_list()

    def replace(self, docs: dict[int, bytes]) -> DocBytes:
        return self.materialised().replace(docs)


def _json_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_JSON_INT_DIGITS:
        raise ValueError(f"integer literal of {len(digits):,} digits (limit {MAX_JSON_INT_DIGITS})")
    return int(digits)


def _doc_text(raw: bytes, lineno: int, path: Path) -> str:
    """The `text` of one docs line; every failure names the line."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(path, f"line {lineno}: not UTF-8 (byte {e.start} of the line)") from None
    try:
        obj = json.loads(line, parse_int=_json_int)
    except RecursionError:
        raise InputError(path, f"line {lineno}: JSON nested too deeply") from None
    except ValueError as e:
        raise InputError(path, f"line {lineno}: not valid JSON ({' '.join(str(e).split())[:100]})") from None
    if not isinstance(obj, dict) or "text" not in obj:
        raise InputError(path, f"line {lineno}: not a JSON object with a 'text' field")
    text = obj["text"]
    if not isinstance(text, str):
        raise InputError(path, f"line {lineno}: 'text' is {type(text).__name__}, expected a string")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate from a \ud800 escape
        raise InputError(path, f"line {lineno}: 'text' holds a lone surrogate (U+{ord(text[e.start]):04X} at "
                               f"character {e.start}), not encodable as UTF-8") from None
    return text


@stepped("reading docs.jsonl")
def read_docs_jsonl(path: str | Path, n: int | None = None) -> list[str]:
    """The `text` of the first n documents (all when n is None). Lines split on LF only (a CR is
    JSON whitespace); each line is capped at MAX_DOCS_LINE_BYTES before it is decoded."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    out: list[str] = []
    try:
        fh = open(path, "rb")
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror or e}") from None
    with fh:
        for lineno in itertools.count(1):
            if n is not None and len(out) >= n:
                break
            raw = fh.readline(MAX_DOCS_LINE_BYTES + 1)
            if not raw:
                break
            if len(raw) > MAX_DOCS_LINE_BYTES:
                raise over(path, f"line {lineno} length", len(raw), MAX_DOCS_LINE_BYTES, "bytes")
            if raw.strip():
                out.append(_doc_text(raw, lineno, path))
    if n is not None and len(out) < n:
        raise InputError(path, f"holds {len(out):,} documents, fewer than the {n:,} needed")
    return out


def write_docs_jsonl(path: str | Path, texts: list[str]) -> None:
    from audit.atomic import write_text_atomic

    write_text_atomic(path, "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts))


@stepped("reading a folder of text files")
def read_text_dir(path: str | Path) -> list[bytes]:
    """Every regular file of a folder (not recursive, hidden files skipped), sorted by name, as raw bytes."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(path, "not a folder of text files")
    try:
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise InputError(path, "folder holds no text files")
        return [p.read_bytes() for p in files]
    except OSError as e:
        raise InputError(e.filename or path, f"cannot read: {e.strerror or e}") from None


def texts_to_docbytes(texts: list[str]) -> DocBytes:
    try:
        return DocBytes.from_list([t.encode("utf-8") for t in texts])
    except UnicodeEncodeError as e:  # lone surrogates from JSON \ud800 escapes
        raise InputError(None, f"document text is not encodable as UTF-8: {e}") from None
