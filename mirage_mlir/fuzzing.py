"""Fuzzing the tools: mutations of valid MLIR files, run through mirage-opt (parse and verify,
convert, convert + superoptimize) and mirage-run in this process, each outcome classified.

The mutations are drawn by hypothesis (test/test_fuzz.py, benchmarks/fuzz.py): `mutate(text, draw)`
applies a few edits, each one of MUTATIONS, with choices taken from `draw(strategy)`. An outcome is
acceptable when the tool exits 0, or exits 1 with an error diagnostic that names a line and column
(or only the file, for a problem of the whole file: unreadable, no function); it is a defect when it
shows a traceback or an internal error, exits otherwise, runs past its time limit (a hang), refuses
without a location, or prints a module that does not parse and verify again.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import tempfile
import time
from dataclasses import dataclass

SEARCH = "mirage-superoptimize{time-budget=1 workers=1 cache=false remarks=false}"
PIPELINES = {
    "mirage-opt": [],
    "convert": ["-p", "builtin.module(convert-linalg-to-mirage)"],
    "search": ["-p", f"builtin.module(convert-linalg-to-mirage,{SEARCH})"],
    "specialize": ["-p", "builtin.module(mirage-specialize-dims{sizes=1,4},convert-linalg-to-mirage)"],
    "mirage-run": None,
}
DEFECTS = ("traceback", "internal error", "hang", "bad exit", "unlocated refusal", "invalid output")
_LOCATED = re.compile(r"^[^\n:]+:\d+:\d+: error: ", re.M)
_FILE_ERROR = re.compile(r"^[^\n:]+: error: (input is not UTF-8|cannot open|invalid UTF-8|the module has no function)", re.M)
TYPES = ("f16", "bf16", "f32", "f64", "i32", "i1", "index")
ATTRIBUTES = ("forloop_range", "grid_dim", "block_dim", "imap", "omap", "fmap", "dim", "eps", "scalar", "reduce_dim")
ODD_VALUES = ("0", "-1", "2147483648", "9223372036854775807", "0x7FC00000", "0xFF800000", "1.0e+300", "?")


# -- mutations -------------------------------------------------------------------------------------

def _tokens(line: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"[%@#^]?[\w.]+|[^\s\w]", line)]


def mutate(text: str, draw, strategies) -> str:
    """`text` with 1-3 edits; `draw(strategy)` chooses (hypothesis's data.draw), `strategies` is
    hypothesis.strategies."""
    lines = text.split("\n")
    for _ in range(draw(strategies.integers(1, 3))):
        kind = draw(strategies.sampled_from(MUTATIONS))
        lines = kind(lines, draw, strategies) or lines
    return "\n".join(lines)


def _line(lines, draw, st) -> int:
    return draw(st.integers(0, max(0, len(lines) - 1)))


def delete_line(lines, draw, st):
    k = _line(lines, draw, st)
    return lines[:k] + lines[k + 1:]


def duplicate_line(lines, draw, st):
    k = _line(lines, draw, st)
    return lines[:k + 1] + lines[k:]


def swap_tokens(lines, draw, st):
    k = _line(lines, draw, st)
    spans = _tokens(lines[k])
    if len(spans) < 2:
        return None
    i, j = sorted(draw(st.lists(st.integers(0, len(spans) - 1), min_size=2, max_size=2, unique=True)))
    (a0, a1), (b0, b1) = spans[i], spans[j]
    line = lines[k]
    lines[k] = line[:a0] + line[b0:b1] + line[a1:b0] + line[a0:a1] + line[b1:]
    return lines


def _replace_match(lines, draw, st, pattern: str, values, group: int = 0, keep=lambda m: True):
    """On a drawn line, one match of `pattern` (its `group`) replaced by a drawn value."""
    k = _line(lines, draw, st)
    found = [m for m in re.finditer(pattern, lines[k]) if keep(m)]
    if not found:
        return None
    m = draw(st.sampled_from(found))
    lines[k] = lines[k][:m.start(group)] + draw(st.sampled_from(values)) + lines[k][m.end(group):]
    return lines


def change_number(lines, draw, st):
    return _replace_match(lines, draw, st, r"\b\d+\b", ODD_VALUES[:4] + ("1", "3", "7", "64", "1000000"))


def change_type(lines, draw, st):
    return _replace_match(lines, draw, st, r"\b(f16|bf16|f32|f64|i32|i64)\b", TYPES)


def dynamic_dim(lines, draw, st):
    return _replace_match(lines, draw, st, r"(?<=[<x])\d+(?=x)", ("?",))


def attribute_value(lines, draw, st):
    return _replace_match(lines, draw, st, r"\b(\w+) = ([^,}>]+)", ODD_VALUES, group=2,
                          keep=lambda m: m[1] in ATTRIBUTES)


def truncate(lines, draw, st):
    k = _line(lines, draw, st)
    cut = draw(st.integers(0, len(lines[k])))
    return lines[:k] + [lines[k][:cut]]


def random_bytes(lines, draw, st):
    k = _line(lines, draw, st)
    junk = draw(st.text(min_size=1, max_size=8))
    at = draw(st.integers(0, len(lines[k])))
    lines[k] = lines[k][:at] + junk + lines[k][at:]
    return lines


MUTATIONS = (delete_line, duplicate_line, swap_tokens, change_number, change_type, dynamic_dim, attribute_value,
             truncate, random_bytes)


# -- running and classifying -----------------------------------------------------------------------

@dataclass
class Outcome:
    tool: str
    code: int | None  # None: it ran past its time limit
    stdout: str
    stderr: str
    seconds: float


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def run(tool: str, text: str, timeout_s: float = 60.0) -> Outcome:
    """Runs one of PIPELINES on `text` in this process (stdout, stderr captured; SIGALRM bounds it)."""
    from mirage_mlir.tools import mirage_opt, mirage_run

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "input.mlir")
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text)
        if tool == "mirage-run":
            main, argv = mirage_run.main, [path]
        else:
            main, argv = mirage_opt.main, [path, *PIPELINES[tool]]
        out, err = io.StringIO(), io.StringIO()
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        start = time.perf_counter()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(argv)
        except _Hang:
            code = None
        except SystemExit as e:  # argparse
            code = e.code if isinstance(e.code, int) else 1
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        return Outcome(tool, code, out.getvalue(), err.getvalue(), time.perf_counter() - start)


def classify(outcome: Outcome) -> str:
    """"ok", "refused" (a located diagnostic), or one of DEFECTS."""
    if outcome.code is None:
        return "hang"
    if "Traceback (most recent call last)" in outcome.stderr:
        return "traceback"
    if "internal error" in outcome.stderr:
        return "internal error"
    if outcome.code not in (0, 1):
        return "bad exit"
    if outcome.code == 1:
        return "refused" if _LOCATED.search(outcome.stderr) or _FILE_ERROR.search(outcome.stderr) else "unlocated refusal"
    if outcome.tool != "mirage-run" and not _reparses(outcome.stdout):
        return "invalid output"
    return "ok"


def _reparses(text: str) -> bool:
    """Whether a printed module parses and verifies (the mirage verifier included) again."""
    from mirage_mlir.context import make_context, parse_module
    from mirage_mlir.diagnostics import DiagnosticCollector
    from mirage_mlir.tools.driver import verify_mirage

    import mlir.ir as ir

    ctx = make_context(allow_unregistered=True)
    with ctx, DiagnosticCollector(ctx) as collector:
        try:
            module = parse_module(text, ctx)
        except ir.MLIRError:
            return False
        return module.operation.verify() and verify_mirage(module.operation) and not collector.errors()


# -- random programs (differential testing) ----------------------------------------------------------

_UNARY = {"exp": "math.exp %in : f32", "tanh": "math.tanh %in : f32", "neg": "arith.negf %in : f32",
          "square": "arith.mulf %in, %in : f32"}
_BINARY = {"add": "arith.addf", "sub": "arith.subf", "mul": "arith.mulf", "max": "arith.maximumf"}


class ProgramBuilder:
    """A linalg-on-tensors function in torch-mlir's idioms (elementwise linalg.generic with arith/math
    bodies, linalg.matmul into a zero fill, keepdim row reductions [M, N] -> [M, 1], and [M, 1] operands
    broadcast along rows), f32, built value by value."""

    def __init__(self, inputs: list[tuple[int, ...]]):
        self.inputs = inputs
        self.shapes = {f"%arg{k}": s for k, s in enumerate(inputs)}
        self.lines: list[str] = []
        self.counter = 0

    @staticmethod
    def type(shape) -> str:
        return f"tensor<{'x'.join(map(str, shape))}xf32>"

    def fresh(self, shape) -> str:
        name = f"%v{self.counter}"
        self.counter += 1
        self.shapes[name] = shape
        return name

    def _empty(self, shape) -> str:
        e = f"%e{self.counter}"
        self.lines.append(f"  {e} = tensor.empty() : {self.type(shape)}")
        return e

    def _generic(self, ins: list[str], maps: list[str], out_shape, iterators: str, body: list[str], init=None) -> str:
        out = init or self._empty(out_shape)
        v = self.fresh(out_shape)
        args = ", ".join(f"%i{k}: f32" for k in range(len(ins)))
        self.lines += [f"  {v} = linalg.generic {{indexing_maps = [{', '.join(maps)}], iterator_types = [{iterators}]}} "
                       f"ins({', '.join(ins)} : {', '.join(self.type(self.shapes[x]) for x in ins)}) "
                       f"outs({out} : {self.type(out_shape)}) {{",
                       f"  ^bb0({args}, %out: f32):", *[f"    {b}" for b in body], f"  }} -> {self.type(out_shape)}"]
        return v

    def unary(self, x: str, op: str) -> str:
        shape = self.shapes[x]
        body = _UNARY[op].replace("%in", "%i0")
        return self._generic([x], ["#id", "#id"], shape, '"parallel", "parallel"', [f"%r = {body}", "linalg.yield %r : f32"])

    def binary(self, x: str, y: str, op: str) -> str:
        """x op y; y may be [M, 1] (broadcast along the row)."""
        shape = self.shapes[x]
        maps = ["#id", "#id" if self.shapes[y] == shape else "#row", "#id"]
        return self._generic([x, y], maps, shape, '"parallel", "parallel"',
                             [f"%r = {_BINARY[op]} %i0, %i1 : f32", "linalg.yield %r : f32"])

    def _zeros(self, shape) -> str:
        e, z = self._empty(shape), f"%z{self.counter}"
        self.counter += 1
        self.lines.append(f"  {z} = linalg.fill ins(%zero : f32) outs({e} : {self.type(shape)}) -> {self.type(shape)}")
        return z

    def row_sum(self, x: str) -> str:
        rows = self.shapes[x][0]
        return self._generic([x], ["#id", "#row"], (rows, 1), '"parallel", "reduction"',
                             ["%r = arith.addf %i0, %out : f32", "linalg.yield %r : f32"], init=self._zeros((rows, 1)))

    def matmul(self, x: str, w: str) -> str:
        shape = (self.shapes[x][0], self.shapes[w][1])
        z = self._zeros(shape)
        v = self.fresh(shape)
        self.lines.append(f"  {v} = linalg.matmul ins({x}, {w} : {self.type(self.shapes[x])}, {self.type(self.shapes[w])}) "
                          f"outs({z} : {self.type(shape)}) -> {self.type(shape)}")
        return v

    def text(self, result: str) -> str:
        args = ", ".join(f"%arg{k}: {self.type(s)}" for k, s in enumerate(self.inputs))
        head = ["#id = affine_map<(d0, d1) -> (d0, d1)>", "#row = affine_map<(d0, d1) -> (d0, 0)>",
                f"func.func @main({args}) -> {self.type(self.shapes[result])} {{",
                "  %zero = arith.constant 0.000000e+00 : f32"]
        return "\n".join(head + self.lines + [f"  return {result} : {self.type(self.shapes[result])}", "}"]) + "\n"


def random_program(draw, st) -> str:
    """A random program of 1-6 ops over [M, N] inputs (and a weight [N, P] when it has a matmul)."""
    m, n, p = (draw(st.sampled_from((2, 4, 8, 16))) for _ in range(3))
    count = draw(st.integers(1, 3))
    b = ProgramBuilder([(m, n)] * count + [(n, p)])
    weight = f"%arg{count}"
    live = [f"%arg{k}" for k in range(count)]
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(("unary", "binary", "row", "matmul")))
        x = draw(st.sampled_from(live))
        full = [v for v in live if b.shapes[v] == b.shapes[x]]
        rows = [v for v in live if b.shapes[v] == (b.shapes[x][0], 1)]
        if kind == "unary":
            live.append(b.unary(x, draw(st.sampled_from(sorted(_UNARY)))))
        elif kind == "binary" and b.shapes[x][1] != 1:
            y = draw(st.sampled_from(full + rows))
            live.append(b.binary(x, y, draw(st.sampled_from(sorted(_BINARY)))))
        elif kind == "row" and b.shapes[x][1] != 1:
            live.append(b.row_sum(x))
        elif kind == "matmul" and b.shapes[x][1] == n:
            live.append(b.matmul(x, weight))
    return b.text(live[-1])


def differential(text: str, seed: int = 0, budget: float = 2.0) -> tuple[bool, str, int]:
    """(whether convert + superoptimize keep `text`'s outputs: the interpreter on the same inputs,
    within 1e-4 relative to the output's scale; why not; how many graph_defs the search put in)."""
    import numpy as np

    from mirage_mlir.context import make_context, parse_module
    from mirage_mlir.interpreter import interpret
    from mirage_mlir.passes import pass_class

    ctx = make_context()
    with ctx:
        module = parse_module(text, ctx)
        expected = interpret(module, seed=seed)
        pass_class("convert-linalg-to-mirage").from_options("").run(module.operation)
        pass_class("mirage-superoptimize").from_options(
            f"time-budget={budget} workers=1 cache=false remarks=false").run(module.operation)
        if not module.operation.verify():
            return False, "the transformed module does not verify", 0
        replaced = str(module).count('"mirage_kernel.graph_def"')
        got = interpret(module, seed=seed)
    for e, g in zip(expected, got):
        scale = max(1.0, float(np.max(np.abs(e[np.isfinite(e)]), initial=0.0)))
        same = np.isclose(g, e, rtol=1e-4, atol=1e-4 * scale, equal_nan=True)
        if not same.all():
            return False, f"outputs differ (max |diff| {float(np.nanmax(np.abs(g - e))):.3g}, scale {scale:.3g})", replaced
    return True, "", replaced


__all__ = ["DEFECTS", "MUTATIONS", "Outcome", "PIPELINES", "ProgramBuilder", "classify", "differential", "mutate",
           "random_program", "run"]
