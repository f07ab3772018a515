"""Token shards in, batches out; byte-count tables for BPB.

Training reads the train shards as one stream (in name order, wrapping), as the official
script does: each micro-step takes W spans of `train_batch_tokens / (W · accum) + 1` tokens
from the stream and rank r gets the r-th (the extra token is the last target). With
accum = 8 // W (the default) every world size reads the same tokens in the same order.
"""

from __future__ import annotations


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
    """The stream → this rank's (x, y) for each micro-step of gradient accumulation."""

    def __init__(self, pattern: str, global_tokens: int, seq_len: int, rank: int, world: int,
                 accum: int, device: torch.device, vocab_size: int | None = None):
        self.local_tokens = global_tokens // (world * accum)
        if self.local_tokens <= 0 or self.local_tokens % seq_len:
            raise ValueError(f"train_batch_tokens {global_tokens} over {world} ranks × {accum} micro-steps "
                             f"is not a positive multiple of train_seq_len {seq_len} per micro-step")
        self.stream = TokenStream(pattern, vocab_size)
        self.seq_len, self.rank, self.world, self.accum = seq_len, rank, world, accum
        self.device = device

    def micro_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        span = self.local_tokens + 1
        chunk = self.stream.take(span * self.world)
        local = torch.from_numpy(chunk[self.rank * span:(self.rank + 1) * span].astype(np.int64))
        x = local[:-1].view(-1, self.seq_len)
        y = local[1:].view(-1, self.seq_len)
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def next(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The micro-batches (x, y) of this rank for one optimizer step."""
        return [self.micro_batch() for _ in range(self.accum)]


def load_val(pattern: str, vocab_size: int) -> torch.Tensor:
    """The whole val stream (all val shards, name order) as int64."""
    parts = []
    for f in resolve_glob(pattern):
        if "_bytes_" in f.name:  # a CaseOps byte sidecar matches the val glob too (trainer.caseops)
            continue
        s = read_shard(f)
        check_ids(s, vocab_size, f)
        parts.append(np.asarray(s, dtype=np.int64))
    return torch.from_numpy(np.concatenate(parts))


def sentencepiece_tables(model_path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(base_bytes, has_leading_space, is_boundary_token) of a SentencePiece model, by the
    official script's rules (build_sentencepiece_luts): control/unknown/unused pieces are
    boundaries of 0 bytes, byte pieces 1 byte, a leading ▁ is a space counted only after a
    non-boundary token, the rest is the piece's UTF-8 length."""
    import sentencepiece as spm

    if not str(model_path).endswith(".model"):
        raise ValueError(f"not a SentencePiece .model file: {model_path}")
    sp = spm.SentencePieceProcessor(model_file=str(model_path))
    n = int(sp.vocab_size())
    base, space, boundary = np.zeros(n, np.int64), np.zeros(n, bool), np.ones(n, bool)
    for i in range(n):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            continue
        boundary[i] = False
        if sp.is_byte(i):
            base[i] = 1
            continue
        piece = sp.id_to_piece(i)
        if piece.startswith("\u2581"):
            space[i], piece = True, piece[1:]
        base[i] = len(piece.encode("utf-8"))
    return base, space, boundary


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
            return cls(m.base_bytes, m.has_leading_space, m.is_boundary_token)
        if tokenizer_path:
            return cls(*sentencepiece_tables(tokenizer_path))
        raise ValueError("BPB needs a meta_path or a tokenizer_path")

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
