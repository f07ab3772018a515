"""Optimisers and schedules: Muon for block matrices, Adam(W) for embeddings and scalars,
warmup/warmdown against iterations or the wall clock, EMA and SWA of the weights."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn

from trainer.config import TrainConfig

NS_COEFFS = (3.4445, -4.7750, 2.0315)  # quintic Newton–Schulz, as in the Muon records
# Polar Express: one (a, b, c) per iteration, tuned so 5 steps land closer to the polar factor
# than 5 fixed quintic steps (the values of the 2026-04-23…29 records).
PE_COEFFS = ((8.156554524902461, -22.48329292557795, 15.878769915207462),
             (4.042929935166739, -2.808917465908714, 0.5000178451051316),
             (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
             (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
             (2.3465413258596377, -1.7097828382687081, 0.42323551169305323))


def ns_schedule(steps: int, variant: str = "quintic") -> list[tuple[float, float, float]]:
    """The (a, b, c) of each iteration: fixed quintic, or Polar Express (its first `steps`
    tuples; more steps than tuples run the five once, as the records do)."""
    if variant == "polar_express":
        return list(PE_COEFFS[:steps] if steps <= len(PE_COEFFS) else PE_COEFFS)
    return [NS_COEFFS] * steps


def newton_schulz(g: torch.Tensor, steps: int = 5, eps: float = 1e-7, variant: str = "quintic") -> torch.Tensor:
    """Approximately orthogonalise a matrix (U Vᵀ of its SVD) with `steps` quintic iterations."""
    x = g.bfloat16() if g.is_cuda else g.float()  # bf16 on GPU as the records do; exact on CPU
    transposed = x.size(0) > x.size(1)
    if transposed:
        x = x.T
    x = x / (x.norm() + eps)
    for a, b, c in ns_schedule(steps, variant):
        A = x @ x.T
        B = b * A + c * A @ A
        x = a * x + B @ x
    return (x.T if transposed else x).to(g.dtype)


class Muon(torch.optim.Optimizer):
    """SGD-momentum (Nesterov) whose update is orthogonalised; decoupled weight decay.

    Under DDP the gradients are already averaged; each rank orthogonalises every world_size-th
    matrix and the updates are summed across ranks, so all ranks apply identical updates.
    """

    def __init__(self, params, lr: float, momentum: float, steps: int = 5, nesterov: bool = True,
                 weight_decay: float = 0.0, ns: str = "quintic", row_normalize: bool = False):
        super().__init__(list(params), dict(lr=lr, momentum=momentum, steps=steps, nesterov=nesterov,
                                            weight_decay=weight_decay, ns=ns, row_normalize=row_normalize))

    @torch.no_grad()
    def step(self):
        distributed = dist.is_available() and dist.is_initialized()
        world, rank = (dist.get_world_size(), dist.get_rank()) if distributed else (1, 0)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            # The update buffer is bf16 on GPU as in the official script (NS runs in bf16 there), fp32 on CPU.
            buf_dtype = torch.bfloat16 if params[0].is_cuda else torch.float32
            flat = torch.zeros(sum(p.numel() for p in params), device=params[0].device, dtype=buf_dtype)
            off = 0
            for i, p in enumerate(params):
                n = p.numel()
                if i % world == rank:
                    st = self.state[p]
                    buf = st.setdefault("momentum_buffer", torch.zeros_like(p.grad))
                    buf.mul_(group["momentum"]).add_(p.grad)
                    g = p.grad.add(buf, alpha=group["momentum"]) if group["nesterov"] else buf
                    if group["row_normalize"]:  # MuonEq-R: equal-norm rows before orthogonalising
                        g = g / g.float().norm(dim=-1, keepdim=True).clamp_min(1e-7).to(g.dtype)
                    u = newton_schulz(g, group["steps"], variant=group["ns"])
                    u = u * max(1.0, p.size(0) / p.size(1)) ** 0.5  # keep RMS comparable for tall matrices
                    flat[off:off + n] = u.flatten().to(buf_dtype)
                off += n
            if world > 1:
                dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            off = 0
            for p in params:
                n = p.numel()
                if group["weight_decay"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(flat[off:off + n].view_as(p).to(p.dtype), alpha=-group["lr"])
                off += n


def param_groups(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Route parameters by the module that owns them: embedding tables → embed (Adam); the
    untied output head → head (Adam, HEAD_LR); linear-layer weight matrices → Muon; everything
    else (gains, scales, mixes, skip weights, gates: parameters held directly) → scalar (Adam)."""
    groups: dict[str, list] = {"matrix": [], "embed": [], "head": [], "scalar": []}
    head = getattr(model, "lm_head", None)
    for mod_name, mod in model.named_modules():
        for pname, p in mod.named_parameters(recurse=False):
            name = f"{mod_name}.{pname}" if mod_name else pname
            if isinstance(mod, nn.Embedding):
                groups["embed"].append((name, p))
            elif head is not None and mod is head:
                groups["head"].append((name, p))
            elif isinstance(mod, nn.Linear) and p.ndim == 2:
                groups["matrix"].append((name, p))
            else:
                groups["scalar"].append((name, p))
    return groups


class Optimizers:
    """All optimisers of a run, stepped together with one LR scale."""

    def __init__(self, model: nn.Module, cfg: TrainConfig):
        self.cfg = cfg
        g = param_groups(model)
        self.muon = Muon([p for _, p in g["matrix"]], lr=cfg.matrix_lr, momentum=cfg.muon_momentum,
                         steps=cfg.muon_backend_steps, nesterov=cfg.muon_nesterov, weight_decay=cfg.muon_wd,
                         ns=cfg.muon_ns, row_normalize=cfg.muon_row_normalize)
        adam_groups = []
        token_lr = cfg.tied_embed_lr if cfg.tie_embeddings else cfg.embed_lr  # as the official script
        if g["embed"]:
            adam_groups.append(dict(params=[p for _, p in g["embed"]], lr=token_lr, base_lr=token_lr,
                                    weight_decay=cfg.embed_wd if cfg.embed_wd >= 0 else cfg.adam_wd))
        if g["head"]:
            adam_groups.append(dict(params=[p for _, p in g["head"]], lr=cfg.head_lr, base_lr=cfg.head_lr,
                                    weight_decay=0.0))
        if g["scalar"]:
            adam_groups.append(dict(params=[p for _, p in g["scalar"]], lr=cfg.scalar_lr, base_lr=cfg.scalar_lr,
                                    weight_decay=cfg.scalar_wd))
        self.adam = torch.optim.AdamW(adam_groups, betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps)
        for grp in self.muon.param_groups:
            grp["base_lr"] = cfg.matrix_lr
        self.all_params = [p for _, ps in g.items() for _, p in ps]

    def momentum_at(self, step: int) -> float:
        c = self.cfg
        frac = min(step / c.muon_momentum_warmup_steps, 1.0) if c.muon_momentum_warmup_steps > 0 else 1.0
        return (1 - frac) * c.muon_momentum_warmup_start + frac * c.muon_momentum

    def step(self, step: int, lr_scale: float) -> float | None:
        """Clip, set LR/momentum, step both; returns the gradient norm when clipping."""
        norm = None
        if self.cfg.grad_clip_norm > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(self.all_params, self.cfg.grad_clip_norm))
        for opt in (self.muon, self.adam):
            for grp in opt.param_groups:
                grp["lr"] = grp["base_lr"] * lr_scale
        for grp in self.muon.param_groups:
            grp["momentum"] = self.momentum_at(step)
        self.muon.step()
        self.adam.step()
        return norm

    def zero_grad(self) -> None:
        self.muon.zero_grad(set_to_none=True)
        self.adam.zero_grad(set_to_none=True)


def lr_scale(cfg: TrainConfig, step: int, elapsed_s: float, budget_s: float | None) -> float:
    """Flat, then linear warmdown to 0 — over the last `warmdown_iters` iterations, or (with a
    wall-clock budget) over the time the remaining warmdown steps need. No LR warmup: WARMUP_STEPS
    are priming steps whose effect is undone (trainer.run), as in the official script."""
    if cfg.warmdown_frac > 0:
        return warmdown_frac_scale(cfg, training_fraction(cfg, step, elapsed_s, budget_s))
    if cfg.warmdown_iters <= 0:
        return 1.0
    by_iter = max(cfg.iterations - step, 0) / cfg.warmdown_iters
    if budget_s and step > 0:
        step_s = elapsed_s / step
        remaining = max(budget_s - elapsed_s, 0.0)
        by_time = remaining / max(cfg.warmdown_iters * step_s, 1e-9)
        return min(1.0, by_iter, by_time)
    return min(1.0, by_iter)


def training_fraction(cfg: TrainConfig, step: int, elapsed_s: float, budget_s: float | None) -> float:
    """How far training is: elapsed / budget under a wall-clock budget, else step / iterations."""
    if budget_s:
        return elapsed_s / max(budget_s, 1e-9)
    return step / max(cfg.iterations, 1)


def warmdown_frac_scale(cfg: TrainConfig, frac: float) -> float:
    """Flat, then over the last `warmdown_frac` of training linearly down, floored at `min_lr`."""
    start = 1.0 - cfg.warmdown_frac
    if frac < start:
        return 1.0
    return max((1.0 - frac) / cfg.warmdown_frac, cfg.min_lr)


class EMA:
    """Exponential moving average of every floating-point tensor of the state."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().float().clone() for k, v in model.state_dict().items()
                       if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].lerp_(v.float(), 1 - self.decay)

    def state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        sd = model.state_dict()
        return {k: (self.shadow[k].to(v.dtype) if k in self.shadow else v) for k, v in sd.items()}


class SWA:
    """Uniform average of snapshots taken every `swa_every` steps once the LR is low."""

    def __init__(self):
        self.sum: dict[str, torch.Tensor] | None = None
        self.count = 0

    @torch.no_grad()
    def add(self, state: dict[str, torch.Tensor]) -> None:
        if self.sum is None:
            self.sum = {k: v.detach().float().clone() for k, v in state.items() if v.is_floating_point()}
        else:
            for k in self.sum:
                self.sum[k].add_(state[k].float())
        self.count += 1

    def state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        sd = model.state_dict()
        return {k: ((self.sum[k] / self.count).to(v.dtype) if self.sum and k in self.sum else v)
                for k, v in sd.items()}
