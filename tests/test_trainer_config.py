"""Config resolution (preset → file → env → flags), data batches split over ranks, byte tables."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from audit.errors import InputError
from audit.formats.shards import write_shard
from trainer.cli import main as cli
from trainer.config import TrainConfig, describe, env_overrides, resolve_config
from trainer.data import ByteLUT, DistributedBatches, unigram_bits_per_byte


def test_defaults_are_the_record_stack():
    c = TrainConfig()
    assert (c.num_layers, c.model_dim, c.num_heads, c.num_kv_heads, c.rope_dims) == (11, 512, 8, 4, 16)
    assert c.ttt_enabled and c.smear_gate and c.xsa_last_n == 4 and c.parallel_residual_start == 7
    assert c.artifact_limit_bytes == 16_000_000


def test_precedence_preset_file_env_flag(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('num_layers = 6\nseed = 5\n[model]\nmodel_dim = 128\n')
    env = {"NUM_LAYERS": "7", "TTT_ENABLED": "0", "SEED": "9"}
    cfg, src = resolve_config("baseline", f, {"seed": "11"}, environ=env)
    assert cfg.num_layers == 7 and src["num_layers"] == "env"  # env beats the file
    assert cfg.model_dim == 128 and src["model_dim"] == str(f)
    assert cfg.seed == 11 and src["seed"] == "flag"  # flags beat env
    assert cfg.ttt_enabled is False
    assert cfg.mlp_mult == 2.0 and src["mlp_mult"] == "preset:baseline"
    text = describe(cfg, src)
    assert "  num_layers: 7\n" in text and "  num_layers <- env" in text and "  seed <- flag" in text
    j = tmp_path / "c.json"
    j.write_text(json.dumps({"iterations": 3}))
    assert resolve_config("tiny", j, environ={})[0].iterations == 3


def test_env_names_are_challenge_names():
    env = {"DATA_PATH": "/d", "TOKENIZER_PATH": "/t.model", "VOCAB_SIZE": "512", "ITERATIONS": "3",
           "MAX_WALLCLOCK_SECONDS": "60", "MODEL_DIM": "64", "UNRELATED": "x"}
    got = env_overrides(env)
    assert got == {"data_path": "/d", "tokenizer_path": "/t.model", "vocab_size": "512", "iterations": "3",
                   "max_wallclock_seconds": "60", "model_dim": "64"}


@pytest.mark.parametrize("sets,needle", [({"num_layers": "x"}, "num_layers"), ({"bogus": "1"}, "unknown setting"),
                                         ({"model_dim": "90"}, "divisible"), ({"compressor": "zip"}, "compressor"),
                                         ({"ve_layers": "2,40"}, "ve_layers"), ({"ttt_enabled": "maybe"}, "boolean")])
def test_bad_settings_are_input_errors(sets, needle):
    with pytest.raises(InputError) as e:
        resolve_config("tiny", sets=sets, environ={})
    assert needle in str(e.value)


def test_cli_show_config_and_bad_flag():
    r = CliRunner().invoke(cli, ["show-config", "--preset", "proteus"])
    assert r.exit_code == 0 and "parameters: 26,993,754" in r.output
    r = CliRunner().invoke(cli, ["show-config", "--set", "num_layers=zero"])
    assert r.exit_code == 2 and "num_layers" in r.output


def test_batches_follow_the_official_loader_for_any_world_size(tmp_path):
    """Micro-step k of rank r is span k·W + r of the stream, each span local+1 tokens (the last
    one only a target), as the official DistributedTokenLoader; with W·accum fixed (8 // W) every
    world size reads the same spans in each optimizer step."""
    toks = np.arange(5000) % 1000
    write_shard(tmp_path / "fineweb_train_000000.bin", toks)
    pat = str(tmp_path / "fineweb_train_*.bin")
    span = 64 // 4 + 1
    for world, accum in ((1, 4), (2, 2), (4, 1)):
        ranks = [DistributedBatches(pat, 64, 8, r, world, accum, torch.device("cpu")) for r in range(world)]
        for step in range(3):
            per_rank = [b.next() for b in ranks]
            for r in range(world):
                for k, (x, y) in enumerate(per_rank[r]):
                    start = (step * 4 + k * world + r) * span
                    assert x.shape == (2, 8)
                    assert torch.equal(x.reshape(-1), torch.arange(start, start + span - 1)), (world, accum, step, r, k)
                    assert torch.equal(y.reshape(-1), torch.arange(start + 1, start + span))


def test_unigram_entropy_of_uniform_stream():
    V = 16
    val = np.tile(np.arange(V), 64)
    lut = ByteLUT(np.full(V, 2), np.zeros(V, bool), np.zeros(V, bool))
    assert unigram_bits_per_byte(val, lut, V) == pytest.approx(2.0, abs=0.01)  # 4 bits / 2 bytes


def test_missing_data_is_an_input_error():
    from trainer.config import fill_data_paths

    cfg = resolve_config("proteus", environ={})[0]
    with pytest.raises(InputError, match="no data configured"):
        fill_data_paths(cfg)
    cfg = resolve_config("proteus", sets={"data_path": "/d"}, environ={})[0]
    with pytest.raises(InputError, match="byte table"):
        fill_data_paths(cfg)


def test_grouped_views_read_the_flat_settings():
    cfg = resolve_config("tiny", sets={"matrix_lr": "0.07"}, use_env=False)[0]
    assert cfg.optim.matrix_lr == 0.07 == cfg.matrix_lr
    assert cfg.model.num_layers == cfg.num_layers and cfg.eval.ttt_epochs == cfg.ttt_epochs
    assert cfg.export.compressor == cfg.compressor and cfg.data.data_path == cfg.data_path
    with pytest.raises(AttributeError, match="not a setting of the 'model' group"):
        cfg.model.matrix_lr
    with pytest.raises(AttributeError, match="read-only"):
        cfg.optim.matrix_lr = 1.0
    groups = [cfg.model, cfg.optim, cfg.data, cfg.export, cfg.eval, cfg.gate]
    names = [n for g in groups for n in g.names()]
    assert sorted(names) == sorted(f for f in cfg.to_dict())  # every setting in exactly one view


def test_one_parser_for_settings():
    from trainer.settings import parse_bool, parse_int, parse_int_list

    assert [parse_bool(x) for x in ("true", "1", "ON", "no", "0", "")] == [True, True, True, False, False, False]
    with pytest.raises(ValueError):
        parse_bool("maybe")
    assert parse_int("1_000") == 1000 and parse_int("1e3") == 1000
    with pytest.raises(ValueError):
        parse_int("1.5")
    assert parse_int_list("9, 10") == (9, 10) and parse_int_list("") == ()
    cfg = resolve_config("tiny", use_env=False)[0]
    assert cfg.int_list("ve_layers") == [2, 3]
    cfg.ve_layers = "1"
    assert cfg.int_list("ve_layers") == [1]  # parsed once per value, re-parsed when it changes
