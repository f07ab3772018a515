"""Resolve what an audit needs from paths and a data root: meta, tokenizer, val stream, BOS,
sidecars and the byte reference (sp1024 stream, docs_selected.jsonl, or a folder of texts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audit.chunked import split_documents
from audit.errors import InputError
from audit.formats.docs import DocBytes, read_docs_jsonl, read_text_dir, texts_to_docbytes
from audit.formats.manifest import Manifest, load_manifest
from audit.formats.shards import check_ids, read_shard, resolve_glob
from audit.formats.sidecar import find_sidecars, is_sidecar, read_sidecars
from audit.tokenizers import load_tokenizer
from audit.tokenizers.base import Tokenizer

AUTO = "auto"


@dataclass
class Resolved:
    manifest: Manifest | None = None
    dataset_name: str | None = None
    tokenizer: Tokenizer | None = None
    val_files: list[Path] = field(default_factory=list)
    tokens: np.ndarray | None = None
    bos_id: int | None = None
    sidecar: np.ndarray | None = None
    sidecar_files: list[Path] | None = None
    notes: list[str] = field(default_factory=list)


def val_files(pattern: str | Path) -> list[Path]:
    files = [f for f in resolve_glob(pattern) if not is_sidecar(f)]
    if not files:
        raise InputError(pattern, "empty val set: only byte sidecars match")
    return files


def read_val(pattern: str | Path) -> tuple[list[Path], np.ndarray]:
    files = val_files(pattern)
    parts = [read_shard(f) for f in files]
    tokens = parts[0] if len(parts) == 1 else np.concatenate(parts)
    if tokens.size == 0:
        raise InputError(pattern, "empty val set: the shards hold no tokens")
    return files, tokens


def as_tokenizer(t) -> Tokenizer | None:
    if t is None or isinstance(t, Tokenizer):
        return t
    return load_tokenizer(t)


def resolve(meta_path: Path, meta_len: int, *, tokenizer, val, data_root, bos_id) -> Resolved:
    r = Resolved()
    tok_path = tokenizer
    if data_root is not None:
        r.manifest = load_manifest(data_root)
        hit = r.manifest.dataset_for_meta(meta_path)
        if hit is None:
            raise InputError(r.manifest.path, f"no dataset's tokenizer ships the meta {meta_path.name}")
        ds, te = hit
        r.dataset_name = ds.name
        if tok_path is None:
            tok_path = te.path
        if val is None:
            val = ds.val_glob
        if bos_id == AUTO:
            bos_id = ds.bos_id if "bos_id" in ds.raw else te.bos_id
            r.notes.append(f"BOS {bos_id if bos_id is not None else 'none'} from manifest dataset {ds.name}")
    r.tokenizer = as_tokenizer(tok_path)
    if bos_id == AUTO:
        bos_id = r.tokenizer.special.bos if r.tokenizer is not None else None
    r.bos_id = None if bos_id is None or int(bos_id) < 0 else int(bos_id)
    if val is not None:
        r.val_files, r.tokens = read_val(val)
        where = r.val_files[0] if len(r.val_files) == 1 else val
        check_ids(r.tokens, meta_len, where)  # the evaluator indexes the meta by id
        r.sidecar_files = find_sidecars(r.val_files)
        if r.sidecar_files:
            r.sidecar = read_sidecars(r.sidecar_files)
    return r


def decode_reference_stream(val_glob, tokenizer, bos_id=AUTO) -> DocBytes:
    """A SentencePiece-style reference stream decoded per document (BOS-delimited)."""
    files, tokens = read_val(val_glob)
    tok = as_tokenizer(tokenizer)
    check_ids(tokens, tok.vocab_size, files[0] if len(files) == 1 else val_glob)
    bos = tok.special.bos if bos_id == AUTO else bos_id
    if bos is None:
        raise InputError(val_glob, "the reference stream needs a BOS id to be split into documents")
    starts, ends = split_documents(tokens, bos)
    if starts.size == 0:
        raise InputError(val_glob, f"the reference stream has no BOS (id {bos})")
    if hasattr(tok, "decode_stream"):
        return tok.decode_stream(tokens, starts + 1, ends)
    return DocBytes.from_list(tok.decode_many(tokens, starts + 1, ends))


@dataclass
class Source:
    docs: DocBytes
    label: str
    kind: str  # "sp1024" | "docs" | "dir"
    raw_texts: list[str] | None = None  # for reconciliation (docs kind)


def _reference_stream_paths(manifest, source_val, source_tokenizer):
    if source_val is not None and source_tokenizer is not None:
        return source_val, source_tokenizer, AUTO, str(source_val)
    if manifest is not None:
        hit = manifest.reference_dataset("sp1024")
        if hit is not None and hit[0].val_glob and hit[1].path:
            ds, te = hit
            return ds.val_glob, te.path, (ds.bos_id if "bos_id" in ds.raw else AUTO), f"dataset {ds.name}"
    return None


def load_source(source, *, manifest, n_docs, source_val=None, source_tokenizer=None,
                docs_jsonl=None) -> Source | None:
    if source is None:
        return None
    s = str(source)
    if s == "sp1024":
        paths = _reference_stream_paths(manifest, source_val, source_tokenizer)
        if paths is None:
            raise InputError(None, "--source sp1024 needs --source-val and --source-tokenizer, or a "
                                   "--data-root whose manifest has a SentencePiece dataset")
        sv, st, bos, label = paths
        return Source(decode_reference_stream(sv, st, bos), f"sp1024 reference stream ({label}) decoded per document", "sp1024")
    if s == "docs":
        path = docs_jsonl or (manifest.docs_jsonl if manifest is not None else None)
        if path is None:
            raise InputError(None, "--source docs needs --docs FILE or a --data-root whose manifest names docs_jsonl")
        n = n_docs or (manifest.num_val_docs if manifest is not None else None)
        texts = read_docs_jsonl(path, n)
        return Source(texts_to_docbytes(texts), f"raw documents of {Path(path).name} (first {len(texts):,})", "docs", texts)
    p = Path(s)
    if p.is_dir():
        return Source(DocBytes.from_list(read_text_dir(p)), f"text files in {p}", "dir")
    if p.is_file() and p.suffix in (".jsonl", ".json"):
        texts = read_docs_jsonl(p, n_docs)
        return Source(texts_to_docbytes(texts), f"raw documents of {p.name} (first {len(texts):,})", "docs", texts)
    raise InputError(p, "unknown --source: expected sp1024, docs, a folder of text files or a .jsonl")


def reconciliation_pair(src: Source, *, manifest, n_docs, source_val=None, source_tokenizer=None,
                        docs_jsonl=None):
    """(raw texts, sp1024 docs as bytes) when both references can be had, else None."""
    try:
        if src.kind == "docs":
            paths = _reference_stream_paths(manifest, source_val, source_tokenizer)
            if paths is None:
                return None
            ref = decode_reference_stream(paths[0], paths[1], paths[2])
            return src.raw_texts, ref.to_list()
        if src.kind == "sp1024":
            path = docs_jsonl or (manifest.docs_jsonl if manifest is not None else None)
            if path is None or not Path(path).is_file():
                return None
            return read_docs_jsonl(path, src.docs.n_docs), src.docs.to_list()
    except InputError:
        return None
    return None
