"""Executes mu-graphs on NumPy arrays, with the arithmetic supplied by a Domain.

The structure (kernel nodes in order; a block graph run block by block and loop iteration by loop
iteration, tiles cut out as imap/fmap say and written back as omap says) lives here once. The
arithmetic is a Domain: `FloatDomain` is the reference semantics in floating point; the verifier
supplies a finite-field domain with the same method names. A wrong map therefore gives a wrong
answer in every domain.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from .dtypes import compute_dtype, round_to
from .mugraph import Graph, Node
from .opset import ACCUMULATORS, OPS


class FloatDomain:
    """IEEE arithmetic: computes in f32 (f64 for f64 data) and rounds every result to its element type."""

    @staticmethod
    def _math(op: str, x: np.ndarray, attrs: dict) -> np.ndarray:
        if op == "exp":
            return np.exp(x)
        if op == "square":
            return x * x
        if op == "sqrt":
            return np.sqrt(x)
        if op == "rsqrt":
            return 1 / np.sqrt(x)
        if op == "silu":
            return x / (1 + np.exp(-x))
        if op == "gelu":
            return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
        if op == "relu":
            return np.maximum(x, 0)
        if op == "neg":
            return -x
        if op == "mul_scalar":
            return x * attrs["scalar"]
        if op == "add_scalar":
            return x + attrs["scalar"]
        if op == "cast":
            return x
        raise KeyError(op)

    def unary(self, op: str, x, attrs: dict, dtype: str):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return round_to(self._math(op, np.asarray(x, compute_dtype(dtype)), attrs), dtype)

    def binary(self, op: str, a, b, dtype: str):
        a, b = np.asarray(a, compute_dtype(dtype)), np.asarray(b, compute_dtype(dtype))
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            result = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
                      "pow": np.power, "max": np.maximum}[op](a, b)
        return round_to(result, dtype)

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


def apply_opset(domain, node: Node, args: list, dtype: str):
    """One opset op in `domain`; `dtype` is the result's element type."""
    category = OPS[node.op].category
    attrs = dict(node.attrs)
    if category == "unary":
        return domain.unary(node.op, args[0], attrs, dtype)
    if category == "binary":
        return domain.binary(node.op, args[0], args[1], dtype)
    if category == "reduce":
        return domain.reduce(node.op, args[0], attrs["dim"] % len(node.types[0].shape), dtype)
    if category == "matmul":
        return domain.matmul(args[0], args[1], dtype)
    return domain.rms_norm(args[0], attrs["eps"], dtype)


def evaluate(graph: Graph, inputs: list, domain=None) -> list:
    """The outputs of a kernel graph on `inputs` (arrays in the domain's representation)."""
    domain = domain or FloatDomain()
    values = list(inputs)
    for node in graph.nodes:
        args = [values[v] for v in node.inputs]
        if node.op == "graph_def":
            values.extend(run_block_graph(node.body, args, domain))
        else:
            values.append(apply_opset(domain, node, args, node.types[0].dtype))
    return [values[v] for v in graph.outputs]


def run_block_graph(graph: Graph, tensors: list, domain) -> list:
    """Runs a block graph on every block of its grid; returns the assembled output tensors."""
    outputs: dict[int, np.ndarray] = {}
    post = graph.after_loop
    grid = graph.grid_dim
    for block in itertools.product(range(grid[0]), range(grid[1]), range(grid[2])):
        values: dict[int, object] = dict(enumerate(tensors))
        accumulated: dict[int, list] = {}
        for iteration in range(graph.forloop_range):
            for index, node in enumerate(graph.nodes):
                if index in post:
                    continue
                args = [values[v] for v in node.inputs]
                first = graph.first_result[index]
                if node.op == "input_iterator":
                    values[first] = _read_tile(graph, node, args[0], block, iteration)
                elif node.op in ACCUMULATORS:
                    accumulated.setdefault(index, []).append(args)
                else:
                    values[first] = _compute(domain, node, args)
        for index, node in enumerate(graph.nodes):
            first = graph.first_result[index]
            if node.op in ACCUMULATORS:
                values[first] = _finish_accumulator(domain, graph, node, accumulated[index])
            elif index in post:
                args = [values[v] for v in node.inputs]
                if node.op == "output_saver":
                    _write_tile(outputs, first, node, args[0], block)
                else:
                    values[first] = _compute(domain, node, args)
    return [outputs[v] for v in graph.outputs]


def _compute(domain, node: Node, args: list):
    if node.op == "thread_graph":
        return evaluate(node.body, args, domain)[0]
    return apply_opset(domain, node, args, node.types[0].dtype)


def _read_tile(graph: Graph, node: Node, tensor, block, iteration: int):
    tile = node.types[0].shape
    imap, fmap = node.attr("imap"), node.attr("fmap")
    offsets = [0] * len(tile)
    for axis, dim in enumerate(imap):
        if dim != -1:
            # The block's share of `dim` spans every loop iteration when the loop splits it too.
            share = tile[dim] * (graph.forloop_range if fmap == dim else 1)
            offsets[dim] += block[axis] * share
    if fmap != -1:
        offsets[fmap] += iteration * tile[fmap]
    return tensor[tuple(slice(o, o + t) for o, t in zip(offsets, tile))]


def _write_tile(outputs: dict, value_id: int, node: Node, tile, block) -> None:
    out_type = node.types[0]
    if value_id not in outputs:
        # Trailing axes beyond the tensor's rank belong to the domain (the finite-field lanes).
        extra = np.shape(tile)[len(out_type.shape):]
        outputs[value_id] = np.zeros(tuple(out_type.shape) + tuple(extra), dtype=np.asarray(tile).dtype)
    shape = np.shape(tile)
    index = [slice(0, s) for s in shape]
    for axis, dim in enumerate(node.attr("omap")):
        if dim != -1:
            index[dim] = slice(block[axis] * shape[dim], (block[axis] + 1) * shape[dim])
    outputs[value_id][tuple(index)] = tile


def _finish_accumulator(domain, graph: Graph, node: Node, steps: list):
    dtype = node.types[0].dtype
    dim = node.attr("reduce_dim", -1)
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
