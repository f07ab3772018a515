"""The train-log parser: dialects, real logs, hostile inputs (huge, binary, long lines)."""

from __future__ import annotations

import resource

import pytest

from audit.submission import audit_submission
from audit.submission.logs import nest_timings, parse_log
from audit.timing import Phase
from conftest import shared_path
from record_factory import log_text, make_record


def write(tmp_path, text, name="train_seed1.log"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_dialect_step_colon_ms(tmp_path):
    lg = parse_log(write(tmp_path, log_text(seed=7, value=1.08, code_bytes=1000, steps=3933, step_ms=152.58,
                                            train_ms=600_089, reserve_s=None,
                                            post_work=["gptq:generated 64 sequences in 210619ms"])))
    assert lg.seed == 7 and lg.steps == 3933 and lg.iterations == 20000
    assert lg.train_ms == 600_089 and lg.step_avg_ms == 152.58 and lg.stop_reason == "wallclock_cap"
    assert _work_s(lg) == pytest.approx(210.619) and lg.reserved_ms is None
    assert lg.code_bytes == 1000 and lg.model_bytes == 15_500_000 and lg.total_bytes == 15_501_000
    assert lg.model_label == "int6+brotli" and lg.world_size == 8 and lg.val_tokens == 62_021_632
    labels = [m.label for m in lg.final_metrics]
    assert labels == ["final_int6_roundtrip", "final_int6_roundtrip_exact", "final_int6_sliding_window",
                      "final_int6_sliding_window_exact", "legal_ttt", "legal_ttt_exact"]
    assert lg.score_metric().label == "legal_ttt_exact" and lg.score_metric().val_bpb == 1.08
    assert _eval_ms(lg) == 410_000 and lg.ttt_chunks == 3


def test_dialect_minutes_and_spaced_colons(tmp_path):
    text = "\n".join([
        "Hyperparameters:", "  seed: 314", "  world_size: 8", "  compressor: brotli",
        "val_tokens: 40540160", "gptq:reserving 12s, effective=588000ms",
        "500/20000 train_loss: 3.3346 train_time: 0.9m tok/s: 7691255",
        "4550/20000 val_loss: 2.8119 val_bpb: 1.0886",
        "stopping_early: wallclock_cap train_time: 588047ms step: 4550/20000",
        "GPTQ:collected 67 Hessians in 12.7s",
        "quantized_ttt val_loss:2.79180191 val_bpb:1.08079352 eval_time:366525ms",
        "some unknown line: 12 val_bpp=3",
        "\x00\x01 binary bytes in the middle",
    ]) + "\n"
    lg = parse_log(write(tmp_path, text, "x.log"))
    assert lg.seed == 314 and lg.seed_source.startswith("log line")
    assert lg.world_size == 8 and lg.val_tokens == 40_540_160 and lg.config["compressor"] == "brotli"
    assert lg.steps == 4550 and lg.train_ms == 588_047 and lg.reserved_ms == 12_000
    assert lg.effective_cap_ms == 588_000 and _work_s(lg) == pytest.approx(12.7)
    assert [m.label for m in lg.final_metrics] == ["quantized_ttt"]  # the step-N val line is periodic
    assert lg.step_ms == 588_047 / 4550


def test_no_stopping_line_uses_last_step(tmp_path):
    text = ("step:100/100 train_loss:2.0 train_time:9000ms step_avg:90.00ms\n"
            "final_sliding val_loss:2.0 val_bpb:1.2 eval_time:1000ms\n")
    lg = parse_log(write(tmp_path, text))
    assert lg.steps == 100 and lg.train_ms == 9000 and lg.stop_reason == "iterations"


def test_real_accepted_logs():
    d = shared_path("records", "accepted_2026-04-09_sp8192_recur_parresid_ttt")
    lg = parse_log(d / "train_seed42.log")
    assert (lg.seed, lg.steps, lg.train_ms, lg.reserved_ms) == (42, 4550, 588_047, 12_000)
    assert (lg.code_bytes, lg.model_bytes, lg.total_bytes) == (16_630, 15_975_300, 15_991_930)
    assert lg.score_metric().label == "quantized_ttt" and _eval_ms(lg) == 520_441 - 7_440  # pre-quant left out
    assert lg.tokenizer["tokenizer_path"].endswith("fineweb_8192_bpe.model")


def test_real_scylla_logs():
    d = shared_path("records", "pr1143_tm0054_scylla")
    lg = parse_log(d / "train_seed1337.log")
    assert (lg.seed, lg.steps, lg.train_ms, lg.step_avg_ms) == (1337, 7084, 600_057, 84.71)
    assert lg.tokenizer["tokenizer_kind"] == "tokenmonster" and lg.val_tokens == 61_020_160
    assert lg.score_metric(1.08102737).label == "legal_ttt_exact"
    assert lg.ttt_chunks == 188 and lg.ttt_seen() is not None  # progress printed every 10th chunk


def _work_s(lg):
    nest_timings(lg)
    return sum(t.seconds for t in lg.counted_timings(Phase.ARTIFACT_WORK))


def _eval_ms(lg):
    return sum(ms for ms, _, diag in lg.eval_passes.values() if not diag)


def test_echoed_source_is_not_read(tmp_path):
    """Code at the top of a log (as the official script prints it) is never read as log lines."""
    code = ('import os\nfrom pathlib import Path\ntokenizer_path = "{args.tokenizer_path}"\nslot = 0\n'
            'print(f"step:{step}/{n} val_loss:{a} val_bpb:{b}")\nseed: 99\n')
    body = log_text(seed=3, value=1.1, code_bytes=10)
    lg = parse_log(write(tmp_path, code + "=" * 100 + "\n" + body, "train_seed3.log"))
    assert lg.echo_lines == 6 and lg.seed == 3 and "slot" not in lg.markers
    assert lg.tokenizer["tokenizer_path"].endswith("fineweb_1024_bpe.model")
    # the newer layout: hyperparameters, then `Source code:` between separators, then the code
    text = "Hyperparameters:\n  seed: 5\n" + "=" * 100 + "\nSource code:\n" + "=" * 100 + "\n" + code + \
        "=" * 100 + "\n" + body.replace("seed:3", "")
    lg2 = parse_log(write(tmp_path, text, "b.log"))
    assert lg2.seed == 5 and lg2.echo_lines == 6 and lg2.score_metric().val_bpb == 1.1


def test_timestamp_prefixes_and_eval_only_logs(tmp_path):
    text = ("1713456789.123 Hyperparameters:\n1713456789.124   seed: 7\n"
            "[12:00:01] quantized_ttt_phased val_loss:2.32641216 val_bpb:1.06307957 eval_time:416500ms\n")
    lg = parse_log(write(tmp_path, text, "seed_7.log"))
    assert lg.kind == "eval-only" and lg.seed == 7 and lg.metrics[0].val_bpb == 1.06307957


def test_real_logs_echo_and_nested_timing():
    d = shared_path("records", "merged", "2026-03-31_ParallelResiduals_MiniDepthRecurrence")
    lg = parse_log(d / "train_seed42.log")
    assert lg.echo_lines > 800 and lg.tokenizer["tokenizer_path"] == "./data/tokenizers/fineweb_1024_bpe.model"
    assert _work_s(lg) == pytest.approx(239.9)  # "generated in 238.8s" is inside "done in 239.9s"


def test_binary_garbage_log(tmp_path):
    p = tmp_path / "train_seed5.log"
    p.write_bytes(bytes(range(256)) * 4096)
    lg = parse_log(p)
    assert lg.binary and not lg.metrics
    d = make_record(tmp_path, "r")
    (d / "train_seed5.log").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 100)
    rep = audit_submission(d)
    assert any(f.rule_id == "SUB008" and "binary" in f.message for f in rep.errors)


def test_log_without_final_metric_is_a_finding(tmp_path):
    d = make_record(tmp_path, per_seed={42: {"final": False}})
    rep = audit_submission(d)
    assert any(f.rule_id == "SUB009" and "train_seed42.log" in f.message for f in rep.warnings)


def test_long_lines_are_skipped_not_held(tmp_path):
    p = tmp_path / "train_seed3.log"
    body = log_text(seed=3, value=1.1, code_bytes=10)
    with open(p, "w") as f:
        f.write("x" * 5_000_000 + "\n")  # one 5 MB line
        f.write(body)
    lg = parse_log(p, max_line=4096)
    assert lg.long_lines == 1 and lg.score_metric().val_bpb == 1.1


def _big_log(path, mb):
    """A real-looking log with `mb` MB of progress lines in the middle (written in blocks)."""
    head, _, tail = log_text(seed=9, value=1.09, code_bytes=100).partition("stopping_early")
    block = "".join(f"step:{i}/20000 train_loss:2.5000 train_time:{i * 90}ms step_avg:90.00ms\n"
                    for i in range(1000, 11000))
    with open(path, "w") as f:
        f.write(head)
        written = 0
        while written < mb * 1_000_000:
            f.write(block)
            written += len(block)
        f.write("stopping_early" + tail)
    return path


def test_large_log_bounded_memory(tmp_path):
    """A 200 MB log streams: memory does not grow with it, and the facts after it are read."""
    p = _big_log(tmp_path / "train_seed9.log", 200)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    lg = parse_log(p)
    grew_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    assert lg.score_metric().val_bpb == 1.09 and lg.lines > 2_500_000
    assert len(lg.train_curve) <= 20_000  # curves are capped, not one point per line
    assert grew_mb < 50, grew_mb  # streamed: not the 200 MB file in memory


def test_millions_of_metric_lines_are_bounded(tmp_path):
    p = tmp_path / "train_seed4.log"
    body = log_text(seed=4, value=1.1, code_bytes=10)
    with open(p, "w") as f:
        f.write(body)
        line = "final_spam val_loss:1.0 val_bpb:0.5 eval_time:1ms\n" * 10_000
        for _ in range(10):
            f.write(line)
        f.write("final_last val_loss:1.0 val_bpb:0.9\n")
    lg = parse_log(p)
    assert len(lg.metrics) <= 5000 and lg.metrics[-1].label == "final_last"
    d = make_record(tmp_path, "r")
    (d / "train_seed4.log").write_bytes(p.read_bytes())
    audit_submission(d)


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), value=st.floats(0.5, 3.0), code=st.integers(1, 10**6),
       model=st.integers(1, 16 * 10**6), steps=st.integers(200, 20000), step_ms=st.floats(10, 500))
def test_round_trip_generated_logs(tmp_path, seed, value, code, model, steps, step_ms):
    p = tmp_path / "train.log"
    p.write_text(log_text(seed=seed, value=value, code_bytes=code, model_bytes=model, steps=steps,
                          step_ms=round(step_ms, 2)))
    lg = parse_log(p)
    assert (lg.seed, lg.steps, lg.code_bytes, lg.model_bytes, lg.total_bytes) == (seed, steps, code, model, code + model)
    assert lg.step_avg_ms == round(step_ms, 2)
    assert lg.score_metric().val_bpb == float(f"{value:.8f}")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=4000) | st.text(max_size=3000).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_parser_never_raises_on_arbitrary_content(tmp_path, data):
    p = tmp_path / "x.log"
    p.write_bytes(data)
    lg = parse_log(p)
    assert lg.lines >= 0 and all(m.val_bpb == m.val_bpb for m in lg.metrics)
