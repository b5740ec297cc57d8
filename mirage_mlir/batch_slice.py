"""Verification on one chunk of a batch: two programs that provably compute every chunk of L rows
of their inputs' leading dim alike and independently are equivalent iff they agree on one chunk,
so the finite-field trials and the float check run on L rows instead of B.

A program is batch-wise along dim 0 of its batched inputs (those whose dim 0 has size B) when
- every kernel-level op keeps rows apart: elementwise ops, reductions over another dim, rms_norm
  (over the last dim), a rank-2 matmul whose left operand is batched and whose right one is not, a
  batched matmul of two batched operands; an operand that is not batched broadcasts along dim 0
  (size 1) wherever a batched one is met;
- every graph_def that reads a batched tensor splits dim 0 of each of them, and of each of its
  outputs, over one grid dim g (tiles of t = B / grid[g] rows), reads nothing else split over g (the
  weights are the same for every g), and never loops over dim 0.
Each block's computation then depends on its own t rows and on nothing that changes with its
position along g, so output rows [c*L, (c+1)*L) are one function of input rows [c*L, (c+1)*L) for
L = lcm of every t (1 for kernel-level ops), the same function for every chunk c and every B.
Equivalence at B rows is equivalence of those functions, which the program at L rows computes:
its grid dims g scaled by L / B, nothing else changed. The finite-field bound per trial does not
depend on the number of rows (the degrees and exp counts are the same).
"""

from __future__ import annotations

from dataclasses import replace
from math import lcm

from .graph_verify import verify
from .mugraph import Graph, Node, TensorType
from .opset import OPS


class _NotBatchwise(Exception):
    pass


def _dim(d: int, rank: int) -> int:
    """A map entry normalized (-1: no dim)."""
    return -1 if d == -1 else d % rank


def _check_rowwise(node: Node, batched: list[bool], types: list[TensorType]) -> None:
    info = OPS.get(node.op)
    if info is None:
        raise _NotBatchwise(node.op)
    plain = [t for b, t in zip(batched, types) if not b]
    if info.category == "reduce" and node.attr("dim") % types[0].rank == 0:
        raise _NotBatchwise("a reduction over the batch")
    if info.category == "norm" and types[0].rank < 2:
        raise _NotBatchwise("a norm over the batch")
    if info.category == "matmul" and types[0].rank == 2:
        if not batched[0] or batched[1]:
            raise _NotBatchwise("a matmul contracting the batch")
    elif info.category in ("binary", "matmul") and any(t.shape[0] != 1 for t in plain):
        raise _NotBatchwise("an operand aligned with the batch but not of it")


def _block_axis(body: Graph, batched: list[bool]) -> int:
    """The grid dim splitting dim 0 of the block graph's batched tensors."""
    iterators = [node for node in body.nodes if node.op == "input_iterator"]
    axes = set()
    for node in iterators:
        t = body.inputs[node.inputs[0]]
        imap = [_dim(d, t.rank) for d in node.attr("imap")]
        if batched[node.inputs[0]]:
            if imap.count(0) != 1 or _dim(node.attr("fmap"), t.rank) == 0:
                raise _NotBatchwise("a block reads the whole batch or loops over it")
            axes.add(imap.index(0))
    if len(axes) != 1:
        raise _NotBatchwise("the batch split over several grid dims")
    axis = axes.pop()
    for node in iterators:
        if not batched[node.inputs[0]] and node.attr("imap")[axis] != -1:
            raise _NotBatchwise("a weight split along the batch's grid dim")
    for node in body.nodes:
        if node.op == "output_saver":
            tile = body.value_types[node.inputs[0]]
            if _dim(node.attr("omap")[axis], tile.rank) != 0:
                raise _NotBatchwise("an output not split along the batch's grid dim")
    return axis


def _analyse(graph: Graph, batch: int, batched_inputs: list[bool]):
    """(rows per chunk, which outputs are batched, per graph_def: the grid dim of the batch)."""
    batched = list(batched_inputs)
    rows, axes = 1, {}
    for index, node in enumerate(graph.nodes):
        reads = [batched[v] for v in node.inputs]
        if not any(reads):
            batched += [False] * len(node.types)
            continue
        if node.op == "graph_def":
            axes[index] = _block_axis(node.body, reads)
            rows = lcm(rows, batch // node.body.grid_dim[axes[index]])
        else:
            _check_rowwise(node, reads, [graph.value_types[v] for v in node.inputs])
        if any(not t.shape or t.shape[0] != batch for t in node.types):
            raise _NotBatchwise("a result without the batch")
        batched += [True] * len(node.types)
    return rows, tuple(batched[v] for v in graph.outputs), axes


def _cut(t: TensorType, rows: int) -> TensorType:
    return TensorType((rows,) + t.shape[1:], t.dtype)


def _rebatch(graph: Graph, batch: int, rows: int, batched_inputs: list[bool], axes: dict) -> Graph:
    """`graph` at `rows` rows of its batched inputs (see the module's docstring)."""
    batched = list(batched_inputs)
    types = [_cut(t, rows) if b else t for t, b in zip(graph.inputs, batched_inputs)]
    nodes = []
    for index, node in enumerate(graph.nodes):
        if not any(batched[v] for v in node.inputs):
            nodes.append(node)
            batched += [False] * len(node.types)
            types += node.types
            continue
        results = tuple(_cut(t, rows) for t in node.types)
        body = node.body
        if node.op == "graph_def":
            grid = list(body.grid_dim)
            grid[axes[index]] = grid[axes[index]] * rows // batch
            inner = tuple(replace(n, types=tuple(_cut(t, rows) for t in n.types)) if n.op == "output_saver" else n
                          for n in body.nodes)
            body = replace(body, inputs=tuple(types[v] for v in node.inputs), nodes=inner, grid_dim=tuple(grid))
        nodes.append(replace(node, types=results, body=body))
        batched += [True] * len(node.types)
        types += results
    return replace(graph, inputs=tuple(types[:len(graph.inputs)]), nodes=tuple(nodes))


def one_chunk(*graphs: Graph) -> tuple[tuple[Graph, ...], int, int]:
    """`graphs` (one interface) cut to the fewest rows of dim 0 that they all compute alike and
    independently, with (batch, rows); as they are (rows == batch) when no cut is proven."""
    inputs = graphs[0].inputs
    best = (graphs, 1, 1)
    if not all(t.is_static() for g in graphs for t in g.value_types):
        return best
    for batch in sorted({t.shape[0] for t in inputs if t.rank and t.shape[0] > 1}):
        batched_inputs = [bool(t.rank) and t.shape[0] == batch for t in inputs]
        try:
            analyses = [_analyse(g, batch, batched_inputs) for g in graphs]
        except _NotBatchwise:
            continue
        rows = lcm(*(a[0] for a in analyses))
        if len({a[1] for a in analyses}) != 1 or batch % rows or batch // rows <= best[1] // best[2]:
            continue
        cut = tuple(_rebatch(g, batch, rows, batched_inputs, a[2]) for g, a in zip(graphs, analyses))
        if not any(verify(g) for g in cut):
            best = (cut, batch, rows)
    return best


__all__ = ["one_chunk"]
