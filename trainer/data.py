"""Token shards in, batches out; byte-count tables for BPB.

Training reads the train shards as one stream (in name order, wrapping). Each step consumes
one contiguous global batch of `train_batch_tokens + 1` tokens; rank r of W gets the r-th of
W disjoint row blocks of it, so one process with the same global batch sees exactly the
union of what W processes see.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from audit.formats.meta import load_meta
from audit.formats.shards import check_ids, read_shard, resolve_glob


class TokenStream:
    """The train shards as one endless stream, read through memory maps."""

    def __init__(self, pattern: str, vocab_size: int | None = None):
        self.files = resolve_glob(pattern)
        self.shards = [read_shard(f) for f in self.files]
        if vocab_size is not None:
            for f, s in zip(self.files, self.shards):
                check_ids(s, vocab_size, f)
        self.total = sum(len(s) for s in self.shards)
        if self.total < 2:
            raise ValueError(f"{pattern}: too few tokens to train on")
        self.shard, self.pos = 0, 0

    def take(self, n: int) -> np.ndarray:
        parts, need = [], n
        while need:
            s = self.shards[self.shard]
            k = min(need, len(s) - self.pos)
            parts.append(np.asarray(s[self.pos:self.pos + k]))
            self.pos += k
            need -= k
            if self.pos >= len(s):
                self.shard, self.pos = (self.shard + 1) % len(self.shards), 0
        return np.concatenate(parts) if len(parts) > 1 else parts[0]


class DistributedBatches:
    """Global batch → this rank's rows, for each micro-step of gradient accumulation."""

    def __init__(self, pattern: str, global_tokens: int, seq_len: int, rank: int, world: int,
                 accum: int, device: torch.device, vocab_size: int | None = None):
        rows = global_tokens // seq_len
        if rows % (world * accum):
            raise ValueError(f"{rows} rows per step do not split over {world} ranks × {accum} micro-steps")
        self.stream = TokenStream(pattern, vocab_size)
        self.seq_len, self.rank, self.world, self.accum = seq_len, rank, world, accum
        self.rows = rows
        self.device = device

    def next(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The micro-batches (x, y) of this rank for one optimizer step."""
        T = self.seq_len
        # One token of overlap between consecutive rows: row k is chunk[k*T : k*T + T + 1].
        chunk = torch.from_numpy(self.stream.take(self.rows * T + 1).astype(np.int64))
        self.stream.pos -= 1  # the last target is the next step's first input (no token skipped)
        if self.stream.pos < 0:
            self.stream.shard = (self.stream.shard - 1) % len(self.stream.shards)
            self.stream.pos = len(self.stream.shards[self.stream.shard]) - 1
        x = chunk[:-1].view(self.rows, T)
        y = chunk[1:].view(self.rows, T)
        per_rank = self.rows // self.world
        lo = self.rank * per_rank
        x, y = x[lo:lo + per_rank], y[lo:lo + per_rank]
        per_micro = per_rank // self.accum
        return [(x[i:i + per_micro].to(self.device, non_blocking=True),
                 y[i:i + per_micro].to(self.device, non_blocking=True))
                for i in range(0, per_rank, per_micro)]


def load_val(pattern: str, vocab_size: int) -> torch.Tensor:
    """The whole val stream (all val shards, name order) as int64."""
    parts = []
    for f in resolve_glob(pattern):
        s = read_shard(f)
        check_ids(s, vocab_size, f)
        parts.append(np.asarray(s, dtype=np.int64))
    return torch.from_numpy(np.concatenate(parts))


class ByteLUT:
    """bytes(y | x) = base_bytes[y] + (has_leading_space[y] AND NOT is_boundary_token[x])."""

    def __init__(self, base_bytes, has_leading_space, is_boundary_token):
        self.base = torch.as_tensor(np.asarray(base_bytes, dtype=np.int64))
        self.space = torch.as_tensor(np.asarray(has_leading_space, dtype=bool))
        self.boundary = torch.as_tensor(np.asarray(is_boundary_token, dtype=bool))

    @classmethod
    def load(cls, meta_path: str = "", tokenizer_path: str = "") -> "ByteLUT":
        if meta_path:
            m = load_meta(meta_path)
        elif tokenizer_path:
            from audit.tokenizers import load_tokenizer  # the canonical table from the model itself

            m = load_tokenizer(Path(tokenizer_path)).canonical_meta()
        else:
            raise ValueError("BPB needs a meta_path or a tokenizer_path")
        return cls(m.base_bytes, m.has_leading_space, m.is_boundary_token)

    def bytes_for(self, prev: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        prev, tgt = prev.cpu(), tgt.cpu()
        return self.base[tgt] + (self.space[tgt] & ~self.boundary[prev]).long()


def unigram_bits_per_byte(val: np.ndarray | torch.Tensor, lut: ByteLUT, vocab_size: int) -> float:
    """Entropy of the val stream's own unigram distribution, in bits per byte of its targets —
    what a model that ignores context could at best reach (a floor for "learned something")."""
    v = torch.as_tensor(np.asarray(val, dtype=np.int64))
    tgt = v[1:]
    counts = torch.bincount(tgt, minlength=vocab_size).double()
    p = counts / counts.sum()
    nz = p > 0
    h_token = float(-(p[nz] * torch.log2(p[nz])).sum())
    nbytes = float(lut.bytes_for(v[:-1], tgt).sum())
    return h_token * len(tgt) / nbytes
