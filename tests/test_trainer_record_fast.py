"""The fast path's pieces (issue 11): the bucketed, overlapped all-reduce gives the flat reduce's
averaged gradients (two gloo ranks on CPU); the varlen offsets describe exactly the document
segments of the previous definition (only empty trailing segments added, max_seqlen the row
length, no `.max()` sync); FlashAttention varlen equals the masked SDPA reference (CUDA only:
skips with the reason elsewhere)."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer.fast import (VARLEN_CU_BUCKET, BucketedAllReduce, Segments, _cu_seqlens, document_attention,
                          document_mask, document_segments, flash_varlen_available)
from trainer.model import document_ids


def _net():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16), torch.nn.Tanh(),
                              torch.nn.Linear(16, 4))
    net.unused = torch.nn.Parameter(torch.ones(3))  # never gets a gradient: counts as zero
    return net


def _worker(rank: int, world: int, store_path: str, out: dict) -> None:
    store = dist.FileStore(store_path, world)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world)
    try:
        g = torch.Generator().manual_seed(10 + rank)
        batches = [torch.randn(5, 8, generator=g) for _ in range(2)]
        # flat reference: accumulate two micro-batches, then one all-reduce per parameter
        ref = _net()
        for x in batches:
            ref(x).square().mean().backward()
        flat = []
        for p in ref.parameters():
            t = p.grad.clone() if p.grad is not None else torch.zeros_like(p)
            dist.all_reduce(t)
            flat.append(t / world)
        net = _net()
        red = BucketedAllReduce(list(net.parameters()), bucket_mb=0.0005)  # ~500 bytes: several buckets
        assert len(red.buckets) > 2
        for i, x in enumerate(batches):
            red.armed = i == len(batches) - 1  # only the last micro-step communicates
            net(x).square().mean().backward()
        launched_during_backward = red.next
        red.finish()
        got = [p.grad for p in net.parameters()]
        out[rank] = (max(float((a - b).abs().max()) for a, b in zip(got, flat)), launched_during_backward,
                     len(red.buckets))
        red.remove()
    finally:
        dist.destroy_process_group()


def test_bucketed_all_reduce_equals_the_flat_average():
    with tempfile.TemporaryDirectory() as d:
        manager = mp.Manager()
        out = manager.dict()
        mp.spawn(_worker, args=(2, os.path.join(d, "store"), out), nprocs=2, join=True)
        for rank in (0, 1):
            diff, launched, n_buckets = out[rank]
            assert diff < 1e-6
            assert 0 < launched < n_buckets  # overlapped: some buckets went out during backward, the
            # one holding the never-used parameter only at finish()


@pytest.mark.skipif(not flash_varlen_available(),
                    reason="FlashAttention varlen needs CUDA and flash-attn (not installed here)")
def test_flash_varlen_matches_masked_sdpa_on_cuda():  # pragma: no cover - CUDA only
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, h, 128, 64, generator=g).cuda().bfloat16() for h in (8, 4, 4))
    docs = torch.cumsum((torch.rand(2, 128, generator=g) < 0.03).int(), 1).cuda()
    out = document_attention(q, k, v, docs)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1),
                                                           attn_mask=document_mask(docs))
    assert float((out.float() - ref.float()).abs().max()) < 2e-2


def _previous_cu_seqlens(docs: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The definition before the change (exact length, max_seqlen by a `.max()` host sync): the reference."""
    B, T = docs.shape
    new = torch.ones_like(docs, dtype=torch.bool)
    new[:, 1:] = docs[:, 1:] != docs[:, :-1]
    starts = torch.nonzero(new.reshape(-1)).flatten().to(torch.int32)
    cu = torch.cat((starts, torch.tensor([B * T], dtype=torch.int32)))
    return cu, int((cu[1:] - cu[:-1]).max())


def _segments(cu: torch.Tensor) -> list[tuple[int, int]]:
    c = cu.tolist()
    return [(a, b) for a, b in zip(c[:-1], c[1:]) if b > a]


@settings(max_examples=80, deadline=None)
@given(rows=st.integers(1, 6), T=st.integers(1, 300), bos_rate=st.sampled_from([0.0, 0.01, 0.1, 0.5, 1.0]),
       seed=st.integers(0, 10_000))
def test_cu_seqlens_describes_the_same_segments_as_before(rows, T, bos_rate, seed):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(2, 50, (rows, T), generator=g)
    idx[torch.rand(rows, T, generator=g) < bos_rate] = 1
    docs = document_ids(idx, 1)
    cu, max_len = _cu_seqlens(docs)
    old, old_max = _previous_cu_seqlens(docs)
    assert cu.dtype == torch.int32 and len(cu) % VARLEN_CU_BUCKET == 0 and len(cu) >= len(old)
    assert torch.equal(cu[:len(old)], old)  # the same offsets, then only empty segments at the end
    assert torch.all(cu[len(old):] == rows * T)
    assert _segments(cu) == _segments(old)
    assert max_len == T >= old_max  # an upper bound on every segment, known without a sync
    for a, b in _segments(cu):  # each segment: one row, one document
        assert a // T == (b - 1) // T and len(set(docs.reshape(-1)[a:b].tolist())) == 1


def test_precomputed_segments_give_the_same_attention():
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, h, 40, 8, generator=g) for h in (4, 2, 2))
    idx = torch.randint(2, 50, (2, 40), generator=g)
    idx[:, [0, 9, 30]] = 1
    docs = document_ids(idx, 1)
    assert document_segments(docs) is docs  # on CPU no FlashAttention offsets are built
    seg = Segments(docs, *_cu_seqlens(docs))
    assert torch.equal(document_attention(q, k, v, seg), document_attention(q, k, v, docs))
