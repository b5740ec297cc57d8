"""Predefined kernel ops (matmul, elementwise, reductions, rms_norm at the kernel level) as block
graphs, so that each gets a kernel of its own from the same code generator as graph_defs.

The graphs follow the block-graph rules (iterators, one accumulator on every path, savers), so the
evaluator and the verifier accept them. Arithmetic is in f32 with one cast to the result type at the
end, which is how mirage_mlir.evaluate computes a kernel op (in f32, rounded once).
"""

from __future__ import annotations

from ..builder import BlockBuilder
from ..mugraph import Graph, Node, TensorType
from ..opset import OPS
from .plan import LoweringError


def _divisor_le(n: int, cap: int) -> int:
    for d in range(min(n, cap), 0, -1):
        if n % d == 0:
            return d
    return 1


def _cast(bb: BlockBuilder, value: int, dtype: str) -> int:
    return value if bb.types[value].dtype == dtype else bb.op("cast", value, dtype=dtype)


def matmul_graph(node: Node, inputs: list[TensorType]) -> Graph:
    a, b = inputs
    rank = len(a.shape)
    if rank not in (2, 3):
        raise LoweringError(f"kernel-level matmul of rank {rank} is not supported (2 or 3)")
    m, k = a.shape[-2:]
    n = b.shape[-1]
    n_tile, m_tile, k_tile = _divisor_le(n, 64), _divisor_le(m, 64), _divisor_le(k, 64)
    batch = a.shape[0] if rank == 3 else 1
    grid = (n // n_tile, m // m_tile, batch)
    bdim = 0 if rank == 3 else -1
    bb = BlockBuilder(inputs, grid, k // k_tile)
    a_t = bb.iterator(0, (-1, rank - 2, bdim), rank - 1)
    b_t = bb.iterator(1, (rank - 1, -1, bdim), rank - 2)
    acc = bb.accum("accum_sum", bb.op("matmul", a_t, b_t, dtype="f32"))
    out = _cast(bb, acc, node.types[0].dtype)
    return bb.finish([bb.save(out, (rank - 1, rank - 2, bdim))])


def _row_grid(shape: tuple[int, ...], keep: int) -> tuple[tuple[int, int, int], list[int]]:
    """A grid splitting every dim except `keep` completely; returns (grid, dim of each axis or -1)."""
    others = [d for d in range(len(shape)) if d != keep]
    if len(others) > 3:
        raise LoweringError(f"kernel-level ops of rank {len(shape)} are not supported")
    dims = others + [-1] * (3 - len(others))
    grid = tuple(shape[d] if d != -1 else 1 for d in dims)
    return grid, dims


def elementwise_graph(node: Node, inputs: list[TensorType]) -> Graph:
    out = node.types[0]
    shape = out.shape
    rank = len(shape)
    last = shape[-1]
    tile = _divisor_le(last, 2048)
    lead = list(range(rank - 1))
    if len(lead) > 2:
        raise LoweringError(f"kernel-level ops of rank {rank} are not supported")
    dims = [rank - 1 if last // tile > 1 else -1] + lead + [-1] * (2 - len(lead))
    grid = tuple(1 if d == -1 else (last // tile if d == rank - 1 else shape[d]) for d in dims)
    bb = BlockBuilder(inputs, grid, 1)
    args = []
    for k, t in enumerate(inputs):
        imap = tuple(d if d != -1 and t.shape[d] != 1 else -1 for d in dims)
        args.append(bb.accum("accum_sum", bb.iterator(k, imap, -1)))
    attrs = {name: node.attr(name) for name, _ in OPS[node.op].attrs}
    result = bb.op(node.op, *args, dtype="f32", **attrs)
    return bb.finish([bb.save(_cast(bb, result, out.dtype), tuple(dims))])


def reduction_graph(node: Node, inputs: list[TensorType]) -> Graph:
    (x,) = inputs
    rank = len(x.shape)
    dim = node.attr("dim", -1) % rank if node.op != "rms_norm" else rank - 1
    grid, dims = _row_grid(x.shape, dim)
    bb = BlockBuilder(inputs, grid, 1)
    t = bb.accum("accum_sum", bb.iterator(0, tuple(dims), -1))
    if node.op == "rms_norm":
        mean = bb.op("reduce_mean", bb.op("square", t), dim=dim)
        result = bb.op("mul", t, bb.op("rsqrt", bb.op("add_scalar", mean, scalar=node.attr("eps"))))
    else:
        result = bb.op(node.op, t, dim=dim)
    return bb.finish([bb.save(_cast(bb, result, node.types[0].dtype), tuple(dims))])


def predefined_block_graph(node: Node, inputs: list[TensorType]) -> Graph:
    """A block graph computing kernel op `node` on tensors of types `inputs`."""
    if node.op not in OPS:
        raise LoweringError(f"no GPU lowering for kernel op '{node.op}'")
    category = OPS[node.op].category
    if any(not t.is_static() for t in inputs) or not node.types[0].is_static():
        raise LoweringError(f"'{node.op}' has dynamic shapes; the GPU lowering needs static shapes")
    if category == "matmul":
        return matmul_graph(node, inputs)
    if category in ("unary", "binary"):
        return elementwise_graph(node, inputs)
    return reduction_graph(node, inputs)
