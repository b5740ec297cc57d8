"""Reference interpreter core: op registry, value environment, dtypes, entry points.

A handler is `fn(interp, op, args) -> list[np.ndarray]`: `args` are the arrays of the
op's operands in order, the result is one array per op result. Handlers are registered
with `@register("dialect.op", ...)`; `upstream.py` holds those of upstream dialects and
`mirage.py` (if present) those of the mirage dialects.

Precision policy: handlers compute in float32 (float64 for f64 values) and the
interpreter stores every op result rounded to its declared element type (`to_storage`).
So an f16 program is rounded after each op, as the hardware would store it, but
reductions and contractions accumulate in float32 without intermediate rounding.
bf16 is `ml_dtypes.bfloat16` when ml_dtypes is installed, otherwise float32 arrays
holding bf16-rounded values.

Scalars (index, i64, f32, ...) are 0-d arrays. Inside `linalg.generic` bodies, scalar
SSA values hold whole (broadcastable) arrays over the iteration space.
"""

from __future__ import annotations

import importlib
import os
import re
from typing import Callable, Mapping, Sequence

import mlir.ir as ir
import numpy as np

try:  # optional: a real bfloat16 dtype
    import ml_dtypes  # type: ignore

    BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - depends on the environment
    ml_dtypes = None
    BF16 = None

Handler = Callable[["Interpreter", ir.Operation, list], list]

HANDLERS: dict[str, Handler] = {}
# Ops that end a block: their handler returns the block's results.
TERMINATORS: set[str] = set()


def register(*names: str, terminator: bool = False):
    """Decorator registering `fn` as the handler of each op name in `names`."""

    def wrap(fn: Handler) -> Handler:
        for name in names:
            HANDLERS[name] = fn
            if terminator:
                TERMINATORS.add(name)
        return fn

    return wrap


class InterpreterError(Exception):
    """An op (or input) the interpreter cannot evaluate; carries the op's location."""

    def __init__(self, location: ir.Location | None, message: str):
        self.location = location
        self.message = message
        super().__init__(message)

    @property
    def filename(self) -> str | None:
        loc = _file_location(self.location)
        return loc.filename if loc is not None else None

    @property
    def line(self) -> int | None:
        loc = _file_location(self.location)
        return loc.start_line if loc is not None else None

    @property
    def column(self) -> int | None:
        loc = _file_location(self.location)
        return loc.start_col if loc is not None else None

    def __str__(self) -> str:
        loc = _file_location(self.location)
        if loc is None:
            return self.message
        return f"{loc.filename}:{loc.start_line}:{loc.start_col}: {self.message}"


def _file_location(loc: ir.Location | None):
    """The first file:line:col location inside `loc` (through name/fused/callsite locs)."""
    for _ in range(16):
        if loc is None:
            return None
        try:
            if loc.is_a_file():
                return loc
            if loc.is_a_name():
                loc = loc.child_loc
            elif loc.is_a_callsite():
                loc = loc.callee
            elif loc.is_a_fused():
                locs = list(loc.locations)
                loc = locs[0] if locs else None
            else:
                return None
        except Exception:
            return None
    return None


# --------------------------------------------------------------------------- types


def element_type(mlir_type: ir.Type) -> ir.Type:
    return mlir_type.element_type if isinstance(mlir_type, ir.ShapedType) else mlir_type


def is_float(mlir_type: ir.Type) -> bool:
    return isinstance(element_type(mlir_type), ir.FloatType)


def numpy_dtype(mlir_type: ir.Type) -> np.dtype:
    """Storage dtype of an MLIR element type (or of a shaped type's element type)."""
    t = element_type(mlir_type)
    if isinstance(t, ir.F32Type):
        return np.dtype(np.float32)
    if isinstance(t, ir.F16Type):
        return np.dtype(np.float16)
    if isinstance(t, ir.F64Type):
        return np.dtype(np.float64)
    if isinstance(t, ir.BF16Type):
        return BF16 if BF16 is not None else np.dtype(np.float32)
    if isinstance(t, ir.IndexType):
        return np.dtype(np.int64)
    if isinstance(t, ir.IntegerType):
        if t.width == 1:
            return np.dtype(np.bool_)
        if t.width in (8, 16, 32, 64):
            return np.dtype(f"{'u' if t.is_unsigned else ''}int{t.width}")
    raise InterpreterError(None, f"no interpreter support for element type '{t}'")


def compute_dtype(mlir_type: ir.Type) -> np.dtype:
    """Dtype handlers compute in: float32 for every float narrower than f64."""
    dt = numpy_dtype(mlir_type)
    if is_float(mlir_type):
        return np.dtype(np.float64) if dt == np.float64 else np.dtype(np.float32)
    return dt


def _round_bf16(a: np.ndarray) -> np.ndarray:
    """float32 -> float32 rounded to bf16 precision (round to nearest even)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    bits = a.view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    out = bits.astype(np.uint32).view(np.float32)
    return np.where(np.isnan(a), a, out)


def to_storage(array, mlir_type: ir.Type) -> np.ndarray:
    """`array` converted (rounded) to the storage dtype of `mlir_type`'s element type."""
    a = np.asarray(array)
    t = element_type(mlir_type)
    dt = numpy_dtype(t)
    if isinstance(t, ir.BF16Type) and BF16 is None:
        return _round_bf16(a)
    if dt == np.bool_ and a.dtype != np.bool_:
        # i1 keeps the low bit of an integer, like arith.trunci.
        return (a.astype(np.int64) & 1).astype(np.bool_) if a.dtype.kind in "iu" else a != 0
    if dt.kind in "iu" and a.dtype.kind == "f":
        a = np.trunc(a)
    return a.astype(dt, copy=False)


def shape_of(mlir_type: ir.Type) -> list[int | None]:
    """Static shape of a ranked shaped type, None for dynamic dims; [] for scalars."""
    if not isinstance(mlir_type, ir.ShapedType):
        return []
    if not mlir_type.has_rank:
        raise InterpreterError(None, f"no interpreter support for unranked type '{mlir_type}'")
    dyn = ir.ShapedType.get_dynamic_size()
    return [None if d == dyn else d for d in mlir_type.shape]


# --------------------------------------------------------------------------- inputs


def random_inputs(
    func_op,
    seed: int = 0,
    dims: Mapping | None = None,
    dynamic_size: int = 8,
) -> list[np.ndarray]:
    """Seeded random arguments for `func_op` (a `func.func`).

    Floats: standard normal scaled by 1/sqrt(last dim), so that sums over the last
    dim, softmax and exp stay finite. Integers: uniform in [0, 8); i1: random bools.
    A dynamic dim `?` (dim `j` of argument `i`) takes the size `dims[(i, j)]` when
    `dims` has that key, else `dynamic_size`. Results are in storage dtype (`to_storage`).
    """
    rng = np.random.default_rng(seed)
    dims = dict(dims or {})
    out = []
    for i, t in enumerate(_function_type(func_op).inputs):
        shape = [
            d if d is not None else int(dims.get((i, j), dynamic_size))
            for j, d in enumerate(shape_of(t))
        ]
        et = element_type(t)
        if isinstance(et, ir.FloatType):
            scale = 1.0 / np.sqrt(shape[-1]) if shape and shape[-1] > 0 else 1.0
            a = rng.standard_normal(shape) * scale
        elif isinstance(et, ir.IntegerType) and et.width == 1:
            a = rng.integers(0, 2, size=shape).astype(bool)
        elif isinstance(et, (ir.IntegerType, ir.IndexType)):
            a = rng.integers(0, 8, size=shape)
        else:
            raise InterpreterError(func_op.location, f"cannot make random input of type '{t}'")
        out.append(to_storage(a, t))
    return out


def _function_type(func_op) -> ir.FunctionType:
    return ir.FunctionType(ir.TypeAttr(func_op.attributes["function_type"]).value)


# --------------------------------------------------------------------------- interpreter

_extra_handlers_loaded = False


def _load_upstream() -> None:
    from . import upstream  # noqa: F401  (registers the upstream handlers)


def _load_mirage_handlers() -> None:
    """Import `mirage_mlir.interpreter.mirage` once, if that module exists."""
    global _extra_handlers_loaded
    if _extra_handlers_loaded:
        return
    _extra_handlers_loaded = True
    name = __package__ + ".mirage"
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name:
            raise


class Interpreter:
    """Evaluates functions of one `ir.Module` on NumPy arrays.

    `values` is the environment of the function being run: a dict from `ir.Value`
    (these bindings hash and compare values by the underlying MLIR value, whatever
    Python wrapper class is used) to its array. Nested regions share it.
    """

    def __init__(self, module: ir.Module):
        _load_upstream()
        self.module = module
        self.functions: dict[str, object] = {}
        for op in module.body.operations:
            if op.operation.name == "func.func":
                self.functions[ir.StringAttr(op.attributes["sym_name"]).value] = op
        self.values: dict[ir.Value, np.ndarray] = {}
        # Stack of per-dim index arrays of the linalg op being evaluated (linalg.index).
        self.loop_indices: list[list[np.ndarray]] = []
        self._resources: dict[str, bytes] | None = None
        self._depth = 0

    # -- entry points

    def entry(self, name: str | None = None):
        """The function called `name`, or the only public function with a body."""
        if name is not None:
            name = name.lstrip("@")
            if name not in self.functions:
                raise InterpreterError(None, f"no function named '@{name}' in the module")
            return self.functions[name]
        public = [
            f
            for f in self.functions.values()
            if not _is_private(f) and len(f.regions[0].blocks) > 0
        ]
        if len(public) != 1:
            names = ", ".join("@" + n for n, f in self.functions.items() if f in public)
            raise InterpreterError(
                None, f"expected exactly one public function to run, found {len(public)} ({names}); pass entry="
            )
        return public[0]

    def run(self, entry=None, inputs: Sequence | None = None, seed: int = 0, dims=None) -> list[np.ndarray]:
        """Run function `entry` (name, FuncOp or None for the only public one)."""
        func = entry if entry is not None and not isinstance(entry, str) else self.entry(entry)
        if inputs is None:
            inputs = random_inputs(func, seed=seed, dims=dims)
        with np.errstate(all="ignore"):
            return self.call(func, list(inputs))

    def call(self, func, args: Sequence) -> list[np.ndarray]:
        """Call a `func.func` on `args` (converted to the argument types) in a fresh frame."""
        ftype = _function_type(func)
        name = ir.StringAttr(func.attributes["sym_name"]).value
        if len(func.regions[0].blocks) == 0:
            raise InterpreterError(func.location, f"function '@{name}' has no body")
        if len(args) != len(ftype.inputs):
            raise InterpreterError(
                func.location, f"function '@{name}' takes {len(ftype.inputs)} arguments, got {len(args)}"
            )
        converted = []
        for i, (a, t) in enumerate(zip(args, ftype.inputs)):
            a = np.asarray(a)
            if not _shape_matches(a.shape, shape_of(t)):
                raise InterpreterError(
                    func.location, f"argument #{i} of '@{name}' has shape {list(a.shape)}, expected '{t}'"
                )
            try:
                converted.append(to_storage(a, t))
            except InterpreterError as e:
                raise InterpreterError(func.location, e.message) from None
        if self._depth > 200:
            raise InterpreterError(func.location, "call depth exceeds 200")
        saved, self.values = self.values, {}
        self._depth += 1
        try:
            return self.eval_block(func.regions[0].blocks[0], converted)
        finally:
            self.values = saved
            self._depth -= 1

    # -- evaluation

    def eval_block(self, block: ir.Block, args: Sequence) -> list[np.ndarray]:
        """Bind `args` to the block arguments, evaluate its ops, return the terminator's values."""
        if len(block.arguments) != len(args):
            raise InterpreterError(None, f"block takes {len(block.arguments)} arguments, got {len(args)}")
        for barg, a in zip(block.arguments, args):
            self.values[barg] = a
        for op in block.operations:
            name = op.operation.name
            if name in TERMINATORS:
                return self.dispatch(op, [self.get(v) for v in op.operands])
            self.eval_op(op)
        last = list(block.operations)[-1] if len(block.operations) else None
        raise InterpreterError(
            last.location if last is not None else None,
            f"no interpreter support for block terminator '{last.operation.name if last else '<none>'}'",
        )

    def eval_op(self, op) -> list[np.ndarray]:
        """Evaluate a non-terminator op: read its operands, run its handler, store its results."""
        args = [self.get(v) for v in op.operands]
        results = self.dispatch(op, args)
        if len(results) != len(op.results):
            raise InterpreterError(
                op.location,
                f"handler of '{op.operation.name}' returned {len(results)} values for {len(op.results)} results",
            )
        stored = []
        for res, value in zip(results, op.results):
            t = value.type
            try:
                a = to_storage(res, t)
            except InterpreterError as e:
                raise InterpreterError(op.location, e.message) from None
            if isinstance(t, ir.ShapedType) and not _shape_matches(a.shape, shape_of(t)):
                raise InterpreterError(
                    op.location, f"'{op.operation.name}' produced shape {list(a.shape)} for result type '{t}'"
                )
            self.values[value] = a
            stored.append(a)
        return stored

    def dispatch(self, op, args: list) -> list[np.ndarray]:
        """Call the handler of `op` on `args`, turning any failure into InterpreterError."""
        name = op.operation.name
        fn = HANDLERS.get(name)
        if fn is None:
            _load_mirage_handlers()
            fn = HANDLERS.get(name)
        if fn is None:
            raise InterpreterError(op.location, f"no interpreter support for '{name}'")
        try:
            return list(fn(self, op, args))
        except InterpreterError as e:
            if e.location is None:
                e.location = op.location
            raise
        except Exception as e:  # a handler hit input it does not understand
            raise InterpreterError(op.location, f"'{name}' failed: {type(e).__name__}: {e}") from e

    def get(self, value: ir.Value) -> np.ndarray:
        try:
            return self.values[value]
        except KeyError:
            raise InterpreterError(None, f"value {value.get_name()} used before it was computed") from None

    # -- helpers for handlers

    def resource_blob(self, name: str) -> bytes:
        """Bytes of `dense_resource<name>` from the module's `dialect_resources` section."""
        if self._resources is None:
            text = self.module.operation.get_asm(large_elements_limit=None)
            self._resources = {
                m.group(1): bytes.fromhex(m.group(2))
                for m in re.finditer(r'([\w.$-]+)\s*:\s*"0x([0-9A-Fa-f]*)"', text.split("{-#", 1)[-1])
            }
        if name not in self._resources:
            raise InterpreterError(None, f"dense_resource blob '{name}' not found")
        return self._resources[name]


def _is_private(func) -> bool:
    vis = func.attributes["sym_visibility"] if "sym_visibility" in func.attributes else None
    return vis is not None and ir.StringAttr(vis).value != "public"


def _shape_matches(shape: Sequence[int], expected: Sequence[int | None]) -> bool:
    return len(shape) == len(expected) and all(e is None or e == s for s, e in zip(shape, expected))


# --------------------------------------------------------------------------- interpret()


def parse_module(program, context: ir.Context | None = None) -> ir.Module:
    """Parse MLIR text or a file path into an `ir.Module` (in `context` or a new one)."""
    if isinstance(program, ir.Module):
        return program
    path = None
    if isinstance(program, os.PathLike) or (
        isinstance(program, str) and "\n" not in program and "{" not in program and os.path.isfile(program)
    ):
        path = os.fspath(program)
        with open(path) as f:
            text = f.read()
    elif isinstance(program, str):
        text = program
    else:
        raise TypeError(f"program must be MLIR text, a path or an ir.Module, not {type(program).__name__}")
    ctx = context if context is not None else ir.Context()
    if context is None and re.search(r"\bmirage_(kernel|block|thread)\.", text):
        try:
            from mirage_mlir.dialects import load_dialects
        except ImportError:
            pass
        else:
            load_dialects(ctx)
    try:
        with ctx, ir.Location.unknown():
            # parseFile gives locations (and so error messages) the file's name.
            return ir.Module.parseFile(path) if path is not None else ir.Module.parse(text)
    except ir.MLIRError as e:
        diags = e.error_diagnostics
        if diags:
            raise InterpreterError(diags[0].location, f"parse error: {diags[0].message}") from None
        raise InterpreterError(None, f"parse error: {e}") from None


def interpret(
    program,
    entry: str | None = None,
    inputs: Sequence | None = None,
    seed: int = 0,
    *,
    context: ir.Context | None = None,
    dims: Mapping | None = None,
) -> list[np.ndarray]:
    """Run `program` (MLIR text, a path or an `ir.Module`) and return its results.

    `entry` names the function to run (default: the only public one). `inputs`
    default to `random_inputs(func, seed, dims)`. Text is parsed in `context` if
    given, otherwise in a fresh context (unregistered dialects not allowed).
    """
    module = parse_module(program, context)
    with module.context:
        return Interpreter(module).run(entry, inputs, seed=seed, dims=dims)


__all__ = [
    "HANDLERS",
    "TERMINATORS",
    "Interpreter",
    "InterpreterError",
    "compute_dtype",
    "element_type",
    "interpret",
    "numpy_dtype",
    "parse_module",
    "random_inputs",
    "register",
    "shape_of",
    "to_storage",
]
