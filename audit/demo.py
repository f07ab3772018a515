"""`make demo`: run every audit on the bundled fixtures, print the verdicts, write `reports/`.

Each step states the verdict it expects (a deliberately broken input must FAIL); the demo exits
non-zero only when a verdict differs from the expectation. Real published artifacts from
`../shared/fixtures` are audited too when that folder is present.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.table import Table

from audit.report import Report
from audit.reporting import write_json, write_markdown

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"
SHARED = ROOT.parent / "shared" / "fixtures"


@dataclass
class Step:
    name: str
    run: Callable[[], list[Report]]
    expect_pass: bool


def _tok(meta, **kw) -> Callable[[], list[Report]]:
    def go():
        from audit.tokenizer_audit import audit_tokenizer

        return audit_tokenizer(meta, **kw)

    return go


def _sub(path, **kw) -> Callable[[], list[Report]]:
    def go():
        from audit.submission import audit_submission

        return [audit_submission(path, **kw)]

    return go


def steps() -> list[Step]:
    from fixtures.build import ensure_built

    fx = ensure_built()
    fixed = REPORTS / "fixed"
    out: list[Step] = [
        # the challenge's data/ layout, nothing but --data-root: tokenizer, val, BOS and the
        # sp1024 source all come from data/manifest.json
        Step("official data/ layout: candidate meta, --data-root only, three-way, --strict", _tok(
            fx.candidate["meta"], data_root=fx.data_root, strict=True), True),
        Step("official data/ layout: sp1024 meta, --data-root only, --strict", _tok(
            fx.sp_meta, data_root=fx.data_root, strict=True), True),
    ]
    for name, path in fx.broken.items():
        out.append(Step(f"broken meta: {name}", _tok(path, tokenizer=fx.model, val=fx.val_glob,
                                                        strict=True), False))
        out.append(Step(f"broken meta: {name} → --fix, re-audited",
                        _fixed(path, fx, fixed / f"{name}.fixed.meta.npz"), True))
    lonely = next(iter(fx.broken.values()))
    out.append(Step(f"meta with no tokenizer to find ({lonely.name}), --strict", _tok(lonely, strict=True), False))
    for name, bundle in sorted(fx.tokenmonster.items()):
        if isinstance(bundle, dict) and "meta" in bundle:
            out.append(Step(f"TokenMonster bundle: {name}", _tok(
                bundle["meta"], tokenizer=bundle["vocab"], val=bundle.get("val"),
                source=bundle.get("source"), strict=True), bool(bundle.get("expect_pass"))))
    for rec in sorted((ROOT / "fixtures" / "records").glob("*/")):
        expect = not rec.name.startswith(("invalid", "bad"))
        out.append(Step(f"submission: fixtures/records/{rec.name}", _sub(rec), expect))
    if SHARED.exists():
        t = SHARED / "tokenizers"
        out += [
            Step("real: scylla-998 (PR #1143 meta), --strict",
                 _tok(t / "scylla-998" / "candidate.meta.npz",
                      tokenizer=t / "scylla-998" / "candidate.vocab", strict=True), False),
            Step("real: scylla-998 meta alone (vocab found via its manifest), --strict",
                 _tok(t / "scylla-998" / "candidate.meta.npz", strict=True), False),
            Step("real: scylla-1254 (PR #1314 meta), --strict",
                 _tok(t / "scylla-1254" / "scylla.meta.npz",
                      tokenizer=t / "scylla-1254" / "scylla.yaml", strict=True), True),
            Step("real: record PR #1143 (Scylla)", _sub(SHARED / "records" / "pr1143_tm0054_scylla"), False),
            Step("real: accepted 2026-04-14 record (compressed code counted, phased TTT)",
                 _sub(SHARED / "records" / "merged" / "2026-04-14_MultiPhaseGlobalSGD_PhasedTTT"), True),
            Step("real: accepted 2026-03-31 record (240 s of GPTQ self-generation after the 600 s)",
                 _sub(SHARED / "records" / "merged" / "2026-03-31_ParallelResiduals_MiniDepthRecurrence"), False),
            Step("real: accepted 2026-04-09 record (code not shipped: --allow-missing-code)",
                 _sub(SHARED / "records" / "accepted_2026-04-09_sp8192_recur_parresid_ttt",
                      allow_missing_code=True), True),
        ]
    return out


def _fixed(broken: Path, fx, out: Path) -> Callable[[], list[Report]]:
    def go():
        from audit.tokenizer_audit import audit_tokenizer

        if out.exists():
            out.unlink()  # the demo owns reports/fixed/; the CLI itself never overwrites
        reports = audit_tokenizer(broken, tokenizer=fx.model, val=fx.val_glob, strict=True, fix_out=out)
        return reports[1:]  # the re-audit of the written meta

    return go


def _slug(name: str) -> str:
    keep = "".join(c if c.isalnum() else "_" for c in name.lower())
    return "_".join(p for p in keep.split("_") if p)[:80]


def run_trainer(console: Console) -> tuple[bool, str]:
    """`trainer run --preset tiny`, gated: expected to write a record folder."""
    t = time.time()
    proc = subprocess.run([sys.executable, "-m", "trainer.cli", "run", "--preset", "tiny"],
                          cwd=ROOT, capture_output=True, text=True)
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    return proc.returncode == 0, f"exit {proc.returncode} in {time.time() - t:.0f}s: " + " | ".join(tail)


def main() -> int:
    console = Console()
    REPORTS.mkdir(exist_ok=True)
    table = Table(title="golfcheck demo: verdicts on bundled fixtures")
    for c in ("step", "expected", "got", "errors", "warnings", "report"):
        table.add_column(c, overflow="fold")
    surprises = 0
    all_reports: list[Report] = []
    for step in steps():
        try:
            reports = step.run()
        except Exception as e:  # noqa: BLE001 - a demo step that cannot run is a surprise, not a crash
            surprises += 1
            table.add_row(step.name, "pass" if step.expect_pass else "fail", f"[red]could not run: {e}[/]",
                          "", "", "")
            continue
        ok = all(r.passed for r in reports)
        slug = _slug(step.name)
        write_json(reports, REPORTS / f"{slug}.json")
        write_markdown(reports, REPORTS / f"{slug}.md", title=step.name)
        all_reports += reports
        good = ok == step.expect_pass
        surprises += not good
        verdict = ", ".join(r.final_verdict for r in reports)
        table.add_row(step.name, "pass" if step.expect_pass else "fail",
                      f"[{'green' if good else 'red'}]{verdict}[/]",
                      str(sum(len(r.errors) for r in reports)), str(sum(len(r.warnings) for r in reports)),
                      f"reports/{slug}.md")
    console.print(table)
    if "--no-trainer" not in sys.argv:
        ok, msg = run_trainer(console)
        surprises += not ok
        console.print(f"trainer run --preset tiny: [{'green' if ok else 'red'}]{'record written' if ok else 'FAILED'}[/] ({msg})")
    write_markdown(all_reports, REPORTS / "demo_summary.md", title="golfcheck demo")
    console.print(f"reports written to {REPORTS}/ ({'all verdicts as expected' if not surprises else f'{surprises} unexpected verdict(s)'})")
    return 1 if surprises else 0


if __name__ == "__main__":
    sys.exit(main())
