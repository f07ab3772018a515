"""Output a reviewer acts on: verdict lines, formats as peers, SARIF schema, annotation cap, policy,
the PR comment, plots, readable text, and escaping of untrusted text (terminal markup, workflow
commands, Markdown)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from audit.cli import cli
from audit.cli.common import run_guarded
from audit.report import Report, Table
from audit.reporting import render
from audit.reporting.comment import MAX_LINES_PER_RECORD
from audit.reporting.github import MAX_PER_LEVEL, report_annotations
from audit.reporting.summary import summary_line
from audit.reporting.text import fmt_value, show_text, text_diff, truncate_middle
from audit.rules import catalogue
from record_factory import GOOD_README, make_record

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "tests" / "data" / "sarif-schema-2.1.0.json"
ANSI = re.compile(r"\x1b\[")


def run(argv):
    return run_guarded(cli, argv)


def _rule(rule_id):
    return catalogue()[rule_id]


def _report(n_errors=2, n_warnings=1, subject="records/track_10min_16mb/2026-05-02_bad", verdict="invalid"):
    r = Report(kind="submission", subject=subject, verdict=verdict)
    for i in range(n_errors):
        r.add(_rule("SUB014").finding(f"train_seed{i}.log: 810.4 s used of 600 s", {"used_s": 810.4},
                                      file=f"train_seed{i}.log", line=64 + i))
    for i in range(n_warnings):
        r.add(_rule("SUB019").finding(f"seed {i} looks throttled: 3,933 steps vs 6,294", file="README.md", line=3))
    r.add(_rule("SUB037").finding("no --sota given"))
    r.summary = {"seeds": 3, "mean val_bpb (logs)": 1.0805, "artifact bytes (max)": 15_952_700.0,
                 "reserved": None}
    r.tables.append(Table("Per-seed", ["seed", "steps", "val_bpb", "note"],
                          [[1337, 6294, 1.0801, None], [42, 3933, 1.0805, "throttled"]]))
    return r


# --- 1. verdict first and last ---------------------------------------------------------------------

def test_terminal_starts_and_ends_with_the_verdict_lines(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # piped output of an 80-column terminal
    make_record(tmp_path / "recs", "a_good")
    make_record(tmp_path / "recs", "b_bad", readme=GOOD_README.format(mean=1.08) + "\nNo TTT.\n")
    assert run(["submission", str(tmp_path / "recs")]) == 1
    lines = capsys.readouterr().out.rstrip("\n").split("\n")
    assert lines[0].endswith("a_good: record — 0 errors, 0 warnings")
    assert lines[-2].endswith("a_good: record — 0 errors, 0 warnings")
    assert lines[-1].endswith("b_bad: invalid — 1 error, 0 warnings (SUB022)")
    assert any(ln.endswith("b_bad: invalid — 1 error, 0 warnings (SUB022)") for ln in lines[1:-2])
    assert not any(ANSI.search(ln) for ln in lines)  # piped: no colour
    assert max(len(ln) for ln in lines) <= 80  # nothing cut, nothing wider than the terminal


def test_quiet_prints_only_the_verdict_lines(tmp_path, capsys):
    make_record(tmp_path / "recs", "a_good")
    make_record(tmp_path / "recs", "b_bad", readme=GOOD_README.format(mean=1.08) + "\nNo TTT.\n")
    assert run(["submission", str(tmp_path / "recs"), "-q"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert out[0].endswith("a_good: record — 0 errors, 0 warnings")
    assert out[1].endswith("b_bad: invalid — 1 error, 0 warnings (SUB022)")


def test_summary_line_fits_80_columns_and_names_rules():
    r = _report(n_errors=3, n_warnings=2, subject="records/track_10min_16mb/" + "x" * 90)
    line = summary_line(r, width=80)
    assert len(line) <= 80
    assert ": invalid — 3 errors, 2 warnings (SUB014" in line and "…" in line
    assert line.startswith("records/track_10m") and line.split(":")[0].endswith("xxxx")


def test_colour_only_on_a_terminal_and_no_color_wins(monkeypatch):
    from audit.cli.common import use_color

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    assert use_color(Tty()) and not use_color(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(Tty())
    r = [_report()]
    assert ANSI.search(render("terminal", r, color=True))
    assert not ANSI.search(render("terminal", r, color=False))


# --- 2. formats ------------------------------------------------------------------------------------

def test_every_format_renders_the_same_reports(tmp_path):
    reps = [_report()]
    doc = json.loads(render("json", reps))
    assert doc["reports"][0]["findings"][0]["file"] == "train_seed0.log"
    assert doc["reports"][0]["findings"][0]["line"] == 64
    md = render("markdown", reps, title="Submission audit")
    assert "`train_seed0.log:64`" in md and "| reserved | — |" in md and "15,952,700" in md
    gh = render("github", reps).splitlines()
    assert gh[0].startswith("::error file=records/track_10min_16mb/2026-05-02_bad/train_seed0.log,line=64,"
                            "title=SUB014 ")
    term = render("terminal", reps)
    assert "None" not in term and "15,952,700" in term and "1.59527e+07" not in term
    assert "1337" in term and "1,337" not in term  # seeds and ids without separators


def test_format_and_output_options(tmp_path, capsys):
    d = make_record(tmp_path, "rec")
    out = tmp_path / "r.sarif"
    assert run(["submission", str(d), "--format", "sarif", "-o", str(out), "-q"]) == 0
    assert json.loads(out.read_text())["version"] == "2.1.0"
    assert capsys.readouterr().out.strip().endswith("rec: record — 0 errors, 0 warnings")
    assert run(["submission", str(d), "--format", "json"]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["reports"][0]["verdict"] == "record"  # stdout is the JSON alone
    assert "rec: record" in cap.err  # the verdict line moves to stderr
    md, js = tmp_path / "r.md", tmp_path / "r.json"
    assert run(["submission", str(d), "--json", str(js), "--markdown", str(md), "-q"]) == 0
    assert json.loads(js.read_text())["exit_code"] == 0 and "record" in md.read_text()


def test_sarif_is_valid_against_the_published_schema(tmp_path):
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is part of the [dev] extra")
    schema = json.loads(SCHEMA.read_text())
    d = make_record(tmp_path / "records" / "track_10min_16mb", "2026-05-02_bad",
                    readme=GOOD_README.format(mean=1.08) + "\nNo TTT here.\n")
    from audit.submission import audit_paths

    reps = audit_paths([d]) + [_report(subject="rec with space/[x]")]
    doc = json.loads(render("sarif", reps))
    jsonschema.Draft4Validator(schema).validate(doc)
    run_ = doc["runs"][0]
    rules = {r["id"]: r for r in run_["tool"]["driver"]["rules"]}
    assert rules["SUB014"]["defaultConfiguration"]["level"] == "error"
    assert rules["SUB014"]["help"]["text"] and rules["SUB014"]["shortDescription"]["text"]
    res = next(x for x in run_["results"] if x["ruleId"] == "SUB014" and "train_seed0" in x["message"]["text"])
    loc = res["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == "rec%20with%20space/%5Bx%5D/train_seed0.log"
    assert loc["region"] == {"startLine": 64}
    assert all(x["ruleIndex"] == list(rules).index(x["ruleId"]) for x in run_["results"])
    # the schema check can fail: a result without a message is rejected
    bad = json.loads(json.dumps(doc))
    del bad["runs"][0]["results"][0]["message"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema).validate(bad)


# --- 4. GitHub annotations and the PR comment -----------------------------------------------------

def test_annotations_capped_at_ten_per_level_with_a_notice():
    r = _report(n_errors=13, n_warnings=12)
    lines = report_annotations(r)
    assert sum(ln.startswith("::error ") for ln in lines) == MAX_PER_LEVEL
    assert sum(ln.startswith("::warning ") for ln in lines) == MAX_PER_LEVEL
    notice = [ln for ln in lines if ln.startswith("::notice ")]
    assert len(notice) == 1 and "3 more error(s) and 2 more warning(s)" in notice[0]
    assert all("line=" in ln and "title=SUB0" in ln for ln in lines if not ln.startswith("::notice"))


def test_comment_is_short_per_record():
    reps = [_report(n_errors=13, n_warnings=12), _report(0, 0, subject="records/t/ok", verdict="record")]
    text = render("comment", reps)
    blocks = [b for b in text.split("\n\n") if b.strip()]
    per_record = [b for b in blocks if "records/" in b.splitlines()[0]]
    assert len(per_record) == 2
    for b in per_record:
        assert len(b.splitlines()) <= MAX_LINES_PER_RECORD
    first = per_record[0].splitlines()
    assert "**invalid** — 13 errors, 12 warnings" in first[0]
    assert "mean val_bpb (logs) **1.0805** · 3 seed(s)" in first[1]
    assert any("**SUB014** train_seed0.log: 810.4 s used of 600 s (`train_seed0.log:64`) (+12 more like it)" in ln
               for ln in first)
    assert first[-1].endswith("(+11 more like it)")
    many = Report(kind="submission", subject="records/t/many", verdict="invalid")
    ids = [r.id for r in catalogue().values() if r.severity.value == "error"][:12]
    for i in ids:
        many.add(catalogue()[i].finding(f"problem {i}"))
    lines = render("comment", [many]).strip().splitlines()[3:]
    assert len(lines) <= MAX_LINES_PER_RECORD and lines[-1].startswith("- … 5 more in the job summary")
    assert "http" not in text


# --- 3. policy -------------------------------------------------------------------------------------

def _bad_record(tmp_path):
    return make_record(tmp_path / "recs", "b_bad", readme=GOOD_README.format(mean=1.08) + "\nNo TTT.\n")


def test_select_ignore_exit_zero(tmp_path, capsys):
    d = _bad_record(tmp_path)
    assert run(["submission", str(d), "-q"]) == 1
    assert run(["submission", str(d), "-q", "--ignore", "SUB022"]) == 0
    assert run(["submission", str(d), "-q", "--ignore", "SUB02"]) == 0  # a prefix
    assert run(["submission", str(d), "-q", "--select", "SUB01,TOK"]) == 0
    assert run(["submission", str(d), "-q", "--select", "SUB022"]) == 1
    assert run(["submission", str(d), "-q", "--exit-zero"]) == 0
    out = capsys.readouterr().out
    assert "b_bad: invalid — 1 error" in out.splitlines()[-1]  # --exit-zero still reports it
    js = tmp_path / "r.json"
    assert run(["submission", str(d), "-q", "--ignore", "SUB022", "--json", str(js)]) == 0
    rep = json.loads(js.read_text())["reports"][0]
    assert "SUB022" not in {f["rule"] for f in rep["findings"]} and rep["summary"]["ignored by policy"]


def test_unknown_selector_is_an_input_error(tmp_path, capsys):
    d = make_record(tmp_path, "rec")
    assert run(["submission", str(d), "--ignore", "SUBX99"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --ignore: 'SUBX99' matches no rule id") and "\n" not in err


@pytest.mark.parametrize("name,text", [
    ("golfcheck.toml", 'ignore = ["SUB022"]\n'),
    ("pyproject.toml", '[project]\nname = "x"\n\n[tool.golfcheck]\nignore = ["SUB022"]\n'),
])
def test_policy_file_found_upward(tmp_path, name, text):
    d = _bad_record(tmp_path)
    (tmp_path / name).write_text(text)
    assert run(["submission", str(d), "-q"]) == 0
    assert run(["submission", str(d), "-q", "--ignore", "SUB014"]) == 1  # the command line replaces it


def test_policy_file_errors_name_the_file(tmp_path, capsys):
    d = make_record(tmp_path, "rec")
    (tmp_path / "golfcheck.toml").write_text('ignore = ["SUB022"]\nexit_zeroo = true\n')
    assert run(["submission", str(d), "-q"]) == 2
    err = capsys.readouterr().err
    assert "golfcheck.toml: unknown setting(s) exit_zeroo" in err
    (tmp_path / "golfcheck.toml").write_text('exit-zero = "yes"\n')
    assert run(["submission", str(d), "-q"]) == 2
    (tmp_path / "golfcheck.toml").write_text("select = [\n")
    assert run(["submission", str(d), "-q"]) == 2
    assert "not valid TOML" in capsys.readouterr().err


# --- 8. readable text ------------------------------------------------------------------------------

def test_text_diff_names_the_differing_characters():
    lines = text_diff("Ma\u0308dchen", "M\xe4dchen", labels=("decoded", "source"))
    assert lines[0] == "decoded: Ma\u0308dchen" and lines[1] == "source:  M\xe4dchen"
    assert lines[2].index("^") == len("decoded: M") and "character 1" in lines[2]
    assert lines[3] == ("decoded has U+0061 LATIN SMALL LETTER A, U+0308 COMBINING DIAERESIS where source "
                        "has U+00E4 LATIN SMALL LETTER A WITH DIAERESIS")
    raw = text_diff(b"ab\xffc\n", b"ab\xfec\n")
    assert "\\xff" in raw[0] and "\\\\x" not in raw[0] and "\\x0a" in raw[0]  # escaped once
    assert "byte 0xFF (not UTF-8)" in raw[3]


def test_values_are_readable():
    assert fmt_value(None) == "—" and fmt_value(float("nan")) == "—"
    assert fmt_value(15952700.0) == "15,952,700" and fmt_value(15_952_700) == "15,952,700"
    assert fmt_value(1337, "seed") == "1337" and fmt_value(75, "id") == "75" and fmt_value(1337, "seeds") == "1337"
    assert fmt_value(3933, "steps") == "3,933"
    assert fmt_value(1.08012345) == "1.08012345" and fmt_value(0.5) == "0.5"
    assert show_text("a\nb\x1b[31m") == "a\\x0ab\\x1b[31m"
    assert truncate_middle("records/track_10min_16mb/2026-05-02_a_very_long_record_name", 30) == \
        "records/track_…ong_record_name"
    assert len(truncate_middle("x" * 100, 30)) == 30


def test_markdown_escapes_html_and_mentions():
    r = _report(1, 0)
    r.findings[0].message = "<img src=x onerror=alert(1)> ping @octocat | col"
    md = render("markdown", [r])
    assert "<img" not in md and "&lt;img" in md and "@octocat" not in md and "\\| col" in md


# --- 5. plots --------------------------------------------------------------------------------------

def test_plots_written_and_embedded(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is the optional [plots] extra")
    from audit.plots import plot_seed_curves, write_report_plots

    tok = Report(kind="tokenizer", subject="cand.meta.npz")
    tok.tables.append(Table("Drift by id (meta − canonical; top 3 of 3)",
                            ["id", "piece", "class", "occurrences", "base drift", "leading-space drift",
                             "boundary drift (as previous token)", "total"],
                            [[75, "<0x00>", "byte", 10, 20, 0, 0, 20], [76, "<0x01>", "byte", 5, 10, 0, 0, 10],
                             [300, "▁the", "normal", 2, -2, 0, 0, -2]]))
    tok.tables.append(Table("Drift by class", ["class", "ids", "occurrences", "bytes"],
                            [["byte", 2, 15, 30], ["normal", 1, 2, -2], ["decoder context (not per id)", "", "", 3]]))
    tok.plot_data["doc_drift"] = [0] * 90 + [2, 3, -1] * 3 + [40]
    sub = Report(kind="submission", subject="records/t/x")
    sub.plot_data["seed_curves"] = {
        "seed 42": {"val_bpb": [(1000, 1.3), (3933, 1.12)], "train_loss_vs_time": [(0, 6.0), (300, 3.1), (600, 2.9)]},
        "seed 1337": {"val_bpb": [(1000, 1.3), (6294, 1.08)], "train_loss_vs_time": [(0, 6.0), (600, 2.7)]},
    }
    ps = write_report_plots([tok, sub], tmp_path / "plots")
    assert ps.count == 4
    for imgs in ps.images.values():
        for _, png in imgs:
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000
            assert png.with_suffix(".svg").read_text().lstrip().startswith("<?xml")
    md = render("markdown", [tok, sub], plots=ps.relative_to_file(tmp_path / "report.md"))
    assert md.count("](plots/") == 4
    files = plot_seed_curves({"s": {"val_bpb": [(1, 2.0)]}}, tmp_path / "one", stem="only-bpb")
    assert [f.name for f in files] == ["only-bpb.png", "only-bpb.svg"]


def test_plots_option_without_matplotlib_is_a_note(tmp_path, capsys, monkeypatch):
    import audit.plots

    monkeypatch.setattr(audit.plots, "available", lambda: False)
    d = make_record(tmp_path, "rec")
    assert run(["submission", str(d), "-q", "--plots", str(tmp_path / "p")]) == 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("note: --plots needs matplotlib: pip install 'golfcheck[plots]'") and "\n" not in err
    assert not (tmp_path / "p").exists()


def test_plots_through_the_cli(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="matplotlib is the optional [plots] extra")
    d = make_record(tmp_path, "rec")
    md = tmp_path / "out" / "r.md"
    assert run(["submission", str(d), "-q", "--plots", str(tmp_path / "out" / "plots"), "--markdown", str(md)]) == 0
    assert md.exists()  # a submission without curve data writes no image and still writes the report


# --- start-up cost, trainer help -------------------------------------------------------------------

def test_audit_help_imports_neither_numpy_nor_torch():
    code = ("import sys\nfrom audit.cli import cli\n"
            "try:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
            "for sub in ('submission', 'tokenizer', 'ci', 'rules'):\n"
            "    try:\n        cli.main([sub, '--help'], standalone_mode=False)\n    except SystemExit:\n        pass\n"
            "bad = [m for m in ('numpy', 'torch', 'matplotlib', 'rich') if m in sys.modules]\n"
            "print('HEAVY', bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert "HEAVY []" in out, out[-500:]


def test_trainer_help_and_no_torch_message(tmp_path):
    h = subprocess.run([sys.executable, "-m", "trainer.cli", "-h"], capture_output=True, text=True, cwd=ROOT)
    assert h.returncode == 0 and "run" in h.stdout
    r = subprocess.run([sys.executable, "-m", "trainer.cli", "run", "-h"], capture_output=True, text=True, cwd=ROOT)
    assert "--seed INTEGER" in r.stdout and "Random seed" in r.stdout
    code = "import sys; sys.modules['torch'] = None; from trainer.cli import main; main(['show-config'])"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 2
    assert p.stderr.strip() == ("error: the trainer needs torch, which the audit-only install leaves out: "
                                "pip install 'golfcheck[trainer]' (or `make venv` in a checkout)")


def test_tokenizer_audit_diff_names_characters_and_keeps_doc_drift(tmp_path):
    import numpy as np

    from audit.formats.shards import write_shard
    from audit.tokenizer_audit import audit_tokenizer
    from audit.tokenizers.sentencepiece_model import SentencePieceTokenizer
    from conftest import shared_path

    model = shared_path("tokenizers", "sp1024", "fineweb_1024_bpe.model")
    tok = SentencePieceTokenizer.load(model)
    texts = ["Das M\xe4dchen liest ein Buch.", "Hello world, again.", "Noch ein M\xe4dchen."]
    stream = np.array([x for t in texts for x in [1] + tok.encode(t)], np.uint16)
    write_shard(tmp_path / "val.bin", stream)
    tok.canonical_meta().save(tmp_path / "c.meta.npz")
    src = tmp_path / "texts"
    src.mkdir()
    for k, t in enumerate(texts):  # document 0's source spells ä as a + combining diaeresis (NFD)
        (src / f"{k:05d}.txt").write_text(t.replace("\xe4", "a\u0308") if k == 0 else t, encoding="utf-8")
    (rep,) = audit_tokenizer(str(tmp_path / "c.meta.npz"), tokenizer=str(model), val=str(tmp_path / "val.bin"),
                             source=str(src))
    (f,) = [x for x in rep.findings if x.rule_id == "TOK014"]
    assert ("decoded has U+00E4 LATIN SMALL LETTER A WITH DIAERESIS where source has "
            "U+0061 LATIN SMALL LETTER A, U+0308 COMBINING DIAERESIS") in f.message
    assert "\\u0308" not in f.message and "\\xe4" not in f.message
    term = render("terminal", [rep])
    assert "decoded: Das Mädchen" in term and "^ first difference" in term
    assert list(rep.plot_data["doc_drift"]) == [-1, 0, 0]  # NFD spends one more byte in document 0


def test_counts_keep_separators_identifiers_do_not():
    assert fmt_value(50000, "docs") == "50,000" and fmt_value(1200, "ids") == "1,200"
    assert fmt_value(50000, "doc") == "50000" and fmt_value(1024, "line") == "1024"
    assert fmt_value([42, 1337], "seeds") == "42, 1337" and fmt_value(8191, "token id") == "8191"
