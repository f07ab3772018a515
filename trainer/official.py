"""The challenge's own train_gpt.py, as far as golfcheck needs to name it: its state-dict keys
(checked key for key against ../shared/reference/train_gpt_official.py by the parity tests).
The `baseline` preset builds the same parameters; only the attention projections are named
differently (`attn.q` here, `attn.c_q` there)."""

from __future__ import annotations

import torch

# (our suffix, the official suffix)
_SUFFIXES = ((".attn.q.weight", ".attn.c_q.weight"), (".attn.k.weight", ".attn.c_k.weight"),
             (".attn.v.weight", ".attn.c_v.weight"))


def _swap(name: str, src: int) -> str:
    for pair in _SUFFIXES:
        if name.endswith(pair[src]):
            return name[:-len(pair[src])] + pair[1 - src]
    return name


def official_name(name: str) -> str:
    return _swap(name, 0)


def our_name(name: str) -> str:
    return _swap(name, 1)


def to_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {official_name(k): v for k, v in state.items()}


def from_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {our_name(k): v for k, v in state.items()}
