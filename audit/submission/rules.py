"""Submission rules (family "submission", ids SUB0xx).

Each rule quotes the challenge rule it applies (../shared/spec/rules.md); findings carry the numbers
and the file/line they come from as evidence.
"""

from __future__ import annotations

from audit.rules import rule

F = "submission"

CAP_BYTES = 16_000_000  # decimal, not 16 MiB
TRAIN_CAP_MS = 600_000
EVAL_CAP_MS = 600_000
# The wall-clock check fires between steps and timers jitter: an overrun up to this is reported
# as a warning with its number, beyond it the run used time it did not have.
OVERRUN_TOLERANCE_MS = 1_000
MARGIN_NATS = 0.005
P_THRESHOLD = 0.01

# --- files and folder -------------------------------------------------------------------------
MISSING_README = rule(
    "SUB001", "missing-readme", "error", "The record folder has no README.md",
    explanation="Records must explain what was done and how to reproduce it (README.md).",
    fix="Add README.md describing the method, the results per seed and the command used.", family=F)
MISSING_SUBMISSION = rule(
    "SUB002", "missing-submission-json", "error", "The record folder has no submission.json",
    explanation="submission.json carries name, author, github_id and val_bpb; reviewers and the "
                "leaderboard read it.",
    fix="Add submission.json with at least name, author, github_id and val_bpb.", family=F)
MISSING_LOG = rule(
    "SUB003", "missing-train-log", "error", "No train log produced by the script is shipped",
    explanation="Every claimed number must be backed by a train log (one per seed); a record with "
                "no logs cannot be checked.",
    fix="Ship the train logs (train_seed<N>.log), one per seed, as written by the script.", family=F)
MISSING_CODE = rule(
    "SUB004", "missing-code", "error", "train_gpt.py is not shipped",
    explanation="The code is part of the artifact and must run from the record folder; without it "
                "neither its byte count nor its defaults can be checked.",
    fix="Ship train_gpt.py exactly as run (its size is what counts). Auditing a published record "
        "without code: --allow-missing-code.", family=F)
JSON_INVALID = rule(
    "SUB005", "submission-json-unreadable", "error",
    "submission.json cannot be read as a JSON object",
    explanation="A file that is not JSON, too large, or nested beyond reason cannot be trusted by "
                "tools that read it; it is reported instead of crashing the audit.",
    fix="Write submission.json as a small, flat JSON object.", family=F)
JSON_SCHEMA = rule(
    "SUB006", "submission-json-schema", "error",
    "submission.json misses a required field or a field has the wrong type",
    explanation="Required: name, author, github_id (strings) and val_bpb (a positive number); "
                "optional fields that are present must have the documented types.",
    fix="Add the missing field / fix its type (numbers as JSON numbers, not strings).", family=F)
UNSAFE_PATH = rule(
    "SUB007", "unsafe-path", "error",
    "A file in the record folder is a link out of the folder or not a regular file",
    explanation="A symlink pointing outside the record folder could make a reviewer's tools read "
                "files of their machine; it is not followed. FIFOs and devices are never opened.",
    fix="Replace the link by the file itself (or remove it).", family=F)
LOG_UNREADABLE = rule(
    "SUB008", "log-unreadable", "error", "A .log file is binary or unreadable",
    explanation="A log must be the text the script printed; binary content cannot back a claim.",
    fix="Ship the text log written by the run.", family=F)
NO_FINAL_METRIC = rule(
    "SUB009", "log-without-final-metric", "error", "A train log has no final val_bpb metric",
    explanation="The score must come from a final metric line (e.g. `final_int6_sliding_window_exact "
                "val_loss:… val_bpb:…`); a log that ends before it did not produce the claimed score.",
    fix="Ship the complete log of the run, including its final evaluation lines.", family=F)

# --- size ---------------------------------------------------------------------------------------
ARTIFACT_OVER_CAP = rule(
    "SUB010", "artifact-over-cap", "error", "Artifact (code + compressed model) exceeds 16,000,000 bytes",
    explanation="The cap is decimal: 16,000,000 bytes = code bytes + compressed model bytes.",
    fix="Shrink the model (quantization, pruning, compression) or the code.", family=F)
CODE_SIZE_MISMATCH = rule(
    "SUB011", "code-size-mismatch", "error", "Shipped train_gpt.py size differs from the logged code size",
    explanation="The shipped file's byte size is what counts; a different logged size means the log "
                "was produced by other code, or the artifact total is wrong.",
    fix="Ship the exact train_gpt.py that produced the logs (or re-run).", family=F)
TOTAL_MISMATCH = rule(
    "SUB012", "total-size-mismatch", "error", "Logged total differs from logged code + model bytes",
    explanation="`Total submission size` must equal `Code size` + compressed model bytes.",
    fix="Fix the size accounting in the script and re-run.", family=F)
TRAIN_OVER = rule(
    "SUB013", "train-time-over", "error", "Training ran past the 600 s wall-clock cap",
    explanation="Training may use at most 600 s on 8xH100. The wall-clock check fires between steps, "
                "so a small overrun (up to 1 s) is reported as a warning with its number.",
    fix="Lower the cap in the script (MAX_WALLCLOCK_SECONDS) so the last step ends before 600 s.", family=F)
POST_CAP_WORK = rule(
    "SUB014", "post-cap-artifact-work", "error",
    "Work that produces the artifact (GPTQ calibration/generation) ran after the cap without a reservation",
    explanation="Work needed to produce the artifact belongs to the 600 s training budget. Accepted "
                "records reserve it inside the cap (`gptq:reserving 12s, effective=588000ms`); "
                "stopping at ~600 s and then generating calibration data uses more than 600 s.",
    fix="Reserve the post-training work inside the cap (stop training early by its duration).", family=F)
EVAL_OVER = rule(
    "SUB015", "eval-time-over", "error", "Evaluation passes sum to more than 600 s",
    explanation="Evaluation may use at most 600 s in addition to training; every pass logged after "
                "training is summed (quantized roundtrip, sliding window, TTT, diagnostics).",
    fix="Make evaluation cheaper (larger stride, fewer TTT epochs) or drop passes.", family=F)

# --- claimed numbers ------------------------------------------------------------------------------
SEED_MISMATCH = rule(
    "SUB016", "seed-value-mismatch", "error", "A claimed per-seed value is not what its log shows",
    explanation="Each per-seed number in submission.json must be printed in that seed's log.",
    fix="Copy the numbers from the logs (the final metric line the score is defined by).", family=F)
MEAN_MISMATCH = rule(
    "SUB017", "mean-std-mismatch", "error", "Claimed mean/std do not match the per-seed values",
    explanation="The mean and (sample) std are recomputed from the per-seed values found in the logs.",
    fix="Recompute mean and std (ddof=1) from the per-seed log values.", family=F)
DUPLICATE_LABEL = rule(
    "SUB018", "duplicated-metric-label", "warning", "The same value is printed under two metric labels",
    explanation="E.g. `final_int8_zlib_roundtrip_exact` printed with the sliding-window numbers: a "
                "parser (or a reviewer) picking the label gets the wrong pass.",
    fix="Print each pass's own value under its own label.", family=F)
OUTLIER_SEED = rule(
    "SUB019", "outlier-seed", "warning", "A seed's step time or step count is far from the others",
    explanation="A seed run on a throttled machine (e.g. 152 ms/step and 3,933 steps vs ~90 ms and "
                "6,500) is not representative; averaging it in moves the mean.",
    fix="Re-run the seed on a healthy machine, or state why it differs.", family=F)
NOT_SIGNIFICANT = rule(
    "SUB020", "not-significant", "warning",
    "The improvement over SOTA is not significant at 0.005 nats, p < 0.01",
    explanation="A record must beat SOTA by at least 0.005 nats with p < 0.01 (one-sided Welch "
                "t-test over the per-seed values).",
    fix="Add seeds, or submit as non-record.", family=F)
SIGNIFICANCE = rule(
    "SUB021", "significance", "info", "Significance test against the given SOTA",
    explanation="States the test, the BPB<->nats conversion used, t, df and p.",
    fix="Nothing to fix.", family=F)

# --- claims vs code and logs ----------------------------------------------------------------------
CLAIM_CONTRADICTED = rule(
    "SUB022", "claim-contradicts-code", "error",
    "README/submission.json says a technique is absent while the code or logs turn it on",
    explanation="E.g. 'No TTT' while `os.environ.get(\"TTT_ENABLED\", \"1\")` enables it by default, "
                "or the logs show TTT running.",
    fix="Correct the claim, or change the default and re-run.", family=F)
COMPRESSION_CLAIM = rule(
    "SUB023", "compression-claim-mismatch", "warning",
    "Claimed compression differs from the code or the logs",
    explanation="E.g. 'LZMA-9' claimed while the code calls `lzma.compress(..., preset=6)`.",
    fix="State the compression the code uses.", family=F)
FEATURE_DISABLED = rule(
    "SUB024", "feature-claim-disabled", "warning",
    "A feature claimed in the README is disabled by the script's defaults and no log shows it on",
    explanation="A claimed feature must be what ran: the code default turns it off and neither the "
                "README's command nor the logs turn it on.",
    fix="Enable the feature by default (or in the documented command), or drop the claim.", family=F)

# --- evaluation legality --------------------------------------------------------------------------
TWO_PASS = rule(
    "SUB025", "two-pass-rescoring", "error", "The evaluation scores tokens again after seeing them",
    explanation="Two-pass rescoring (score, adapt, score the same tokens again) uses the tokens being "
                "scored; not allowed.",
    fix="Score each token exactly once, before any adaptation on it.", family=F)
NGRAM_CACHE = rule(
    "SUB026", "ngram-cache", "warning", "An n-gram cache is used at evaluation (disclosure required)",
    explanation="A backward-looking cache updated only with already-scored tokens was argued legal; "
                "one built from unscored tokens is not (then reported as an error).",
    fix="Disclose the cache and show it is only updated with already-scored tokens.", family=F)
SLOT = rule(
    "SUB027", "slot", "error", "SLOT (eval-time optimisation on the tokens being scored) is used",
    explanation="SLOT optimises a delta using the tokens it then scores; not allowed / contested.",
    fix="Remove SLOT from the scored evaluation path.", family=F)
PRE_QUANT_TTT = rule(
    "SUB028", "pre-quant-ttt-on-val", "error", "Test-time training on val before quantization",
    explanation="Training on val tokens before the artifact is produced is training on val.",
    fix="Only adapt at evaluation, on already-scored tokens.", family=F)
VAL_IN_TRAINING = rule(
    "SUB029", "val-in-training", "error", "The training loader reads validation files",
    explanation="No access to validation data during training (no paid prefix, no training on val).",
    fix="Point the training loader at fineweb_train_* only.", family=F)
TTT_ORDER = rule(
    "SUB030", "ttt-not-score-first", "error",
    "The TTT loop trains on a chunk before scoring it",
    explanation="Score-first: a chunk is scored (under no_grad/inference_mode), then the model may "
                "train on it, then the next chunk is scored.",
    fix="Score the chunk first, then step the optimizer on it.", family=F)
TTT_SCORE_FIRST = rule(
    "SUB031", "ttt-score-first", "info", "The TTT loop scores each chunk before training on it",
    explanation="Static evidence of the score-first order (line numbers of the scoring block and of "
                "the first optimizer step in the same loop).",
    fix="Nothing to fix.", family=F)
CODE_SYNTAX = rule(
    "SUB032", "code-syntax-error", "error", "train_gpt.py does not parse as Python",
    explanation="Code that does not parse cannot have produced the logs.",
    fix="Ship the code that ran.", family=F)
CODE_NOT_ANALYSED = rule(
    "SUB033", "code-not-analysed", "warning", "train_gpt.py could not be analysed statically",
    explanation="The file is too large, too deeply nested, or wraps compressed code that could not be "
                "unpacked within bounds; code-based checks were skipped.",
    fix="Ship readable code (a compressed wrapper of at most a few MB is fine).", family=F)

# --- tokenizer ----------------------------------------------------------------------------------------
TOKENIZER_UNVERIFIED = rule(
    "SUB034", "custom-tokenizer-unverified", "error",
    "A non-standard tokenizer is used and cannot be verified",
    explanation="Tokenizer changes must prove the byte denominator is right: the tokenizer artifact "
                "and its meta must be shipped and pass the tokenizer audit.",
    fix="Ship the tokenizer (.model/.vocab/.yaml) and its meta.npz; run `audit tokenizer` on them.", family=F)
TOKENIZER_FAILED = rule(
    "SUB035", "tokenizer-audit-failed", "error", "The shipped tokenizer meta fails the tokenizer audit",
    explanation="The audit's own findings (TOK/TM ids) are listed next to this one.",
    fix="Fix the meta (`audit tokenizer --fix`) and re-evaluate.", family=F)

# --- seeds, track -----------------------------------------------------------------------------------
FEW_SEEDS = rule(
    "SUB036", "few-seeds", "warning", "Fewer than 3 seeds",
    explanation="Records are usually judged on the mean of 3 or more seeds with per-seed logs.",
    fix="Run and ship at least 3 seeds.", family=F)
SIGNIFICANCE_UNTESTED = rule(
    "SUB037", "significance-untested", "info", "No SOTA was given; significance was not tested",
    explanation="Pass --sota BPB or --sota RECORD_DIR to test the improvement.",
    fix="Run with --sota.", family=F)
NON_RECORD_TRACK = rule(
    "SUB038", "non-record-track", "info", "The submission is on a non-record track",
    explanation="Folders under track_non_record_16mb (or `track` naming non-record) are not records.",
    fix="Nothing to fix.", family=F)
DUPLICATE_SEED = rule(
    "SUB039", "duplicate-seed", "warning", "Two logs report the same seed",
    explanation="Per-seed statistics need one log per seed.",
    fix="Ship one log per seed.", family=F)
LOG_TRUNCATED_LINES = rule(
    "SUB040", "log-long-lines", "info", "Over-long log lines were skipped",
    explanation="Lines longer than the parser's cap are skipped (bounded memory); numbers on them "
                "were not read.",
    fix="Nothing to fix unless a needed line was skipped.", family=F)
