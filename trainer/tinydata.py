"""The `tiny` preset's data, built by the installed package itself: a deterministic toy corpus,
a 1024-piece SentencePiece BPE trained on it, its canonical byte table (meta), and train/val
shards in the challenge's format. Built once into a cache folder (GOLFCHECK_CACHE, else
$XDG_CACHE_HOME/golfcheck, else ~/.cache/golfcheck) and reused while this module is unchanged,
so `trainer run --preset tiny` works from any directory without the repository's fixtures.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VOCAB = 1024
BOS_ID = 1
N_TRAIN_DOCS, N_VAL_DOCS = 3000, 600
NAME = f"tiny_sp{VOCAB}"
VERSION = "1"

# A small world of subjects, verbs and objects: text with structure a toy model can learn, plus
# the non-ASCII words and whitespace byte accounting must get right (diacritics, CJK, emoji).
_SUBJECTS = ("the model", "a small team", "the river", "every record", "our city", "the old school",
             "my friend", "the market", "this story", "the night train", "la ciudad", "der Fluss")
_VERBS = ("reads", "moves", "counts", "follows", "builds", "opens", "finds", "keeps", "carries", "changes")
_OBJECTS = ("the data", "a long road", "three bytes", "the music", "their history", "the water",
            "a new token", "the light", "every score", "the house", "café crème", "größere Städte",
            "東京の駅", "naïve ideas", "42 lines", "the year 2026", "🙂 faces")
_TAILS = ("today", "again", "at night", "by the sea", "in the morning", "without a sound", "slowly", "")
_JOINERS = (" and ", ", then ", " because ", " while ", "; ")


_SYLLABLES = ("ka", "lo", "mi", "ren", "tu", "sa", "vel", "dor", "ni", "po", "shi", "ar", "en", "qui", "zo", "bel")
# Made-up names (two or three syllables): enough distinct words for a 1024-piece vocabulary.
_NAMES = tuple(sorted({a + b + c for a in _SYLLABLES for b in _SYLLABLES for c in ("", "n", "ra", "th")}))


def _sentence(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.choice((1, 1, 2))):
        tail = rng.choice(_TAILS)
        subj = rng.choice(_SUBJECTS) if rng.random() < 0.6 else rng.choice(_NAMES).capitalize()
        obj = rng.choice(_OBJECTS) if rng.random() < 0.7 else f"{rng.choice(_NAMES)} of {rng.choice(_NAMES).capitalize()}"
        parts.append(f"{subj} {rng.choice(_VERBS)} {obj}" + (f" {tail}" if tail else ""))
    s = rng.choice(_JOINERS).join(parts)
    return s[0].upper() + s[1:] + rng.choice((".", ".", ".", "!", "?"))


def documents(n: int, seed: int) -> list[str]:
    """n documents of 1-4 paragraphs of 1-5 sentences; the same for the same (n, seed)."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        paras = [" ".join(_sentence(rng) for _ in range(rng.randint(1, 5))) for _ in range(rng.randint(1, 4))]
        docs.append("\n".join(paras))
    return docs


@dataclass(frozen=True)
class TinyData:
    root: Path
    dataset_dir: Path
    model: Path
    meta: Path
    vocab_size: int = VOCAB
    bos_id: int = BOS_ID

    @property
    def train_glob(self) -> str:
        return str(self.dataset_dir / "fineweb_train_*.bin")

    @property
    def val_glob(self) -> str:
        return str(self.dataset_dir / "fineweb_val_*.bin")


def cache_root() -> Path:
    if os.environ.get("GOLFCHECK_CACHE"):
        return Path(os.environ["GOLFCHECK_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "golfcheck"


def fingerprint() -> str:
    return hashlib.sha256(VERSION.encode() + Path(__file__).read_bytes()).hexdigest()[:12]


def _layout(root: Path) -> TinyData:
    return TinyData(root=root, dataset_dir=root / "datasets" / NAME, model=root / "tokenizers" / f"{NAME}.model",
                    meta=root / "tokenizers" / f"{NAME}.meta.npz")


def _build(tmp: Path) -> None:
    import sentencepiece as spm

    from audit.formats.shards import write_shard
    from audit.tokenizers.sentencepiece_model import SentencePieceTokenizer

    td = _layout(tmp)
    td.model.parent.mkdir(parents=True)
    td.dataset_dir.mkdir(parents=True)
    docs = documents(N_VAL_DOCS + N_TRAIN_DOCS, seed=0)
    val, train = docs[:N_VAL_DOCS], docs[N_VAL_DOCS:]
    # One thread and no shuffling: the same model on every machine.
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([ln for d in train for ln in d.splitlines()]), model_prefix=str(td.model.with_suffix("")),
        model_type="bpe", vocab_size=VOCAB, byte_fallback=True, split_digits=True, add_dummy_prefix=False,
        pad_id=0, bos_id=BOS_ID, eos_id=2, unk_id=3, character_coverage=1.0, num_threads=1, minloglevel=2,
        shuffle_input_sentence=False)
    sp = spm.SentencePieceProcessor(model_file=str(td.model))
    for split, texts in (("val", val), ("train", train)):
        ids = [t for doc in sp.encode(texts) for t in (BOS_ID, *doc)]  # every document starts with BOS
        write_shard(td.dataset_dir / f"fineweb_{split}_000000.bin", np.asarray(ids, dtype=np.uint16))
    SentencePieceTokenizer.load(td.model).canonical_meta().save(td.meta)


def ensure_tiny_data(root: Path | None = None) -> TinyData:
    """Build once (into a temporary sibling, renamed into place: concurrent runs never see half a
    build); later calls return the cached build."""
    base = Path(root) if root is not None else cache_root()
    final = base / f"tiny-{fingerprint()}"
    td = _layout(final)
    if td.meta.is_file():
        return td
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=base, prefix=".tiny-build-"))
    try:
        _build(tmp)
        try:
            os.replace(tmp, final)
        except OSError:
            if not td.meta.is_file():  # not a concurrent builder winning the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return td
