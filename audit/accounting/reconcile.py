"""Explain, by class, how the raw `docs_selected.jsonl` text differs from the text the canonical
sp1024 stream stands for (NFKC plus whitespace normalisation, tokenizers.md §1).

Each raw document is walked through the normalisation steps in order; the bytes each step adds
or removes are that class's share of the difference. What remains after all steps is reported
as unexplained. This is an explanation, not a failure.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

# C0/C1 controls other than the whitespace ones, which the nmt rules delete; plus zero-width/BOM
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\u200b\ufeff]")
_WS = re.compile(r"[\t\n\r\f\v\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")
_RUNS = re.compile(" {2,}")

CLASSES = ("control characters removed", "newlines/tabs/other spaces → space", "NFKC",
           "runs of spaces collapsed", "leading/trailing whitespace trimmed")


@dataclass
class Reconciliation:
    n_docs: int
    raw_bytes: int
    reference_bytes: int
    by_class: dict = field(default_factory=dict)  # class -> [bytes delta, docs affected]
    explained_docs: int = 0  # documents equal to the reference after normalisation
    unexplained_bytes: int = 0  # sum |len(normalised) - len(reference)| of the rest
    examples: list = field(default_factory=list)

    def rows(self) -> list[list]:
        return [[c, v[0], v[1]] for c, v in self.by_class.items()]


def normalise_steps(text: str) -> list[str]:
    s1 = _CONTROL.sub("", text)
    s2 = _WS.sub(" ", s1)
    s3 = unicodedata.normalize("NFKC", s2)
    s3 = _WS.sub(" ", s3)  # NFKC can produce spaces (e.g. from U+3000)
    s4 = _RUNS.sub(" ", s3)
    s5 = s4.strip(" ")
    return [s1, s2, s3, s4, s5]


def reconcile(raw_texts: list[str], reference: list[bytes], max_examples: int = 10) -> Reconciliation:
    from audit.accounting.compare import bad_doc

    n = min(len(raw_texts), len(reference))
    rec = Reconciliation(n, 0, sum(len(r) for r in reference[:n]), {c: [0, 0] for c in CLASSES})
    for k in range(n):
        raw = raw_texts[k].encode("utf-8", errors="surrogatepass")
        rec.raw_bytes += len(raw)
        prev = len(raw)
        steps = normalise_steps(raw_texts[k])
        for cls, s in zip(CLASSES, steps):
            ln = len(s.encode("utf-8", errors="surrogatepass"))
            if ln != prev:
                rec.by_class[cls][0] += ln - prev
                rec.by_class[cls][1] += 1
            prev = ln
        final = steps[-1].encode("utf-8", errors="surrogatepass")
        if final == reference[k]:
            rec.explained_docs += 1
        else:
            rec.unexplained_bytes += abs(len(final) - len(reference[k]))
            if len(rec.examples) < max_examples:
                rec.examples.append(bad_doc(k, final, reference[k]))
    return rec
