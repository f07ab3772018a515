"""Every submission rule (SUB0xx) with a failing and a passing synthetic record folder."""

from __future__ import annotations

import json
import os

import pytest

from audit.rules import Severity, catalogue
from audit.submission import audit_submission
from record_factory import GOOD_README, code_with, log_text, make_record

NGRAM_BEFORE = '''
def eval_with_cache(model, chunks, ngram_cache):
    total = 0.0
    for chunk in chunks:
        ngram_cache.update(chunk)
        with torch.no_grad():
            loss = model(chunk)
            total += float(loss)
    return total
'''
NGRAM_AFTER = NGRAM_BEFORE.replace("        ngram_cache.update(chunk)\n", "").replace(
    "            total += float(loss)\n", "            total += float(loss)\n        ngram_cache.update(chunk)\n")
TWO_PASS_FN = '''
def eval_two_pass(model, chunks, opt):
    for chunk in chunks:
        with torch.no_grad():
            loss = model(chunk)
        loss2 = model(chunk)
        loss2.backward()
        opt.step()
    total = 0.0
    for chunk in chunks:
        with torch.no_grad():
            total += float(model(chunk))
    return total
'''
SLOT_FN = '''
def slot_optimize(model, chunk):
    delta = torch.zeros(1, requires_grad=True)
    return delta
'''
PREQ_FN = '''
def pre_quant_ttt(model, val_tokens):
    return model
'''


def audit(d, **kw):
    return audit_submission(d, **kw)


def ids(rep, severity=None):
    return {f.rule_id for f in rep.findings if severity is None or f.severity is Severity(severity)}


def readme_with(extra: str) -> str:
    return GOOD_README.format(mean=1.0805) + "\n" + extra + "\n"


# (rule id, failing options, passing options). Passing options default to the good record.
CASES = {
    "SUB001": (dict(extra_files={}), None),
    "SUB002": (None, None),
    "SUB003": (dict(missing_logs=(2026,)), None),
    "SUB004": (dict(ship_code=False), None),
    "SUB005": (dict(), None),
    "SUB006": (dict(drop_keys=("github_id",)), None),
    "SUB008": (dict(extra_files={"train_seed7.log": bytes(range(256)) * 40}), None),
    "SUB009": (dict(per_seed={2026: {"final": False}}), None),
    "SUB010": (dict(log_options={"model_bytes": 15_999_000}), dict(log_options={"model_bytes": 15_950_000})),
    "SUB011": (dict(code_bytes_override=12345), None),
    "SUB012": (dict(per_seed={42: {"total_bytes": 15_000_000}}), None),
    "SUB013": (dict(per_seed={42: {"train_ms": 612_000, "reserve_s": None, "post_work": []}}),
               dict(per_seed={42: {"train_ms": 599_950, "reserve_s": None, "post_work": []}})),
    "SUB014": (dict(log_options={"train_ms": 599_800, "reserve_s": None,
                                 "post_work": ["gptq:generated 64 sequences in 210619ms"]}),
               dict(log_options={"train_ms": 588_000, "reserve_s": 12,
                                 "post_work": ["gptq:generated 64 sequences in 11500ms"]})),
    "SUB015": (dict(log_options={"eval_ms": (20_000, 150_000, 450_000)}), None),
    "SUB016": (dict(submission={"seed_results": {"42": {"val_bpb": 1.07}, "1337": {"val_bpb": 1.0805},
                                                 "2026": {"val_bpb": 1.0809}}}), None),
    "SUB017": (dict(submission={"val_bpb": 1.0790, "val_bpb_std": 0.0001}), None),
    "SUB018": (dict(log_options={"dup_label": True}), None),
    "SUB019": (dict(per_seed={2026: {"step_ms": 152.58, "steps": 3933, "value": 1.0870}}),
               dict(per_seed={2026: {"step_ms": 95.0, "steps": 6200}})),
    "SUB020": (dict(), None),
    "SUB022": (dict(readme=readme_with("No TTT: plain sliding-window evaluation.")), None),
    "SUB023": (dict(readme=readme_with("").replace("Brotli-11", "LZMA-9"),
                    code=code_with(replace={"brotli.compress(blob, quality=args.brotli_quality)":
                                            "lzma.compress(blob, preset=6)", "import brotli": "import lzma"}),
                    log_options={"compressor": "lzma"}),
               dict(readme=readme_with("").replace("Brotli-11", "LZMA-6"),
                    code=code_with(replace={"brotli.compress(blob, quality=args.brotli_quality)":
                                            "lzma.compress(blob, preset=6)", "import brotli": "import lzma"}),
                    log_options={"compressor": "lzma"})),
    "SUB024": (dict(readme=readme_with("- SWA over the last 10% of steps."),
                    code=code_with(extra_hp='    swa_enabled = bool(int(os.environ.get("SWA_ENABLED", "0")))')),
               dict(readme=readme_with("- SWA over the last 10% of steps."),
                    code=code_with(extra_hp='    swa_enabled = bool(int(os.environ.get("SWA_ENABLED", "0")))'),
                    log_options={"extra_lines": ["swa:start step:6000"]})),
    "SUB025": (dict(code=code_with(extra_funcs=TWO_PASS_FN)), None),
    "SUB026": (dict(code=code_with(extra_funcs=NGRAM_BEFORE)), None),
    "SUB027": (dict(code=code_with(extra_funcs=SLOT_FN,
                                   extra_hp='    slot_enabled = bool(int(os.environ.get("SLOT_ENABLED", "1")))')),
               dict(code=code_with(extra_funcs=SLOT_FN,
                                   extra_hp='    slot_enabled = bool(int(os.environ.get("SLOT_ENABLED", "0")))'))),
    "SUB028": (dict(code=code_with(extra_funcs=PREQ_FN)), None),
    "SUB029": (dict(code=code_with(replace={"TokenLoader(args.train_files, args.seed)":
                                            "TokenLoader(args.val_files, args.seed)"})), None),
    "SUB030": (dict(code=code_with(order="train-first")), None),
    "SUB032": (dict(code=code_with() + "\ndef broken(:\n    pass\n"), None),
    "SUB033": (dict(code='import lzma, base64\nexec(lzma.decompress(base64.b85decode("VPb~T")))\n'), None),
    "SUB034": (dict(log_options={"tokenizer_line":
                                 "val_bpb:enabled tokenizer_kind=tokenmonster tokenizer_path=/tmp/x/custom.vocab"}),
               None),
    "SUB036": (dict(seeds=(42, 1337), values=(1.0801, 1.0805)), None),
    "SUB039": (dict(), None),
    "SUB040": (dict(log_options={"extra_lines": ["x" * 70_000]}), None),
    # +4.12 %: the Scylla over-count, seen from the logs alone
    "SUB041": (dict(log_options={"val_tokens": 64_576_000}), None),
    "SUB043": (dict(), None),
    "SUB044": (dict(), None),
    "SUB045": (dict(per_seed={42: {"content_seed": 4242}}), None),
    "SUB046": (dict(log_options={"code_compressed": 2_000}), None),
}


def _build(tmp_path, rid, opts, tag):
    opts = dict(opts or {})
    d = make_record(tmp_path, f"{rid}_{tag}", **opts)
    if rid == "SUB001" and tag == "fail":
        (d / "README.md").unlink()
    if rid == "SUB002" and tag == "fail":
        (d / "submission.json").unlink()
    if rid == "SUB005" and tag == "fail":
        (d / "submission.json").write_text("{\"name\": \"x\", ", encoding="utf-8")
    if rid == "SUB039" and tag == "fail":  # a rerun of seed 42: another run (other step count), same seed
        text = (d / "train_seed42.log").read_text().replace("step:6500/20000", "step:6498/20000")
        (d / "train_seed42_rerun.log").write_text(text)
    if rid == "SUB043" and tag == "fail":
        (d / "train_gpt.py").rename(d / "train_gpt_v5.py")
    if rid == "SUB044" and tag == "fail":
        (d / "train.log").write_bytes((d / "train_seed42.log").read_bytes())
    return d


@pytest.mark.parametrize("rid", sorted(CASES))
def test_rule_fails_and_passes(tmp_path, rid):
    fail_opts, pass_opts = CASES[rid]
    kw = {"sota": 1.0810} if rid == "SUB020" else {}
    bad = audit(_build(tmp_path, rid, fail_opts, "fail"), **kw)
    assert rid in ids(bad), (rid, [(f.rule_id, f.message) for f in bad.findings])
    good = audit(_build(tmp_path, rid, pass_opts, "pass"), **({"sota": 1.1147} if rid == "SUB020" else {}))
    assert rid not in ids(good, "error") and rid not in ids(good, "warning"), (
        rid, [(f.rule_id, f.message) for f in good.findings])
    f = next(f for f in bad.findings if f.rule_id == rid)
    assert f.message and f.fix
    if f.severity is Severity.ERROR:
        assert bad.final_verdict == "invalid"


def test_good_record_is_a_record(tmp_path):
    rep = audit(make_record(tmp_path), sota=1.1147)
    assert rep.final_verdict == "record", [(f.rule_id, f.message) for f in rep.findings]
    assert not rep.errors and not rep.warnings
    assert ids(rep) == {"SUB021", "SUB031"}  # the significance statement and the score-first evidence
    assert rep.summary["seeds"] == 3


def test_every_sub_rule_has_a_case():
    """Rules without a case above are covered by dedicated tests (named here)."""
    dedicated = {"SUB007": "test_symlink_outside", "SUB021": "test_good_record_is_a_record",
                 "SUB042": "test_stray_folder_is_not_a_record",
                 "SUB031": "test_good_record_is_a_record", "SUB035": "test_submission_real",
                 "SUB037": "test_no_sota_is_info", "SUB038": "test_non_record_track"}
    subs = {rid for rid, r in catalogue().items() if r.family == "submission"}
    assert subs - set(CASES) - set(dedicated) == set()


# --- specific evidence -------------------------------------------------------------------------
def test_no_ttt_claim_with_default_one(tmp_path):
    d = make_record(tmp_path, readme=readme_with("No TTT."), ttt=False)
    rep = audit(d)
    f = next(f for f in rep.findings if f.rule_id == "SUB022")
    assert 'TTT_ENABLED' in f.message and "'1'" in f.message and "README.md line" in f.message
    assert f.severity is Severity.WARNING  # the logs show TTT off: the run matches, the default does not
    # same claim, logs show TTT running -> error
    rep2 = audit(make_record(tmp_path, "b", readme=readme_with("No TTT.")))
    assert next(f for f in rep2.findings if f.rule_id == "SUB022").severity is Severity.ERROR


def test_lzma_claim_names_both_levels(tmp_path):
    rep = audit(_build(tmp_path, "SUB023", CASES["SUB023"][0], "fail"))
    f = next(f for f in rep.findings if f.rule_id == "SUB023")
    assert "LZMA-9" in f.message and "level 6" in f.message and "line" in f.message


def test_post_cap_gptq_reports_both_numbers(tmp_path):
    rep = audit(_build(tmp_path, "SUB014", CASES["SUB014"][0], "fail"))
    f = next(f for f in rep.findings if f.rule_id == "SUB014")
    assert f.severity is Severity.ERROR
    assert "599.800 s" in f.message and "210.6 s" in f.message and "no reservation" in f.message
    assert f.evidence["total_s"] == pytest.approx(810.419) and f.file == "train_seed42.log" and f.line


def test_post_cap_work_within_tolerance_is_info(tmp_path):
    """599.6 s + 1.2 s of Hessians: 0.8 s past the cap, as the accepted 2026-04-09 records."""
    d = make_record(tmp_path, log_options={"train_ms": 599_600, "reserve_s": None,
                                           "post_work": ["GPTQ:collected 67 Hessians in 1.2s"]})
    f = next(f for f in audit(d).findings if f.rule_id == "SUB014")
    assert f.severity is Severity.INFO


def test_nested_timings_count_once_and_export_is_not_counted(tmp_path):
    work = ["gptq:generated 64 sequences in 5.0s", "gptq:done in 5.5s",
            "GPTQ:quantized in 40.0s", "GPTQ:compressed+saved in 60.0s"]
    d = make_record(tmp_path, log_options={"train_ms": 590_000, "reserve_s": 10, "post_work": work})
    rep = audit(d)
    assert "SUB014" not in ids(rep)  # 590 + 5.5 = 595.5 s; the 100 s of export are reported only
    assert rep.summary["export, not counted (max)"] == "100.0 s"
    assert rep.summary["train + artifact work (max)"] == "595.5 s"


def test_non_record_track_is_not_held_to_the_caps(tmp_path):
    d = make_record(tmp_path / "records" / "track_non_record_16mb", per_seed={42: {"train_ms": 700_000,
                                                                                  "reserve_s": None}})
    rep = audit(d)
    over = [f for f in rep.findings if f.rule_id in ("SUB013", "SUB014")]
    assert not rep.errors and over and all(f.severity is Severity.INFO for f in over)


def test_stray_folder_is_not_a_record(tmp_path):
    d = tmp_path / "stray"
    d.mkdir()
    (d / "train.log").write_text(log_text(seed=1, value=1.1, code_bytes=100))
    rep = audit(d)
    assert rep.final_verdict == "not a record folder" and ids(rep) == {"SUB042"}
    assert "train.log" in rep.findings[0].message


def test_best_seed_reported_error_unless_disclosed(tmp_path):
    vals = (1.0801, 1.0805, 1.0809)
    lying = GOOD_README.format(mean=1.0801)  # the README calls the best seed "the 3-seed mean"
    d = make_record(tmp_path, "undisclosed", values=vals, readme=lying, submission={"val_bpb": 1.0801,
                                                                                      "seed_results": {}})
    f = next(f for f in audit(d).findings if f.rule_id == "SUB017")
    assert f.severity is Severity.ERROR and "seed 42's value" in f.message
    readme = lying + "\nSubmitted: seed 42 (best of three).\n"
    d2 = make_record(tmp_path, "disclosed", values=vals, readme=readme, submission={"val_bpb": 1.0801,
                                                                                      "seed_results": {}})
    f2 = next(f for f in audit(d2).findings if f.rule_id == "SUB017")
    assert f2.severity is Severity.WARNING and "1.08050000" in f2.message


def test_seeds_as_dict_is_accepted(tmp_path):
    d = make_record(tmp_path, submission={"seeds": {"42": {}, "1337": {}, "2026": {}}})
    assert "SUB006" not in ids(audit(d))


def test_denominator_names_subset_and_corrected_score(tmp_path):
    d = make_record(tmp_path, log_options={"val_tokens": round(62_021_632 * 0.198)})
    f = next(f for f in audit(d).findings if f.rule_id == "SUB041")
    assert f.severity is Severity.ERROR and "10,000-document" in f.message
    assert f.evidence["ratio"] == pytest.approx(0.198, abs=1e-3)
    assert f.evidence["corrected_bpb"] == pytest.approx(f.evidence["claimed_bpb"] * f.evidence["ratio"])


def test_denominator_mixed_units_cannot_form_the_ratio(tmp_path):
    """A final line whose BPB is a byte-level mixture (not val_loss/ln2/bytes-per-token) is named,
    not turned into a false denominator figure."""
    mix = ["final_ngram_mixture val_loss:2.70000000 val_bpb:0.95000000 eval_time:1000ms"]
    d = make_record(tmp_path, log_options={"extra_lines": []}, per_seed={})
    for p in d.glob("train_seed*.log"):
        p.write_text(p.read_text() + "\n".join(mix) + "\n")
    rep = audit(d)
    found = [f for f in rep.findings if f.rule_id == "SUB041"]
    assert found and all(f.severity is Severity.INFO and "cannot be formed" in f.message for f in found)


def test_throttled_seed_moves_the_mean(tmp_path):
    rep = audit(_build(tmp_path, "SUB019", CASES["SUB019"][0], "fail"))
    f = next(f for f in rep.findings if f.rule_id == "SUB019")
    assert f.evidence["seed"] == 2026 and "152.58 ms/step" in f.message and "3,933 steps" in f.message
    assert f.evidence["mean_with"] - f.evidence["mean_without"] > 0.002


def test_mean_std_mismatch_recomputes(tmp_path):
    rep = audit(_build(tmp_path, "SUB017", CASES["SUB017"][0], "fail"))
    fs = [f for f in rep.findings if f.rule_id == "SUB017"]
    assert len(fs) == 2  # mean and std
    assert fs[0].evidence["recomputed"] == pytest.approx(1.0805, abs=1e-9)
    assert all("legal_ttt_exact" in w for w in fs[0].evidence["from"])


def test_ngram_cache_after_scoring_is_disclosure_warning(tmp_path):
    rep = audit(make_record(tmp_path, code=code_with(extra_funcs=NGRAM_AFTER)))
    f = next(f for f in rep.findings if f.rule_id == "SUB026")
    assert f.severity is Severity.WARNING and "disclosure" in f.message
    rep2 = audit(make_record(tmp_path, "b", code=code_with(extra_funcs=NGRAM_BEFORE)))
    f2 = next(f for f in rep2.findings if f.rule_id == "SUB026")
    assert f2.severity is Severity.ERROR and "not yet scored" in f2.message


def test_two_pass_names_the_loops(tmp_path):
    rep = audit(_build(tmp_path, "SUB025", CASES["SUB025"][0], "fail"))
    f = next(f for f in rep.findings if f.rule_id == "SUB025")
    assert "eval_two_pass" in f.message and "again" in f.message


def test_missing_log_for_claimed_seed(tmp_path):
    rep = audit(_build(tmp_path, "SUB003", CASES["SUB003"][0], "fail"))
    f = next(f for f in rep.findings if f.rule_id == "SUB003")
    assert "2026" in f.message


def test_symlink_outside(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("do not read")
    d = make_record(tmp_path)
    os.symlink(outside, d / "notes.log")
    os.symlink("../../../../../../etc/passwd", d / "passwd.txt")
    inside = d / "alias.md"
    os.symlink(d / "README.md", inside)  # a link inside the folder is fine
    rep = audit(d)
    f = [f for f in rep.findings if f.rule_id == "SUB007"]
    assert len(f) == 2 and all("not followed" in x.message for x in f)
    assert rep.final_verdict == "invalid"
    d2 = make_record(tmp_path, "clean")
    os.symlink(d2 / "README.md", d2 / "alias.md")
    assert "SUB007" not in ids(audit(d2))


def test_fifo_is_not_opened(tmp_path):
    d = make_record(tmp_path)
    os.mkfifo(d / "train_seed9.log")
    rep = audit(d)  # would block forever if the FIFO were opened
    assert "SUB007" in ids(rep)


def test_no_sota_is_info(tmp_path):
    rep = audit(make_record(tmp_path))
    assert "SUB037" in ids(rep, "info") and rep.final_verdict == "record"
    rep2 = audit(make_record(tmp_path, "b"), sota=1.1147)
    assert "SUB037" not in ids(rep2)


def test_not_significant_is_non_record(tmp_path):
    rep = audit(make_record(tmp_path), sota=1.0850)  # 0.0045 BPB better: below the 0.0072 margin
    assert rep.final_verdict == "non-record" and "SUB020" in ids(rep, "warning")
    f = next(f for f in rep.findings if f.rule_id == "SUB020")
    assert "ln 2" in f.evidence["conversion"] and f.evidence["p"] > 0.01


def test_sota_record_folder_welch(tmp_path):
    sota = make_record(tmp_path, "sota", values=(1.1140, 1.1147, 1.1150))
    rep = audit(make_record(tmp_path, "cand"), sota=str(sota))
    f = next(f for f in rep.findings if f.rule_id == "SUB021")
    assert "Welch" in f.message and f.evidence["sota_n"] == 3


def test_non_record_track(tmp_path):
    d = make_record(tmp_path / "records" / "track_non_record_16mb")
    rep = audit(d)
    assert "SUB038" in ids(rep) and rep.final_verdict == "non-record"
    assert "SUB038" not in ids(audit(make_record(tmp_path / "track_10min_16mb", "x")))


def test_deeply_nested_json(tmp_path):
    d = make_record(tmp_path)
    (d / "submission.json").write_text("[" * 100_000 + "]" * 100_000)
    rep = audit(d)
    f = next(f for f in rep.findings if f.rule_id == "SUB005")
    assert "nested" in f.message
    d2 = make_record(tmp_path, "b")
    sub = json.loads((d2 / "submission.json").read_text())
    sub["extra"] = {"a": {"b": {"c": [1, [2, [3]]]}}}
    (d2 / "submission.json").write_text(json.dumps(sub))
    assert "SUB005" not in ids(audit(d2))


def test_oversized_json(tmp_path):
    d = make_record(tmp_path)
    (d / "submission.json").write_text('{"name": "' + "x" * 2_000_000 + '"}')
    assert "SUB005" in ids(audit(d))


def test_denominator_against_a_given_val_set(tmp_path):
    """The trainer's gate audits a run on its own fixture val set: SUB041 checks that set's bytes."""
    tokens = 91_279
    d = make_record(tmp_path, log_options={"val_tokens": tokens})
    assert "SUB041" in ids(audit(d), "error")  # against the challenge's 151,080,633 bytes: off
    from record_factory import BYTES_PER_TOKEN

    assert "SUB041" not in ids(audit(d, val_bytes=round(tokens * BYTES_PER_TOKEN)), "error")
