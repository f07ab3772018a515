"""One pass over a candidate val stream: meta, decoded, source and sidecar bytes, per document
and in total, over the positions each evaluator scores; per-id drift attribution."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from audit.accounting.compare import DocComparison
from audit.accounting.metabytes import IdDrift, attribute_drift, meta_sums, span_sums
from audit.accounting.positions import Scoring
from audit.chunked import split_documents
from audit.formats.docs import DocBytes
from audit.formats.meta import MetaTable


@dataclass
class SidecarFigures:
    n_values: int
    length_matches: bool
    full: int = 0  # sum over targets 1..N-1
    plain: int | None = None
    bos_nonzero: int = 0  # BOS positions with a nonzero byte cost
    per_doc: np.ndarray | None = None
    docs_vs_source_bad: int | None = None
    first_bad_docs: list = field(default_factory=list)


@dataclass
class Accounting:
    scoring: Scoring
    bos_id: int | None
    has_docs: bool  # False: no BOS, the stream is one unit, no per-document comparison
    n_docs: int
    prefix_tokens: int  # tokens before the first BOS (not part of any document)
    meta_full: int
    meta_plain: int | None
    meta_per_doc: np.ndarray
    meta_docs_total: int
    occurrences: np.ndarray | None = None  # per id, as a scored target
    decoded_lengths: np.ndarray | None = None  # per document
    decoded_total: int | None = None
    canonical_docs_total: int | None = None  # the tokenizer's canonical meta over the documents
    drift: IdDrift | None = None  # meta vs canonical, by id
    source: DocBytes | None = None
    source_label: str = ""
    source_total: int | None = None
    decoded_vs_source: DocComparison | None = None
    meta_vs_decoded_bad: int | None = None  # documents whose meta bytes ≠ decoded bytes
    meta_vs_source_bad: int | None = None
    meta_vs_source_first: list = field(default_factory=list)
    doc_count_mismatch: tuple[int, int] | None = None  # (candidate docs, source docs)
    sidecar: SidecarFigures | None = None
    timings: dict = field(default_factory=dict)

    @property
    def true_total(self) -> int | None:
        """The byte count the meta should equal: source when given, else decoded."""
        return self.source_total if self.source_total is not None else self.decoded_total


def _doc_spans(tokens: np.ndarray, bos_id: int | None):
    n = len(tokens)
    if bos_id is None:
        return False, np.array([0]), np.array([n]), np.array([0]), np.array([n]), 0
    starts, ends = split_documents(tokens, bos_id)
    if starts.size == 0:
        return False, np.array([0]), np.array([n]), np.array([0]), np.array([n]), 0
    return True, starts, ends, starts + 1, ends, int(starts[0])


def run_accounting(tokens: np.ndarray, meta: MetaTable, *, bos_id: int | None, tokenizer=None,
                   reference_meta: MetaTable | None = None, source: DocBytes | None = None,
                   source_label: str = "", sidecar: np.ndarray | None = None,
                   seq_len: int | None = None, stride: int | None = None,
                   max_examples: int = 20) -> Accounting:
    t0 = time.perf_counter()
    tokens = np.asarray(tokens)
    n = len(tokens)
    sc = Scoring(n, seq_len, stride)
    has_docs, starts, ends, ds, de, prefix = _doc_spans(tokens, bos_id)
    # the decoder's sizing pass (decoded lengths, byte-run check) rides the meta pass
    lengths = tokenizer.length_rider(tokens, ds, de) if tokenizer is not None else None
    ms = meta_sums(tokens, meta, starts, ends, sc.plain_stop, len(reference_meta) if reference_meta else 0,
                   rider=lengths.rider if lengths is not None else None)
    meta_doc = ms.per_span
    acc = Accounting(sc, bos_id, has_docs, len(starts) if has_docs else 0, prefix, ms.full,
                     ms.plain, meta_doc, int(meta_doc.sum()))
    acc.timings["meta"] = time.perf_counter() - t0

    if tokenizer is not None:
        t1 = time.perf_counter()
        if source is not None and has_docs and source.n_docs == len(ds):
            # bytes compared with the source's, document by document
            acc.decoded_lengths, acc.decoded_vs_source = tokenizer.compare_stream(tokens, ds, de, source, max_examples,
                                                                                  ridden=lengths)
        elif lengths is not None:
            acc.decoded_lengths = lengths.finish()
        else:  # only lengths are compared: counted without writing the bytes
            acc.decoded_lengths = tokenizer.decoded_lengths(tokens, ds, de)
        acc.decoded_total = int(acc.decoded_lengths.sum())
        acc.meta_vs_decoded_bad = int(np.count_nonzero(acc.decoded_lengths != meta_doc)) if has_docs else None
        acc.timings["decode"] = time.perf_counter() - t1
    if reference_meta is not None:
        t1 = time.perf_counter()
        if reference_meta.equals(meta) or (len(reference_meta) >= len(meta) and MetaTable(
                reference_meta.base_bytes[:len(meta)], reference_meta.has_leading_space[:len(meta)],
                reference_meta.is_boundary_token[:len(meta)]).equals(meta) and n and ms.max_id < len(meta)):
            acc.occurrences = ms.occurrences
            acc.canonical_docs_total = acc.meta_docs_total
        else:
            acc.drift = attribute_drift(tokens, meta, reference_meta, ms.occurrences)
            acc.occurrences = acc.drift.occurrences
            if prefix == 0:
                # every target lies in a document: canonical total = meta total − drift
                acc.canonical_docs_total = acc.meta_docs_total - acc.drift.total
            else:
                acc.canonical_docs_total = int(meta_sums(tokens, reference_meta, starts, ends).per_span.sum())
        acc.timings["attribution"] = time.perf_counter() - t1
    else:
        acc.occurrences = ms.occurrences if n > 1 else None

    if source is not None:
        t1 = time.perf_counter()
        acc.source, acc.source_label, acc.source_total = source, source_label, source.total
        if has_docs and source.n_docs == acc.n_docs:
            mism = np.flatnonzero(source.lengths != meta_doc)
            acc.meta_vs_source_bad = int(mism.size)
            acc.meta_vs_source_first = [[int(k), int(meta_doc[k]), int(source.lengths[k])]
                                        for k in mism[:max_examples].tolist()]
        elif has_docs:
            acc.doc_count_mismatch = (acc.n_docs, source.n_docs)
        acc.timings["source"] = time.perf_counter() - t1

    if sidecar is not None:
        acc.sidecar = _sidecar(sidecar, tokens, sc, bos_id, has_docs, starts, ends, source, max_examples)
    acc.timings["total"] = time.perf_counter() - t0
    return acc


def _sidecar(side, tokens, sc, bos_id, has_docs, starts, ends, source, max_examples) -> SidecarFigures:
    side = np.asarray(side)
    f = SidecarFigures(len(side), len(side) == len(tokens))
    if not f.length_matches:
        return f
    f.full = int(side[1:].sum(dtype=np.int64))
    f.plain = int(side[1:sc.plain_stop].sum(dtype=np.int64)) if sc.plain_stop is not None else None
    if bos_id is not None:
        f.bos_nonzero = int(np.count_nonzero(side[tokens == bos_id]))
    if has_docs:
        vals = side.astype(np.int32)
        vals[0] = 0  # position 0 is never a target
        f.per_doc = span_sums(vals, starts, ends)
        if source is not None and source.n_docs == len(starts):
            bad = np.flatnonzero(f.per_doc != source.lengths)
            f.docs_vs_source_bad = int(bad.size)
            f.first_bad_docs = [[int(k), int(f.per_doc[k]), int(source.lengths[k])] for k in bad[:max_examples].tolist()]
    return f
