"""Static checks: the meta against its tokenizer, id by id (no val data needed).

With val data the same findings also carry each id's occurrences and the exact byte drift it
causes (from `audit.accounting.metabytes.IdDrift`).
"""

from __future__ import annotations

import numpy as np

from audit.accounting.metabytes import IdDrift, padded
from audit.formats.meta import MetaTable
from audit.rules import Finding, Severity
from audit.tokenizer_audit import rules as R

MAX_IDS = 50  # ids listed in evidence


def id_classes(tokenizer, n: int) -> np.ndarray:
    """Class per id (the backend's `id_classes()`), `padding` past the tokenizer's ids."""
    out = np.array(["padding"] * n, dtype=object)
    cls = np.asarray(tokenizer.id_classes(), dtype=object)
    k = min(n, len(cls))
    out[:k] = cls[:k]
    return out


def _ids(ids: np.ndarray) -> list[int]:
    return [int(i) for i in ids[:MAX_IDS]]


def _evidence(ids: np.ndarray, drift_by_id: np.ndarray | None, occ: np.ndarray | None, **extra) -> dict:
    if drift_by_id is not None and ids.size:  # the ids that move the denominator most come first
        ids = ids[np.argsort(-np.abs(drift_by_id[ids]), kind="stable")]
    ev = {"count": int(ids.size), "ids": _ids(ids)}
    if ids.size > MAX_IDS:
        ev["ids_truncated"] = True
    if occ is not None:
        ev["occurrences"] = int(occ[ids].sum())
        ev["ids_occurring"] = int(np.count_nonzero(occ[ids]))
    if drift_by_id is not None:
        ev["byte_drift"] = int(drift_by_id[ids].sum())
    ev.update(extra)
    return ev


def check_meta_schema(meta: MetaTable) -> list[Finding]:
    out = []
    bb = meta.base_bytes
    problems = []
    if bb.dtype != np.int16:
        problems.append(f"base_bytes is {bb.dtype}, not int16")
    if meta.format_version != 1:
        problems.append(f"format_version is {meta.format_version}, not 1")
    if meta.vocab_size != len(meta):
        problems.append(f"vocab_size scalar {meta.vocab_size} ≠ table length {len(meta)}")
    if problems:
        out.append(R.META_DTYPE.finding("; ".join(problems), {"problems": problems}))
    wide = bb.astype(np.int64)
    bad = np.flatnonzero((wide < 0) | (wide > 32767))
    if bad.size:
        out.append(R.META_INT16.finding(
            f"{bad.size} ids have base_bytes outside 0..32767 (e.g. id {int(bad[0])} = {int(wide[bad[0]])})",
            {"count": int(bad.size), "ids": _ids(bad), "values": [int(wide[i]) for i in bad[:MAX_IDS]]}))
    return out


def check_against_tokenizer(meta: MetaTable, tokenizer, drift: IdDrift | None,
                            occ: np.ndarray | None, canon: MetaTable | None = None) -> list[Finding]:
    """Compare with the canonical table (`tokenizer.canonical_meta()` unless the caller already
    has it); each difference is classified by id class."""
    out: list[Finding] = []
    v = tokenizer.vocab_size
    canon = canon if canon is not None else tokenizer.canonical_meta()
    n = max(len(meta), len(canon), v)
    bm, lm, dm = padded(meta, n)
    bc, lc, dc = padded(canon, n)
    bm = bm.astype(np.int64)
    cls = id_classes(tokenizer, n)
    occ_n = None
    if occ is not None:
        occ_n = np.zeros(n, np.int64)
        occ_n[:min(n, len(occ))] = occ[:n]
    m = len(meta)
    defined = np.arange(n) < min(m, v)

    def sev(ids):  # rows that occur in val are errors; otherwise the rule's own severity
        return Severity.ERROR if occ_n is not None and occ_n[ids].sum() > 0 else None

    base_d = drift.base_by_id if drift is not None else None
    if m < v:
        out.append(R.META_SHORT.finding(f"meta has {m} ids, the tokenizer defines {v}",
                                        {"meta_ids": m, "tokenizer_ids": v}))
    is_byte = defined & (cls == "byte")
    ids = np.flatnonzero(is_byte & (bm != 1))
    if ids.size:
        vals = sorted(set(int(x) for x in bm[ids]))
        out.append(R.BYTE_PIECE.finding(
            f"{ids.size} byte-fallback ids count {', '.join(map(str, vals))} bytes instead of 1"
            + (f"; they occur {int(occ_n[ids].sum()):,} times and add {int(base_d[ids].sum()):+,} bytes"
               if occ_n is not None and base_d is not None else ""),
            _evidence(ids, base_d, occ_n, values=vals)))
    zero = defined & ~is_byte & (bm == 0) & (bc > 0)
    ids = np.flatnonzero(zero)
    if ids.size:
        n_occ = int(occ_n[ids].sum()) if occ_n is not None else None
        out.append(R.ZERO_BYTE.finding(
            f"{ids.size} ids the tokenizer defines have base_bytes 0"
            + (f"; they occur {n_occ:,} times in val" if n_occ is not None else "; no val data to count them"),
            _evidence(ids, base_d, occ_n, true_bytes=[int(bc[i]) for i in ids[:MAX_IDS]]), severity=sev(ids)))
    ids = np.flatnonzero(defined & ~is_byte & ~zero & (bm != bc))
    if ids.size:
        out.append(R.BASE_MISMATCH.finding(
            f"{ids.size} ids have base_bytes different from the canonical value",
            _evidence(ids, base_d, occ_n, meta_values=[int(bm[i]) for i in ids[:MAX_IDS]],
                      canonical_values=[int(bc[i]) for i in ids[:MAX_IDS]])))
    ids = np.flatnonzero(defined & (lm != lc))
    if ids.size:
        missing = int(np.count_nonzero(lc[ids] & ~lm[ids]))
        out.append(R.LEADING_SPACE.finding(
            f"{ids.size} ids have a wrong has_leading_space flag ({missing} pieces with `▁` not flagged, "
            f"{ids.size - missing} flagged without `▁`)"
            + (f"; drift {int(drift.space_by_id[ids].sum()):+,} bytes" if drift is not None else ""),
            _evidence(ids, drift.space_by_id if drift is not None else None, occ_n, missing_flag=missing)))
    ids = np.flatnonzero(defined & (dm != dc))
    if ids.size:
        lost = int(np.count_nonzero(dc[ids] & ~dm[ids]))
        out.append(R.BOUNDARY.finding(
            f"{ids.size} ids have a wrong is_boundary_token flag ({lost} control/unknown/unused ids not "
            f"boundaries, {ids.size - lost} ordinary ids marked as boundaries)"
            + (f"; drift {int(drift.boundary_by_id[ids].sum()):+,} bytes" if drift is not None else ""),
            _evidence(ids, drift.boundary_by_id if drift is not None else None, occ_n, lost_boundary=lost)))
    pad = np.arange(n) >= v
    pad &= np.arange(n) < m
    ids = np.flatnonzero(pad & ((bm != 0) | lm | ~dm))
    if ids.size:
        out.append(R.PADDING.finding(f"{ids.size} padded rows (ids ≥ {v}) are not inert",
                                     _evidence(ids, drift.by_id if drift is not None else None, occ_n),
                                     severity=sev(ids)))
    return out
