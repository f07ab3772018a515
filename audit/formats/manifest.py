"""`data/manifest.json`: which tokenizers and datasets a data root holds, with paths resolved.

The challenge's data pipeline (`data/download_hf_docs_and_tokenize.py`, checked against it)
writes tokenizer kinds `sentencepiece_bpe` and `byte` (accepting `sentencepiece` and `pure_byte`
on input), SentencePiece files as `model_path`/`vocab_path`, the others as `path`, and every
path relative to the manifest's folder (the data root). Record folders ship the manifest of
their data root with the files beside it (`tokenizers/candidate.vocab` named, `candidate.vocab`
present): a path that does not exist falls back to the file of that name beside the manifest,
and a note says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from audit.errors import InputError
from audit.tokenizers import backend_for_kind, tokenizer_stem


@dataclass
class TokenizerEntry:
    name: str
    kind: str  # the backend kind (sentencepiece | tokenmonster | purebyte), or the manifest's own if unknown
    vocab_size: int | None
    bos_id: int | None  # None when the bundle has no BOS (bos_id -1)
    path: Path | None
    meta_path: Path | None
    manifest_kind: str = ""  # as written (sentencepiece_bpe, byte, …)
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def supported(self) -> bool:
        return backend_for_kind(self.kind) is not None


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
    notes: list[str] = field(default_factory=list)  # path fallbacks taken while reading

    def tokenizer(self, name: str) -> TokenizerEntry | None:
        return next((t for t in self.tokenizers if t.name == name), None)

    def tokenizer_for_meta(self, meta_path: str | Path) -> TokenizerEntry | None:
        """The tokenizer entry whose meta_path is this file (same file, else same name); for
        entries without meta_path (the official SentencePiece ones) the artifact of the same stem
        (`fineweb_1024_bpe.meta.npz` ↔ `fineweb_1024_bpe.model`)."""
        meta_path = Path(meta_path)
        named = [t for t in self.tokenizers if t.meta_path is not None]
        for t in named:
            if t.meta_path.exists() and meta_path.exists() and t.meta_path.samefile(meta_path):
                return t
        for t in named:
            if t.meta_path.name == meta_path.name:
                return t
        stem = tokenizer_stem(meta_path.name)
        return next((t for t in self.tokenizers if t.meta_path is None and t.path is not None
                     and tokenizer_stem(t.path.name) == stem), None)

    def dataset_for_meta(self, meta_path: str | Path) -> tuple[DatasetEntry | None, TokenizerEntry] | None:
        """(the dataset tokenised by the meta's tokenizer, or None when the manifest lists none,
        the tokenizer entry) — None when no tokenizer entry ships this meta."""
        te = self.tokenizer_for_meta(meta_path)
        if te is None:
            return None
        ds = next((d for d in self.datasets if d.tokenizer_name == te.name), None)
        return ds, te

    def reference_dataset(self, prefer: str = "sp1024") -> tuple[DatasetEntry, TokenizerEntry] | None:
        """The canonical SentencePiece dataset: named like `prefer`, else the first SentencePiece one."""
        pairs = [(ds, self.tokenizer(ds.tokenizer_name)) for ds in self.datasets]
        pairs = [(d, t) for d, t in pairs if t is not None and t.kind == "sentencepiece"]
        for d, t in pairs:
            if prefer in d.name or prefer in t.name:
                return d, t
        return pairs[0] if pairs else None

    def has_val(self, ds: DatasetEntry | None) -> bool:
        """Whether the dataset's val glob matches a file on disk."""
        if ds is None or not ds.val_glob:
            return False
        p = Path(ds.val_glob)
        return any(p.parent.glob(p.name)) if p.parent.is_dir() else False


def _bos(v) -> int | None:
    if v is None:
        return None
    v = int(v)
    return None if v < 0 else v


def _resolve(here: Path, rel: str | None, notes: list[str], what: str) -> Path | None:
    """A manifest path: relative to the manifest's folder; when that file is missing, the file of
    the same name beside the manifest (record folders ship the files flat), said in a note."""
    if not rel:
        return None
    p = Path(rel)
    if p.is_absolute():
        return p
    if (here / p).exists() or len(p.parts) == 1:
        return here / p
    beside = here / p.name
    if beside.exists():
        notes.append(f"{what} {rel} is not at {here / p}; using {p.name} beside the manifest")
        return beside
    return here / p


def _kind(t: dict) -> tuple[str, str]:
    written = str(t.get("kind", ""))
    backend = backend_for_kind(written)
    return (backend.kind if backend else written), written


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
    here = path.parent
    notes: list[str] = []
    toks, dss = [], []
    try:
        for t in doc.get("tokenizers") or []:
            kind, written = _kind(t)
            toks.append(TokenizerEntry(
                name=str(t["name"]), kind=kind, manifest_kind=written,
                vocab_size=int(t["vocab_size"]) if t.get("vocab_size") is not None else None,
                bos_id=_bos(t.get("bos_id")),
                path=_resolve(here, t.get("model_path") or t.get("path"), notes, f"tokenizer {t['name']}:"),
                meta_path=_resolve(here, t.get("meta_path"), notes, f"tokenizer {t['name']} meta:"), raw=t))
        for d in doc.get("datasets") or []:
            dss.append(DatasetEntry(
                name=str(d["name"]), tokenizer_name=str(d.get("tokenizer_name", "")),
                val_glob=str(here / d["val_glob"]) if d.get("val_glob") else None,
                train_glob=str(here / d["train_glob"]) if d.get("train_glob") else None,
                vocab_size=int(d["vocab_size"]) if d.get("vocab_size") is not None else None,
                bos_id=_bos(d.get("bos_id")), stats=dict(d.get("stats") or {}), raw=d))
    except (KeyError, TypeError, ValueError, OverflowError) as e:  # OverflowError: bos_id 1e400
        raise InputError(path, f"malformed manifest entry: {type(e).__name__}: {e}") from None
    docs = doc.get("docs_jsonl")
    if docs is not None and not isinstance(docs, str):
        raise InputError(path, f"docs_jsonl is a {type(docs).__name__}, expected a path string")
    nv = doc.get("num_val_docs")
    return Manifest(path=path, root=here, tokenizers=toks, datasets=dss,
                    docs_jsonl=_resolve(here, docs, notes, "docs_jsonl") if isinstance(docs, str) and docs else None,
                    num_val_docs=int(nv) if isinstance(nv, int) else None, notes=notes)


def find_manifest_for_meta(meta_path: Path) -> Manifest | None:
    """A manifest that ships this meta, beside it or one folder up (`data/tokenizers/x.meta.npz`
    → `data/manifest.json`); unreadable manifests are skipped (they are not the user's input)."""
    for folder in (meta_path.parent, meta_path.parent.parent):
        m = folder / "manifest.json"
        if not m.is_file():
            continue
        try:
            man = load_manifest(m)
        except InputError:
            continue
        if man.tokenizer_for_meta(meta_path) is not None:
            return man
    return None
