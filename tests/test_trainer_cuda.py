"""The trainer's CUDA path (bf16 autocast, GPTQ on the GPU, device choice). The GPU tests skip
on machines without CUDA (CI); the device-choice test runs everywhere with a faked GPU count."""

from __future__ import annotations

import pytest
import torch

from trainer.config import ConfigError, resolve_config
from trainer.model import GPT, CastedLinear, autocast_context
from trainer.quant import collect_hessians, gptq_quantize_many
from trainer.run import pick_device

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the trainer's GPU path)")


def tiny(**sets):
    return resolve_config("tiny", sets={k: str(v) for k, v in sets.items()}, use_env=False)[0]


def test_auto_device_uses_cpu_when_gpus_are_fewer_than_local_processes(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert pick_device(tiny(device="auto")).type == "cpu"  # every rank alike: gloo, not half NCCL
    with pytest.raises(ConfigError, match="1 CUDA device"):
        pick_device(tiny(device="cuda"))
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert pick_device(tiny(device="auto")) == torch.device("cuda", 0)


@cuda
def test_hessians_stay_float32_under_bf16_autocast():
    torch.manual_seed(0)
    lin = torch.nn.Sequential(CastedLinear(64, 32)).cuda()
    x = torch.randn(4, 256, 64, device="cuda").bfloat16()
    with torch.no_grad(), autocast_context(torch.device("cuda")):
        H = collect_hessians(lin, [x, x])["0.weight"]
    ref = 2 * (x.double().reshape(-1, 64).T @ x.double().reshape(-1, 64))
    assert H.dtype == torch.float32
    assert torch.allclose(H.double(), ref, rtol=1e-5, atol=1e-3)  # bf16 accumulation is ~1e-2 off


@cuda
def test_gptq_on_gpu_matches_cpu():
    g = torch.Generator().manual_seed(0)
    jobs = []
    for rows, cols, bits in [(96, 128, 6), (48, 128, 5), (64, 256, 6)]:
        X = torch.randn(2048, 16, generator=g) @ torch.randn(16, cols, generator=g) + 0.1 * torch.randn(2048, cols, generator=g)
        jobs.append((torch.randn(rows, cols, generator=g) * 0.05, X.T @ X, bits))
    cpu = gptq_quantize_many(jobs, 32)
    gpu = gptq_quantize_many([(w.cuda(), H.cuda(), b) for w, H, b in jobs], 32)
    for (qc, sc), (qg, sg) in zip(cpu, gpu):
        assert torch.equal(sc, sg.cpu())
        diff = (qc != qg.cpu()).float().mean().item()
        assert diff < 0.01 and (qc.int() - qg.cpu().int()).abs().max() <= 1  # TF32/cuSOLVER rounding only


@cuda
def test_short_cuda_run_trains_in_bf16_and_roundtrips(tmp_path):
    from trainer.run import train

    cfg = tiny(device="cuda", iterations=30, ttt_enabled=0, eval_stride=0, train_log_every=10)
    res = train(cfg, out_dir=tmp_path, echo=False, probe=False)
    log = "\n".join(res.log_lines)
    assert "device:cuda:0" in log and "peak_memory: train allocated:" in log
    assert res.losses[-1] < res.losses[0] - 1.0  # it trained
    assert res.roundtrip_digest == res.artifact_digest
    assert res.final.loss == res.final.loss and res.final.bpb < 3.0  # finite, and better than chance


@cuda
def test_model_forward_is_bf16_under_autocast_with_float32_weights():
    m = GPT(tiny()).cuda()
    x = torch.randint(0, 1024, (2, 128), device="cuda")
    seen = {}
    for name in ("blocks.0.attn.q", "blocks.0.mlp.fc", "blocks.3.attn.proj"):
        m.get_submodule(name).register_forward_hook(lambda mod, i, o, name=name: seen.__setitem__(name, o.dtype))
    with autocast_context(torch.device("cuda")):
        loss = m(x, x)
    # the matrices run in bf16; norms (and so the residual stream) and the loss stay float32
    assert set(seen.values()) == {torch.bfloat16} and len(seen) == 3 and loss.dtype == torch.float32
    loss.backward()
    assert all(p.dtype == torch.float32 and (p.grad is None or p.grad.dtype == torch.float32) for p in m.parameters())
