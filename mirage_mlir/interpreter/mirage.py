"""Interpreter handlers for the mirage dialects: each mirage_kernel op is read into a one-node
mu-graph and run by mirage_mlir.evaluate, so the interpreter and the search share one semantics
(a graph_def runs its block graph block by block and iteration by iteration, as its maps say)."""

from __future__ import annotations

from mirage_mlir.bridge import BridgeError, graph_from_ops
from mirage_mlir.dialects import KERNEL
from mirage_mlir.evaluate import evaluate

from .core import InterpreterError, register


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
