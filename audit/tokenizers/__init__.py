"""Tokenizer backends behind one interface (`audit.tokenizers.base.Tokenizer`).

`load_tokenizer(path)` picks the backend from the file: `.model` → SentencePiece,
`.vocab`/`.yaml` → TokenMonster, `purebyte` → the challenge's pure-byte tokenizer.
"""

from __future__ import annotations

from pathlib import Path

from audit.errors import InputError, stepped
from audit.tokenizers.base import Tokenizer


@stepped("loading a tokenizer")  # an unexpected failure still names the file and the step
def load_tokenizer(path: str | Path) -> Tokenizer:
    spec = str(path)
    if spec.startswith("purebyte"):
        from audit.tokenizers.purebyte import PureByteTokenizer

        return PureByteTokenizer()
    p = Path(path)
    if not p.exists():
        raise InputError(p, "no such file")
    suffix = p.suffix.lower()
    if suffix == ".model":
        from audit.tokenizers.sentencepiece_model import SentencePieceTokenizer

        return SentencePieceTokenizer.load(p)
    if suffix in (".vocab", ".yaml", ".yml"):
        # A SentencePiece `.vocab` is a text listing next to its `.model`; TokenMonster's is binary.
        if suffix == ".vocab" and p.with_suffix(".model").exists():
            from audit.tokenizers.sentencepiece_model import SentencePieceTokenizer

            return SentencePieceTokenizer.load(p.with_suffix(".model"))
        from audit.tokenizers.tokenmonster import load_vocab

        return load_vocab(p)
    raise InputError(p, f"unknown tokenizer type {suffix or '(no suffix)'}: expected .model, .vocab or .yaml")
