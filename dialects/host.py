"""`mirage`: host-level ops around the kernel graphs. `dispatch` runs a function's static
specializations on an input of dynamic size (mirage-specialize-dims makes it; the semantics live in
mirage_mlir/dispatch.py)."""

from .declarative import Attr, DialectSpec, OpSpec, Value

DISPATCH = OpSpec(
    "dispatch",
    "runs the static specialization for the size n of its operands' dynamic leading dims: the callee of "
    "the smallest size >= n, on operands zero-padded along those dims to that size, its results sliced back to n",
    operands=(Value("input", variadic=True, max_count=16),),
    results=(Value("output", variadic=True, max_count=16),),
    attrs=(
        Attr("sizes", "i64_array", doc="the specializations' sizes, increasing; n may be 1 to the last"),
        Attr("callees", "symbols", doc="per size, the static function that runs it"),
    ),
)

HOST = DialectSpec("mirage", "mirage host-level ops", [DISPATCH])
