"""The mirage dialects: specs in Python, loaded into MLIR through IRDL."""

import mlir.ir as ir

from .block import BLOCK
from .declarative import DialectSpec, segment_sizes
from .host import HOST
from .kernel import KERNEL
from .thread import THREAD

DIALECTS: tuple[DialectSpec, ...] = (KERNEL, BLOCK, THREAD, HOST)


def load_dialects(context: ir.Context) -> None:
    """Make the mirage dialects known to `context` (idempotent per context)."""
    for spec in DIALECTS:
        # Loading a dialect twice aborts inside MLIR: ask the context first.
        if not context.is_registered_operation(f"{spec.name}.{spec.ops[0].name}"):
            spec.load_into(context)


def emit_irdl() -> str:
    """IRDL text of every mirage dialect, readable by `mlir-opt --irdl-file=`."""
    return "\n".join(spec.irdl() for spec in DIALECTS)


def op_spec(full_name: str):
    """The OpSpec of `dialect.op`, or None for ops that are not ours."""
    dialect, _, name = full_name.partition(".")
    for spec in DIALECTS:
        if spec.name == dialect:
            return spec.by_name().get(name)
    return None


__all__ = ["BLOCK", "DIALECTS", "HOST", "KERNEL", "THREAD", "emit_irdl", "load_dialects", "op_spec", "segment_sizes"]
