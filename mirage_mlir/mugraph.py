"""Mu-graphs as plain, hashable Python data: what the search, the evaluators, the verifier and the
lowering work on. `bridge.py` converts between these and MLIR ops of the mirage dialects.

A Graph numbers its values: inputs are 0..len(inputs)-1, then each node's results in order.
The same Graph class holds the three levels:
- kernel graph: tensors in device memory; nodes are opset ops and `graph_def` (body: a block graph);
- block graph: inputs are the graph_def's kernel tensors; nodes are input_iterator, opset ops,
  accumulators, thread_graph (body: a thread graph) and output_saver; grid_dim/forloop_range set;
- thread graph: inputs and values are scalars (shape ()).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from .opset import ACCUMULATORS

DYNAMIC = None  # a dynamic dim in TensorType.shape


@dataclass(frozen=True)
class TensorType:
    shape: tuple[int | None, ...]
    dtype: str

    @property
    def rank(self) -> int:
        return len(self.shape)

    def is_static(self) -> bool:
        return all(d is not None for d in self.shape)

    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def __str__(self) -> str:
        if not self.shape:
            return self.dtype
        dims = "x".join("?" if d is None else str(d) for d in self.shape)
        return f"tensor<{dims}x{self.dtype}>"


@dataclass(frozen=True)
class Node:
    op: str
    inputs: tuple[int, ...]
    types: tuple[TensorType, ...]
    attrs: tuple[tuple[str, Any], ...] = ()  # sorted (name, value); values are int, float, str or tuples
    body: Graph | None = None

    def attr(self, name: str, default: Any = None) -> Any:
        return dict(self.attrs).get(name, default)

    @staticmethod
    def make(op: str, inputs, types, body: Graph | None = None, **attrs) -> Node:
        return Node(op, tuple(inputs), tuple(types), tuple(sorted(attrs.items())), body)


@dataclass(frozen=True)
class Graph:
    inputs: tuple[TensorType, ...]
    nodes: tuple[Node, ...]
    outputs: tuple[int, ...]
    grid_dim: tuple[int, int, int] = (1, 1, 1)
    block_dim: tuple[int, int, int] = (128, 1, 1)
    forloop_range: int = 1
    # a block graph's schedule, like block_dim: the deepest cp.async ring the code generator may give
    # its for-loop's tiles (0: its default, lowering.plan.MAX_STAGES); the values computed do not depend on it
    max_stages: int = 0
    # likewise a schedule: each warp's mma tiles walk the loop's whole K (True), or, where the warp
    # tiles are fewer than the warps, warps split K and add their registers after the loop (False)
    whole_k_warps: bool = False

    @cached_property
    def value_types(self) -> tuple[TensorType, ...]:
        types = list(self.inputs)
        for node in self.nodes:
            types.extend(node.types)
        return tuple(types)

    @cached_property
    def producers(self) -> dict[int, tuple[int, int]]:
        """value id -> (node index, result index); graph inputs are absent."""
        result, vid = {}, len(self.inputs)
        for index, node in enumerate(self.nodes):
            for r in range(len(node.types)):
                result[vid] = (index, r)
                vid += 1
        return result

    @cached_property
    def first_result(self) -> tuple[int, ...]:
        """The value id of each node's first result."""
        firsts, vid = [], len(self.inputs)
        for node in self.nodes:
            firsts.append(vid)
            vid += len(node.types)
        return tuple(firsts)

    @cached_property
    def after_loop(self) -> frozenset[int]:
        """Block graphs: the node indices that run once after the for-loop (those fed by an accumulator)."""
        post_values: set[int] = set()
        post_nodes = set()
        for index, node in enumerate(self.nodes):
            fed = any(v in post_values for v in node.inputs)
            if fed or node.op in ACCUMULATORS:
                first = self.first_result[index]
                post_values.update(range(first, first + len(node.types)))
            if fed:
                post_nodes.add(index)
        return frozenset(post_nodes)

    def kernel_count(self) -> int:
        return len(self.nodes)
