"""Static analysis of train_gpt.py: parsed with `ast`, never executed; bounded on hostile files."""

from __future__ import annotations

import base64
import lzma
import time

from audit.submission import audit_submission
from audit.submission import code as code_mod
from audit.submission.code import analyse_file, analyse_source
from record_factory import code_with, make_record


def test_env_defaults_casts_and_targets():
    ca = analyse_source(b'''
import os
from os import environ as E
class H:
    ttt = bool(int(os.environ.get("TTT_ENABLED", "1")))
    lr = float(os.getenv("LR", 0.02))
    slot = os.environ.get("SLOT", "0") == "1"
    path = E.get("DATA", default="./data")
    need = os.environ["RUN_ID"]
''')
    e = {x.name: x for x in ca.env}
    assert e["TTT_ENABLED"].default == "1" and e["TTT_ENABLED"].cast == "int" and e["TTT_ENABLED"].truthy()
    assert e["TTT_ENABLED"].target == "ttt" and e["TTT_ENABLED"].line == 5
    assert e["LR"].default == 0.02 and e["LR"].cast == "float"
    assert e["SLOT"].compare == ("==", "1") and e["SLOT"].truthy() is False
    assert e["DATA"].default == "./data"
    assert e["RUN_ID"].default is None and e["RUN_ID"].truthy() is None


def test_compression_calls_literal_and_via_env():
    ca = analyse_source(b'''
import lzma, zlib, brotli, os
q = int(os.environ.get("BROTLI_Q", "9"))
a = lzma.compress(b, preset=6)
b2 = lzma.compress(b, preset=9 | lzma.PRESET_EXTREME)
c = lzma.LZMACompressor(filters=[{"id": lzma.FILTER_LZMA2, "preset": 7}])
d = zlib.compress(b, 9)
e = brotli.compress(b, quality=q)
f = zlib.compress(b)
''')
    got = [(c.lib, c.level, c.via_env, c.extreme) for c in ca.compress]
    assert got == [("lzma", 6, None, False), ("lzma", 9, None, True), ("lzma", 7, None, False),
                   ("zlib", 9, None, False), ("brotli", 9, "BROTLI_Q", False), ("zlib", 6, None, False)]


def test_self_extracting_wrapper_is_unpacked_statically(tmp_path):
    inner = code_with().encode()
    blob = base64.b85encode(lzma.compress(inner)).decode()
    marker = tmp_path / "executed"
    src = (f'import lzma as L, base64 as B\nopen({str(marker)!r}, "w").write("x") if False else None\n'
           f'exec(L.decompress(B.b85decode("{blob}")))\n')
    p = tmp_path / "train_gpt.py"
    p.write_text(src)
    ca = analyse_file(p)
    assert ca.parsed and ca.unpacked == ["lzma+b85"]  # outermost call first
    assert ca.env_var("TTT_ENABLED").default == "1"
    assert ca.ttt_loops and ca.ttt_loops[0].score_first
    assert not marker.exists()


def test_decompression_bomb_is_bounded(monkeypatch):
    monkeypatch.setattr(code_mod, "MAX_UNPACKED_BYTES", 1_000_000)
    bomb = base64.b85encode(lzma.compress(b"\0" * 50_000_000)).decode()
    t = time.process_time()  # CPU seconds: bounded work, whatever the machine's load
    ca = analyse_source(f'import lzma, base64\nexec(lzma.decompress(base64.b85decode("{bomb}")))\n'.encode())
    assert time.process_time() - t < 5
    assert "unpack" in ca.not_analysed and "1,000,000" in ca.not_analysed
    assert ca.env == [] and ca.unpacked == []  # only the wrapper itself was analysed


def test_nothing_is_executed(tmp_path):
    marker = tmp_path / "pwned"
    d = make_record(tmp_path, code=f'import os\nopen({str(marker)!r}, "w").write("x")\n'
                                   f'os.environ.get("TTT_ENABLED", "1")\n')
    audit_submission(d)
    assert not marker.exists()


def test_syntax_error_is_a_finding(tmp_path):
    d = make_record(tmp_path, code="def f(:\n  pass\n")
    rep = audit_submission(d)
    f = next(f for f in rep.errors if f.rule_id == "SUB032")
    assert "line 1" in f.message


def test_huge_literal_and_deep_nesting_are_bounded(tmp_path):
    big = 'BLOB = "' + "A" * 6_000_000 + '"\nimport os\nX = os.environ.get("TTT_ENABLED", "0")\n'
    p = tmp_path / "train_gpt.py"
    p.write_text(big)
    ca = analyse_file(p)
    assert ca.parsed and ca.env_var("TTT_ENABLED").default == "0"
    deep = tmp_path / "deep.py"
    deep.write_text("x = " + "(" * 200_000 + "1" + ")" * 200_000 + "\n")
    ca2 = analyse_file(deep)
    assert not ca2.parsed and (ca2.not_analysed or ca2.syntax_error)


def test_oversized_code_is_not_parsed(tmp_path):
    p = tmp_path / "train_gpt.py"
    p.write_bytes(b"#" * (code_mod.MAX_SOURCE_BYTES + 10))
    ca = analyse_file(p)
    assert not ca.parsed and "cap" in ca.not_analysed
    d = make_record(tmp_path, code="# " + "x" * (code_mod.MAX_SOURCE_BYTES + 10) + "\n")
    rep = audit_submission(d)
    assert any(f.rule_id == "SUB033" for f in rep.findings)


def test_score_first_and_train_first_orders():
    good = analyse_source(code_with().encode())
    bad = analyse_source(code_with(order="train-first").encode())
    assert [lo.score_first for lo in good.ttt_loops] == [True]
    assert [lo.score_first for lo in bad.ttt_loops] == [False]
    lo = bad.ttt_loops[0]
    assert lo.train_line < lo.score_line and lo.function == "eval_val_ttt"


def test_training_loop_with_ema_under_no_grad_is_not_ttt():
    ca = analyse_source(b'''
import torch
def train(model, opt, loader, ema):
    for step, batch in enumerate(loader):
        loss = model(batch)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for p, q in zip(ema.parameters(), model.parameters()):
                p.mul_(0.99).add_(q, alpha=0.01)
''')
    assert ca.ttt_loops == [] and not [s for s in ca.signals if s.kind == "two_pass"]


def test_python_312_fstrings_parse_on_311(tmp_path):
    """PEP 701: a quote reused inside a replacement field; masked f-strings keep line numbers."""
    src = ('import os\nx = ["a", "b"]\nlog = print\nlog(f"  {x}: {", ".join(sorted(x))}")\n'
           'ttt = bool(int(os.environ.get("TTT_ENABLED", "1")))\n')
    ca = analyse_source(src)
    assert ca.parsed and ca.syntax_error is None
    assert ca.env_var("TTT_ENABLED").line == 5


def test_real_312_record_code_is_analysed():
    from conftest import shared_path

    d = shared_path("records", "merged", "2026-04-03_MuonEqR_DepthRecurrence_WD090_AllInt6")
    ca = analyse_file(d / "train_gpt.py")  # lzma FORMAT_RAW wrapper around 3.12 code
    assert ca.parsed and ca.unpacked == ["lzma+b85"] and len(ca.env) > 50


def test_huge_code_is_refused_not_parsed(tmp_path):
    p = tmp_path / "train_gpt.py"
    p.write_text("x = 1\n" * 1_000_000)  # 6 MB, 1 M lines
    ca = analyse_file(p)
    assert not ca.parsed and "over the analysis caps" in ca.not_analysed


def test_long_minified_lines_are_linear(tmp_path):
    """Regexes stay linear on 100k-character lines (minified code echoed in a log, spaces runs)."""
    import resource
    from audit.submission.logs import parse_log

    p = tmp_path / "train_seed1.log"
    lines = ["a" + " " * 60_000 + "x", "val_loss " * 10_000 + "val_bpb", "_a='b';" * 15_000,
             "step:" + "1" * 50_000, "reserving " + "9" * 50_000, "Code size: " + "1" * 5000 + " bytes",
             "seed:\u00b2"]
    p.write_text("\n".join(lines * 20) + "\nfinal val_loss:2.0 val_bpb:1.2\n")
    cpu0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    lg = parse_log(p)
    assert lg.score_metric().val_bpb == 1.2 and lg.code_bytes is None and lg.seed == 1
    # CPU seconds, not wall time: a quadratic regex would need minutes here
    assert resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu0 < 20
