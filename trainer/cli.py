"""`trainer` command line: run (gated), export-code, show-config. Logic lives in the library."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from audit.errors import InputError
from trainer.config import PRESETS

PRESET = click.option("--preset", type=click.Choice(list(PRESETS)), default=None,
                      help="Start from this preset (default: baseline, the challenge's own train_gpt.py).")
CONFIG = click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                      help="TOML or JSON file of settings (applied after the preset).")
SETS = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                    help="Override one setting (after the environment variables). Repeatable.")


def _resolve(preset, config_file, sets, **extra):
    from trainer.config import parse_sets, resolve_config

    kv = parse_sets(sets)
    kv.update({k: v for k, v in extra.items() if v is not None})
    return resolve_config(preset, config_file, kv)


NO_TORCH = ("error: the trainer needs torch, which the audit-only install leaves out: "
            "pip install 'golfcheck[trainer]' (or `make venv` in a checkout)")


def _guard(fn):
    try:
        return fn()
    except InputError as e:
        click.echo(f"error: {e.one_line()}", err=True)
        sys.exit(2)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != "torch":
            raise
        click.echo(NO_TORCH, err=True)
        sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """golfcheck's gated reference trainer."""


@main.command()
@PRESET
@CONFIG
@SETS
@click.option("--records-dir", default=None, help="Where record folders go (default ./records).")
@click.option("--reports-dir", default=None, help="Where gate reports go (default ./reports).")
@click.option("--run-name", default=None, help="Record folder name (default: date_preset_seed_time).")
@click.option("--seed", type=int, default=None,
              help="Random seed of the run (default 1337; overrides --config and --set). A record needs 3 or more seeds.")
@click.option("--quiet", is_flag=True, help="Do not echo the training log.")
def run(preset, config_file, sets, records_dir, reports_dir, run_name, seed, quiet):
    """Train with the gate: tokenizer audit first, compliance checks after, record only on pass."""
    def go():
        from trainer.gate import run_gated

        cfg, sources = _resolve(preset, config_file, sets, records_dir=records_dir, reports_dir=reports_dir,
                                run_name=run_name, seed=seed)
        out = run_gated(cfg, sources, echo=not quiet)
        import torch.distributed as dist

        if dist.is_initialized():  # under torchrun: leave the process group cleanly
            dist.destroy_process_group()
        if out.report.kind == "gate" and not out.report_paths:  # a non-zero rank: rank 0 reports
            return out.exit_code
        for f in out.report.errors:
            click.echo(f"FAILED {f.rule_id} {f.rule_name}: {f.message}", err=True)
        if out.report_paths:
            click.echo(f"gate report: {out.report_paths[1]}")
        if out.record_dir:
            click.echo(f"record: {out.record_dir}")
        return out.exit_code

    sys.exit(_guard(go))


@main.command("export-code")
@click.argument("out", type=click.Path(dir_okay=False))
@PRESET
@CONFIG
@SETS
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
def export_code_cmd(out, preset, config_file, sets, force):
    """Write the single self-contained train_gpt.py for a config and print its byte size."""
    def go():
        from audit.atomic import write_bytes_atomic
        from trainer.config import fill_data_paths
        from trainer.export import export_code

        cfg, _ = _resolve(preset, config_file, sets)
        p = Path(out)
        if p.exists() and not force:
            raise InputError(p, "refusing to overwrite an existing file (use --force)")
        data = export_code(fill_data_paths(cfg)).encode("utf-8")
        write_bytes_atomic(p, data)
        click.echo(f"Code size: {len(data)} bytes ({p})")
        return 0

    sys.exit(_guard(go))


@main.command("show-config")
@PRESET
@CONFIG
@SETS
def show_config(preset, config_file, sets):
    """Print the resolved config (with where each non-default value came from) and the model size."""
    def go():
        from trainer.config import describe
        from trainer.model import expected_parameters

        cfg, sources = _resolve(preset, config_file, sets)
        click.echo(describe(cfg, sources))
        click.echo(f"parameters: {expected_parameters(cfg):,}")
        return 0

    sys.exit(_guard(go))


if __name__ == "__main__":
    main()
