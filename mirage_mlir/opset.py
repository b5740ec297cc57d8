"""The tensor operators shared by the kernel, block and thread levels: one table, read by the dialect
definitions, the shape rules, the evaluators, the search and the lowering.

Semantics (all broadcasting is NumPy's, on equal ranks; reductions keep the reduced dim with size 1):
- unary: exp, tanh, erf, square, sqrt, rsqrt, silu (x*sigmoid(x)), gelu (tanh form), relu, neg;
  mul_scalar / add_scalar (x*s, x+s with the `scalar` attribute); cast (to the result's element type).
- binary: add, sub, mul, div, pow, max.
- reductions over `dim`: reduce_sum, reduce_mean, reduce_max.
- matmul: batched, [..., M, K] x [..., K, N] -> [..., M, N].
- rms_norm: x * rsqrt(mean(x^2 over the last dim) + eps) (kernel level only).

An elementwise op is one record here: its float semantics, its finite-field model and degree, its
abstract expression, its GPU code, the linalg body ops it imports from, and whether the search
tries it. Every backend reads the record; test/test_conformance.py runs every op on every backend.
Adding an elementwise op is one `OpInfo(...)` line below (README: "Adding an operator").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .dtypes import FLOAT_TYPES  # noqa: F401  (re-exported for the dialects)


def _lin(n: tuple, m: tuple) -> tuple:
    """The (numerator, denominator) degree of a sum of rational functions of degrees n and m."""
    return max(n[0] + m[1], m[0] + n[1]), n[1] + m[1]


@dataclass(frozen=True)
class OpInfo:
    """An operator. For elementwise ops (unary, binary) also its meaning on every backend, each a
    function of the operands (and the op's attributes as keywords); None means the default given."""

    name: str
    category: str  # unary | binary | reduce | matmul | norm
    attrs: tuple[tuple[str, str], ...] = ()  # (name, kind) with kinds of dialects.declarative
    summary: str = ""
    numpy: Callable | None = None  # float semantics on arrays of the compute type
    # finite fields, f(domain, ...) with the FieldDomain's exp/inverse/max/random_function/constant;
    # None: a random function of the operands, keyed per trial, the same on both sides (sound; no
    # identity of the op is used, e.g. sqrt(a) sqrt(b) = sqrt(ab))
    field: Callable | None = None
    degree: Callable | None = None  # (numerator, denominator) degree from the operands'; None: a fresh variable
    term: Callable | None = None  # abstract expression, f(tb, ...); None: an uninterpreted function
    gpu: Callable | None = None  # f(emitter, ...) -> SSA name of the f32 (or f64) result; emitter.em writes
    linalg: tuple[str, ...] = ()  # linalg.generic body ops that are this op, one for one
    search: bool = False  # the search applies it to tiles of its own accord
    exps: int = 0  # exps it applies (the finite fields' lane depth, the bound's k)


def _gelu(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _gelu_gpu(g, x):
    em = g.em
    cube = em.fbin("mulf", em.fbin("mulf", x, x), x)
    inner = em.fbin("addf", x, em.fbin("mulf", em.fconst(0.044715), cube))
    t = em.fun("math.tanh", em.fbin("mulf", em.fconst(math.sqrt(2 / math.pi)), inner))
    return em.fbin("mulf", em.fbin("mulf", em.fconst(0.5), x), em.fbin("addf", em.fconst(1.0), t))


def _silu_gpu(g, x):
    em = g.em
    return em.fdiv(x, em.fbin("addf", em.fconst(1.0), em.exp(em.fun("arith.negf", x))))


_erf = np.vectorize(math.erf, otypes=[np.float64])

ELEMENTWISE_OPS = [
    OpInfo("exp", "unary", summary="elementwise e^x", numpy=np.exp, field=lambda d, x: d.exp(x),
           term=lambda tb, x: tb.exp(x), gpu=lambda g, x: g.em.exp(x), linalg=("math.exp",),
           search=True, exps=1),
    OpInfo("tanh", "unary", summary="elementwise hyperbolic tangent", numpy=np.tanh,
           gpu=lambda g, x: g.em.fun("math.tanh", x), linalg=("math.tanh",)),
    OpInfo("erf", "unary", summary="elementwise error function",
           numpy=lambda x: _erf(x).astype(x.dtype), gpu=lambda g, x: g.em.fun("math.erf", x), linalg=("math.erf",)),
    OpInfo("square", "unary", summary="elementwise x^2", numpy=lambda x: x * x, field=lambda d, x: x * x % d.moduli,
           degree=lambda n: (2 * n[0], 2 * n[1]), term=lambda tb, x: tb.mul(x, x),
           gpu=lambda g, x: g.em.fbin("mulf", x, x), search=True),
    OpInfo("sqrt", "unary", summary="elementwise square root", numpy=np.sqrt,
           field=lambda d, x: d.random_function("sqrt", x), term=lambda tb, x: tb.sqrt(x),
           gpu=lambda g, x: g.em.fun("math.sqrt", x), linalg=("math.sqrt",), search=True),
    # 1 / sqrt over the fields, so that rsqrt and 1 / sqrt forms agree
    OpInfo("rsqrt", "unary", summary="elementwise 1/sqrt(x)", numpy=lambda x: 1 / np.sqrt(x),
           field=lambda d, x: d.inverse(d.random_function("sqrt", x)), degree=lambda n: (0, 1),
           term=lambda tb, x: tb.div(tb.cst("1/1"), tb.sqrt(x)), gpu=lambda g, x: g.em.fun("math.rsqrt", x),
           linalg=("math.rsqrt",), search=True),
    OpInfo("silu", "unary", summary="elementwise x * sigmoid(x)", numpy=lambda x: x / (1 + np.exp(-x)),
           gpu=_silu_gpu, search=True),
    OpInfo("gelu", "unary", summary="elementwise GELU (tanh approximation)", numpy=_gelu, gpu=_gelu_gpu,
           search=True),
    OpInfo("relu", "unary", summary="elementwise max(x, 0)", numpy=lambda x: np.maximum(x, 0),
           gpu=lambda g, x: g.em.fbin("maximumf", x, g.em.fconst(0.0)), search=True),
    OpInfo("neg", "unary", summary="elementwise -x", numpy=np.negative, field=lambda d, x: (d.moduli - x) % d.moduli,
           degree=lambda n: n, term=lambda tb, x: tb.mul(tb.cst("-1/1"), x), gpu=lambda g, x: g.em.fun("arith.negf", x),
           linalg=("arith.negf",), search=True),
    OpInfo("mul_scalar", "unary", (("scalar", "f64"),), "elementwise x * scalar", numpy=lambda x, scalar: x * scalar,
           field=lambda d, x, scalar: x * d.constant(scalar) % d.moduli, degree=lambda n: n,
           term=lambda tb, x, scalar: tb.mul(x, scalar), gpu=lambda g, x, scalar: g.em.fbin("mulf", x, g.em.fconst(scalar))),
    OpInfo("add_scalar", "unary", (("scalar", "f64"),), "elementwise x + scalar", numpy=lambda x, scalar: x + scalar,
           field=lambda d, x, scalar: (x + d.constant(scalar)) % d.moduli, degree=lambda n: n,
           term=lambda tb, x, scalar: tb.add(x, scalar), gpu=lambda g, x, scalar: g.em.fbin("addf", x, g.em.fconst(scalar))),
    # the field has no precision: a cast is the identity there (the float check covers rounding)
    OpInfo("cast", "unary", summary="elementwise conversion to the result element type", numpy=lambda x: x,
           field=lambda d, x: x, degree=lambda n: n, term=lambda tb, x: x, gpu=lambda g, x: x),
    OpInfo("add", "binary", summary="broadcasting a + b", numpy=np.add, field=lambda d, a, b: (a + b) % d.moduli,
           degree=_lin, term=lambda tb, a, b: tb.add(a, b), gpu=lambda g, a, b: g.em.fbin("addf", a, b),
           linalg=("arith.addf",)),
    OpInfo("sub", "binary", summary="broadcasting a - b", numpy=np.subtract, field=lambda d, a, b: (a - b) % d.moduli,
           degree=_lin, term=lambda tb, a, b: tb.add(a, tb.mul(tb.cst("-1/1"), b)),
           gpu=lambda g, a, b: g.em.fbin("subf", a, b), linalg=("arith.subf",)),
    OpInfo("mul", "binary", summary="broadcasting a * b", numpy=np.multiply, field=lambda d, a, b: a * b % d.moduli,
           degree=lambda n, m: (n[0] + m[0], n[1] + m[1]), term=lambda tb, a, b: tb.mul(a, b),
           gpu=lambda g, a, b: g.em.fbin("mulf", a, b), linalg=("arith.mulf",)),
    # division is multiplication by the inverse over the fields (0 has inverse 0)
    OpInfo("div", "binary", summary="broadcasting a / b", numpy=np.divide, field=lambda d, a, b: a * d.inverse(b) % d.moduli,
           degree=lambda n, m: (n[0] + m[1], n[1] + m[0]), term=lambda tb, a, b: tb.div(a, b),
           gpu=lambda g, a, b: g.divide(a, b), linalg=("arith.divf",)),
    OpInfo("pow", "binary", summary="broadcasting a ** b", numpy=np.power,
           gpu=lambda g, a, b: g.em.op(f"math.powf {a}, {b} : {g.em.ctype}", "f"), linalg=("math.powf",)),
    # max under the trial's random order of values over the fields (finite_field.py)
    OpInfo("max", "binary", summary="broadcasting max(a, b)", numpy=np.maximum, field=lambda d, a, b: d.max(a, b),
           degree=_lin, gpu=lambda g, a, b: g.em.fbin("maximumf", a, b), linalg=("arith.maximumf", "arith.maxnumf")),
]

OPS: dict[str, OpInfo] = {
    info.name: info
    for info in ELEMENTWISE_OPS + [
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
