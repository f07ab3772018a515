"""SentencePiece `.model` backend: decodes exactly as `sentencepiece`'s DecodeIds does.

What DecodeIds does (checked against the library in tests/test_sentencepiece.py):
- a piece's surface is its text with every `▁` turned into a space; control ids give nothing,
  the unknown id gives its surface (` ⁇ ` by default);
- while the text decoded so far is empty, one leading `▁` of a piece is dropped (models with
  add_dummy_prefix or remove_extra_whitespaces) — so `▁the` at a document start is `the`;
- consecutive byte pieces form a run decoded as UTF-8 where every byte that is not part of a
  valid sequence becomes U+FFFD (EF BF BD); a non-byte id (even a control) ends the run.

The per-id surfaces are taken from the library itself (one DecodeIds per id), so model options
are honoured without parsing the protobuf. `decode_stream` is the vectorised path over a whole
val stream; documents it cannot handle by table lookup (invalid byte runs, an empty piece at a
document start) are re-decoded one by one with the exact `decode`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from audit import chunked
from audit.budgets import MAX_SP_MODEL_BYTES, MAX_VOCAB_IDS, check_file_size, over
from audit.errors import InputError, error_step
from audit.formats.docs import DocBytes, StreamDocs
from audit.formats.meta import MetaTable
from audit.tokenizers.base import SpecialIds, Tokenizer
from audit.tokenizers import utf8
from audit.tokenizers.bytetable import ByteTable, SizingRider, invalid_utf8_docs

SPACE = "\u2581"
_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
_SURROGATE = re.compile("[\udc80-\udcff]")


def repair_byte_run(run: bytes) -> bytes:
    """A byte-piece run as sentencepiece emits it: each byte outside a valid UTF-8 sequence → U+FFFD."""
    try:
        run.decode("utf-8")
        return run
    except UnicodeDecodeError:
        # surrogateescape maps every undecodable byte, one by one, to U+DC80..U+DCFF
        s = run.decode("utf-8", errors="surrogateescape")
        return _SURROGATE.sub("\ufffd", s).encode("utf-8")


class SentencePieceTokenizer(Tokenizer):
    kind = "sentencepiece"

    def __init__(self, processor, path: Path | None = None, name: str = ""):
        self._sp = processor
        self.path = path
        self.name = name or (path.stem if path else "sentencepiece")
        self._build_tables()

    @classmethod
    def load(cls, path: str | Path) -> "SentencePieceTokenizer":
        """Parse a .model; every failure, table building included, is an InputError naming it."""
        import sentencepiece as spm

        path = Path(path)
        with error_step("loading a SentencePiece model", path):
            return cls._load(spm, path)

    @classmethod
    def _load(cls, spm, path: Path) -> "SentencePieceTokenizer":
        if not path.is_file():
            raise InputError(path, "no such file")
        check_file_size(path, MAX_SP_MODEL_BYTES, "SentencePiece model")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise InputError(path, f"cannot read: {e.strerror or e}") from None
        sp = spm.SentencePieceProcessor()
        try:
            sp.LoadFromSerializedProto(data)
        except Exception as e:  # the library raises RuntimeError/OSError on a bad proto
            raise InputError(path, f"not a SentencePiece model: {' '.join(str(e).split())[:160]}") from None
        n = sp.vocab_size()
        if n <= 0:
            raise InputError(path, "SentencePiece model with no pieces")
        if n > MAX_VOCAB_IDS:
            raise over(path, "piece count", n, MAX_VOCAB_IDS, "pieces")
        try:
            return cls(sp, path)
        except InputError:
            raise
        except (UnicodeError, RuntimeError, ValueError, TypeError, OverflowError, IndexError) as e:
            # e.g. a TrainerSpec string (unk_surface) that is not UTF-8: the library parses it,
            # then fails when a decode returns it
            raise InputError(path, f"SentencePiece model unusable while building its id tables: "
                                   f"{type(e).__name__}: {' '.join(str(e).split())[:120]}") from None

    # ---- tables -------------------------------------------------------------------------
    def _build_tables(self) -> None:
        sp = self._sp
        n = sp.vocab_size()
        self._n = n
        self.pieces = [sp.id_to_piece(i) for i in range(n)]
        self.is_control = np.array([sp.is_control(i) for i in range(n)], dtype=bool)
        self.is_unknown = np.array([sp.is_unknown(i) for i in range(n)], dtype=bool)
        self.is_unused = np.array([sp.is_unused(i) for i in range(n)], dtype=bool)
        self.is_byte = np.array([sp.is_byte(i) for i in range(n)], dtype=bool)
        self.byte_value = np.full(n, -1, dtype=np.int16)
        for i in np.flatnonzero(self.is_byte).tolist():
            m = _BYTE_PIECE.match(self.pieces[i])
            if not m:
                raise InputError(self.path, f"byte piece {i} is {self.pieces[i]!r}, expected <0xHH>")
            self.byte_value[i] = int(m.group(1), 16)
        dec = lambda ids: sp.decode_ids(ids).encode("utf-8")  # noqa: E731
        # A reference prefix that makes the decoded text non-empty, so the per-id surface is
        # read without the document-start rule: an ASCII byte piece, else any visible piece.
        ref = [i for i in np.flatnonzero(self.is_byte).tolist() if 0x21 <= self.byte_value[i] < 0x7F][:1]
        if not ref:
            ref = [i for i in range(n) if not self.is_byte[i] and dec([i])][:1]
        ref_out = dec(ref) if ref else b""
        surface, at_start = [], []
        for i in range(n):
            if self.is_byte[i]:
                surface.append(bytes([int(self.byte_value[i])]))
                at_start.append(surface[-1])
                continue
            both = dec(ref + [i]) if ref else dec([i])
            if not both.startswith(ref_out):
                raise InputError(self.path, f"piece {i} decodes in a way this reader does not model")
            surface.append(both[len(ref_out):])
            at_start.append(dec([i]))
        self._surface = surface
        self._at_start = at_start
        # a byte run's skeleton: each byte piece's byte, a space for every other piece
        self.table = ByteTable(surface, np.where(self.is_byte, self.byte_value, utf8.SPACE).astype(np.uint8))
        # document-start behaviour: drop one leading space, or (odd case) something else
        self.start_strip = np.array([(not self.is_byte[i]) and at_start[i] != surface[i]
                                     and surface[i][1:] == at_start[i] for i in range(n)], dtype=bool)
        # the usual layout: 256 byte pieces <0x00>..<0xFF> on consecutive ids
        bid = np.flatnonzero(self.is_byte)
        self._byte_block = int(bid[0]) if (len(bid) == 256 and bid[-1] - bid[0] == 255 and np.array_equal(
            self.byte_value[bid], np.arange(256))) else None
        self.start_odd = np.array([(not self.is_byte[i]) and (len(at_start[i]) == 0 or (
            at_start[i] != surface[i] and surface[i][1:] != at_start[i])) for i in range(n)], dtype=bool)

    # ---- interface ----------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self._n

    @property
    def special(self) -> SpecialIds:
        sp = self._sp

        def opt(i: int) -> int | None:
            return i if 0 <= i < self._n else None

        ctrl = frozenset(np.flatnonzero(self.is_control | self.is_unused).tolist())
        return SpecialIds(bos=opt(sp.bos_id()), eos=opt(sp.eos_id()), pad=opt(sp.pad_id()),
                          unk=opt(sp.unk_id()), control=ctrl)

    def id_bytes(self) -> list[bytes]:
        return list(self._surface)

    def id_classes(self) -> np.ndarray:
        """One class name per id: control, unknown, unused, byte, space-piece, piece."""
        out = np.array(["piece"] * self._n, dtype=object)
        out[[p.startswith(SPACE) for p in self.pieces]] = "space-piece"
        out[self.is_byte] = "byte"
        out[self.is_unused] = "unused"
        out[self.is_unknown] = "unknown"
        out[self.is_control] = "control"
        return out

    def piece_text(self, i: int) -> str:
        return self.pieces[i] if 0 <= i < self._n else f"<id {i} beyond the model>"

    def decode(self, ids: Sequence[int] | np.ndarray) -> bytes:
        """Exact DecodeIds of one document, in bytes (ids beyond the model decode to nothing)."""
        out = bytearray()
        run = bytearray()
        n = self._n
        for t in np.asarray(ids, dtype=np.int64).tolist():
            if not 0 <= t < n:
                continue
            if self.is_byte[t]:
                run.append(int(self.byte_value[t]))
                continue
            if run:
                out += repair_byte_run(bytes(run))
                run.clear()
            out += self._at_start[t] if not out else self._surface[t]
        if run:
            out += repair_byte_run(bytes(run))
        return bytes(out)

    def decode_many(self, tokens, starts, ends) -> list[bytes]:
        return self.decode_stream(tokens, starts, ends).to_list()

    def decode_stream(self, tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> DocBytes:
        """Decode tokens[starts[k]:ends[k]] for every k (sorted, disjoint spans) into one buffer.

        One table gather over the whole stream (dropping the leading space of documents that
        start with a `▁` piece, as DecodeIds does), whose sizing pass also checks every byte
        run for valid UTF-8 on the ids (audit.tokenizers.utf8); then exact re-decoding of only
        the documents with an invalid byte run or an odd start."""
        plan = self._plan(tokens, starts, ends)
        if plan is None:
            return DocBytes(np.zeros(0, np.uint8), np.zeros(1, np.int64))
        tokens, starts, ends, slow, strip, in_model = plan
        if in_model:
            docs, bad = self.table.gather(tokens, starts, ends, skip_first=strip, check_runs=True)
            slow |= bad
        else:
            docs = self._gather_checking_bytes(tokens, starts, ends, slow, strip)
        if slow.any():
            return docs.replace({k: self.decode(tokens[starts[k]:ends[k]]) for k in np.flatnonzero(slow).tolist()})
        return docs

    def decoded_lengths(self, tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """len(decode_stream(...)[k]) for every k, from the sizing pass alone: no byte is written
        (only the documents with an invalid byte run or an odd start are decoded, exactly)."""
        plan = self._plan(tokens, starts, ends)
        if plan is None:
            return np.zeros(0, np.int64)
        tokens, starts, ends, slow, strip, in_model = plan
        if not in_model:
            return self.decode_stream(tokens, starts, ends).lengths
        lengths, bad = self.table.lengths(tokens, starts, ends, skip_first=strip, check_runs=True)
        return self._exact_where(lengths, slow | bad, tokens, starts, ends)

    def _exact_where(self, lengths, slow, tokens, starts, ends) -> np.ndarray:
        """Table lengths, with the `slow` documents' lengths from the exact decoder."""
        for k in np.flatnonzero(slow).tolist():
            lengths[k] = len(self.decode(tokens[starts[k]:ends[k]]))
        return lengths

    def length_rider(self, tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray):
        """`decoded_lengths` as a rider of the meta pass (every id in the model; else None)."""
        plan = self._plan(tokens, starts, ends)
        if plan is None or not plan[5]:
            return None
        return _LengthRider(self, *plan[:5])

    def reference_stream(self, tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray):
        """The documents of a reference (source) stream: without a byte written when every
        document decodes by table (no invalid run, no odd start): `StreamDocs` with the exact
        lengths and what `compare_stream` needs to walk it beside a candidate; else decoded."""
        plan = self._plan(tokens, starts, ends)
        if plan is not None and plan[5] and not plan[3].any():
            tokens, starts, ends, _, strip, _ = plan
            lay = self.table.layout(tokens, starts, ends, skip_first=strip, check_runs=True)
            if not lay.bad_runs.any():
                return StreamDocs(np.diff(lay.offsets), lambda: self.decode_stream(tokens, starts, ends),
                                  lambda k: self.decode(tokens[starts[k]:ends[k]]), walk=(self.table, lay))
        return self.decode_stream(tokens, starts, ends)

    def compare_stream(self, tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray, reference,
                       max_examples: int = 20, ridden=None):
        """The usual exact case without writing the candidate's bytes in full: when every
        document decodes by table (no invalid run, no odd start) to the reference's length, chunk
        bytes are compared with the reference where they are made (ByteTable.differing, or
        ByteTable.differing_walk when the reference is a token stream not yet decoded); any other
        case decodes the whole stream and compares document by document. `ridden`: this
        stream's length_rider after the meta pass carried it (its layout; no sizing pass here)."""
        from audit.accounting.compare import DocComparison, bad_doc

        plan = self._plan(tokens, starts, ends)
        if plan is not None and plan[5] and not plan[3].any():
            tokens, starts, ends, _, strip, _ = plan
            if isinstance(ridden, _LengthRider) and ridden.carries(tokens, starts, ends):
                lay = ridden.rider.layout()
            else:
                lay = self.table.layout(tokens, starts, ends, skip_first=strip, check_runs=True)
            lengths = np.diff(lay.offsets)
            if not lay.bad_runs.any() and np.array_equal(lengths, reference.lengths):
                walk = getattr(reference, "walk", None)
                if walk is not None:
                    bad = self.table.differing_walk(lay, *walk)
                else:
                    bad = self.table.differing(lay, reference.buf, int(reference.offsets[0]))
                examples = [bad_doc(k, self.decode(tokens[starts[k]:ends[k]]), reference.doc(k))
                            for k in bad[:max_examples].tolist()]
                return lengths, DocComparison(len(starts), int(bad.size), bad, examples, int(lengths.sum()),
                                              reference.total)
        return super().compare_stream(tokens, starts, ends, reference, max_examples)

    def _plan(self, tokens, starts, ends):
        """(tokens, starts, ends, slow, strip, in_model): out-of-model ids silenced, the
        documents whose start needs the exact decoder (`slow`), those whose leading space is
        dropped, and whether every id was in the model.

        Byte runs are checked on the ids only when every id is in the model: DecodeIds ends a
        run at any other piece, control ids included (tests/test_sentencepiece.py), which is
        what the run skeleton does; an id past the model is skipped by `decode` without ending
        the run, so a stream holding one is checked on the decoded bytes instead."""
        tokens = np.asarray(tokens)
        starts = np.asarray(starts, dtype=np.int64)
        ends = np.asarray(ends, dtype=np.int64)
        if len(starts) == 0:
            return None
        in_model = not (tokens.size and chunked.maximum(tokens) >= self._n)
        if not in_model:
            tokens = np.where(tokens < self._n, tokens, self._n)  # out-of-model ids decode to nothing
        nonempty = starts < ends
        first = np.where(nonempty, tokens[np.minimum(starts, len(tokens) - 1)], 0)
        first = np.minimum(first, self._n - 1)
        slow = nonempty & (self.start_odd[first] | (tokens[np.minimum(starts, len(tokens) - 1)] >= self._n))
        strip = nonempty & self.start_strip[first] & ~slow
        return tokens, starts, ends, slow, strip, in_model

    def _gather_checking_bytes(self, tokens, starts, ends, slow, strip) -> DocBytes:
        """The gather, then the UTF-8 check on the decoded bytes. Valid on its own only where no
        silent id splits a byte run: documents holding one inside are marked slow too."""
        docs, silent = self.table.gather(tokens, starts, ends, skip_first=strip, zero_positions=True)
        if silent.size:  # silent ids inside a document (the BOS between documents is not inside)
            d = np.searchsorted(starts, silent, side="right") - 1
            inside = (d >= 0) & (silent < ends[np.maximum(d, 0)])
            slow[d[inside]] = True
        if self.is_byte.any():
            slow |= invalid_utf8_docs(docs)
        return docs

    def canonical_meta(self, vocab_size: int | None = None) -> MetaTable:
        """tokenizers.md §1: the table the official trainer builds, padded to `vocab_size`."""
        n = max(self._n, vocab_size or 0)
        base = np.zeros(n, dtype=np.int16)
        ls = np.zeros(n, dtype=bool)
        bd = np.ones(n, dtype=bool)
        for i, p in enumerate(self.pieces):
            if self.is_control[i] or self.is_unknown[i] or self.is_unused[i]:
                continue
            bd[i] = False
            if self.is_byte[i]:
                base[i] = 1
                continue
            if p.startswith(SPACE):
                ls[i] = True
                p = p[1:]
            base[i] = len(p.encode("utf-8"))
        return MetaTable(base, ls, bd, tokenizer_kind="sentencepiece",
                         source_model_name=self.path.name if self.path else self.name, vocab_size=n)

    def encode(self, text: str) -> list[int]:
        return list(self._sp.encode(text))

    @property
    def byte_preserving(self) -> bool:
        return False  # NFKC + whitespace normalisation when encoding


class _LengthRider:
    """SentencePieceTokenizer.decoded_lengths split in two: the sizing pass (`rider`, carried by
    the meta pass), then `finish()`: the documents with an invalid byte run or an odd start
    decoded one by one, exactly."""

    def __init__(self, tok: SentencePieceTokenizer, tokens, starts, ends, slow, strip):
        self.tok, self.tokens, self.starts, self.ends, self.slow = tok, tokens, starts, ends, slow
        self.rider = SizingRider(tok.table, tokens, starts, ends, skip_first=strip, check_runs=True)

    def carries(self, tokens, starts, ends) -> bool:
        """Whether this rider measured these very spans of this very stream."""
        return tokens is self.tokens and np.array_equal(starts, self.starts) and np.array_equal(ends, self.ends)

    def finish(self) -> np.ndarray:
        lengths, bad = self.rider.result()
        return self.tok._exact_where(lengths, self.slow | bad, self.tokens, self.starts, self.ends)

