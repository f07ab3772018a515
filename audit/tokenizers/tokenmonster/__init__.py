"""TokenMonster backend (binary `.vocab` and `.yaml`), offline and exact.

Modules: `binary` / `yamlvocab` (readers, writers), `vocab` (the parsed vocabulary),
`unicase` (simple case mappings), `capcode` (reference encode/decode), `normalize`,
`fastdecode` (whole-stream decoding), `tokens` (per-id facts, canonical table), `encoder`,
`residual` (drift no table can express), `findings` + `rules` (TM0xx), `backend` (the Tokenizer).
"""

from __future__ import annotations


def load_vocab(path, *, bos="auto"):
    """A `.vocab` / `.yaml` TokenMonster vocabulary as a `Tokenizer` (BOS from a manifest.json beside it)."""
    from audit.tokenizers.tokenmonster.backend import TokenMonsterTokenizer

    return TokenMonsterTokenizer.load(path, bos=bos)
