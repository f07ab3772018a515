"""Plots for `--plots DIR` (the optional `[plots]` extra: matplotlib), written as PNG and SVG and
embedded in the Markdown report.

Tokenizer audit, from the report's own data:
  - byte drift by token id (the "Drift by id" table): a block of ids drifting together, such as
    byte-fallback ids 75..101, shows as one cluster;
  - byte drift by id class (the "Drift by class" table);
  - the per-document drift histogram (`report.plot_data["doc_drift"]`, meta − reference bytes).
Submission audit: per-seed validation BPB against step and train loss against wall time
(`plot_seed_curves`, fed from the log parser through `report.plot_data["seed_curves"]`); a throttled
or short seed stands out as a curve that ends early.

matplotlib is imported only here, only when plotting, with the non-interactive Agg backend.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

FORMATS = ("png", "svg")


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _slug(s: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("._")
    return s[-60:] or "report"


def _save(fig, folder: Path, stem: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in FORMATS:
        p = folder / f"{stem}.{ext}"
        fig.savefig(p, dpi=110, bbox_inches="tight", metadata={"Date": None} if ext == "svg" else None)
        out.append(p)
    fig.clf()
    _pyplot().close(fig)
    return out


@dataclass
class PlotSet:
    """Images written, per report subject: (caption, path of the PNG)."""

    folder: Path
    images: dict[str, list[tuple[str, Path]]] = field(default_factory=dict)

    def add(self, subject: str, caption: str, paths: list[Path]) -> None:
        self.images.setdefault(subject, []).append((caption, paths[0]))

    def relative_to_file(self, dest: str | Path) -> dict[str, list[tuple[str, str]]]:
        """Image paths as a Markdown file at `dest` ('-': the working directory) must link them."""
        base = Path.cwd() if str(dest) == "-" else Path(dest).resolve().parent
        return {s: [(c, Path(os.path.relpath(p.resolve(), base)).as_posix()) for c, p in imgs]
                for s, imgs in self.images.items()}

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.images.values())


# --- submission logs -------------------------------------------------------------------------------

def plot_seed_curves(series: Mapping[str, Mapping[str, Sequence[tuple[float, float]]]], folder: str | Path,
                     stem: str = "seeds", title: str | None = None) -> list[Path]:
    """Per-seed validation BPB against step, and train loss against wall time, side by side.

    `series` maps a seed label (e.g. "seed 1337") to that seed's curves, each a list of
    (x, y) pairs in the order they were logged:

        {"seed 1337": {"val_bpb": [(step, bpb), ...],
                       "train_loss_vs_time": [(seconds, loss), ...]},
         "seed 42":   {...}}

    Either curve may be missing or empty for a seed (it is then left out of that panel). Returns
    the written files: `<stem>.png` and `<stem>.svg` in `folder`. A seed that was throttled (fewer
    steps in the same time) ends to the left in the first panel and its loss curve lags in the second.
    """
    plt = _pyplot()
    fig, (ax_bpb, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    for label, curves in sorted(series.items()):
        bpb = list(curves.get("val_bpb") or [])
        if bpb:
            xs, ys = zip(*bpb)
            line, = ax_bpb.plot(xs, ys, marker="o", markersize=3, label=f"{label} ({int(max(xs)):,} steps)")
            ax_bpb.annotate(f"{ys[-1]:.4f}", (xs[-1], ys[-1]), fontsize=7, color=line.get_color(),
                            xytext=(3, 3), textcoords="offset points")
        loss = list(curves.get("train_loss_vs_time") or [])
        if loss:
            xs, ys = zip(*loss)
            ax_loss.plot(xs, ys, linewidth=1, label=f"{label} ({max(xs):,.0f} s)")
    ax_bpb.set(xlabel="step", ylabel="validation BPB", title="Validation BPB by step")
    ax_loss.set(xlabel="wall time (s)", ylabel="train loss", title="Train loss by wall time")
    for ax in (ax_bpb, ax_loss):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, Path(folder), stem)


# --- tokenizer audit -------------------------------------------------------------------------------

def _table(report, prefix: str):
    return next((t for t in report.tables if t.title.startswith(prefix)), None)


def plot_drift_by_id(ids: Sequence[int], drift: Sequence[int], folder: Path, stem: str,
                     title: str = "Byte drift by token id (meta − canonical)") -> list[Path]:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.5))
    colors = ["tab:red" if d > 0 else "tab:blue" for d in drift]
    ax.bar(ids, drift, width=max(1.0, (max(ids) - min(ids)) / 400 if ids else 1.0), color=colors)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set(xlabel="token id", ylabel="bytes (total over the val set)", title=title)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, folder, stem)


def plot_drift_by_class(classes: Sequence[str], drift: Sequence[int], folder: Path, stem: str) -> list[Path]:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(classes) + 1.2))
    ax.barh(list(classes), list(drift), color=["tab:red" if d > 0 else "tab:blue" for d in drift])
    ax.axvline(0, color="black", linewidth=0.6)
    ax.invert_yaxis()
    ax.set(xlabel="bytes (meta − canonical)", title="Byte drift by id class")
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, folder, stem)


def plot_doc_drift_histogram(doc_drift: Sequence[int], folder: Path, stem: str) -> list[Path]:
    import numpy as np

    d = np.asarray(doc_drift, dtype=np.int64)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    lo, hi = int(d.min()), int(d.max())
    bins = np.arange(lo, hi + 2) - 0.5 if hi - lo <= 80 else 80
    ax.hist(d, bins=bins, color="tab:purple")
    ax.set_yscale("log")
    bad = int(np.count_nonzero(d))
    ax.set(xlabel="bytes per document (meta − reference)", ylabel="documents (log)",
           title=f"Per-document drift: {bad:,} of {d.size:,} documents off")
    return _save(fig, folder, stem)


def _tokenizer_plots(r, folder: Path, stem: str, ps: PlotSet) -> None:
    t = _table(r, "Drift by id")
    if t is not None and t.rows:
        ic, tc = t.columns.index("id"), t.columns.index("total")
        rows = [row for row in t.rows if isinstance(row[ic], int)]
        if rows:
            ps.add(r.subject, "Byte drift by token id",
                   plot_drift_by_id([row[ic] for row in rows], [row[tc] for row in rows], folder, f"{stem}-drift-by-id"))
    t = _table(r, "Drift by class")
    if t is not None:
        rows = [row for row in t.rows if isinstance(row[-1], (int, float))]
        if rows:
            ps.add(r.subject, "Byte drift by id class",
                   plot_drift_by_class([str(row[0]) for row in rows], [row[-1] for row in rows], folder,
                                       f"{stem}-drift-by-class"))
    dd = r.plot_data.get("doc_drift")
    if dd is not None and len(dd):
        ps.add(r.subject, "Per-document drift histogram", plot_doc_drift_histogram(dd, folder, f"{stem}-doc-drift"))


def write_report_plots(reports: list, folder: str | Path) -> PlotSet:
    """Every plot the reports have data for; returns what was written, per report."""
    folder = Path(folder)
    ps = PlotSet(folder)
    for i, r in enumerate(reports):
        stem = f"{i + 1:02d}-{_slug(r.subject)}"
        if r.kind == "tokenizer":
            _tokenizer_plots(r, folder, stem, ps)
        curves = r.plot_data.get("seed_curves")
        if curves:
            ps.add(r.subject, "Per-seed validation BPB and train loss",
                   plot_seed_curves(curves, folder, f"{stem}-seeds", title=r.subject))
    return ps
