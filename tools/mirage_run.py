"""mirage-run: runs a function of an MLIR file on random (seeded) inputs with the NumPy interpreter
(mirage_mlir.interpreter) and prints a summary of each output.

The inputs are made here (with the interpreter's own `random_inputs`, so they are what
`interpret(seed=N)` would use) and passed in, so that --save stores exactly what ran.
"""

from __future__ import annotations

import argparse
import re
import sys

import numpy as np

from mirage_mlir import interpreter

from .driver import (
    ArgumentParser,
    Printer,
    ToolError,
    diagnostic_at,
    internal_error_message,
    normalize_argv,
    open_source,
    run_main,
    verify_mirage,
)

PROG = "mirage-run"
USAGE = "mirage-run FILE [--entry NAME] [--seed N] [--save OUT.npz] [--dims argI.J=SIZE ...] [--inputs IN.npz]"
DESCRIPTION = """\
Runs a function of an MLIR file (linalg-on-tensors, mirage dialects, ...) with the NumPy interpreter
on seeded random inputs (the interpreter's: floats standard normal / sqrt(last dim), integers in
[0, 8), dynamic dims 8 unless --dims says otherwise) and prints, for each output, its index, shape,
dtype, min, max, mean and sum of absolute values."""


class RunError(Exception):
    """An error about the program, at a location (ir.Location or None)."""

    def __init__(self, message: str, location=None):
        super().__init__(message)
        self.location = location


# -- the function and its inputs ----------------------------------------------------------------

def find_function(module, entry: str | None):
    """The func.func named `entry` (default: @main, else the first function with a body)."""
    import mlir.ir as ir

    funcs = []
    for op in module.body.operations:
        op = op.operation
        if op.name == "func.func" and "sym_name" in op.attributes:
            funcs.append((ir.StringAttr(op.attributes["sym_name"]).value, op))
    defined = [(name, op) for name, op in funcs if len(op.regions[0].blocks)]
    names = ", ".join("@" + n for n, _ in defined) or "none"
    if entry is not None:
        entry = entry.lstrip("@")
        for name, op in defined:
            if name == entry:
                return name, op
        raise RunError(f"no function '@{entry}' to run (functions: {names})", module.operation.location)
    for name, op in defined:
        if name == "main":
            return name, op
    if not defined:
        raise RunError("the module has no function to run", module.operation.location)
    return defined[0]


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a seed is a non-negative integer, got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a seed is a non-negative integer, got {value}")
    return value


def parse_dims(items: list[str]) -> dict:
    """`argI.J=SIZE` (dim J of argument I) and `?=SIZE` (every other dynamic dim; the
    interpreter's default is 8)."""
    dims = {}
    for item in items:
        m = re.fullmatch(r"\s*(?:(?:%?arg)?(\d+)\.(\d+)|(\?))\s*=\s*(\d+)\s*", item)
        if not m:
            raise ToolError(f"bad --dims entry '{item}' (expected argI.J=SIZE or ?=SIZE)")
        key = "?" if m[3] else (int(m[1]), int(m[2]))
        dims[key] = int(m[4])
    return dims


def make_inputs(func_op, dims: dict, seed: int) -> list[np.ndarray]:
    """Seeded random inputs for every argument of `func_op`, made as the interpreter makes its own
    (mirage_mlir.interpreter.random_inputs), so that mirage-run and interpret(seed=N) agree. A --dims
    entry must name a dynamic dim of an argument."""
    import mlir.ir as ir

    arg_types = ir.FunctionType(ir.TypeAttr(func_op.attributes["function_type"]).value).inputs
    for key in dims:
        if key == "?":
            continue
        arg, dim = key
        if arg >= len(arg_types):
            raise RunError(f"--dims arg{arg}.{dim}: the function has {len(arg_types)} argument(s)", func_op.location)
        shaped = arg_types[arg] if isinstance(arg_types[arg], ir.ShapedType) else None
        if shaped is None or not shaped.has_rank or dim >= shaped.rank:
            raise RunError(f"--dims arg{arg}.{dim}: argument {arg} ({arg_types[arg]}) has no dim {dim}", func_op.location)
        if not shaped.is_dynamic_dim(dim):
            raise RunError(f"--dims arg{arg}.{dim}: dim {dim} of argument {arg} is static "
                           f"({shaped.get_dim_size(dim)})", func_op.location)
    sized = {k: v for k, v in dims.items() if k != "?"}
    kwargs = {"dynamic_size": dims["?"]} if "?" in dims else {}
    try:
        return [np.asarray(a) for a in interpreter.random_inputs(func_op, seed, sized, **kwargs)]
    except Exception as e:  # noqa: BLE001
        raise _as_run_error(e, func_op.location) from None


def load_inputs(path: str, count: int) -> list[np.ndarray]:
    """Inputs saved by --save (input_I) or named argI."""
    try:
        data = np.load(path)
    except (OSError, ValueError, EOFError) as e:
        raise ToolError(f"cannot read inputs from '{path}': {e}") from None
    if not hasattr(data, "files"):
        raise ToolError(f"'{path}' is not an .npz archive of named arrays (as --save writes)")
    inputs = []
    for i in range(count):
        key = next((k for k in (f"input_{i}", f"arg{i}") if k in data.files), None)
        if key is None:
            raise ToolError(f"'{path}' has no array 'input_{i}' or 'arg{i}' (it has: {', '.join(data.files)})")
        inputs.append(data[key])
    return inputs


# -- running ------------------------------------------------------------------------------------

def _as_run_error(error: Exception, default_location) -> RunError:
    """An InterpreterError at its op; anything else is an internal error of the interpreter."""
    if isinstance(error, interpreter.InterpreterError):
        location = error.location
        if location is not None and hasattr(location, "location"):  # an op rather than a location
            location = location.location
        return RunError(error.message, location if location is not None else default_location)
    return RunError(internal_error_message("the interpreter", error), default_location)


def call_interpreter(module, entry: str, inputs, seed: int, ctx) -> list[np.ndarray]:
    try:
        outputs = interpreter.interpret(module, entry=entry, inputs=inputs, seed=seed, context=ctx)
    except Exception as e:  # noqa: BLE001
        raise _as_run_error(e, module.operation.location) from None
    return [np.asarray(o) for o in outputs]


def summary(index: int, value: np.ndarray) -> str:
    """One line: index, shape, dtype and summary numbers (computed in float64)."""
    head = f"output {index}: shape={list(value.shape)} dtype={value.dtype}"
    if value.size == 0:
        return head + " (empty)"
    try:
        x = value.astype(np.float64)
    except (TypeError, ValueError):
        return head
    finite = np.isfinite(x)
    stats = (f" min={x.min():.6g} max={x.max():.6g} mean={x.mean():.6g} abs_sum={np.abs(x).sum():.6g}")
    if not finite.all():
        stats += f" nonfinite={int((~finite).sum())}"
    return head + stats


def _savable(a: np.ndarray) -> np.ndarray:
    # np.savez cannot store ml_dtypes' bfloat16 in a portable way.
    return a.astype(np.float32) if a.dtype.name == "bfloat16" else a


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, usage=USAGE, description=DESCRIPTION, allow_abbrev=False,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="FILE", help="MLIR file (- for stdin)")
    p.add_argument("--entry", metavar="NAME", help="function to run (default: @main, else the first function)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the random inputs, >= 0 (default: 0)")
    p.add_argument("--save", metavar="OUT.npz", help="write inputs (input_I) and outputs (output_I) to a .npz file")
    p.add_argument("--dims", nargs="+", action="extend", default=[], metavar="argI.J=SIZE",
                   help="sizes of dynamic dims: dim J of argument I, or ?=SIZE for all")
    p.add_argument("--inputs", metavar="IN.npz", help="use these inputs (input_I or argI arrays) instead of random ones")
    p.add_argument("--print-values", action="store_true", help="also print every output array")
    return p


def _main(argv: list[str]) -> int:
    import mlir.ir as ir

    from mirage_mlir.context import make_context, parse_module
    from mirage_mlir.diagnostics import DiagnosticCollector

    parser = build_parser()
    args = parser.parse_args(normalize_argv(argv, parser))
    dims = parse_dims(args.dims)
    source = open_source(args.input)
    if source is None:
        return 1
    printer = Printer(source)
    ctx = make_context()
    with ctx, DiagnosticCollector(ctx) as collector:

        def flush_diagnostics() -> bool:
            return printer.print_collected(collector)

        try:
            module = parse_module(source.text, ctx)
        except ir.MLIRError:
            flush_diagnostics()
            return 1
        if not (verify_mirage(module.operation) and flush_diagnostics()):
            flush_diagnostics()
            return 1
        try:
            name, func_op = find_function(module, args.entry)
            if not len(ir.FunctionType(ir.TypeAttr(func_op.attributes["function_type"]).value).results):
                raise RunError(f"@{name} returns nothing: there is no output to compute", func_op.location)
            if args.inputs:
                count = len(ir.FunctionType(ir.TypeAttr(func_op.attributes["function_type"]).value).inputs)
                inputs = load_inputs(args.inputs, count)
            else:
                inputs = make_inputs(func_op, dims, args.seed)
            outputs = call_interpreter(module, name, inputs, args.seed, ctx)
        except RunError as e:
            flush_diagnostics()
            printer.print(diagnostic_at(e.location, "error", str(e)))
            return 1
        if not flush_diagnostics():
            return 1

    origin = f"inputs from {args.inputs}" if args.inputs else f"seed {args.seed}"
    print(f"@{name}: {len(inputs)} input(s) ({origin}), {len(outputs)} output(s)")
    for i, value in enumerate(outputs):
        print(summary(i, value))
        if args.print_values:
            print(np.array2string(value, threshold=sys.maxsize))
    if args.save:
        arrays = {f"input_{i}": _savable(a) for i, a in enumerate(inputs)}
        arrays.update({f"output_{i}": _savable(a) for i, a in enumerate(outputs)})
        try:
            np.savez(args.save, **arrays)
        except OSError as e:
            raise ToolError(f"cannot write '{args.save}': {e.strerror or e}") from None
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
