"""Interpreter handlers for the mirage dialects: each mirage_kernel op is read into a one-node
mu-graph and run by mirage_mlir.evaluate, so the interpreter and the search share one semantics
(a graph_def runs its block graph block by block and iteration by iteration, as its maps say);
mirage.dispatch calls the specialization mirage_mlir/dispatch.py chooses."""

from __future__ import annotations

import mlir.ir as ir
import numpy as np

from mirage_mlir import dispatch
from mirage_mlir.bridge import BridgeError, graph_from_ops
from mirage_mlir.dialects import KERNEL
from mirage_mlir.evaluate import evaluate

from .core import InterpreterError, register, shape_of


def run_kernel_op(interp, op, args: list) -> list:
    unique = []
    for value in op.operands:
        if value not in unique:
            unique.append(value)
    try:
        graph, _, _, _ = graph_from_ops([op], outputs=list(op.results), inputs=unique)
    except BridgeError as e:
        raise InterpreterError(e.op.location, str(e)) from None
    by_value = dict(zip(op.operands, args))
    return evaluate(graph, [by_value[v] for v in unique])


register(*(f"mirage_kernel.{spec.name}" for spec in KERNEL.ops))(run_kernel_op)


@register("mirage.dispatch")
def run_dispatch(interp, op, args: list) -> list:
    """mirage_mlir/dispatch.py's semantics: the specialization for the operands' dynamic size."""
    patterns = [_pattern(v.type) for v in op.operands]
    try:
        n = dispatch.common_size([np.shape(a) for a in args], patterns)
        index = dispatch.choose(list(ir.DenseI64ArrayAttr(op.attributes["sizes"])), n)
    except dispatch.DispatchError as e:
        raise InterpreterError(op.location, f"mirage.dispatch: {e}") from None
    size = ir.DenseI64ArrayAttr(op.attributes["sizes"])[index]
    callee = ir.FlatSymbolRefAttr(ir.ArrayAttr(op.attributes["callees"])[index]).value
    if callee not in interp.functions:
        raise InterpreterError(op.location, f"mirage.dispatch: unknown function '@{callee}'")
    outs = interp.call(interp.functions[callee], [dispatch.pad(np.asarray(a), p, size) for a, p in zip(args, patterns)])
    return [dispatch.crop(o, _pattern(r.type), n) for o, r in zip(outs, op.results)]


def _pattern(t) -> tuple:
    """A tensor type's shape with -1 for each dynamic dim (mirage_mlir/dispatch.py's form)."""
    return tuple(-1 if d is None else d for d in shape_of(t))
