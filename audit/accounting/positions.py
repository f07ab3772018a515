"""Which target positions an evaluator scores (accounting.md, "Which positions are scored").

Position 0 is never a target. The plain evaluator reshapes targets into rows of `seq_len` and
drops the tail; the sliding-window evaluator scores every target position once (the first
window all of its positions, later windows the last `stride`), so its denominator is the full
stream's.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scoring:
    n_tokens: int
    seq_len: int | None
    stride: int | None

    @property
    def n_targets(self) -> int:
        return max(self.n_tokens - 1, 0)

    @property
    def plain_stop(self) -> int | None:
        """Targets 1 .. plain_stop-1 are scored by the plain evaluator (None without seq_len)."""
        if not self.seq_len:
            return None
        return 1 + (self.n_targets // self.seq_len) * self.seq_len

    @property
    def plain_dropped(self) -> int:
        stop = self.plain_stop
        return 0 if stop is None else self.n_tokens - stop

    @property
    def sliding_windows(self) -> int | None:
        """Windows of the sliding evaluator: one every `stride` until a window reaches the end."""
        if not (self.seq_len and self.stride):
            return None
        if self.n_targets == 0:
            return 0
        extra = max(self.n_targets - self.seq_len, 0)
        return 1 + -(-extra // self.stride)

    def describe(self) -> str:
        parts = [f"full stream: targets 1..{self.n_targets:,}"]
        if self.plain_stop is not None:
            parts.append(f"plain rows of {self.seq_len}: targets 1..{self.plain_stop - 1:,} "
                         f"(last {self.plain_dropped:,} dropped)")
        if self.sliding_windows is not None:
            parts.append(f"sliding window {self.seq_len}/{self.stride}: every target once, "
                         f"{self.sliding_windows:,} windows")
        return "; ".join(parts)


def validate(seq_len: int | None, stride: int | None) -> None:
    from audit.errors import InputError

    if seq_len is not None and seq_len <= 0:
        raise InputError(None, f"--seq-len must be positive, got {seq_len}")
    if stride is not None:
        if stride <= 0:
            raise InputError(None, f"--stride must be positive, got {stride}")
        if not seq_len:
            raise InputError(None, "--stride needs --seq-len")
        if stride > seq_len:
            raise InputError(None, f"--stride {stride} exceeds --seq-len {seq_len}")
