"""`mirage_thread`: the body of a `mirage_block.thread_graph`, an elementwise chain on scalars held in
registers. The thread graph applies it to every element of its (broadcast) input tiles."""

from mirage_mlir.opset import ELEMENTWISE, OPS

from .declarative import Attr, DialectSpec, OpSpec, Value


def scalar_op(name: str) -> OpSpec:
    info = OPS[name]
    operands = (Value("lhs", "float"), Value("rhs", "float")) if info.category == "binary" else (Value("input", "float"),)
    return OpSpec(name, info.summary, operands=operands, results=(Value("result", "float"),),
                  attrs=tuple(Attr(n, k) for n, k in info.attrs))


THREAD = DialectSpec(
    "mirage_thread",
    "Mirage thread graphs: scalars in registers",
    [scalar_op(name) for name in ELEMENTWISE],
)
