"""What a tokenizer audit is asked to do: one frozen object, built by the CLI (or a caller)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.accounting.positions import validate
from audit.errors import InputError

AUTO = "auto"  # bos_id: take it from the manifest / tokenizer


@dataclass(frozen=True)
class AuditOptions:
    tokenizer: Any = None  # a path, "purebyte", or a loaded `Tokenizer`; None: find it (see inputs.resolve)
    val: str | Path | None = None  # candidate val shard(s): a file or a glob
    data_root: Path | None = None  # a data/ folder with manifest.json
    source: str | Path | None = None  # sp1024 | docs | a folder | a .jsonl; None: the data root's default
    source_val: str | Path | None = None
    source_tokenizer: str | Path | None = None
    docs: Path | None = None  # docs_selected.jsonl for --source docs
    bos_id: int | str | None = AUTO  # AUTO, an id, or None / -1 for "no BOS"
    seq_len: int | None = None
    stride: int | None = None
    claimed_bpb: float | None = None
    strict: bool = False
    fix_out: Path | None = None
    max_examples: int = 20
    # False: use only the tokenizer given, never look for one (the submission audit passes the one it
    # paired inside the record folder, so no file outside the folder, e.g. a symlink's target, is opened)
    discover: bool = True

    def __post_init__(self):
        validate(self.seq_len, self.stride)
        if self.claimed_bpb is not None and not self.claimed_bpb > 0:
            raise InputError(None, f"--claimed-bpb must be positive, got {self.claimed_bpb}")
        if self.fix_out is not None and Path(self.fix_out).exists():
            raise InputError(self.fix_out, "refusing to overwrite an existing file; choose a new path for --fix")
