"""The challenge's pure-byte tokenizer: ids 0..3 are <pad> <s> </s> <unk>, byte b is id b + 4."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from audit.formats.meta import MetaTable
from audit.tokenizers.base import SpecialIds, Tokenizer

OFFSET = 4
VOCAB = 256 + OFFSET


class PureByteTokenizer(Tokenizer):
    kind = "purebyte"
    name = "purebyte"

    @property
    def vocab_size(self) -> int:
        return VOCAB

    @property
    def special(self) -> SpecialIds:
        return SpecialIds(bos=1, eos=2, pad=0, unk=3, control=frozenset({0, 1, 2, 3}))

    def id_bytes(self) -> list[bytes]:
        return [b""] * OFFSET + [bytes([b]) for b in range(256)]

    def id_classes(self) -> np.ndarray:
        return np.array(["control"] * OFFSET + ["byte"] * 256, dtype=object)

    def decode(self, ids: Sequence[int] | np.ndarray) -> bytes:
        a = np.asarray(ids, dtype=np.int64)
        a = a[a >= OFFSET]  # specials decode to nothing
        return (a - OFFSET).astype(np.uint8).tobytes()

    def decode_stream(self, tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray):
        """All documents at once (vectorised): keep the byte ids inside the spans."""
        from audit.formats.docs import DocBytes

        tokens = np.asarray(tokens)
        starts, ends = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
        cover = np.zeros(len(tokens) + 1, dtype=np.int32)  # spans are sorted and disjoint
        np.add.at(cover, starts, 1)
        np.add.at(cover, ends, -1)
        keep = (np.cumsum(cover[:-1]) > 0) & (tokens >= OFFSET)
        csum = np.zeros(len(tokens) + 1, dtype=np.int64)
        np.cumsum(keep, out=csum[1:])
        offsets = np.zeros(len(starts) + 1, dtype=np.int64)
        np.cumsum(csum[ends] - csum[starts], out=offsets[1:])
        buf = (tokens[keep].astype(np.int32) - OFFSET).astype(np.uint8)
        return DocBytes(buf, offsets)

    def decode_many(self, tokens, starts, ends):
        return self.decode_stream(tokens, starts, ends).to_list()

    def canonical_meta(self, vocab_size: int | None = None) -> MetaTable:
        n = max(VOCAB, vocab_size or 0)
        base = np.zeros(n, dtype=np.int16)
        base[OFFSET:VOCAB] = 1
        bd = np.ones(n, dtype=bool)
        bd[OFFSET:VOCAB] = False
        return MetaTable(base, np.zeros(n, dtype=bool), bd, tokenizer_kind="purebyte",
                         source_model_name="purebyte", vocab_size=n)

    def encode(self, text: str) -> list[int]:
        return [b + OFFSET for b in text.encode("utf-8")]
