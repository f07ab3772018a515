"""Train-log parser for the dialects records use.

Streams the file line by line with a per-line cap (bounded memory on a 200 MB log), never trusts
it: unknown lines are ignored, binary content is reported, numbers are read with anchored regexes.
Dialects seen in published records (all handled):

    step:7091/9000 val_loss:1.9604 val_bpb:1.0971 train_time:600086ms step_avg:84.63ms
    4500/20000 train_loss: 2.7622 train_time: 9.7m tok/s: 6095957
    stopping_early: wallclock_cap train_time:600086ms step:7091/9000   (or `train_time: 588047ms`)
    gptq:reserving 12s, effective=588000ms
    GPTQ:collected 67 Hessians in 12.7s  /  gptq:generated 64 sequences in 210619ms
    Code size: 16630 bytes / Serialized model int6+lzma: N bytes / Total submission size …: N bytes
    final_int6_sliding_window_exact val_loss:1.93518851 val_bpb:1.08295388
    quantized_ttt val_loss:2.79180191 val_bpb:1.08079352 eval_time:366525ms
    ttt_chunk [11/1863] bpb=1.060421 time=2.7s
    world_size:8 … / `  world_size: 8` (hyperparameter dump) / val_tokens: N / val_loader:… tokens:N
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

MAX_LINE = 64 * 1024  # longer lines are skipped (counted), never held in memory whole
MAX_CONFIG_KEYS = 4000
MAX_METRICS = 5000  # metric / post-work lines kept per log (a hostile log may print millions)
_SNIFF = 8192

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"

RE_STEP_A = re.compile(r"^\s*step:(\d+)/(\d+)\b(.*)$")
RE_STEP_B = re.compile(r"^\s*(\d+)/(\d+)\s+(?:train_loss|val_loss)\b(.*)$")
RE_TRAIN_MS = re.compile(r"train_time[:=]\s*(\d+(?:\.\d+)?)ms")
RE_TRAIN_MIN = re.compile(r"train_time[:=]\s*(\d+(?:\.\d+)?)m\b")
RE_STEP_AVG = re.compile(r"step_avg[:=]\s*(\d+(?:\.\d+)?)ms")
RE_STOP = re.compile(r"^\s*stopping_early:\s*([\w\-]+)(.*)$")
RE_STOP_STEP = re.compile(r"step[:=]\s*(\d+)/(\d+)")
RE_RESERVE = re.compile(r"reserving\s+(\d+(?:\.\d+)?)\s*s\b(?:.*?effective[=:]\s*(\d+)\s*ms)?", re.I)
RE_IN_TIME = re.compile(r"\bin\s+(\d+(?:\.\d+)?)\s*(ms|s)\b")
RE_ELAPSED = re.compile(r"\b(?:time|elapsed)[=:]\s*(\d+(?:\.\d+)?)\s*(ms|s)\b")
RE_CODE = re.compile(r"^\s*Code size:\s*(\d+)\s*bytes", re.I)
RE_MODEL = re.compile(r"^\s*Serialized model\s+([^:]+?):\s*(\d+)\s*bytes", re.I)
RE_MODEL_RAW = re.compile(r"^\s*Serialized model:\s*(\d+)\s*bytes", re.I)
RE_TOTAL = re.compile(r"^\s*Total submission size([^:]*):\s*(\d+)\s*bytes", re.I)
RE_METRIC = re.compile(
    r"^\s*(?P<label>[A-Za-z][\w .+\-/:]*?)\s+val_loss[:=]\s*(?P<loss>" + _NUM + r")"
    r"\s+val_bpb[:=]\s*(?P<bpb>" + _NUM + r")(?P<rest>.*)$")
RE_EVAL_MS = re.compile(r"eval_time[:=]\s*(\d+(?:\.\d+)?)ms")
RE_TTT_CHUNK = re.compile(r"ttt_chunk\s*\[(\d+)/(\d+)\]")
RE_KV_LINE = re.compile(r"^(?:[A-Za-z_][\w]*[:=][^\s:=]+\s*)+$")
RE_KV = re.compile(r"([A-Za-z_][\w]*)[:=]([^\s:=]+)")
RE_DUMP = re.compile(r"^\s{2,}([A-Za-z_][\w]*):\s*(.*?)\s*$")
RE_VAL_TOKENS = re.compile(r"^\s*val_loader:.*?\btokens[:=]\s*(\d+)")
RE_TOK_FIELD = re.compile(r"(tokenizer_(?:path|kind|meta_path))[=:]\s*(\S+)")
RE_MARKER = re.compile(r"^\s*([A-Za-z][\w\-]*)[:\s]")

# words in a line that signal post-training artifact work (GPTQ calibration, self-generation)
_ARTIFACT_WORK = ("gptq", "calib", "hessian")


@dataclass
class Metric:
    label: str
    val_loss: float
    val_bpb: float
    bpb_text: str  # as printed (precision matters for comparisons)
    loss_text: str
    eval_ms: float | None
    line: int
    after_training: bool

    @property
    def decimals(self) -> int:
        return len(self.bpb_text.split(".", 1)[1]) if "." in self.bpb_text else 0

    @property
    def base_label(self) -> str:
        lab = self.label.strip()
        return lab[:-6] if lab.endswith("_exact") else lab


@dataclass
class PostWork:
    text: str
    ms: float
    line: int


@dataclass
class SeedLog:
    path: Path
    name: str
    seed: int | None = None
    seed_source: str | None = None
    steps: int | None = None
    iterations: int | None = None
    train_ms: float | None = None
    step_avg_ms: float | None = None
    stop_reason: str | None = None
    stop_line: int | None = None
    reserved_ms: float | None = None
    effective_cap_ms: float | None = None
    reserve_line: int | None = None
    post_work: list[PostWork] = field(default_factory=list)
    code_bytes: int | None = None
    code_line: int | None = None
    model_bytes: int | None = None
    model_label: str | None = None
    model_line: int | None = None
    raw_model_bytes: int | None = None
    total_bytes: int | None = None
    total_line: int | None = None
    metrics: list[Metric] = field(default_factory=list)
    world_size: int | None = None
    val_tokens: int | None = None
    tokenizer: dict[str, str] = field(default_factory=dict)
    config: dict[str, str] = field(default_factory=dict)  # hyperparameter dumps and key:value lines
    markers: dict[str, int] = field(default_factory=dict)  # line prefix (e.g. "ttt_sliding") -> first line
    ttt_chunks: int = 0
    ttt_chunks_total: int | None = None
    lines: int = 0
    long_lines: int = 0
    binary: bool = False
    bytes_read: int = 0

    # --- derived -----------------------------------------------------------------------------
    @property
    def final_metrics(self) -> list[Metric]:
        return [m for m in self.metrics if m.after_training]

    @property
    def eval_ms_total(self) -> float:
        return sum(m.eval_ms for m in self.final_metrics if m.eval_ms is not None)

    @property
    def post_work_ms(self) -> float:
        return sum(p.ms for p in self.post_work)

    @property
    def step_ms(self) -> float | None:
        """Step time: the logged average, else train time / steps."""
        if self.step_avg_ms is not None:
            return self.step_avg_ms
        if self.train_ms is not None and self.steps:
            return self.train_ms / self.steps
        return None

    def score_metric(self, claimed: float | None = None) -> Metric | None:
        """The metric the score is defined by: the one matching the claim, else the best-ranked."""
        finals = self.final_metrics
        if not finals:
            return None
        if claimed is not None:
            hits = [m for m in finals if abs(m.val_bpb - claimed) <= 0.5 * 10 ** -min(m.decimals, 8) + 1e-12]
            if hits:
                return max(hits, key=lambda m: (m.decimals, m.line))
        return max(finals, key=lambda m: (_rank(m.label), m.decimals, m.line))

    def ttt_seen(self) -> int | None:
        """First line showing test-time training ran, if any."""
        # a config line (`ttt_enabled:False`) says nothing about TTT running; progress lines do
        cands = [ln for k, ln in self.markers.items() if k.startswith("ttt") and k not in self.config]
        cands += [m.line for m in self.final_metrics if "ttt" in m.label.lower()]
        return min(cands) if cands else None


def _rank(label: str) -> int:
    """Which final metric is 'the score' when no claim says so: TTT > sliding > roundtrip > rest."""
    lab = label.lower()
    if "diagnostic" in lab or lab.startswith("pre"):
        return 0
    if "ttt" in lab:
        return 4
    if "sliding" in lab:
        return 3
    if "roundtrip" in lab or "quantized" in lab or "int" in lab:
        return 2
    return 1


def _ms(value: str, unit: str) -> float:
    return float(value) * (1000.0 if unit == "s" else 1.0)


def _looks_binary(head: bytes) -> bool:
    """Binary when control bytes or invalid UTF-8 are more than a stray few (5%) of the head."""
    if not head:
        return False
    bad = sum(head.count(bytes([b])) for b in (*range(0, 9), *range(14, 32), 127))
    text = head.decode("utf-8", "replace")
    if text.endswith("\ufffd"):  # a character cut by the sniff window
        text = text.rstrip("\ufffd")
    return bad > len(head) * 0.05 or text.count("\ufffd") > max(len(text), 1) * 0.05


def _iter_lines(f, max_line: int):
    """Yield (line_text | None) per line; over-long lines yield None and are drained in chunks."""
    while True:
        raw = f.readline(max_line + 1)
        if not raw:
            return
        if len(raw) > max_line and not raw.endswith(b"\n"):
            while True:  # drain the rest of the line without keeping it
                rest = f.readline(max_line)
                if not rest or rest.endswith(b"\n"):
                    break
            yield None
            continue
        yield raw.decode("utf-8", "replace").rstrip("\r\n")


def parse_log(path: str | Path, *, max_line: int = MAX_LINE) -> SeedLog:
    """Parse one train log. Never raises on content; unreadable files raise OSError to the caller."""
    path = Path(path)
    log = SeedLog(path=path, name=path.name)
    m = re.search(r"seed[_\-]?(\d+)", path.name, re.I)
    if m:
        log.seed, log.seed_source = int(m.group(1)), f"file name {path.name}"
    with open(path, "rb") as f:
        head = f.read(_SNIFF)
        if _looks_binary(head):
            log.binary = True
            return log
        f.seek(0)
        _parse_stream(log, f, max_line)
        log.bytes_read = f.tell()
    return log


def _parse_stream(log: SeedLog, f, max_line: int) -> None:
    in_dump = False
    training_done = False
    last_step_text: str | None = None
    last_step_no = 0
    for no, line in enumerate(_iter_lines(f, max_line), start=1):
        log.lines = no
        if line is None:
            log.long_lines += 1
            continue
        s = line.strip()
        if not s:
            continue
        if "\x00" in line:
            continue  # a garbage line inside an otherwise text log
        c0 = s[0]
        # hot path first: progress lines are most of a big log
        if s.startswith("ttt_chunk"):
            m = RE_TTT_CHUNK.search(s)
            if m:
                log.ttt_chunks += 1
                log.ttt_chunks_total = int(m.group(2))
                log.markers.setdefault("ttt_chunk", no)
            continue
        if c0 == "s" and s.startswith("step:"):
            m = RE_STEP_A.match(s)
            if m:
                last_step_text, last_step_no = s, no
                if "val_bpb" not in s:
                    continue
        elif c0.isdigit():
            m = RE_STEP_B.match(s)
            if m:
                last_step_text, last_step_no = s, no
                continue
        if in_dump:
            d = RE_DUMP.match(line)
            if d:
                _config(log, d.group(1), d.group(2))
                continue
            in_dump = False
        if s.startswith("Hyperparameters"):
            in_dump = True
            continue
        if s.startswith("stopping_early"):
            m = RE_STOP.match(s)
            if m:
                log.stop_reason, log.stop_line = m.group(1), no
                _train_fields(log, m.group(2))
                st = RE_STOP_STEP.search(m.group(2))
                if st:
                    log.steps, log.iterations = int(st.group(1)), int(st.group(2))
                training_done = True
            continue
        low = s.lower()
        if "reserving" in low:
            m = RE_RESERVE.search(s)
            if m:
                log.reserved_ms = float(m.group(1)) * 1000.0
                if m.group(2):
                    log.effective_cap_ms = float(m.group(2))
                log.reserve_line = no
                continue
        mm = RE_METRIC.match(s)
        if mm:
            label = mm.group("label").strip()
            if label.startswith("step:") or re.fullmatch(r"\d+/\d+", label):
                continue  # a periodic validation during training
            ev = RE_EVAL_MS.search(mm.group("rest"))
            after = training_done or last_step_no > 0
            if len(log.metrics) >= MAX_METRICS:
                del log.metrics[: MAX_METRICS // 2]  # keep the latest: final metrics come last
            log.metrics.append(Metric(
                label=label, val_loss=float(mm.group("loss")), val_bpb=float(mm.group("bpb")),
                bpb_text=mm.group("bpb"), loss_text=mm.group("loss"),
                eval_ms=float(ev.group(1)) if ev else None, line=no, after_training=after))
            training_done = after  # a final metric after the step lines: training is over
            _marker(log, label, no)
            continue
        if c0 in "CST":
            m = RE_CODE.match(s)
            if m:
                log.code_bytes, log.code_line = int(m.group(1)), no
                continue
            m = RE_MODEL_RAW.match(s)
            if m:
                log.raw_model_bytes = int(m.group(1))
                continue
            m = RE_MODEL.match(s)
            if m:
                log.model_bytes, log.model_label, log.model_line = int(m.group(2)), m.group(1).strip(), no
                continue
            m = RE_TOTAL.match(s)
            if m:
                log.total_bytes, log.total_line = int(m.group(2)), no
                continue
        if any(w in low for w in _ARTIFACT_WORK):
            t = RE_IN_TIME.search(s) or RE_ELAPSED.search(s)
            if t and (training_done or last_step_no > 0) and len(log.post_work) < MAX_METRICS:
                log.post_work.append(PostWork(s[:200], _ms(t.group(1), t.group(2)), no))
        if "tokenizer_" in s:
            for k, v in RE_TOK_FIELD.findall(s):
                log.tokenizer.setdefault(k, v)
        if s.startswith("val_loader"):
            m = RE_VAL_TOKENS.match(s)
            if m:
                log.val_tokens = int(m.group(1))
        if RE_KV_LINE.match(s):
            for k, v in RE_KV.findall(s):
                _config(log, k, v)
        elif s.startswith("val_tokens"):
            kv = RE_KV.findall(s.replace(": ", ":"))
            for k, v in kv:
                _config(log, k, v)
        _marker(log, s, no)
    if last_step_text is not None:
        _finish_steps(log, last_step_text)


def _config(log: SeedLog, key: str, value: str) -> None:
    key = key.lower()
    if key not in log.config and len(log.config) < MAX_CONFIG_KEYS:
        log.config[key] = value[:200]
    if key == "world_size" and log.world_size is None and value.isdigit():
        log.world_size = int(value)
    elif key == "val_tokens" and log.val_tokens is None and value.isdigit():
        log.val_tokens = int(value)
    elif key == "seed" and value.isdigit():
        if log.seed_source is None or log.seed_source.startswith("file"):
            log.seed, log.seed_source = int(value), "log line `seed`"  # content beats file name
    elif key in ("tokenizer_path", "tokenizer_kind", "tokenizer_meta_path"):
        log.tokenizer.setdefault(key, value)


def _marker(log: SeedLog, s: str, no: int) -> None:
    m = RE_MARKER.match(s)
    if m and len(log.markers) < 2000:
        log.markers.setdefault(m.group(1).lower(), no)


def _train_fields(log: SeedLog, rest: str) -> None:
    m = RE_TRAIN_MS.search(rest)
    if m:
        log.train_ms = float(m.group(1))
    else:
        m = RE_TRAIN_MIN.search(rest)
        if m and log.train_ms is None:
            log.train_ms = float(m.group(1)) * 60_000.0
    a = RE_STEP_AVG.search(rest)
    if a:
        log.step_avg_ms = float(a.group(1))


def _finish_steps(log: SeedLog, text: str) -> None:
    """Fill steps/train time from the last step line when no stopping line gave them."""
    m = RE_STEP_A.match(text) or RE_STEP_B.match(text)
    if not m:
        return
    step, its, rest = int(m.group(1)), int(m.group(2)), m.group(3)
    if log.steps is None:
        log.steps, log.iterations = step, its
    if log.step_avg_ms is None:
        a = RE_STEP_AVG.search(rest)
        if a:
            log.step_avg_ms = float(a.group(1))
    if log.train_ms is None or log.steps == step and RE_TRAIN_MS.search(rest):
        mt = RE_TRAIN_MS.search(rest)
        if mt:
            log.train_ms = float(mt.group(1))
        elif log.train_ms is None:
            mm = RE_TRAIN_MIN.search(rest)
            if mm:
                log.train_ms = float(mm.group(1)) * 60_000.0
    if log.stop_reason is None and log.steps is not None and log.iterations and log.steps >= log.iterations:
        log.stop_reason = "iterations"
