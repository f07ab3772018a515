"""Reference documents: `docs_selected.jsonl` (one JSON object with `text` per line) or a folder
of text files (one document per file, in name order). Returned as `DocBytes`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audit.errors import InputError


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


def read_docs_jsonl(path: str | Path, n: int | None = None) -> list[str]:
    """The `text` of the first n documents (all when n is None)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    out: list[str] = []
    with open(path, "r", encoding="utf-8", newline="") as fh:  # newline="": keep \r inside lines
        for lineno, line in enumerate(fh, 1):
            if n is not None and len(out) >= n:
                break
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                text = obj["text"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise InputError(path, f"line {lineno}: not a JSON object with a 'text' field ({type(e).__name__})") from None
            if not isinstance(text, str):
                raise InputError(path, f"line {lineno}: 'text' is {type(text).__name__}, expected a string")
            out.append(text)
    if n is not None and len(out) < n:
        raise InputError(path, f"holds {len(out):,} documents, fewer than the {n:,} needed")
    return out


def write_docs_jsonl(path: str | Path, texts: list[str]) -> None:
    from audit.atomic import write_text_atomic

    write_text_atomic(path, "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts))


def read_text_dir(path: str | Path) -> list[bytes]:
    """Every regular file of a folder (not recursive, hidden files skipped), sorted by name, as raw bytes."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(path, "not a folder of text files")
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise InputError(path, "folder holds no text files")
    return [p.read_bytes() for p in files]


def texts_to_docbytes(texts: list[str]) -> DocBytes:
    try:
        return DocBytes.from_list([t.encode("utf-8") for t in texts])
    except UnicodeEncodeError as e:  # lone surrogates from JSON \ud800 escapes
        raise InputError(None, f"document text is not encodable as UTF-8: {e}") from None
