"""TokenMonster readers: strict binary layout, YAML, and both agreeing on one vocabulary."""

from __future__ import annotations

import struct
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.errors import InputError
from audit.tokenizers import load_tokenizer
from audit.tokenizers.tokenmonster.binary import parse_binary, write_binary
from audit.tokenizers.tokenmonster.vocab import Entry, Vocab
from audit.tokenizers.tokenmonster.yamlvocab import parse_yaml, write_yaml
from tests.conftest import ROOT


def small_vocab(**kw) -> Vocab:
    keys = [b"a", b"b", b" the", b"\x80", b"D", b"C", b"W", b"(D", b"TokenMonsterHexEncode{zz}x"]
    entries = [Entry(k, i, 0.5) for i, k in enumerate(keys)]
    entries.append(Entry(b"D a", 0, -1.0))  # alias: last entry wins
    args = dict(path=None, fmt="binary", capcode=2, charset=1, normalization=1, vocab_size=len(keys),
                entries=entries, delete_id=4)
    args.update(kw)
    return Vocab(**args)


def test_binary_roundtrip_and_last_entry_wins():
    v = small_vocab()
    data = write_binary(v)
    r = parse_binary(data)
    assert r.id_bytes[0] == b"D a" and r.id_bytes[1] == b"b"
    assert (r.capcode, r.charset, r.normalization, r.vocab_size, r.delete_id, r.unk_id) == (2, 1, 1, 9, 4, None)
    assert write_binary(r) == data
    assert r.duplicate_entries() == [(0, b"a", b"D a")]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=30, unique=True),
       st.sampled_from([0, 1, 2]), st.sampled_from([0, 1]), st.integers(0, 255))
def test_yaml_and_binary_agree(keys, capcode, charset, norm):
    entries = [Entry(k, i, float(i) / 7) for i, k in enumerate(keys)]
    v = Vocab(path=None, fmt="binary", capcode=capcode, charset=charset, normalization=norm,
              vocab_size=len(keys), entries=entries)
    b = parse_binary(write_binary(v))
    y = parse_yaml(write_yaml(v))
    assert b.id_bytes == y.id_bytes == v.id_bytes
    assert (b.capcode, b.charset, b.normalization) == (y.capcode, y.charset, y.normalization) == (capcode, charset, norm)
    assert parse_binary(write_binary(y)).id_bytes == v.id_bytes


def test_yaml_hex_escapes():
    y = parse_yaml('charset: none\ncapcode: 0\nnormalization: none\ntokens:\n'
                   '  - {token: "\u2014TokenMonsterHexEncode{80ff}z", id: 0, score: 0.1, encoded: true}\n')
    assert y.id_bytes == [b"\xe2\x80\x94\x80\xffz"]


def _header(**over) -> bytearray:
    v = small_vocab()
    data = bytearray(write_binary(v))
    for off, val, size in over.values():
        data[off:off + size] = val.to_bytes(size, "little")
    return data


BAD_BINARY = {
    "truncated": lambda: bytes(_header())[:-7],
    "truncated header": lambda: bytes(_header())[:10],
    "trailing bytes": lambda: bytes(_header()) + b"\0\0",
    "capcode 3": lambda: bytes(_header(x=(0, 3, 1))),
    "charset 5": lambda: bytes(_header(x=(1, 5, 1))),
    "vocab size 0": lambda: bytes(_header(x=(11, 0, 3))),
    "unk id past vocab": lambda: bytes(_header(x=(8, 500, 3))),
    "max length 41": lambda: bytes(_header(x=(23, 41, 1))),
}


@pytest.mark.parametrize("case", sorted(BAD_BINARY))
def test_malformed_binary_is_one_line_input_error(case, tmp_path):
    p = tmp_path / "bad.vocab"
    p.write_bytes(BAD_BINARY[case]())
    with pytest.raises(InputError) as e:
        load_tokenizer(p)
    assert "\n" not in str(e.value) and str(p) in str(e.value)


def test_key_longer_than_40(tmp_path):
    v = small_vocab()
    data = bytearray(write_binary(v))
    # entry 0's length byte sits right after the header: claim 41 bytes
    data[24] = 41
    p = tmp_path / "long.vocab"
    p.write_bytes(bytes(data))
    with pytest.raises(InputError, match="key length 41 exceeds 40"):
        load_tokenizer(p)


def test_entry_id_past_vocab(tmp_path):
    v = small_vocab()
    data = bytearray(write_binary(v))
    o = 24 + 1 + 1 + 2 + 6  # len, key "a", flag, n_words, alt1, alt2 → id
    data[o:o + 3] = (700).to_bytes(3, "little")
    p = tmp_path / "id.vocab"
    p.write_bytes(bytes(data))
    with pytest.raises(InputError, match="id 700 is not below"):
        load_tokenizer(p)


BAD_YAML = {
    "unknown charset": ("charset: latin-9\ncapcode: 0\ntokens:\n  - {token: a, id: 0}\n", "unknown charset"),
    "bad hex escape": ('charset: none\ncapcode: 0\ntokens:\n  - {token: "TokenMonsterHexEncode{8}", id: 0}\n',
                       "bad hex escape"),
    "non-hex": ('charset: none\ncapcode: 0\ntokens:\n  - {token: "TokenMonsterHexEncode{zz}", id: 0}\n', "bad hex"),
    "unterminated": ('charset: none\ncapcode: 0\ntokens:\n  - {token: "TokenMonsterHexEncode{80", id: 0}\n',
                     "unterminated"),
    "capcode 7": ("charset: none\ncapcode: 7\ntokens:\n  - {token: a, id: 0}\n", "capcode"),
    "not yaml": ("charset: [\n", "not valid YAML"),
    "no tokens": ("charset: none\ncapcode: 0\n", "no tokens"),
    "unknown normalization": ("charset: none\ncapcode: 0\nnormalization: nfkc\ntokens:\n  - {token: a, id: 0}\n",
                              "unknown normalization"),
    "key too long": ("charset: none\ncapcode: 0\ntokens:\n  - {token: " + "x" * 41 + ", id: 0}\n", "longer than 40"),
    "python tag": ("charset: !!python/object:os.system none\ncapcode: 0\n", "not valid YAML"),
}


@pytest.mark.parametrize("case", sorted(BAD_YAML))
def test_malformed_yaml_is_one_line_input_error(case, tmp_path):
    text, match = BAD_YAML[case]
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(InputError, match=match) as e:
        load_tokenizer(p)
    assert "\n" not in str(e.value)


def test_cli_exit_2_on_malformed_vocab(tmp_path):
    from audit.formats.meta import MetaTable

    p = tmp_path / "bad.vocab"
    p.write_bytes(bytes(_header())[:-3])
    m = tmp_path / "m.meta.npz"
    MetaTable([1] * 9, [False] * 9, [False] * 9).save(m)
    r = subprocess.run([str(ROOT / ".venv" / "bin" / "audit"), "tokenizer", str(m), "--tokenizer", str(p)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2, r.stdout + r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "truncated" in err[0] and "Traceback" not in r.stderr


def test_bos_from_manifest_and_explicit(tmp_path):
    v = small_vocab()
    (tmp_path / "t.vocab").write_bytes(write_binary(v))
    assert load_tokenizer(tmp_path / "t.vocab").special.bos is None
    (tmp_path / "manifest.json").write_text('{"tokenizers": [{"path": "tokenizers/t.vocab", "bos_id": 9, "vocab_size": 10}]}')
    tok = load_tokenizer(tmp_path / "t.vocab")
    assert tok.special.bos == 9 and tok.vocab_size == 10
    assert tok.canonical_meta().base_bytes[9] == 0


def test_struct_sanity():
    # the header layout of tokenizers.md §2.1: UNK at 8, vocab size at 11, delete id at 20
    data = write_binary(small_vocab(unk_id=3))
    assert int.from_bytes(data[8:11], "little") == 3 and int.from_bytes(data[11:14], "little") == 9
    assert struct.unpack_from("<f", data, 24 + 1 + 1 + 2 + 9)[0] == pytest.approx(0.5)
