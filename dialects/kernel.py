"""`mirage_kernel`: operators on whole tensors in device memory, and `graph_def`, whose region holds a
block graph (`mirage_block` ops ending in `gpu.yield`)."""

from mirage_mlir.opset import OPS

from .declarative import Attr, DialectSpec, OpSpec, Value

GRAPH_DEF = OpSpec(
    "graph_def",
    "a graph-defined kernel: its region is a block graph run on a grid of thread blocks",
    operands=(Value("input", variadic=True),),
    results=(Value("output", variadic=True),),
    attrs=(
        Attr("grid_dim", "i64_array", doc="thread blocks along x, y, z"),
        Attr("block_dim", "i64_array", doc="threads per block along x, y, z"),
        Attr("forloop_range", "i64", doc="iterations of the block graph's for-loop"),
        Attr("max_stages", "i64", optional=True,
             doc="the deepest cp.async ring the code generator may give the for-loop's tiles (a schedule "
                 "choice: the values computed do not depend on it; absent: the generator's default)"),
        Attr("whole_k_warps", "i64", optional=True,
             doc="1: each warp's mma tiles walk the for-loop's whole K, no warps splitting K and adding their "
                 "sums after the loop (a schedule choice, as max_stages; absent: the generator's default)"),
    ),
    has_region=True,
)


def tensor_op(name: str) -> OpSpec:
    """The spec of a predefined tensor operator of mirage_mlir.opset at the kernel or block level."""
    info = OPS[name]
    arity = {"unary": 1, "binary": 2, "reduce": 1, "matmul": 2, "norm": 1}[info.category]
    operands = tuple(Value(n) for n in ("lhs", "rhs")[:arity]) if arity == 2 else (Value("input"),)
    return OpSpec(name, info.summary, operands=operands, attrs=tuple(Attr(n, k) for n, k in info.attrs))


KERNEL = DialectSpec(
    "mirage_kernel",
    "Mirage kernel graphs: tensors in device memory",
    [tensor_op(name) for name in OPS] + [GRAPH_DEF],
)
