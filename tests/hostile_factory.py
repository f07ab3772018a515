"""Builders of hostile inputs (tests and benchmarks/bench_bombs.py): damaged archives and the
small files that used to cost gigabytes. Each builder writes one file and returns its path."""

from __future__ import annotations

import bz2
import io
import lzma
import struct
import zlib
from pathlib import Path

import numpy as np

MB = 1 << 20


def npy_header(dtype: str, n: int) -> bytes:
    """NPY v1.0 header of a 1-d array (numpy.lib.format layout, padded to 64 bytes)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": (n,)})
    return buf.getvalue()


def raw_zip(members: list[tuple[str, int, bytes, int, int]], flags: int = 0) -> bytes:
    """A zip from (name, method, compressed bytes, crc32, declared size): headers say what we say."""
    out, central = bytearray(), bytearray()
    for name, method, data, crc, size in members:
        nm = name.encode()
        need = 63 if method == 14 else 46 if method == 12 else 20
        fl = flags | (2 if method == 14 else 0)
        offset = len(out)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", need, fl, method, 0, 0x21, crc, len(data), size, len(nm), 0)
        out += nm + data
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", need, need, fl, method, 0, 0x21, crc, len(data),
                               size, len(nm), 0, 0, 0, 0, 0, offset)
        central += nm
    n = len(members)
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, n, n, len(central), len(out), 0)
    return bytes(out + central + eocd)


def _zero_deflate(head: bytes, zeros: int) -> tuple[bytes, int]:
    """Raw deflate of head + `zeros` zero bytes, built from one repeated 1 MB block (fast)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    assert zeros % MB == 0
    first = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)  # full flush: later blocks stand alone
    block = c.compress(bytes(MB)) + c.flush(zlib.Z_FULL_FLUSH)
    body = first + block * (zeros // MB) + c.flush()
    crc = zlib.crc32(head)
    z = bytes(MB)
    for _ in range(zeros // MB):
        crc = zlib.crc32(z, crc)
    return body, crc


def meta_deflate_bomb(path: Path, ids: int = 1 << 27) -> Path:
    """A ~522 KB meta.npz whose (truthful) headers inflate to `ids` ids (2^27: 512 MB)."""
    members = []
    for key, dt, width in (("base_bytes", "<i2", 2), ("has_leading_space", "|b1", 1),
                           ("is_boundary_token", "|b1", 1)):
        head = npy_header(dt, ids)
        data, crc = _zero_deflate(head, ids * width)
        members.append((key + ".npy", 8, data, crc, len(head) + ids * width))
    path.write_bytes(raw_zip(members))
    return path


def meta_bz2_bomb(path: Path, ids: int = 1 << 27, declared: int | None = None) -> Path:
    """A meta.npz whose base_bytes member is bzip2 (~1 KB for 2^27 ids, slow to build: ~6 s).

    `declared` sets the size the headers claim (a lie below the budget tests the streaming cap)."""
    head = npy_header("<i2", ids)
    c = bz2.BZ2Compressor(9)
    parts, crc = [c.compress(head)], zlib.crc32(head)
    z = bytes(MB)
    left = ids * 2
    while left:
        chunk = z[:min(MB, left)]
        parts.append(c.compress(chunk))
        crc = zlib.crc32(chunk, crc)
        left -= len(chunk)
    parts.append(c.flush())
    size = len(head) + ids * 2 if declared is None else declared
    path.write_bytes(raw_zip([("base_bytes.npy", 12, b"".join(parts), crc, size)]))
    return path


def vocab_id_bomb(path: Path, claimed: int = 0xFFFFFE, entries: int = 600) -> Path:
    """A ~10.7 KB TokenMonster .vocab whose header claims `claimed` ids for `entries` entries."""
    def u24(v: int) -> bytes:
        return bytes((v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF))

    out = bytearray([0, 0, 0, 0, 0, 0, 0, 0]) + u24(0xFFFFFF) + u24(claimed) + u24(claimed) + u24(entries)
    out += u24(0xFFFFFF) + bytes([2])
    for k in range(entries):
        key = bytes([65 + k % 26, 97 + (k // 26) % 26])
        out += bytes([len(key)]) + key + bytes([0, 0]) + u24(0xFFFFFF) + u24(0xFFFFFF) + u24(k)
        out += struct.pack("<f", 0.0)
    begin = bytearray(256)
    begin[65:91] = b"\x01" * 26
    out += begin + u24(0)
    path.write_bytes(bytes(out))
    return path


def yaml_alias_bomb(path: Path, levels: int = 9, width: int = 9, pad: int = 0) -> Path:
    """A TokenMonster YAML whose `delete` list aliases a `width`^`levels` tree of anchored lists."""
    lines = ["charset: utf-8", "capcode: 0", "normalization: none",
             "tokens:", "  - {token: a, id: 0, score: 0.0, encoded: true}",
             "x0: &x0 [" + ", ".join(['"' + "ha" * 4 + '"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * width) + "]")
    lines.append(f"delete: [{{token: *x{levels - 1}, id: 0}}]")
    text = "\n".join(lines) + "\n"
    path.write_text(text + ("#" + "." * 78 + "\n") * pad)
    return path


def npz_member_zip(path: Path, method: int, payload: bytes, name: str = "base_bytes.npy",
                   corrupt_at: int | None = None, flags: int = 0) -> Path:
    """A one-member npz with `payload` compressed by `method` (0, 8, 12, 14), optionally damaged."""
    if method == 0:
        data = payload
    elif method == 8:
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        data = c.compress(payload) + c.flush()
    elif method == 12:
        data = bz2.compress(payload)
    elif method == 14:
        filt = {"id": lzma.FILTER_LZMA1, "dict_size": 1 << 16, "lc": 3, "lp": 0, "pb": 2}
        props = bytes([3 + 0 * 9 + 2 * 45]) + struct.pack("<I", 1 << 16)
        data = struct.pack("<BBH", 9, 4, 5) + props + lzma.compress(payload, lzma.FORMAT_RAW, filters=[filt])
    else:
        data = payload
    if corrupt_at is not None:
        d = bytearray(data)
        for k in range(corrupt_at, min(len(d), corrupt_at + 8)):
            d[k] ^= 0xA5
        data = bytes(d)
    path.write_bytes(raw_zip([(name, method, data, zlib.crc32(payload), len(payload))], flags=flags))
    return path


def good_meta_payloads(n: int = 16) -> dict[str, bytes]:
    """NPY bytes of a small valid meta's three arrays."""
    out = {}
    for key, arr in (("base_bytes", np.ones(n, np.int16)), ("has_leading_space", np.zeros(n, bool)),
                     ("is_boundary_token", np.zeros(n, bool))):
        buf = io.BytesIO()
        np.save(buf, arr)
        out[key] = buf.getvalue()
    return out
