"""Tokenizer backends behind one interface (`audit.tokenizers.base.Tokenizer`).

`BACKENDS` is the one table of what the project can read: for each backend its internal kind,
the kind strings a challenge manifest uses for it, the file suffixes that name it, and its
loader. `load_tokenizer(path)` picks the backend from the file (`.model` → SentencePiece,
`.vocab`/`.yaml` → TokenMonster, `purebyte` or the pure-byte tokenizer's `.json` → pure byte);
record folders (`audit.submission`) and the tokenizer audit classify files with the same table
(`is_tokenizer_file`, `tokenizer_stem`, `backend_for_kind`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Callable

from audit.errors import InputError, stepped
from audit.tokenizers.base import Tokenizer


@dataclass(frozen=True)
class Backend:
    kind: str  # the kind `Tokenizer.kind` reports
    manifest_kinds: tuple[str, ...]  # what a manifest's `kind` may say (official first, then aliases)
    suffixes: tuple[str, ...]  # file names ending so are this backend's artifacts
    load: Callable[[Path], Tokenizer]


def _load_sentencepiece(p: Path) -> Tokenizer:
    from audit.tokenizers.sentencepiece_model import SentencePieceTokenizer

    return SentencePieceTokenizer.load(p)


def _load_tokenmonster(p: Path) -> Tokenizer:
    # A SentencePiece `.vocab` is a text listing next to its `.model`; TokenMonster's is binary.
    if p.suffix.lower() == ".vocab" and p.with_suffix(".model").exists():
        return _load_sentencepiece(p.with_suffix(".model"))
    from audit.tokenizers.tokenmonster import load_vocab

    return load_vocab(p)


# The pure-byte tokenizer's JSON as the challenge's data pipeline writes it
# (data/download_hf_docs_and_tokenize.py: PureByteTokenizer.save_json).
_PURE_BYTE_CONFIG = {"pad_id": 0, "bos_id": 1, "eos_id": 2, "unk_id": 3, "byte_offset": 4, "byte_count": 256}


def _load_purebyte(p: Path) -> Tokenizer:
    from audit.tokenizers.purebyte import PureByteTokenizer

    if str(p).startswith("purebyte"):
        return PureByteTokenizer()
    try:
        doc = json.loads(p.read_text(encoding="utf-8")) if p.stat().st_size < 1_000_000 else None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(p, f"not a pure-byte tokenizer JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("tokenizer_type") != "pure_byte":
        raise InputError(p, "not a pure-byte tokenizer JSON (tokenizer_type must be \"pure_byte\")")
    cfg = doc.get("config") or {}
    odd = {k: cfg.get(k) for k, v in _PURE_BYTE_CONFIG.items() if cfg.get(k, v) != v}
    if odd:
        raise InputError(p, f"pure-byte tokenizer with a non-standard layout {odd}: only ids "
                            f"0..3 specials + 256 bytes from id 4 are supported")
    return PureByteTokenizer()


BACKENDS: tuple[Backend, ...] = (
    Backend("sentencepiece", ("sentencepiece_bpe", "sentencepiece", "sp"), (".model",), _load_sentencepiece),
    Backend("tokenmonster", ("tokenmonster",), (".vocab", ".yaml", ".yml"), _load_tokenmonster),
    Backend("purebyte", ("byte", "pure_byte", "purebyte"), (".json",), _load_purebyte),
)

# Suffixes that mark a file as a tokenizer artifact in a record folder. `.json` is left out:
# any JSON (submission.json, manifest.json) would match; a pure-byte JSON is found by name.
TOKENIZER_SUFFIXES: tuple[str, ...] = tuple(s for b in BACKENDS for s in b.suffixes if s != ".json")


def backend_for_kind(kind: str | None) -> Backend | None:
    """The backend a manifest `kind` string (official or alias, any case) stands for."""
    k = (kind or "").strip().lower()
    return next((b for b in BACKENDS if k in b.manifest_kinds or k == b.kind), None)


def backend_for_path(path: str | Path) -> Backend | None:
    spec = str(path)
    if spec.startswith("purebyte"):
        return BACKENDS[2]
    name = Path(spec).name.lower()
    if name.endswith(".json"):
        return BACKENDS[2] if "byte" in name else None
    return next((b for b in BACKENDS if name.endswith(b.suffixes)), None)


def is_tokenizer_file(path: str | Path) -> bool:
    """Whether a file name marks a tokenizer artifact (`x.model`, `x.vocab`, `x.yaml`, `*byte*.json`)."""
    return backend_for_path(Path(path).name) is not None and not str(path).startswith("purebyte")


def tokenizer_stem(path: str) -> str:
    """A tokenizer or meta file name without its suffix: `tokenizers/x.meta.npz` → `x` (POSIX or Windows path)."""
    name = PureWindowsPath(path).name if "\\" in path else PurePosixPath(path).name
    for suf in (".meta.npz", ".npz", *(s for b in BACKENDS for s in b.suffixes)):
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return name


@stepped("loading a tokenizer")  # an unexpected failure still names the file and the step
def load_tokenizer(path: str | Path, kind: str | None = None) -> Tokenizer:
    """Load a tokenizer file; `kind` (a manifest's kind string) picks the backend when given."""
    spec = str(path)
    if spec.startswith("purebyte"):
        return _load_purebyte(Path(spec))
    p = Path(path)
    if not p.exists():
        raise InputError(p, "no such file")
    backend = backend_for_kind(kind) or backend_for_path(p)
    if backend is None:
        raise InputError(p, f"unknown tokenizer type {p.suffix or '(no suffix)'}: expected "
                            f"{', '.join(s for b in BACKENDS for s in b.suffixes)}")
    return backend.load(p)
