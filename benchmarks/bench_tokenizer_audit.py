"""Full-val-scale benchmark of the tokenizer audit (not a test).

Builds (once, cached in benchmarks/out/) a synthetic val set shaped like the challenge's:
50,000 documents, ≥ 62 M tokens of the REAL sp1024 model as the SOURCE stream (ids sampled
from its merged pieces with a Zipf-like law, plus valid multi-byte characters spelled as byte
pieces), BOS 1 before every document; and a CANDIDATE stream that spells the same bytes with
different tokens (about 1 token in 20, never a document's first, respelled as its UTF-8 byte
pieces), so candidate and source are read, split and decoded independently and agree only if
both decoders are right. Then it times, each in a fresh child process (median of --repeat):

  meta     the evaluator formula over the candidate (totals, plain rows, per document)
  decoded  + static checks and decoding every candidate document (vectorised decoder)
  source   + decoding the source stream and the document-by-document three-way comparison

and the straightforward approach on all documents, each run as often and interleaved with them
(one round: meta, decoded, source, naive-decoded, naive-source), medians compared:

  naive-decoded  Python loop splitting the candidate into documents + sentencepiece DecodeIds
                 per document (the work of `decoded`)
  naive-source   the same for both streams, the formula per document with numpy, and a per-
                 document comparison of source, meta and decoded bytes (the work of `source`)

Prints wall seconds, peak RSS, the speed-ups measured in this run, and one JSON line of figures.

`--shape multilingual` builds text unlike English web pages instead: many scripts (Cyrillic,
Greek, Arabic, Hebrew, Devanagari, Thai, CJK, Hangul, emoji, accented Latin) that sp1024 spells
with byte pieces, ~1.3 bytes per token (more than half the tokens are byte pieces),
and long documents (default 5,000 documents of ~12,000 tokens): the byte-fallback UTF-8 check
and the gather dominate there.

    .venv/bin/python benchmarks/bench_tokenizer_audit.py [--shape english|multilingual] [--docs N] [--tokens N] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "out"
MODEL = ROOT.parent / "shared" / "fixtures" / "tokenizers" / "sp1024" / "fineweb_1024_bpe.model"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# Characters of many scripts; sp1024 (trained on English web text) has merged pieces for almost
# none of them, so they are spelled as byte pieces.
SCRIPTS = ("абвгдежзийклмнопрстуфхцчшщыэюяЖЩЯ" "αβγδεζηθικλμνξπρστφχψωΩΣ" "ابتثجحخدذرزسشصضطظعغفقكلمنهوي"
           "אבגדהוזחטיכלמנסעפצקרשת" "अआइईउकखगघचछजझटडणतथदधनपफबभमयरलवशसह" "กขคงจฉชซญดตถทนบปผพฟมยรลวศสหอ"
           "中文日本語漢字東京大学北京上海人民共和国的是不了在有我他这个们来到时" "한국어가나다라마바사아자차카타파하"
           "😀🙂🚀🌍🎉🔥💡📚" "ØÆÅøæåÉéÍíÓóÚúÞþÐðİıŞşĞğ")


def build(n_docs: int, n_tokens: int, seed: int = 0, shape: str = "english") -> dict:
    from audit.formats.shards import write_shard
    from audit.tokenizers.sentencepiece_model import SentencePieceTokenizer

    OUT.mkdir(parents=True, exist_ok=True)
    tag = f"{n_docs}_{n_tokens}_{seed}_v2" + ("" if shape == "english" else f"_{shape}3")
    cand = OUT / f"cand_{tag}" / "fineweb_val_000000.bin"
    src = OUT / f"src_{tag}" / "fineweb_val_000000.bin"
    meta = OUT / f"sp1024_{tag}.meta.npz"
    if not (cand.exists() and src.exists() and meta.exists()):
        tok = SentencePieceTokenizer.load(MODEL)
        rng = np.random.default_rng(seed)
        if shape == "multilingual":
            full = multilingual_stream(tok, n_docs, n_tokens, rng)
            for path, toks in ((src, full), (cand, respell(tok, full, rng))):
                path.parent.mkdir(parents=True, exist_ok=True)
                write_shard(path, toks)
            tok.canonical_meta().save(meta)
            return {"cand": str(cand), "src": str(src), "meta": str(meta)}
        # a lone `▁` at a document start makes decode drop the next piece's space too (a real
        # decoder effect the audit reports); leave it out so the synthetic set is exact
        pieces = np.array([i for i in range(260, tok.vocab_size) if tok.pieces[i] != "\u2581"])
        p = 1.0 / np.arange(1, pieces.size + 1) ** 0.9
        body = n_tokens - n_docs
        stream = rng.choice(pieces, size=body, p=p / p.sum()).astype(np.uint16)
        # valid multi-byte characters spelled as byte pieces (byte fallback), ~1 per 400 tokens
        chars = [c.encode() for c in "éßİıЖж中文🙂ẞ€"]
        # at multiples of 8 so characters never overlap and no document cut falls inside one
        at = np.sort(rng.choice(body // 8 - 1, size=body // 400, replace=False)) * 8
        for k, i in enumerate(at.tolist()):
            b = chars[k % len(chars)]
            stream[i:i + len(b)] = np.frombuffer(b, np.uint8).astype(np.uint16) + 4
        # document boundaries: lengths drawn around the mean, BOS inserted before each
        cuts = np.sort(rng.choice(np.arange(1, body // 8), size=n_docs - 1, replace=False)) * 8
        full = np.insert(stream, np.concatenate([[0], cuts]), 1)
        for path, toks in ((src, full), (cand, respell(tok, full, rng))):
            path.parent.mkdir(parents=True, exist_ok=True)
            write_shard(path, toks)
        if not meta.exists():
            tok.canonical_meta().save(meta)
    return {"cand": str(cand), "src": str(src), "meta": str(meta)}


def multilingual_stream(tok, n_docs: int, n_tokens: int, rng, piece_share: float = 0.45) -> np.ndarray:
    """BOS-delimited documents of units: a merged piece (share `piece_share` of the units, Zipf
    over the pieces) or one character of SCRIPTS spelled as its UTF-8 byte pieces. Documents
    start on unit boundaries, so every byte run is valid UTF-8 and the set is exact."""
    pieces = np.array([i for i in range(260, tok.vocab_size) if tok.pieces[i] != "\u2581"])
    p = 1.0 / np.arange(1, pieces.size + 1) ** 0.9
    chars = [c.encode() for c in SCRIPTS]
    clen = np.array([len(c) for c in chars], np.int64)
    cflat = np.frombuffer(b"".join(chars), np.uint8).astype(np.uint16) + 4  # byte b is id b + 4
    coff = np.concatenate([[0], np.cumsum(clen)[:-1]])
    body = n_tokens - n_docs
    mean_len = piece_share + (1 - piece_share) * clen.mean()
    n_units = int(body / mean_len) + 1
    is_piece = rng.random(n_units) < piece_share
    which = np.where(is_piece, rng.choice(pieces, size=n_units, p=p / p.sum()),
                     rng.integers(0, len(chars), n_units))
    ulen = np.where(is_piece, 1, clen[np.where(is_piece, 0, which)])
    ustart = np.cumsum(ulen) - ulen
    n_units = int(np.searchsorted(ustart, body, side="right"))  # whole units up to ~body tokens
    is_piece, which, ulen, ustart = is_piece[:n_units], which[:n_units], ulen[:n_units], ustart[:n_units]
    unit = np.repeat(np.arange(n_units), ulen)
    within = np.arange(len(unit)) - ustart[unit]
    stream = np.where(is_piece[unit], which[unit],
                      cflat[coff[np.where(is_piece, 0, which)][unit] + within]).astype(np.uint16)
    cuts = np.sort(rng.choice(np.arange(1, n_units), size=n_docs - 1, replace=False))
    return np.insert(stream, np.concatenate([[0], ustart[cuts]]), 1)


def respell(tok, full: np.ndarray, rng, every: int = 20) -> np.ndarray:
    """The same bytes in other tokens: ~1 in `every` merged pieces (never a document's first
    token, whose leading space DecodeIds drops) replaced by the byte pieces of its surface."""
    surface = tok.id_bytes()
    is_piece = np.zeros(tok.vocab_size, bool)
    is_piece[260:] = True
    bos = np.flatnonzero(full == 1)
    firsts = bos[bos + 1 < len(full)] + 1
    pick = np.flatnonzero(is_piece[full] & (rng.random(len(full)) < 1 / every))
    pick = np.setdiff1d(pick, firsts)
    spelled = [np.frombuffer(surface[i], np.uint8).astype(np.uint16) + 4 for i in range(tok.vocab_size)]
    counts = np.ones(len(full), np.int64)
    lens = np.array([len(x) for x in spelled])
    counts[pick] = lens[full[pick]]
    out = np.repeat(full, counts)  # placeholders, then the byte pieces written over them
    at = np.cumsum(counts) - counts
    for i in np.unique(full[pick]).tolist():
        where = at[pick[full[pick] == i]]
        for j, v in enumerate(spelled[i].tolist()):
            out[where + j] = v
    return out


def measure(mode: str, files: dict) -> dict:
    from audit.tokenizer_audit import audit_tokenizer

    t0 = time.perf_counter()
    kw = dict(val=files["cand"], bos_id=1)
    if mode in ("decoded", "source"):
        kw["tokenizer"] = str(MODEL)
    if mode == "source":
        kw.update(source="sp1024", source_val=files["src"], source_tokenizer=str(MODEL))
    (rep,) = audit_tokenizer(files["meta"], seq_len=1024, stride=64, **kw)
    wall = time.perf_counter() - t0
    return {"mode": mode, "wall_s": round(wall, 3), "peak_rss_mb": round(peak_rss_mb(), 1),
            "passed": rep.passed, "exact": rep.summary.get("exact"),
            "meta_bytes": rep.summary.get("meta bytes (documents)"),
            "decoded_bytes": rep.summary.get("decoded bytes"), "source_bytes": rep.summary.get("source bytes"),
            "documents": rep.summary.get("documents"), "tokens": rep.summary.get("val tokens")}


def split_loop(tokens: np.ndarray) -> list[list[int]]:
    """The straightforward split: one Python step per token."""
    docs, cur = [], None
    for t in tokens.tolist():
        if t == 1:
            if cur is not None:
                docs.append(cur)
            cur = []
        else:
            cur.append(t)
    docs.append(cur)
    return docs


def naive(files: dict, mode: str) -> dict:
    """The straightforward approach on all documents: `decoded` = split the candidate + DecodeIds
    per document; `source` = that for both streams, the formula per document, and comparisons."""
    import sentencepiece as spm

    from audit.formats.meta import load_meta
    from audit.formats.shards import read_shard

    sp = spm.SentencePieceProcessor(model_file=str(MODEL))
    meta = load_meta(files["meta"])
    base = meta.base_bytes.astype(np.int64)
    ls, bd = meta.has_leading_space, meta.is_boundary_token
    t0 = time.perf_counter()
    cand = split_loop(read_shard(files["cand"]))
    decoded = [sp.decode_ids(d).encode("utf-8") for d in cand]
    out = {"docs": len(cand), "decoded_bytes": sum(map(len, decoded))}
    if mode == "source":
        src = split_loop(read_shard(files["src"]))
        meta_total = source_total = bad = 0
        for c, s, dec in zip(cand, src, decoded):
            sb = sp.decode_ids(s).encode("utf-8")
            y = np.array(c, dtype=np.int64)
            x = np.concatenate([[1], y[:-1]])  # the BOS precedes every document
            m = int(base[y].sum() + (ls[y] & ~bd[x]).sum())
            meta_total += m
            source_total += len(sb)
            bad += (dec != sb) or (m != len(sb))
        out.update(meta_bytes=meta_total, source_bytes=source_total, bad_docs=bad)
    out["wall_s"] = round(time.perf_counter() - t0, 3)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return out


def child(mode: str, files: dict, extra: list[str] = ()) -> dict:
    r = subprocess.run([sys.executable, __file__, "--child", mode, "--files", json.dumps(files), *extra],
                       capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if r.returncode:
        sys.exit(f"{mode} failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=("english", "multilingual"), default="english")
    ap.add_argument("--docs", type=int, help="documents (default 50,000; multilingual 5,000)")
    ap.add_argument("--tokens", type=int, default=62_100_000)
    ap.add_argument("--repeat", type=int, default=3, help="fresh-process runs of each audit mode (median reported)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--files", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.docs is None:
        a.docs = 5_000 if a.shape == "multilingual" else 50_000
    if a.child == "build":
        print(json.dumps(build(a.docs, a.tokens, shape=a.shape)))
        return
    if a.child:
        files = json.loads(a.files)
        print(json.dumps(naive(files, a.child[6:]) if a.child.startswith("naive-") else measure(a.child, files)))
        return
    if not MODEL.exists():
        sys.exit(f"needs {MODEL} (the ../shared fixtures)")
    t0 = time.perf_counter()
    # built in a child so this process stays small (ru_maxrss survives fork+exec on Linux)
    files = child("build", {}, ["--docs", str(a.docs), "--tokens", str(a.tokens), "--shape", a.shape])
    print(f"synthetic set ready in {time.perf_counter() - t0:.1f} s: {files['cand']}")
    modes = ("meta", "decoded", "source", "naive-decoded", "naive-source")
    runs: dict[str, list[dict]] = {m: [] for m in modes}
    for _ in range(a.repeat):  # interleaved, baselines too, so a slow spell of the machine hits every mode
        for mode in modes:
            runs[mode].append(child(mode, files))
    results = {}
    for mode, rs in runs.items():
        walls = sorted(r["wall_s"] for r in rs)
        results[mode] = {**rs[0], "wall_s": walls[len(walls) // 2], "wall_all_s": [r["wall_s"] for r in rs],
                         "peak_rss_mb": max(r["peak_rss_mb"] for r in rs)}
        print(f"{mode:14s} {json.dumps(results[mode])}")
    src, nv = results["source"], results["naive-source"]
    assert src["source_bytes"] == nv["source_bytes"] and src["meta_bytes"] == nv["meta_bytes"], "the two disagree"
    sp_dec = results["naive-decoded"]["wall_s"] / results["decoded"]["wall_s"]
    sp_src = nv["wall_s"] / src["wall_s"]
    print(f"three-way audit (source = meta = decoded over {src['documents']:,} documents): {src['wall_s']} s "
          f"vs the straightforward approach {nv['wall_s']} s: {sp_src:.1f}× faster")
    print(f"decoded audit: {results['decoded']['wall_s']} s vs split + DecodeIds per document "
          f"{results['naive-decoded']['wall_s']} s: {sp_dec:.1f}× faster")
    print(json.dumps({"bench": "tokenizer_audit" + ("" if a.shape == "english" else f"_{a.shape}"),
                      "shape": a.shape, "cpus": os.cpu_count(), "docs": a.docs,
                      "source_tokens": a.tokens, "candidate_tokens": src["tokens"], "repeat": a.repeat,
                      **{f"{m}_wall_s": results[m]["wall_s"] for m in ("meta", "decoded", "source")},
                      **{f"{m}_peak_rss_mb": results[m]["peak_rss_mb"] for m in ("meta", "decoded", "source")},
                      "naive_decoded_s": results["naive-decoded"]["wall_s"], "naive_source_s": nv["wall_s"],
                      "speedup_source": round(sp_src, 1), "speedup_decoded": round(sp_dec, 1),
                      "exact": src["exact"], "naive_bad_docs": nv["bad_docs"]}))


if __name__ == "__main__":
    main()
