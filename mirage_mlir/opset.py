"""The tensor operators shared by the kernel, block and thread levels: one table, read by the dialect
definitions, the shape rules, the evaluators, the search and the lowering.

Semantics (all broadcasting is NumPy's, on equal ranks; reductions keep the reduced dim with size 1):
- unary: exp, square, sqrt, rsqrt, silu (x*sigmoid(x)), gelu (tanh form), relu, neg;
  mul_scalar / add_scalar (x*s, x+s with the `scalar` attribute); cast (to the result's element type).
- binary: add, sub, mul, div, pow, max.
- reductions over `dim`: reduce_sum, reduce_mean, reduce_max.
- matmul: batched, [..., M, K] x [..., K, N] -> [..., M, N].
- rms_norm: x * rsqrt(mean(x^2 over the last dim) + eps) (kernel level only).
"""

from __future__ import annotations

from dataclasses import dataclass

from .dtypes import FLOAT_TYPES  # noqa: F401  (re-exported for the dialects)


@dataclass(frozen=True)
class OpInfo:
    name: str
    category: str  # unary | binary | reduce | matmul | norm
    attrs: tuple[tuple[str, str], ...] = ()  # (name, kind) with kinds of dialects.declarative
    summary: str = ""


OPS: dict[str, OpInfo] = {
    info.name: info
    for info in [
        OpInfo("exp", "unary", summary="elementwise e^x"),
        OpInfo("square", "unary", summary="elementwise x^2"),
        OpInfo("sqrt", "unary", summary="elementwise square root"),
        OpInfo("rsqrt", "unary", summary="elementwise 1/sqrt(x)"),
        OpInfo("silu", "unary", summary="elementwise x * sigmoid(x)"),
        OpInfo("gelu", "unary", summary="elementwise GELU (tanh approximation)"),
        OpInfo("relu", "unary", summary="elementwise max(x, 0)"),
        OpInfo("neg", "unary", summary="elementwise -x"),
        OpInfo("mul_scalar", "unary", (("scalar", "f64"),), "elementwise x * scalar"),
        OpInfo("add_scalar", "unary", (("scalar", "f64"),), "elementwise x + scalar"),
        OpInfo("cast", "unary", summary="elementwise conversion to the result element type"),
        OpInfo("add", "binary", summary="broadcasting a + b"),
        OpInfo("sub", "binary", summary="broadcasting a - b"),
        OpInfo("mul", "binary", summary="broadcasting a * b"),
        OpInfo("div", "binary", summary="broadcasting a / b"),
        OpInfo("pow", "binary", summary="broadcasting a ** b"),
        OpInfo("max", "binary", summary="broadcasting max(a, b)"),
        OpInfo("reduce_sum", "reduce", (("dim", "i64"),), "sum over `dim`, kept with size 1"),
        OpInfo("reduce_mean", "reduce", (("dim", "i64"),), "mean over `dim`, kept with size 1"),
        OpInfo("reduce_max", "reduce", (("dim", "i64"),), "max over `dim`, kept with size 1"),
        OpInfo("matmul", "matmul", summary="batched matrix product [...,M,K] x [...,K,N]"),
        OpInfo("rms_norm", "norm", (("eps", "f64"),), "x * rsqrt(mean(x^2, last dim) + eps)"),
    ]
}

UNARY = tuple(n for n, i in OPS.items() if i.category == "unary")
BINARY = tuple(n for n, i in OPS.items() if i.category == "binary")
REDUCE = tuple(n for n, i in OPS.items() if i.category == "reduce")
ELEMENTWISE = UNARY + BINARY

# For-loop accumulators of a block graph. Each sums (or maxes) one value per loop iteration;
# `reduce_dim` (optional, -1 or absent: none) first reduces that dim of the tile, kept with size 1.
#   accum_sum(x)            = sum_i x_i
#   accum_mean(x)           = sum_i x_i / (iterations * size of reduce_dim)
#   accum_rms(x)            = sqrt(sum_i x_i^2 / (iterations * size of reduce_dim) + eps)
#   accum_max(x)            = max_i x_i
#   accum_rescaled_sum(x,m) = sum_i x_i * exp(m_i - max_j m_j)   (online softmax)
ACCUMULATORS = ("accum_sum", "accum_mean", "accum_rms", "accum_max", "accum_rescaled_sum")
