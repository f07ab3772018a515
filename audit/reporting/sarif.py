"""SARIF 2.1.0 writer, for GitHub code scanning (`github/codeql-action/upload-sarif`).

One run for the whole invocation: the tool's driver lists the rules that fired (id, name,
summary, explanation, fix, default level, family), each result points at its rule and, where the
finding came from a file, at that file and line (relative to the repository root, the working
directory of the workflow). Findings not drawn from a file point at the audited thing itself.
Validated in the tests against the OASIS 2.1.0 schema (errata 01), shipped as test data.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote

from audit import __version__
from audit.report import Report
from audit.reporting.github import finding_path, relative_to_cwd
from audit.rules import Finding, Rule, Severity, lookup

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def _uri(path: str) -> str:
    return quote(path.replace("\\", "/"), safe="/._-~")


def _rule_descriptor(rule_id: str, f: Finding, rule: Rule | None) -> dict[str, Any]:
    if rule is None:  # a rule id the catalogue does not know (should not happen; stay valid)
        return {"id": rule_id, "name": f.rule_name, "shortDescription": {"text": f.rule_name},
                "defaultConfiguration": {"level": _LEVEL[f.severity]}}
    return {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.explanation},
        "help": {"text": f"{rule.explanation}\n\nFix: {rule.fix}",
                 "markdown": f"{rule.explanation}\n\n**Fix:** {rule.fix}"},
        "defaultConfiguration": {"level": _LEVEL[rule.severity]},
        "properties": {"tags": [rule.family], "family": rule.family},
    }


def _location(f: Finding, r: Report) -> dict[str, Any]:
    file, line = finding_path(f, r.subject)
    phys: dict[str, Any] = {"artifactLocation": {"uri": _uri(file or relative_to_cwd(r.subject))}}
    if file and line:
        phys["region"] = {"startLine": int(line)}
    loc: dict[str, Any] = {"physicalLocation": phys}
    if f.location and not f.file:
        loc["message"] = {"text": f.location}
    return loc


def _fingerprint(f: Finding, r: Report) -> str:
    # Stable across runs for the same problem in the same place, so code scanning can track it.
    key = "\0".join([r.subject, f.rule_id, f.file or "", str(f.line or ""), f.message])
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def to_sarif(reports: list[Report]) -> dict[str, Any]:
    from audit.reporting.jsonfmt import plain

    rule_index: dict[str, int] = {}
    rules: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for r in reports:
        for f in r.sorted_findings():
            if f.rule_id not in rule_index:
                rule_index[f.rule_id] = len(rules)
                rules.append(_rule_descriptor(f.rule_id, f, lookup(f.rule_id)))
            res: dict[str, Any] = {
                "ruleId": f.rule_id,
                "ruleIndex": rule_index[f.rule_id],
                "level": _LEVEL[f.severity],
                "message": {"text": f.message or f.rule_name},
                "locations": [_location(f, r)],
                "partialFingerprints": {"golfcheckFinding/v1": _fingerprint(f, r)},
                "properties": {"subject": r.subject, "verdict": r.final_verdict,
                               "evidence": plain(f.evidence), "fix": f.fix},
            }
            results.append(res)
    run = {
        "tool": {"driver": {"name": "golfcheck", "version": __version__, "semanticVersion": __version__,
                            "rules": rules}},
        "columnKind": "unicodeCodePoints",
        "results": results,
        "properties": {"verdicts": {r.subject: r.final_verdict for r in reports}},
    }
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def format(reports: list[Report], **_: Any) -> str:
    return json.dumps(to_sarif(reports), indent=2, ensure_ascii=False) + "\n"
