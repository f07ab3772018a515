"""`audit tokenizer` from the command line: exit codes 0/1/2 and one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from audit.cli import cli
from audit.cli.common import run_guarded
from audit.formats.shards import shard_bytes, write_shard
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from audit.tokenizers.sentencepiece_model import SentencePieceTokenizer

    model = shared_path("tokenizers", "sp1024", "fineweb_1024_bpe.model")
    tok = SentencePieceTokenizer.load(model)
    d = tmp_path_factory.mktemp("cli")
    stream = np.array([x for t in ["Hello world.", "Grüße aus İzmir 🙂", "x"] for x in [1] + tok.encode(t)], np.uint16)
    write_shard(d / "fineweb_val_000000.bin", stream)
    meta = tok.canonical_meta()
    meta.save(d / "good.meta.npz")
    bad = meta.copy()
    bad.base_bytes[4:260] = 3
    bad.save(d / "bad.meta.npz")
    return dict(d=d, model=str(model), val=str(d / "fineweb_val_000000.bin"), stream=stream)


def call(args, capsys):
    rc = run_guarded(cli, [str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_pass_fail_and_json(env, capsys, tmp_path):
    d = env["d"]
    common = ["--tokenizer", env["model"], "--val", env["val"], "--source", "sp1024",
              "--source-val", env["val"], "--source-tokenizer", env["model"], "-q"]
    rc, _, err = call(["tokenizer", d / "good.meta.npz", *common, "--json", tmp_path / "r.json"], capsys)
    assert rc == 0, err
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["schema"] == "golfcheck.report" and doc["reports"][0]["summary"]["exact"] is True
    rc, _, _ = call(["tokenizer", d / "bad.meta.npz", *common, "--markdown", tmp_path / "r.md"], capsys)
    assert rc == 1 and "TOK004" in (tmp_path / "r.md").read_text()
    rc, _, _ = call(["tokenizer", d / "bad.meta.npz", *common, "--fix", tmp_path / "fixed.npz"], capsys)
    assert rc == 1 and (tmp_path / "fixed.npz").exists()
    rc, _, _ = call(["tokenizer", tmp_path / "fixed.npz", *common], capsys)
    assert rc == 0
    rc, _, _ = call(["tokenizer", d / "good.meta.npz", "--tokenizer", env["model"], "-q"], capsys)
    assert rc == 0  # static checks only


def _bad_inputs(env, tmp_path):
    d = env["d"]
    good = shard_bytes(env["stream"])
    (tmp_path / "magic.bin").write_bytes(b"\x01" + good[1:])
    (tmp_path / "trunc.bin").write_bytes(good[:-3])
    (tmp_path / "count.bin").write_bytes(good + b"\x00\x00")
    write_shard(tmp_path / "oov.bin", np.array([1, 5, 2000], np.uint16))
    write_shard(tmp_path / "empty.bin", np.zeros(0, np.uint16))
    np.savez(tmp_path / "obj.npz", base_bytes=np.array([1, None], dtype=object),
             has_leading_space=np.zeros(2, bool), is_boundary_token=np.zeros(2, bool))
    np.savez(tmp_path / "keys.npz", base_bytes=np.zeros(3, np.int16))
    np.savez(tmp_path / "lens.npz", base_bytes=np.zeros(3, np.int16), has_leading_space=np.zeros(2, bool),
             is_boundary_token=np.zeros(3, bool))
    m, good_meta = env["model"], d / "good.meta.npz"
    return {
        "missing meta": ([tmp_path / "nope.npz", "--tokenizer", m], "no such file"),
        "missing val": ([good_meta, "--tokenizer", m, "--val", tmp_path / "nope.bin"], "no shard"),
        "missing tokenizer": ([good_meta, "--tokenizer", tmp_path / "nope.model"], "no such file"),
        "wrong magic": ([good_meta, "--tokenizer", m, "--val", tmp_path / "magic.bin"], "wrong magic"),
        "truncated shard": ([good_meta, "--tokenizer", m, "--val", tmp_path / "trunc.bin"], "truncated"),
        "token count mismatch": ([good_meta, "--tokenizer", m, "--val", tmp_path / "count.bin"], "count mismatch"),
        "ids ≥ vocab": ([good_meta, "--tokenizer", m, "--val", tmp_path / "oov.bin"], "out of range"),
        "object arrays": ([tmp_path / "obj.npz", "--tokenizer", m], "pickle"),
        "missing keys": ([tmp_path / "keys.npz", "--tokenizer", m], "missing key"),
        "mismatched lengths": ([tmp_path / "lens.npz", "--tokenizer", m], "lengths differ"),
        "empty val set": ([good_meta, "--tokenizer", m, "--val", tmp_path / "empty.bin"], "empty val set"),
        "fix overwrites": ([good_meta, "--tokenizer", m, "--fix", good_meta], "overwrite"),
    }


def test_bad_inputs_exit_2_one_line(env, capsys, tmp_path):
    before = {p: p.read_bytes() for p in env["d"].iterdir()}
    for name, (args, needle) in _bad_inputs(env, tmp_path).items():
        rc, out, err = call(["tokenizer", *args, "-q"], capsys)
        assert rc == 2, (name, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], (name, err)
        assert "Traceback" not in err
    assert {p: p.read_bytes() for p in env["d"].iterdir()} == before  # nothing overwritten


def test_console_script_runs(env, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("audit")
    if not exe.exists():
        pytest.skip(f"console script not installed beside {sys.executable}")
    r = subprocess.run([str(exe), "tokenizer", str(env["d"] / "bad.meta.npz"), "--tokenizer", env["model"],
                        "--json", "-"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and json.loads(r.stdout)["reports"][0]["verdict"] == "fail"
