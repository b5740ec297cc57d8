"""How an optimized group of ops names the program it replaced (shared by mirage-superoptimize,
mirage-verify and hand-written tests).

Convention:
- The original ops are kept in a private function `@<func>__mirage_ref<N>` carrying the unit
  attribute `mirage.reference_function`; its body is the original mirage_kernel ops, ending in
  func.return.
- Every op that replaced them carries `mirage.reference = @<func>__mirage_ref<N>`. The ops with the
  same reference form one group.
- The reference function's arguments are the values the group reads from outside, in definition
  order (block arguments by number, then results of earlier ops in block order); its results are the
  group's results used outside the group, ordered by their first use after the group (a use earlier
  in the block first; ties by operand number).
- Lowering passes skip (or erase) functions with `mirage.reference_function` and may drop
  `mirage.reference` attributes.
"""

from __future__ import annotations

import mlir.ir as ir

from ..bridge import graph_from_ops
from ..mugraph import Graph, Node, TensorType

REFERENCE_ATTR = "mirage.reference"
REFERENCE_FUNCTION_ATTR = "mirage.reference_function"


def _op(x):
    return x.operation if hasattr(x, "operation") else x


def _definition_key(value: ir.Value, positions: dict):
    owner = value.owner
    if isinstance(owner, ir.Block) or isinstance(value, ir.BlockArgument):
        return (0, ir.BlockArgument(value).arg_number if not isinstance(value, ir.BlockArgument) else value.arg_number, 0)
    op = _op(owner)
    return (1, positions.get(op, -1), ir.OpResult(value).result_number)


def block_positions(block: ir.Block) -> dict:
    return {_op(op): i for i, op in enumerate(block.operations)}


def group_interface(ops: list, block: ir.Block):
    """(inputs in definition order, outputs in first-use order) of a group of ops in `block`."""
    positions = block_positions(block)
    inside = {_op(o) for o in ops}
    results = set()
    inputs = []
    for o in ops:
        for r in _op(o).results:
            results.add(r)
    for o in ops:
        for v in _op(o).operands:
            if v not in results and v not in inputs:
                inputs.append(v)
    inputs.sort(key=lambda v: _definition_key(v, positions))
    outputs = []
    for o in ops:
        for r in _op(o).results:
            uses = [(positions.get(_op(u.owner), 1 << 30), u.operand_number) for u in r.uses
                    if _op(u.owner) not in inside]
            if uses:
                outputs.append((min(uses), r))
    outputs.sort(key=lambda x: x[0])
    return inputs, [r for _, r in outputs]


def graph_with_inputs(graph: Graph, have: list, want: list) -> Graph:
    """`graph` (whose inputs are the values `have`) with inputs reordered to the values `want`
    (values of `want` that the graph does not read become unused inputs)."""
    types = []
    old_index = {}
    for v in have:
        old_index[v] = len(old_index)
    mapping = {}
    for new_i, v in enumerate(want):
        if v in old_index:
            mapping[old_index[v]] = new_i
        types.append(TensorType(*_tensor_parts(v.type)))
    if len(mapping) != len(have):
        raise ValueError("the group reads values the reference does not take")
    shift = len(want) - len(have)

    def remap(x):
        return mapping[x] if x < len(have) else x + shift

    nodes = tuple(Node(n.op, tuple(remap(x) for x in n.inputs), n.types, n.attrs, n.body) for n in graph.nodes)
    return Graph(tuple(types), nodes, tuple(remap(x) for x in graph.outputs))


def _tensor_parts(t: ir.Type):
    from ..bridge import tensor_type

    tt = tensor_type(t)
    return tt.shape, tt.dtype


def group_graph(ops: list, block: ir.Block):
    """(Graph, inputs, outputs, OpIndex) of a group, inputs and outputs in the canonical order."""
    inputs, outputs = group_interface(ops, block)
    graph, have, outs, index = graph_from_ops([_op(o) for o in ops], outputs)
    return graph_with_inputs(graph, have, inputs), inputs, outputs, index


def reference_graph(func_op: ir.Operation) -> Graph:
    """The Graph of a reference function: its arguments in order, its returned values."""
    block = func_op.regions[0].blocks[0]
    ops = [_op(o) for o in block.operations]
    ret = ops[-1]
    body = ops[:-1]
    outs = list(ret.operands)
    args = list(block.arguments)
    if not body:
        raise ValueError("the reference function computes nothing")
    graph, have, _, _ = graph_from_ops(body, outs)
    return graph_with_inputs(graph, have, args)


def find_function(module_op: ir.Operation, name: str):
    for region in module_op.regions:
        for block in region.blocks:
            for op in block.operations:
                op = _op(op)
                if op.name == "func.func" and ir.StringAttr(op.attributes["sym_name"]).value == name:
                    return op
    return None


def functions(module_op: ir.Operation):
    """Every func.func with a body, except reference functions."""
    for region in module_op.regions:
        for block in region.blocks:
            for op in block.operations:
                op = _op(op)
                if op.name == "func.func" and len(op.regions[0].blocks) and REFERENCE_FUNCTION_ATTR not in op.attributes:
                    yield op
                elif op.name == "builtin.module":
                    yield from functions(op)
