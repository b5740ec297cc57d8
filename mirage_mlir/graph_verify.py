"""Checks of mu-graphs that IRDL cannot express: shapes, element types, block-graph maps, and the
structure of block graphs (iterators feed the loop, accumulators close it, savers follow it).

`verify(graph)` returns every problem as a GraphError whose `path` locates the node: indices into
the kernel graph, then into its block graph, then into a thread graph.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import shapes
from .dtypes import FLOAT_TYPES
from .mugraph import Graph, Node, TensorType
from .opset import ACCUMULATORS, ELEMENTWISE, OPS

# Bounds on what a value can make explode: a CUDA grid's limits; a loop range far beyond any tile
# split (the interpreter and the generated code run every iteration).
MAX_GRID = (2**31 - 1, 65535, 65535)
MAX_FORLOOP_RANGE = 65536
MAX_RING_STAGES = 16  # a deeper cp.async ring than any shared memory holds for a useful tile
LEVEL_DIALECT = {"kernel": "mirage_kernel", "block": "mirage_block", "thread": "mirage_thread"}
KIND_CHECKS = {
    "i64": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "f64": (lambda v: isinstance(v, float), "a float"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "i64_array": (lambda v: isinstance(v, tuple) and all(isinstance(x, int) for x in v), "an i64 array"),
}


@dataclass(frozen=True)
class GraphError:
    path: tuple[int, ...]
    message: str


def _shape_matches(declared: tuple, inferred: tuple) -> bool:
    return len(declared) == len(inferred) and all(
        a is None or b is None or a == b for a, b in zip(declared, inferred)
    )


class _Verifier:
    def __init__(self) -> None:
        self.errors: list[GraphError] = []

    def error(self, path, message: str) -> None:
        self.errors.append(GraphError(tuple(path), message))

    # -- shared ---------------------------------------------------------------------------
    def check_values(self, graph: Graph, path) -> bool:
        count = len(graph.inputs)
        ok = True
        for index, node in enumerate(graph.nodes):
            for v in node.inputs:
                if not 0 <= v < count:
                    self.error(path + [index], f"operand {v} is not defined before use")
                    ok = False
            count += len(node.types)
        for v in graph.outputs:
            if not 0 <= v < count:
                self.error(path, f"output {v} is not a value of the graph")
                ok = False
        # Report each unsupported element type once, at the first node that touches it.
        reported = set()
        for index, node in enumerate(graph.nodes):
            for t in [graph.value_types[v] for v in node.inputs] + list(node.types):
                if t.dtype not in FLOAT_TYPES and t.dtype not in reported:
                    reported.add(t.dtype)
                    self.error(path + [index], f"unsupported element type '{t.dtype}' "
                               f"(expected one of {', '.join(FLOAT_TYPES)})")
        return ok and not reported

    def check_opset_node(self, graph: Graph, node: Node, path) -> None:
        info = OPS[node.op]
        for name, _kind in info.attrs:
            if node.attr(name) is None:
                self.error(path, f"'{node.op}' needs attribute '{name}'")
                return
        operand_types = [graph.value_types[v] for v in node.inputs]
        if len(node.types) != 1:
            self.error(path, f"'{node.op}' has one result, got {len(node.types)}")
            return
        try:
            inferred = shapes.infer(node.op, [t.shape for t in operand_types], dict(node.attrs))
        except shapes.ShapeError as e:
            self.error(path, f"'{node.op}': {e}")
            return
        result = node.types[0]
        if not _shape_matches(result.shape, inferred):
            shown = TensorType(inferred, result.dtype)
            self.error(path, f"'{node.op}' result type {result} does not match the inferred {shown}")
        if node.op not in ("cast", "matmul"):
            dtypes = {t.dtype for t in operand_types} | {result.dtype}
            if len(dtypes) > 1:
                self.error(path, f"'{node.op}' mixes element types {sorted(dtypes)}; convert with 'cast'")

    def check_attr_kinds(self, node: Node, level: str, path) -> bool:
        """Attribute kinds IRDL cannot check (it does not know optional attributes)."""
        from mirage_mlir.dialects import op_spec

        spec = op_spec(f"{LEVEL_DIALECT[level]}.{node.op}")
        if spec is None:
            return True
        ok = True
        for attr in spec.attrs:
            value = node.attr(attr.name)
            check, what = KIND_CHECKS[attr.kind]
            if value is not None and not check(value):
                self.error(path, f"'{node.op}' attribute '{attr.name}' must be {what}, got {value!r}")
                ok = False
        return ok

    # -- kernel graphs --------------------------------------------------------------------
    def kernel(self, graph: Graph, path) -> None:
        if not self.check_values(graph, path):
            return
        for index, node in enumerate(graph.nodes):
            here = path + [index]
            if not self.check_attr_kinds(node, "kernel", here):
                continue
            if node.op == "graph_def":
                self.graph_def(graph, node, here)
            elif node.op in OPS:
                self.check_opset_node(graph, node, here)
            else:
                self.error(here, f"'{node.op}' is not a kernel-graph op")

    def graph_def(self, graph: Graph, node: Node, path) -> None:
        body = node.body
        if body is None:
            self.error(path, "graph_def needs a block graph")
            return
        if len(body.grid_dim) != 3 or any(g < 1 for g in body.grid_dim):
            self.error(path, f"grid_dim must be three positive sizes, got {list(body.grid_dim)}")
            return
        if any(g > limit for g, limit in zip(body.grid_dim, MAX_GRID)):
            self.error(path, f"grid_dim {list(body.grid_dim)} exceeds a CUDA grid ({list(MAX_GRID)})")
            return
        if len(body.block_dim) != 3 or any(b < 1 for b in body.block_dim) or _prod(body.block_dim) > 1024:
            self.error(path, f"block_dim must be three positive sizes with at most 1024 threads, got {list(body.block_dim)}")
        if not 1 <= body.forloop_range <= MAX_FORLOOP_RANGE:
            self.error(path, f"forloop_range must be in [1, {MAX_FORLOOP_RANGE}], got {body.forloop_range}")
            return
        if not 0 <= body.max_stages <= MAX_RING_STAGES:
            self.error(path, f"max_stages must be in [0, {MAX_RING_STAGES}] (0 or absent: the generator's default), "
                             f"got {body.max_stages}")
        if body.whole_k_warps not in (0, 1):
            self.error(path, f"whole_k_warps must be 0 or 1 (absent: 0), got {body.whole_k_warps}")
        operand_types = tuple(graph.value_types[v] for v in node.inputs)
        if body.inputs != operand_types:
            self.error(path, "the block graph's arguments must have the graph_def's operand types")
        self.block(body, path)
        if len(body.outputs) != len(node.types):
            self.error(path, f"graph_def has {len(node.types)} results but its block graph yields {len(body.outputs)}")
        else:
            for r, (v, t) in enumerate(zip(body.outputs, node.types)):
                if body.value_types[v] != t:
                    self.error(path, f"result {r} has type {t} but the block graph yields {body.value_types[v]}")

    # -- block graphs ---------------------------------------------------------------------
    def block(self, graph: Graph, path) -> None:
        if not self.check_values(graph, path):
            return
        n_inputs = len(graph.inputs)
        post = graph.after_loop
        saved = []
        for index, node in enumerate(graph.nodes):
            here = path + [index]
            if node.op != "input_iterator" and any(v < n_inputs for v in node.inputs):
                self.error(here, f"'{node.op}' reads a kernel tensor directly; block graphs read through input_iterator")
                continue
            if index in post and not all(self.is_after_loop(graph, v) for v in node.inputs):
                self.error(here, f"'{node.op}' runs after the loop but reads a per-iteration value; "
                           "every path must cross one accumulator")
            if not self.check_attr_kinds(node, "block", here):
                continue
            if node.op == "input_iterator":
                self.input_iterator(graph, node, here)
            elif node.op == "output_saver":
                saved.append(graph.first_result[index])
                self.output_saver(graph, node, here, index in post)
            elif node.op in ACCUMULATORS:
                self.accumulator(graph, node, here)
            elif node.op == "thread_graph":
                self.thread_graph(graph, node, here)
            elif node.op in OPS and node.op != "rms_norm":
                self.check_opset_node(graph, node, here)
            else:
                self.error(here, f"'{node.op}' is not a block-graph op")
        if sorted(saved) != sorted(graph.outputs) or len(set(graph.outputs)) != len(graph.outputs):
            self.error(path, "the block graph must yield exactly the results of its output savers")

    @staticmethod
    def is_after_loop(graph: Graph, value: int) -> bool:
        producer = graph.producers.get(value)
        if producer is None:
            return False
        node = producer[0]
        return node in graph.after_loop or graph.nodes[node].op in ACCUMULATORS

    def input_iterator(self, graph: Graph, node: Node, path) -> None:
        if len(node.inputs) != 1 or node.inputs[0] >= len(graph.inputs):
            self.error(path, "input_iterator reads one argument of the block graph")
            return
        tensor = graph.inputs[node.inputs[0]]
        imap, fmap = tuple(node.attr("imap", ())), node.attr("fmap")
        if len(imap) != 3 or fmap is None:
            self.error(path, "input_iterator needs imap (three entries) and fmap")
            return
        if not self.map_entries(imap, tensor.rank, "imap", path):
            return
        if not -1 <= fmap < tensor.rank:
            self.error(path, f"fmap {fmap} is not a dim of {tensor} or -1")
            return
        try:
            tile = shapes.iterator_tile(tensor.shape, imap, fmap, graph.grid_dim, graph.forloop_range)
        except shapes.ShapeError as e:
            self.error(path, f"input_iterator: {e}")
            return
        result = node.types[0]
        if result.dtype != tensor.dtype or not result.is_static() or not _shape_matches(result.shape, tile):
            self.error(path, f"input_iterator tile {result} does not match the maps (expected a static "
                       f"{TensorType(tile, tensor.dtype)})")

    def map_entries(self, entries, rank: int, what: str, path) -> bool:
        used = [d for d in entries if d != -1]
        if any(not 0 <= d < rank for d in used) or len(set(used)) != len(used):
            self.error(path, f"{what} {list(entries)} must give distinct dims in [0, {rank}) or -1")
            return False
        return True

    def output_saver(self, graph: Graph, node: Node, path, after_loop: bool) -> None:
        tile = graph.value_types[node.inputs[0]]
        omap = tuple(node.attr("omap", ()))
        if len(omap) != 3:
            self.error(path, "output_saver needs omap with three entries")
            return
        if not self.map_entries(omap, tile.rank, "omap", path):
            return
        if not after_loop:
            self.error(path, "output_saver must follow a for-loop accumulator")
        try:
            expected = shapes.saver_shape(tile.shape, omap, graph.grid_dim)
        except shapes.ShapeError as e:
            self.error(path, f"output_saver: {e}")
            return
        result = node.types[0]
        if result.dtype != tile.dtype or not _shape_matches(result.shape, expected):
            self.error(path, f"output_saver result {result} does not match the omap (expected {TensorType(expected, tile.dtype)})")

    def accumulator(self, graph: Graph, node: Node, path) -> None:
        for v in node.inputs:
            if self.is_after_loop(graph, v):
                self.error(path, f"'{node.op}' accumulates a value computed after the loop (a path crosses two accumulators)")
                return
        arity = 2 if node.op == "accum_rescaled_sum" else 1
        if len(node.inputs) != arity:
            self.error(path, f"'{node.op}' takes {arity} operand(s)")
            return
        x = graph.value_types[node.inputs[0]]
        dim = node.attr("reduce_dim", -1)
        try:
            expected = x.shape if dim == -1 else shapes.reduce(x.shape, dim)
            if arity == 2:
                scale = graph.value_types[node.inputs[1]].shape
                if shapes.broadcast(x.shape, scale) != tuple(x.shape):
                    # the maxima rescale x elementwise: they broadcast into x, never widen it
                    raise shapes.ShapeError(f"its maxima {list(scale)} do not broadcast into its operand {list(x.shape)}")
        except shapes.ShapeError as e:
            self.error(path, f"'{node.op}': {e}")
            return
        if node.types[0].shape != tuple(expected):
            self.error(path, f"'{node.op}' result {node.types[0]} does not match its input (expected shape {list(expected)})")

    def thread_graph(self, graph: Graph, node: Node, path) -> None:
        body = node.body
        operand_types = [graph.value_types[v] for v in node.inputs]
        if not operand_types:
            self.error(path, "thread_graph needs at least one operand")
            return
        if body is None or len(body.outputs) != 1 or len(node.types) != 1:
            self.error(path, "thread_graph needs a body yielding one scalar and has one result")
            return
        try:
            shape = operand_types[0].shape
            for t in operand_types[1:]:
                shape = shapes.broadcast(shape, t.shape)
        except shapes.ShapeError as e:
            self.error(path, f"thread_graph operands do not broadcast: {e}")
            return
        if tuple(t.dtype for t in body.inputs) != tuple(t.dtype for t in operand_types) or any(t.shape for t in body.inputs):
            self.error(path, "thread_graph body arguments must be scalars of its operands' element types")
        if node.types[0].shape != shape or node.types[0].dtype != body.value_types[body.outputs[0]].dtype:
            self.error(path, f"thread_graph result {node.types[0]} does not match its operands and body")
        if not self.check_values(body, path):
            return
        for index, inner in enumerate(body.nodes):
            if inner.op not in ELEMENTWISE:
                self.error(path + [index], f"'{inner.op}' is not a thread-graph op")
            elif self.check_attr_kinds(inner, "thread", path + [index]):
                self.check_opset_node(body, inner, path + [index])


def _prod(values) -> int:
    p = 1
    for v in values:
        p *= v
    return p


def verify(graph: Graph) -> list[GraphError]:
    """Every problem of a kernel graph (and the block and thread graphs it holds)."""
    verifier = _Verifier()
    verifier.kernel(graph, [])
    return verifier.errors
