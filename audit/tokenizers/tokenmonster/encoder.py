"""An encoder good enough to build test streams and to re-tokenise a corpus.

normalisation → capcode → greedy longest match over the vocabulary's dictionary (every entry's
key, as TokenMonster's own dictionary holds them; a key carried by several entries maps to the
last one) with byte fallback. A byte no key starts with is LOST (recorded by value), or becomes
UNK when the vocabulary has one (one UNK per run of such bytes) — this is what Scylla-998 does
to CJK, Cyrillic, emoji and Turkish İ. The segmentation is NOT TokenMonster's own (which looks
ahead over alternatives); only its validity matters: the ids decode to the encoded text minus
the lost bytes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from audit.tokenizers.tokenmonster import capcode as cc
from audit.tokenizers.tokenmonster import normalize
from audit.tokenizers.tokenmonster.vocab import Vocab


@dataclass
class Encoded:
    ids: list[int]
    lost: Counter = field(default_factory=Counter)  # byte value → how many were lost
    unk: int = 0  # UNK ids emitted

    @property
    def lost_bytes(self) -> int:
        return sum(self.lost.values())


class Encoder:
    def __init__(self, v: Vocab):
        self.v = v
        self.dict: dict[bytes, int] = {}
        for e in v.entries:
            self.dict[e.key] = e.id
        # lengths available per first byte, longest first: few lookups per position
        lens: dict[int, set[int]] = {}
        for k in self.dict:
            lens.setdefault(k[0], set()).add(len(k))
        self.lens = {b: sorted(s, reverse=True) for b, s in lens.items()}

    def prepare(self, text: str) -> bytes:
        """The bytes the vocabulary tokenises: normalised, capcode-encoded, in its charset."""
        text = normalize.apply(text, self.v.normalization)
        if self.v.capcode == 2:
            text = cc.encode2(text)
        elif self.v.capcode == 1:
            text = cc.encode1(text)
        if self.v.charset == 2:
            return text.encode("utf-16-le", "surrogatepass")
        return text.encode("utf-8", "surrogatepass")

    def encode_bytes(self, data: bytes) -> Encoded:
        out = Encoded([])
        d, lens, unk = self.dict, self.lens, self.v.unk_id
        i, n = 0, len(data)
        in_lost = False
        while i < n:
            for ln in lens.get(data[i], ()):
                tid = d.get(data[i:i + ln])
                if tid is not None:
                    out.ids.append(tid)
                    i += ln
                    in_lost = False
                    break
            else:
                out.lost[data[i]] += 1
                if unk is not None and not in_lost:
                    out.ids.append(unk)
                    out.unk += 1
                in_lost = True
                i += 1
        return out

    def encode(self, text: str) -> Encoded:
        return self.encode_bytes(self.prepare(text))
