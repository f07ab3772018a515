"""CaseOps data (issue 11): val token shards beside their byte sidecars; BPB divides by the
sidecar's bytes, not the LUT's."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from audit.errors import InputError
from audit.formats.shards import write_shard
from trainer.caseops import SidecarBytes, val_token_files
from trainer.data import ByteLUT, load_val
from trainer.eval import Scores, score_windows, sliding_windows


def shards(tmp_path, with_sidecar=(True, True)):
    g = np.random.default_rng(0)
    for i, side in enumerate(with_sidecar):
        tok = g.integers(2, 50, 300).astype(np.uint16)
        tok[0] = 1
        write_shard(tmp_path / f"fineweb_val_{i:06d}.bin", tok)
        if side:
            write_shard(tmp_path / f"fineweb_val_bytes_{i:06d}.bin", (np.arange(300) % 5 + 1).astype(np.uint16))
    return str(tmp_path / "fineweb_val_*.bin")


def test_sidecars_are_not_tokens_and_give_bytes_by_position(tmp_path):
    pattern = shards(tmp_path)
    assert [f.name for f in val_token_files(pattern)] == ["fineweb_val_000000.bin", "fineweb_val_000001.bin"]
    val = load_val(pattern, 64)
    assert len(val) == 600  # the byte sidecars, which the glob also matches, are not read as tokens
    sb = SidecarBytes.load(pattern, n_tokens=len(val))
    assert sb.bytes_at(torch.tensor([0, 4, 5, 301])).tolist() == [1, 5, 1, 2]


def test_missing_or_partial_sidecars_are_input_errors(tmp_path):
    for sub in "abc":
        (tmp_path / sub).mkdir()
    with pytest.raises(InputError, match="no byte sidecar"):
        SidecarBytes.load(shards(tmp_path / "a", (False, False)))
    with pytest.raises(InputError, match="sidecar missing"):
        SidecarBytes.load(shards(tmp_path / "b", (True, False)))
    with pytest.raises(InputError, match="entries for"):
        SidecarBytes.load(shards(tmp_path / "c"), n_tokens=601)


def test_bpb_uses_sidecar_bytes(tmp_path):
    pattern = shards(tmp_path)
    val = load_val(pattern, 64)
    lut = ByteLUT(np.full(64, 3), np.zeros(64, bool), np.zeros(64, bool))
    sb = SidecarBytes.load(pattern, n_tokens=len(val), lut=lut)

    class Uniform(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(*x.shape, 64)

    windows = sliding_windows(1, len(val), 32, 16)
    a, b = Scores(np.full(len(val), np.nan)), Scores(np.full(len(val), np.nan))
    score_windows(Uniform(), val, windows, sb, "cpu", 8, a)
    score_windows(Uniform(), val, windows, lut, "cpu", 8, b)
    assert a.nll_sum == pytest.approx(b.nll_sum) and a.count == b.count == 599
    assert a.bytes_sum == float(sb.per_token[1:].sum())  # every target position's sidecar bytes
    assert b.bytes_sum == 3 * 599
    assert a.bpb == pytest.approx(599 * math.log(64) / math.log(2) / a.bytes_sum)
