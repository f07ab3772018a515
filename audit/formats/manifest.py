"""`data/manifest.json`: which tokenizers and datasets a data root holds, with paths resolved.

Paths in a manifest are relative to the data root (`tokenizers/x.model`); some bundles write
them relative to the manifest's own folder or as a bare file name, so several bases are tried.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from audit.errors import InputError


@dataclass
class TokenizerEntry:
    name: str
    kind: str
    vocab_size: int | None
    bos_id: int | None  # None when the bundle has no BOS (bos_id -1)
    path: Path | None
    meta_path: Path | None
    raw: dict = field(default_factory=dict, repr=False)


@dataclass
class DatasetEntry:
    name: str
    tokenizer_name: str
    val_glob: str | None
    train_glob: str | None
    vocab_size: int | None
    bos_id: int | None
    stats: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict, repr=False)


@dataclass
class Manifest:
    path: Path
    root: Path
    tokenizers: list[TokenizerEntry]
    datasets: list[DatasetEntry]
    docs_jsonl: Path | None
    num_val_docs: int | None

    def tokenizer(self, name: str) -> TokenizerEntry | None:
        return next((t for t in self.tokenizers if t.name == name), None)

    def dataset_for_meta(self, meta_path: str | Path) -> tuple[DatasetEntry, TokenizerEntry] | None:
        """The dataset whose tokenizer ships this meta (same file, else same file name)."""
        meta_path = Path(meta_path)
        hits = []
        for ds in self.datasets:
            tok = self.tokenizer(ds.tokenizer_name)
            if tok is None or tok.meta_path is None:
                continue
            if tok.meta_path.exists() and meta_path.exists() and tok.meta_path.samefile(meta_path):
                return ds, tok
            if tok.meta_path.name == meta_path.name:
                hits.append((ds, tok))
        return hits[0] if hits else None

    def reference_dataset(self, prefer: str = "sp1024") -> tuple[DatasetEntry, TokenizerEntry] | None:
        """The canonical SentencePiece dataset: named like `prefer`, else the first SentencePiece one."""
        pairs = [(ds, self.tokenizer(ds.tokenizer_name)) for ds in self.datasets]
        pairs = [(d, t) for d, t in pairs if t is not None and t.kind == "sentencepiece"]
        for d, t in pairs:
            if prefer in d.name or prefer in t.name:
                return d, t
        return pairs[0] if pairs else None


def _bos(v) -> int | None:
    if v is None:
        return None
    v = int(v)
    return None if v < 0 else v


def _resolve(root: Path, here: Path, rel: str | None) -> Path | None:
    if not rel:
        return None
    p = Path(rel)
    if p.is_absolute():
        return p
    for base in (root, here, root / "tokenizers"):
        if (base / p).exists():
            return base / p
    return root / p


def load_manifest(path: str | Path) -> Manifest:
    """Read `manifest.json` (a file, or a data root containing one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.json"
    if not path.exists():
        raise InputError(path, "no such file (a data root must contain manifest.json)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # ValueError: also a 5,000-digit int
        raise InputError(path, f"not valid JSON: {' '.join(str(e).split())[:120]}") from None
    if not isinstance(doc, dict):
        raise InputError(path, "manifest must be a JSON object")
    root, here = path.parent, path.parent
    toks, dss = [], []
    try:
        for t in doc.get("tokenizers") or []:
            toks.append(TokenizerEntry(
                name=str(t["name"]), kind=str(t.get("kind", "")),
                vocab_size=int(t["vocab_size"]) if t.get("vocab_size") is not None else None,
                bos_id=_bos(t.get("bos_id")),
                path=_resolve(root, here, t.get("path") or t.get("model_path")),
                meta_path=_resolve(root, here, t.get("meta_path")), raw=t))
        for d in doc.get("datasets") or []:
            dss.append(DatasetEntry(
                name=str(d["name"]), tokenizer_name=str(d.get("tokenizer_name", "")),
                val_glob=str(root / d["val_glob"]) if d.get("val_glob") else None,
                train_glob=str(root / d["train_glob"]) if d.get("train_glob") else None,
                vocab_size=int(d["vocab_size"]) if d.get("vocab_size") is not None else None,
                bos_id=_bos(d.get("bos_id")), stats=dict(d.get("stats") or {}), raw=d))
    except (KeyError, TypeError, ValueError, OverflowError) as e:  # OverflowError: bos_id 1e400
        raise InputError(path, f"malformed manifest entry: {type(e).__name__}: {e}") from None
    docs = doc.get("docs_jsonl")
    if docs is not None and not isinstance(docs, str):
        raise InputError(path, f"docs_jsonl is a {type(docs).__name__}, expected a path string")
    nv = doc.get("num_val_docs")
    return Manifest(path=path, root=root, tokenizers=toks, datasets=dss,
                    docs_jsonl=_resolve(root, here, docs) if docs else None,
                    num_val_docs=int(nv) if isinstance(nv, int) else None)
