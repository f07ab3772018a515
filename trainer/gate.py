"""`trainer run`: preflight → train → post-run checks → staged record → `audit submission` →
publish. A record folder appears only when every check passes; otherwise a failure report
under reports/ names each failed check with its numbers, and the exit code is 1.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from datetime import date as _date
from pathlib import Path

import torch
import torch.distributed as dist

from audit.errors import InputError
from audit.report import Report, Table
from audit.rules import Finding
from trainer import gate_rules as G
from trainer.config import TrainConfig, fill_data_paths


@dataclass
class GateOutcome:
    exit_code: int
    report: Report
    record_dir: Path | None = None
    report_paths: list[Path] = field(default_factory=list)
    result: object | None = None  # the RunResult when training ran

    @property
    def failed_checks(self) -> list[str]:
        return [f.rule_id for f in self.report.errors]


def run_name_for(cfg: TrainConfig) -> str:
    return cfg.run_name or f"{_date.today().isoformat()}_{cfg.preset}_seed{cfg.seed}_{time.strftime('%H%M%S')}"


# --- preflight ---------------------------------------------------------------------------------
def tokenizer_preflight(cfg: TrainConfig) -> list[Finding]:
    """The tokenizer audit (static + full val when present) of the configured files."""
    try:
        from audit.tokenizer_audit import audit_tokenizer  # lazy: built by another package
    except ImportError as e:
        return [G.AUDIT_UNAVAILABLE.finding(f"audit.tokenizer_audit cannot be imported ({e}); refusing to train",
                                            {"module": "audit.tokenizer_audit", "error": str(e)})]
    meta = cfg.meta_path
    with tempfile.TemporaryDirectory() as td:
        try:
            if not meta:  # no shipped meta: audit the canonical table the trainer will derive
                if not cfg.tokenizer_path:
                    return [G.TOKENIZER_AUDIT.finding("neither meta_path nor tokenizer_path is set; BPB has no byte table", {})]
                from audit.tokenizers import load_tokenizer

                meta = str(Path(td) / "derived.meta.npz")
                load_tokenizer(cfg.tokenizer_path).canonical_meta().save(meta)
            reports = audit_tokenizer(meta, tokenizer=cfg.tokenizer_path or None, val=cfg.val_files or None,
                                      strict=cfg.strict_tokenizer_audit)
        except InputError as e:
            return [G.TOKENIZER_AUDIT.finding(f"the tokenizer audit could not run: {e.one_line()}",
                                              {"error": e.one_line()})]
    errs = [f for r in reports for f in r.errors]
    ev = {"meta": cfg.meta_path or "(derived)", "tokenizer": cfg.tokenizer_path, "val": cfg.val_files,
          "strict": cfg.strict_tokenizer_audit, "summary": reports[0].summary if reports else {}}
    if errs:
        ev["errors"] = [f"{f.rule_id} {f.message}" for f in errs[:10]]
        return [G.TOKENIZER_AUDIT.finding(
            f"the tokenizer audit of {Path(meta).name} failed with {len(errs)} error(s): "
            f"{errs[0].rule_id} {errs[0].message}", ev)]
    return [G.ok("tokenizer-audit", f"{Path(meta).name} passed the tokenizer audit "
                 f"({'with val' if cfg.val_files else 'static only'})", ev)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def budget_preflight(cfg: TrainConfig, clock=time.perf_counter) -> list[Finding]:
    """Dry-run the artifact work and the export on an untrained model (timed apart: only the
    first counts against the training cap) and time one eval forward batch."""
    from trainer.data import load_val
    from trainer.model import GPT, autocast_context
    from trainer.run import calibrate, pick_device, scored_pass, write_artifact

    device = pick_device(cfg)  # the device training will use
    torch.manual_seed(cfg.seed)
    model = GPT(cfg).to(device)
    with tempfile.TemporaryDirectory() as td:
        t0 = clock()
        hessians = calibrate(model, cfg, device)
        _sync(device)
        artifact_s = clock() - t0
        write_artifact(model, cfg, model.state_dict(), hessians, Path(td) / "dry.ptz", rank=0)
        export_s = clock() - t0 - artifact_s
    T = cfg.eval_seq_len or cfg.train_seq_len
    x = torch.randint(0, cfg.vocab_size, (min(cfg.eval_batch_seqs, 8), T), device=device)
    model.eval()
    with torch.inference_mode(), autocast_context(device):
        model(x)  # warm-up
        _sync(device)
        t0 = clock()
        model(x)
        _sync(device)  # CUDA kernels run asynchronously: time the work, not the launch
        fwd_s_per_tok = (clock() - t0) / x.numel()
    n = len(load_val(cfg.val_files, cfg.vocab_size))
    if cfg.val_max_tokens > 0:
        n = min(n, cfg.val_max_tokens + 1)
    world = dist.get_world_size() if dist.is_initialized() else 1
    scored = scored_pass(cfg)  # only the pass the score depends on counts (audit.timing)
    tokens = {"roundtrip": n, "sliding_window": n * T // max(cfg.eval_stride, 1),
              # scoring windows + training (forward+backward ≈ 3 forwards) per epoch
              "legal_ttt": n * T // (cfg.eval_stride or T) + 3 * cfg.ttt_epochs * n}[scored]
    est = tokens * fwd_s_per_tok / world
    detail = {"scored_pass": scored, "scored_tokens": tokens, "forward_us_per_token": round(fwd_s_per_tok * 1e6, 3),
              "world_size": world}
    return [G.check_export_reserve(cfg.export_reserve_seconds, artifact_s, cfg.max_wallclock_seconds, export_s),
            G.check_eval_plan(est, cfg.max_eval_seconds, detail)]


# --- post-run ----------------------------------------------------------------------------------
def post_checks(cfg: TrainConfig, res, code_bytes: int) -> list[Finding]:
    out = [G.check_sizes({"model_bytes": res.model_bytes}, {"model_bytes": Path(res.artifact_path).stat().st_size}),
           G.check_artifact(code_bytes, res.model_bytes, cfg.artifact_limit_bytes),
           G.check_train_time(res.budget, cfg.max_wallclock_seconds),
           G.check_ledger(res.ledger_problems, res.ledger_summary),
           G.check_probe(res.probe),
           G.check_eval_time(res.budget, cfg.max_eval_seconds, {t.label: t.seconds for t in res.timings}),
           G.check_roundtrip(res.roundtrip_digest, res.artifact_digest)]
    return [f for f in out if f is not None]


def submission_check(folder: Path, val_bytes: int | None = None) -> list[Finding]:
    """`audit submission` on the staged folder. `val_bytes`: the bytes of the val set this run scored,
    so the byte-denominator check (SUB041) compares the log's figures with this run's own val set
    (a fixture run is not on the challenge's 151,080,633-byte set)."""
    try:
        from audit.submission import audit_submission  # lazy: built by another package
    except ImportError as e:
        return [G.AUDIT_UNAVAILABLE.finding(f"audit.submission cannot be imported ({e}); refusing to publish a record",
                                            {"module": "audit.submission", "error": str(e)})]
    rep = audit_submission(folder, val_bytes=val_bytes)
    errs = rep.errors
    ev = {"verdict": rep.final_verdict, "errors": [f"{f.rule_id} {f.message}" for f in errs[:10]],
          "warnings": [f"{f.rule_id} {f.message}" for f in rep.warnings[:10]]}
    if errs or rep.final_verdict == "invalid":
        first = f"{errs[0].rule_id} {errs[0].message}" if errs else f"verdict {rep.final_verdict}"
        return [G.SUBMISSION_AUDIT.finding(f"the staged record folder failed `audit submission`: {first}", ev)]
    return [G.ok("submission-audit", f"the staged record folder passed `audit submission` (verdict {rep.final_verdict})", ev)]


# --- the whole gate ----------------------------------------------------------------------------
def _finish(report: Report, cfg: TrainConfig, run_name: str, record: Path | None = None,
            result=None) -> GateOutcome:
    from audit.reporting import write_json, write_markdown

    reports_dir = Path(cfg.reports_dir)
    stem = f"gate_{run_name}" + ("" if report.passed else "_FAILED")
    paths = [reports_dir / f"{stem}.json", reports_dir / f"{stem}.md"]
    report.summary.setdefault("verdict", "record written" if report.passed else "no record written")
    failed = [f"{f.rule_id} {f.rule_name}" for f in report.errors]
    if failed:
        report.summary["failed checks"] = ", ".join(failed)
    write_json([report], paths[0])
    write_markdown([report], paths[1], title=f"trainer gate: {run_name}")
    return GateOutcome(0 if report.passed else 1, report, record, paths, result)


def _bcast_flag(flag: bool) -> bool:
    """Rank 0's go/no-go for all ranks (no-op in one process)."""
    if not dist.is_initialized():
        return flag
    obj = [flag]
    dist.broadcast_object_list(obj, src=0)
    return bool(obj[0])


def _summarize(report: Report, res, code_bytes: int) -> None:
    report.summary.update({"steps": res.steps, "val_bpb": round(res.final.bpb, 6), "scored": res.final_label,
                           "model_bytes": res.model_bytes, "code_bytes": code_bytes,
                           "train_s": round(res.train_seconds, 2), "artifact_work_s": round(res.artifact_seconds, 2),
                           "counted_train_s": round(res.total_train_seconds, 2),
                           "export_s": round(res.export_seconds, 2), "warmup_s": round(res.warmup_seconds, 2),
                           "scored_eval_s": round(res.eval_seconds, 2),
                           "diagnostic_eval_s": round(res.budget.diagnostic_s, 2)})
    report.tables.append(Table("eval passes", ["pass", "val_loss", "val_bpb", "seconds"],
                               [[k, round(s.loss, 6), round(s.bpb, 6), round(s.seconds, 2)]
                                for k, s in res.scores.items()]))


def _record_files(report: Report, cfg: TrainConfig, res, code: bytes, log_path: Path, shipped: dict) -> dict:
    """What the record folder holds: the counted code, the log, shipped tokenizer files, README, json."""
    import json

    from trainer.export import readme_text, submission_json

    files: dict = {"train_gpt.py": code, log_path.name: log_path.read_bytes()}
    if "tokenizer" in shipped:
        files[shipped["tokenizer"]] = Path(cfg.tokenizer_path)
    if "meta" in shipped:
        files[shipped["meta"]] = Path(cfg.meta_path)
    checks = [f for f in report.findings if f.rule_id == G.PASSED.id]
    files["README.md"] = readme_text(cfg, res, cfg.run_name, len(code), checks).encode()
    files["submission.json"] = (json.dumps(submission_json(cfg, res, cfg.run_name, len(code),
                                                          _date.today().isoformat()), indent=2) + "\n").encode()
    return files


def _val_bytes(res) -> int | None:
    """The byte count of the val set the run scored: the full-stream pass's denominator."""
    sums = [sc.bytes_sum for sc in (res.scores or {}).values() if sc.bytes_sum > 0]
    return round(max(sums)) if sums else None


def _preflight(report: Report, cfg: TrainConfig, say) -> bool:
    """The record folder must be new, the tokenizer audit must pass, the budgets must fit."""
    records_dir, run_name = Path(cfg.records_dir), cfg.run_name
    if (records_dir / run_name).exists():
        report.add(G.RECORD_EXISTS.finding(f"{records_dir / run_name} already exists; it is never overwritten",
                                           {"path": str(records_dir / run_name)}))
        return False
    say("preflight: tokenizer audit")
    report.extend(tokenizer_preflight(cfg))
    if report.passed:
        say("preflight: budgets (dry-run artifact work and export, eval plan)")
        report.extend(budget_preflight(cfg))
    if not report.passed:
        report.summary["stage"] = "preflight"
        say("preflight FAILED: " + "; ".join(f.message for f in report.errors))
    return report.passed


def _publish(report: Report, cfg: TrainConfig, files: dict, code_bytes: int, say,
             val_bytes: int | None = None) -> Path | None:
    """Stage, check the staged folder (sizes on disk, `audit submission`), publish with one rename."""
    from trainer.export import discard, publish, stage_record

    records_dir, run_name = Path(cfg.records_dir), cfg.run_name
    staged = stage_record(records_dir, run_name, files)
    report.add(G.check_sizes({"code_bytes": code_bytes}, {"code_bytes": (staged / "train_gpt.py").stat().st_size}))
    report.extend(submission_check(staged, val_bytes))
    if not report.passed:
        discard(staged)
        report.summary["stage"] = "record"
        say("record checks FAILED: " + "; ".join(f.message for f in report.errors))
        return None
    try:
        return publish(staged, records_dir, run_name)
    except FileExistsError:
        discard(staged)
        report.add(G.RECORD_EXISTS.finding(f"{records_dir / run_name} appeared during the run; not overwritten",
                                           {"path": str(records_dir / run_name)}))
        return None


def run_gated(cfg: TrainConfig, sources: dict | None = None, *, echo: bool = True) -> GateOutcome:
    from trainer.export import export_code, record_config, shipped_names
    from trainer.run import setup_distributed, train

    cfg = fill_data_paths(cfg)
    run_name = run_name_for(cfg)
    cfg = dataclasses.replace(cfg, run_name=run_name)
    report = Report("gate", run_name, summary={"preset": cfg.preset, "seed": cfg.seed})
    rank = setup_distributed(cfg)[0]  # under torchrun the process group must exist before any decision

    def say(msg: str) -> None:
        if echo and rank == 0:
            print(f"gate: {msg}", flush=True)

    if rank != 0:  # other ranks train; rank 0 alone audits and writes (it tells them whether to go)
        if not _bcast_flag(False):
            return GateOutcome(1, report)
        train(cfg, code_bytes=0, echo=False, out_dir=tempfile.mkdtemp(prefix="golfcheck-rank-"))
        return GateOutcome(0, report)
    if not _bcast_flag(_preflight(report, cfg, say)):
        return _finish(report, cfg, run_name)
    shipped = shipped_names(cfg)
    code = export_code(record_config(cfg, shipped)).encode("utf-8")
    with tempfile.TemporaryDirectory(prefix="golfcheck-run-") as work:
        log_path = Path(work) / f"train_seed{cfg.seed}.log"
        try:
            res = train(cfg, out_dir=work, log_path=log_path, code_bytes=len(code), sources=sources, echo=echo)
        except Exception as e:  # noqa: BLE001 - a crash is a gate failure with its message, not a record
            report.add(G.RUN_FAILED.finding(f"training raised {type(e).__name__}: {e}",
                                            {"traceback": traceback.format_exc(limit=5)}))
            report.summary["stage"] = "train"
            return _finish(report, cfg, run_name)
        _summarize(report, res, len(code))
        report.extend(post_checks(cfg, res, len(code)))
        if not report.passed:
            report.summary["stage"] = "post-run"
            say("post-run checks FAILED: " + "; ".join(f.message for f in report.errors))
            return _finish(report, cfg, run_name, result=res)
        final = _publish(report, cfg, _record_files(report, cfg, res, code, log_path, shipped), len(code), say,
                         _val_bytes(res))
    if final is None:
        return _finish(report, cfg, run_name, result=res)
    report.summary["record"] = str(final)
    say(f"record written: {final}")
    return _finish(report, cfg, run_name, final, res)
