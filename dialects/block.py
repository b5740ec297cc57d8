"""`mirage_block`: a block graph, the body of a `mirage_kernel.graph_def`. Its values are tiles in
shared memory, seen by one thread block in one for-loop iteration.

Data flow says where each op runs: ops that depend on an accumulator run once after the loop,
the others in every iteration. Every path from an input iterator to an output saver crosses
exactly one accumulator.
"""

from mirage_mlir.opset import ACCUMULATORS, OPS

from .declarative import Attr, DialectSpec, OpSpec, Value
from .kernel import tensor_op

INPUT_ITERATOR = OpSpec(
    "input_iterator",
    "the tile of a kernel tensor that this block reads in this iteration",
    operands=(Value("tensor"),),
    attrs=(
        Attr("imap", "i64_array", doc="per grid dim x,y,z: the tensor dim it splits, or -1 (replicate)"),
        Attr("fmap", "i64", doc="the tensor dim the for-loop splits, or -1 (same tile every iteration)"),
    ),
)
OUTPUT_SAVER = OpSpec(
    "output_saver",
    "writes this block's tile into the kernel-level output tensor (its result)",
    operands=(Value("tile"),),
    attrs=(Attr("omap", "i64_array", doc="per grid dim x,y,z: the output dim it splits, or -1"),),
)


def accumulator(name: str) -> OpSpec:
    operands = (Value("input"), Value("max")) if name == "accum_rescaled_sum" else (Value("input"),)
    attrs = [Attr("reduce_dim", "i64", optional=True, doc="a tile dim reduced before accumulating")]
    if name == "accum_rms":
        attrs.append(Attr("eps", "f64", optional=True))
    return OpSpec(name, f"for-loop accumulator ({name[6:]})", operands=operands, attrs=tuple(attrs))


THREAD_GRAPH = OpSpec(
    "thread_graph",
    "a fused elementwise chain run in registers; its region holds mirage_thread ops on scalars",
    operands=(Value("input", variadic=True),),
    has_region=True,
)

BLOCK = DialectSpec(
    "mirage_block",
    "Mirage block graphs: tiles in shared memory",
    [INPUT_ITERATOR, OUTPUT_SAVER]
    + [tensor_op(name) for name in OPS if name != "rms_norm"]
    + [accumulator(name) for name in ACCUMULATORS]
    + [THREAD_GRAPH],
)
