"""Outputs never land on the run's inputs, on a non-regular path, or on each other."""

from __future__ import annotations

import json
import os

import pytest

from audit.atomic import check_outputs, write_bytes_atomic, write_text_atomic
from audit.cli import cli
from audit.cli.common import run_guarded
from audit.errors import InputError
from audit.tokenizers.purebyte import PureByteTokenizer


@pytest.fixture
def meta(tmp_path):
    p = tmp_path / "in.meta.npz"
    PureByteTokenizer().canonical_meta().save(p)
    return p


def call(args, capsys):
    rc = run_guarded(cli, [str(a) for a in args])
    return rc, capsys.readouterr().err


def test_json_onto_the_audited_input_is_refused(meta, capsys):
    before = meta.read_bytes()
    rc, err = call(["tokenizer", meta, "--tokenizer", "purebyte", "-q", "--json", meta], capsys)
    assert rc == 2 and err.startswith(f"error: {meta}: --json would overwrite the input") and "\n" not in err.strip()
    assert meta.read_bytes() == before


def test_json_onto_the_fix_output_is_refused(meta, tmp_path, capsys):
    fix = tmp_path / "f.npz"
    rc, err = call(["tokenizer", meta, "--tokenizer", "purebyte", "-q", "--fix", fix, "--json", fix], capsys)
    assert rc == 2 and "--fix would overwrite the --json output" in err
    assert not fix.exists()  # refused before any work


def test_markdown_onto_a_fifo_is_refused_not_replaced(meta, tmp_path, capsys):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    rc, err = call(["tokenizer", meta, "--tokenizer", "purebyte", "-q", "--markdown", fifo], capsys)
    assert rc == 2 and "a FIFO" in err
    assert not fifo.is_file() and fifo.exists()


def test_previous_report_is_replaced(meta, tmp_path, capsys):
    out = tmp_path / "r.json"
    out.write_text("old")
    rc, err = call(["tokenizer", meta, "--tokenizer", "purebyte", "-q", "--json", out], capsys)
    assert rc == 0, err
    assert json.loads(out.read_text())["schema"] == "golfcheck.report"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_non_utf8_file_name_with_markdown(tmp_path, capsys):
    name = os.fsdecode(b"caf\xe9.meta.npz")  # Latin-1 name: a lone surrogate in Python
    PureByteTokenizer().canonical_meta().save(tmp_path / name)
    md = tmp_path / "r.md"
    rc, err = call(["tokenizer", tmp_path / name, "--tokenizer", "purebyte", "-q", "--markdown", md], capsys)
    assert rc == 0, err
    assert "caf\\xe9.meta.npz" in md.read_text(encoding="utf-8")  # the undecodable byte shown as \\xNN


def test_check_outputs_cases(tmp_path):
    a = tmp_path / "a.bin"
    a.write_bytes(b"x")
    check_outputs({"--json": tmp_path / "new.json", "--markdown": None, "--x": "-"}, [a, None, "purebyte"])
    with pytest.raises(InputError, match="overwrite the input"):  # an input reached through a glob
        check_outputs({"--json": a}, [str(tmp_path / "*.bin")])
    with pytest.raises(InputError, match="overwrite the input"):  # through a link
        os.symlink(a, tmp_path / "link")
        check_outputs({"--json": tmp_path / "sub" / ".." / "a.bin"}, [tmp_path / "link"])
    with pytest.raises(InputError, match="overwrite the --json output"):  # two outputs, one path
        check_outputs({"--json": tmp_path / "o.txt", "--markdown": tmp_path / "d" / ".." / "o.txt"}, [])
    with pytest.raises(InputError, match="a folder"):
        check_outputs({"--json": tmp_path}, [])
    with pytest.raises(InputError, match="a symbolic link"):
        check_outputs({"--json": tmp_path / "link"}, [])
    if os.path.exists("/dev/null"):
        with pytest.raises(InputError, match="a character device"):
            check_outputs({"--json": "/dev/null"}, [])


def test_write_atomic_refuses_non_regular_and_names_write_errors(tmp_path):
    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="a FIFO"):
        write_bytes_atomic(fifo, b"x")
    (tmp_path / "file").write_text("f")
    with pytest.raises(InputError, match="cannot write"):
        write_text_atomic(tmp_path / "file" / "r.md", "x")
    write_text_atomic(tmp_path / "r.md", "one")
    write_text_atomic(tmp_path / "r.md", "two")
    assert (tmp_path / "r.md").read_text() == "two"
