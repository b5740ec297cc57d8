"""Executes mu-graphs on NumPy arrays, with the arithmetic supplied by a Domain.

The structure (kernel nodes in order; a block graph run block by block and loop iteration by loop
iteration, tiles cut out as imap/fmap say and written back as omap says) lives here once. The
arithmetic is a Domain: `FloatDomain` is the reference semantics in floating point; the verifier
supplies a finite-field domain with the same method names. A wrong map therefore gives a wrong
answer in every domain.
"""

from __future__ import annotations

import math

import numpy as np

from .dtypes import compute_dtype, round_to
from .mugraph import Graph, Node
from .opset import ACCUMULATORS, OPS


class FloatDomain:
    """IEEE arithmetic: computes in f32 (f64 for f64 data) and rounds every result to its element type."""

    def unary(self, op: str, x, attrs: dict, dtype: str):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return round_to(OPS[op].numpy(np.asarray(x, compute_dtype(dtype)), **attrs), dtype)

    def binary(self, op: str, a, b, dtype: str):
        a, b = np.asarray(a, compute_dtype(dtype)), np.asarray(b, compute_dtype(dtype))
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return round_to(OPS[op].numpy(a, b), dtype)

    def reduce(self, op: str, x, dim: int, dtype: str):
        fn = {"reduce_sum": np.sum, "reduce_mean": np.mean, "reduce_max": np.max}[op]
        return round_to(fn(np.asarray(x, compute_dtype(dtype)), axis=dim, keepdims=True), dtype)

    def matmul(self, a, b, dtype: str):
        return round_to(np.matmul(np.asarray(a, np.float64 if dtype == "f64" else np.float32), b), dtype)

    def div_count(self, x, count: int, dtype: str):
        return round_to(np.asarray(x) / count, dtype)

    def rms_norm(self, x, eps: float, dtype: str):
        x = np.asarray(x, compute_dtype(dtype))
        return round_to(x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps), dtype)


def apply_opset(domain, node: Node, args: list, dtype: str, batch_axes: int = 0):
    """One opset op in `domain`; `dtype` is the result's element type. `batch_axes` leading axes
    (the blocks of a grid) precede the tensor's own dims."""
    category = OPS[node.op].category
    attrs = dict(node.attrs)
    if category == "unary":
        return domain.unary(node.op, args[0], attrs, dtype)
    if category == "binary":
        return domain.binary(node.op, args[0], args[1], dtype)
    if category == "reduce":
        return domain.reduce(node.op, args[0], attrs["dim"] % len(node.types[0].shape) + batch_axes, dtype)
    if category == "matmul":
        return domain.matmul(args[0], args[1], dtype)
    return domain.rms_norm(args[0], attrs["eps"], dtype)


def evaluate(graph: Graph, inputs: list, domain=None) -> list:
    """The outputs of a kernel graph on `inputs` (arrays in the domain's representation)."""
    domain = domain or FloatDomain()
    values = list(inputs)
    for index, node in enumerate(graph.nodes):
        args = [values[v] for v in node.inputs]
        if node.op == "graph_def":
            values.extend(run_block_graph(node.body, args, domain))
        else:
            _at(domain, graph, index)
            values.append(apply_opset(domain, node, args, node.types[0].dtype))
    return [values[v] for v in graph.outputs]


def _at(domain, graph: Graph, index: int) -> None:
    """Tells a domain that wants to know (`at_node`) which node it computes next (the finite-field
    domain skips lanes no output reads)."""
    hook = getattr(domain, "at_node", None)
    if hook is not None:
        hook(graph, index)


GRID_AXES = 3  # block-graph values carry one leading axis per grid dim (size 1 where replicated)


def run_block_graph(graph: Graph, tensors: list, domain) -> list:
    """Runs a block graph on every block of its grid; returns the assembled output tensors.

    All blocks run at once: a tile value is an array with a leading axis per grid dim, so each
    op is one NumPy call, while loop iterations run in order as the for-loop does.
    """
    post = graph.after_loop
    values: dict[int, object] = {}
    accumulated: dict[int, list] = {}
    views = {index: _iterator_view(graph, node, tensors[node.inputs[0]])
             for index, node in enumerate(graph.nodes) if node.op == "input_iterator"}
    for iteration in range(graph.forloop_range):
        for index, node in enumerate(graph.nodes):
            if index in post:
                continue
            first = graph.first_result[index]
            if node.op == "input_iterator":
                view = views[index]  # iteration axis of size 1 when fmap is -1
                values[first] = view[iteration if len(view) > 1 else 0]
            elif node.op in ACCUMULATORS:
                accumulated.setdefault(index, []).append([values[v] for v in node.inputs])
            else:
                _at(domain, graph, index)
                values[first] = _compute(domain, node, [values[v] for v in node.inputs])
    outputs = {}
    for index, node in enumerate(graph.nodes):
        first = graph.first_result[index]
        if node.op in ACCUMULATORS:
            values[first] = _finish_accumulator(domain, node, accumulated[index])
        elif index in post:
            args = [values[v] for v in node.inputs]
            if node.op == "output_saver":
                outputs[first] = _assemble_output(graph, node, args[0])
            else:
                _at(domain, graph, index)
                values[first] = _compute(domain, node, args)
    return [outputs[v] for v in graph.outputs]


def _compute(domain, node: Node, args: list):
    if node.op == "thread_graph":
        return evaluate(node.body, args, domain)[0]
    return apply_opset(domain, node, args, node.types[0].dtype, GRID_AXES)


def _iterator_view(graph: Graph, node: Node, tensor) -> np.ndarray:
    """Every block's tile of `tensor` in every iteration: axes (iteration, x, y, z, *tile[, domain axes]).

    A dim split by grid axis g and by the loop is laid out (block, iteration, tile): each block's
    share spans all of its iterations. Grid axes that split nothing get size 1 (replication).
    """
    tensor = np.asarray(tensor)
    tile = node.types[0].shape
    imap, fmap = node.attr("imap"), node.attr("fmap")
    split_shape, grid_pos, loop_pos, tile_pos = [], [None] * GRID_AXES, None, []
    for dim, size in enumerate(tile):
        for axis in range(GRID_AXES):
            if imap[axis] == dim:
                grid_pos[axis] = len(split_shape)
                split_shape.append(graph.grid_dim[axis])
        if fmap == dim:
            loop_pos = len(split_shape)
            split_shape.append(graph.forloop_range)
        tile_pos.append(len(split_shape))
        split_shape.append(size)
    extra = list(range(len(split_shape), len(split_shape) + tensor.ndim - len(tile)))
    view = tensor.reshape(split_shape + list(tensor.shape[len(tile):]))
    # Missing loop/grid axes become trailing size-1 axes, moved to the front by the transpose.
    missing = [loop_pos, *grid_pos].count(None)
    spare = iter(range(view.ndim, view.ndim + missing))
    view = view.reshape(view.shape + (1,) * missing)
    order = [loop_pos if loop_pos is not None else next(spare)]
    order += [p if p is not None else next(spare) for p in grid_pos]
    return view.transpose(order + tile_pos + extra)


def _assemble_output(graph: Graph, node: Node, tiles) -> np.ndarray:
    """The kernel tensor an output saver writes: block (x, y, z)'s tile lands where omap says."""
    tiles = np.asarray(tiles)
    rank = len(node.types[0].shape)
    grid = graph.grid_dim
    tiles = np.broadcast_to(tiles, tuple(grid) + tiles.shape[GRID_AXES:])
    omap = node.attr("omap")
    # Unmapped grid axes have size 1 (the verifier requires it): they go first and vanish.
    order = [axis for axis in range(GRID_AXES) if omap[axis] == -1]
    shape = []
    for dim in range(rank):
        axes = [axis for axis in range(GRID_AXES) if omap[axis] == dim]
        order += axes + [GRID_AXES + dim]
        shape.append(tiles.shape[GRID_AXES + dim] * (grid[axes[0]] if axes else 1))
    extra = list(range(GRID_AXES + rank, tiles.ndim))
    return np.ascontiguousarray(tiles.transpose(order + extra)).reshape(shape + [tiles.shape[e] for e in extra])


def _finish_accumulator(domain, node: Node, steps: list):
    dtype = node.types[0].dtype
    dim = node.attr("reduce_dim", -1)
    if dim != -1:
        dim = dim % len(node.types[0].shape) + GRID_AXES
    xs = [args[0] for args in steps]
    if node.op == "accum_rms":
        xs = [domain.unary("square", x, {}, dtype) for x in xs]
    if dim != -1:
        reduce_op = "reduce_max" if node.op == "accum_max" else "reduce_sum"
        xs = [domain.reduce(reduce_op, x, dim, dtype) for x in xs]
    if node.op == "accum_rescaled_sum":
        ms = [args[1] for args in steps]
        running_max = _fold(domain, "max", ms, dtype)
        xs = [domain.binary("mul", x, domain.unary("exp", domain.binary("sub", m, running_max, dtype), {}, dtype), dtype)
              for x, m in zip(xs, ms)]
    total = _fold(domain, "max" if node.op == "accum_max" else "add", xs, dtype)
    if node.op in ("accum_mean", "accum_rms"):
        count = len(steps) * (np.shape(steps[0][0])[dim] if dim != -1 else 1)
        total = domain.div_count(total, count, dtype)
    if node.op == "accum_rms":
        total = domain.unary("sqrt", domain.unary("add_scalar", total, {"scalar": node.attr("eps", 0.0)}, dtype), {}, dtype)
    return total


def _fold(domain, op: str, xs: list, dtype: str):
    total = xs[0]
    for x in xs[1:]:
        total = domain.binary(op, total, x, dtype)
    return total
