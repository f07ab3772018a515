"""Tokenizer audit rules (family "tokenizer", ids TOK0xx).

Static rules compare a `*.meta.npz` with the tokenizer it claims to describe, id by id.
Val-data rules compare the three byte counts (source, meta, decoded) over the val stream.
"""

from audit.rules import rule

F = "tokenizer"

META_DTYPE = rule(
    "TOK001", "meta-dtype", "warning", "meta arrays or scalars do not have the documented types",
    explanation="""The evaluator expects base_bytes int16, has_leading_space and is_boundary_token bool,
format_version 1 and a vocab_size equal to the table length. Other types usually still load,
but a table built by different code than the documented formula deserves a second look.""",
    fix="Rebuild the meta with the canonical formula (`audit tokenizer META --tokenizer T --fix NEW.npz`).",
    family=F)
META_INT16 = rule(
    "TOK002", "meta-int16-overflow", "error", "base_bytes has values that are negative or do not fit in int16",
    explanation="""base_bytes is stored and used as int16: a value above 32767 wraps around when the
evaluator casts it, and a negative byte count is meaningless. Either corrupts the denominator.""",
    fix="Recompute base_bytes from the tokenizer; no token is longer than a few dozen bytes.", family=F)
META_SHORT = rule(
    "TOK003", "meta-too-short", "error", "the meta has fewer ids than the tokenizer defines",
    explanation="""Every id the tokenizer can emit needs a row; the evaluator indexes the arrays by id
and would fail (or read another table's padding) for the missing ones.""",
    fix="Build the table for every id of the tokenizer, padded to the model's declared vocab size.", family=F)
BYTE_PIECE = rule(
    "TOK004", "byte-piece-not-one-byte", "error", "byte-fallback ids do not count exactly 1 byte",
    explanation="""A byte-fallback piece (<0xNN>) stands for exactly one source byte. Counting the
U+FFFD that a lone invalid byte decodes to (3 bytes) is the Scylla-998 bug: ~3.1 M occurrences
in val, essentially its whole +4.1% denominator overcount. Evidence: the ids, their occurrences
and the bytes they add. For TokenMonster vocabularies TM001 (and TM005) report this instead, with
the byte values, so the finding is not given twice.""",
    fix="Set base_bytes=1, has_leading_space=False, is_boundary_token=False for every byte piece.", family=F)
BASE_MISMATCH = rule(
    "TOK005", "base-bytes-mismatch", "error", "base_bytes of ordinary pieces differ from their UTF-8 length",
    explanation="""For an ordinary piece base_bytes must be the UTF-8 length of its text without one
leading `▁` (tokenizers.md §1). Any other value moves the denominator by value × occurrences.""",
    fix="Recompute base_bytes as len(piece.removeprefix('▁').encode('utf-8')).", family=F)
LEADING_SPACE = rule(
    "TOK006", "leading-space-flag-mismatch", "error", "has_leading_space disagrees with the piece's leading `▁`",
    explanation="""The space of a `▁word` piece is counted through has_leading_space (and not after a
boundary token). A piece with `▁` and the flag off loses one byte per occurrence; a flag on a
piece without `▁` adds one.""",
    fix="Set has_leading_space exactly for the pieces whose text starts with `▁` (and strip it from base_bytes).",
    family=F)
BOUNDARY = rule(
    "TOK007", "boundary-flag-mismatch", "error", "is_boundary_token is wrong for control/unknown/unused or ordinary ids",
    explanation="""Control, unknown and unused ids (BOS above all) must be boundary tokens so the
leading space of the first word of a document is not counted; an ordinary piece marked as a
boundary suppresses the next token's space. Evidence: the ids and the byte drift their flags cause.""",
    fix="is_boundary_token=True exactly for control, unknown and unused ids (and padding).", family=F)
ZERO_BYTE = rule(
    "TOK008", "zero-byte-defined-id", "warning", "ids the tokenizer defines (with bytes) have base_bytes 0",
    explanation="""An id that decodes to bytes but is credited 0 bytes shrinks the denominator each
time it occurs. Harmless when it never occurs in val (as the 75 unused ids of scylla-1254),
fatal otherwise; the finding is an error when the val stream contains such ids.""",
    fix="Give these ids their decoded byte length, or prove they cannot be emitted.", family=F)
PADDING = rule(
    "TOK009", "padded-id-not-inert", "warning", "rows beyond the tokenizer's ids are not 0-byte boundary rows",
    explanation="""Tables are padded to the model's declared vocab size; ids past the tokenizer decode to
nothing, so their rows must be base_bytes=0, no leading space, boundary. Error when such ids occur in val.""",
    fix="Set padded rows to base_bytes=0, has_leading_space=False, is_boundary_token=True.", family=F)
BEYOND_TOKENIZER = rule(
    "TOK010", "val-id-beyond-tokenizer", "error", "the val stream holds ids the tokenizer does not define",
    explanation="""An id past the tokenizer's vocabulary decodes to nothing, yet the meta may credit it
bytes. The stream was not produced by this tokenizer, or the tokenizer file is the wrong one.""",
    fix="Audit the stream with the tokenizer that produced it.", family=F)
META_DECODED = rule(
    "TOK011", "meta-decoded-drift", "error", "meta bytes differ from decoded bytes over the val documents",
    explanation="""The evaluator's denominator (meta formula) must equal the bytes the candidate's own
decoder produces. Evidence: both totals, the drift, its relative size, and the drift attributed to
ids and classes. Error at a relative drift ≥ 1e-5 (or any drift with --strict), warning below.""",
    fix="Fix the ids named in the evidence (or use --fix to write the canonical table), then re-audit.",
    family=F)
META_SOURCE = rule(
    "TOK012", "meta-source-drift", "error", "meta bytes differ from the source bytes of the val text",
    explanation="""The denominator must be the byte count of the text the val set stands for (the
canonical sp1024 val stream decoded per document). Error at a relative drift ≥ 1e-5 (any with --strict).""",
    fix="Correct the meta; if the decoded text itself differs from the source, fix the tokenizer/normalisation.",
    family=F)
DECODED_SOURCE = rule(
    "TOK013", "decoded-source-drift", "error", "the decoded val text has a different byte count than the source",
    explanation="""If the candidate stream decodes to more or fewer bytes than the source text, the
tokenizer does not round-trip the val text (normalisation such as NFD, missing byte fallback,
capcode effects). Error at a relative drift ≥ 1e-5 (any with --strict), warning below.""",
    fix="Use a lossless tokenizer (full byte fallback, no normalisation) or re-tokenise from the source text.",
    family=F)
BAD_DOCS = rule(
    "TOK014", "bad-documents", "warning", "some documents do not decode to exactly their source bytes",
    explanation="""Exact means every document decodes to its source bytes, not only equal totals: a
total that matches by accident while documents differ is not exact. Evidence: count, first
differing offset and escaped excerpts of both sides. Error with --strict.""",
    fix="Inspect the excerpts; usually normalisation, lost bytes or a wrong document order.", family=F)
DOC_METAS = rule(
    "TOK015", "meta-document-mismatch", "warning", "per-document meta bytes differ from the document's true bytes",
    explanation="""Even when totals agree, a per-document difference shows the table is wrong for some
ids or contexts and only balances out by chance. Error with --strict.""",
    fix="Look at the drift-by-id table; fix the ids it names.", family=F)
NO_BOS = rule(
    "TOK016", "no-bos-no-documents", "warning", "the stream has no BOS: documents cannot be compared one by one",
    explanation="""Without a BOS before every document (bos_id -1, as Scylla-998) the stream is one
unit: only totals can be compared, and a per-document exactness proof is impossible. Error with --strict.""",
    fix="Write BOS before every document, as the challenge's shards do.", family=F)
DOC_COUNT = rule(
    "TOK017", "document-count-mismatch", "error", "the candidate and source hold different numbers of documents",
    explanation="""The val split is the first 50,000 documents; a candidate stream with another count
stands for other text, and per-document comparison is impossible.""",
    fix="Re-export the val shard from the same documents, BOS before each.", family=F)
PREFIX = rule(
    "TOK018", "tokens-before-first-bos", "warning", "tokens precede the first BOS",
    explanation="""The evaluator scores them, but they belong to no document, so no source can vouch for them.""",
    fix="Start the val stream with BOS.", family=F)
TAIL = rule(
    "TOK019", "plain-eval-dropped-tail", "info", "the plain evaluator drops the stream's tail",
    explanation="""Reshaping the val stream into rows of seq_len scores targets 1..R×seq_len only; the
rest is silently dropped (213 tokens for sp1024 at 1024 or 2048). The denominator over the scored
positions differs from the full-stream one by the tail's bytes.""",
    fix="Nothing to fix; quote the denominator of the evaluator you used (or use the sliding window).",
    family=F)
CORRECTED = rule(
    "TOK020", "corrected-score", "warning", "the claimed BPB, recomputed with the true byte count",
    explanation="""val_bpb = bits / bytes, so a denominator off by a factor rescales the score:
corrected = claimed × meta / true. Scylla-998's claimed 1.0819 becomes about 1.126. Info when
the denominator is exact.""",
    fix="Report the corrected score (or re-run the evaluation with a corrected meta).", family=F)
RECONCILE = rule(
    "TOK021", "source-reconciliation", "info", "raw docs_selected.jsonl text vs the canonical sp1024 text, by class",
    explanation="""The canonical val text is NFKC- and whitespace-normalised (newlines become spaces,
runs collapse, ends are trimmed), so it is smaller than the raw documents. This explains the
difference by class; it is not a failure.""",
    fix="Nothing to fix: state which reference a byte count was computed against.", family=F)
SIDECAR_LEN = rule(
    "TOK022", "sidecar-length-mismatch", "error", "a byte sidecar does not have one value per token",
    explanation="""The sidecar gives each position its original byte cost; a length that differs from
its shard's token count means the two are not aligned and the denominator is meaningless.""",
    fix="Regenerate the sidecar together with the shard.", family=F)
SIDECAR_BOS = rule(
    "TOK023", "sidecar-bos-nonzero", "error", "the byte sidecar gives BOS positions a nonzero byte cost",
    explanation="""BOS stands for no text; a nonzero cost inflates the denominator once per document.""",
    fix="Write 0 at every BOS position of the sidecar.", family=F)
SIDECAR_SOURCE = rule(
    "TOK024", "sidecar-source-mismatch", "error", "the byte sidecar does not sum to the source bytes",
    explanation="""Per document and in total, the sidecar must add up to the source text's bytes.""",
    fix="Recompute the sidecar from the original text.", family=F)
EXACT = rule(
    "TOK025", "accounting-exact", "info", "source, meta and decoded bytes agree in total and per document",
    explanation="""The bundle is byte-exact on the audited val set: the evaluator's denominator is right.""",
    fix="Nothing to fix.", family=F)
FIXED = rule(
    "TOK026", "meta-fix-written", "info", "a corrected meta was written to a new file",
    explanation="""--fix writes the canonical table for the tokenizer (never over an existing file) and re-audits it.""",
    fix="Ship the corrected meta and re-run the evaluation with it.", family=F)
NO_TOKENIZER = rule(
    "TOK027", "tokenizer-missing", "warning", "no tokenizer found: the audit is incomplete",
    explanation="""Without the tokenizer the audit can only apply the meta formula; it cannot check the
table id by id nor decode the val stream, so it never passes: the verdict is `incomplete`, and an
error with --strict. The tokenizer is looked for before giving up: a manifest.json beside the meta
(or one folder up, or in --data-root) whose tokenizer entry names the meta (meta_path, or an
artifact of the same stem), then a single tokenizer file beside the meta whose id count fits the
table. The message says what was found and what to pass.""",
    fix="Pass --tokenizer FILE (or --data-root with a manifest naming the meta).", family=F)

RELATIVE_TOLERANCE = 1e-5
