"""Resolve what an audit needs from paths and a data root: meta, tokenizer, val stream, BOS,
sidecars and the byte reference (sp1024 stream, docs_selected.jsonl, or a folder of texts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audit import chunked
from audit.chunked import split_documents
from audit.errors import InputError
from audit.formats.docs import DocBytes, StreamDocs, read_docs_jsonl, read_text_dir, texts_to_docbytes
from audit.formats.manifest import Manifest, find_manifest_for_meta, load_manifest
from audit.formats.shards import check_ids, read_shard, resolve_glob
from audit.formats.sidecar import find_sidecars, is_sidecar, read_sidecars
from audit.tokenizer_audit.options import AUTO
from audit.tokenizers import is_tokenizer_file, load_tokenizer, tokenizer_stem
from audit.tokenizers.base import Tokenizer

# A tokenizer beside the meta "fits" when the meta has exactly its ids, one more (a synthetic BOS
# row, as scylla-1254's meta over its YAML), or its ids padded to a multiple of PAD_MULTIPLE.
PAD_MULTIPLE = 64
MAX_BESIDE = 8  # tokenizer files tried beside a meta


@dataclass
class Resolved:
    manifest: Manifest | None = None  # the --data-root manifest (val, BOS, default source)
    dataset_name: str | None = None
    tokenizer: Tokenizer | None = None
    tokenizer_origin: str = ""  # how the tokenizer was found
    missing_tokenizer: str = ""  # without a tokenizer: what to pass (for the finding)
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


def as_tokenizer(t, kind: str | None = None) -> Tokenizer | None:
    if t is None or isinstance(t, Tokenizer):
        return t
    return load_tokenizer(t, kind)


def _fits(tok: Tokenizer, meta_len: int) -> bool:
    v = tok.vocab_size
    return meta_len in (v, v + 1) or (meta_len > v and meta_len % PAD_MULTIPLE == 0
                                      and meta_len - v < PAD_MULTIPLE)


def tokenizer_beside(meta_path: Path, meta_len: int) -> tuple[Tokenizer | None, list[Path], list[Path]]:
    """(the one tokenizer file beside the meta whose id count fits, or None; the tokenizer files
    there; those that fit)."""
    try:
        files = sorted(p for p in meta_path.parent.iterdir() if p.is_file() and is_tokenizer_file(p))
    except OSError:
        return None, [], []
    # a SentencePiece `.vocab` listing belongs to its `.model`
    files = [p for p in files if not (p.suffix.lower() == ".vocab" and p.with_suffix(".model").exists())]
    fit: list[tuple[Path, Tokenizer]] = []
    for p in files[:MAX_BESIDE]:
        try:
            t = load_tokenizer(p)
        except InputError:
            continue
        if _fits(t, meta_len):
            fit.append((p, t))
    return (fit[0][1] if len(fit) == 1 else None), files, [p for p, _ in fit]


def _manifest_hit(meta_path: Path, opts):
    """(manifest, dataset or None, tokenizer entry) from --data-root or a manifest beside META."""
    if opts.data_root is not None:
        man = load_manifest(opts.data_root)
        hit = man.dataset_for_meta(meta_path)
        if hit is None:
            raise InputError(man.path, f"no tokenizer entry ships the meta {meta_path.name} (by meta_path, "
                                       f"or an artifact named {tokenizer_stem(meta_path.name)}.*)")
        return man, hit[0], hit[1]
    if opts.tokenizer is not None or not opts.discover:
        return None, None, None
    man = find_manifest_for_meta(meta_path)
    if man is None:
        return None, None, None
    ds, te = man.dataset_for_meta(meta_path)
    return man, ds, te


def _tokenizer_from_manifest(r: Resolved, man, te, strict_paths: bool) -> Tokenizer | None:
    where = "--data-root manifest" if strict_paths else "the manifest beside the meta"
    if not te.supported:
        if strict_paths:
            raise InputError(man.path, f"tokenizer {te.name}: kind {te.manifest_kind!r} is not supported "
                                       f"(sentencepiece_bpe, byte, tokenmonster and their aliases are)")
        return None
    if te.path is None or not te.path.exists():
        if strict_paths:
            raise InputError(te.path or man.path, f"tokenizer {te.name} named by {man.path} is missing")
        return None
    tok = load_tokenizer(te.path, te.kind)
    r.tokenizer_origin = f"{te.path.name}, named by {where} ({man.path}) for this meta"
    return tok


def resolve(meta_path: Path, meta_len: int, opts) -> Resolved:
    """Meta → tokenizer, val stream, BOS. The tokenizer is `opts.tokenizer`, else the one a manifest
    (--data-root, or beside the meta / one folder up) names for this meta, else the single
    tokenizer file beside the meta whose id count fits; else none, and `missing_tokenizer` says
    what to pass."""
    r = Resolved()
    val, bos_id = opts.val, opts.bos_id
    man, ds, te = _manifest_hit(meta_path, opts)
    if opts.data_root is not None:
        r.manifest = man
    if te is not None:
        r.notes += man.notes
        r.dataset_name = ds.name if ds is not None else None
        if opts.tokenizer is None:
            r.tokenizer = _tokenizer_from_manifest(r, man, te, opts.data_root is not None)
        if val is None and opts.data_root is not None:
            if man.has_val(ds):
                val = ds.val_glob
            else:
                r.notes.append(f"the manifest lists no val shards on disk for this meta "
                               f"({ds.val_glob if ds else 'no dataset'}): static checks only")
        if bos_id == AUTO and (opts.data_root is not None or opts.tokenizer is None):
            bos_id = ds.bos_id if ds is not None and "bos_id" in ds.raw else te.bos_id
            r.notes.append(f"BOS {bos_id if bos_id is not None else 'none'} from {man.path}"
                           + (f" (dataset {ds.name})" if ds is not None else ""))
    if opts.tokenizer is not None:
        r.tokenizer = as_tokenizer(opts.tokenizer)
        r.tokenizer_origin = "given"
    elif r.tokenizer is None and not opts.discover:
        r.missing_tokenizer = ("no tokenizer inside the record folder pairs with this meta (files outside it, "
                               "links included, are not opened): ship the tokenizer beside the meta")
    elif r.tokenizer is None:
        _find_beside(r, meta_path, meta_len)
    if bos_id == AUTO:
        bos_id = r.tokenizer.special.bos if r.tokenizer is not None else None
    r.bos_id = None if bos_id is None or int(bos_id) < 0 else int(bos_id)
    if val is not None:
        r.val_files, r.tokens = read_val(val)
        where = r.val_files[0] if len(r.val_files) == 1 else val
        # the evaluator indexes the meta by id; the maximum is remembered for the later passes
        check_ids(r.tokens, meta_len, where, chunked.maximum(r.tokens) if r.tokens.size else None)
        r.sidecar_files = find_sidecars(r.val_files)
        if r.sidecar_files:
            r.sidecar = read_sidecars(r.sidecar_files)
    return r


def _find_beside(r: Resolved, meta_path: Path, meta_len: int) -> None:
    tok, files, fit = tokenizer_beside(meta_path, meta_len)
    if tok is not None:
        r.tokenizer = tok
        r.tokenizer_origin = (f"{fit[0].name}, the only tokenizer file beside the meta whose id count "
                              f"({tok.vocab_size}) fits its {meta_len} ids")
        return
    if len(fit) > 1:
        why = f"several tokenizer files beside it fit its {meta_len} ids ({', '.join(p.name for p in fit)})"
    elif files:
        why = (f"no tokenizer file beside it fits its {meta_len} ids "
               f"({', '.join(p.name for p in files[:MAX_BESIDE])})")
    else:
        why = "no tokenizer file lies beside it and no manifest names it"
    r.missing_tokenizer = (f"{why}: pass --tokenizer FILE (.model, .vocab, .yaml or purebyte), or "
                           f"--data-root DIR whose manifest.json names {meta_path.name}")


def decode_reference_stream(val_glob, tokenizer, bos_id=AUTO) -> DocBytes | StreamDocs:
    """A SentencePiece-style reference stream's documents (BOS-delimited): decoded per document,
    or a StreamDocs whose bytes are made when asked for (see Tokenizer.reference_stream)."""
    files, tokens = read_val(val_glob)
    tok = as_tokenizer(tokenizer)
    check_ids(tokens, tok.vocab_size, files[0] if len(files) == 1 else val_glob,
              chunked.maximum(tokens) if tokens.size else None)
    bos = tok.special.bos if bos_id == AUTO else bos_id
    if bos is None:
        raise InputError(val_glob, "the reference stream needs a BOS id to be split into documents")
    starts, ends = split_documents(tokens, bos)
    if starts.size == 0:
        raise InputError(val_glob, f"the reference stream has no BOS (id {bos})")
    return tok.reference_stream(tokens, starts + 1, ends)


@dataclass
class Source:
    docs: DocBytes | StreamDocs
    label: str
    kind: str  # "sp1024" | "docs" | "dir"
    raw_texts: list[str] | None = None  # for reconciliation (docs kind)


def _reference_stream_paths(manifest, source_val, source_tokenizer):
    if source_val is not None and source_tokenizer is not None:
        return source_val, source_tokenizer, AUTO, str(source_val)
    if manifest is not None:
        hit = manifest.reference_dataset("sp1024")
        if hit is not None and manifest.has_val(hit[0]) and hit[1].path is not None and hit[1].path.exists():
            ds, te = hit
            return ds.val_glob, te.path, (ds.bos_id if "bos_id" in ds.raw else AUTO), f"dataset {ds.name}"
    return None


def default_source(manifest: Manifest | None) -> tuple[str | None, str]:
    """The byte reference a data root gives by itself: the canonical sp1024 val stream when the
    manifest has it on disk, else the raw documents; (None, why) when neither is there."""
    if manifest is None:
        return None, ""
    if _reference_stream_paths(manifest, None, None) is not None:
        ds = manifest.reference_dataset("sp1024")[0]
        return "sp1024", f"source: the canonical SentencePiece val stream (dataset {ds.name}), the default of a data root"
    if manifest.docs_jsonl is not None and manifest.docs_jsonl.is_file():
        return "docs", (f"source: the raw documents {manifest.docs_jsonl.name} (the data root has no "
                        f"SentencePiece dataset on disk)")
    return None, "no source: the data root has neither a SentencePiece val stream nor docs_jsonl on disk"


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
