"""The training loop: data → model → Muon/Adam steps under a wall-clock cap → EMA/SWA →
quantized artifact → roundtrip (dequantized) model → evaluation. One code path for one process,
torchrun on GPUs (NCCL) and torchrun on CPU (gloo). No gating here: `trainer.gate` wraps this.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from trainer.config import ConfigError, TrainConfig, describe, fill_data_paths, resolve_config
from trainer.data import ByteLUT, DistributedBatches, TokenStream, load_val
from trainer.eval import ProbeResult, Scores, causality_probe, evaluate, run_ttt
from trainer.model import _flash_attn, GPT, autocast_context, count_parameters
from trainer.optim import EMA, SWA, Optimizers, lr_scale
from trainer.quant import (collect_hessians, compress, decompress, dequantize_state, deserialize, label,
                           quantize_state, self_generate, serialize)

_BUNDLED = False  # set True inside the single-file train_gpt.py written by `trainer export-code`


@dataclass
class RunResult:
    cfg: TrainConfig
    steps: int = 0
    stopped_early: bool = False
    train_seconds: float = 0.0  # the training loop
    export_seconds: float = 0.0  # calibration + GPTQ + serialization + compression + write
    model_bytes: int = 0
    code_bytes: int = 0
    artifact_path: str = ""
    params: int = 0
    losses: list[float] = field(default_factory=list)  # global mean train loss per step
    scores: dict[str, Scores] = field(default_factory=dict)
    final_label: str = ""
    ledger_problems: list[str] | None = None
    ledger_summary: dict | None = None
    probe: ProbeResult | None = None
    roundtrip_digest: str = ""  # sha256 of the scored model's weights
    artifact_digest: str = ""  # sha256 of the dequantized weights re-read from the artifact file
    log_lines: list[str] = field(default_factory=list)
    switched_on: dict[str, int] = field(default_factory=dict)  # step at which recurrence / QAT started

    @property
    def final(self) -> Scores:
        return self.scores[self.final_label]

    @property
    def eval_seconds(self) -> float:
        return sum(s.seconds for s in self.scores.values())

    @property
    def total_train_seconds(self) -> float:
        return self.train_seconds + self.export_seconds


class Logger:
    def __init__(self, path: str | Path | None, rank: int, echo: bool = True):
        self.path, self.rank, self.echo, self.lines = path, rank, echo, []
        if path and rank == 0:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text("")

    def __call__(self, msg: str) -> None:
        if self.rank:
            return
        self.lines.append(msg)
        if self.echo:
            print(msg, flush=True)
        if self.path:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(msg + "\n")


def pick_device(cfg: TrainConfig) -> torch.device:
    """This process's device. `auto` takes GPU LOCAL_RANK when every local process gets its own
    GPU, else the CPU for all of them (every rank decides alike, so the backend is one: NCCL or
    gloo). `cuda` with too few GPUs is a config error, not a CUDA 'invalid device ordinal'."""
    local = int(os.environ.get("LOCAL_RANK", "0"))
    procs = max(int(os.environ.get("LOCAL_WORLD_SIZE", "1")), local + 1)
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if cfg.device == "cpu" or (cfg.device == "auto" and n < procs):
        return torch.device("cpu")
    if n < procs:
        raise ConfigError("config", f"device=cuda with {procs} local process(es) but {n} CUDA device(s) visible; "
                                    f"run one process per GPU or set device=cpu")
    return torch.device("cuda", local)


def _log_peak_memory(log, device: torch.device, phase: str) -> None:
    if device.type == "cuda":
        log(f"peak_memory: {phase} allocated:{torch.cuda.max_memory_allocated(device) >> 20}MiB "
            f"reserved:{torch.cuda.max_memory_reserved(device) >> 20}MiB")


def setup_distributed(cfg: TrainConfig) -> tuple[int, int, torch.device]:
    """(rank, world, device). Under torchrun: NCCL with CUDA, gloo on CPU — same code."""
    device = pick_device(cfg)
    want_cuda = device.type == "cuda"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if want_cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if want_cuda else "gloo", device_id=device if want_cuda else None)
    return rank, world, device


def _all_reduce_grads(params: list[torch.nn.Parameter], world: int) -> None:
    """Average gradients over ranks in one flat all-reduce (missing grads count as zero)."""
    if world <= 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world
    off = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[off:off + n].view_as(p).to(p.dtype)
        off += n


def _agree(flag: bool, world: int, device) -> bool:
    """Rank 0's decision for everyone (the wall clock differs a little between ranks)."""
    if world <= 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.broadcast(t, 0)
    return bool(t.item())


def state_digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def export_artifact(model: GPT, cfg: TrainConfig, state: dict, path: Path, device, rank: int) -> bytes:
    """Calibrate, quantize (GPTQ or round-to-nearest), serialize, compress; rank 0 writes."""
    hessians = None
    if cfg.gptq_enabled:
        T = cfg.gptq_calib_seq_len or cfg.train_seq_len
        if cfg.gptq_calibration == "self":
            seqs = self_generate(model, cfg.gptq_calib_seqs, T, cfg.bos_id, cfg.seed, device)
        else:
            stream = TokenStream(cfg.train_files)
            seqs = torch.from_numpy(stream.take(cfg.gptq_calib_seqs * T).astype("int64")).view(-1, T).to(device)
        model.eval()
        with torch.no_grad(), autocast_context(device):
            hessians = collect_hessians(model, [seqs[i:i + 8] for i in range(0, len(seqs), 8)])
    blob = compress(serialize(quantize_state(model, state, cfg, hessians)), cfg.compressor, cfg.compress_level)
    if rank == 0:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
    return blob


def load_artifact(path: Path, cfg: TrainConfig) -> dict[str, torch.Tensor]:
    return dequantize_state(deserialize(decompress(Path(path).read_bytes(), cfg.compressor)))


def train(cfg: TrainConfig, *, out_dir: str | Path = ".", log_path: str | Path | None = None,
          code_bytes: int = 0, sources: dict | None = None, echo: bool = True,
          probe: bool = True) -> RunResult:
    cfg = fill_data_paths(cfg)
    rank, world, device = setup_distributed(cfg)
    log = Logger(log_path, rank, echo)
    res = RunResult(cfg=cfg, code_bytes=code_bytes, log_lines=log.lines)
    log(describe(cfg, sources))
    torch.manual_seed(cfg.seed)
    batches = DistributedBatches(cfg.train_files, cfg.train_batch_tokens, cfg.train_seq_len, rank, world,
                                 cfg.grad_accum_steps, device, cfg.vocab_size)
    val = load_val(cfg.val_files, cfg.vocab_size)
    lut = ByteLUT.load(cfg.meta_path, cfg.tokenizer_path)
    log(f"val_loader: shards:{cfg.val_files} tokens:{len(val)} meta_path={cfg.meta_path or '-'} "
        f"tokenizer_path={cfg.tokenizer_path or '-'}")
    model = GPT(cfg).to(device)
    res.params = count_parameters(model)
    log(f"model_params:{res.params} world_size:{world} device:{device} "
        f"attention:{'flash' if device.type == 'cuda' and _has_flash() else 'sdpa'}")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        log(f"cuda: {torch.cuda.get_device_name(device)} torch:{torch.__version__}")
    opt = Optimizers(model, cfg)
    ema = EMA(model, cfg.ema_decay) if cfg.ema_enabled else None
    swa = SWA() if cfg.swa_enabled else None
    budget = cfg.max_wallclock_seconds - cfg.export_reserve_seconds if cfg.max_wallclock_seconds > 0 else None
    if budget is not None:
        log(f"export:reserving {cfg.export_reserve_seconds:g}s, effective={int(budget * 1000)}ms")
    params = list(model.parameters())
    elapsed, step, qat_on = 0.0, 0, False
    for step in range(cfg.iterations):
        if _agree(budget is not None and elapsed >= budget, world, device):
            res.stopped_early = True
            log(f"stopping_early: wallclock_cap train_time:{elapsed * 1000:.0f}ms step:{step}/{cfg.iterations}")
            break
        t0 = time.perf_counter()
        scale = lr_scale(cfg, step, elapsed, budget)
        if model.recur and step >= cfg.recur_start_step and not model.recur_active:
            model.recur_active = True
            res.switched_on["depth_recurrence"] = step
            log(f"depth_recurrence: on at step:{step} layers:{cfg.recur_layers}")
        if cfg.late_qat and not qat_on and step >= cfg.warmup_steps and scale < cfg.qat_threshold:
            model.set_qat(True)
            qat_on = True
            res.switched_on["late_qat"] = step
            log(f"late_qat: on at step:{step} lr_scale:{scale:.3f}")
        model.train()
        micro = batches.next()
        loss_acc = torch.zeros((), device=device)
        for x, y in micro:
            with autocast_context(device):
                loss = model(x, y) / len(micro)
            loss.backward()
            loss_acc += loss.detach().float()
        _all_reduce_grads(params, world)
        opt.step(step, scale)
        opt.zero_grad()
        if ema is not None:
            ema.update(model)
        if swa is not None and scale < cfg.swa_start_frac and step % cfg.swa_every == 0:
            swa.add(model.state_dict())
        if world > 1:
            dist.all_reduce(loss_acc, op=dist.ReduceOp.SUM)
            loss_acc /= world
        res.losses.append(float(loss_acc))
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed += time.perf_counter() - t0
        if (step + 1) % cfg.train_log_every == 0 or step == 0 or step + 1 == cfg.iterations:
            log(f"step:{step + 1}/{cfg.iterations} train_loss:{res.losses[-1]:.4f} "
                f"train_time:{elapsed * 1000:.0f}ms step_avg:{elapsed * 1000 / (step + 1):.2f}ms")
        if cfg.val_loss_every and (step + 1) % cfg.val_loss_every == 0:
            sc = evaluate(model, val, lut, device, cfg.eval_seq_len or cfg.train_seq_len, 0, cfg.eval_batch_seqs)
            log(f"step:{step + 1}/{cfg.iterations} val_loss:{sc.loss:.4f} val_bpb:{sc.bpb:.4f}")
    res.steps = len(res.losses)
    res.train_seconds = elapsed
    _log_peak_memory(log, device, "train")
    model.set_qat(False)

    # --- export: counted toward the training time ----------------------------------------------
    t0 = time.perf_counter()
    final_state = swa.state(model) if swa is not None and swa.count else (ema.state(model) if ema else model.state_dict())
    which = "swa" if swa is not None and swa.count else ("ema" if ema else "raw")
    model.load_state_dict(final_state)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    art = out_dir / "final_model.ptz"
    blob = export_artifact(model, cfg, final_state, art, device, rank)
    res.export_seconds = time.perf_counter() - t0
    res.model_bytes, res.artifact_path = len(blob), str(art)
    qlabel = label(cfg)
    log(f"export: weights:{which} train_time:{elapsed * 1000:.0f}ms export_time:{res.export_seconds * 1000:.0f}ms "
        f"total_train_time:{res.total_train_seconds * 1000:.0f}ms")
    log(f"Code size: {code_bytes} bytes")
    log(f"Serialized model {qlabel}: {res.model_bytes} bytes")
    log(f"Total submission size {qlabel}: {res.model_bytes + code_bytes} bytes")

    # --- the roundtrip model is what is scored --------------------------------------------------
    raw = art.read_bytes() if rank == 0 else None  # the bytes as written, not the in-memory blob
    if world > 1:  # every rank scores rank 0's file (out_dir may be private to each rank)
        box = [raw]
        dist.broadcast_object_list(box, src=0)
        raw = box[0]
    rt_state = dequantize_state(deserialize(decompress(raw, cfg.compressor)))
    res.artifact_digest = state_digest(rt_state)
    rt = GPT(cfg).to(device)
    rt.load_state_dict(rt_state)
    rt.recur_active = model.recur_active
    res.roundtrip_digest = state_digest(rt.state_dict())
    T = cfg.eval_seq_len or cfg.train_seq_len
    tag = f"final_int{cfg.quant_bits}"
    res.scores[f"{tag}_roundtrip"] = sc = evaluate(rt, val, lut, device, T, 0, cfg.eval_batch_seqs)
    log(f"{tag}_roundtrip val_loss:{sc.loss:.8f} val_bpb:{sc.bpb:.8f} eval_time:{sc.seconds * 1000:.0f}ms")
    res.final_label = f"{tag}_roundtrip"
    if cfg.eval_stride:
        res.scores[f"{tag}_sliding_window"] = sc = evaluate(rt, val, lut, device, T, cfg.eval_stride, cfg.eval_batch_seqs)
        log(f"{tag}_sliding_window val_loss:{sc.loss:.8f} val_bpb:{sc.bpb:.8f} stride:{cfg.eval_stride} "
            f"eval_time:{sc.seconds * 1000:.0f}ms")
        res.final_label = f"{tag}_sliding_window"
    if cfg.ttt_enabled:
        ctx = run_ttt(rt, val, cfg, lut, device)
        res.scores[f"{tag}_legal_ttt"] = sc = ctx.scores
        res.ledger_problems, res.ledger_summary = ctx.ledger.verify(), ctx.ledger.summary()
        log(f"{tag}_legal_ttt val_loss:{sc.loss:.8f} val_bpb:{sc.bpb:.8f} chunks:{ctx.n_chunks} "
            f"variant:{cfg.ttt_variant} eval_time:{sc.seconds * 1000:.0f}ms")
        log(f"ttt_ledger: steps:{ctx.ledger.n_steps} violations:{len(res.ledger_problems)}")
        res.final_label = f"{tag}_legal_ttt"
        if probe:
            res.probe = causality_probe(rt, val, cfg, lut, device)
            log(f"causality_probe: passed:{res.probe.passed} t:{res.probe.t} tokens:{res.probe.tokens} "
                f"max_diff_before:{res.probe.max_diff_before:.3e} max_diff_after:{res.probe.max_diff_after:.3e}")
    log(f"eval_total: eval_time:{res.eval_seconds * 1000:.0f}ms")
    _log_peak_memory(log, device, "run")
    # The score is printed once, under its own label above; repeating the numbers under a
    # second label is what makes log parsers pick the wrong line.
    log(f"final_score_label: {res.final_label}")
    return res


def _has_flash() -> bool:
    return _flash_attn is not None


def main(argv: list[str] | None = None, cfg: TrainConfig | None = None) -> int:
    """Ungated run: `python -m trainer.run [--preset P] [KEY=VALUE ...]` (also the shipped script)."""
    args = list(sys.argv[1:] if argv is None else argv)
    sources = None
    if cfg is None:
        preset = None
        if "--preset" in args:
            i = args.index("--preset")
            preset = args[i + 1]
            del args[i:i + 2]
        sets = dict(a.split("=", 1) for a in args if "=" in a)
        cfg, sources = resolve_config(preset, sets=sets)
    code_bytes = Path(sys.argv[0]).stat().st_size if _BUNDLED and Path(sys.argv[0]).is_file() else 0
    res = train(cfg, out_dir=os.environ.get("OUT_DIR", "."), log_path=os.environ.get("LOG_PATH") or None,
                code_bytes=code_bytes, sources=sources)
    loss_out = os.environ.get("LOSS_CURVE_OUT")
    if loss_out and (not dist.is_initialized() or dist.get_rank() == 0):
        Path(loss_out).write_text("\n".join(f"{x:.10f}" for x in res.losses) + "\n")
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
