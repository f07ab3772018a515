"""Static analysis of a record's `train_gpt.py` with `ast` only: it is never imported or executed.

What it extracts (each with its line number, as evidence):
- environment defaults: `os.environ.get("X", "d")`, `os.getenv`, `int(os.environ.get(...))`,
  `os.environ.get(...) == "1"`, `os.environ["X"]`, with the attribute/variable they are stored in;
- literal compression calls: `lzma.compress(..., preset=6)`, `lzma.LZMACompressor(preset=…)`,
  `brotli.compress(..., quality=11)`, `zlib.compress(data, 9)`, zstd levels (literal or via an
  environment default);
- test-time-training loops: scoring under `torch.no_grad()`/`inference_mode()` before the
  first optimizer step in the same loop iteration (score-first) or after it;
- legality signals: two-pass rescoring, n-gram caches (and what updates them, before or after
  scoring), SLOT, pre-quant TTT on val, val files read by the training loader.

Self-extracting wrappers (`exec(lzma.decompress(base64.b85decode("…")))`, common in records) are
unpacked statically with bounded output, then parsed the same way. Sizes are capped.
"""

from __future__ import annotations

import ast
import base64
import binascii
import lzma
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.budgets import MAX_CODE_BYTES as MAX_SOURCE_BYTES  # larger files are not parsed
from audit.budgets import MAX_CODE_LINES as MAX_SOURCE_LINES  # parse cost grows with lines: refused, not parsed
MAX_UNPACKED_BYTES = 8_000_000
MAX_WRAPPER_DEPTH = 3

TRUE_WORDS = {"1", "true", "yes", "on", "y", "t"}
FALSE_WORDS = {"0", "false", "no", "off", "n", "f", "", "none"}


def truth(v: str | None) -> bool | None:
    """How a setting's text reads as a switch: True/False, or None when it is not a switch."""
    if v is None:
        return None
    s = str(v).strip().strip("'\"").lower()
    if s in TRUE_WORDS:
        return True
    if s in FALSE_WORDS:
        return False
    try:
        return float(s) != 0
    except ValueError:
        return None


@dataclass
class EnvDefault:
    name: str
    default: Any  # the literal default, or None when absent / not a literal
    default_src: str | None  # as written
    line: int
    cast: str | None = None  # int/float/bool/str when wrapped
    compare: tuple[str, Any] | None = None  # ("==", "1") when compared right away
    target: str | None = None  # variable or attribute it is stored in

    def truthy(self) -> bool | None:
        """Whether the default turns the thing on (None: cannot tell)."""
        v = self.default
        if self.compare is not None:
            op, rhs = self.compare
            eq = str(v) == str(rhs) if v is not None else False
            return eq if op == "==" else (not eq if op == "!=" else None)
        if v is None:
            return None
        if isinstance(v, bool):
            return v
        if isinstance(v, (int, float)):
            return v != 0
        return truth(v)

    def describe(self) -> str:
        return f'os.environ.get("{self.name}", {self.default_src}) at line {self.line}'


@dataclass
class CompressCall:
    lib: str  # lzma / brotli / zlib / zstd
    level: int | None
    level_src: str | None
    line: int
    via_env: str | None = None
    extreme: bool = False


@dataclass
class LoopOrder:
    function: str
    loop_line: int
    score_line: int
    train_line: int

    @property
    def score_first(self) -> bool:
        return self.score_line < self.train_line


@dataclass
class Signal:
    kind: str  # two_pass / ngram / slot / pre_quant_ttt / val_in_training
    line: int
    detail: str
    order: str | None = None  # ngram: "after-score" / "before-score" / None


@dataclass
class CodeAnalysis:
    path: Path
    size: int
    parsed: bool = False
    syntax_error: str | None = None
    syntax_line: int | None = None
    not_analysed: str | None = None
    unpacked: list[str] = field(default_factory=list)  # wrapper layers unpacked, e.g. "lzma+b85"
    env: list[EnvDefault] = field(default_factory=list)
    compress: list[CompressCall] = field(default_factory=list)
    ttt_loops: list[LoopOrder] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    identifiers: set[str] = field(default_factory=set)
    defs: dict[str, int] = field(default_factory=dict)  # function/class name -> line

    def env_var(self, name: str) -> EnvDefault | None:
        for e in self.env:
            if e.name == name:
                return e
        return None

    def env_matching(self, pattern: str) -> list[EnvDefault]:
        rx = re.compile(pattern, re.I)
        return [e for e in self.env if rx.search(e.name)]


# ----------------------------------------------------------------------------------------------
def analyse_file(path: str | Path) -> CodeAnalysis:
    path = Path(path)
    size = path.stat().st_size
    ca = CodeAnalysis(path=path, size=size)
    if size > MAX_SOURCE_BYTES:
        ca.not_analysed = f"{size:,} bytes is over the {MAX_SOURCE_BYTES:,}-byte analysis cap"
        return ca
    return analyse_source(path.read_bytes(), ca)


def analyse_source(src: bytes | str, ca: CodeAnalysis | None = None) -> CodeAnalysis:
    if ca is None:
        data = src if isinstance(src, bytes) else src.encode()
        ca = CodeAnalysis(path=Path("<source>"), size=len(data))
    if _too_big(src, ca):
        return ca
    tree = _parse(src, ca)
    for _ in range(MAX_WRAPPER_DEPTH):
        if tree is None:
            return ca
        inner = _unwrap(tree, ca)
        if inner is None:
            break
        if _too_big(inner, ca, " (unpacked code)"):
            return ca
        tree = _parse(inner, ca, layer=True)
    if tree is None:
        return ca
    ca.parsed = True
    _Visitor(ca).run(tree)
    return ca


def _too_big(src: bytes | str, ca: CodeAnalysis, where: str = "") -> bool:
    lines = src.count(b"\n" if isinstance(src, bytes) else "\n")
    if len(src) > MAX_SOURCE_BYTES or lines > MAX_SOURCE_LINES:
        ca.not_analysed = (f"{len(src):,} bytes / {lines:,} lines{where} is over the analysis caps "
                           f"({MAX_SOURCE_BYTES:,} bytes, {MAX_SOURCE_LINES:,} lines)")
        return True
    return False


def _parse(src: bytes | str, ca: CodeAnalysis, layer: bool = False) -> ast.AST | None:
    """Parse with the running interpreter's grammar; code using the Python 3.12 grammar (PEP 701
    f-strings that reuse their quote inside a replacement field) is parsed again with its f-strings
    masked, so a 3.11 audit reads 3.12 record code (checked on the 2026-04-03/04-09 records, whose
    exec-wrapped code uses `f"{", ".join(x)}"`)."""
    where = " (unpacked code)" if layer else ""
    try:
        return ast.parse(src, filename=str(ca.path))
    except SyntaxError as e:
        masked = _mask_fstrings(src) if "f-string" in str(e.msg) else None
        if masked is not None:
            try:
                return ast.parse(masked, filename=str(ca.path))
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                pass
        ca.syntax_error, ca.syntax_line = f"line {e.lineno}: {e.msg}{where}", e.lineno
    except (RecursionError, MemoryError):
        ca.not_analysed = f"nested too deeply to parse{where}"
    except ValueError as e:  # e.g. NUL bytes in the source
        ca.syntax_error = f"{' '.join(str(e).split())}{where}"
    return None


_STR_PREFIX = re.compile(r"(?i)((?<![\w])[rbuf]{1,2}|)('\'\'|\"\"\"|'|\")")


def _mask_fstrings(src: bytes | str) -> str | None:
    """Replace every f-string literal by a plain string holding only its newlines (line numbers
    stay), scanning PEP 701 nesting: inside `{…}` any quote may open a nested string. Returns None
    when the source does not scan (then the original syntax error stands)."""
    text = src.decode("utf-8", "replace") if isinstance(src, bytes) else src
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == "#":
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(text[i:j])
            i = j
            continue
        m = _STR_PREFIX.match(text, i) if c in "rRbBuUfF'\"" else None
        if m is None:
            out.append(c)
            i += 1
            continue
        end = _string_end(text, m.end(), m.group(2), "f" in m.group(1).lower(), "r" in m.group(1).lower(), 0)
        if end is None:
            return None
        lit = text[i:end]
        if "f" in m.group(1).lower():
            nl = lit.count("\n")
            out.append('"""' + "\n" * nl + '"""' if nl else '""')
        else:
            out.append(lit)
        i = end
    return "".join(out)


def _string_end(t: str, i: int, q: str, is_f: bool, raw: bool, depth: int) -> int | None:
    """Index just past the closing quote `q` of a string whose body starts at i."""
    n = len(t)
    if depth > 20:
        return None
    while i < n:
        if t.startswith(q, i):
            return i + len(q)
        c = t[i]
        if c == "\\" and not raw:
            i += 2
            continue
        if c == "\n" and len(q) == 1:
            return None
        if is_f and c == "{":
            if t.startswith("{{", i):
                i += 2
                continue
            i = _field_end(t, i + 1, depth)
            if i is None:
                return None
            continue
        i += 1
    return None


def _field_end(t: str, i: int, depth: int) -> int | None:
    """Index just past the `}` closing a replacement field that starts at i (nested strings skipped)."""
    n, level = len(t), 0
    while i < n:
        c = t[i]
        if c in "([{":
            level += 1
        elif c in ")]}":
            if c == "}" and level == 0:
                return i + 1
            level -= 1
        elif c in "'\"":
            m = _STR_PREFIX.match(t, i - 2 if i >= 2 and t[i - 2:i].lower() in ("rf", "fr") else
                                  i - 1 if i >= 1 and t[i - 1].lower() in "rbf" else i)
            q = "\"\"\"" if t.startswith('"""', i) else "\'\'\'" if t.startswith("\'\'\'", i) else c
            pre = m.group(1).lower() if m else ""
            end = _string_end(t, i + len(q), q, "f" in pre, "r" in pre, depth + 1)
            if end is None:
                return None
            i = end
            continue
        i += 1
    return None


# --- self-extracting wrappers -------------------------------------------------------------------
_DECODERS = {
    "base64.b85decode": ("b85", base64.b85decode),
    "base64.b64decode": ("b64", base64.b64decode),
    "base64.a85decode": ("a85", base64.a85decode),
    "base64.b32decode": ("b32", base64.b32decode),
    "base64.decodebytes": ("b64", base64.decodebytes),
    "base64.standard_b64decode": ("b64", base64.standard_b64decode),
}
_DECOMPRESSORS = ("lzma.decompress", "zlib.decompress", "brotli.decompress")


def _lzma_options(call: ast.Call, al: dict[str, str]) -> dict[str, Any]:
    """`format=` and `filters=` of an lzma.decompress call, evaluated statically: literals and
    `lzma.*` constants only (records use `format=L.FORMAT_RAW, filters=[{"id": L.FILTER_LZMA2}]`)."""
    def value(node):
        name = dotted(node, al)
        if name and name.startswith("lzma.") and name.count(".") == 1 and name[5:].isupper():
            v = getattr(lzma, name[5:], None)
            if isinstance(v, int):
                return v
            raise ValueError(f"unknown lzma constant {name}")
        if isinstance(node, ast.Dict):
            return {value(k): value(v) for k, v in zip(node.keys, node.values)}
        if isinstance(node, (ast.List, ast.Tuple)):
            return [value(x) for x in node.elts][:8]
        return ast.literal_eval(node)
    opts: dict[str, Any] = {}
    for k in call.keywords:
        if k.arg in ("format", "filters"):
            opts[k.arg] = value(k.value)
    return opts


def _bounded_decompress(kind: str, data: bytes, opts: dict[str, Any] | None = None) -> bytes:
    if kind == "lzma.decompress":
        d = lzma.LZMADecompressor(**(opts or {}))
        out = d.decompress(data, max_length=MAX_UNPACKED_BYTES + 1)
    elif kind == "zlib.decompress":
        out = zlib.decompressobj().decompress(data, MAX_UNPACKED_BYTES + 1)
    else:
        import brotli

        out = brotli.Decompressor().process(data, output_buffer_limit=MAX_UNPACKED_BYTES + 1)
    if len(out) > MAX_UNPACKED_BYTES:
        raise ValueError(f"unpacks to more than {MAX_UNPACKED_BYTES:,} bytes")
    return out


def _aliases(tree: ast.AST) -> dict[str, str]:
    al: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                al[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                al[a.asname or a.name] = f"{node.module}.{a.name}"
    return al


def dotted(node: ast.AST, aliases: dict[str, str] | None = None) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        head = node.id
        if aliases and head in aliases:
            head = aliases[head]
        parts.append(head)
        return ".".join(reversed(parts))
    return None


def _static_value(node: ast.AST, al: dict[str, str], layers: list[str], depth: int = 0) -> bytes | str | None:
    """Evaluate decode/decompress chains over a literal, and nothing else."""
    if depth > 12:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
        return node.value
    if not isinstance(node, ast.Call) or not node.args:
        return None
    name = dotted(node.func, al)
    if name is None and isinstance(node.func, ast.Attribute) and node.func.attr in ("decode", "encode"):
        inner = _static_value(node.func.value, al, layers, depth + 1)
        if inner is None:
            return None
        if node.func.attr == "decode":
            return inner.decode("utf-8", "replace") if isinstance(inner, bytes) else inner
        return inner.encode() if isinstance(inner, str) else inner
    inner = _static_value(node.args[0], al, layers, depth + 1)
    if inner is None or name is None:
        return None
    if name in _DECODERS:
        tag, fn = _DECODERS[name]
        data = inner.encode("ascii", "replace") if isinstance(inner, str) else inner
        out = fn(data)
        layers.append(tag)
        return out
    if name in _DECOMPRESSORS:
        data = inner.encode("latin-1") if isinstance(inner, str) else inner
        out = _bounded_decompress(name, data, _lzma_options(node, al) if name == "lzma.decompress" else {})
        layers.append(name.split(".")[0])
        return out
    return None


def _unwrap(tree: ast.AST, ca: CodeAnalysis) -> bytes | str | None:
    """If the module is `exec(<decompress/decode chain over a literal>)`, return the inner code.
    Wrappers are module-level statements: only the top level is searched (not a 150 KB tree)."""
    calls = [st.value for st in getattr(tree, "body", []) if isinstance(st, ast.Expr) and isinstance(st.value, ast.Call)
             and isinstance(st.value.func, ast.Name) and st.value.func.id in ("exec", "eval") and st.value.args]
    if not calls:
        return None
    al = _aliases(ast.Module(body=[st for st in tree.body if isinstance(st, (ast.Import, ast.ImportFrom))],
                             type_ignores=[]))
    for node in calls:
        if True:
            layers: list[str] = []
            try:
                out = _static_value(node.args[0], al, layers)
            except (ValueError, lzma.LZMAError, zlib.error, binascii.Error, EOFError, OSError) as e:
                ca.not_analysed = f"could not unpack the exec() wrapper at line {node.lineno}: {e}"
                return None
            except Exception as e:  # noqa: BLE001 - brotli.error and friends: a finding, not a crash
                ca.not_analysed = f"could not unpack the exec() wrapper at line {node.lineno}: {type(e).__name__}"
                return None
            if out is not None and layers:
                ca.unpacked.append("+".join(reversed(layers)))
                return out
    return None


# --- the visitor --------------------------------------------------------------------------------
_ENV_FUNCS = {"os.environ.get", "os.getenv", "environ.get", "getenv", "os.environ.setdefault",
              "environ.setdefault"}
_SCORE_WORDS = ("loss", "logit", "nll", "score", "bpb", "eval", "model", "forward")
_TTT_FUNC = re.compile(r"ttt|test_?time|adapt|eval", re.I)
_TWO_PASS_NAME = re.compile(r"rescor|re_score|two_?pass|2_?pass|second_?pass|pass_?2|double_?pass", re.I)
_NGRAM_NAME = re.compile(r"(?:n_?gram|bigram|trigram)_?(?:cache|count|table|mix|interp|backoff|prob|lm)"
                         r"|(?:cache|count)s?_?(?:n_?gram)|ngram", re.I)
_SLOT_NAME = re.compile(r"(?:^|_)slot(?:_|$)", re.I)
_PREQ_NAME = re.compile(r"pre_?quant\w*ttt|ttt\w*pre_?quant", re.I)


def _lit(node: ast.AST | None) -> tuple[Any, str | None]:
    if node is None:
        return None, None
    src = ast.unparse(node)[:200]
    try:
        return ast.literal_eval(node), src
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None, src


class _Visitor:
    def __init__(self, ca: CodeAnalysis):
        self.ca = ca
        self.al: dict[str, str] = {}
        self.parent: dict[ast.AST, ast.AST] = {}
        self.env_by_target: dict[str, EnvDefault] = {}

    def run(self, tree: ast.AST) -> None:
        self.al = _aliases(tree)
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parent[child] = node
        nodes = list(ast.walk(tree))
        for node in nodes:  # pass 1: names and environment defaults
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.ca.defs.setdefault(node.name, node.lineno)
                self.ca.identifiers.add(node.name)
            elif isinstance(node, ast.Name):
                self.ca.identifiers.add(node.id)
            elif isinstance(node, ast.Attribute):
                self.ca.identifiers.add(node.attr)
            if isinstance(node, (ast.Call, ast.Subscript)):
                self._env(node)
        for node in nodes:  # pass 2: calls that need the environment map
            if isinstance(node, ast.Call):
                self._compress(node)
                self._train_loader(node)
        self._functions(tree)
        self._name_signals()

    # environment defaults
    def _env(self, node: ast.AST) -> None:
        name = default = src = None
        if isinstance(node, ast.Call):
            fn = dotted(node.func, self.al)
            if fn not in _ENV_FUNCS or not node.args:
                return
            a0 = node.args[0]
            if not (isinstance(a0, ast.Constant) and isinstance(a0.value, str)):
                return
            name = a0.value
            dnode = node.args[1] if len(node.args) > 1 else next(
                (k.value for k in node.keywords if k.arg == "default"), None)
            default, src = _lit(dnode)
        elif isinstance(node, ast.Subscript):
            if dotted(node.value, self.al) not in ("os.environ", "environ"):
                return
            sl = node.slice
            if not (isinstance(sl, ast.Constant) and isinstance(sl.value, str)):
                return
            name = sl.value
        else:
            return
        e = EnvDefault(name=name, default=default, default_src=src, line=node.lineno)
        par = self.parent.get(node)
        for _ in range(4):  # walk up through casts/comparisons to the assignment
            if isinstance(par, ast.Call) and isinstance(par.func, ast.Name) and par.func.id in (
                    "int", "float", "bool", "str"):
                e.cast = e.cast or par.func.id
            elif isinstance(par, ast.Compare) and len(par.ops) == 1 and isinstance(
                    par.ops[0], (ast.Eq, ast.NotEq)) and isinstance(par.comparators[0], ast.Constant):
                e.compare = ("==" if isinstance(par.ops[0], ast.Eq) else "!=", par.comparators[0].value)
            elif isinstance(par, ast.Call) and isinstance(par.func, ast.Attribute) and par.func.attr in (
                    "lower", "strip"):
                pass
            elif isinstance(par, ast.Attribute) and par.attr in ("lower", "strip"):
                pass
            elif isinstance(par, (ast.Assign, ast.AnnAssign)):
                tgts = par.targets if isinstance(par, ast.Assign) else [par.target]
                t = tgts[0]
                e.target = t.id if isinstance(t, ast.Name) else (t.attr if isinstance(t, ast.Attribute) else None)
                break
            else:
                break
            par = self.parent.get(par)
        self.ca.env.append(e)
        if e.target:
            self.env_by_target.setdefault(e.target, e)

    def _level(self, node: ast.AST | None) -> tuple[int | None, str | None, str | None, bool]:
        if node is None:
            return None, None, None, False
        extreme = False
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            extreme = "EXTREME" in ast.unparse(node)
            node = node.left if isinstance(node.left, ast.Constant) else node.right
        val, src = _lit(node)
        if isinstance(val, int) and not isinstance(val, bool):
            return val, src, None, extreme
        key = node.id if isinstance(node, ast.Name) else (node.attr if isinstance(node, ast.Attribute) else None)
        if key is None and isinstance(node, ast.Call) and node.args:  # int(os.environ.get(...))
            inner = node.args[0]
            for e in self.ca.env:
                if e.line == getattr(inner, "lineno", -1):
                    return _as_int(e.default), src, e.name, extreme
        if key and key in self.env_by_target:
            e = self.env_by_target[key]
            return _as_int(e.default), src, e.name, extreme
        for e in self.ca.env:  # direct os.environ.get inside the call
            if isinstance(node, ast.Call) and e.line == node.lineno and e.name.lower() in src.lower():
                return _as_int(e.default), src, e.name, extreme
        return None, src, None, extreme

    def _compress(self, node: ast.Call) -> None:
        fn = dotted(node.func, self.al) or ""
        lib = fn.split(".")[0]
        if lib == "zstandard":
            lib = "zstd"
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        lnode = None
        if fn in ("lzma.compress",):
            lnode = kw.get("preset") or (node.args[3] if len(node.args) > 3 else None)
        elif fn == "lzma.LZMACompressor":
            lnode = kw.get("preset") or (node.args[2] if len(node.args) > 2 else None)
        elif fn == "brotli.compress":
            lnode = kw.get("quality") or (node.args[2] if len(node.args) > 2 else None)
        elif fn in ("zlib.compress",):
            lnode = kw.get("level") or (node.args[1] if len(node.args) > 1 else None)
        elif fn == "zlib.compressobj":
            lnode = kw.get("level") or (node.args[0] if node.args else None)
        elif fn in ("zstd.ZstdCompressor", "zstd.compress", "zstandard.ZstdCompressor"):
            lnode = kw.get("level") or (node.args[1] if fn.endswith("compress") and len(node.args) > 1 else None)
        else:
            return
        if fn.startswith("lzma") and lnode is None and "filters" in kw:
            for d in ast.walk(kw["filters"]):
                if isinstance(d, ast.Dict):
                    for k, v in zip(d.keys, d.values):
                        if isinstance(k, ast.Constant) and k.value == "preset":
                            lnode = v
        level, src, env, extreme = self._level(lnode)
        if lnode is None:
            level = {"lzma": 6, "brotli": 11, "zlib": 6, "zstd": 3}.get(lib)  # library defaults
            src = "(library default)"
        self.ca.compress.append(CompressCall(lib, level, src, node.lineno, env, extreme))

    def _train_loader(self, node: ast.Call) -> None:
        fn = dotted(node.func, self.al) or ""
        par = self.parent.get(node)
        target = None
        if isinstance(par, ast.Assign):
            t = par.targets[0]
            target = t.id if isinstance(t, ast.Name) else (t.attr if isinstance(t, ast.Attribute) else None)
        if not target or "train" not in target.lower():
            return
        if not re.search(r"loader|stream|batches|dataset", fn + " " + target, re.I):
            return
        for a in list(node.args) + [k.value for k in node.keywords]:
            text = ast.unparse(a)
            if re.search(r"(?:^|[^a-z])val(?:id(?:ation)?)?(?:_|\b)", text, re.I):
                self.ca.signals.append(Signal("val_in_training", node.lineno,
                                              f"{target} = {fn}(… {text[:80]} …)"))
                return

    # loops: score-first order, two-pass rescoring, n-gram updates
    def _functions(self, tree: ast.AST) -> None:
        for fnode in ast.walk(tree):
            if not isinstance(fnode, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in _walk_local(fnode):
                if isinstance(node, (ast.For, ast.While, ast.AsyncFor)):
                    self._loop(fnode, node)
            self._two_pass(fnode)

    def _is_score(self, stmt: ast.AST) -> int | None:
        for n in _walk_local(stmt):
            if isinstance(n, (ast.With, ast.AsyncWith)):
                for item in n.items:
                    ce = item.context_expr
                    name = dotted(ce.func if isinstance(ce, ast.Call) else ce, self.al) or ""
                    if name.endswith(("no_grad", "inference_mode")):
                        body_ids = " ".join(
                            x.id if isinstance(x, ast.Name) else x.attr
                            for b in n.body for x in _walk_local(b) if isinstance(x, (ast.Name, ast.Attribute)))
                        if any(w in body_ids.lower() for w in _SCORE_WORDS):
                            return n.lineno
        return None

    def _is_train(self, stmt: ast.AST) -> int | None:
        for n in _walk_local(stmt):
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
                if n.func.attr == "backward":
                    return n.lineno
                if n.func.attr == "step" and re.search(r"opt", ast.unparse(n.func.value), re.I):
                    return n.lineno
        return None

    def _ngram_update(self, stmt: ast.AST) -> tuple[int, str] | None:
        """(line, what it is built from) of the first n-gram cache update in a statement."""
        for n in _walk_local(stmt):
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in (
                    "update", "add", "observe", "push", "record", "extend") and _NGRAM_NAME.search(
                    ast.unparse(n.func.value)):
                return n.lineno, ", ".join(ast.unparse(a)[:60] for a in n.args) or "?"
            if isinstance(n, ast.AugAssign) and _NGRAM_NAME.search(ast.unparse(n.target)):
                return n.lineno, ast.unparse(n.value)[:60]
        return None

    def _loop(self, fnode: ast.AST, loop: ast.AST) -> None:
        body = list(loop.body)
        score = [(i, ln) for i, s in enumerate(body) if (ln := self._is_score(s)) is not None]
        train = [(i, ln) for i, s in enumerate(body) if (ln := self._is_train(s)) is not None]
        upd = [(i, u) for i, s in enumerate(body) if (u := self._ngram_update(s)) is not None]
        if score and upd:
            si, sl = score[0]
            ui, (ul, src) = upd[0]
            if si != ui:
                order = "after-score" if si < ui else "before-score"
                self.ca.signals.append(Signal("ngram", ul, f"n-gram cache updated from `{src}` at line {ul}, "
                                              f"{'after' if si < ui else 'before'} scoring at line {sl}",
                                              order))
        if not (score and train) or not _TTT_FUNC.search(fnode.name + " " + ast.unparse(loop.iter
                                                                                      if hasattr(loop, "iter") else loop.test)[:200]):
            return
        si, sl = score[0]
        ti, tl = train[0]
        if si == ti:
            return  # both inside one nested statement: the nested loop is analysed on its own
        self.ca.ttt_loops.append(LoopOrder(fnode.name, loop.lineno, sl, tl))

    def _two_pass(self, fnode: ast.AST) -> None:
        """A scoring loop over data that an earlier loop in the same function already trained on."""
        trained_iters: dict[str, int] = {}
        trained_any: int | None = None
        scored_iters: dict[str, int] = {}
        for stmt in _top_loops(fnode):
            it = ast.unparse(stmt.iter)[:200] if hasattr(stmt, "iter") else None
            sc = any(self._is_score(s) for s in stmt.body)
            tr = any(self._is_train(s) for s in stmt.body)
            if sc and not tr and it is not None and (it in trained_iters or (
                    trained_any is not None and it in scored_iters)):
                ref = trained_iters.get(it, trained_any)
                self.ca.signals.append(Signal(
                    "two_pass", stmt.lineno,
                    f"{fnode.name}: loop at line {stmt.lineno} scores `{it}` again after training "
                    f"at line {ref}"))
            if tr:
                trained_any = trained_any or stmt.lineno
                if it is not None:
                    trained_iters.setdefault(it, stmt.lineno)
            if sc and it is not None:
                scored_iters.setdefault(it, stmt.lineno)

    def _name_signals(self) -> None:
        for name, line in sorted(self.ca.defs.items(), key=lambda kv: kv[1]):
            if _TWO_PASS_NAME.search(name):
                self.ca.signals.append(Signal("two_pass", line, f"function/class `{name}`"))
            if _NGRAM_NAME.search(name) or re.search(r"ngram", name, re.I):
                self.ca.signals.append(Signal("ngram", line, f"function/class `{name}`"))
            if _SLOT_NAME.search(name):
                self.ca.signals.append(Signal("slot", line, f"function/class `{name}`"))
            if _PREQ_NAME.search(name):
                self.ca.signals.append(Signal("pre_quant_ttt", line, f"function/class `{name}`"))
        for e in self.ca.env:
            if e.name.upper().startswith("TRAIN") and isinstance(e.default, str) and re.search(
                    r"(?:^|[/_\-.])val(?:_|\b)", e.default, re.I):
                self.ca.signals.append(Signal("val_in_training", e.line,
                                              f"{e.name} defaults to {e.default!r}"))


def _as_int(v: Any) -> int | None:
    try:
        return int(str(v).strip())
    except (TypeError, ValueError):
        return None


def _walk_local(node: ast.AST):
    """ast.walk that does not enter nested function/class definitions (their code runs elsewhere)."""
    stack = [node]
    first = True
    while stack:
        n = stack.pop()
        if not first and isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        first = False
        yield n
        stack.extend(ast.iter_child_nodes(n))


def _top_loops(fnode: ast.AST):
    """Loops of a function in source order, not nested in another loop (with/if blocks entered)."""
    out = []
    stack = list(reversed(fnode.body))
    while stack:
        s = stack.pop()
        if isinstance(s, (ast.For, ast.AsyncFor, ast.While)):
            out.append(s)
        elif isinstance(s, (ast.With, ast.AsyncWith, ast.If, ast.Try)):
            kids = list(s.body) + list(getattr(s, "orelse", [])) + list(getattr(s, "finalbody", []))
            stack.extend(reversed(kids))
    return sorted(out, key=lambda n: n.lineno)
