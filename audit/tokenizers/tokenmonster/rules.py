"""TokenMonster rules (family "tokenmonster", ids TM0xx), checked by `findings.py`."""

from audit.rules import rule

F = "tokenmonster"

BYTE_FALLBACK = rule(
    "TM001", "tm-byte-fallback-not-one-byte", "error", "TokenMonster byte-fallback ids do not count exactly 1 byte",
    explanation="""A single-byte id (e.g. 0x80) stands for exactly one source byte. The official Python
package decodes such an id on its own with errors="replace", so len(token_decoded.encode()) gives 3
(U+FFFD): that is how Scylla-998 got base_bytes=3 for its 27 byte-fallback ids 75..101, ~3.1 M
occurrences in val and essentially its whole +4.1% overcount. Evidence: ids, values, occurrences,
bytes added.""",
    fix="Set base_bytes=1 for every single-byte id (or use `audit tokenizer … --fix`).", family=F)
MARKERS = rule(
    "TM002", "tm-capcode-markers-unmodelled", "error",
    "capcode delete markers and the leading-space ids they act on are not modelled by the meta",
    explanation="""With capcode a `D` marker deletes the next character, in practice the leading space of
the next id (` the` after `(D` decodes to `the`). The formula can express this only as
has_leading_space on ids that start with a space (base without it) and is_boundary_token on ids
that end with a waiting `D` (`D`, `\\nD`, `(D`, `DC`, `DW`, …). Evidence: the delete-ending ids and the
leading-space ids, each split into modelled / not modelled, with occurrences when val data is given.
Info when everything is modelled.""",
    fix="Rebuild the table with `--fix`: leading-space ids split into space + rest, delete-ending ids as boundaries.",
    family=F)
ZERO_MARKERS = rule(
    "TM003", "tm-zero-byte-marker-ids", "info", "ids that are only capcode markers count 0 bytes (correct)",
    explanation="""`C`, `W`, `D`, `DC`, `DW` (or 0x7F with capcode 1) decode to nothing: 0 bytes is right for
them. Listed so a reader sees the meta's zero-byte ids explained; an error if such an id counts bytes.""",
    fix="Marker-only ids must have base_bytes=0.", family=F)
INNER_MARKERS = rule(
    "TM004", "tm-inner-markers", "info", "ids with capcode markers inside them",
    explanation="""Ids such as `D 0` or `\\D begin{D` carry markers that act inside the id (a `D` deleting
its own following space): their base must be what the id decodes to on its own. Evidence: the ids,
how many have a base that disagrees with their own decoding (a warning then, an error if they occur).""",
    fix="base_bytes = the bytes the id decodes to on its own (`--fix`).", family=F)
DEFINED_ZERO = rule(
    "TM005", "tm-defined-id-zero-bytes", "warning", "ids the vocabulary defines (with bytes) have meta 0 bytes",
    explanation="""scylla-1254's 75 ids 0..74 are plain copies of the hex-encoded byte ids (same bytes,
another id); the loaded vocabulary keeps one id per byte string, so the shards never hold them and
their meta is 0. Harmless while they never occur (warning), fatal when they do (error): each
occurrence would drop its bytes from the denominator. Evidence: ids, their aliases, occurrences.""",
    fix="Give these ids their decoded length, or prove they never occur (val occurrence count 0).", family=F)
NORMALIZATION = rule(
    "TM006", "tm-normalization", "error", "the vocabulary normalises text (not byte-preserving)",
    explanation="""TokenMonster applies normalisation before tokenising and never undoes it: with NFD, `é`
(2 bytes) comes back as `e` + U+0301 (3 bytes), so the decoded val text is not the source text and no
per-token table can make the denominator the source's byte count.""",
    fix="Use normalization none (and full byte fallback) and re-tokenise the val set from the source text.",
    family=F)
CHARSET_UTF8 = rule(
    "TM007", "tm-charset-none-utf8-meta", "error", "a charset-none vocabulary has metadata computed as UTF-8",
    explanation="""With charset none every id is raw bytes; the official package returns them as a latin-1
string, so `.encode("latin-1")` recovers them, while `.encode("utf-8")` counts 2 bytes for each high
byte (or 3 for U+FFFD). Evidence: ids whose base equals such a UTF-8 reading instead of their length.""",
    fix="base_bytes = len(key bytes) for every id of a charset-none vocabulary.", family=F)
BYTE_COVERAGE = rule(
    "TM008", "tm-byte-fallback-coverage", "error", "some bytes of valid text have no single-byte id",
    explanation="""A byte that no id covers cannot be tokenised: without an UNK id it is silently LOST (as
Scylla-998 loses CJK, Cyrillic, emoji and Turkish İ = C4 B0); with UNK it becomes UNK and its bytes
are still gone. The val text is then not what the model is scored on. Evidence: the missing bytes
(valid-UTF-8 bytes and control bytes listed apart) and whether an UNK id exists.""",
    fix="Add the 256 single-byte ids (byte fallback) to the vocabulary.", family=F)
NO_BOS = rule(
    "TM009", "tm-bundle-without-bos", "warning", "the bundle has no BOS id: documents cannot be separated",
    explanation="""Without BOS before every document the val stream is one unit: the audit can still
apply the meta formula, decode the whole stream and compare totals, and check the table id by id;
it cannot compare documents one by one, locate the first differing byte of a document, count
documents against the source, or prove exactness per document.""",
    fix="Write a BOS id before every document (and declare it, e.g. manifest bos_id).", family=F)
ALIASES = rule(
    "TM010", "tm-alias-entries", "info", "several entries carry one id; the last entry wins",
    explanation="""The reference loader fills the id → bytes table entry by entry, so the last key with an
id is what the id decodes to (Scylla-998: key `D 0` overrides `0` for id 19). Both readings decode to
the same text after capcode unless a pending `D` precedes the id.""",
    fix="Nothing to fix; the audit decodes with the last-entry-wins table.", family=F)
