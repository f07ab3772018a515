"""One training run in three phases: the loop (data → model → Muon/Adam steps under the
wall-clock cap, after untimed compile-priming steps whose effect is undone), the export (final
weights → artifact-producing data work such as GPTQ calibration → quantized, compressed
artifact) and the evaluation (the de-quantized model, re-read from the artifact bytes, scored).
Each timed piece is recorded as an `audit.timing.Timed`, so the gate and the submission audit
apply one convention. One code path for one process, torchrun on GPUs (NCCL) and on CPU (gloo).
No gating here: `trainer.gate` wraps this.
"""

from __future__ import annotations

import copy
import hashlib
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist

from audit.timing import Phase, Timed, budget
from trainer.config import ConfigError, TrainConfig, describe, fill_data_paths, resolve_config
from trainer.data import ByteLUT, DistributedBatches, TokenStream, load_val
from trainer.eval import ProbeResult, Scores, causality_probe, evaluate, run_ttt
from trainer.model import _flash_attn, GPT, autocast_context, count_parameters
from trainer.optim import EMA, SWA, Optimizers, lr_scale, training_fraction
from trainer.quant import (collect_hessians, compress, decompress, dequantize_state, deserialize, label,
                           quantize_state, self_generate, serialize)

_BUNDLED = False  # True in the train_gpt.py written by `trainer export-code`, which folds `if not _BUNDLED:` away
Clock = Callable[[], float]


@dataclass
class RunResult:
    cfg: TrainConfig
    steps: int = 0
    stopped_early: bool = False
    train_seconds: float = 0.0  # the training loop (priming and in-training validation excluded)
    warmup_seconds: float = 0.0  # compile-priming steps: reported, not counted (as the official script)
    artifact_seconds: float = 0.0  # artifact-producing data work (GPTQ calibration): counted with training
    export_seconds: float = 0.0  # quantize + serialize + compress + write: reported, not counted
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
    timings: list[Timed] = field(default_factory=list)  # every timed piece, by audit.timing's phases

    @property
    def final(self) -> Scores:
        return self.scores[self.final_label]

    @property
    def budget(self):
        return budget(self.timings)

    @property
    def eval_seconds(self) -> float:
        """The scored eval passes (what the 600 s eval cap applies to)."""
        return self.budget.eval_s

    @property
    def total_train_seconds(self) -> float:
        """Training + artifact-producing data work (what the 600 s training cap applies to)."""
        return self.budget.train_s


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



def calibrate(model: GPT, cfg: TrainConfig, device) -> dict[str, torch.Tensor] | None:
    """Artifact-producing data work: the GPTQ Hessians (from train data or self-generated text)."""
    if not cfg.gptq_enabled:
        return None
    T = cfg.gptq_calib_seq_len or cfg.train_seq_len
    if cfg.gptq_calibration == "self":
        seqs = self_generate(model, cfg.gptq_calib_seqs, T, cfg.bos_id, cfg.seed, device)
    else:
        stream = TokenStream(cfg.train_files)
        seqs = torch.from_numpy(stream.take(cfg.gptq_calib_seqs * T).astype("int64")).view(-1, T).to(device)
    model.eval()
    hooks, extra = [], {}
    if cfg.embed_gptq:  # the tied embedding's Hessian: the head's input (trainer.gptq)
        from trainer.gptq import head_input_hessian_hook

        hooks.append(head_input_hessian_hook(model, extra))
    try:
        with torch.no_grad(), autocast_context(device):
            return {**collect_hessians(model, [seqs[i:i + 8] for i in range(0, len(seqs), 8)]), **extra}
    finally:
        for h in hooks:
            h.remove()


def write_artifact(model: GPT, cfg: TrainConfig, state: dict, hessians, path: Path, rank: int) -> bytes:
    """Export: quantize (GPTQ or round-to-nearest), serialize, compress; rank 0 writes."""
    data = serialize(quantize_state(model, state, cfg, hessians))
    # the record's stride-2 byte shuffle (deserialize undoes it by its magic); pergroup shuffles
    # per group instead, and reads only the plain container
    if cfg.byte_shuffle and cfg.compressor != "pergroup":
        from trainer.gptq import shuffle_bytes

        data = shuffle_bytes(data)
    blob = compress(data, cfg.compressor, cfg.compress_level)
    if rank == 0:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
    return blob


def export_artifact(model: GPT, cfg: TrainConfig, state: dict, path: Path, device, rank: int) -> bytes:
    """Calibrate, then write the artifact (both phases; the gate's dry run times them apart)."""
    return write_artifact(model, cfg, state, calibrate(model, cfg, device), path, rank)


def load_artifact(path: Path, cfg: TrainConfig) -> dict[str, torch.Tensor]:
    return dequantize_state(deserialize(decompress(Path(path).read_bytes(), cfg.compressor)))


# --- the run's shared state --------------------------------------------------------------------
@dataclass
class RunContext:
    cfg: TrainConfig
    rank: int
    world: int
    device: torch.device
    log: Logger
    res: RunResult
    clock: Clock
    val: torch.Tensor
    lut: ByteLUT

    @property
    def accum(self) -> int:
        return accum_steps(self.cfg, self.world)

    def timed(self, phase: Phase, seconds: float, label: str) -> None:
        self.res.timings.append(Timed(phase, seconds, label))

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def accum_steps(cfg: TrainConfig, world: int) -> int:
    """Micro-steps per rank per optimizer step: as set, or 8 // world_size (the official rule)."""
    if cfg.grad_accum_steps:
        return cfg.grad_accum_steps
    if 8 % world:
        raise ConfigError("config", f"WORLD_SIZE={world} must divide 8 when grad_accum_steps is 0 (8 // world_size)")
    return 8 // world


def plain_batch_seqs(cfg: TrainConfig, world: int, accum: int) -> int:
    """Rows per plain-eval batch: VAL_BATCH_SIZE tokens over ranks and micro-steps (official), else eval_batch_seqs."""
    T = cfg.eval_seq_len or cfg.train_seq_len
    if cfg.val_batch_size > 0:
        return max(1, cfg.val_batch_size // (world * accum * T))
    return cfg.eval_batch_seqs


# --- phase 1: the training loop ------------------------------------------------------------------
class Trainer:
    """The model, its optimizers and data; `step()` is one optimizer step over all micro-batches."""

    def __init__(self, ctx: RunContext, model: GPT):
        from trainer.fast import maybe_compile

        cfg = ctx.cfg
        self.ctx, self.model = ctx, model
        self.fwd = maybe_compile(model, cfg, ctx.device)
        self.opt = Optimizers(model, cfg)
        self.params = list(model.parameters())
        self.reducer = None
        if ctx.world > 1 and cfg.grad_reduce == "bucketed":
            from trainer.fast import BucketedAllReduce

            self.reducer = BucketedAllReduce(self.params)
        self.batches = self.new_batches()

    def new_batches(self) -> DistributedBatches:
        c = self.ctx
        return DistributedBatches(c.cfg.train_files, c.cfg.train_batch_tokens, c.cfg.train_seq_len, c.rank, c.world,
                                  c.accum, c.device, c.cfg.vocab_size)

    def step(self, step: int, scale: float) -> torch.Tensor:
        """Forward/backward over this rank's micro-batches, gradients averaged over ranks, one
        optimizer step; returns the mean loss over ranks."""
        device, world = self.ctx.device, self.ctx.world
        self.model.train()
        micro = self.batches.next()
        loss_acc = torch.zeros((), device=device)
        for i, (x, y) in enumerate(micro):
            if self.reducer is not None:
                self.reducer.armed = i == len(micro) - 1
            with autocast_context(device):
                loss = self.fwd(x, y) / len(micro)
            loss.backward()
            loss_acc += loss.detach().float()
        if self.reducer is not None:
            self.reducer.finish()
        else:
            _all_reduce_grads(self.params, world)
        self.opt.step(step, scale)
        self.opt.zero_grad()
        if world > 1:
            dist.all_reduce(loss_acc, op=dist.ReduceOp.SUM)
            loss_acc /= world
        return loss_acc

    def prime(self, steps: int) -> None:
        """Compile-priming as the official script: run `steps` real steps (compiling the forward,
        backward and optimizer paths), then restore the initial weights and optimizer state and
        restart the data stream, so measured training starts from the true init."""
        if steps <= 0:
            return
        weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        opt_states = [copy.deepcopy(o.state_dict()) for o in (self.opt.muon, self.opt.adam)]
        for s in range(steps):
            self.step(s, 1.0)
        if self.model.recur and self.fwd is not self.model and not self.model.recur_active:
            # compiled: the looped graph too, so switching the loop on later does not compile
            # inside the timed run (the record's loop warmup)
            self.model.recur_active = True
            for s in range(steps):
                self.step(s, 1.0)
            self.model.recur_active = False
        self.model.load_state_dict(weights)
        for o, st in zip((self.opt.muon, self.opt.adam), opt_states):
            o.load_state_dict(st)
        self.opt.zero_grad()
        self.batches = self.new_batches()


def _switches(ctx: RunContext, model: GPT, step: int, scale: float, qat_on: bool, frac: float = 0.0) -> bool:
    """Depth recurrence (at a step, or at a fraction of training) and late QAT switch on during
    training; returns whether QAT is on."""
    cfg, res = ctx.cfg, ctx.res
    due = frac >= cfg.recur_start_frac if cfg.recur_start_frac > 0 else step >= cfg.recur_start_step
    if model.recur and due and not model.recur_active:
        model.recur_active = True
        res.switched_on["depth_recurrence"] = step
        ctx.log(f"depth_recurrence: on at step:{step} layers:{cfg.recur_layers}")
    if cfg.late_qat and not qat_on and scale < cfg.qat_threshold:
        model.set_qat(True)
        res.switched_on["late_qat"] = step
        ctx.log(f"late_qat: on at step:{step} lr_scale:{scale:.3f}")
        return True
    return qat_on


def validate_during_training(ctx: RunContext, model: GPT, step: int, elapsed: float) -> None:
    """A plain val pass of the float model (diagnostic: the score is the roundtrip model's)."""
    cfg = ctx.cfg
    T = cfg.eval_seq_len or cfg.train_seq_len
    t0 = ctx.clock()
    sc = evaluate(model, ctx.val, ctx.lut, ctx.device, T, 0, plain_batch_seqs(cfg, ctx.world, ctx.accum))
    ctx.sync()
    ctx.timed(Phase.EVAL_DIAGNOSTIC, ctx.clock() - t0, f"val@step{step}")
    ctx.log(f"step:{step}/{cfg.iterations} val_loss:{sc.loss:.4f} val_bpb:{sc.bpb:.4f} "
            f"train_time:{elapsed * 1000:.0f}ms step_avg:{elapsed * 1000 / max(step, 1):.2f}ms")


def train_loop(ctx: RunContext, model: GPT) -> tuple[EMA | None, SWA | None]:
    """Prime, then train until `iterations` or the cap (minus the reserve for artifact work)."""
    cfg, res, log = ctx.cfg, ctx.res, ctx.log
    tr = Trainer(ctx, model)
    t0 = ctx.clock()
    tr.prime(cfg.warmup_steps)
    ctx.sync()
    res.warmup_seconds = ctx.clock() - t0
    if cfg.warmup_steps > 0:
        log(f"warmup: {cfg.warmup_steps} priming steps in {res.warmup_seconds * 1000:.0f}ms (undone; not counted)")
    ema = EMA(model, cfg.ema_decay) if cfg.ema_enabled else None
    swa = SWA() if cfg.swa_enabled else None
    cap = cfg.max_wallclock_seconds - cfg.export_reserve_seconds if cfg.max_wallclock_seconds > 0 else None
    if cap is not None and cfg.export_reserve_seconds > 0:
        log(f"artifact_work:reserving {cfg.export_reserve_seconds:g}s, effective={int(cap * 1000)}ms")
    elapsed, qat_on, step = 0.0, False, 0
    while True:
        at_cap = _agree(cap is not None and elapsed >= cap, ctx.world, ctx.device)
        last = step >= cfg.iterations or at_cap
        if last or (cfg.val_loss_every > 0 and step % cfg.val_loss_every == 0):
            validate_during_training(ctx, model, step, elapsed)  # off the training clock, as the official script
        if last:
            if at_cap and step < cfg.iterations:
                res.stopped_early = True
                log(f"stopping_early: wallclock_cap train_time:{elapsed * 1000:.0f}ms step:{step}/{cfg.iterations}")
            break
        t0 = ctx.clock()
        scale = lr_scale(cfg, step, elapsed, cap)
        qat_on = _switches(ctx, model, step, scale, qat_on, training_fraction(cfg, step, elapsed, cap))
        loss = tr.step(step, scale)
        if ema is not None:
            ema.update(model)
        if swa is not None and scale < cfg.swa_start_frac and step % cfg.swa_every == 0:
            swa.add(model.state_dict())
        res.losses.append(float(loss))
        ctx.sync()
        elapsed += ctx.clock() - t0
        step += 1
        if cfg.train_log_every > 0 and (step <= 10 or step % cfg.train_log_every == 0 or step == cfg.iterations):
            log(f"step:{step}/{cfg.iterations} train_loss:{res.losses[-1]:.4f} "
                f"train_time:{elapsed * 1000:.0f}ms step_avg:{elapsed * 1000 / step:.2f}ms")
    res.steps, res.train_seconds = step, elapsed
    ctx.timed(Phase.TRAIN, elapsed, "training loop")
    _log_peak_memory(log, ctx.device, "train")
    model.set_qat(False)
    return ema, swa


# --- phase 2: artifact work and export -----------------------------------------------------------
def export_phase(ctx: RunContext, model: GPT, ema: EMA | None, swa: SWA | None, out_dir: Path) -> bytes:
    """Final weights → calibration (counted with training) → artifact (export, reported)."""
    cfg, res, log = ctx.cfg, ctx.res, ctx.log
    use_swa = swa is not None and swa.count > 0
    final_state = swa.state(model) if use_swa else (ema.state(model) if ema else model.state_dict())
    model.load_state_dict(final_state)
    t0 = ctx.clock()
    hessians = calibrate(model, cfg, ctx.device)
    ctx.sync()
    res.artifact_seconds = ctx.clock() - t0
    if hessians is not None:
        ctx.timed(Phase.ARTIFACT_WORK, res.artifact_seconds, "gptq calibration")
        log(f"gptq:collected {len(hessians)} Hessians in {res.artifact_seconds:.1f}s")
    out_dir.mkdir(parents=True, exist_ok=True)
    art = out_dir / "final_model.ptz"
    t0 = ctx.clock()
    # rank 0 alone quantizes and compresses; the others receive its bytes below
    blob = write_artifact(model, cfg, final_state, hessians, art, ctx.rank) if ctx.rank == 0 else b""
    res.export_seconds = ctx.clock() - t0
    ctx.timed(Phase.EXPORT, res.export_seconds, "quantize + compress")
    res.model_bytes, res.artifact_path = len(blob), str(art)
    qlabel = label(cfg)
    which = "swa" if use_swa else ("ema" if ema else "raw")
    log(f"export: weights:{which} quantize+compress in {res.export_seconds:.1f}s (reported, not counted); "
        f"counted:{res.total_train_seconds * 1000:.0f}ms of {cfg.max_wallclock_seconds * 1000:.0f}ms")
    log(f"Code size: {res.code_bytes} bytes")
    log(f"Serialized model {qlabel}: {res.model_bytes} bytes")
    log(f"Total submission size {qlabel}: {res.model_bytes + res.code_bytes} bytes")
    raw = art.read_bytes() if ctx.rank == 0 else None  # the bytes as written, not the in-memory blob
    if ctx.world > 1:  # every rank scores rank 0's file (out_dir may be private to each rank)
        box = [raw]
        dist.broadcast_object_list(box, src=0)
        raw = box[0]
        res.model_bytes = len(raw)
    return raw


# --- phase 3: evaluation of the de-quantized artifact ------------------------------------------
def scored_pass(cfg: TrainConfig) -> str:
    """Which pass the reported score is: the last of roundtrip → sliding window → TTT that runs."""
    return "legal_ttt" if cfg.ttt_enabled else ("sliding_window" if cfg.eval_stride else "roundtrip")


def evaluate_phase(ctx: RunContext, model: GPT, raw: bytes, probe: bool) -> None:
    cfg, res, log = ctx.cfg, ctx.res, ctx.log
    rt_state = dequantize_state(deserialize(decompress(raw, cfg.compressor)))
    rt = GPT(cfg).to(ctx.device)
    rt.load_state_dict(rt_state)
    rt.recur_active = model.recur_active
    if not _BUNDLED:  # for the gate's roundtrip check (the shipped script has no gate)
        res.artifact_digest = state_digest(rt_state)
        res.roundtrip_digest = state_digest(rt.state_dict())
    T = cfg.eval_seq_len or cfg.train_seq_len
    tag, scored = f"final_int{cfg.quant_bits}", scored_pass(cfg)

    def timed_pass(fn, *args):
        t0 = ctx.clock()
        out = fn(*args)
        ctx.sync()
        return out, ctx.clock() - t0

    def record(kind: str, sc: Scores, seconds: float, extra: str = "") -> None:
        sc.seconds = seconds  # by the run's clock (injectable), like every other phase
        res.scores[f"{tag}_{kind}"] = sc
        phase = Phase.EVAL_SCORED if kind == scored else Phase.EVAL_DIAGNOSTIC
        ctx.timed(phase, sc.seconds, f"{tag}_{kind}")
        log(f"{tag}_{kind} val_loss:{sc.loss:.8f} val_bpb:{sc.bpb:.8f}{extra} eval_time:{sc.seconds * 1000:.0f}ms"
            + ("" if kind == scored else " (diagnostic)"))

    record("roundtrip", *timed_pass(evaluate, rt, ctx.val, ctx.lut, ctx.device, T, 0,
                                    plain_batch_seqs(cfg, ctx.world, ctx.accum)))
    if cfg.eval_stride:
        record("sliding_window", *timed_pass(evaluate, rt, ctx.val, ctx.lut, ctx.device, T, cfg.eval_stride,
                                             cfg.eval_batch_seqs), f" stride:{cfg.eval_stride}")
    if cfg.ttt_enabled:
        tt, seconds = timed_pass(run_ttt, rt, ctx.val, cfg, ctx.lut, ctx.device)
        res.ledger_problems, res.ledger_summary = tt.ledger.verify(), tt.ledger.summary()
        record("legal_ttt", tt.scores, seconds, f" chunks:{tt.n_chunks} variant:{cfg.ttt_variant}")
        log(f"ttt_ledger: steps:{tt.ledger.n_steps} violations:{len(res.ledger_problems)}")
        if probe:
            t0 = ctx.clock()
            res.probe = causality_probe(rt, ctx.val, cfg, ctx.lut, ctx.device)
            ctx.timed(Phase.EVAL_DIAGNOSTIC, ctx.clock() - t0, "causality probe")
            log(f"causality_probe: passed:{res.probe.passed} t:{res.probe.t} tokens:{res.probe.tokens} "
                f"max_diff_before:{res.probe.max_diff_before:.3e} max_diff_after:{res.probe.max_diff_after:.3e}")
    res.final_label = f"{tag}_{scored}"
    b = res.budget
    log(f"eval_total: scored:{b.eval_s * 1000:.0f}ms diagnostic:{b.diagnostic_s * 1000:.0f}ms")
    _log_peak_memory(log, ctx.device, "run")
    # The score is printed once, under its own label above; repeating the numbers under a
    # second label is what makes log parsers pick the wrong line.
    log(f"final_score_label: {res.final_label}")


# --- the run -----------------------------------------------------------------------------------
def setup_run(cfg: TrainConfig, log_path, code_bytes: int, sources, echo: bool, clock: Clock) -> RunContext:
    rank, world, device = setup_distributed(cfg)
    if device.type == "cpu" and cfg.cpu_threads > 0:
        # One thread per process degrades gracefully when other processes share the cores; with
        # several, every parallel op waits for its slowest thread (measured: 10x slower at load 7).
        torch.set_num_threads(cfg.cpu_threads)
    log = Logger(log_path, rank, echo)
    res = RunResult(cfg=cfg, code_bytes=code_bytes, log_lines=log.lines)
    log(describe(cfg, sources))
    val = load_val(cfg.val_files, cfg.vocab_size)
    if cfg.val_max_tokens > 0:
        val = val[:cfg.val_max_tokens + 1]
    lut = ByteLUT.load(cfg.meta_path, cfg.tokenizer_path)
    if cfg.caseops:  # BPB from the per-token byte sidecar of the val shards (trainer.caseops)
        from trainer.caseops import SidecarBytes

        lut = SidecarBytes.load(cfg.val_files, cfg.val_bytes_files, len(val), lut)
    log(f"val_loader: shards:{cfg.val_files} tokens:{len(val)} meta_path={cfg.meta_path or '-'} "
        f"tokenizer_path={cfg.tokenizer_path or '-'}")
    return RunContext(cfg, rank, world, device, log, res, clock, val, lut)


def train(cfg: TrainConfig, *, out_dir: str | Path = ".", log_path: str | Path | None = None,
          code_bytes: int = 0, sources: dict | None = None, echo: bool = True,
          probe: bool = True, clock: Clock = time.perf_counter,
          init_state: dict[str, torch.Tensor] | None = None) -> RunResult:
    """Loop, export, evaluation. `clock` is injectable so tests can drive the cap without
    waiting; `init_state` starts from given weights instead of the seeded init."""
    cfg = fill_data_paths(cfg)
    ctx = setup_run(cfg, log_path, code_bytes, sources, echo, clock)
    torch.manual_seed(cfg.seed)
    model = GPT(cfg).to(ctx.device)
    if init_state is not None:
        model.load_state_dict(init_state)
    ctx.res.params = count_parameters(model)
    ctx.log(f"model_params:{ctx.res.params} world_size:{ctx.world} grad_accum_steps:{ctx.accum} device:{ctx.device} "
            f"attention:{'flash' if ctx.device.type == 'cuda' and _has_flash() else 'sdpa'}")
    if ctx.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(ctx.device)
        ctx.log(f"cuda: {torch.cuda.get_device_name(ctx.device)} torch:{torch.__version__}")
    ema, swa = train_loop(ctx, model)
    raw = export_phase(ctx, model, ema, swa, Path(out_dir))
    evaluate_phase(ctx, model, raw, probe)
    return ctx.res


def _has_flash() -> bool:
    return _flash_attn is not None


def script_main(cfg: TrainConfig) -> int:
    """The shipped train_gpt.py: log to logs/<RUN_ID>.txt as the official script, artifact in '.'."""
    code_bytes = Path(sys.argv[0]).stat().st_size if Path(sys.argv[0]).is_file() else 0
    log_path = os.environ.get("LOG_PATH") or f"logs/{cfg.run_id or uuid.uuid4()}.txt"
    train(cfg, out_dir=os.environ.get("OUT_DIR", "."), log_path=log_path, code_bytes=code_bytes)
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Ungated run: `python -m trainer.run [--preset P] [KEY=VALUE ...]`."""
    args = list(sys.argv[1:] if argv is None else argv)
    preset = None
    if "--preset" in args:
        i = args.index("--preset")
        preset = args[i + 1]
        del args[i:i + 2]
    cfg, sources = resolve_config(preset, sets=dict(a.split("=", 1) for a in args if "=" in a))
    res = train(cfg, out_dir=os.environ.get("OUT_DIR", "."), log_path=os.environ.get("LOG_PATH") or None,
                sources=sources)
    loss_out = os.environ.get("LOSS_CURVE_OUT")
    if loss_out and (not dist.is_initialized() or dist.get_rank() == 0):
        Path(loss_out).write_text("\n".join(f"{x:.10f}" for x in res.losses) + "\n")
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
