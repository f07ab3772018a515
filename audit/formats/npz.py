"""A bounded `.npz` reader: members are size-checked from their headers, then inflated by
streaming with a hard cap, so a small archive cannot allocate gigabytes.

`np.load` trusts the archive: zipfile's bz2 and LZMA paths inflate a whole compressed chunk at
once (a 1 KB bz2 member can expand to gigabytes before any size check), and damaged members
surface as zlib/lzma/NotImplementedError exceptions. Here every failure is an `InputError`.
The layouts read are PKWARE's APPNOTE (local header, methods 0/8/12/14, LZMA properties header)
and numpy's NPY format (`numpy.lib.format`), checked against `zipfile` and `np.savez`.
"""

from __future__ import annotations

import bz2
import io
import lzma
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from audit.budgets import (MAX_META_FILE_BYTES, MAX_NPY_HEADER_BYTES, MAX_NPZ_MEMBER_BYTES, MAX_NPZ_MEMBERS,
                           MAX_NPZ_TOTAL_BYTES, MAX_VOCAB_IDS, check, check_file_size)
from audit.errors import InputError, stepped

STORED, DEFLATED, BZIP2, LZMA = 0, 8, 12, 14
METHOD_NAMES = {STORED: "stored", DEFLATED: "deflate", BZIP2: "bzip2", LZMA: "lzma"}
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zipfile's own layout of the 30-byte local header
_CHUNK = 64 * 1024


def _eocd_entry_count(fh, size: int) -> int | None:
    """Entries declared by the end-of-central-directory record (None: not found or zip64)."""
    tail = min(size, 22 + 65535)
    fh.seek(size - tail)
    buf = fh.read(tail)
    at = buf.rfind(b"PK\x05\x06")
    if at < 0 or at + 12 > len(buf):
        return None
    n = struct.unpack_from("<H", buf, at + 10)[0]
    return None if n == 0xFFFF else n


def _infos(path: Path, fh) -> list[zipfile.ZipInfo]:
    size = check_file_size(path, MAX_META_FILE_BYTES, ".npz file")
    declared = _eocd_entry_count(fh, size)
    if declared is not None:
        check(path, "member count", declared, MAX_NPZ_MEMBERS)
    fh.seek(0)
    try:
        with zipfile.ZipFile(fh) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, struct.error,
            NotImplementedError, UnicodeDecodeError) as e:
        raise InputError(path, f"not a readable .npz (zip) archive: {' '.join(str(e).split())[:120]}") from None
    check(path, "member count", len(infos), MAX_NPZ_MEMBERS)
    total = 0
    for info in infos:
        name = info.filename
        if info.flag_bits & 0x1:
            raise InputError(path, f"member {name!r} is encrypted; refused")
        if info.compress_type not in METHOD_NAMES:
            raise InputError(path, f"member {name!r} uses unsupported compression method {info.compress_type} "
                                   f"(numpy writes stored or deflate; bzip2 and lzma are also read)")
        check(path, f"member {name!r} declared size", info.file_size, MAX_NPZ_MEMBER_BYTES, "bytes")
        check(path, f"member {name!r} compressed size", info.compress_size, size, "bytes")
        total += info.file_size
    check(path, "declared size of all members", total, MAX_NPZ_TOTAL_BYTES, "bytes")
    return infos


def _raw_member(path: Path, fh, info: zipfile.ZipInfo, size: int) -> bytes:
    if not 0 <= info.header_offset < size:
        raise InputError(path, f"member {info.filename!r}: header offset {info.header_offset} is outside the file")
    fh.seek(info.header_offset)
    head = fh.read(_LOCAL_HEADER.size)
    if len(head) != _LOCAL_HEADER.size or head[:4] != b"PK\x03\x04":
        raise InputError(path, f"member {info.filename!r}: local header missing or damaged")
    fields = _LOCAL_HEADER.unpack(head)
    name_len, extra_len = fields[-2], fields[-1]
    fh.seek(info.header_offset + _LOCAL_HEADER.size + name_len + extra_len)
    data = fh.read(info.compress_size)
    if len(data) != info.compress_size:
        raise InputError(path, f"member {info.filename!r} is truncated: {len(data):,} of "
                               f"{info.compress_size:,} compressed bytes present")
    return data


def _lzma_decompressor(path: Path, name: str, data: bytes, cap: int):
    """A raw LZMA1 decoder for zip method 14: 2-byte version, 2-byte properties size, 5 properties."""
    if len(data) < 4:
        raise InputError(path, f"member {name!r}: LZMA header truncated")
    psize = struct.unpack_from("<H", data, 2)[0]
    if psize != 5 or len(data) < 4 + psize:
        raise InputError(path, f"member {name!r}: LZMA properties of {psize} bytes (expected 5)")
    d, dict_size = data[4], struct.unpack_from("<I", data, 5)[0]
    if d >= 9 * 5 * 5:
        raise InputError(path, f"member {name!r}: bad LZMA properties byte {d}")
    lc, lp, pb = d % 9, (d // 9) % 5, d // 45
    # No distance can reach past the output, so a dictionary as large as the (capped) output is
    # exact: the header's dictionary size cannot make the decoder allocate more.
    dict_size = max(4096, min(dict_size, cap + 1))
    filt = {"id": lzma.FILTER_LZMA1, "dict_size": dict_size, "lc": lc, "lp": lp, "pb": pb}
    try:
        return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[filt]), data[4 + psize:]
    except lzma.LZMAError as e:
        raise InputError(path, f"member {name!r}: bad LZMA properties ({e})") from None


def inflate_capped(path: Path, name: str, method: int, data: bytes, cap: int) -> bytearray:
    """Decompress `data` producing at most `cap` bytes; more is an error, never an allocation.
    A bytearray, so arrays viewing it are writable like `np.load`'s."""
    if method == STORED:
        return bytearray(data)
    if method == DEFLATED:
        dec, feed = zlib.decompressobj(-15), data
    elif method == BZIP2:
        dec, feed = bz2.BZ2Decompressor(), data
    else:
        dec, feed = _lzma_decompressor(path, name, data, cap)
    out, stalls = bytearray(), 0
    try:
        while not dec.eof and stalls < 3:
            piece = dec.decompress(feed, min(cap + 1 - len(out), _CHUNK))
            feed = dec.unconsumed_tail if method == DEFLATED else b""
            out += piece
            if len(out) > cap:
                raise InputError(path, f"member {name!r} inflates past its declared {cap:,} bytes; refused")
            stalls = stalls + 1 if not piece and not feed else 0  # input used up, no output: truncated
    except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as e:
        raise InputError(path, f"member {name!r}: corrupt {METHOD_NAMES[method]} stream "
                               f"({' '.join(str(e).split())[:100]})") from None
    if not dec.eof:
        raise InputError(path, f"member {name!r}: {METHOD_NAMES[method]} stream ends early")
    return out


def parse_npy(path: Path, name: str, raw: bytearray, max_items: int) -> np.ndarray:
    """An array from NPY bytes: header checked (no pickle, no objects, size matching the data)."""
    fp = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp, max_header_size=MAX_NPY_HEADER_BYTES)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp, max_header_size=MAX_NPY_HEADER_BYTES)
        else:
            raise ValueError(f"unsupported NPY version {version}")
    except Exception as e:  # noqa: BLE001 - numpy's header parser (tokenize + literal_eval) raises
        # ValueError, SyntaxError, tokenize.TokenError, RecursionError, … on a damaged header
        raise InputError(path, f"array {name!r}: bad .npy header ({' '.join(str(e).split())[:120]})") from None
    if dtype.hasobject:
        raise InputError(path, f"array {name!r} has dtype object (needs pickle); refused")
    if len(shape) > 1:
        raise InputError(path, f"array {name!r} has shape {shape}, expected one dimension or a scalar")
    count = 1
    for s in shape:
        count *= s
    check(path, f"array {name!r} length", count, max_items, "items")
    offset = fp.tell()
    need = count * dtype.itemsize
    if len(raw) - offset != need:
        raise InputError(path, f"array {name!r}: header says {count:,} items of {dtype.itemsize} bytes "
                               f"({need:,} bytes) but {len(raw) - offset:,} bytes follow")
    try:
        arr = np.frombuffer(raw, dtype=dtype, count=count, offset=offset)
    except (ValueError, TypeError) as e:
        raise InputError(path, f"array {name!r}: {e}") from None
    return arr.reshape(shape)


@stepped("reading an .npz archive")
def load_npz(path: str | Path, keys: set[str] | None = None, *, max_items: int = MAX_VOCAB_IDS) -> dict[str, np.ndarray]:
    """The members of an .npz (only `keys` when given) as arrays, every budget checked first."""
    path = Path(path)
    try:
        fh = open(path, "rb")
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror or e}") from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        infos = _infos(path, fh)
        out: dict[str, np.ndarray] = {}
        for info in infos:
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if keys is not None and name not in keys:
                continue
            if name in out:
                raise InputError(path, f"member {name!r} appears twice; refused")
            data = _raw_member(path, fh, info, size)
            raw = inflate_capped(path, info.filename, info.compress_type, data, info.file_size)
            if len(raw) != info.file_size:
                raise InputError(path, f"member {info.filename!r}: {len(raw):,} bytes, the header says "
                                       f"{info.file_size:,}")
            if zlib.crc32(raw) != info.CRC:
                raise InputError(path, f"member {info.filename!r}: CRC mismatch (damaged archive)")
            out[name] = parse_npy(path, name, raw, max_items)
    return out
