"""mirage-mlir: a multi-level tensor-program superoptimizer as MLIR passes."""
