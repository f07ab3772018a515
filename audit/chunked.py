"""Chunked, threaded passes over token streams of tens of millions of ids.

Why chunks: numpy casts a uint16 index array to intp before any gather, so one whole-stream
lookup over 62 M ids allocates ~500 MB of fresh memory, and fresh pages (first touch, above
all in a VM) cost more than the arithmetic. Chunks of CHUNK ids keep every temporary at a few
MB, in per-thread scratch buffers reused chunk after chunk. Why threads: numpy releases the
GIL inside its large loops (take, cumsum, comparisons), so chunks run side by side on the cores.

`GOLFCHECK_THREADS` sets the number of worker threads (default: the CPU count, at most 8).
"""

from __future__ import annotations

import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

import numpy as np

CHUNK = 1 << 18  # stream positions per step (measured: 2**18 beats 2**16 and 2**20 on 2 cores)

T = TypeVar("T")
_POOL: ThreadPoolExecutor | None = None
_POOL_KEY: tuple[int, int] = (0, 0)


def workers() -> int:
    env = os.environ.get("GOLFCHECK_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(os.cpu_count() or 1, 8))


def pmap(fn: Callable[[int], T], n: int) -> list[T]:
    """[fn(0), …, fn(n-1)], on the worker threads when there is more than one item."""
    global _POOL, _POOL_KEY
    w = workers()
    if w == 1 or n <= 1 or threading.current_thread().name.startswith("golfcheck"):  # (never nest)
        return [fn(i) for i in range(n)]
    if _POOL is None or _POOL_KEY != (w, os.getpid()):  # (a forked child needs its own threads)
        _POOL, _POOL_KEY = ThreadPoolExecutor(w, thread_name_prefix="golfcheck"), (w, os.getpid())
    return list(_POOL.map(fn, range(n)))


_SCRATCH: dict[tuple[int, str], np.ndarray] = {}


def scratch(name: str, size: int, dtype) -> np.ndarray:
    """A reusable per-thread buffer of at least `size` items (its first `size` returned): chunk
    after chunk the same memory, instead of fresh pages for every temporary. `release()` frees
    them all."""
    key = (threading.get_ident(), name)
    dtype = np.dtype(dtype)
    buf = _SCRATCH.get(key)
    if buf is None or buf.dtype != dtype or len(buf) < size:
        buf = _SCRATCH[key] = np.empty(max(size, CHUNK), dtype=dtype)
    return buf[:size]


def release() -> None:
    _SCRATCH.clear()


def bounds(n: int, chunk: int | None = None) -> np.ndarray:
    """Chunk edges 0, chunk, 2·chunk, …, n (at least [0, n]); chunk defaults to CHUNK."""
    chunk = chunk or CHUNK
    return np.append(np.arange(0, n, chunk, dtype=np.int64), n) if n else np.array([0, 0], np.int64)


def _each(n: int, fn: Callable[[int, int], T], chunk: int | None = None) -> list[T]:
    edges = bounds(n, chunk)
    return pmap(lambda k: fn(int(edges[k]), int(edges[k + 1])), len(edges) - 1)


def where_equal(values: np.ndarray, x: int) -> np.ndarray:
    """np.flatnonzero(values == x) without the whole-stream boolean temporary."""
    return np.concatenate(_each(len(values), lambda a, b: np.flatnonzero(values[a:b] == x) + a))


def split_documents(tokens: np.ndarray, bos_id: int) -> tuple[np.ndarray, np.ndarray]:
    """audit.formats.shards.split_documents, on the worker threads."""
    from audit.formats.shards import spans_from_bos

    return spans_from_bos(where_equal(tokens, bos_id), len(tokens))


def count_equal(values: np.ndarray, x: int) -> int:
    return sum(_each(len(values), lambda a, b: int(np.count_nonzero(values[a:b] == x))))


_MAX: dict[int, tuple] = {}


def _read_only(a) -> bool:
    """No writable array anywhere in a's chain of bases (a view of a writable array may change)."""
    while isinstance(a, np.ndarray):
        if a.flags.writeable:
            return False
        a = a.base
    return True


def maximum(values: np.ndarray) -> int:
    """values.max() on the worker threads (values must be non-empty). Several steps of one audit
    ask it of the same val stream; for a read-only array (a shard is mapped read-only) the
    answer is remembered while that very array object lives (weakref), not recomputed."""
    key = id(values)
    hit = _MAX.get(key)
    if hit is not None and hit[0]() is values:
        return hit[1]
    mx = max(_each(len(values), lambda a, b: int(values[a:b].max())))
    if _read_only(values):
        try:
            _MAX[key] = (weakref.ref(values, lambda _r, k=key: _MAX.pop(k, None)), mx)
        except TypeError:  # not weak-referenceable
            pass
    return mx


def equal(a: np.ndarray, b: np.ndarray) -> bool:
    """np.array_equal for long 1-D arrays, chunk by chunk."""
    if a.shape != b.shape:
        return False
    return all(_each(len(a), lambda i, j: bool(np.array_equal(a[i:j], b[i:j])), chunk=16 * CHUNK))


def locate(points: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """For sorted points, where each chunk's points begin: points[r[k]:r[k+1]] lie in chunk k."""
    r = np.searchsorted(points, edges, side="left")
    r[-1] = len(points)
    return r


def prefix_at(values: Callable[[int, int], np.ndarray], n: int, points: np.ndarray,
              chunk: int | None = None, extra: Callable[[int, int, np.ndarray], object] | None = None):
    """sum(v[:p]) (int64) for every point p in [0, n], where v[a:b] = values(a, b), one chunk at
    a time. Returns (prefix sums in the order of `points`, total, [extra(a, b, v) per chunk])."""
    points = np.asarray(points, dtype=np.int64)
    order = np.argsort(points, kind="stable")
    pts = points[order]
    edges = bounds(n, chunk)
    r = locate(pts, edges)

    def step(k: int):
        a, b = int(edges[k]), int(edges[k + 1])
        v = values(a, b)
        local = pts[r[k]:r[k + 1]] - a  # sorted, 0 ≤ local < b - a
        at, total = prefix_within(v, local)
        return at, total, (extra(a, b, v) if extra is not None else None)

    parts = pmap(step, len(edges) - 1)
    totals = np.array([p[1] for p in parts], dtype=np.int64)
    base = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum(totals, out=base[1:])
    out_sorted = np.empty(len(pts), dtype=np.int64)
    for k, p in enumerate(parts):
        out_sorted[r[k]:r[k + 1]] = p[0] + base[k]
    out_sorted[pts >= n] = base[-1]  # points at the very end
    out = np.empty_like(out_sorted)
    out[order] = out_sorted
    return out, int(base[-1]), [p[2] for p in parts]


def prefix_within(v: np.ndarray, local: np.ndarray) -> tuple[np.ndarray, int]:
    """(sum(v[:p]) for each sorted p in `local`, sum(v)). Segment sums between the points
    (np.add.reduceat) instead of a running sum over every position: a plain sum vectorises,
    a cumulative one does not (measured 10× less CPU per chunk)."""
    n = len(v)
    cut = np.unique(local[(local > 0) & (local < n)])  # reduceat needs strictly increasing cuts
    if cut.size == 0:
        total = int(v.sum(dtype=np.int64)) if n else 0
        return np.where(local >= n, total, 0).astype(np.int64), total
    seg = np.add.reduceat(v, np.concatenate([[0], cut]), dtype=np.int64)
    run = np.cumsum(seg)  # run[j] = sum(v[:cut[j]]) for j < len(cut); run[-1] = sum(v)
    pre = np.concatenate([[0], run])  # prefix at 0, cut[0], cut[1], …, n
    at = np.searchsorted(cut, local, side="right")
    at[local >= n] = len(pre) - 1
    return pre[at], int(run[-1])
