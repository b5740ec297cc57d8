"""Element types: names as MLIR spells them, and the NumPy storage/compute types the evaluators use."""

from __future__ import annotations

import numpy as np

FLOAT_TYPES = ("f16", "bf16", "f32", "f64")
BYTES = {"f16": 2, "bf16": 2, "f32": 4, "f64": 8}


def compute_dtype(dtype: str) -> type:
    """Arithmetic precision: f64 stays f64, everything narrower computes in f32 (as the GPU does)."""
    return np.float64 if dtype == "f64" else np.float32


def round_to(x: np.ndarray, dtype: str) -> np.ndarray:
    """Round `x` to the storage precision of `dtype`, returned in its compute type."""
    if dtype == "f16":
        return np.asarray(x, np.float32).astype(np.float16).astype(np.float32)
    if dtype == "bf16":
        # Round to nearest even on the top 16 bits of the f32 pattern.
        bits = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        return bits.astype(np.uint32).view(np.float32)
    return np.asarray(x, compute_dtype(dtype))
