"""The counted code file: `export_code(cfg)` writes one self-contained train_gpt.py.

It inlines the modules the run imports (found by following `trainer.*` / `audit.*` imports from
`trainer.run`), drops docstrings and comments, and keeps only the definitions the run can reach
from its entry point — leaving out the code of techniques this config switches off (FEATURES);
the script refuses to start if the environment switches such a technique back on. The config is
baked in as explicit `NAME = parse_x(os.environ.get("NAME", "default"))` lines (for every setting
that differs from the trainer's defaults and every official env var), read by the same parser
as `trainer run` (trainer.settings); any other setting can still be overridden by its env var.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import json

from trainer.config import TrainConfig

ROOT_MODULE = "trainer.run"
ENTRY = "script_main"
# Imported lazily by code the shipped script never runs (dev-only data, the gate, the CLI).
NOT_SHIPPED = ("trainer.tinydata", "trainer.gate", "trainer.gate_rules", "trainer.cli", "trainer.export",
               "trainer.bundle", "audit.tokenizers", "audit.submission", "audit.tokenizer_audit")
# Dev-side entry points: the shipped script builds its config from the lines it carries.
NEVER_SHIPPED_NAMES = ("main", "resolve_config", "PRESETS", "load_file", "env_overrides", "parse_sets", "_apply",
                       "_BUNDLED", "ConfigView", "_GROUP_NAMES", "_GROUP_PREFIXES", "group_of",
                       "error_step", "stepped", "STEP_ATTR", "describe_unexpected")  # audit CLI error context
# Decorators that only add context to an audit CLI error message (audit.errors.stepped): dropped.
DIAGNOSTIC_DECORATORS = ("stepped",)
# (condition under which the code is not needed, what it is, top-level names that are its code)
FEATURES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("not cfg.ttt_enabled", "test-time training",
     ("run_ttt", "causality_probe", "TTTContext", "Ledger", "score_first", "TTT_VARIANTS", "register_ttt_variant",
      "_merge")),
    ("not cfg.gptq_enabled", "GPTQ", ("collect_hessians", "self_generate", "gptq_quantize", "gptq_quantize_many",
                                      "_gptq_stack")),
    ("cfg.compressor != 'brotli'", "brotli compression", ("_brotli_frames", "_brotli_unframe")),
    ("cfg.compressor != 'pergroup'", "per-group compression", ("pack_pergroup", "unpack_pergroup")),
    ("not cfg.late_qat", "late QAT", ("fake_quantize",)),
    ("not cfg.ema_enabled", "EMA", ("EMA",)),
    ("not cfg.swa_enabled", "SWA", ("SWA",)),
    ("cfg.bigram_vocab_size <= 0", "BigramHash", ("BigramHash",)),
    ("not cfg.smear_gate", "SmearGate", ("SmearGate",)),
    ("cfg.quant_format != 'int8_clean'", "the official int8 export", ("quantize_int8_clean", "int8_clean_tensor",
                                                                      "_row_quantiles")),
    ("cfg.quant_format == 'int8_clean'", "per-row max-abs quantization", ("quantize_rows",)),
    ("not cfg.eval_stride and not cfg.ttt_enabled", "sliding-window evaluation", ("sliding_windows",)),
    ("not cfg.meta_path", "meta byte tables", ("load_meta", "MetaTable")),
    ("not cfg.fused_ce", "the fused cross-entropy", ("softcapped_cross_entropy", "_FusedSoftcapCE", "_fused_softcap_ce")),
    ("not cfg.varlen_attn", "per-document attention", ("document_attention", "document_mask", "_cu_seqlens",
                                                       "document_segments", "Segments", "VARLEN_CU_BUCKET")),
    ("not cfg.lqer_rank", "LQER", ("lqer_factors", "pack_asym")),
    ("not cfg.byte_shuffle", "byte shuffling", ("shuffle_bytes",)),
    ("cfg.muon_ns != 'polar_express'", "Polar Express Newton-Schulz", ("PE_COEFFS",)),
    ("cfg.grad_reduce != 'bucketed'", "the bucketed all-reduce", ("BucketedAllReduce",)),
    ("not (cfg.gptq_sdclip or cfg.gptq_act_order or cfg.embed_gptq or cfg.lqer_rank)", "the record's GPTQ export",
     ("quantize_record", "gptq_sdclip", "sdclip_scales", "clip_sigmas_for", "head_input_hessian_hook")),
)
# Settings a shipped script fixes when they are off (False / the value below): their code is
# folded away (`if cfg.X:` branches, conditional expressions) and the script refuses an env var
# that would switch them on. Official env vars are never frozen.
OFF_VALUES = {"bigram_vocab_size": 0, "ve_dim": 0, "xsa_last_n": 0, "recur_layers": "", "parallel_residual_start": -1,
              "rope_dims": 0, "mlp_leaky_slope": 0.0, "lqer_rank": 0, "int5_layers": "", "eval_stride": 0,
              "ve_layers": "", "swa_every": None, "recur_loops": 1, "warmdown_frac": 0.0, "min_lr": 0.0,
              "recur_start_frac": 0.0, "muon_wd": 0.0, "adam_wd": 0.0, "scalar_wd": 0.0, "eval_seq_len": 0,
              "val_max_tokens": 0, "export_reserve_seconds": 0.0, "grad_accum_steps": 0, "meta_path": ""}
ALWAYS_FROZEN = ("compressor", "quant_format", "muon_ns", "smear_gate_mode", "parallel_final_lane", "ttt_variant",
                 "gptq_calibration", "grad_reduce")
# The official script's environment variables: always explicit lines in a shipped script.
OFFICIAL_ENV = ("data_path", "tokenizer_path", "run_id", "seed", "val_batch_size", "val_loss_every",
                "train_log_every", "iterations", "warmdown_iters", "warmup_steps", "train_batch_tokens",
                "train_seq_len", "max_wallclock_seconds", "qk_gain_init", "vocab_size", "num_layers", "num_kv_heads",
                "model_dim", "num_heads", "mlp_mult", "tie_embeddings", "rope_base", "logit_softcap", "embed_lr",
                "head_lr", "tied_embed_lr", "tied_embed_init_std", "matrix_lr", "scalar_lr", "muon_momentum",
                "muon_backend_steps", "muon_momentum_warmup_start", "muon_momentum_warmup_steps", "beta1", "beta2",
                "adam_eps", "grad_clip_norm", "control_tensor_name_patterns", "int8_keep_float_fp32_name_patterns")
DEV_ONLY_SETTINGS = ("records_dir", "reports_dir", "use_tiny_data")


class BundleError(RuntimeError):
    pass


# --- which modules ------------------------------------------------------------------------------
def _imports(tree: ast.Module) -> tuple[list[str], list[str]]:
    """(top-level, nested) imported project modules of a module."""
    top, nested = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("trainer", "audit"):
            (top if node in tree.body else nested).append(node.module)
    return top, nested


def bundle_modules(root: str = ROOT_MODULE) -> list[str]:
    """The modules to inline, each after the modules it imports at its top level."""
    trees: dict[str, ast.Module] = {}
    order: list[str] = []

    def tree(mod: str) -> ast.Module:
        if mod not in trees:
            trees[mod] = ast.parse(inspect.getsource(importlib.import_module(mod)))
        return trees[mod]

    def visit(mod: str, stack: tuple[str, ...]) -> None:
        if mod in order or mod in stack or mod in NOT_SHIPPED:
            return
        top, _ = _imports(tree(mod))
        for dep in top:
            if dep in NOT_SHIPPED:
                raise BundleError(f"{mod} imports {dep} at its top level, which the shipped script cannot carry")
            visit(dep, stack + (mod,))
        order.append(mod)

    visit(root, ())
    i = 0
    while i < len(order):  # modules only imported inside functions come after everything above
        for dep in _imports(tree(order[i]))[1]:
            visit(dep, ())
        i += 1
    return order


# --- one module's statements --------------------------------------------------------------------
class _Clean(ast.NodeTransformer):
    """Docstrings out; imports of inlined modules out (a `pass` keeps a block valid); imports of
    modules the script does not carry become a clear error if ever reached."""

    def __init__(self, inlined: set[str]):
        self.inlined = inlined

    def _body(self, body: list[ast.stmt]) -> list[ast.stmt]:
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            body = body[1:]
        out = []
        for st in body:
            st = self.visit(st)
            if st is not None:
                out.append(st)
        return out or [ast.Pass()]

    def visit_FunctionDef(self, node):
        node.body = self._body(node.body)
        # the audit's error-context decorators name a file in a CLI message; the script has no such CLI
        node.decorator_list = [d for d in node.decorator_list if not (
            isinstance(d, ast.Call) and isinstance(d.func, ast.Name) and d.func.id in DIAGNOSTIC_DECORATORS)]
        a = node.args  # annotations are documentation here (strings under `from __future__ import annotations`)
        for arg in a.posonlyargs + a.args + a.kwonlyargs + [x for x in (a.vararg, a.kwarg) if x]:
            arg.annotation = None
        node.returns = None
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        node.body = self._body(node.body)
        return node

    def visit_ImportFrom(self, node):
        if node.module == "__future__" or node.module in self.inlined:
            return None
        if node.module in NOT_SHIPPED:
            return ast.parse(f"raise ImportError({node.module + ' is not part of the shipped train_gpt.py'!r})").body[0]
        return node

    def generic_visit(self, node):
        for name in ("body", "orelse", "finalbody"):
            if isinstance(getattr(node, name, None), list) and getattr(node, name) and \
                    isinstance(getattr(node, name)[0], ast.stmt) and not isinstance(node, ast.Module):
                new = [s for s in (self.visit(s) for s in getattr(node, name)) if s is not None]
                setattr(node, name, new or ([ast.Pass()] if name == "body" else []))
        if isinstance(node, ast.Try):
            node.handlers = [self.visit(h) for h in node.handlers]
        if isinstance(node, ast.ExceptHandler):
            node.body = [s for s in (self.visit(s) for s in node.body) if s is not None] or [ast.Pass()]
        return node


def _statements(mod: str, inlined: set[str]) -> list[ast.stmt]:
    tree = ast.parse(inspect.getsource(importlib.import_module(mod)))
    cleaner = _Clean(inlined)
    body = cleaner._body(tree.body)
    return [s for s in body if not (isinstance(s, ast.If) and "__main__" in ast.unparse(s.test))
            and not isinstance(s, ast.Pass)]


# --- folding frozen settings ----------------------------------------------------------------------
def frozen_settings(cfg: TrainConfig) -> dict[str, object]:
    """The settings a shipped script fixes (see OFF_VALUES)."""
    out = {}
    for f in dataclasses.fields(cfg):
        n, v = f.name, getattr(cfg, f.name)
        if n in OFFICIAL_ENV or n in DEV_ONLY_SETTINGS:
            continue
        if n in ALWAYS_FROZEN or (_type(f) == "bool" and v is False) or (n in OFF_VALUES and v == OFF_VALUES[n]):
            out[n] = v
    return out


def _is_cfg(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == "cfg") or (isinstance(node, ast.Attribute) and node.attr == "cfg")


_CONST_OPS = (ast.Constant, ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.Tuple, ast.operator, ast.unaryop,
              ast.cmpop, ast.boolop, ast.Load)


def _truth(node: ast.AST) -> bool | None:
    """The truth value of a test made of constants, or None when it depends on run-time values."""
    if isinstance(node, ast.Constant):
        return bool(node.value)
    if all(isinstance(n, _CONST_OPS) for n in ast.walk(node)):
        try:
            return bool(eval(compile(ast.Expression(node), "<fold>", "eval"), {"__builtins__": {}}))  # noqa: S307
        except Exception:  # noqa: BLE001 - e.g. comparing str with int: leave it to run time
            return None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        t = _truth(node.operand)
        return None if t is None else not t
    if isinstance(node, ast.BoolOp):
        ts = [_truth(v) for v in node.values]
        stop = isinstance(node.op, ast.Or)  # the value that decides: True for `or`, False for `and`
        if stop in ts:
            return stop
        return None if None in ts else not stop
    if isinstance(node, ast.Compare) and all(isinstance(x, ast.Constant) for x in [node.left, *node.comparators]):
        try:
            return bool(eval(compile(ast.Expression(node), "<fold>", "eval"), {}))  # noqa: S307 - constants only
        except Exception:  # noqa: BLE001 - e.g. comparing str with int: leave it to run time
            return None
    return None


_TERMINAL = (ast.Return, ast.Raise, ast.Continue, ast.Break)


class _Fold(ast.NodeTransformer):
    """cfg.X of a frozen setting → its constant; `if`/conditional expressions on constants →
    the branch taken; statements after a return/raise in the same block dropped."""

    def __init__(self, frozen: dict[str, object]):
        self.frozen = frozen

    def visit_Name(self, node):
        if node.id == "_BUNDLED" and isinstance(node.ctx, ast.Load):  # dev-only paths fold away
            return ast.copy_location(ast.Constant(True), node)
        return node

    def visit_Attribute(self, node):
        self.generic_visit(node)
        if node.attr in self.frozen and _is_cfg(node.value) and isinstance(node.ctx, ast.Load):
            return ast.copy_location(ast.Constant(self.frozen[node.attr]), node)
        return node

    def visit_If(self, node):
        self.generic_visit(node)
        t = _truth(node.test)
        if t is None:
            return node
        return (node.body if t else node.orelse) or None

    def visit_BoolOp(self, node):
        """`False or x` is x and `True and x` is x: drop such operands (never the last one, which
        is the value when all before it are neutral)."""
        self.generic_visit(node)
        neutral = isinstance(node.op, ast.And)
        values = [v for v in node.values[:-1] if _truth(v) is not neutral] + node.values[-1:]
        if len(values) == 1:
            return values[0]
        node.values = values
        return node

    def visit_IfExp(self, node):
        self.generic_visit(node)
        t = _truth(node.test)
        return node if t is None else (node.body if t else node.orelse)

    def generic_visit(self, node):
        super().generic_visit(node)
        for name in ("body", "orelse", "finalbody"):
            block = getattr(node, name, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                for i, st in enumerate(block):
                    if isinstance(st, _TERMINAL):
                        del block[i + 1:]
                        break
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.For, ast.While, ast.With,
                             ast.If, ast.Try, ast.ExceptHandler)) and not node.body:
            node.body = [ast.Pass()]
        return node


# --- what the entry point reaches ---------------------------------------------------------------
class _Refs(ast.NodeVisitor):
    """Names a statement refers to, annotations excluded (they are strings in the script)."""

    def __init__(self):
        self.names: set[str] = set()

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load):
            self.names.add(node.id)

    def visit_arg(self, node):
        pass

    def visit_AnnAssign(self, node):
        self.visit(node.target)
        if node.value is not None:
            self.visit(node.value)

    def visit_FunctionDef(self, node):
        for d in node.decorator_list:
            self.visit(d)
        for d in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
            self.visit(d)
        for st in node.body:
            self.visit(st)

    visit_AsyncFunctionDef = visit_FunctionDef


def _defines(st: ast.stmt) -> set[str]:
    """Top-level names a statement defines; plain imports count as defining nothing (always kept)."""
    if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {st.name}
    if isinstance(st, (ast.Assign, ast.AnnAssign)):
        targets = st.targets if isinstance(st, ast.Assign) else [st.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    if isinstance(st, (ast.If, ast.Try)):  # `try: import x` / `if triton is not None: def ...`
        out: set[str] = set()
        todo = list(ast.iter_child_nodes(st))
        while todo:  # the block's own statements, not the insides of the functions it defines
            sub = todo.pop()
            if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out.add(sub.name)
                continue
            if isinstance(sub, (ast.Import, ast.ImportFrom)):
                out |= {(a.asname or a.name).split(".")[0] for a in sub.names}
            elif isinstance(sub, ast.Assign):
                out |= {n.id for t in sub.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
            todo.extend(ast.iter_child_nodes(sub))
        return out
    return set()


def _refs(st: ast.stmt) -> set[str]:
    v = _Refs()
    v.visit(st)
    return v.names


def shake(stmts: list[tuple[str, ast.stmt]], roots: set[str], excluded: set[str]) -> list[tuple[str, ast.stmt]]:
    """Keep statements that define nothing (imports, try-imports), and definitions reachable from
    the roots without passing through an excluded name."""
    by_name: dict[str, list[int]] = {}
    for i, (_, st) in enumerate(stmts):
        for n in _defines(st):
            by_name.setdefault(n, []).append(i)
    keep = {i for i, (_, st) in enumerate(stmts) if not _defines(st)}
    todo = set(roots)
    for i in keep:
        todo |= _refs(stmts[i][1])
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name in excluded:
            continue
        seen.add(name)
        for i in by_name.get(name, []):
            if i not in keep:
                keep.add(i)
                todo |= _refs(stmts[i][1])
    return [s for i, s in enumerate(stmts) if i in keep]


# --- the script ---------------------------------------------------------------------------------
def _type(f: dataclasses.Field) -> str:
    return f.type if isinstance(f.type, str) else f.type.__name__


def _env_line(f: dataclasses.Field, value) -> str:
    env, typ = f.name.upper(), _type(f)
    text = str(int(value)) if typ == "bool" else (repr(value) if typ == "float" else str(value))
    default = json.dumps(text)
    if typ == "str":
        return f'{env} = os.environ.get("{env}", {default})'
    return f'{env} = parse_{typ}(os.environ.get("{env}", {default}))'


def _cond_settings(cond: str) -> set[str]:
    return {n.attr for n in ast.walk(ast.parse(cond)) if isinstance(n, ast.Attribute)}


# Methods called by the framework, never by name in our code.
FRAMEWORK_METHODS = ("forward", "backward", "step", "extra_repr", "setup_context", "jvp", "vjp")


HEADER_IMPORTS = ("from __future__ import annotations", "import dataclasses", "import os", "import sys")


def _dedupe_imports(kept: list[tuple[str, ast.stmt]], header: tuple[str, ...] = ()) -> list[tuple[str, ast.stmt]]:
    """One copy of each top-level import statement (every inlined module repeats `import torch`),
    and none whose names no kept code uses (they served code that was left out)."""
    used = {n for _, st in kept if not isinstance(st, (ast.Import, ast.ImportFrom)) for n in _refs(st)}
    used |= {"annotations"}
    seen, out = {ast.dump(ast.parse(h).body[0]) for h in header}, []
    for m, st in kept:
        if isinstance(st, (ast.Import, ast.ImportFrom)):
            key = ast.dump(st)
            names = {(a.asname or a.name).split(".")[0] for a in st.names}
            if key in seen or not names & used:
                continue
            seen.add(key)
        out.append((m, st))
    return out


def _mentioned(kept: list[tuple[str, ast.stmt]]) -> set[str]:
    """Attribute names and string constants the kept code mentions (a method or field it may use)."""
    used: set[str] = set()
    for _, st in kept:
        for node in ast.walk(st):
            if isinstance(node, ast.Attribute):
                used.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                used.add(node.value)
    return used


def _prune_methods(kept: list[tuple[str, ast.stmt]]) -> bool:
    """Drop methods of kept classes whose name no kept code mentions (attribute or string), and
    dev-side methods (those that use a name the script never carries, e.g. the config views)."""
    used = _mentioned(kept)
    changed = False
    for _, st in kept:
        if not isinstance(st, ast.ClassDef):
            continue
        body = [b for b in st.body if not (isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
            (not b.name.startswith("__") and b.name not in used and b.name not in FRAMEWORK_METHODS)
            or _refs(b) & set(NEVER_SHIPPED_NAMES)))]
        if len(body) != len(st.body):
            st.body, changed = body or [ast.Pass()], True
    return changed


def _explicit_fields(cfg: TrainConfig, frozen: dict[str, object]) -> list[dataclasses.Field]:
    """Settings written as env lines: the official env vars and what differs from the defaults."""
    base = TrainConfig()
    return [f for f in dataclasses.fields(cfg) if f.name not in DEV_ONLY_SETTINGS and f.name not in frozen
            and (f.name in OFFICIAL_ENV or getattr(cfg, f.name) != getattr(base, f.name))]


def _prune_config_fields(kept: list[tuple[str, ast.stmt]], keep: set[str]) -> None:
    """Drop from the script's TrainConfig the fields no kept code reads (by attribute or by name
    string): they cannot change what the script does. Frozen ones stay checked (FROZEN)."""
    cls = next(st for _, st in kept if isinstance(st, ast.ClassDef) and st.name == "TrainConfig")
    used = set(keep) | set(OFFICIAL_ENV)
    for _, st in kept:
        for node in ast.walk(st):
            if isinstance(node, ast.Attribute):
                used.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                used.add(node.value)
    cls.body = [b for b in cls.body if not (isinstance(b, ast.AnnAssign) and isinstance(b.target, ast.Name)
                                            and b.target.id not in used)] or [ast.Pass()]
    _prune_result_fields(kept)


def _prune_result_fields(kept: list[tuple[str, ast.stmt]]) -> None:
    """Defaulted fields of other dataclasses that no kept code reads or passes by keyword (e.g.
    the gate's digests on RunResult), for classes only ever built with keyword arguments."""
    used = _mentioned(kept)
    positional: set[str] = set()
    for _, st in kept:
        for node in ast.walk(st):
            if isinstance(node, ast.keyword) and node.arg:
                used.add(node.arg)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
                positional.add(node.func.id)
    for _, st in kept:
        if not (isinstance(st, ast.ClassDef) and st.name != "TrainConfig" and st.name not in positional
                and any("dataclass" in ast.unparse(d) for d in st.decorator_list)):
            continue
        st.body = [b for b in st.body if not (isinstance(b, ast.AnnAssign) and b.value is not None
                                              and isinstance(b.target, ast.Name) and b.target.id not in used)]
        st.body = st.body or [ast.Pass()]


def _tabs(code: str) -> str:
    """Indent with tabs (one byte a level). Safe: unparsed code has no multi-line string literals."""
    out = []
    for line in code.split("\n"):
        body = line.lstrip(" ")
        if not body:
            continue
        out.append("\t" * ((len(line) - len(body)) // 4) + body)
    return "\n".join(out)


def _config_lines(cfg: TrainConfig, explicit: list[dataclasses.Field], frozen: dict[str, object],
                  skipped: list[tuple[str, str]]) -> list[str]:
    lines = [_env_line(f, getattr(cfg, f.name)) for f in explicit]
    lines += ["FROZEN = {" + ",".join(f"{k!r}:{v!r}" for k, v in frozen.items()) + "}", "", "",
              "def _record_config() -> TrainConfig:",
              "\tfor k, v in FROZEN.items():  # fixed at export: the code for other values is not in this file",
              "\t\tif k.upper() in os.environ and parse_setting(type(v).__name__, os.environ[k.upper()]) != v:",
              "\t\t\traise SystemExit(f'{k.upper()}: exported with {k}={v!r}; the code for other values is not in this file')",
              "\tfs = {f.name: f.type for f in dataclasses.fields(TrainConfig)}",
              "\tcfg = {k: globals()[k.upper()] if k.upper() in globals() else FROZEN[k] for k in fs if k.upper() in globals() or k in FROZEN}",
              "\tcfg.update({k: parse_setting(t, os.environ[k.upper()]) for k, t in fs.items() if k not in cfg and k.upper() in os.environ})",
              "\tcfg = TrainConfig(**cfg)",
              "\tvalidate(cfg)"]
    for cond, what in skipped:
        lines += [f"\tif not ({cond}):",
                  f"\t\traise SystemExit({'exported without ' + what + '; re-export with it on'!r})"]
    lines += ["\treturn cfg"]
    return lines


def _underived(cfg: TrainConfig) -> TrainConfig:
    """Train/val globs that were filled in from DATA_PATH go back to empty, so the script derives
    them from DATA_PATH at run time (a DATA_PATH set in the environment then moves them too)."""
    from pathlib import Path

    c = dataclasses.replace(cfg)
    if c.data_path:
        for name, split in (("train_files", "train"), ("val_files", "val")):
            if getattr(c, name) == str(Path(c.data_path) / f"fineweb_{split}_*.bin"):
                setattr(c, name, "")
    return c


def export_code(cfg: TrainConfig) -> str:
    """The single self-contained train_gpt.py for this config."""
    cfg = _underived(cfg)
    mods = bundle_modules()
    inlined = set(mods)
    frozen = frozen_settings(cfg)
    fold = _Fold({**frozen, "use_tiny_data": False})  # the script never builds the dev data
    stmts = []
    for m in mods:
        for st in _statements(m, inlined):
            st = fold.visit(st)
            for s in (st if isinstance(st, list) else [st] if st is not None else []):
                stmts.append((m, ast.fix_missing_locations(s)))
    skipped = [(cond, what, names) for cond, what, names in FEATURES if eval(cond, {"cfg": cfg})]  # noqa: S307 - our own table
    excluded = set(NEVER_SHIPPED_NAMES) | {n for *_, names in skipped for n in names}
    roots = {ENTRY, "TrainConfig", "validate", "parse_setting", "parse_bool", "parse_int", "parse_float"}
    kept = _dedupe_imports(shake(stmts, roots, excluded), HEADER_IMPORTS)
    while _prune_methods(kept):  # methods nothing calls, then what only they used
        kept = shake(kept, roots, excluded)
    explicit = _explicit_fields(cfg, frozen)
    # a skipped feature needs a start-up check only when a setting it depends on is not frozen
    guards = [(c, w) for c, w, _ in skipped if _cond_settings(c) - set(frozen)]
    _prune_config_fields(kept, {f.name for f in explicit} | {n for c, _ in guards for n in _cond_settings(c)})
    seen: dict[str, str] = {}
    for m, st in kept:
        for n in _defines(st):
            if n in seen and seen[n] != m and not n.startswith("__"):
                raise BundleError(f"top-level name {n!r} defined in both {seen[n]} and {m}")
            seen[n] = m
    for f in dataclasses.fields(cfg):
        if f.name.upper() in seen:
            raise BundleError(f"setting {f.name.upper()} collides with a top-level name of {seen[f.name.upper()]}")
    parts = ['"""By `trainer export-code` (golfcheck): torchrun --standalone --nproc_per_node=8 train_gpt.py"""',
             *HEADER_IMPORTS]
    parts += [_tabs(ast.unparse(st)) for _, st in kept]
    parts += ["", ""] + _config_lines(cfg, explicit, frozen, guards)
    parts += ["", "", 'if __name__ == "__main__":', f"\tsys.exit({ENTRY}(_record_config()))", ""]
    text = "\n".join(parts)
    _check(text)
    return text


def _check(text: str) -> None:
    try:
        tree = ast.parse(text)
        compile(tree, "train_gpt.py", "exec")
    except SyntaxError as e:  # pragma: no cover - a bundler bug, never a user error
        raise BundleError(f"bundled train_gpt.py does not compile: {e}") from e
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mods = [node.module or ""]
        else:
            continue
        for m in mods:
            if m.split(".")[0] in ("trainer", "audit"):
                raise BundleError(f"bundled code still imports {m} (line {node.lineno})")

