"""NumPy reference interpreter for the IR this project reads and writes.

`interpret(program, entry=None, inputs=None, seed=0)` runs a function of MLIR text,
a file or an `ir.Module` and returns its results as NumPy arrays. Handlers live in a
registry (`register`); see `core` for the precision policy.
"""

from .core import (
    HANDLERS,
    Interpreter,
    InterpreterError,
    interpret,
    numpy_dtype,
    parse_module,
    random_inputs,
    register,
    to_storage,
)

__all__ = [
    "HANDLERS",
    "Interpreter",
    "InterpreterError",
    "interpret",
    "numpy_dtype",
    "parse_module",
    "random_inputs",
    "register",
    "to_storage",
]
