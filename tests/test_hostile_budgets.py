"""The shared budget helpers (audit/budgets.py)."""

from __future__ import annotations

import tracemalloc

import pytest

from audit import budgets as B
from audit.errors import InputError


def test_read_lines_capped_skips_long_lines_without_holding_them(tmp_path):
    p = tmp_path / "train.log"
    with open(p, "wb") as fh:
        fh.write(b"step:1/10 loss:3.0\r\n")
        fh.write(b"a" + b" " * 3_000_000 + b"x\n")  # 3 MB line: never held whole
        fh.write(b"caf\xe9 val_bpb:1.2\n")
        fh.write(b"last line without newline")
    tracemalloc.start()
    try:
        got = list(B.read_lines_capped(p, max_line=1000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == [(1, "step:1/10 loss:3.0"), (2, None), (3, "caf\ufffd val_bpb:1.2"), (4, "last line without newline")]
    assert peak < 2**20  # 64 KB chunks, never the 3 MB line


def test_read_lines_capped_stops_at_the_byte_budget(tmp_path):
    p = tmp_path / "big.log"
    p.write_bytes(b"0123456789\n" * 1000)
    with pytest.raises(InputError, match="bytes read is 1,001 bytes, over the budget of 1,000"):
        list(B.read_lines_capped(p, max_bytes=1000))


def test_check_and_file_size(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"x" * 10)
    assert B.check_file_size(p, 10) == 10
    with pytest.raises(InputError, match=r"^.*f: file size is 10 bytes, over the budget of 9 bytes"):
        B.check_file_size(p, 9)
    with pytest.raises(InputError, match="cannot read"):
        B.check_file_size(tmp_path / "missing", 9)
    B.check(None, "x", 5, 5)
