"""Full-val-scale benchmark of the TokenMonster decode-and-audit (not a test).

Builds (once, cached in benchmarks/out/, git-ignored) two synthetic val streams of ≥ 64 M tokens
over 50,000 documents: the project's multilingual corpus encoded with the REAL scylla-1254 vocab
(capcode 0, BOS 1253) and with the REAL scylla-998 vocab (capcode 2; BOS = id 998, one past the
vocabulary, since that bundle has none), tiled to full-val size. Then, each in a fresh child process,
it runs `audit_tokenizer(meta, tokenizer=vocab, val=stream)` (static TM checks, the meta formula,
decoding every document, per-document comparison with the meta) and times it.
Prints wall seconds, peak RSS, and one JSON line of figures.

    .venv/bin/python benchmarks/bench_tokenmonster.py [--docs 50000] [--tokens 64100000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "out"
SHARED = ROOT.parent / "shared" / "fixtures" / "tokenizers"
BUNDLES = {"capcode0": (SHARED / "scylla-1254" / "scylla.yaml", SHARED / "scylla-1254" / "scylla.meta.npz"),
           "capcode2": (SHARED / "scylla-998" / "candidate.vocab", SHARED / "scylla-998" / "candidate.meta.npz")}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(kind: str, n_docs: int, n_tokens: int) -> dict:
    from audit.formats.meta import MetaTable, load_meta
    from audit.formats.shards import write_shard
    from audit.tokenizers import load_tokenizer
    from fixtures.corpus import corpus_documents

    folder = OUT / f"tm_{kind}_{n_docs}_{n_tokens}"
    shard = folder / "fineweb_val_000000.bin"
    vocab, meta_path = BUNDLES[kind]
    tok = load_tokenizer(vocab)
    bos = tok.special.bos if tok.special.bos is not None else tok.vocab_size
    meta_out = folder / "meta.npz"
    if not shard.exists():
        folder.mkdir(parents=True, exist_ok=True)
        docs = [tok.encode(t) for t in corpus_documents(2000, seed=99)]
        per_doc = n_tokens // n_docs
        rng = np.random.default_rng(0)
        parts = []
        for k in range(n_docs):  # each document: corpus documents joined until it has ~per_doc tokens
            ids: list[int] = []
            while len(ids) < per_doc:
                ids.extend(docs[int(rng.integers(len(docs)))])
            parts.append(np.asarray([bos] + ids[:per_doc + int(rng.integers(0, 3))], dtype=np.uint16))
        write_shard(shard, np.concatenate(parts))
        m = load_meta(meta_path)
        if len(m) <= bos:  # pad with an inert BOS row
            m = MetaTable(np.append(m.base_bytes, 0), np.append(m.has_leading_space, False),
                          np.append(m.is_boundary_token, True))
        if not meta_out.exists():
            m.save(meta_out)
    return {"shard": str(shard), "meta": str(meta_out), "vocab": str(vocab), "bos": int(bos)}


def measure(files: dict) -> dict:
    from audit.formats.shards import read_shard
    from audit.tokenizer_audit import audit_tokenizer

    t0 = time.perf_counter()
    reps = audit_tokenizer(files["meta"], tokenizer=files["vocab"], val=files["shard"], bos_id=files["bos"])
    wall = time.perf_counter() - t0
    s = reps[0].summary
    n = len(read_shard(files["shard"]))
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(peak_rss_mb()), "tokens": n,
            "documents": s.get("documents"), "decoded_bytes": s.get("decoded bytes"),
            "meta_bytes": s.get("meta bytes (documents)")}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=50000)
    ap.add_argument("--tokens", type=int, default=64_100_000)
    ap.add_argument("--child", choices=["build", "measure"])
    ap.add_argument("--kind", choices=sorted(BUNDLES))
    ap.add_argument("--files")
    a = ap.parse_args()
    if a.child == "build":
        print(json.dumps(build(a.kind, a.docs, a.tokens)))
        return 0
    if a.child == "measure":
        print(json.dumps(measure(json.loads(a.files))))
        return 0
    if not all(p.exists() for pair in BUNDLES.values() for p in pair):
        print(f"skipped: the real Scylla bundles are not in {SHARED}")
        return 0
    results = {}
    for kind in sorted(BUNDLES):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, __file__, "--child", "build", "--kind", kind, "--docs", str(a.docs),
                            "--tokens", str(a.tokens)], capture_output=True, text=True, check=True)
        files = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"{kind}: stream ready in {time.perf_counter() - t0:.1f} s: {files['shard']}")
        r = subprocess.run([sys.executable, __file__, "--child", "measure", "--files", json.dumps(files)],
                           capture_output=True, text=True, check=True)
        results[kind] = json.loads(r.stdout.strip().splitlines()[-1])
        x = results[kind]
        print(f"{kind}: {x['tokens']:,} tokens, {x['documents']:,} documents: decode-and-audit {x['wall_s']} s, "
              f"peak RSS {x['peak_rss_mb']} MB")
    print(json.dumps({"benchmark": "tokenmonster", **results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
