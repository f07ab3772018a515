"""Train-log reading that holds on real logs.

A record's log is read line by line (bounded: a per-line cap, nothing held but the facts), and
three things make it right on the logs records actually ship:

1. **The echoed source is not the log.** Most scripts print their own code first (the official
   baseline: `log0(code)` then a line of 100 `=`; newer ones: `Source code:` between two such
   lines; some minified). Lines inside the echo are never read as facts: a tokenizer path in an
   f-string, a `slot = 0` assignment, a `step:` format string. The echo starts at a line that
   opens Python source (`import x`, `from x import y`, a module docstring, a `#!`/comment header)
   or after a `Source code:` line, and ends at the next separator line (20+ `=`), or at the first
   line only a running script prints (`step:12/20000 …` with digits, `stopping_early:`, a metric
   with numbers) when the separator is missing. Checked against the 30 accepted records in
   ../shared/fixtures/records/merged: every echo there ends at a separator.
2. **Line formats are data** (`LINE_RULES`): each rule is a cheap guard (a prefix or a word that
   must be present), one anchored regex and a handler; a new dialect is one entry. No regex runs
   on a line that fails its guard, every regex is linear (no nested quantifiers over the same
   characters), and lines are capped in length before any regex sees them.
3. **Runs, not files.** A log is a training run, an eval-only run (no training lines, final
   metrics only: e.g. a TTT re-evaluation of a saved artifact) or not a run at all (a summary).
   Timestamp prefixes (`1713456789.123 `, `[12:34:56] `, ISO dates) are stripped first.

Timings are kept as the shared budget convention classifies them (`audit.timing`): training,
artifact work (GPTQ calibration, Hessians, self-generated calibration data), export (quantizing,
compressing, saving) and evaluation passes (scored or diagnostic).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from audit.budgets import MAX_LOG_LINE_CHARS
from audit.timing import Phase, Timed

MAX_LINE = MAX_LOG_LINE_CHARS  # longer lines are skipped (counted), never held whole
MAX_REGEX_LINE = 4096  # facts live in short lines; a longer line is only scanned for its prefix
MAX_CONFIG_KEYS = 4000
MAX_ITEMS = 5000  # metrics / timings kept per log (a hostile log may print millions)
MAX_CURVE = 20000  # points kept per training curve
_SNIFF = 8192

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_INT_MAX_DIGITS = 18  # a count with more digits than this is not a count

SEPARATOR = re.compile(r"^={20,}\s*$")
CODE_START = re.compile(r"^(?:import [A-Za-z_][\w.]*|from [A-Za-z_.][\w.]* import |\"\"\"|'''|#!|# -\*-)")
FIRST_LINE_DOCSTRING = re.compile(r"^(?:\"[^\"]{0,300}\"|'[^']{0,300}')\s*$")  # a module docstring line
TIMESTAMP = re.compile(
    r"^(?:\[?\d{10}(?:\.\d+)?\]?[ \t]+|\[\d\d:\d\d:\d\d(?:\.\d+)?\][ \t]*"
    r"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?Z?(?: [-|] | )?)")

# Labels of evaluation passes that do not evaluate the artifact or whose value the score never
# uses: printed by the records as "diagnostic …", "DIAGNOSTIC post_ema", "pre-quantization post-ema".
DIAGNOSTIC = re.compile(r"diagnostic|pre[-_ ]?quant|post[-_]ema|^pre_|prequant", re.I)


@dataclass
class Metric:
    label: str
    val_loss: float
    val_bpb: float
    bpb_text: str  # as printed (precision matters for comparisons)
    loss_text: str
    eval_ms: float | None
    line: int
    diagnostic: bool = False

    @property
    def decimals(self) -> int:
        return len(self.bpb_text.split(".", 1)[1]) if "." in self.bpb_text else 0

    @property
    def loss_decimals(self) -> int:
        return len(self.loss_text.split(".", 1)[1]) if "." in self.loss_text else 0

    @property
    def base_label(self) -> str:
        lab = self.label.strip()
        return lab[:-6] if lab.endswith("_exact") else lab


@dataclass
class TimedLine:
    phase: Phase
    seconds: float
    line: int
    text: str
    nested_in: int | None = None  # line of the enclosing timing that already counts it

    def timed(self) -> Timed:
        return Timed(self.phase, self.seconds, self.text)


@dataclass
class SeedLog:
    """One log file: the facts of one run (or of none, when it is not a run log)."""

    path: Path
    name: str  # path relative to the record folder
    sha256: str = ""
    size: int = 0
    seed: int | None = None
    seed_source: str | None = None
    seed_line: int | None = None
    file_seed: int | None = None  # the seed its file name states
    steps: int | None = None
    iterations: int | None = None
    train_ms: float | None = None
    step_avg_ms: float | None = None
    stop_reason: str | None = None
    stop_line: int | None = None
    reserved_ms: float | None = None
    effective_cap_ms: float | None = None
    reserve_line: int | None = None
    timings: list[TimedLine] = field(default_factory=list)  # after training: artifact work, export
    code_bytes: int | None = None  # raw code size the script logged ("Code size: N bytes")
    code_line: int | None = None
    code_compressed: int | None = None  # "Code size (compressed): N bytes"
    code_compressed_line: int | None = None
    code_uncompressed: int | None = None  # "Code size (uncompressed): N bytes"
    model_bytes: int | None = None
    model_label: str | None = None
    model_line: int | None = None
    raw_model_bytes: int | None = None
    total_bytes: int | None = None
    total_line: int | None = None
    metrics: list[Metric] = field(default_factory=list)  # final metrics (after training)
    val_curve: list[tuple[int, float]] = field(default_factory=list)  # (step, val_bpb) during training
    train_curve: list[tuple[float, float]] = field(default_factory=list)  # (train seconds, train loss)
    world_size: int | None = None
    val_tokens: int | None = None
    val_tokens_line: int | None = None
    tokenizer: dict[str, str] = field(default_factory=dict)
    config: dict[str, str] = field(default_factory=dict)  # hyperparameter dumps and key:value lines
    markers: dict[str, int] = field(default_factory=dict)  # first word of a log-proper line -> line
    ttt_chunks: int = 0
    echo_lines: int = 0  # lines of echoed source skipped
    lines: int = 0
    long_lines: int = 0
    binary: bool = False
    bytes_read: int = 0
    training_seen: bool = False

    # --- derived -----------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """"train" (a training run), "eval-only" (final metrics without training) or "none"."""
        if self.training_seen and self.metrics:
            return "train"
        if self.metrics:
            return "eval-only"
        return "train-incomplete" if self.training_seen else "none"

    @property
    def final_metrics(self) -> list[Metric]:
        return self.metrics

    @property
    def scored_metrics(self) -> list[Metric]:
        return [m for m in self.metrics if not m.diagnostic]

    @property
    def eval_passes(self) -> dict[str, tuple[float, int, bool]]:
        """base label -> (eval ms, line, diagnostic): one entry per pass (`x` and `x_exact` are one)."""
        out: dict[str, tuple[float, int, bool]] = {}
        for m in self.metrics:
            if m.eval_ms is not None:
                out.setdefault(m.base_label, (m.eval_ms, m.line, m.diagnostic))
        return out

    @property
    def step_ms(self) -> float | None:
        if self.step_avg_ms is not None:
            return self.step_avg_ms
        if self.train_ms is not None and self.steps:
            return self.train_ms / self.steps
        return None

    def counted_timings(self, phase: Phase) -> list[TimedLine]:
        return [t for t in self.timings if t.phase is phase and t.nested_in is None]

    def score_metric(self, claimed: float | None = None) -> Metric | None:
        """The metric the score is defined by: the one matching the claim, else the best-ranked."""
        finals = self.scored_metrics or self.metrics
        if not finals:
            return None
        if claimed is not None:
            hit = self.matching(claimed)
            if hit is not None:
                return hit
        return max(finals, key=lambda m: (_rank(m.label), m.decimals, m.line))

    def matching(self, claimed: float, tol: float = 0.0) -> Metric | None:
        hits = [m for m in self.metrics
                if abs(m.val_bpb - claimed) <= max(tol, 0.5 * 10 ** -min(m.decimals, 8)) + 1e-12]
        return max(hits, key=lambda m: (not m.diagnostic, m.decimals, m.line)) if hits else None

    def ttt_seen(self) -> int | None:
        """First line of the log proper showing test-time training ran, if any."""
        cands = [ln for k, ln in self.markers.items() if k.startswith("ttt") and k not in self.config]
        cands += [m.line for m in self.metrics if "ttt" in m.label.lower()]
        return min(cands) if cands else None


RunLog = SeedLog  # the name the facts model uses


def _rank(label: str) -> int:
    """Which final metric is 'the score' when no claim says so: TTT > sliding > roundtrip > rest."""
    lab = label.lower()
    if DIAGNOSTIC.search(lab):
        return 0
    if "ttt" in lab:
        return 4
    if "sliding" in lab:
        return 3
    if "roundtrip" in lab or "quantized" in lab or "int" in lab:
        return 2
    return 1


# --- line rules ---------------------------------------------------------------------------------
@dataclass
class _State:
    in_dump: bool = False
    last_step_no: int = 0  # line of the last training step line
    last_step_text: str | None = None


@dataclass(frozen=True)
class LineRule:
    """One line format: `guard` (a prefix, or a word that must occur) before `regex` runs."""

    name: str
    guard: Callable[[str], bool]
    regex: re.Pattern
    handle: Callable[[SeedLog, re.Match, int, _State], None]


def _int(text: str) -> int | None:
    # ASCII digits only: "²".isdigit() is True but int("²") fails
    return int(text) if text.isascii() and text.isdigit() and len(text) <= _INT_MAX_DIGITS else None


def _h_step(log: SeedLog, m: re.Match, no: int, st: _State) -> None:
    log.training_seen = True
    st.last_step_no, st.last_step_text = no, m.group(0)
    rest = m.group(3)
    if "val_bpb" in rest and len(log.val_curve) < MAX_CURVE:
        v, step = RE_VAL_BPB.search(rest), _int(m.group(1))
        if v and step is not None:
            log.val_curve.append((step, float(v.group(1))))
    elif "train_loss" in rest and len(log.train_curve) < MAX_CURVE:
        tl, t = RE_TRAIN_LOSS.search(rest), _train_ms(rest)
        if tl and t is not None:
            log.train_curve.append((t / 1000.0, float(tl.group(1))))


def _h_stop(log: SeedLog, m: re.Match, no: int, st: _State) -> None:
    log.training_seen = True
    log.stop_reason, log.stop_line = m.group(1), no
    rest = m.group(2)
    t = _train_ms(rest)
    if t is not None:
        log.train_ms = t
    a = RE_STEP_AVG.search(rest)
    if a:
        log.step_avg_ms = float(a.group(1))
    s = RE_STOP_STEP.search(rest)
    if s:
        log.steps, log.iterations = _int(s.group(1)), _int(s.group(2))


def _h_reserve(log: SeedLog, m: re.Match, no: int, st: _State) -> None:
    value, unit = float(m.group(1)), m.group(2)
    log.reserved_ms = value * (1000.0 if unit == "s" else 1.0)
    if m.group(3):
        log.effective_cap_ms = float(m.group(3))
    log.reserve_line = no


def _h_metric(log: SeedLog, m: re.Match, no: int, st: _State) -> None:
    label = m.group("label").strip()
    if not label or re.fullmatch(r"(?:step:)?\d+/\d+", label):
        return  # a periodic validation during training, not a final metric
    rest = m.group("rest")
    ev = RE_EVAL_MS.search(rest)
    if len(log.metrics) >= MAX_ITEMS:
        del log.metrics[: MAX_ITEMS // 2]  # keep the latest: final metrics come last
    log.metrics.append(Metric(label=label, val_loss=float(m.group("loss")), val_bpb=float(m.group("bpb")),
                              bpb_text=m.group("bpb"), loss_text=m.group("loss"),
                              eval_ms=float(ev.group(1)) if ev else None, line=no,
                              diagnostic=bool(DIAGNOSTIC.search(label))))


def _h_code(log: SeedLog, m: re.Match, no: int, st: _State) -> None:
    qual, n = (m.group(1) or "").lower(), _int(m.group(2))
    if "compressed" in qual and "un" not in qual:
        log.code_compressed, log.code_compressed_line = n, no
    elif "uncompressed" in qual:
        log.code_uncompressed = n
        log.code_line = log.code_line or no
    else:
        log.code_bytes, log.code_line = n, no


def _h_model(log: SeedLog, m: re.Match, no: int, st: _State) -> None:
    label, n = (m.group(1) or "").strip(), _int(m.group(2))
    if not label:
        log.raw_model_bytes = n
    else:
        log.model_bytes, log.model_label, log.model_line = n, label, no


def _h_total(log: SeedLog, m: re.Match, no: int, st: _State) -> None:
    label = (m.group(1) or "").strip()
    if label or log.total_bytes is None:  # the labelled (compressed) total is the artifact's
        log.total_bytes, log.total_line = _int(m.group(2)), no


def _h_budget(log: SeedLog, m: re.Match, no: int, st: _State) -> None:
    if log.total_bytes is None:
        log.total_bytes, log.total_line = _int(m.group(1)), no


def _h_artifact_code(log: SeedLog, m: re.Match, no: int, st: _State) -> None:
    if log.code_bytes is None:
        log.code_bytes, log.code_line = _int(m.group(1)), no


def _h_short_seed(log: SeedLog, m: re.Match, no: int, st: _State) -> None:
    if log.seed_line is None:
        log.seed, log.seed_source, log.seed_line = _int(m.group(1)), f"log line {no} `s:`", no


def _h_val_tokens(log: SeedLog, m: re.Match, no: int, st: _State) -> None:
    n = _int(m.group(1))
    if n is not None and log.val_tokens is None:
        log.val_tokens, log.val_tokens_line = n, no


def _h_tokenizer(log: SeedLog, m: re.Match, no: int, st: _State) -> None:
    for k, v in RE_TOK_FIELD.findall(m.group(0)):
        if "{" not in v:  # an f-string placeholder is code, not a path
            log.tokenizer.setdefault(k, v)


def _h_timing(log: SeedLog, m: re.Match, no: int, st: _State) -> None:
    if not (log.training_seen or st.last_step_no) or len(log.timings) >= MAX_ITEMS:
        return
    text = m.group(0)
    secs = float(m.group("v")) / (1000.0 if m.group("u") == "ms" else 1.0)
    log.timings.append(TimedLine(_timing_phase(text), secs, no, text[:200]))


def _h_ttt_chunk(log: SeedLog, m: re.Match, no: int, st: _State) -> None:
    log.ttt_chunks += 1
    log.markers.setdefault("ttt_chunk", no)


RE_STEP = re.compile(r"^(?:step:\s*)?(\d{1,9})/(\d{1,9})\b(.*)$")
RE_STOP = re.compile(r"^stopping_early:\s*([\w\-]+)(.*)$")
RE_STOP_STEP = re.compile(r"step[:=]\s*(\d{1,9})/(\d{1,9})")
RE_TRAIN_MS = re.compile(r"train_time[:=]\s*(\d{1,12}(?:\.\d+)?)ms")
RE_TRAIN_MIN = re.compile(r"train_time[:=]\s*(\d{1,6}(?:\.\d+)?)m\b")
RE_STEP_AVG = re.compile(r"step_avg[:=]\s*(\d{1,9}(?:\.\d+)?)ms")
RE_VAL_BPB = re.compile(r"\bval_bpb[:=]\s*(" + _NUM + ")")
RE_TRAIN_LOSS = re.compile(r"\btrain_loss[:=]\s*(" + _NUM + ")")
RE_RESERVE = re.compile(r"^.{0,80}?reserving\s+(\d{1,9}(?:\.\d+)?)\s*(ms|s)\b(?:[^=]{0,80}?effective[=:]\s*(\d{1,12})\s*ms)?",
                        re.I)
RE_METRIC = re.compile(r"^(?P<label>[A-Za-z][\w.+\-/:]{0,80}(?: [\w.+\-/:()=,]{1,40}){0,6}?)\s+val_loss[:=]\s*"
                       r"(?P<loss>" + _NUM + r")\s+val_bpb[:=]\s*(?P<bpb>" + _NUM + r")(?P<rest>.*)$")
RE_EVAL_MS = re.compile(r"eval_time[:=]\s*(\d{1,12}(?:\.\d+)?)ms")
RE_CODE = re.compile(r"^Code size(?:\s*\(([\w ]{1,20})\))?:\s*(\d{1,12})\s*bytes", re.I)
RE_MODEL = re.compile(r"^Serialized model(?:\s+([^:]{1,60}))?:\s*(\d{1,12})\s*bytes", re.I)
RE_TOTAL = re.compile(r"^Total submission size([^:]{0,60}):\s*(\d{1,12})\s*bytes", re.I)
RE_VAL_TOKENS = re.compile(r"^(?:val_loader:.{0,400}?\btokens[:=]\s*|val_tokens[:=]\s*)(\d{1,12})\b")
RE_TOK_FIELD = re.compile(r"(tokenizer_(?:path|kind|meta_path))[=:]\s*(\S{1,300})")
RE_TOKENIZER_LINE = re.compile(r"^.{0,400}?tokenizer_(?:path|kind|meta_path)[=:]")
RE_BUDGET = re.compile(r"^budget:(\d{1,12})/16000000\b")
RE_ARTIFACT_CODE = re.compile(r"^artifact:.{0,200}?\bcode:(\d{1,12})\b")
RE_SHORT_SEED = re.compile(r"^params:\d{1,12}\b.{0,200}?\bs:(\d{1,12})\b")
RE_TIMING = re.compile(r"^.{0,300}?\b(?:in|took|elapsed[=:]?|done in)\s+(?P<v>\d{1,9}(?:\.\d+)?)\s*(?P<u>ms|s)\b")
RE_TTT_CHUNK = re.compile(r"^ttt_chunk\s*\[(\d{1,9})/(\d{1,9})\]")
RE_DUMP = re.compile(r"^\s{2,}([A-Za-z_]\w{0,80}):\s*(.{0,300}?)\s*$")
RE_KV_LINE = re.compile(r"^(?:[A-Za-z_]\w{0,80}[:=][^\s:=]{1,200}\s*){1,40}$")
RE_KV = re.compile(r"([A-Za-z_]\w{0,80})[:=]([^\s:=]{1,200})")
RE_MARKER = re.compile(r"^([A-Za-z][\w\-]{0,80})[:\s]")

_ARTIFACT_WORDS = ("gptq", "calib", "hessian", "selfgen", "self-gen", "autoregressive", "generated")
_TIMING_WORDS = ("gptq", "calib", "hessian", "quantiz", "compress", "serializ", "saved", "generat")


def _timing_phase(text: str) -> Phase:
    """Artifact work (data-dependent: calibration, Hessians, self-generated data) vs export."""
    low = text.lower()
    if any(w in low for w in ("quantized in", "compressed", "saved", "serializ", "quantization in")):
        return Phase.EXPORT
    return Phase.ARTIFACT_WORK


def _train_ms(rest: str) -> float | None:
    m = RE_TRAIN_MS.search(rest)
    if m:
        return float(m.group(1))
    m = RE_TRAIN_MIN.search(rest)
    return float(m.group(1)) * 60_000.0 if m else None


LINE_RULES: tuple[LineRule, ...] = (
    LineRule("ttt-chunk", lambda s: s.startswith("ttt_chunk"), RE_TTT_CHUNK, _h_ttt_chunk),
    LineRule("step", lambda s: s[0].isdigit() or s.startswith("step:"), RE_STEP, _h_step),
    LineRule("stop", lambda s: s.startswith("stopping_early"), RE_STOP, _h_stop),
    LineRule("metric", lambda s: "val_loss" in s and "val_bpb" in s, RE_METRIC, _h_metric),
    LineRule("reserve", lambda s: "reserving" in s.lower(), RE_RESERVE, _h_reserve),
    LineRule("code-size", lambda s: s[:4].lower() == "code", RE_CODE, _h_code),
    LineRule("model-size", lambda s: s[:10].lower() == "serialized", RE_MODEL, _h_model),
    LineRule("total-size", lambda s: s[:5].lower() == "total", RE_TOTAL, _h_total),
    LineRule("val-tokens", lambda s: s.startswith(("val_loader", "val_tokens")), RE_VAL_TOKENS, _h_val_tokens),
    LineRule("tokenizer", lambda s: "tokenizer_" in s, RE_TOKENIZER_LINE, _h_tokenizer),
    LineRule("budget", lambda s: s.startswith("budget:"), RE_BUDGET, _h_budget),
    LineRule("artifact-code", lambda s: s.startswith("artifact:"), RE_ARTIFACT_CODE, _h_artifact_code),
    LineRule("params-seed", lambda s: s.startswith("params:"), RE_SHORT_SEED, _h_short_seed),
    LineRule("timing", lambda s: any(w in s.lower() for w in _TIMING_WORDS), RE_TIMING, _h_timing),
)
# Rules after which the line is done (the rest may also read a config key from it).
_TERMINAL = {"ttt-chunk", "step", "stop", "metric", "reserve", "code-size", "model-size", "total-size",
             "timing", "budget", "artifact-code", "params-seed"}
# Lines only a running script prints: they end an echo that had no closing separator.
_RUNNING = {"step", "stop", "metric"}


# --- the reader ------------------------------------------------------------------------------------
def _looks_binary(head: bytes) -> bool:
    """Binary when control bytes or invalid UTF-8 are more than a stray few (5%) of the head."""
    if not head:
        return False
    bad = sum(head.count(bytes([b])) for b in (*range(0, 9), *range(14, 32), 127))
    text = head.decode("utf-8", "replace")
    if text.endswith("\ufffd"):
        text = text.rstrip("\ufffd")
    return bad > len(head) * 0.05 or text.count("\ufffd") > max(len(text), 1) * 0.05


def _iter_lines(f, max_line: int):
    """Yield line text per line; over-long lines yield None and are drained in chunks."""
    while True:
        raw = f.readline(max_line + 1)
        if not raw:
            return
        if len(raw) > max_line and not raw.endswith(b"\n"):
            while True:
                rest = f.readline(max_line)
                if not rest or rest.endswith(b"\n"):
                    break
            yield None
            continue
        yield raw.decode("utf-8", "replace").rstrip("\r\n")


_FILE_SEED = re.compile(r"seed[_\-]?(\d{1,12})|_(\d{1,12})\.(?:log|txt)$", re.I)


def parse_log(path: str | Path, *, name: str | None = None, max_line: int = MAX_LINE) -> SeedLog:
    """Parse one log. Never raises on content; unreadable files raise OSError to the caller."""
    path = Path(path)
    log = SeedLog(path=path, name=name or path.name)
    m = _FILE_SEED.search(path.name)
    if m:
        log.file_seed = int(m.group(1) or m.group(2))
        log.seed, log.seed_source = log.file_seed, f"file name {path.name}"
    with open(path, "rb") as f:
        head = f.read(_SNIFF)
        if _looks_binary(head):
            log.binary = True
            return log
        f.seek(0)
        _parse_stream(log, f, max_line)
        log.bytes_read = log.size = f.tell()
        f.seek(0)
        digest = hashlib.sha256()  # copies of one run are found by hash
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    log.sha256 = digest.hexdigest()
    return log


def _parse_stream(log: SeedLog, f, max_line: int) -> None:
    st = _State()
    echo = 0  # 0: log proper; 1: echo opened by `Source code:` (separators before the code skipped); 2: in code
    first = True
    for no, line in enumerate(_iter_lines(f, max_line), start=1):
        log.lines = no
        if line is None:
            log.long_lines += 1
            continue
        s = TIMESTAMP.sub("", line, count=1).strip() if line[:1].isdigit() or line[:1] == "[" else line.strip()
        if not s or "\x00" in s:
            continue
        if not echo and s.startswith("step:") and len(s) <= MAX_REGEX_LINE:  # most lines of a big log
            m = RE_STEP.match(s)
            if m:
                _h_step(log, m, no, st)
                continue
        sep = s[0] == "=" and bool(SEPARATOR.match(s))
        if echo == 1 and sep:
            continue
        if echo:
            if sep or _running_line(s):
                echo = 0
                if sep:
                    continue
            else:
                echo = 2
                log.echo_lines += 1
                continue
        if sep:
            continue
        if s == "Source code:":
            echo = 1
            continue
        if (first and (CODE_START.match(s) or FIRST_LINE_DOCSTRING.match(s))) or (
                s.startswith(("import ", "from ")) and CODE_START.match(s)):
            echo = 2
            log.echo_lines += 1
            first = False
            continue
        first = False
        _read_line(log, line, s, no, st)
    if st.last_step_text is not None:
        _finish_steps(log, st.last_step_text)


def _running_line(s: str) -> bool:
    if len(s) > MAX_REGEX_LINE:
        return False
    for r in LINE_RULES:
        if r.name in _RUNNING and r.guard(s) and r.regex.match(s):
            return True
    return False


def _read_line(log: SeedLog, raw: str, s: str, no: int, st: _State) -> None:
    if st.in_dump:
        d = RE_DUMP.match(raw) if len(raw) <= MAX_REGEX_LINE else None
        if d:
            _config(log, d.group(1), d.group(2), no)
            return
        st.in_dump = False
    if s.startswith(("Hyperparameters", "--- Hyperparameters")):
        st.in_dump = True
        return
    if len(s) > MAX_REGEX_LINE:
        return
    for r in LINE_RULES:
        if r.guard(s):
            m = r.regex.match(s)
            if m:
                r.handle(log, m, no, st)
                if r.name in _TERMINAL:
                    _marker(log, s, no)
                    return
    if RE_KV_LINE.match(s) or s.startswith("val_tokens"):
        for k, v in RE_KV.findall(s.replace(": ", ":")):
            _config(log, k, v, no)
    _marker(log, s, no)


def _config(log: SeedLog, key: str, value: str, no: int) -> None:
    key = key.lower()
    if key not in log.config and len(log.config) < MAX_CONFIG_KEYS:
        log.config[key] = value[:200]
    if key == "world_size" and log.world_size is None:
        log.world_size = _int(value)
    elif key == "val_tokens" and log.val_tokens is None and _int(value) is not None:
        log.val_tokens, log.val_tokens_line = _int(value), no
    elif key == "seed" and _int(value) is not None and log.seed_line is None:
        log.seed, log.seed_source, log.seed_line = _int(value), f"log line {no} `seed`", no
    elif key in ("tokenizer_path", "tokenizer_kind", "tokenizer_meta_path") and "{" not in value:
        log.tokenizer.setdefault(key, value)


def _marker(log: SeedLog, s: str, no: int) -> None:
    m = RE_MARKER.match(s)
    if m and len(log.markers) < 2000:
        log.markers.setdefault(m.group(1).lower(), no)


def _finish_steps(log: SeedLog, text: str) -> None:
    """Fill steps/train time from the last step line when no stopping line gave them."""
    m = RE_STEP.match(text)
    if not m:
        return
    step, its, rest = _int(m.group(1)), _int(m.group(2)), m.group(3)
    if log.steps is None:
        log.steps, log.iterations = step, its
    if log.step_avg_ms is None:
        a = RE_STEP_AVG.search(rest)
        if a:
            log.step_avg_ms = float(a.group(1))
    if log.train_ms is None:
        log.train_ms = _train_ms(rest)
    if log.stop_reason is None and log.steps is not None and log.iterations and log.steps >= log.iterations:
        log.stop_reason = "iterations"


def nest_timings(log: SeedLog) -> None:
    """Mark nested timings so each piece of work counts once. A "done in X" / "total" line that
    covers the timings printed since the previous such line (X ≥ their sum) encloses them:
    `gptq:generated 64 sequences in 238.8s` then `gptq:done in 239.9s` is ~240 s, not 479 s."""
    block: list[TimedLine] = []
    for t in log.timings:
        low = t.text.lower()
        enclosing = bool(re.search(r"\bdone in\b|\btotal\b|\bin total\b|\boverall\b", low))
        if enclosing and block and t.seconds + 0.05 >= sum(b.seconds for b in block if b.nested_in is None):
            for b in block:
                if b.nested_in is None:
                    b.nested_in = t.line
            if any(b.phase is Phase.ARTIFACT_WORK for b in block):
                t.phase = Phase.ARTIFACT_WORK
            block = []
            continue
        block.append(t)


def looks_like_log(head: bytes) -> bool:
    """Whether a text file's head holds log content (for *.txt files that may be logs)."""
    return any(k in head for k in (b"val_bpb", b"train_time", b"step:", b"val_loss", b"stopping_early"))
