"""Full-val-scale benchmark of the tokenizer audit (not a test).

Builds (once, cached in benchmarks/out/) a synthetic val set shaped like the challenge's:
50,000 documents, ≥ 62 M tokens of the REAL sp1024 model (ids sampled from its merged pieces with
a Zipf-like law, plus valid multi-byte characters spelled as byte pieces), BOS 1 before every
document. The same stream serves as candidate and as sp1024 source reference (written twice, so
both are read and decoded independently). Then it times, each in a fresh child process:

  meta     the evaluator formula over the stream (totals, plain rows, per document)
  decoded  + static checks and decoding every document with the vectorised SentencePiece decoder
  source   + decoding the reference stream and the document-by-document comparison

and the straightforward approach (Python loop splitting documents + sentencepiece DecodeIds per
document) on all documents by default (a subset with --naive-docs, extrapolated by token count and said so in the
output). Prints wall seconds, peak RSS, the speed-up, and one JSON line of figures.

    .venv/bin/python benchmarks/bench_tokenizer_audit.py [--docs 50000] [--tokens 62100000]
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


def build(n_docs: int, n_tokens: int, seed: int = 0) -> dict:
    from audit.formats.shards import write_shard
    from audit.tokenizers.sentencepiece_model import SentencePieceTokenizer

    OUT.mkdir(parents=True, exist_ok=True)
    tag = f"{n_docs}_{n_tokens}_{seed}"
    cand = OUT / f"cand_{tag}" / "fineweb_val_000000.bin"
    src = OUT / f"src_{tag}" / "fineweb_val_000000.bin"
    meta = OUT / f"sp1024_{tag}.meta.npz"
    if not (cand.exists() and src.exists() and meta.exists()):
        tok = SentencePieceTokenizer.load(MODEL)
        rng = np.random.default_rng(seed)
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
        for path in (cand, src):
            path.parent.mkdir(parents=True, exist_ok=True)
            write_shard(path, full)
        if not meta.exists():
            tok.canonical_meta().save(meta)
    return {"cand": str(cand), "src": str(src), "meta": str(meta)}


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


def naive(files: dict, subset_docs: int) -> dict:
    """Python loop splitting documents + per-document sentencepiece DecodeIds, on the first docs."""
    import sentencepiece as spm

    from audit.formats.shards import read_shard

    sp = spm.SentencePieceProcessor(model_file=str(MODEL))
    tokens = read_shard(files["cand"])
    n_total = len(tokens)
    # Only the subset's tokens are converted and walked, so a subset's time scales fairly.
    bos = np.flatnonzero(tokens == 1)
    stop = int(bos[subset_docs]) if subset_docs < len(bos) else n_total
    t0 = time.perf_counter()
    docs, cur, n_seen = [], None, 0
    for t in tokens[:stop].tolist():  # the straightforward split: one Python step per token
        if t == 1:
            if cur is not None:
                docs.append(cur)
            cur = []
        else:
            cur.append(t)
        n_seen += 1
    else:
        docs.append(cur)
    total_bytes = 0
    for d in docs:
        total_bytes += len(sp.decode_ids(d).encode("utf-8"))
    wall = time.perf_counter() - t0
    return {"subset_docs": len(docs), "subset_tokens": n_seen, "wall_s": round(wall, 3),
            "bytes": total_bytes, "extrapolated_full_s": round(wall * n_total / max(n_seen, 1), 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=50_000)
    ap.add_argument("--tokens", type=int, default=62_100_000)
    ap.add_argument("--naive-docs", type=int, default=50_000,
                    help="documents the naive approach runs over (default: all; fewer = extrapolated)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--files", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child == "build":
        print(json.dumps(build(a.docs, a.tokens)))
        return
    if a.child:
        files = json.loads(a.files)
        print(json.dumps(naive(files, a.naive_docs) if a.child == "naive" else measure(a.child, files)))
        return
    if not MODEL.exists():
        sys.exit(f"needs {MODEL} (the ../shared fixtures)")
    t0 = time.perf_counter()
    # built in a child so this process stays small (ru_maxrss survives fork+exec on Linux)
    r = subprocess.run([sys.executable, __file__, "--child", "build", "--docs", str(a.docs), "--tokens", str(a.tokens)],
                       capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if r.returncode:
        sys.exit(f"build failed: {r.stderr[-2000:]}")
    files = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"synthetic set ready in {time.perf_counter() - t0:.1f} s: {files['cand']}")
    results = {}
    for mode in ("meta", "decoded", "source", "naive"):
        r = subprocess.run([sys.executable, __file__, "--child", mode, "--files", json.dumps(files),
                            "--naive-docs", str(a.naive_docs)], capture_output=True, text=True, cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
        if r.returncode:
            sys.exit(f"{mode} failed: {r.stderr[-2000:]}")
        results[mode] = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"{mode:8s} {json.dumps(results[mode])}")
    nv = results["naive"]
    if nv["subset_docs"] >= a.docs:
        print(f"naive approach measured on all {nv['subset_docs']:,} documents: {nv['wall_s']} s")
    else:
        print(f"naive approach measured on {nv['subset_docs']:,} documents ({nv['subset_tokens']:,} tokens) "
              f"in {nv['wall_s']} s and EXTRAPOLATED by token count to the full set: {nv['extrapolated_full_s']} s")
    speedup = nv["extrapolated_full_s"] / results["decoded"]["wall_s"]
    print(f"speed-up of the decoded audit over the naive approach: {speedup:.1f}×  "
          f"(full source audit: {nv['extrapolated_full_s'] / results['source']['wall_s']:.1f}×)")
    print(json.dumps({"bench": "tokenizer_audit", "cpus": os.cpu_count(), "docs": a.docs,
                      "tokens": results["source"]["tokens"],
                      **{f"{m}_wall_s": results[m]["wall_s"] for m in ("meta", "decoded", "source")},
                      **{f"{m}_peak_rss_mb": results[m]["peak_rss_mb"] for m in ("meta", "decoded", "source")},
                      "naive_extrapolated_s": nv["extrapolated_full_s"], "naive_subset_docs": nv["subset_docs"],
                      "speedup_decoded": round(speedup, 1), "exact": results["source"]["exact"]}))


if __name__ == "__main__":
    main()
