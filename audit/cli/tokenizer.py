"""`audit tokenizer`: byte-exact audit of a `*.meta.npz` (thin layer over audit.tokenizer_audit)."""

from __future__ import annotations

from pathlib import Path

import click

from audit.cli.common import emit, output_options


@click.command("tokenizer")
@click.argument("meta", type=click.Path(path_type=Path))
@click.option("--tokenizer", "tokenizer", type=click.Path(path_type=Path),
              help="Tokenizer file (.model, .vocab, .yaml) or 'purebyte'.")
@click.option("--val", "val", help="Candidate val shard(s), a file or a glob.")
@click.option("--data-root", type=click.Path(path_type=Path),
              help="A data/ folder with manifest.json: finds the tokenizer and val glob of the dataset using META.")
@click.option("--source", help="Byte reference: sp1024 (reference stream), docs (docs_selected.jsonl), "
                                "a folder of text files, or a .jsonl file.")
@click.option("--source-val", help="Reference val stream for --source sp1024 (file or glob).")
@click.option("--source-tokenizer", type=click.Path(path_type=Path), help="Tokenizer of --source-val.")
@click.option("--docs", "docs", type=click.Path(path_type=Path), help="docs_selected.jsonl for --source docs.")
@click.option("--bos-id", type=int, default=None, help="Override the BOS id (-1: the stream has none).")
@click.option("--seq-len", type=int, help="Plain evaluator's row length (reports the dropped tail).")
@click.option("--stride", type=int, help="Sliding-window stride (with --seq-len).")
@click.option("--claimed-bpb", type=float, help="A claimed score to correct: claimed × meta / true.")
@click.option("--strict", is_flag=True, help="Any byte drift or bad document is an error.")
@click.option("--fix", "fix_out", type=click.Path(path_type=Path),
              help="Write the canonical meta to this NEW path and re-audit it.")
@output_options
def tokenizer_cmd(meta, tokenizer, val, data_root, source, source_val, source_tokenizer, docs, bos_id,
                  seq_len, stride, claimed_bpb, strict, fix_out, out) -> int:
    """Audit META (*.meta.npz) against its tokenizer and, with val data, the byte accounting.

    Without val data only the static checks run. Exit 0 pass, 1 error findings, 2 bad input."""
    from audit.atomic import check_outputs
    from audit.tokenizer_audit import AuditOptions, audit_tokenizer
    from audit.tokenizer_audit.options import AUTO

    check_outputs({"--json": out.json_path, "--markdown": out.md_path, "--output": out.output, "--fix": fix_out}, [
        meta, tokenizer, val, data_root and data_root / "manifest.json", source, source_val, source_tokenizer, docs])
    options = AuditOptions(
        tokenizer=str(tokenizer) if tokenizer is not None else None, val=val, data_root=data_root,
        source=source, source_val=source_val, source_tokenizer=source_tokenizer, docs=docs,
        bos_id=AUTO if bos_id is None else bos_id, seq_len=seq_len, stride=stride,
        claimed_bpb=claimed_bpb, strict=strict, fix_out=fix_out)
    reports = audit_tokenizer(meta, options)
    return emit(reports, out, title="Tokenizer audit", start=meta)
