"""Files and folder: what a record folder must ship, and what it ships under other names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit.rules import Finding, Severity, rule

if TYPE_CHECKING:
    from audit.submission.facts import RecordFacts

F = "submission"

MISSING_README = rule(
    "SUB001", "missing-readme", "error", "The record folder has no README.md",
    explanation="Records must explain what was done and how to reproduce it (README.md).",
    fix="Add README.md describing the method, the results per seed and the command used.", family=F)
MISSING_SUBMISSION = rule(
    "SUB002", "missing-submission-json", "error", "The record folder has no submission.json",
    explanation="submission.json carries name, author, github_id and val_bpb; reviewers and the "
                "leaderboard read it. A file named otherwise (submission_x.json) is found, audited and "
                "reported by SUB043 instead.",
    fix="Add submission.json with at least name, author, github_id and val_bpb.", family=F)
MISSING_LOG = rule(
    "SUB003", "missing-train-log", "error", "No train log produced by the script is shipped",
    explanation="Every claimed number must be backed by a log (one per seed). Logs are found as "
                "*.log, and *.txt files with log content (train_v0.txt, logs/train0.txt).",
    fix="Ship the train logs (train_seed<N>.log), one per seed, as written by the script.", family=F)
MISSING_CODE = rule(
    "SUB004", "missing-code", "error", "train_gpt.py is not shipped",
    explanation="The code is part of the artifact and must run from the record folder; without it "
                "neither its byte count nor its defaults can be checked. A file named train_gpt*.py is "
                "found and audited instead (SUB043 reports the name).",
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
                "optional fields that are present must have the documented types (`seeds` may be a "
                "list or a dict keyed by seed).",
    fix="Add the missing field / fix its type (numbers as JSON numbers, not strings).", family=F)
UNSAFE_PATH = rule(
    "SUB007", "unsafe-path", "error",
    "A file in the record folder is a link out of the folder or not a regular file",
    explanation="A symlink pointing outside the record folder could make a reviewer's tools read "
                "files of their machine; it is not followed by any part of the audit. FIFOs and "
                "devices are never opened.",
    fix="Replace the link by the file itself (or remove it).", family=F)
LOG_UNREADABLE = rule(
    "SUB008", "log-unreadable", "error", "A .log file is binary or unreadable",
    explanation="A log must be the text the script printed; binary content cannot back a claim.",
    fix="Ship the text log written by the run.", family=F)
NO_FINAL_METRIC = rule(
    "SUB009", "log-without-final-metric", "warning", "A log has no final val_bpb metric",
    explanation="A run log that ends before its final evaluation produced no score. It is an error "
                "only when no log at all backs the score (SUB003); a summary or an aborted run next to "
                "complete logs is reported as a warning.",
    fix="Ship the complete log of the run, including its final evaluation lines.", family=F)
LOG_TRUNCATED_LINES = rule(
    "SUB040", "log-long-lines", "info", "Over-long log lines were skipped",
    explanation="Lines longer than the parser's cap are skipped (bounded memory); numbers on them "
                "were not read.",
    fix="Nothing to fix unless a needed line was skipped.", family=F)
NOT_A_RECORD = rule(
    "SUB042", "not-a-record-folder", "warning", "The folder holds only logs: not a record folder",
    explanation="A record folder ships README.md, submission.json, the code and its logs. A folder "
                "with logs and nothing else is a stray folder (e.g. a leftover run); it is said once and "
                "not audited as a record.",
    fix="Remove the stray folder, or complete it into a record folder.", family=F)
FILE_NAMING = rule(
    "SUB043", "file-naming", "warning", "A record file is shipped under another name than the challenge's",
    explanation="The challenge's tools look for submission.json and train_gpt.py; the audit finds "
                "`submission_x.json`, `train_gpt_v5.py` or a stub that execs another file, audits "
                "them, and reports the naming.",
    fix="Ship the files as submission.json and train_gpt.py.", family=F)
LOG_COPY = rule(
    "SUB044", "log-copy", "info", "A log is a copy of another log (one run, not an extra seed)",
    explanation="`train.log` is often a byte copy of one seed's log. Copies are counted once.",
    fix="Nothing to fix.", family=F)


def check(facts: "RecordFacts") -> list[Finding]:
    if facts.not_a_record:
        return _stray(facts)
    out = list(facts.load_findings)
    rec = facts.folder
    if rec.readme is None:
        out.append(MISSING_README.finding("no README.md in the record folder", {"folder": str(rec.root)}))
    if rec.submission_json is None:
        out.append(MISSING_SUBMISSION.finding("no submission.json in the record folder", {"folder": str(rec.root)}))
    elif facts.sub is not None:
        from audit.submission.record import check_schema

        out.extend(check_schema(facts.sub, facts.sub_rel))
    if facts.code is None:
        sev = Severity.WARNING if facts.allow_missing_code else None
        msg = "train_gpt.py is not shipped" + (
            " (--allow-missing-code: code checks skipped)" if facts.allow_missing_code else "")
        out.append(MISSING_CODE.finding(msg, {"folder": str(rec.root), "other_py": [rec.rel(p) for p in rec.other_py]},
                                        severity=sev))
    else:
        out.extend(_code_parse(facts))
    for note in rec.naming:
        out.append(FILE_NAMING.finding(f"{note}; audited as such", {"note": note}))
    if facts.code is not None and facts.code.stub:
        out.append(FILE_NAMING.finding(
            f"{facts.code.stub} is a stub that execs {facts.code.rel} ({facts.code.size:,} bytes); "
            f"{facts.code.rel} is audited as the code", {"stub": facts.code.stub, "code": facts.code.rel},
            severity=Severity.INFO, file=facts.code.stub, line=1))
    out.extend(_logs(facts))
    return out


def _stray(facts: "RecordFacts") -> list[Finding]:
    rec = facts.folder
    names = [rec.rel(p) for p in rec.logs]
    size = sum(lg.size for lg in facts.logs)
    return [NOT_A_RECORD.finding(
        f"holds only {', '.join(names)} ({size:,} bytes of logs); no README.md, submission.json or code: "
        f"not a record folder", {"logs": names, "folder": str(rec.root)})]


def _code_parse(facts: "RecordFacts") -> list[Finding]:
    from audit.submission.checks.legality import CODE_NOT_ANALYSED, CODE_SYNTAX

    ca, rel = facts.code.analysis, facts.code.rel
    if ca.syntax_error:
        return [CODE_SYNTAX.finding(f"{rel} does not parse: {ca.syntax_error}", {"error": ca.syntax_error},
                                    file=rel, line=ca.syntax_line)]
    if ca.not_analysed:
        return [CODE_NOT_ANALYSED.finding(f"{rel} not analysed: {ca.not_analysed}", {"reason": ca.not_analysed},
                                          file=rel)]
    return []


def _logs(facts: "RecordFacts") -> list[Finding]:
    out: list[Finding] = []
    for rel, why in facts.unreadable:
        out.append(LOG_UNREADABLE.finding(f"{rel} cannot be read: {why}", {"log": rel}, file=rel))
    for lg in facts.logs:
        if lg.binary:
            out.append(LOG_UNREADABLE.finding(f"{lg.name} is binary, not a text log", {"log": lg.name}, file=lg.name))
            continue
        if lg.long_lines:
            out.append(LOG_TRUNCATED_LINES.finding(
                f"{lg.name}: {lg.long_lines} line(s) longer than the parser's cap were skipped",
                {"log": lg.name, "long_lines": lg.long_lines}, file=lg.name))
        if not lg.metrics and (lg.training_seen or lg.name.endswith(".log")):
            out.append(NO_FINAL_METRIC.finding(
                f"{lg.name} has no final val_bpb metric ({lg.lines:,} lines read"
                f"{', training ran' if lg.training_seen else ', not a run log'})",
                {"log": lg.name, "lines": lg.lines}, file=lg.name))
    for copy, orig in facts.copies:
        out.append(LOG_COPY.finding(f"{copy} is a copy of {orig} (the same run): counted once",
                                    {"copy": copy, "original": orig}, file=copy))
    if not facts.runs:
        what = "no train log (*.log, or *.txt with log content) in the record folder" if not facts.logs else \
            f"no log with a final val_bpb metric ({', '.join(lg.name for lg in facts.logs)[:200]})"
        out.append(MISSING_LOG.finding(what, {"folder": str(facts.folder.root)}))
    return out
