"""The six benchmark programs as kernel graphs of predefined ops, in the form convert-linalg-to-mirage
produces (rms_norm op, silu op, f16 matmuls with f32 results cast back to f16). Used by the tests and
the benchmark script while the converter is written; the search itself never looks at names.
"""

from __future__ import annotations

from ..builder import KernelBuilder
from ..mugraph import Graph, TensorType
from ..plans import SMALL_SHAPES, benchmark_inputs, small_inputs  # noqa: F401 (re-exported)

EPS = 1e-6

NAMES = tuple(SMALL_SHAPES)


def _matmul(kb: KernelBuilder, a: int, b: int, dtype: str) -> int:
    m = kb.op("matmul", a, b, dtype="f32")
    return m if dtype == "f32" else kb.op("cast", m, dtype=dtype)


def reference(name: str, inputs: list[TensorType]) -> Graph:
    kb = KernelBuilder(inputs)
    dt = inputs[0].dtype
    if name == "rmsnorm_linear":
        out = _matmul(kb, kb.op("rms_norm", 0, eps=EPS), 1, dt)
    elif name in ("gqa", "qknorm_gqa"):
        q = kb.op("rms_norm", 0, eps=EPS) if name == "qknorm_gqa" else 0
        e = kb.op("exp", _matmul(kb, q, 1, dt))
        out = _matmul(kb, kb.op("div", e, kb.op("reduce_sum", e, dim=2)), 2, dt)
    elif name == "gated_mlp":
        a, b = _matmul(kb, 0, 1, dt), _matmul(kb, 0, 2, dt)
        out = kb.op("mul", kb.op("silu", a), b)
    elif name == "lora":
        xa = _matmul(kb, 0, 2, dt)
        out = kb.op("add", _matmul(kb, 0, 1, dt), _matmul(kb, xa, 3, dt))
    elif name == "ntrans":
        d = kb.op("sub", kb.op("rms_norm", 1, eps=EPS), 0)
        out = kb.op("rms_norm", kb.op("add", 0, kb.op("mul", 2, d)), eps=EPS)
    else:
        raise KeyError(name)
    return kb.finish([out])


def full_inputs(name: str, bs: int, dtype: str = "f16") -> list[TensorType]:
    return benchmark_inputs(name, bs, dtype)
