"""Conversion between MLIR ops of the mirage dialects and mu-graphs (mirage_mlir.mugraph).

`graph_from_ops` reads a list of mirage_kernel ops (a subgraph of a function) into a kernel Graph,
remembering which MLIR op each node came from so that problems found on the Graph are reported
at the op. `build_graph` writes a Graph back as MLIR ops at an insertion point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mlir.ir as ir

from .mugraph import Graph, Node, TensorType

LEVEL_DIALECT = {"kernel": "mirage_kernel", "block": "mirage_block", "thread": "mirage_thread"}
SUB_LEVEL = {"kernel": "block", "block": "thread"}
SEGMENT_ATTRS = ("operandSegmentSizes", "resultSegmentSizes")
BLOCK_GRAPH_ATTRS = ("grid_dim", "block_dim", "forloop_range", "max_stages", "whole_k_warps")


class BridgeError(Exception):
    """An op that cannot be read as a mu-graph node; carries the op for the diagnostic."""

    def __init__(self, op: ir.Operation, message: str):
        super().__init__(message)
        self.op = op


def tensor_type(t: ir.Type) -> TensorType:
    if isinstance(t, ir.RankedTensorType):
        shape = tuple(None if t.is_dynamic_dim(i) else t.get_dim_size(i) for i in range(t.rank))
        return TensorType(shape, str(t.element_type))
    return TensorType((), str(t))


def mlir_type(t: TensorType) -> ir.Type:
    return ir.Type.parse(str(t))


def attr_value(attr: ir.Attribute):
    """A Python value for an attribute of a mirage op (int, float, str or tuple of ints)."""
    if isinstance(attr, ir.DenseI64ArrayAttr):
        return tuple(attr)
    if isinstance(attr, (ir.BoolAttr, ir.IntegerAttr, ir.FloatAttr, ir.StringAttr)):
        return attr.value
    return None


def mlir_attr(value) -> ir.Attribute:
    if isinstance(value, bool):
        return ir.BoolAttr.get(value)
    if isinstance(value, int):
        return ir.IntegerAttr.get(ir.IntegerType.get_signless(64), value)
    if isinstance(value, float):
        return ir.FloatAttr.get_f64(value)
    if isinstance(value, str):
        return ir.StringAttr.get(value)
    return ir.DenseI64ArrayAttr.get(list(value))


@dataclass
class OpIndex:
    """Which MLIR op each node of a Graph (by path: kernel index, block index, thread index) came from."""

    ops: dict[tuple[int, ...], ir.Operation] = field(default_factory=dict)

    def op_at(self, path: tuple[int, ...], default: ir.Operation) -> ir.Operation:
        while path and path not in self.ops:
            path = path[:-1]
        return self.ops.get(path, default)


def _value_key(value: ir.Value):
    return value  # ir.Value compares and hashes by the underlying SSA value


def _read_node(op: ir.Operation, level: str, operand_ids: list[int], index: OpIndex, path) -> Node:
    dialect, _, name = op.name.partition(".")
    if dialect != LEVEL_DIALECT[level]:
        raise BridgeError(op, f"'{op.name}' cannot appear in a {level} graph (expected {LEVEL_DIALECT[level]} ops)")
    attrs = {}
    for i in range(len(op.attributes)):
        named = op.attributes[i]
        if named.name in SEGMENT_ATTRS or "." in named.name:
            continue  # segment sizes, and discardable dialect attributes such as mirage.reference
        value = attr_value(named.attr)
        if value is None:
            raise BridgeError(op, f"attribute '{named.name}' has an unsupported kind: {named.attr}")
        attrs[named.name] = value
    body = None
    if len(op.regions):
        body = _read_region(op, SUB_LEVEL[level], attrs, index, path)
        for key in BLOCK_GRAPH_ATTRS:
            attrs.pop(key, None)
    types = [tensor_type(r.type) for r in op.results]
    return Node.make(name, operand_ids, types, body, **attrs)


def _read_region(op: ir.Operation, level: str, attrs: dict, index: OpIndex, path) -> Graph:
    blocks = list(op.regions[0].blocks)
    if len(blocks) != 1:
        raise BridgeError(op, f"'{op.name}' needs a region with exactly one block")
    block = blocks[0]
    ids = {_value_key(arg): i for i, arg in enumerate(block.arguments)}
    inputs = [tensor_type(arg.type) for arg in block.arguments]
    nodes, outputs = [], None
    for op_index, inner in enumerate(block.operations):
        inner = inner.operation
        if inner.name == "gpu.yield":
            outputs = [_lookup(ids, v, inner) for v in inner.operands]
            break
        node_path = path + (op_index,)
        index.ops[node_path] = inner
        operand_ids = [_lookup(ids, v, inner) for v in inner.operands]
        node = _read_node(inner, level, operand_ids, index, node_path)
        for r in inner.results:
            ids[_value_key(r)] = len(ids)
        nodes.append(node)
    if outputs is None:
        raise BridgeError(op, f"the region of '{op.name}' must end in gpu.yield")
    extra = {}
    if level == "block":
        try:
            extra = dict(grid_dim=tuple(attrs["grid_dim"]), block_dim=tuple(attrs["block_dim"]),
                         forloop_range=int(attrs["forloop_range"]), max_stages=int(attrs.get("max_stages", 0)),
                         whole_k_warps=int(attrs.get("whole_k_warps", 0)))  # 0 / 1: graph_verify checks
        except KeyError as e:
            raise BridgeError(op, f"'{op.name}' needs attribute {e}") from None
    return Graph(tuple(inputs), tuple(nodes), tuple(outputs), **extra)


def _lookup(ids: dict, value: ir.Value, user: ir.Operation) -> int:
    key = _value_key(value)
    if key not in ids:
        raise BridgeError(user, f"'{user.name}' uses a value defined outside its graph")
    return ids[key]


def graph_from_ops(ops: list[ir.Operation], outputs: list[ir.Value] | None = None, *,
                   inputs: list[ir.Value] | None = None):
    """Reads mirage_kernel ops into a kernel Graph.

    Values defined outside `ops` become graph inputs: `inputs` in that order if given (it must
    cover them), then the others in order of first use. Outputs are `outputs` if given, else
    every result used outside `ops`. Returns (graph, input values, output values, OpIndex).
    """
    ids: dict = {_value_key(v): i for i, v in enumerate(inputs or [])}
    inputs = list(inputs or [])
    nodes: list[Node] = []
    results: list[ir.Value] = []
    index = OpIndex()
    inside = set()
    for op in ops:
        for r in op.results:
            inside.add(_value_key(r))
    # Inputs first, so that value ids follow the Graph numbering.
    for op in ops:
        for v in op.operands:
            key = _value_key(v)
            if key not in inside and key not in ids:
                ids[key] = len(ids)
                inputs.append(v)
    for node_index, op in enumerate(ops):
        index.ops[(node_index,)] = op
        operand_ids = [ids[_value_key(v)] for v in op.operands]
        nodes.append(_read_node(op, "kernel", operand_ids, index, (node_index,)))
        for r in op.results:
            ids[_value_key(r)] = len(ids)
            results.append(r)
    if outputs is None:
        op_set = {_op_key(op) for op in ops}
        outputs = [r for r in results if any(_op_key(use.owner) not in op_set for use in r.uses)]
    graph = Graph(tuple(tensor_type(v.type) for v in inputs), tuple(nodes),
                  tuple(ids[_value_key(v)] for v in outputs))
    return graph, inputs, list(outputs), index


def _op_key(op) -> ir.Operation:
    return op.operation if hasattr(op, "operation") else op


def build_graph(graph: Graph, inputs: list[ir.Value], level: str = "kernel",
                locations: list[ir.Location | None] | None = None) -> list[ir.Value]:
    """Creates the ops of `graph` at the current insertion point (and location); returns its outputs.

    `locations` (optional, one per node; None entries allowed) gives each node's op its own location.
    """
    from mirage_mlir.dialects import op_spec, segment_sizes

    values = list(inputs)
    for node_index, node in enumerate(graph.nodes):
        name = f"{LEVEL_DIALECT[level]}.{node.op}"
        spec = op_spec(name)
        attrs = {k: mlir_attr(v) for k, v in node.attrs}
        body = node.body
        if node.op == "graph_def":
            attrs.update(grid_dim=mlir_attr(body.grid_dim), block_dim=mlir_attr(body.block_dim),
                         forloop_range=mlir_attr(int(body.forloop_range)))
            if body.max_stages:
                attrs["max_stages"] = mlir_attr(int(body.max_stages))
            if body.whole_k_warps:
                attrs["whole_k_warps"] = mlir_attr(1)
        for attr_name, declared, count in (("operandSegmentSizes", spec.operands, len(node.inputs)),
                                           ("resultSegmentSizes", spec.results, len(node.types))):
            if any(v.variadic for v in declared):
                sizes = segment_sizes(declared, count)
                if sizes is None:
                    raise ValueError(f"'{name}' takes at most {declared[0].max_count} values, got {count}")
                attrs[attr_name] = ir.DenseI32ArrayAttr.get(sizes)
        op = ir.Operation.create(
            name,
            results=[mlir_type(t) for t in node.types],
            operands=[values[v] for v in node.inputs],
            attributes=attrs,
            regions=1 if body is not None else 0,
            loc=locations[node_index] if locations is not None else None,
        )
        if body is not None:
            block = op.regions[0].blocks.append(*[mlir_type(t) for t in body.inputs])
            with ir.InsertionPoint(block):
                yielded = build_graph(body, list(block.arguments), SUB_LEVEL[level])
                ir.Operation.create("gpu.yield", operands=yielded)
        values.extend(op.results)
    return [values[v] for v in graph.outputs]
