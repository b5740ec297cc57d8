"""Builders that assemble mu-graphs op by op, inferring result shapes from mirage_mlir.shapes.

Used by the search to grow candidates, by plans.py to write Mirage's published plans, and by tests.
Values are the Graph's value ids (ints).
"""

from __future__ import annotations

from . import shapes
from .mugraph import Graph, Node, TensorType
from .opset import OPS


class GraphBuilder:
    """Appends nodes to a graph whose inputs are given; `finish(outputs)` returns the Graph."""

    def __init__(self, inputs: list[TensorType], **graph_fields):
        self.inputs = tuple(inputs)
        self.types: list[TensorType] = list(inputs)
        self.nodes: list[Node] = []
        self.graph_fields = graph_fields

    def add(self, node: Node) -> list[int]:
        first = len(self.types)
        self.nodes.append(node)
        self.types.extend(node.types)
        return list(range(first, len(self.types)))

    def op(self, name: str, *args: int, dtype: str | None = None, **attrs) -> int:
        """An opset op; the result's element type is the first operand's unless `dtype` says."""
        shape = shapes.infer(name, [self.types[a].shape for a in args], attrs)
        result = TensorType(shape, dtype or self.types[args[0]].dtype)
        kinds = dict(OPS[name].attrs)
        # f64 attributes stay floats so that equal graphs compare and hash equal.
        typed = {k: float(v) if kinds.get(k) == "f64" else v for k, v in attrs.items()}
        return self.add(Node.make(name, args, [result], **typed))[0]

    def finish(self, outputs: list[int]) -> Graph:
        return Graph(self.inputs, tuple(self.nodes), tuple(outputs), **self.graph_fields)


class BlockBuilder(GraphBuilder):
    """A block graph over the kernel tensors `inputs`, for a grid and a for-loop range."""

    def __init__(self, inputs: list[TensorType], grid_dim, forloop_range: int, block_dim=(128, 1, 1)):
        super().__init__(inputs, grid_dim=tuple(grid_dim), forloop_range=forloop_range, block_dim=tuple(block_dim))
        self.grid_dim = tuple(grid_dim)
        self.forloop_range = forloop_range

    def iterator(self, tensor: int, imap, fmap: int) -> int:
        t = self.types[tensor]
        tile = shapes.iterator_tile(t.shape, tuple(imap), fmap, self.grid_dim, self.forloop_range)
        node = Node.make("input_iterator", [tensor], [TensorType(tile, t.dtype)], imap=tuple(imap), fmap=fmap)
        return self.add(node)[0]

    def accum(self, name: str, *args: int, dtype: str = "f32", reduce_dim: int = -1, eps: float | None = None) -> int:
        shape = self.types[args[0]].shape
        if reduce_dim != -1:
            shape = shapes.reduce(shape, reduce_dim)
        attrs = {}
        if reduce_dim != -1:
            attrs["reduce_dim"] = reduce_dim
        if eps is not None:
            attrs["eps"] = float(eps)
        return self.add(Node.make(name, args, [TensorType(shape, dtype)], **attrs))[0]

    def save(self, tile: int, omap) -> int:
        t = self.types[tile]
        shape = shapes.saver_shape(t.shape, tuple(omap), self.grid_dim)
        return self.add(Node.make("output_saver", [tile], [TensorType(shape, t.dtype)], omap=tuple(omap)))[0]


class KernelBuilder(GraphBuilder):
    def graph_def(self, body: Graph, args: list[int]) -> list[int]:
        types = [body.value_types[v] for v in body.outputs]
        return self.add(Node.make("graph_def", args, types, body))


__all__ = ["BlockBuilder", "GraphBuilder", "KernelBuilder"]
