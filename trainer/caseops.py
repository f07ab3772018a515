"""CaseOps data: SP8192 CaseOps token shards with the per-token byte sidecar
(`fineweb_val_bytes_XXXXXX.bin`, one uint16 per val token: the ORIGINAL, pre-transform UTF-8 byte
cost of that token). With CaseOps the tokens spell a transformed text (case operators in place
of capitals), so the LUT rule bytes(y | x) would count the wrong text; BPB divides by the
sidecar's bytes instead, as the records do (checked against the 2026-04-29 record's
`load_validation_byte_sidecar` and `_accumulate_bpb`: byte of target position t = sidecar[t]).

The sidecar shards share the val glob (`fineweb_val_*.bin` matches `fineweb_val_bytes_*.bin`):
token readers skip them by name; the layout is the audit's (`audit.formats.sidecar`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from audit.errors import InputError
from audit.formats.shards import resolve_glob
from audit.formats.sidecar import find_sidecars, is_sidecar, read_sidecars


def val_token_files(pattern: str) -> list[Path]:
    """The val token shards of a glob, without the byte sidecars it also matches."""
    files = [f for f in resolve_glob(pattern) if not is_sidecar(f)]
    if not files:
        raise InputError(pattern, "no val token shards (only byte sidecars match)")
    return files


class SidecarBytes:
    """The byte source for BPB under CaseOps: `bytes_at(positions)` of the val stream. `lut` (the
    tokenizer's table) stays available for what needs per-token bytes without positions."""

    def __init__(self, per_token: np.ndarray, lut=None):
        self.per_token = torch.from_numpy(np.asarray(per_token, dtype=np.int64))
        self.lut = lut

    @classmethod
    def load(cls, val_files: str, val_bytes_files: str = "", n_tokens: int | None = None, lut=None) -> "SidecarBytes":
        """The sidecars named by `val_bytes_files`, else the one beside each val shard."""
        if val_bytes_files:
            paths = resolve_glob(val_bytes_files)
        else:
            paths = find_sidecars(val_token_files(val_files))
            if paths is None:
                raise InputError(val_files, "caseops is on but the val shards have no byte sidecar "
                                            "(fineweb_val_bytes_*.bin)")
        per_token = read_sidecars(list(paths))
        if n_tokens is not None and len(per_token) < n_tokens:
            raise InputError(paths[0], f"byte sidecar has {len(per_token)} entries for {n_tokens} val tokens")
        return cls(per_token[:n_tokens] if n_tokens is not None else per_token, lut)

    def bytes_at(self, pos: torch.Tensor) -> torch.Tensor:
        return self.per_token[torch.as_tensor(pos).cpu().long()]

    def bytes_for(self, prev: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        if self.lut is None:
            raise ValueError("per-token bytes without positions need the tokenizer's table")
        return self.lut.bytes_for(prev, tgt)
