"""`backend_findings` for TokenMonster: the static TM0xx checks of a meta against the vocabulary.

`counts[i]` (when the engine has val data) is how often id i occurs; findings then carry
occurrences and the bytes the wrong rows add, and "harmless if unused" rows become errors when used.
"""

from __future__ import annotations

import numpy as np

from audit.formats.meta import MetaTable
from audit.rules import Finding, Severity
from audit.tokenizers.tokenmonster import normalize
from audit.tokenizers.tokenmonster import rules as R

MAX_IDS = 50


def needed_bytes(v) -> list[int]:
    """Byte values the tokenised text can contain (what byte fallback must cover)."""
    if v.charset == 1:
        s = set(range(0x80)) | set(range(0x80, 0xC0)) | set(range(0xC2, 0xF5))
    else:
        s = set(range(256))
    if v.capcode == 2:  # capcode text never holds a literal capital (C/W/D are markers)
        s -= set(range(0x41, 0x5B))
    if v.capcode == 1:  # a literal 0x7F is written as 0x14
        s.discard(0x7F)
    return sorted(s)


def _text_byte(b: int) -> bool:
    return b in (9, 10, 13) or 0x20 <= b < 0x7F or 0x80 <= b <= 0xBF or 0xC2 <= b <= 0xF4


def _pad(meta: MetaTable, n: int):
    m = len(meta)
    size = max(n, m)
    base = np.zeros(size, np.int64)
    ls = np.zeros(size, bool)
    bd = np.ones(size, bool)
    base[:m], ls[:m], bd[:m] = meta.base_bytes, meta.has_leading_space, meta.is_boundary_token
    return base, ls, bd


def _ranges(ids) -> str:
    ids = sorted(int(i) for i in ids)
    out = []
    for i in ids:
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return ", ".join(f"{a}" if a == b else f"{a}..{b}" for a, b in out)


def findings(tok, meta: MetaTable, counts: np.ndarray | None) -> list[Finding]:
    v, f = tok.vocab, tok.facts
    n = max(len(meta), f.n)
    mb, ml, md = _pad(meta, n)
    in_meta = np.arange(n) < len(meta)
    occ = None
    if counts is not None:
        occ = np.zeros(n, np.int64)
        c = np.asarray(counts, dtype=np.int64)[:n]
        occ[:len(c)] = c

    def pad(a, fill=False):
        out = np.full(n, fill, dtype=a.dtype)
        out[:len(a)] = a[:n]
        return out

    defined = pad(f.defined) & in_meta
    bf, mo, pdel, ls_ids, inner = (pad(a) & defined for a in
                                   (f.byte_fallback, f.marker_only, f.pending_delete, f.leading_space, f.inner_marker))
    canon = tok.canonical_meta()
    cb = pad(canon.base_bytes.astype(np.int64), 0)
    label = tok.piece_text

    def ev(ids, **extra) -> dict:
        ids = np.asarray(ids, dtype=np.int64)
        e = {"count": int(ids.size), "ids": [int(i) for i in ids[:MAX_IDS]],
             "pieces": [label(int(i)) for i in ids[:MAX_IDS]]}
        if occ is not None:
            e["occurrences"] = int(occ[ids].sum())
            e["ids_occurring"] = int(np.count_nonzero(occ[ids]))
        e.update(extra)
        return e

    def occ_note(ids) -> str:
        if occ is None:
            return ""
        return f"; they occur {int(occ[ids].sum()):,} times in val"

    out: list[Finding] = []

    # TM001 byte fallback ≠ 1 (a zero-byte copy of another id's byte is TM005's business)
    shadow = np.zeros(n, bool)
    for g in v.alias_groups().values():
        shadow[[i for i in g[:-1] if i < n]] = True
    ids = np.flatnonzero(bf & (mb != 1) & ~(shadow & (mb == 0)))
    if ids.size:
        vals = sorted(set(int(x) for x in mb[ids]))
        extra = {"values": vals, "id_ranges": _ranges(ids), "bytes": [f"{f.keys[i][0]:02X}" for i in ids[:MAX_IDS]]}
        msg = f"{ids.size} byte-fallback ids ({_ranges(ids)}) count {', '.join(map(str, vals))} bytes instead of 1"
        if occ is not None:
            add = int((occ[ids] * (mb[ids] - 1)).sum())
            extra["bytes_added"] = add
            msg += f"; they occur {int(occ[ids].sum()):,} times and add {add:+,} bytes"
        if (f.official_len[ids[ids < f.n]] == mb[ids[ids < f.n]]).all():
            msg += " (the U+FFFD that the official package's token_decoded gives a lone byte)"
        out.append(R.BYTE_FALLBACK.finding(msg, ev(ids, **extra)))

    # TM002 capcode delete markers and leading-space ids
    if v.capcode:
        de = np.flatnonzero(pdel)
        de_bad = de[~md[de]]
        lsi = np.flatnonzero(ls_ids)
        ls_bad = lsi[~(ml[lsi] & (mb[lsi] == cb[lsi]))]
        suffix = {}
        for i in de:
            s = "DC" if f.keys[i].endswith(b"DC") else "DW" if f.keys[i].endswith(b"DW") else "D"
            suffix[s] = suffix.get(s, 0) + 1
        mname = "D" if v.capcode == 2 else "0x7F"
        parts = " / ".join(f"{c} end in {s}" for s, c in sorted(suffix.items())) if v.capcode == 2 else f"{de.size}"
        msg = (f"{de.size} ids end with a waiting {mname} delete marker ({parts}): {de.size - de_bad.size} modelled "
               f"as is_boundary_token; {lsi.size} ids start with a space it deletes: "
               f"{lsi.size - ls_bad.size} modelled by has_leading_space")
        evd = {"delete_ending": ev(de, unmodelled=int(de_bad.size), unmodelled_ids=[int(i) for i in de_bad[:MAX_IDS]],
                                   by_suffix=suffix),
               "leading_space": ev(lsi, unmodelled=int(ls_bad.size), unmodelled_ids=[int(i) for i in ls_bad[:MAX_IDS]])}
        bad = np.concatenate([de_bad, ls_bad])
        if bad.size:
            sev = None
            if occ is not None:
                msg += f"; the unmodelled ids occur {int(occ[de_bad].sum()):,} (delete-ending) and {int(occ[ls_bad].sum()):,} (leading-space) times"
                if occ[de_bad].sum() == 0:
                    sev = Severity.WARNING
            out.append(R.MARKERS.finding(msg, evd, severity=sev))
        else:
            out.append(R.MARKERS.finding(msg + ": all modelled", evd, severity=Severity.INFO))

    # TM003 marker-only ids
    ids = np.flatnonzero(mo)
    if ids.size:
        zero = ids[mb[ids] == 0]
        nonzero = ids[mb[ids] != 0]
        if zero.size:
            out.append(R.ZERO_MARKERS.finding(
                f"{zero.size} zero-byte ids are capcode markers that decode to nothing: "
                + ", ".join(f"{int(i)} {label(int(i))}" for i in zero[:20]), ev(zero)))
        if nonzero.size:
            out.append(R.ZERO_MARKERS.finding(
                f"{nonzero.size} marker-only ids count bytes although they decode to nothing: "
                + ", ".join(f"{int(i)} {label(int(i))}={int(mb[i])}" for i in nonzero[:20]),
                ev(nonzero, values=[int(mb[i]) for i in nonzero[:MAX_IDS]]), severity=Severity.ERROR))

    # TM004 inner markers
    ids = np.flatnonzero(inner & ~mo)
    if ids.size:
        own = np.array([len(f.standalone[i]) - (1 if ml[i] and f.leading_space[i] else 0) for i in ids], np.int64)
        wrong = ids[mb[ids] != own]
        msg = f"{ids.size} ids carry capcode markers inside them (e.g. {', '.join(label(int(i)) for i in ids[:5])})"
        if wrong.size:
            sev = Severity.ERROR if occ is not None and occ[wrong].sum() > 0 else Severity.WARNING
            out.append(R.INNER_MARKERS.finding(
                msg + f"; {wrong.size} have a base that differs from their own decoding" + occ_note(wrong),
                ev(ids, wrong=[int(i) for i in wrong[:MAX_IDS]], wrong_count=int(wrong.size)), severity=sev))
        else:
            out.append(R.INNER_MARKERS.finding(msg + "; every base matches the id's own decoding", ev(ids)))

    # TM005 defined ids with meta 0
    ids = np.flatnonzero(defined & ~mo & (cb > 0) & (mb == 0))
    if ids.size:
        groups = v.alias_groups()
        alias = {}
        for key, g in groups.items():
            for i in g:
                others = [j for j in g if j != i]
                if others:
                    alias[i] = others
        with_alias = [int(i) for i in ids if int(i) in alias]
        msg = f"{ids.size} ids the vocabulary defines ({_ranges(ids)}) have base_bytes 0"
        if with_alias:
            msg += f"; {len(with_alias)} of them carry the same bytes as another id (e.g. {with_alias[0]} = {alias[with_alias[0]][0]})"
        sev = None
        if occ is None:
            msg += "; no val data to count them (fatal if they occur)"
        else:
            k = int(occ[ids].sum())
            msg += f"; they occur {k:,} times in val" + (" (harmless here)" if k == 0 else "")
            if k:
                sev = Severity.ERROR
        out.append(R.DEFINED_ZERO.finding(msg, ev(ids, id_ranges=_ranges(ids), aliases={
            str(i): alias[i] for i in with_alias[:MAX_IDS]}, true_bytes=[int(cb[i]) for i in ids[:MAX_IDS]]),
            severity=sev))

    # TM006 normalisation
    if v.normalization:
        names = normalize.names(v.normalization)
        desc = "; ".join(normalize.DESCRIPTION[x] for x in names)
        out.append(R.NORMALIZATION.finding(
            f"normalization {' '.join(names)} (flags {v.normalization}): {desc} — the decoded text is not the source",
            {"flags": v.normalization, "names": names, "example": {"source": "é", "source_bytes": 2,
                                                                  "normalised_bytes": len(normalize.apply("é", v.normalization).encode())}}))

    # TM007 charset none, meta as UTF-8
    if v.charset == 0:
        lat = np.zeros(n, np.int64)
        for i in np.flatnonzero(defined):
            lat[i] = len(f.keys[i].decode("latin-1").encode("utf-8"))
        rep_utf8 = np.zeros(n, np.int64)
        for i in np.flatnonzero(defined):
            rep_utf8[i] = len(f.keys[i].decode("utf-8", "replace").encode("utf-8"))
        length = np.array([len(k) for k in f.keys] + [0] * (n - f.n), np.int64)
        ids = np.flatnonzero(defined & (mb != length) & ((mb == lat) | (mb == rep_utf8)) & (lat != length))
        if ids.size:
            out.append(R.CHARSET_UTF8.finding(
                f"charset none, but {ids.size} ids with high bytes count their UTF-8 reading "
                f"(e.g. id {int(ids[0])}: {len(f.keys[ids[0]])} bytes, meta {int(mb[ids[0]])})" + occ_note(ids),
                ev(ids, values=[int(mb[i]) for i in ids[:MAX_IDS]], lengths=[int(length[i]) for i in ids[:MAX_IDS]])))

    # TM008 byte coverage
    missing = tok.missing_bytes
    if missing:
        text_b = [b for b in missing if _text_byte(b)]
        ctrl_b = [b for b in missing if not _text_byte(b)]
        unk = v.unk_id
        fate = f"they become UNK (id {unk})" if unk is not None else "there is no UNK id: they are lost"
        out.append(R.BYTE_COVERAGE.finding(
            f"{len(missing)} byte values have no single-byte id ({len(text_b)} of valid UTF-8 text, e.g. "
            f"{' '.join(f'{b:02X}' for b in text_b[:8])}; {len(ctrl_b)} control/other); {fate}",
            {"missing": [f"{b:02X}" for b in missing], "missing_text_bytes": [f"{b:02X}" for b in text_b],
             "missing_control_bytes": [f"{b:02X}" for b in ctrl_b], "unk_id": unk,
             "covered": 256 - len(missing) if v.charset != 1 else None}))

    # TM009 no BOS
    if tok.bos is None:
        msg = ("no BOS id is known for this bundle" + (f" ({tok.bos_source})" if tok.bos_source else "")
               + ": documents cannot be separated — totals (meta vs decoded over the whole stream) and the "
                 "id-by-id table can be checked; per-document exactness, first differing offsets and the "
                 "document count against the source cannot")
        m = len(meta)
        if m == v.vocab_size + 1 and mb[m - 1] == 0 and md[m - 1]:
            msg += f"; the meta's extra id {m - 1} (0 bytes, boundary) looks like a synthetic BOS"
        out.append(R.NO_BOS.finding(msg, {"bos_id": None, "manifest": tok.bos_source or None}))

    # TM010 aliases
    dups = v.duplicate_entries()
    if dups:
        ex = [f"{i}: {a.decode('utf-8', 'backslashreplace')!r} → {b.decode('utf-8', 'backslashreplace')!r}"
              for i, a, b in dups[:5]]
        out.append(R.ALIASES.finding(f"{len(dups)} ids are carried by more than one entry; the last wins "
                                     f"(e.g. {'; '.join(ex)})",
                                     {"count": len(dups), "ids": [int(i) for i, _, _ in dups[:MAX_IDS]]}))
    return out
