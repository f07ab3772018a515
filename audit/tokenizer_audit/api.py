"""`audit_tokenizer(...)`: static checks, the accounting pass, findings, tables and `--fix`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from audit import chunked
from audit.accounting import Accounting, run_accounting
from audit.accounting.reconcile import reconcile
from audit.errors import InputError
from audit.formats.meta import MetaTable, load_meta
from audit.progress import progress
from audit.report import Report, Table
from audit.reporting.text import text_diff
from audit.rules import Severity
from audit.tokenizer_audit import rules as R
from audit.tokenizer_audit.inputs import default_source, load_source, reconciliation_pair, resolve
from audit.tokenizer_audit.options import AuditOptions
from audit.tokenizer_audit.static import check_against_tokenizer, check_meta_schema, id_classes

TOP_IDS = 30


def audit_tokenizer(meta_path, options: AuditOptions | None = None, **kwargs) -> list[Report]:
    """Audit a `*.meta.npz`. Returns [audit] or [audit, re-audit of the fix].

    `options` is what the CLI builds; keyword arguments (the fields of `AuditOptions`) build one
    for callers that name only a few."""
    if options is None:
        options = AuditOptions(**kwargs)
    elif kwargs:
        options = replace(options, **kwargs)
    meta_path = Path(meta_path)
    meta = load_meta(meta_path)
    res = resolve(meta_path, len(meta), options)
    source = options.source
    if source is None and res.manifest is not None and res.tokens is not None:
        source, note = default_source(res.manifest)
        res.notes.append(note)
    try:
        return _audit_and_fix(meta, meta_path, res, replace(options, source=source))
    finally:
        chunked.release()  # the scratch buffers of the chunked passes


def _audit_and_fix(meta, meta_path, res, opts: AuditOptions) -> list[Report]:
    cache: dict = {}  # source and reconciliation, shared by the audit and the re-audit of the fix
    report = _audit(meta, meta_path, res, cache, opts)
    reports = [report]
    if opts.fix_out is not None:
        if res.tokenizer is None:
            raise InputError(meta_path, f"--fix needs the tokenizer: {res.missing_tokenizer}")
        fixed = canonical_fix(meta, res.tokenizer)
        fixed.save(opts.fix_out)  # never overwrites
        report.add(R.FIXED.finding(f"wrote the canonical table for {res.tokenizer.name} to {opts.fix_out}",
                                   {"path": str(opts.fix_out), "ids": len(fixed)}, location=str(opts.fix_out)))
        reports.append(_audit(load_meta(opts.fix_out), Path(opts.fix_out), res, cache, opts))
    return reports


def canonical_fix(meta: MetaTable, tokenizer) -> MetaTable:
    """The tokenizer's canonical table, padded with inert rows to the audited table's length."""
    c = tokenizer.canonical_meta()
    n = max(len(meta), len(c))
    base = np.zeros(n, np.int16)
    ls = np.zeros(n, bool)
    bd = np.ones(n, bool)
    base[:len(c)], ls[:len(c)], bd[:len(c)] = c.base_bytes, c.has_leading_space, c.is_boundary_token
    return MetaTable(base, ls, bd, tokenizer_kind=c.tokenizer_kind or tokenizer.kind,
                     source_model_name=c.source_model_name or tokenizer.name, vocab_size=n)


def strict_severity(strict: bool, relative: float | None = None) -> Severity | None:
    """The one place `--strict` decides severities: under it every finding that qualifies an
    accounting is an error. Otherwise a byte drift is an error from RELATIVE_TOLERANCE up and a
    warning below; other findings keep their rule's severity (None)."""
    if strict:
        return Severity.ERROR
    if relative is None:
        return None
    return Severity.ERROR if abs(relative) >= R.RELATIVE_TOLERANCE else Severity.WARNING


def _load_source(res, cache: dict, opts: AuditOptions):
    key = ("source", str(opts.source))
    if key not in cache:
        n_docs = None
        if res.bos_id is not None:
            n_docs = chunked.count_equal(np.asarray(res.tokens), res.bos_id) or None
        cache[key] = load_source(opts.source, manifest=res.manifest, n_docs=n_docs, source_val=opts.source_val,
                                 source_tokenizer=opts.source_tokenizer, docs_jsonl=opts.docs)
    return cache[key]


def _audit(meta: MetaTable, meta_path: Path, res, cache: dict, opts: AuditOptions) -> Report:
    tok = res.tokenizer
    rep = Report("tokenizer", str(meta_path))
    rep.extend(check_meta_schema(meta))
    summary: dict = {"meta ids": len(meta)}
    if tok is not None:
        summary.update({"tokenizer": tok.name, "tokenizer kind": tok.kind, "tokenizer ids": tok.vocab_size})
        if res.tokenizer_origin != "given":
            summary["tokenizer found"] = res.tokenizer_origin
    if res.dataset_name:
        summary["dataset"] = res.dataset_name
    if res.notes:
        summary["inputs"] = "; ".join(res.notes)
    canon = tok.canonical_meta() if tok is not None else None  # once per audit
    acc: Accounting | None = None
    if res.tokens is not None:
        src = _load_source(res, cache, opts) if opts.source is not None else None
        with progress(f"byte accounting over {len(res.tokens):,} tokens", None):
            acc = run_accounting(res.tokens, meta, bos_id=res.bos_id, tokenizer=tok, reference_meta=canon,
                                 source=src.docs if src else None, source_label=src.label if src else "",
                                 sidecar=res.sidecar, seq_len=opts.seq_len, stride=opts.stride,
                                 max_examples=opts.max_examples)
        _val_findings(rep, acc, tok, opts.strict, opts.claimed_bpb, summary)
        ref = acc.source.lengths if acc.source is not None else acc.decoded_lengths
        if acc.has_docs and ref is not None and len(ref) == len(acc.meta_per_doc):
            rep.plot_data["doc_drift"] = acc.meta_per_doc - ref  # for --plots
        if src is not None and src.kind in ("sp1024", "docs"):
            _reconcile(rep, res, cache, opts, src, acc)
    if tok is not None:
        generic = check_against_tokenizer(meta, tok, acc.drift if acc else None, acc.occurrences if acc else None,
                                          canon)
        rep.extend(f for f in generic if f.rule_id not in tok.superseded_rules)
        rep.extend(tok.backend_findings(meta, acc.occurrences if acc else None) or [])
    else:
        _no_tokenizer(rep, res, opts.strict)
    if acc is None:
        summary["mode"] = "static (no val data)"
    rep.summary = summary
    return rep


def _no_tokenizer(rep: Report, res, strict: bool) -> None:
    """Without the tokenizer the audit is incomplete: never `pass` (an error under --strict)."""
    did = "only the meta formula was applied to the val stream" if res.tokens is not None \
        else "only the meta's schema was checked"
    rep.add(R.NO_TOKENIZER.finding(f"no tokenizer: {did}; {res.missing_tokenizer}",
                                   {"hint": res.missing_tokenizer}, severity=strict_severity(strict)))
    if not strict and not rep.errors:
        rep.verdict = "incomplete"


def _reconcile(rep: Report, res, cache: dict, opts: AuditOptions, src, acc: Accounting) -> None:
    key = ("reconcile", str(opts.source))
    if key not in cache:
        pair = reconciliation_pair(src, manifest=res.manifest, n_docs=acc.n_docs or None,
                                   source_val=opts.source_val, source_tokenizer=opts.source_tokenizer,
                                   docs_jsonl=opts.docs)
        cache[key] = reconcile(pair[0], pair[1]) if pair else None
    if cache[key] is not None:
        _reconcile_finding(rep, cache[key])


def _val_findings(rep: Report, acc: Accounting, tok, strict: bool, claimed_bpb, summary: dict) -> None:
    sc = acc.scoring
    summary.update({"val tokens": sc.n_tokens, "BOS id": acc.bos_id if acc.bos_id is not None else "none",
                    "documents": acc.n_docs if acc.has_docs else "n/a (no BOS)",
                    "scored positions": sc.describe(),
                    "meta bytes (full stream)": acc.meta_full})
    if acc.meta_plain is not None:
        summary["meta bytes (plain rows)"] = acc.meta_plain
    summary["meta bytes (documents)"] = acc.meta_docs_total
    if acc.decoded_total is not None:
        summary["decoded bytes"] = acc.decoded_total
    if acc.source_total is not None:
        summary["source bytes"] = acc.source_total
        summary["source"] = acc.source_label
    rows = [["meta, full stream (targets 1..N-1)", acc.meta_full, "sliding-window denominator"]]
    if acc.meta_plain is not None:
        rows.append([f"meta, plain rows of {sc.seq_len}", acc.meta_plain,
                     f"last {sc.plain_dropped:,} tokens dropped"])
    rows.append(["meta, over documents", acc.meta_docs_total, ""])
    if acc.decoded_total is not None:
        rows.append(["decoded", acc.decoded_total, f"{tok.name} decoder, per document"])
    if acc.source_total is not None:
        rows.append(["source", acc.source_total, acc.source_label])
    if acc.sidecar is not None and acc.sidecar.length_matches:
        rows.append(["sidecar, full stream", acc.sidecar.full, ""])
    rep.tables.append(Table("Byte counts", ["figure", "bytes", "note"], rows))

    if not acc.has_docs:
        rep.add(R.NO_BOS.finding(
            "no BOS in the stream" + (f" (BOS id {acc.bos_id} never occurs)" if acc.bos_id is not None else "")
            + ": the stream is one unit; per-document comparison is impossible, only totals are compared",
            {"bos_id": acc.bos_id}, severity=strict_severity(strict)))
    if acc.prefix_tokens:
        rep.add(R.PREFIX.finding(f"{acc.prefix_tokens:,} tokens precede the first BOS",
                                 {"tokens": acc.prefix_tokens}))
    if sc.plain_stop is not None and sc.plain_dropped:
        tail = acc.meta_full - acc.meta_plain
        rep.add(R.TAIL.finding(
            f"plain rows of {sc.seq_len} score targets 1..{sc.plain_stop - 1:,}: the last {sc.plain_dropped:,} "
            f"tokens ({tail:,} meta bytes) are dropped",
            {"seq_len": sc.seq_len, "dropped_tokens": sc.plain_dropped, "dropped_meta_bytes": tail,
             "meta_plain": acc.meta_plain, "meta_full": acc.meta_full}))
    if tok is not None and acc.occurrences is not None and len(acc.occurrences) > tok.vocab_size:
        beyond = np.flatnonzero(acc.occurrences[tok.vocab_size:]) + tok.vocab_size
        if beyond.size:
            rep.add(R.BEYOND_TOKENIZER.finding(
                f"{beyond.size} ids ≥ {tok.vocab_size} occur {int(acc.occurrences[beyond].sum()):,} times in val",
                {"ids": [int(i) for i in beyond[:50]], "occurrences": int(acc.occurrences[beyond].sum())}))

    meta_t = acc.meta_docs_total
    drift_ev = _drift_tables(rep, acc, tok)
    if acc.decoded_total is not None and meta_t != acc.decoded_total:
        d = meta_t - acc.decoded_total
        rep.add(R.META_DECODED.finding(
            f"meta {meta_t:,} vs decoded {acc.decoded_total:,} bytes: {d:+,} ({d / max(acc.decoded_total, 1):+.4%})",
            {"meta_bytes": meta_t, "decoded_bytes": acc.decoded_total, "drift": d,
             "relative": d / max(acc.decoded_total, 1), **drift_ev},
            severity=strict_severity(strict, d / max(acc.decoded_total, 1))))
    if acc.source_total is not None and meta_t != acc.source_total:
        d = meta_t - acc.source_total
        rep.add(R.META_SOURCE.finding(
            f"meta {meta_t:,} vs source {acc.source_total:,} bytes: {d:+,} ({d / max(acc.source_total, 1):+.4%})",
            {"meta_bytes": meta_t, "source_bytes": acc.source_total, "drift": d,
             "relative": d / max(acc.source_total, 1), "source": acc.source_label},
            severity=strict_severity(strict, d / max(acc.source_total, 1))))
    if acc.source_total is not None and acc.decoded_total is not None and acc.decoded_total != acc.source_total:
        d = acc.decoded_total - acc.source_total
        rep.add(R.DECODED_SOURCE.finding(
            f"decoded {acc.decoded_total:,} vs source {acc.source_total:,} bytes: {d:+,}",
            {"decoded_bytes": acc.decoded_total, "source_bytes": acc.source_total, "drift": d,
             "relative": d / max(acc.source_total, 1)},
            severity=strict_severity(strict, d / max(acc.source_total, 1))))
    if acc.doc_count_mismatch:
        a, b = acc.doc_count_mismatch
        rep.add(R.DOC_COUNT.finding(f"candidate has {a:,} documents, the source {b:,}",
                                    {"candidate_docs": a, "source_docs": b}))
    cmp_ = acc.decoded_vs_source
    if cmp_ is not None:
        summary["bad documents"] = cmp_.n_bad
        if cmp_.n_bad:
            first = cmp_.examples[0]
            diff = text_diff(first.raw_a, first.raw_b, labels=("decoded", "source"))
            rep.add(R.BAD_DOCS.finding(
                f"{cmp_.n_bad:,} of {cmp_.n_docs:,} documents do not decode to their source bytes "
                f"(first: doc {first.doc} at byte {first.offset:,}: {diff[-1]})",
                {"bad_docs": cmp_.n_bad, "docs": cmp_.n_docs, "text_diff": diff,
                 "first": [e.row() for e in cmp_.examples[:5]]}, severity=strict_severity(strict)))
            rep.tables.append(Table("Bad documents (decoded vs source)",
                                    ["doc", "first diff at", "decoded len", "source len", "decoded", "source"],
                                    [e.row() for e in cmp_.examples]))
    if acc.meta_vs_source_bad:
        rep.add(R.DOC_METAS.finding(f"{acc.meta_vs_source_bad:,} documents: meta bytes ≠ source bytes",
                                    {"documents": acc.meta_vs_source_bad,
                                     "first [doc, meta, source]": acc.meta_vs_source_first[:10]},
                                    severity=strict_severity(strict)))
    elif acc.meta_vs_source_bad is None and acc.meta_vs_decoded_bad:
        rep.add(R.DOC_METAS.finding(f"{acc.meta_vs_decoded_bad:,} documents: meta bytes ≠ decoded bytes",
                                    {"documents": acc.meta_vs_decoded_bad}, severity=strict_severity(strict)))
    _sidecar_findings(rep, acc, summary)

    true = acc.true_total
    denom = acc.sidecar.full if acc.sidecar is not None and acc.sidecar.length_matches else meta_t
    if true:
        summary["denominator / true"] = denom / true
    if claimed_bpb is not None and true:
        corrected = claimed_bpb * denom / true
        summary["claimed BPB"] = claimed_bpb
        summary["corrected BPB"] = round(corrected, 6)
        rep.add(R.CORRECTED.finding(
            f"claimed {claimed_bpb:.4f} BPB × {denom:,} / {true:,} = {corrected:.4f} BPB",
            {"claimed_bpb": claimed_bpb, "denominator": denom, "true_bytes": true, "corrected_bpb": corrected},
            severity=Severity.INFO if denom == true else None))
    exact = (acc.has_docs and true is not None and meta_t == true
             and (acc.decoded_total is None or acc.decoded_total == true)
             and (acc.source_total is None or acc.source_total == true)
             and (cmp_ is None or cmp_.n_bad == 0) and not acc.meta_vs_source_bad
             and not acc.meta_vs_decoded_bad and not acc.doc_count_mismatch)
    if exact:
        which = " = ".join(k for k, v in (("source", acc.source_total), ("meta", meta_t),
                                           ("decoded", acc.decoded_total)) if v is not None)
        rep.add(R.EXACT.finding(f"{which} = {meta_t:,} bytes over {acc.n_docs:,} documents, 0 bad documents",
                                {"bytes": meta_t, "documents": acc.n_docs}))
    summary["exact"] = bool(exact)


def _drift_tables(rep: Report, acc: Accounting, tok) -> dict:
    """Per-id and per-class attribution of meta − canonical; returns evidence for the drift finding."""
    ev: dict = {}
    dr = acc.drift
    residual = None
    if acc.canonical_docs_total is not None and acc.decoded_total is not None:
        residual = acc.canonical_docs_total - acc.decoded_total
        ev["decoder_context_bytes"] = residual  # not expressible per id (U+FFFD runs, unknown surface, …)
    if dr is None or tok is None:
        return ev
    by_id = dr.by_id
    nz = np.flatnonzero(by_id)
    if nz.size == 0:
        return ev
    n = len(by_id)
    cls = id_classes(tok, n)
    ev["drift_by_id_total"] = int(by_id.sum())
    order = nz[np.argsort(-np.abs(by_id[nz]), kind="stable")]
    ev["ids"] = [int(i) for i in order[:50]]
    ev["ids_count"] = int(nz.size)
    rows = [[int(i), tok.piece_text(int(i)), str(cls[i]), int(dr.occurrences[i]), int(dr.base_by_id[i]),
             int(dr.space_by_id[i]), int(dr.boundary_by_id[i]), int(by_id[i])] for i in order[:TOP_IDS]]
    rep.tables.append(Table(f"Drift by id (meta − canonical; top {min(TOP_IDS, nz.size)} of {nz.size})",
                            ["id", "piece", "class", "occurrences", "base drift", "leading-space drift",
                             "boundary drift (as previous token)", "total"], rows))
    crow = {}
    for i in nz.tolist():
        c = crow.setdefault(str(cls[i]), [0, 0, 0])
        c[0] += 1
        c[1] += int(dr.occurrences[i])
        c[2] += int(by_id[i])
    class_rows = [[c, v[0], v[1], v[2]] for c, v in sorted(crow.items(), key=lambda kv: -abs(kv[1][2]))]
    if residual:
        class_rows.append(["decoder context (not per id)", "", "", residual])
    rep.tables.append(Table("Drift by class", ["class", "ids", "occurrences", "bytes"], class_rows))
    ev["drift_by_class"] = {r[0]: r[3] for r in class_rows}
    return ev


def _sidecar_findings(rep: Report, acc: Accounting, summary: dict) -> None:
    s = acc.sidecar
    if s is None:
        return
    if not s.length_matches:
        rep.add(R.SIDECAR_LEN.finding(f"sidecar holds {s.n_values:,} values for {acc.scoring.n_tokens:,} tokens",
                                      {"sidecar_values": s.n_values, "tokens": acc.scoring.n_tokens}))
        return
    summary["sidecar bytes (full stream)"] = s.full
    if s.plain is not None:
        summary["sidecar bytes (plain rows)"] = s.plain
    if s.bos_nonzero:
        rep.add(R.SIDECAR_BOS.finding(f"{s.bos_nonzero:,} BOS positions have a nonzero byte cost",
                                      {"positions": s.bos_nonzero}))
    if acc.source_total is not None:
        total = int(s.per_doc.sum()) if s.per_doc is not None else s.full
        if total != acc.source_total or s.docs_vs_source_bad:
            rep.add(R.SIDECAR_SOURCE.finding(
                f"sidecar sums to {total:,} bytes vs source {acc.source_total:,}"
                + (f"; {s.docs_vs_source_bad:,} documents differ" if s.docs_vs_source_bad else ""),
                {"sidecar_bytes": total, "source_bytes": acc.source_total,
                 "bad_docs": s.docs_vs_source_bad, "first [doc, sidecar, source]": s.first_bad_docs[:10]}))


def _reconcile_finding(rep: Report, rec) -> None:
    diff = rec.reference_bytes - rec.raw_bytes
    rep.add(R.RECONCILE.finding(
        f"raw documents {rec.raw_bytes:,} bytes vs sp1024 text {rec.reference_bytes:,} ({diff:+,}); "
        f"after normalisation {rec.explained_docs:,} of {rec.n_docs:,} documents match exactly",
        {"raw_bytes": rec.raw_bytes, "reference_bytes": rec.reference_bytes,
         "by_class": {k: v[0] for k, v in rec.by_class.items()}, "explained_docs": rec.explained_docs,
         "unexplained_bytes": rec.unexplained_bytes}))
    rows = rec.rows() + [["unexplained (documents still differing)", rec.unexplained_bytes,
                          rec.n_docs - rec.explained_docs]]
    rep.tables.append(Table("Raw documents vs sp1024 text, by class", ["class", "bytes", "documents"], rows))
