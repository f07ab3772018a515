"""`trainer run --preset record` end to end on CPU (issue 11): the whole 2026-04-29 stack at toy
size on the bundled tiny data, CaseOps BPB from a byte sidecar, phased TTT, gated as every run;
and the compiled forward equal to the eager one on CPU."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from audit.formats.shards import read_shard, resolve_glob, write_shard
from trainer.cli import main as cli
from trainer.config import resolve_config
from trainer.data import ByteLUT
from trainer.model import GPT

TOY = dict(num_layers="4", model_dim="64", num_heads="4", num_kv_heads="2", rope_dims="8", xsa_last_n="4",
           recur_layers="1,2", parallel_residual_start="3", gate_window="8", iterations="8", warmup_steps="1",
           train_seq_len="128", eval_seq_len="128", eval_stride="64", train_batch_tokens="1024",
           grad_accum_steps="1", val_batch_size="0", val_max_tokens="1024", gptq_calib_seqs="4",
           gptq_block_size="32", passthrough_numel="512", ttt_lora_rank="4", ttt_chunk_size="32",
           ttt_lora_batch_docs="8", phased_ttt_prefix_docs="6", global_ttt_chunk_tokens="512", ttt_batch_seqs="4",
           probe_tokens="512", train_log_every="4", muon_momentum_warmup_steps="10", compile="off")


def caseops_data(tmp_path):
    """The tiny data's val shards copied beside a byte sidecar. The toy tokenizer has no case
    operators, so the sidecar holds exactly the LUT's bytes and CaseOps BPB must equal LUT BPB."""
    from trainer.tinydata import ensure_tiny_data

    td = ensure_tiny_data()
    d = tmp_path / "caseops"
    d.mkdir()
    lut = ByteLUT.load(str(td.meta))
    for f in resolve_glob(str(td.dataset_dir / "fineweb_val_*.bin")):
        shutil.copy(f, d / f.name)
        tok = torch.from_numpy(np.asarray(read_shard(f), dtype=np.int64))
        b = torch.zeros_like(tok)
        b[1:] = lut.bytes_for(tok[:-1], tok[1:])
        write_shard(d / f.name.replace("_val_", "_val_bytes_"), b.numpy().astype(np.uint16))
    return td, d


@pytest.mark.slow
def test_record_preset_end_to_end_gated(tmp_path):
    td, d = caseops_data(tmp_path)
    sets = {**TOY, "train_files": str(td.dataset_dir / "fineweb_train_*.bin"),
            "val_files": str(d / "fineweb_val_*.bin"),
            "tokenizer_path": str(td.model), "meta_path": str(td.meta), "vocab_size": str(td.vocab_size),
            "bos_id": str(td.bos_id), "val_loss_every": "0",
            "recur_start_frac": "0", "recur_start_step": "4"}  # 35 % of the 600 s cap: never in a CPU toy run
    args = ["run", "--preset", "record", "--records-dir", str(tmp_path / "records"), "--reports-dir",
            str(tmp_path / "reports"), "--run-name", "rec", "--quiet"]
    for k, v in sets.items():
        args += ["--set", f"{k}={v}"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output[-4000:]
    rec = tmp_path / "records" / "rec"
    log = "\n".join(p.read_text() for p in rec.glob("*.log")) or r.output
    assert "model_params:" in log and "smear_gate_mode: 'input'" in log
    assert "depth_recurrence: on at step:4" in log
    assert "ttt_ledger" in log and "violations:0" in log
    assert "causality_probe: passed:True" in log
    sub = json.loads((rec / "submission.json").read_text())
    assert sub["val_bpb"] > 0


def test_recurrence_switches_on_at_a_fraction_of_training():
    from types import SimpleNamespace

    from trainer.run import _switches

    cfg = resolve_config("record", sets={**TOY, "vocab_size": "128"}, use_env=False)[0]
    m = GPT(cfg)
    ctx = SimpleNamespace(cfg=cfg, res=SimpleNamespace(switched_on={}), log=lambda msg: None)
    _switches(ctx, m, 500, 1.0, False, frac=0.34)
    assert not m.recur_active
    _switches(ctx, m, 501, 1.0, False, frac=0.35)
    assert m.recur_active and ctx.res.switched_on["depth_recurrence"] == 501


def test_compiled_forward_equals_eager_on_cpu():
    """torch.compile (inductor on CPU) against eager on the record stack at toy size: logits
    within 1e-4 absolute (float32; the compiled graph may fuse and reorder reductions)."""
    small = dict(num_layers="2", recur_layers="0,0", parallel_residual_start="1", xsa_last_n="2")  # compile time
    cfg = resolve_config("record", sets={**TOY, **small, "vocab_size": "128", "compile": "on"}, use_env=False)[0]
    torch.manual_seed(0)
    m = GPT(cfg).eval()
    m.recur_active = True
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in m.parameters():
            if p.abs().sum() == 0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    idx = torch.randint(2, 128, (2, 32), generator=g)
    idx[:, 10] = 1
    from trainer.fast import maybe_compile

    compiled = maybe_compile(m, cfg, torch.device("cpu"))
    assert compiled is not m
    with torch.no_grad():
        eager = m(idx)
        out = compiled(idx)
    assert torch.allclose(out, eager, atol=1e-4), float((out - eager).abs().max())
