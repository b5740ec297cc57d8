"""mirage-mlir: a multi-level tensor-program superoptimizer (after Mirage, OSDI 2025) as MLIR passes."""

__version__ = "0.1.0"


def interpret(*args, **kwargs):
    """Runs a function of an MLIR program on NumPy arrays (see mirage_mlir.interpreter.interpret)."""
    from .interpreter import interpret as run

    return run(*args, **kwargs)
