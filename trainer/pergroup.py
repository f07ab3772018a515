"""Per-group compression of the quantized container (`compressor = "pergroup"`).

`serialize` writes one container: a JSON header, then every array's bytes back to back. Here the
arrays are regrouped by role before compression: the int8 code matrices of one role (the same
weight name in every layer, e.g. all `blocks.*.attn.q.weight`, at one width and bit count) are
stacked into one matrix; the embedding is a role of its own; every other array (scales, float16
passthrough, LQER factors) joins the arrays of the same kind and dtype. Each group is then stored
in the layout that compresses smallest, among:

- rows as they are, or reordered so similar rows are adjacent (`similarity_order`; the
  permutation is stored in front of the rows), each row-major or column-major (one column of
  codes = one input feature of every row, which share a scale when features differ in size);
- for the other groups: bytes as they are, or byte-shuffled by item size (the low bytes of the
  float16 values together, then the high bytes);

with brotli or lzma, whichever is smaller, in frames of FRAME_BYTES compressed on all cores.

The format, little-endian, self-describing by its magic and version:
    MAGIC "GCPG" | u8 version | u32 crc32 of the restored container | u32 stream count
    per stream: u8 codec | u8 layout | u32 raw bytes | u32 frame count | u32 size of each frame
    the frames, in stream order
Stream 0 is the container's JSON header; stream k ≥ 1 is group k−1 of `plan_groups(header)`,
which the reader recomputes, so no group membership is stored. `unpack_pergroup` returns the
exact bytes `pack_pergroup` was given (checked by the crc). Every size is checked before it is
used, and decoded frames are bounded by their declared size: hostile input is a ValueError.

Measured (benchmarks/bench_trainer.py, 2 CPU cores; no trained record-size weights exist here, so
synthetic Gaussian weights through the record preset's export, 35,945,671 parameters): brotli-11
after the record's byte shuffle 15,900,377 B, pergroup 15,889,764 B (-0.07 %, 4.7x the time)
when every column is alike; 15,402,805 B vs 14,469,168 B (-6.1 %, all from column-major
layouts) when columns are scaled by exp(0.5 z). Neither sort nor lzma won a group there. On a
tiny model trained 250 steps: 312,869 B vs 308,689 B (-1.3 %), its embedding sorted, column-major,
lzma. The similarity order pays on near-duplicate rows (tests/test_trainer_pergroup.py).
"""

from __future__ import annotations

import json
import lzma
import os
import re
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import brotli
import numpy as np

PG_MAGIC = b"GCPG"
PG_VERSION = 1
FRAME_BYTES = 1 << 21  # 2 MiB: frames compress in parallel; the same size whatever the machine
MAX_RAW_BYTES = 1 << 30  # the restored container: 64x the 16 MB artifact limit
MAX_HEADER_BYTES = 1 << 24
CODECS = ("brotli", "lzma")
SORTED, COLUMNS, SHUFFLED = 1, 2, 4  # layout flags
ROW_LAYOUTS = (0, SORTED, COLUMNS, SORTED | COLUMNS)
SORT_BLOCK = 256  # rows per greedy nearest-neighbour block
SIGNATURE_DIMS = 16
_CONTAINER_MAGIC = b"GCQ1"  # trainer.quant.QMAGIC (not imported: quant imports this module)
_STREAM = struct.Struct("<BBII")


# --- the container's arrays and their groups ----------------------------------------------------
def container_arrays(header: bytes) -> list[dict]:
    """The arrays a container header lists, in file order: name, kind, key, shape, item size,
    byte offset and size, bits. Raises ValueError unless they lie back to back from offset 0 (the
    layout `serialize` writes) with sizes that match their shapes, all under MAX_RAW_BYTES."""
    try:
        tensors = json.loads(header)["tensors"]
        out, off = [], 0
        for rec in tensors:
            for key in ("q", "scale", "data"):
                if key in rec:
                    out.append(_array_spec(rec, key, off))
                    off += out[-1]["nbytes"]
                    if off > MAX_RAW_BYTES:
                        raise ValueError(f"arrays exceed {MAX_RAW_BYTES} bytes")
    except (KeyError, TypeError, AttributeError, UnicodeDecodeError, RecursionError, json.JSONDecodeError) as e:
        raise ValueError(f"malformed container header ({type(e).__name__}: {e})") from None
    return out


def _array_spec(rec: dict, key: str, expected_offset: int) -> dict:
    r = rec[key]
    shape = r["shape"]
    if not (isinstance(shape, list) and len(shape) <= 8 and all(type(n) is int and 0 <= n < 1 << 40 for n in shape)):
        raise ValueError(f"bad shape {shape!r}")
    try:
        itemsize = np.dtype(str(r["np"])).itemsize
    except (TypeError, ValueError, SyntaxError, OverflowError) as e:
        raise ValueError(f"bad dtype {r['np']!r}") from e
    bits = rec.get("bits")
    if bits is not None and type(bits) is not int:
        raise ValueError(f"bad bit count {bits!r}")
    count = int(np.prod(shape, dtype=object))
    if not 1 <= itemsize <= 16 or r["nbytes"] != count * itemsize or r["offset"] != expected_offset:
        raise ValueError(f"array {rec['name']!r}/{key}: size or offset does not match its shape and position")
    return {"name": str(rec["name"]), "kind": rec["kind"], "key": key, "shape": shape, "itemsize": itemsize,
            "offset": expected_offset, "nbytes": count * itemsize, "bits": bits}


def _role(a: dict) -> tuple:
    """Code matrices group by weight name without its layer index, width and bit count; other
    arrays by what they are (codes, scales, data) and item size."""
    if a["kind"] == "q" and a["key"] == "q" and a["itemsize"] == 1 and len(a["shape"]) == 2 and a["shape"][1]:
        return ("rows", re.sub(r"\.\d+\.", ".*.", a["name"]), a["shape"][1], a["bits"])
    return ("bytes", a["key"], a["itemsize"])


def plan_groups(arrays: list[dict]) -> list[tuple[tuple, list[dict]]]:
    """(role, member arrays) in order of first appearance: deterministic from the header alone."""
    groups: dict[tuple, list[dict]] = {}
    for a in arrays:
        groups.setdefault(_role(a), []).append(a)
    return list(groups.items())


# --- the similarity order -----------------------------------------------------------------------
def similarity_order(rows: np.ndarray) -> np.ndarray:
    """An order of the rows of an int8 matrix that puts similar rows next to each other, so the
    compressor finds a row's near-copy close behind it (short match distances, inside its window
    and frame). Exact nearest-neighbour chaining is O(R²·C); instead each row gets a coarse
    integer signature (its projections on SIGNATURE_DIMS fixed random ±1 directions), rows are
    sorted by the first projection, and within blocks of SORT_BLOCK consecutive rows a greedy
    chain always steps to the nearest unvisited signature: O(R·(C + SORT_BLOCK)·16). On copies
    of a few prototypes with noise this is within 1 % of the full greedy chain (measured while
    building it). Integer arithmetic throughout: the order is the same on every machine."""
    n, c = rows.shape
    if n < 3:
        return np.arange(n)
    signs = np.random.default_rng(20260429).integers(0, 2, (c, SIGNATURE_DIMS), dtype=np.int64) * 2 - 1
    sig = rows.astype(np.int64) @ signs
    coarse = np.argsort(sig[:, 0], kind="stable")
    order = [_greedy_chain(sig[block]) + i for i, block in
             ((i, coarse[i:i + SORT_BLOCK]) for i in range(0, n, SORT_BLOCK))]
    return coarse[np.concatenate(order)]


def _greedy_chain(sig: np.ndarray) -> np.ndarray:
    """Positions 0..len-1 of `sig` visited from the first, always to the nearest unvisited one."""
    n = len(sig)
    left = np.ones(n, dtype=bool)
    chain = np.empty(n, dtype=np.int64)
    cur = 0
    for k in range(n):
        chain[k], left[cur] = cur, False
        if k + 1 < n:
            d = np.square(sig - sig[cur]).sum(axis=1)
            d[~left] = np.iinfo(np.int64).max
            cur = int(d.argmin())
    return chain


def _perm_dtype(n: int) -> np.dtype:
    return np.dtype("u1" if n <= 1 << 8 else "<u2" if n <= 1 << 16 else "<u4")


# --- layouts ------------------------------------------------------------------------------------
def layouts_for(role: tuple) -> tuple[int, ...]:
    """The layouts pack_pergroup tries for a group."""
    if role[0] == "rows":
        return ROW_LAYOUTS
    return (0, SHUFFLED) if role[2] > 1 else (0,)


def layout_valid(role: tuple, layout: int) -> bool:
    """The layouts the format defines for a group (a reader accepts any of them)."""
    return layout in ((0, SORTED, COLUMNS, SORTED | COLUMNS) if role[0] == "rows" else (0, SHUFFLED))


def encode_layout(role: tuple, payload: bytes, layout: int, order: np.ndarray | None = None) -> bytes:
    """A group's bytes (its members back to back) in the given layout; `order` is the similarity
    order of a code group's rows when already computed."""
    if role[0] == "bytes":
        if not layout & SHUFFLED:
            return payload
        return np.frombuffer(payload, np.uint8).reshape(-1, role[2]).T.tobytes()
    m = np.frombuffer(payload, np.int8).reshape(-1, role[2])
    perm = b""
    if layout & SORTED:
        order = similarity_order(m) if order is None else order
        perm, m = order.astype(_perm_dtype(len(m))).tobytes(), m[order]
    return perm + (m.T if layout & COLUMNS else m).tobytes()


def decode_layout(role: tuple, stream: bytes, layout: int, n_rows: int) -> bytes:
    """The inverse of encode_layout; `stream` has the size stream_bytes() says."""
    if role[0] == "bytes":
        if not layout & SHUFFLED:
            return stream
        return np.frombuffer(stream, np.uint8).reshape(role[2], -1).T.tobytes()
    cols, start, order = role[2], 0, None
    if layout & SORTED:
        pd = _perm_dtype(n_rows)
        start = n_rows * pd.itemsize
        order = np.frombuffer(stream, pd, count=n_rows).astype(np.int64)
        if not np.array_equal(np.sort(order), np.arange(n_rows)):
            raise ValueError("corrupt pergroup stream (the row order is not a permutation)")
    m = np.frombuffer(stream, np.int8, offset=start)
    m = m.reshape(cols, n_rows).T if layout & COLUMNS else m.reshape(n_rows, cols)
    if order is not None:
        back = np.empty_like(m)
        back[order] = m
        m = back
    return np.ascontiguousarray(m).tobytes()


def stream_bytes(role: tuple, members: list[dict], layout: int) -> tuple[int, int]:
    """(bytes of the group's stream in this layout, rows of a code group)."""
    payload = sum(a["nbytes"] for a in members)
    if role[0] != "rows":
        return payload, 0
    n_rows = payload // role[2] if role[2] else 0
    return payload + (n_rows * _perm_dtype(n_rows).itemsize if layout & SORTED else 0), n_rows


# --- codecs in frames ---------------------------------------------------------------------------
def _lzma_filters(level: int) -> list[dict]:
    # raw LZMA2 (no .xz header or check: the container has its crc) with a frame-sized dictionary
    return [{"id": lzma.FILTER_LZMA2, "preset": min(level, 9), "dict_size": FRAME_BYTES}]


def _compress_frame(codec: int, level: int, frame: bytes) -> bytes:
    if CODECS[codec] == "brotli":
        return brotli.compress(frame, quality=min(level, 11))
    return lzma.compress(frame, format=lzma.FORMAT_RAW, filters=_lzma_filters(level))


def _decompress_frame(codec: int, data: bytes, size: int) -> bytes:
    """One frame, ValueError unless it decodes to exactly `size` bytes. The output is bounded: at
    about twice `size` (brotli >= 1.2, lzma), or checked after every 4 KiB of input (older brotli)."""
    try:
        if CODECS[codec] == "brotli":
            out, done = _bounded_brotli(data, size)
        else:
            d = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2,
                                                                          "dict_size": FRAME_BYTES}])
            out = d.decompress(data, max_length=size + 1)
            done = d.eof and not d.unused_data
    except (brotli.error, lzma.LZMAError) as e:
        raise ValueError(f"corrupt pergroup frame ({e})") from None
    if len(out) != size or not done:
        raise ValueError(f"corrupt pergroup frame (does not decode to its {size} bytes)")
    return out


def _bounded_brotli(data: bytes, size: int) -> tuple[bytes, bool]:
    d = brotli.Decompressor()
    try:
        out = d.process(data, output_buffer_limit=size + 1)
    except TypeError:  # brotli < 1.2 has no output limit: feed small pieces and stop once past size
        parts, n = [], 0
        for i in range(0, len(data), 1 << 12):
            parts.append(d.process(data[i:i + (1 << 12)]))
            n += len(parts[-1])
            if n > size:
                break
        out = b"".join(parts)
    return out, d.is_finished()


def _frames(stream: bytes) -> list[bytes]:
    return [stream[i:i + FRAME_BYTES] for i in range(0, len(stream), FRAME_BYTES)]


# --- pack and unpack ----------------------------------------------------------------------------
def _split_container(data: bytes) -> tuple[bytes, list[dict]]:
    if data[:4] != _CONTAINER_MAGIC or len(data) < 8:
        raise ValueError("pergroup compresses the quantized container (GCQ1) only, not shuffled or other bytes")
    (hlen,) = struct.unpack_from("<I", data, 4)
    header = data[8:8 + hlen]
    arrays = container_arrays(header)
    if len(header) != hlen or 8 + hlen + sum(a["nbytes"] for a in arrays) != len(data):
        raise ValueError("container size does not match its header")
    return header, arrays


def _candidates(role: tuple, members: list[dict], body: memoryview, base: int) -> list[tuple[int, bytes]]:
    payload = b"".join(body[base + a["offset"]:base + a["offset"] + a["nbytes"]] for a in members)
    order = similarity_order(np.frombuffer(payload, np.int8).reshape(-1, role[2])) if role[0] == "rows" else None
    return [(lay, encode_layout(role, payload, lay, order)) for lay in layouts_for(role)]


def pack_pergroup(data: bytes, level: int = 11) -> bytes:
    """The container `serialize` wrote → the per-group compressed form (see the module doc)."""
    header, arrays = _split_container(data)
    base, body = 8 + len(header), memoryview(data)
    streams = [[(0, header)]] + [_candidates(role, members, body, base) for role, members in plan_groups(arrays)]
    jobs = [(s, lay, codec, f) for s, cands in enumerate(streams) for lay, st in cands
            for codec in range(len(CODECS)) for f in _frames(st)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as ex:  # brotli and lzma release the GIL
        packed = list(ex.map(lambda j: _compress_frame(j[2], level, j[3]), jobs))
    options: dict[tuple[int, int, int], list[bytes]] = {}
    for (s, lay, codec, _), blob in zip(jobs, packed):
        options.setdefault((s, lay, codec), []).append(blob)
    out = [PG_MAGIC, struct.pack("<BII", PG_VERSION, zlib.crc32(data), len(streams))]
    chosen = []
    for s, cands in enumerate(streams):
        raw = {lay: len(st) for lay, st in cands}
        keys = [(s, lay, codec) for lay, _ in cands for codec in range(len(CODECS))]
        best = min(keys, key=lambda k: sum(map(len, options.get(k, []))))  # first of equals: deterministic
        frames = options.get(best, [])
        out.append(_STREAM.pack(best[2], best[1], raw[best[1]], len(frames)) + struct.pack(
            f"<{len(frames)}I", *map(len, frames)))
        chosen += frames
    return b"".join(out + chosen)


def _read_table(blob: bytes) -> tuple[int, list[tuple[int, int, int, list[int]]], int]:
    """(crc, [(codec, layout, raw bytes, frame sizes)], offset of the first frame), checked
    against the blob's length before anything is allocated."""
    if blob[:4] != PG_MAGIC:
        raise ValueError("not a pergroup artifact (magic mismatch)")
    if len(blob) < 13 or blob[4] != PG_VERSION:
        raise ValueError(f"unsupported or truncated pergroup header (version {blob[4:5].hex() or 'missing'})")
    crc, n = struct.unpack_from("<II", blob, 5)
    off, table = 13, []
    if n > (len(blob) - off) // _STREAM.size:
        raise ValueError(f"pergroup header lists {n} streams, more than {len(blob)} bytes can hold")
    for _ in range(n):
        if off + _STREAM.size > len(blob):
            raise ValueError("truncated pergroup stream table")
        codec, layout, raw, nf = _STREAM.unpack_from(blob, off)
        off += _STREAM.size
        if codec >= len(CODECS) or nf != -(-raw // FRAME_BYTES) or off + 4 * nf > len(blob):
            raise ValueError("corrupt pergroup stream table (codec, frame count or size)")
        table.append((codec, layout, raw, list(struct.unpack_from(f"<{nf}I", blob, off))))
        off += 4 * nf
    if off + sum(sum(f) for *_, f in table) != len(blob):
        raise ValueError("pergroup frame sizes do not add up to the artifact's length")
    return crc, table, off


def _decode_stream(blob: bytes, entry: tuple[int, int, int, list[int]], off: int) -> tuple[bytes, int]:
    codec, _, raw, sizes = entry
    parts = []
    for k, n in enumerate(sizes):
        parts.append(_decompress_frame(codec, blob[off:off + n], min(FRAME_BYTES, raw - k * FRAME_BYTES)))
        off += n
    return b"".join(parts), off


def unpack_pergroup(blob: bytes) -> bytes:
    """The exact container bytes `pack_pergroup` was given; ValueError on anything else."""
    crc, table, off = _read_table(blob)
    if not table or table[0][2] > MAX_HEADER_BYTES or table[0][1] != 0:
        raise ValueError("corrupt pergroup artifact (no container header stream, or an oversized one)")
    header, off = _decode_stream(blob, table[0], off)
    groups = plan_groups(container_arrays(header))
    if len(table) != 1 + len(groups):
        raise ValueError(f"pergroup artifact has {len(table) - 1} group streams, its header plans {len(groups)}")
    rows = []
    for (role, members), entry in zip(groups, table[1:]):  # every size checked before any frame is decoded
        want, n_rows = stream_bytes(role, members, entry[1])
        if not layout_valid(role, entry[1]) or entry[2] != want:
            raise ValueError(f"corrupt pergroup stream for {role[1]!r} (layout {entry[1]}, {entry[2]} bytes)")
        rows.append(n_rows)
    pieces = []  # (offset in the container body, bytes): memory grows only with what really decodes
    for (role, members), entry, n_rows in zip(groups, table[1:], rows):
        stream, off = _decode_stream(blob, entry, off)
        payload, pos = decode_layout(role, stream, entry[1], n_rows), 0
        for a in members:
            pieces.append((a["offset"], payload[pos:pos + a["nbytes"]]))
            pos += a["nbytes"]
    pieces.sort(key=lambda p: p[0])
    out = b"".join([_CONTAINER_MAGIC, struct.pack("<I", len(header)), header] + [p for _, p in pieces])
    if zlib.crc32(out) != crc:
        raise ValueError("pergroup artifact fails its checksum")
    return out


def describe_pergroup(blob: bytes) -> list[dict]:
    """How each stream of a pergroup artifact is stored (for logs and benchmarks)."""
    _, table, off = _read_table(blob)
    header, _ = _decode_stream(blob, table[0], off)
    roles = [("header",)] + [role for role, _ in plan_groups(container_arrays(header))]
    names = ((SORTED, "sorted"), (COLUMNS, "columns"), (SHUFFLED, "shuffled"))
    return [{"group": " ".join(map(str, role)), "codec": CODECS[codec], "raw": raw, "packed": sum(frames),
             "layout": "+".join(n for flag, n in names if layout & flag) or "plain"}
            for role, (codec, layout, raw, frames) in zip(roles, table)]
