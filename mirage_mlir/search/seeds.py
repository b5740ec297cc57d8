"""Candidates built by rule beside the search's, verified and ranked with them (driver.superoptimize).

- `row_fused(graph)`: a program of row-wise ops (elementwise ops, and reductions along the last dim;
  every tensor [rows, n] or [rows, 1], or [1, n] read by every row) as one kernel: a block per row
  (per few rows), the whole row in shared memory, every op a block op. That is what a fusing
  compiler emits for a normalization; the search cannot, its block graphs being bounded
  (max_block_ops 9: torch-mlir's LayerNorm has 13 ops).
- `split_before_matmul(graph)`: the program cut before its last matmul that reads a tensor the
  program computes (LayerNorm + Linear: the normalization, then the projection; SwiGLU + down: the
  gated product, then the down projection), so that each part is searched alone with the search's
  kernel budget and the best of each composed (`compose`).
"""

from __future__ import annotations

from ..builder import BlockBuilder, KernelBuilder
from ..mugraph import Graph, Node, TensorType
from ..opset import OPS
from .generator import block_rms_norm

ELEMENTWISE_CATEGORIES = ("unary", "binary")
MAX_ROW_BLOCKS = 264  # two blocks per SM of an H200: rows beyond that share a block


def _row_wise(graph: Graph, rows: int, used: list[int]) -> bool:
    for v, t in enumerate(graph.value_types):
        if v < len(graph.inputs) and v not in used:
            continue
        if len(t.shape) != 2 or t.shape[0] not in (rows, 1) or not t.is_static():
            return False
    for node in graph.nodes:
        category = OPS[node.op].category if node.op in OPS else None
        if category in ("reduce", "norm"):
            along_rows = category == "norm" or node.attr("dim") % 2 == 1  # the last of two dims
            if not along_rows or graph.value_types[node.inputs[0]].shape[0] != rows:
                return False
        elif category not in ELEMENTWISE_CATEGORIES:
            return False
    return all(graph.value_types[v].shape[0] == rows for v in graph.outputs)


def row_fused(graph: Graph, threads: int = 512) -> Graph | None:
    """The program as one row-wise kernel, or None when it is not row-wise."""
    used = sorted({v for node in graph.nodes for v in node.inputs if v < len(graph.inputs)})
    if not graph.nodes or not used or any(v < len(graph.inputs) for v in graph.outputs):
        return None
    inputs = [graph.inputs[k] for k in used]
    rows = max(t.shape[0] for t in inputs + [graph.value_types[v] for v in graph.outputs])
    if not _row_wise(graph, rows, used):
        return None
    blocks = max(d for d in range(1, min(rows, MAX_ROW_BLOCKS) + 1) if rows % d == 0)
    bb = BlockBuilder(inputs, (blocks, 1, 1), 1, (threads, 1, 1))
    value = {}
    for j, (k, t) in enumerate(zip(used, inputs)):
        # the rows into shared memory (the accumulator of a one-step loop: Mirage's block graphs
        # compute and save after the loop)
        tile = bb.iterator(j, (0, -1, -1) if t.shape[0] == rows else (-1, -1, -1), -1)
        value[k] = bb.accum("accum_sum", tile, dtype=t.dtype)
    for n, node in enumerate(graph.nodes):
        args = [value[v] for v in node.inputs]
        dtype = node.types[0].dtype
        if node.op == "rms_norm":
            v = block_rms_norm(bb, args[0], node.attr("eps"))
        else:
            v = bb.op(node.op, *args, dtype=dtype, **dict(node.attrs))
        if bb.types[v].dtype != dtype:
            v = bb.op("cast", v, dtype=dtype)
        value[graph.first_result[n]] = v
    body = bb.finish([bb.save(value[v], (0, -1, -1)) for v in graph.outputs])
    kb = KernelBuilder(list(graph.inputs))
    outs = kb.graph_def(body, used)
    return kb.finish(outs)


def split_before_matmul(graph: Graph) -> tuple[Graph, Graph] | None:
    """(first, second): the nodes before the program's last matmul that reads a computed tensor,
    and the rest. `first` takes the program's inputs and returns the tensors `second` reads from it;
    `second` takes the program's inputs and then those tensors. None when there is no such cut, or
    when a program output comes before it."""
    n_in = len(graph.inputs)
    cuts = [n for n, node in enumerate(graph.nodes)
            if node.op == "matmul" and n > 0 and any(v >= n_in for v in node.inputs)]
    if not cuts:
        return None
    cut = cuts[-1]
    boundary = graph.first_result[cut]  # values below it are inputs or made before the cut
    if any(v < boundary for v in graph.outputs):
        return None
    crossing = sorted({v for node in graph.nodes[cut:] for v in node.inputs if n_in <= v < boundary})
    first = Graph(graph.inputs, graph.nodes[:cut], tuple(crossing))
    remap = {v: v for v in range(n_in)}
    remap.update({v: n_in + k for k, v in enumerate(crossing)})
    next_id = n_in + len(crossing)
    nodes = []
    for n in range(cut, len(graph.nodes)):
        node = graph.nodes[n]
        nodes.append(Node(node.op, tuple(remap[v] for v in node.inputs), node.types, node.attrs, node.body))
        for r in range(len(node.types)):
            remap[graph.first_result[n] + r] = next_id
            next_id += 1
    second = Graph(graph.inputs + tuple(graph.value_types[v] for v in crossing), tuple(nodes),
                   tuple(remap[v] for v in graph.outputs))
    return first, second


def compose(first: Graph, second: Graph) -> Graph:
    """The program `second` after `first` (as split_before_matmul cut it): second's extra inputs
    are first's outputs."""
    n_in = len(first.inputs)
    nodes = list(first.nodes)
    remap = {v: v for v in range(n_in)}
    remap.update({n_in + k: v for k, v in enumerate(first.outputs)})
    next_id = len(first.value_types)
    for n, node in enumerate(second.nodes):
        nodes.append(Node(node.op, tuple(remap[v] for v in node.inputs), node.types, node.attrs, node.body))
        for r in range(len(node.types)):
            remap[second.first_result[n] + r] = next_id
            next_id += 1
    return Graph(first.inputs, tuple(nodes), tuple(remap[v] for v in second.outputs))


__all__ = ["compose", "row_fused", "split_before_matmul"]
