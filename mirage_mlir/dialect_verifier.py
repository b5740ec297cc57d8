"""The verifier of the mirage dialects beyond IRDL: reads every group of mirage_kernel ops into a
mu-graph and reports what graph_verify finds, at the op it concerns, as MLIR errors.

The tools run it after parsing and after every pass, as mlir-opt runs op verifiers.
"""

from __future__ import annotations

import mlir.ir as ir

from .bridge import BridgeError, graph_from_ops
from .graph_verify import verify

NESTED_DIALECTS = {"mirage_block": "mirage_kernel.graph_def", "mirage_thread": "mirage_block.thread_graph"}


def verify_dialects(root: ir.Operation) -> bool:
    """Emits an error for each problem under `root`; True when there is none."""
    ok = True
    for block in _blocks(root):
        group = []
        for op in block.operations:
            op = op.operation
            dialect = op.name.partition(".")[0]
            if dialect == "mirage_kernel":
                group.append(op)
            elif dialect in NESTED_DIALECTS:
                op.location.emit_error(f"'{op.name}' may only appear inside '{NESTED_DIALECTS[dialect]}'")
                ok = False
        if group:
            ok = _verify_group(group) and ok
    return ok


def _blocks(op: ir.Operation):
    """Every block under `op`, in order, except the bodies of mirage ops (the graph reader visits
    those); a stack of walks instead of recursion, as regions nest deeper than Python recurses."""
    stack = [_children(op)]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
        elif isinstance(item, ir.Block):
            yield item
        else:
            stack.append(_children(item))


def _children(op: ir.Operation):
    """op's blocks, each followed by its ops that are not mirage ops."""
    for region in op.regions:
        for block in region.blocks:
            yield block
            for inner in block.operations:
                if not inner.operation.name.startswith("mirage_"):
                    yield inner.operation


def _verify_group(ops: list[ir.Operation]) -> bool:
    try:
        graph, _, _, index = graph_from_ops(ops)
    except BridgeError as e:
        e.op.location.emit_error(str(e))
        return False
    errors = verify(graph)
    for error in errors:
        index.op_at(error.path, ops[0]).location.emit_error(error.message)
    return not errors
