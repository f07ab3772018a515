"""docs/rules.md is generated from the catalogue; it must not drift."""

from pathlib import Path

from audit.cli.rules import render_rules_markdown
from audit.rules import catalogue

ROOT = Path(__file__).resolve().parents[1]


def test_rules_doc_in_sync():
    doc = ROOT / "docs" / "rules.md"
    expected = render_rules_markdown(list(catalogue().values()))
    assert doc.read_text(encoding="utf-8") == expected, "run `make docs` to regenerate docs/rules.md"


def test_every_family_has_rules():
    fams = {r.family for r in catalogue().values()}
    assert {"tokenizer", "tokenmonster", "submission", "gate"} <= fams
