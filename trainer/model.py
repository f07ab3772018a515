"""The GPT of the record stack, every technique behind a config switch (see `trainer.md`).

Block layout: RMSNorm (parameter-free, optionally scaled 1/sqrt(layer+1)) → GQA attention with
partial RoPE, QK-norm and a learnable per-head query gain (XSA on the last N layers, value
embeddings in chosen layers) → LeakyReLU² MLP; each block mixes its input with the initial
embedding x0 (resid mix); the second half receives the first half's outputs (U-Net skips);
from layer K attention and MLP read the same input (parallel residuals); layers i..j can run
twice once depth recurrence is switched on. The input side adds BigramHash features and a
SmearGate that never mixes across a BOS document boundary; the head is tied with a softcap.

The 2026-04-29 record's switches (issue 11): the input-dependent SmearGate with the BOS fix,
a sparse per-head attention output gate, gated U-Net skips, two-lane parallel residuals with
learned lambdas, layers looped several times with the U-Net re-split over the looped sequence,
orthogonal init and per-document (varlen) attention.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from trainer.config import TrainConfig

try:  # FlashAttention 3 (Hopper) or 2, when installed; SDPA otherwise
    from flash_attn_interface import flash_attn_func as _flash_attn  # type: ignore
except ImportError:  # pragma: no cover - depends on the machine
    try:
        from flash_attn import flash_attn_func as _flash_attn  # type: ignore
    except ImportError:
        _flash_attn = None

BIGRAM_MULT_PREV, BIGRAM_MULT_CUR = 36313, 27191  # odd multipliers for the bigram hash


def fake_quantize(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-row symmetric fake quantization with a straight-through gradient (late QAT)."""
    qmax = 2 ** (bits - 1) - 1
    scale = w.detach().abs().amax(dim=1, keepdim=True).clamp_min(1e-8) / qmax
    q = torch.clamp(torch.round(w / scale), -qmax, qmax) * scale
    return w + (q - w).detach()


class CastedLinear(nn.Linear):
    """Linear kept in float32, run in the activation dtype; fake-quantized when QAT is on."""

    def __init__(self, in_f: int, out_f: int, bits: int = 6, zero_init: bool = False):
        super().__init__(in_f, out_f, bias=False)
        self.qat_bits = bits
        self.qat = False
        self.zero_init = zero_init
        if zero_init:
            nn.init.zeros_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = fake_quantize(self.weight, self.qat_bits) if self.qat else self.weight
        return F.linear(x, w.to(x.dtype))


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


class Rotary(nn.Module):
    """RoPE on the first `dims` channels of each head (partial RoPE); the rest pass unrotated."""

    def __init__(self, head_dim: int, dims: int, base: float):
        super().__init__()
        self.dims = dims or head_dim
        inv = 1.0 / (base ** (torch.arange(0, self.dims, 2, dtype=torch.float32) / self.dims))
        self.register_buffer("inv_freq", inv, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, H, T, D)
        t = torch.arange(x.size(-2), device=x.device, dtype=torch.float32)
        freqs = torch.outer(t, self.inv_freq)
        cos, sin = freqs.cos().to(x.dtype), freqs.sin().to(x.dtype)
        rot, rest = x[..., :self.dims], x[..., self.dims:]
        half = self.dims // 2
        a, b = rot[..., :half], rot[..., half:]
        rot = torch.cat((a * cos + b * sin, b * cos - a * sin), dim=-1)
        return torch.cat((rot, rest), dim=-1)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, docs: torch.Tensor | None = None) -> torch.Tensor:
    """Causal attention, (B, H, T, D) in and out; GQA when k/v have fewer heads. With `docs`
    (B, T) document ids (or their trainer.fast.Segments), a query attends only to keys of its
    own document (varlen attention)."""
    if docs is not None:
        from trainer.fast import document_attention  # FlashAttention varlen on CUDA, masked SDPA otherwise

        return document_attention(q, k, v, docs)
    if _flash_attn is not None and q.is_cuda and q.dtype in (torch.bfloat16, torch.float16):
        out = _flash_attn(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=True)
        out = out[0] if isinstance(out, tuple) else out
        return out.transpose(1, 2)
    if k.size(1) != q.size(1):
        rep = q.size(1) // k.size(1)
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


class Attention(nn.Module):
    def __init__(self, cfg: TrainConfig, layer: int, bits: int):
        super().__init__()
        d, h, kv = cfg.model_dim, cfg.num_heads, cfg.num_kv_heads
        self.h, self.kv, self.hd = h, kv, cfg.head_dim
        self.q = CastedLinear(d, h * self.hd, bits)
        self.k = CastedLinear(d, kv * self.hd, bits)
        self.v = CastedLinear(d, kv * self.hd, bits)
        self.proj = CastedLinear(h * self.hd, d, bits, zero_init=True)
        self.q_gain = nn.Parameter(torch.full((h,), float(cfg.qk_gain_init)))
        self.rotary = Rotary(self.hd, cfg.rope_dims, cfg.rope_base)
        self.xsa = layer >= cfg.num_layers - cfg.xsa_last_n
        self.use_ve = cfg.ve_dim > 0 and layer in cfg.int_list("ve_layers")
        if self.use_ve:
            self.ve_scale = nn.Parameter(torch.ones(1))
        self.gate_window = cfg.gate_window if cfg.sparse_attn_gate else 0
        if self.gate_window:  # zero init: σ(0) = 0.5 on every head at the start
            self.attn_gate_w = nn.Parameter(torch.zeros(h, self.gate_window))
            self.gate_scale = cfg.sparse_attn_gate_scale

    def forward(self, x: torch.Tensor, ve: torch.Tensor | None = None,
                docs: torch.Tensor | None = None) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.q(x).view(B, T, self.h, self.hd).transpose(1, 2)
        k = self.k(x).view(B, T, self.kv, self.hd).transpose(1, 2)
        v = self.v(x).view(B, T, self.kv, self.hd)
        if self.use_ve and ve is not None:
            v = v + self.ve_scale.to(v.dtype) * ve.view(B, T, self.kv, self.hd)
        v = v.transpose(1, 2)
        q, k = rms_norm(q), rms_norm(k)  # QK-norm, then RoPE, then the per-head gain
        q, k = self.rotary(q), self.rotary(k)
        q = q * self.q_gain.to(q.dtype)[None, :, None, None]
        q, k = q.to(v.dtype), k.to(v.dtype)  # norms may upcast under autocast; FlashAttention wants bf16
        y = attention(q, k, v, docs)  # (B, H, T, hd)
        if self.xsa:
            # Exclusive self-attention: drop from each head's output its component along the
            # token's own value vector (the KV head the query head reads from, under GQA).
            vv = v.repeat_interleave(self.h // self.kv, dim=1)
            coef = (y * vv).sum(-1, keepdim=True) / (vv * vv).sum(-1, keepdim=True).clamp_min(1e-6)
            y = y - coef * vv
        if self.gate_window:  # sparse output gate: head h scaled by σ(scale · W_h · x[:window])
            g = torch.sigmoid(self.gate_scale * F.linear(x[..., :self.gate_window], self.attn_gate_w.to(x.dtype)))
            y = y * g.transpose(1, 2).unsqueeze(-1).to(y.dtype)
        return self.proj(y.transpose(1, 2).reshape(B, T, self.h * self.hd))


class MLP(nn.Module):
    def __init__(self, cfg: TrainConfig, bits: int):
        super().__init__()
        hidden = int(cfg.mlp_mult * cfg.model_dim)
        self.fc = CastedLinear(cfg.model_dim, hidden, bits)
        self.proj = CastedLinear(hidden, cfg.model_dim, bits, zero_init=True)
        self.slope = cfg.mlp_leaky_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.fc(x), self.slope) if self.slope else F.relu(self.fc(x))
        return self.proj(h.square())


class Block(nn.Module):
    def __init__(self, cfg: TrainConfig, layer: int):
        super().__init__()
        d = cfg.model_dim
        mlp_bits = 5 if layer in cfg.int_list("int5_layers") else cfg.quant_bits
        self.attn = Attention(cfg, layer, cfg.quant_bits)
        self.mlp = MLP(cfg, mlp_bits)
        self.attn_scale = nn.Parameter(torch.ones(d))
        self.mlp_scale = nn.Parameter(torch.ones(d))
        self.norm_scale = 1.0 / math.sqrt(layer + 1) if cfg.ln_scale else 1.0
        self.parallel = 0 <= cfg.parallel_residual_start <= layer
        self.use_resid_mix = cfg.resid_mix
        if cfg.resid_mix:  # row 0 weighs the block input, row 1 the initial embedding x0
            self.resid_mix = nn.Parameter(torch.stack((torch.ones(d), torch.zeros(d))))

    def forward(self, x, x0, ve=None, mlp: MLP | None = None, docs=None):
        if self.use_resid_mix:
            m = self.resid_mix.to(x.dtype)
            x = m[0] * x + m[1] * x0
        mlp = mlp or self.mlp
        a = self.attn(rms_norm(x) * self.norm_scale, ve, docs)
        if self.parallel:  # attention and MLP read the same input
            return x + self.attn_scale.to(x.dtype) * a + self.mlp_scale.to(x.dtype) * mlp(rms_norm(x) * self.norm_scale)
        x = x + self.attn_scale.to(x.dtype) * a
        return x + self.mlp_scale.to(x.dtype) * mlp(rms_norm(x) * self.norm_scale)

    def forward_lanes(self, lane0, lane1, x0, resid: torch.Tensor, post: torch.Tensor, ve=None, mlp=None, docs=None):
        """Two-lane parallel residuals: attention reads lane 0 (mixed with x0), the MLP reads
        lane 1; each lane keeps resid[lane]·itself plus post[branch, lane]·each branch's output."""
        x = lane0
        if self.use_resid_mix:
            m = self.resid_mix.to(x.dtype)
            x = m[0] * x + m[1] * x0
        a = self.attn_scale.to(x.dtype) * self.attn(rms_norm(x) * self.norm_scale, ve, docs)
        f = self.mlp_scale.to(x.dtype) * (mlp or self.mlp)(rms_norm(lane1) * self.norm_scale)
        r, p = resid.to(x.dtype), post.to(x.dtype)
        return r[0] * lane0 + p[0, 0] * a + p[1, 0] * f, r[1] * lane1 + p[0, 1] * a + p[1, 1] * f


class BigramHash(nn.Module):
    """Hash (previous id, current id) into a table, project to the model width."""

    def __init__(self, buckets: int, dim: int, model_dim: int, bits: int):
        super().__init__()
        self.buckets = buckets
        self.table = nn.Embedding(buckets, dim)
        nn.init.normal_(self.table.weight, std=0.02)
        self.proj = CastedLinear(dim, model_dim, bits, zero_init=True)

    def bucket_ids(self, idx: torch.Tensor) -> torch.Tensor:
        prev = torch.cat((torch.zeros_like(idx[:, :1]), idx[:, :-1]), dim=1)
        h = (prev * BIGRAM_MULT_PREV) ^ (idx * BIGRAM_MULT_CUR)
        b = h % (self.buckets - 1) + 1
        b[:, 0] = 0  # the first position has no previous token: its own bucket
        return b

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.proj(self.table(self.bucket_ids(idx)))


class SmearGate(nn.Module):
    """x_t ← (1-g)·x_t + g·x_{t-1}, g = sigmoid(per-channel gate); never across a BOS."""

    def __init__(self, dim: int, bos_id: int):
        super().__init__()
        self.gate = nn.Parameter(torch.zeros(dim))
        self.bos_id = bos_id

    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.gate).to(x.dtype)
        prev = torch.cat((torch.zeros_like(x[:, :1]), x[:, :-1]), dim=1)
        # A BOS starts a new document: it must not absorb the previous document's last token.
        allow = (idx != self.bos_id).to(x.dtype).unsqueeze(-1)
        allow[:, 0] = 0
        g = g * allow
        return (1 - g) * x + g * prev


class InputSmearGate(nn.Module):
    """x_t ← x_t + λ·σ(w·x_t[:window])·x_{t-1} (input-dependent, one scalar gate per position);
    λ = 0 and w = 0 at init (the identity). The BOS fix: a position holding BOS starts a new
    document and takes nothing from the previous one; position 0 is left as is."""

    def __init__(self, window: int, bos_id: int):
        super().__init__()
        self.window, self.bos_id = window, bos_id
        self.gate = nn.Parameter(torch.zeros(window))
        self.lam = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        g = self.lam.to(x.dtype) * torch.sigmoid(x[:, 1:, :self.window] @ self.gate.to(x.dtype)).unsqueeze(-1)
        g = g.masked_fill((idx[:, 1:] == self.bos_id).unsqueeze(-1), 0.0)
        return torch.cat((x[:, :1], x[:, 1:] + g * x[:, :-1]), dim=1)


def document_ids(idx: torch.Tensor, bos_id: int) -> torch.Tensor:
    """(B, T) → the document each position belongs to: a BOS opens a new one (it belongs to it)."""
    return torch.cumsum((idx == bos_id).to(torch.int32), dim=1)


class GPT(nn.Module):
    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.cfg = cfg
        d, L = cfg.model_dim, cfg.num_layers
        self.tok_emb = nn.Embedding(cfg.vocab_size, d)
        nn.init.normal_(self.tok_emb.weight, std=cfg.tied_embed_init_std)
        self.bigram = (BigramHash(cfg.bigram_vocab_size, cfg.bigram_dim, d, cfg.quant_bits)
                       if cfg.bigram_vocab_size > 0 else None)
        self.smear = None
        if cfg.smear_gate:
            self.smear = (InputSmearGate(cfg.gate_window, cfg.bos_id) if cfg.smear_gate_mode == "input"
                          else SmearGate(d, cfg.bos_id))
        self.ve_layers = cfg.int_list("ve_layers") if cfg.ve_dim > 0 else []
        if self.ve_layers:  # one shared table, projected to the KV width
            self.ve_table = nn.Embedding(cfg.vocab_size, cfg.ve_dim)
            nn.init.normal_(self.ve_table.weight, std=0.02)
            self.ve_proj = CastedLinear(cfg.ve_dim, cfg.num_kv_heads * cfg.head_dim, cfg.quant_bits)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(L))
        rec = cfg.int_list("recur_layers")
        self.recur = (rec[0], rec[1]) if rec else None
        self.recur_active = False
        self.n_enc = L // 2 if cfg.unet_skips else 0
        n_skip = min(self.n_enc, L - self.n_enc)
        if cfg.unet_skips and self.recur and cfg.recur_resplit:  # sized for the looped sequence
            n_looped = L + cfg.recur_loops * (rec[1] - rec[0] + 1)
            n_skip = min(n_looped // 2, n_looped - n_looped // 2)
        self.n_skip = n_skip
        if n_skip:
            self.skip_weights = nn.Parameter(torch.ones(n_skip, d))
            if cfg.skip_gates:  # σ(0) = 0.5: half skip, half stream at init
                self.skip_gates = nn.Parameter(torch.zeros(n_skip, d))
        if self.recur and cfg.recur_untied_mlp:
            self.recur_mlps = nn.ModuleList(MLP(cfg, cfg.quant_bits) for _ in range(rec[1] - rec[0] + 1))
        if cfg.parallel_lanes and cfg.parallel_residual_start >= 0:
            self.parallel_post_lambdas = nn.Parameter(torch.ones(L, 2, 2))  # [layer, branch, lane]
            self.parallel_resid_lambdas = nn.Parameter(torch.full((L, 2), 1.1))  # [layer, lane]
        if not cfg.tie_embeddings:
            self.lm_head = CastedLinear(d, cfg.vocab_size, 8, zero_init=True)
        self.head_in = nn.Identity()  # the head's input, a hook point (embedding GPTQ's Hessian)
        self.head_out = nn.Identity()  # the logits before the softcap, a hook point (the TTT head LoRA)
        if cfg.ortho_init:
            self.orthogonal_init()

    @torch.no_grad()
    def orthogonal_init(self) -> None:
        """Orthogonal init of every non-zero-initialised matrix with both sides ≥ 64 (Q, K, V,
        MLP up); output projections stay zero, so every block starts as the identity."""
        for m in self.modules():
            if isinstance(m, CastedLinear) and not m.zero_init and min(m.weight.shape) >= 64:
                if m.weight.device.type != "meta":
                    nn.init.orthogonal_(m.weight, gain=1.0)

    # --- structure -------------------------------------------------------------------------------
    def layer_order(self) -> list[tuple[int, int]]:
        """(layer, pass) in execution order; pass k ≥ 1 is the recurrence's (k+1)-th run."""
        order = [(i, 0) for i in range(len(self.blocks))]
        if self.recur and self.recur_active:
            a, b = self.recur
            extra = [(i, k) for k in range(1, self.cfg.recur_loops + 1) for i in range(a, b + 1)]
            order = order[:b + 1] + extra + order[b + 1:]
        return order

    def plan(self) -> list[tuple[int, int, bool, int | None]]:
        """(layer, pass, pushes a U-Net skip, skip index it receives or None) in execution order.
        Without the re-split only first passes take part: layer i < n_enc pushes, decoder layer
        n_enc+j receives skip j. With it, the looped sequence itself is halved: its first half
        pushes, position j of the second half receives skip j (the record's layout)."""
        order = self.layer_order()
        if not self.n_skip:
            return [(i, p, False, None) for i, p in order]
        if self.cfg.recur_resplit and self.recur:
            n_enc = len(order) // 2
            pushes = n_enc
            return [(i, p, k < n_enc, (k - n_enc) if n_enc <= k < n_enc + min(self.n_skip, pushes) else None)
                    for k, (i, p) in enumerate(order)]
        return [(i, p, p == 0 and i < self.n_enc,
                 (i - self.n_enc) if p == 0 and self.n_enc <= i < self.n_enc + self.n_skip else None)
                for i, p in order]

    def set_qat(self, on: bool) -> None:
        for m in self.modules():
            if isinstance(m, CastedLinear):
                m.qat = on

    # --- forward ---------------------------------------------------------------------------------
    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok_emb(idx)
        if self.bigram is not None:
            x = x + self.bigram(idx)
        if self.smear is not None:
            x = self.smear(x, idx)
        x = rms_norm(x)
        x0 = x
        ve = self.ve_proj(self.ve_table(idx)) if self.ve_layers else None
        docs = None
        if self.cfg.varlen_attn:  # (an `if` on the setting: folded away in an export without varlen)
            docs = document_ids(idx, self.cfg.bos_id)
            if idx.is_cuda:
                from trainer.fast import document_segments  # FlashAttention's offsets, once for every layer

                docs = document_segments(docs)
        lanes = hasattr(self, "parallel_post_lambdas")
        lane1 = None  # set once the two-lane section starts
        skips: list[torch.Tensor] = []
        for i, p, push, j in self.plan():
            blk = self.blocks[i]
            if lanes and blk.parallel and lane1 is None:
                lane1 = x  # both lanes start from the stream; the skip below joins lane 0 only
            if j is not None and skips:
                # U-Net: receiver j gets the most recent unconsumed encoder output.
                s = self.skip_weights[j].to(x.dtype) * skips.pop()
                if hasattr(self, "skip_gates"):
                    x = torch.lerp(s, x, torch.sigmoid(self.skip_gates[j].to(x.dtype)))
                else:
                    x = x + s
            mlp = self.recur_mlps[i - self.recur[0]] if (p >= 1 and hasattr(self, "recur_mlps")) else None
            v = ve if i in self.ve_layers else None
            if lanes and blk.parallel:
                x, lane1 = blk.forward_lanes(x, lane1, x0, self.parallel_resid_lambdas[i],
                                             self.parallel_post_lambdas[i], v, mlp, docs)
            else:
                x = blk(x, x0, v, mlp, docs)
            if push:
                skips.append(x)
        if lane1 is not None:
            lane = self.cfg.parallel_final_lane
            x = lane1 if lane == "mlp" else (x if lane == "attn" else 0.5 * (x + lane1))
        return rms_norm(x)

    def head_logits(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits before the softcap, in the activation dtype (what the fused loss reads)."""
        h = self.head_in(self.hidden(idx))
        w = self.tok_emb.weight if self.cfg.tie_embeddings else self.lm_head.weight
        return self.head_out(F.linear(h, w.to(h.dtype)))

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        logits = self.head_logits(idx).float()
        cap = self.cfg.logit_softcap
        return cap * torch.tanh(logits / cap) if cap > 0 else logits

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, reduction: str = "mean"):
        if targets is not None and reduction == "mean" and self.training and self.cfg.logit_softcap > 0 \
                and self.cfg.fused_ce and idx.is_cuda:
            from trainer.fast import softcapped_cross_entropy  # Triton when installed, PyTorch otherwise

            z = self.head_logits(idx)
            return softcapped_cross_entropy(z.reshape(-1, z.size(-1)), targets.reshape(-1), self.cfg.logit_softcap)
        logits = self.logits(idx)
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction=reduction)
        return loss.view(targets.shape) if reduction == "none" else loss


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def expected_parameters(cfg: TrainConfig) -> int:
    """The parameter count computed from the config alone (checked against a real instance)."""
    d, L, hd = cfg.model_dim, cfg.num_layers, cfg.head_dim
    kvd = cfg.num_kv_heads * hd
    hidden = int(cfg.mlp_mult * d)
    attn = d * cfg.num_heads * hd * 2 + d * kvd * 2 + cfg.num_heads
    if cfg.sparse_attn_gate:
        attn += cfg.num_heads * cfg.gate_window
    mlp = 2 * d * hidden
    block = attn + mlp + 2 * d + (2 * d if cfg.resid_mix else 0)
    ve_layers = cfg.int_list("ve_layers") if cfg.ve_dim > 0 else []
    n = cfg.vocab_size * d + L * block + len(ve_layers)
    if cfg.bigram_vocab_size > 0:
        n += cfg.bigram_vocab_size * cfg.bigram_dim + cfg.bigram_dim * d
    if cfg.smear_gate:
        n += cfg.gate_window + 1 if cfg.smear_gate_mode == "input" else d
    if ve_layers:
        n += cfg.vocab_size * cfg.ve_dim + cfg.ve_dim * kvd
    rec = cfg.int_list("recur_layers")
    if cfg.unet_skips:
        n_seq = L + (cfg.recur_loops * (rec[1] - rec[0] + 1) if rec and cfg.recur_resplit else 0)
        n_skip = min(n_seq // 2, n_seq - n_seq // 2)
        n += n_skip * d * (2 if cfg.skip_gates else 1)
    if cfg.parallel_lanes and cfg.parallel_residual_start >= 0:
        n += L * 6
    if rec and cfg.recur_untied_mlp:
        n += (rec[1] - rec[0] + 1) * mlp
    if not cfg.tie_embeddings:
        n += cfg.vocab_size * d
    return n


def autocast_context(device: torch.device):
    """bf16 autocast on CUDA only; CPU runs in float32."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    import contextlib

    return contextlib.nullcontext()
