"""The NumPy reference interpreter on upstream ops, checked against NumPy written here."""

import glob
import os
import re
import time

import mlir.ir as ir
import numpy as np
import pytest

from mirage_mlir.interpreter import Interpreter, InterpreterError, interpret, random_inputs, to_storage
from mirage_mlir.interpreter import upstream

RNG = np.random.default_rng(1234)
HERE = os.path.dirname(os.path.abspath(__file__))


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def run(src, *inputs, **kw):
    return interpret(src, inputs=list(inputs), **kw)


def close(a, b, tol=1e-5):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.abs(b).max(initial=0))))


# ----------------------------------------------------------------------------- contractions


def test_matmul_accumulates_into_init():
    src = """
    func.func @f(%a: tensor<4x8xf32>, %b: tensor<8x3xf32>, %c: tensor<4x3xf32>) -> tensor<4x3xf32> {
      %r = linalg.matmul ins(%a, %b : tensor<4x8xf32>, tensor<8x3xf32>) outs(%c : tensor<4x3xf32>) -> tensor<4x3xf32>
      return %r : tensor<4x3xf32>
    }"""
    a, b, c = rand(4, 8), rand(8, 3), rand(4, 3)
    (r,) = run(src, a, b, c)
    assert r.dtype == np.float32
    close(r, c + a.astype(np.float64) @ b)


@pytest.mark.parametrize(
    "maps, ashape, bshape, ref",
    [
        ("(d2, d0)", (8, 4), (8, 3), lambda a, b: a.T @ b),  # transpose_a
        ("(d0, d2)", (4, 8), (3, 8), lambda a, b: a @ b.T),  # transpose_b (B map below)
        ("(d2, d0)", (8, 4), (3, 8), lambda a, b: a.T @ b.T),
    ],
)
def test_matmul_indexing_maps(maps, ashape, bshape, ref):
    bmap = "(d2, d1)" if bshape[0] == 8 else "(d1, d2)"
    src = f"""
    func.func @f(%a: tensor<{ashape[0]}x{ashape[1]}xf32>, %b: tensor<{bshape[0]}x{bshape[1]}xf32>) -> tensor<4x3xf32> {{
      %z = arith.constant 0.0 : f32
      %e = tensor.empty() : tensor<4x3xf32>
      %c = linalg.fill ins(%z : f32) outs(%e : tensor<4x3xf32>) -> tensor<4x3xf32>
      %r = linalg.matmul indexing_maps = [affine_map<(d0, d1, d2) -> {maps}>, affine_map<(d0, d1, d2) -> {bmap}>,
                                          affine_map<(d0, d1, d2) -> (d0, d1)>]
           ins(%a, %b : tensor<{ashape[0]}x{ashape[1]}xf32>, tensor<{bshape[0]}x{bshape[1]}xf32>)
           outs(%c : tensor<4x3xf32>) -> tensor<4x3xf32>
      return %r : tensor<4x3xf32>
    }}"""
    a, b = rand(*ashape), rand(*bshape)
    close(run(src, a, b)[0], ref(a.astype(np.float64), b))


def test_batch_matmul_and_transposed_b():
    src = """
    func.func @f(%a: tensor<5x2x4xf32>, %b: tensor<5x4x3xf32>, %bt: tensor<5x3x4xf32>, %c: tensor<5x2x3xf32>)
        -> (tensor<5x2x3xf32>, tensor<5x2x3xf32>) {
      %r = linalg.batch_matmul ins(%a, %b : tensor<5x2x4xf32>, tensor<5x4x3xf32>) outs(%c : tensor<5x2x3xf32>) -> tensor<5x2x3xf32>
      %t = linalg.batch_matmul indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>,
                                                affine_map<(d0, d1, d2, d3) -> (d0, d2, d3)>,
                                                affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>]
           ins(%a, %bt : tensor<5x2x4xf32>, tensor<5x3x4xf32>) outs(%c : tensor<5x2x3xf32>) -> tensor<5x2x3xf32>
      return %r, %t : tensor<5x2x3xf32>, tensor<5x2x3xf32>
    }"""
    a, b, bt, c = rand(5, 2, 4), rand(5, 4, 3), rand(5, 3, 4), rand(5, 2, 3)
    r, t = run(src, a, b, bt, c)
    close(r, c + np.einsum("bmk,bkn->bmn", a.astype(np.float64), b))
    close(t, c + np.einsum("bmk,bnk->bmn", a.astype(np.float64), bt))


def test_f16_matmul_into_f32():
    src = """
    func.func @f(%a: tensor<16x64xf16>, %b: tensor<64x32xf16>) -> tensor<16x32xf32> {
      %z = arith.constant 0.0 : f32
      %e = tensor.empty() : tensor<16x32xf32>
      %c = linalg.fill ins(%z : f32) outs(%e : tensor<16x32xf32>) -> tensor<16x32xf32>
      %r = linalg.matmul ins(%a, %b : tensor<16x64xf16>, tensor<64x32xf16>) outs(%c : tensor<16x32xf32>) -> tensor<16x32xf32>
      return %r : tensor<16x32xf32>
    }"""
    a, b = rand(16, 64, dtype=np.float16), rand(64, 32, dtype=np.float16)
    (r,) = run(src, a, b)
    assert r.dtype == np.float32
    close(r, a.astype(np.float64) @ b.astype(np.float64), 1e-5)


def test_generic_contraction_with_permuted_maps():
    # out[b, n, m] = sum_k A[k, b, m] * B[b, n, k]: transposed inputs and output.
    src = """
    #a = affine_map<(b, m, n, k) -> (k, b, m)>
    #b = affine_map<(b, m, n, k) -> (b, n, k)>
    #o = affine_map<(b, m, n, k) -> (b, n, m)>
    func.func @f(%a: tensor<6x3x4xf32>, %b: tensor<3x5x6xf32>, %c: tensor<3x5x4xf32>) -> tensor<3x5x4xf32> {
      %r = linalg.generic {indexing_maps = [#a, #b, #o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
          ins(%a, %b : tensor<6x3x4xf32>, tensor<3x5x6xf32>) outs(%c : tensor<3x5x4xf32>) {
      ^bb0(%x: f32, %y: f32, %acc: f32):
        %p = arith.mulf %x, %y : f32
        %s = arith.addf %acc, %p : f32
        linalg.yield %s : f32
      } -> tensor<3x5x4xf32>
      return %r : tensor<3x5x4xf32>
    }"""
    a, b, c = rand(6, 3, 4), rand(3, 5, 6), rand(3, 5, 4)
    close(run(src, a, b, c)[0], c + np.einsum("kbm,bnk->bnm", a.astype(np.float64), b))


def test_generic_sum_of_non_product_body():
    # sum_k (A[m,k] * B[k,n] + 1): not a plain product, evaluated over the whole space.
    src = """
    #a = affine_map<(m, n, k) -> (m, k)>
    #b = affine_map<(m, n, k) -> (k, n)>
    #o = affine_map<(m, n, k) -> (m, n)>
    func.func @f(%a: tensor<3x7xf32>, %b: tensor<7x2xf32>, %c: tensor<3x2xf32>) -> tensor<3x2xf32> {
      %one = arith.constant 1.0 : f32
      %r = linalg.generic {indexing_maps = [#a, #b, #o], iterator_types = ["parallel", "parallel", "reduction"]}
          ins(%a, %b : tensor<3x7xf32>, tensor<7x2xf32>) outs(%c : tensor<3x2xf32>) {
      ^bb0(%x: f32, %y: f32, %acc: f32):
        %p = arith.mulf %x, %y : f32
        %q = arith.addf %p, %one : f32
        %s = arith.addf %q, %acc : f32
        linalg.yield %s : f32
      } -> tensor<3x2xf32>
      return %r : tensor<3x2xf32>
    }"""
    a, b, c = rand(3, 7), rand(7, 2), rand(3, 2)
    close(run(src, a, b, c)[0], c + a.astype(np.float64) @ b + 7)


# ----------------------------------------------------------------------------- generic reductions

REDUCE_SRC = """
func.func @f(%x: tensor<4x6x5xf32>, %init: tensor<{oshape}xf32>) -> tensor<{oshape}xf32> {{
  %r = linalg.generic {{indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> {omap}>],
                       iterator_types = [{iters}]}}
      ins(%x : tensor<4x6x5xf32>) outs(%init : tensor<{oshape}xf32>) {{
  ^bb0(%in: f32, %out: f32):
    %s = arith.{op} {order} : f32
    linalg.yield %s : f32
  }} -> tensor<{oshape}xf32>
  return %r : tensor<{oshape}xf32>
}}"""


@pytest.mark.parametrize(
    "op, red, omap, oshape, ref",
    [
        ("addf", (2,), "(d0, d1)", "4x6", lambda x: x.sum(2)),
        ("addf", (2,), "(d0, d1, 0)", "4x6x1", lambda x: x.sum(2, keepdims=True)),
        ("maximumf", (1,), "(d0, d2)", "4x5", lambda x: x.max(1)),
        ("maximumf", (0,), "(d2, d1)", "5x6", lambda x: x.max(0).T),
        ("minimumf", (0, 2), "(d1)", "6", lambda x: x.min((0, 2))),
        ("mulf", (2,), "(d1, d0)", "6x4", lambda x: x.prod(2).T),
        ("maxnumf", (1,), "(d0, 0, d2)", "4x1x5", lambda x: x.max(1, keepdims=True)),
    ],
)
@pytest.mark.parametrize("order", ["%in, %out", "%out, %in"])
def test_generic_reductions(op, red, omap, oshape, ref, order):
    iters = ", ".join('"reduction"' if d in red else '"parallel"' for d in range(3))
    src = REDUCE_SRC.format(op=op, omap=omap, oshape=oshape, iters=iters, order=order)
    x = rand(4, 6, 5)
    init = rand(*[int(s) for s in oshape.split("x")])
    combine = {"addf": np.add, "maximumf": np.maximum, "minimumf": np.minimum, "mulf": np.multiply, "maxnumf": np.fmax}[op]
    close(run(src, x, init)[0], combine(ref(x.astype(np.float64)), init))


def test_generic_argmax_pattern():
    # torch-mlir's aten.max.dim: running max plus the index of its first occurrence.
    src = """
    #id = affine_map<(d0, d1) -> (d0, d1)>
    #row = affine_map<(d0, d1) -> (d0)>
    func.func @f(%x: tensor<5x7xf32>, %m0: tensor<5xf32>, %i0: tensor<5xi64>) -> (tensor<5xf32>, tensor<5xi64>) {
      %r:2 = linalg.generic {indexing_maps = [#id, #row, #row], iterator_types = ["parallel", "reduction"]}
          ins(%x : tensor<5x7xf32>) outs(%m0, %i0 : tensor<5xf32>, tensor<5xi64>) {
      ^bb0(%in: f32, %out: f32, %out_i: i64):
        %i = linalg.index 1 : index
        %ii = arith.index_cast %i : index to i64
        %m = arith.maximumf %in, %out : f32
        %c = arith.cmpf ogt, %in, %out : f32
        %s = arith.select %c, %ii, %out_i : i64
        linalg.yield %m, %s : f32, i64
      } -> (tensor<5xf32>, tensor<5xi64>)
      return %r#0, %r#1 : tensor<5xf32>, tensor<5xi64>
    }"""
    x = RNG.integers(-3, 3, size=(5, 7)).astype(np.float32)  # ties
    m0 = np.array([-np.inf, -np.inf, 10, -np.inf, 0], np.float32)
    i0 = np.array([0, 0, 99, 0, 42], np.int64)
    m, i = run(src, x, m0, i0)
    ref_m, ref_i = m0.copy(), i0.copy()
    for r in range(5):  # the sequential semantics, written out
        for k in range(7):
            if x[r, k] > ref_m[r]:
                ref_i[r] = k
            ref_m[r] = max(ref_m[r], x[r, k])
    np.testing.assert_array_equal(m, ref_m)
    np.testing.assert_array_equal(i, ref_i)


def test_generic_unsupported_reduction_form_is_an_error():
    src = """
    func.func @f(%x: tensor<4x6xf32>, %init: tensor<4xf32>) -> tensor<4xf32> {
      %r = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0)>],
                           iterator_types = ["parallel", "reduction"]}
          ins(%x : tensor<4x6xf32>) outs(%init : tensor<4xf32>) {
      ^bb0(%in: f32, %out: f32):
        %s = arith.subf %out, %in : f32
        linalg.yield %s : f32
      } -> tensor<4xf32>
      return %r : tensor<4xf32>
    }"""
    with pytest.raises(InterpreterError, match="unsupported linalg.generic form") as e:
        run(src, rand(4, 6), rand(4))
    assert e.value.line == 3


# ----------------------------------------------------------------------------- generic elementwise


def test_generic_broadcast_maps_and_transposed_output():
    # out[j, i] = x[i, j] * s[i] + b[j] - y[i, 0], with maps (d0) (d1) (d0, 0) and a transposed output.
    src = """
    func.func @f(%x: tensor<3x5xf32>, %s: tensor<3xf32>, %b: tensor<5xf32>, %y: tensor<3x1xf32>) -> tensor<5x3xf32> {
      %e = tensor.empty() : tensor<5x3xf32>
      %r = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0)>,
                                            affine_map<(d0, d1) -> (d1)>, affine_map<(d0, d1) -> (d0, 0)>,
                                            affine_map<(d0, d1) -> (d1, d0)>],
                           iterator_types = ["parallel", "parallel"]}
          ins(%x, %s, %b, %y : tensor<3x5xf32>, tensor<3xf32>, tensor<5xf32>, tensor<3x1xf32>) outs(%e : tensor<5x3xf32>) {
      ^bb0(%xv: f32, %sv: f32, %bv: f32, %yv: f32, %out: f32):
        %m = arith.mulf %xv, %sv : f32
        %a = arith.addf %m, %bv : f32
        %d = arith.subf %a, %yv : f32
        linalg.yield %d : f32
      } -> tensor<5x3xf32>
      return %r : tensor<5x3xf32>
    }"""
    x, s, b, y = rand(3, 5), rand(3), rand(5), rand(3, 1)
    close(run(src, x, s, b, y)[0], (x * s[:, None] + b[None, :] - y).T)


def test_generic_index_and_chunking(monkeypatch):
    # out[i, j] = x[i, j] + i * 10 + j, evaluated whole and in chunks.
    src = """
    func.func @f(%x: tensor<6x5xf32>) -> tensor<6x5xf32> {
      %e = tensor.empty() : tensor<6x5xf32>
      %ten = arith.constant 10 : index
      %r = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>],
                           iterator_types = ["parallel", "parallel"]} ins(%x : tensor<6x5xf32>) outs(%e : tensor<6x5xf32>) {
      ^bb0(%in: f32, %out: f32):
        %i = linalg.index 0 : index
        %j = linalg.index 1 : index
        %t = arith.muli %i, %ten : index
        %k = arith.addi %t, %j : index
        %ki = arith.index_cast %k : index to i32
        %kf = arith.sitofp %ki : i32 to f32
        %s = arith.addf %in, %kf : f32
        linalg.yield %s : f32
      } -> tensor<6x5xf32>
      return %r : tensor<6x5xf32>
    }"""
    x = rand(6, 5)
    ref = x + np.arange(6)[:, None] * 10 + np.arange(5)[None, :]
    close(run(src, x)[0], ref)
    monkeypatch.setattr(upstream, "CHUNK_ELEMENTS", 7)
    close(run(src, x)[0], ref)


def test_softmax_generic_chunked_matches_whole(monkeypatch):
    x = rand(2, 8, 16)
    src = """
    #id = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
    #r = affine_map<(d0, d1, d2) -> (d0, d1)>
    func.func @f(%x: tensor<2x8x16xf32>) -> tensor<2x8x16xf32> {
      %ninf = arith.constant 0xFF800000 : f32
      %zero = arith.constant 0.0 : f32
      %e = tensor.empty() : tensor<2x8xf32>
      %mi = linalg.fill ins(%ninf : f32) outs(%e : tensor<2x8xf32>) -> tensor<2x8xf32>
      %m = linalg.generic {indexing_maps = [#id, #r], iterator_types = ["parallel", "parallel", "reduction"]}
          ins(%x : tensor<2x8x16xf32>) outs(%mi : tensor<2x8xf32>) {
      ^bb0(%in: f32, %out: f32):
        %v = arith.maximumf %in, %out : f32
        linalg.yield %v : f32
      } -> tensor<2x8xf32>
      %si = linalg.fill ins(%zero : f32) outs(%e : tensor<2x8xf32>) -> tensor<2x8xf32>
      %s = linalg.generic {indexing_maps = [#id, #r, #r], iterator_types = ["parallel", "parallel", "reduction"]}
          ins(%x, %m : tensor<2x8x16xf32>, tensor<2x8xf32>) outs(%si : tensor<2x8xf32>) {
      ^bb0(%in: f32, %mv: f32, %out: f32):
        %d = arith.subf %in, %mv : f32
        %x2 = math.exp %d : f32
        %v = arith.addf %x2, %out : f32
        linalg.yield %v : f32
      } -> tensor<2x8xf32>
      %o = tensor.empty() : tensor<2x8x16xf32>
      %y = linalg.generic {indexing_maps = [#id, #r, #r, #id], iterator_types = ["parallel", "parallel", "parallel"]}
          ins(%x, %m, %s : tensor<2x8x16xf32>, tensor<2x8xf32>, tensor<2x8xf32>) outs(%o : tensor<2x8x16xf32>) {
      ^bb0(%in: f32, %mv: f32, %sv: f32, %out: f32):
        %d = arith.subf %in, %mv : f32
        %x2 = math.exp %d : f32
        %v = arith.divf %x2, %sv : f32
        linalg.yield %v : f32
      } -> tensor<2x8x16xf32>
      return %y : tensor<2x8x16xf32>
    }"""
    e = np.exp(x - x.max(-1, keepdims=True))
    ref = e / e.sum(-1, keepdims=True)
    close(run(src, x)[0], ref)
    monkeypatch.setattr(upstream, "CHUNK_ELEMENTS", 40)
    close(run(src, x)[0], ref)


# ----------------------------------------------------------------------------- precision


def test_f16_results_are_rounded_after_each_op():
    # In f16, (a + b) - a loses b's low bits; in f32 it would not.
    src = """
    func.func @f(%a: tensor<4xf16>, %b: tensor<4xf16>) -> (tensor<4xf16>, tensor<4xf16>) {
      %s = arith.addf %a, %b : tensor<4xf16>
      %d = arith.subf %s, %a : tensor<4xf16>
      return %s, %d : tensor<4xf16>, tensor<4xf16>
    }"""
    a = np.array([1024, 1, 2048, -3], np.float16)
    b = np.array([0.3, 0.5, 0.75, 1e-3], np.float16)
    s, d = run(src, a, b)
    assert s.dtype == np.float16 and d.dtype == np.float16
    np.testing.assert_array_equal(s, a + b)  # NumPy's float16 ops round each result too
    np.testing.assert_array_equal(d, (a + b) - a)
    assert d[0] != b[0]


def test_f16_generic_body_and_truncf():
    src = """
    func.func @f(%x: tensor<8xf32>) -> (tensor<8xf16>, tensor<8xf16>) {
      %e = tensor.empty() : tensor<8xf16>
      %c3 = arith.constant 3.0 : f16
      %r = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>], iterator_types = ["parallel"]}
          ins(%x : tensor<8xf32>) outs(%e : tensor<8xf16>) {
      ^bb0(%in: f32, %out: f16):
        %t = arith.truncf %in : f32 to f16
        %m = arith.mulf %t, %c3 : f16
        %d = arith.divf %m, %c3 : f16
        linalg.yield %d : f16
      } -> tensor<8xf16>
      %t = arith.truncf %x : tensor<8xf32> to tensor<8xf16>
      return %r, %t : tensor<8xf16>, tensor<8xf16>
    }"""
    x = rand(8) * 100
    r, t = run(src, x)
    h = x.astype(np.float16)
    np.testing.assert_array_equal(t, h)
    np.testing.assert_array_equal(r, (h * np.float16(3)) / np.float16(3))


def test_bf16_storage_rounding():
    src = """
    func.func @f(%x: tensor<6xf32>) -> tensor<6xbf16> {
      %t = arith.truncf %x : tensor<6xf32> to tensor<6xbf16>
      return %t : tensor<6xbf16>
    }"""
    x = np.array([1.0, 1 + 2**-8, 1 + 3 * 2**-8, 3.14159, -1e-3, 65504], np.float32)
    (t,) = run(src, x)
    t32 = np.asarray(t, np.float32)
    assert not (t32.view(np.uint32) & 0xFFFF).any()  # representable in bf16
    # Round to nearest even on the 8-bit mantissa: 1 + 2^-8 is a tie -> 1, 1 + 3*2^-8 -> 1 + 2^-6.
    np.testing.assert_array_equal(t32[:3], [1.0, 1.0, 1 + 2**-6])
    close(t32, x, 2**-8)


def test_to_storage_helper():
    with ir.Context():
        f16 = ir.F16Type.get()
        i8 = ir.IntegerType.get_signless(8)
        i1 = ir.IntegerType.get_signless(1)
        assert to_storage(np.array([1.0009765625 + 1e-4]), f16).dtype == np.float16
        np.testing.assert_array_equal(to_storage(np.array([130, -3]), i8), np.array([-126, -3], np.int8))
        np.testing.assert_array_equal(to_storage(np.array([2, 3]), i1), [False, True])


# ----------------------------------------------------------------------------- math and arith


def test_math_ops_in_generic():
    src = """
    func.func @f(%x: tensor<3x4xf32>) -> tensor<9x3x4xf32> {
      %two = arith.constant 2 : i64
      %m3 = arith.constant -3 : i32
      %half = arith.constant 0.5 : f32
      %e = tensor.empty() : tensor<3x4xf32>
      %id = arith.constant 0 : index
      %outs = tensor.empty() : tensor<9x3x4xf32>
      %r:9 = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>,
          affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>,
          affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>,
          affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]}
          ins(%x : tensor<3x4xf32>)
          outs(%e, %e, %e, %e, %e, %e, %e, %e, %e : tensor<3x4xf32>, tensor<3x4xf32>, tensor<3x4xf32>, tensor<3x4xf32>,
               tensor<3x4xf32>, tensor<3x4xf32>, tensor<3x4xf32>, tensor<3x4xf32>, tensor<3x4xf32>) {
      ^bb0(%in: f32, %o0: f32, %o1: f32, %o2: f32, %o3: f32, %o4: f32, %o5: f32, %o6: f32, %o7: f32, %o8: f32):
        %a = math.absf %in : f32
        %p2 = math.fpowi %in, %two : f32, i64
        %pm3 = math.fpowi %in, %m3 : f32, i32
        %rs = math.rsqrt %a : f32
        %ex = math.exp %in : f32
        %th = math.tanh %in : f32
        %er = math.erf %in : f32
        %lg = math.log %a : f32
        %pw = math.powf %a, %half : f32
        %sq = math.sqrt %a : f32
        %mx = arith.maximumf %pw, %sq : f32
        linalg.yield %p2, %pm3, %rs, %ex, %th, %er, %lg, %mx, %a : f32, f32, f32, f32, f32, f32, f32, f32, f32
      } -> (tensor<3x4xf32>, tensor<3x4xf32>, tensor<3x4xf32>, tensor<3x4xf32>, tensor<3x4xf32>, tensor<3x4xf32>,
            tensor<3x4xf32>, tensor<3x4xf32>, tensor<3x4xf32>)
      %i0 = tensor.expand_shape %r#0 [[0, 1], [2]] output_shape [1, 3, 4] : tensor<3x4xf32> into tensor<1x3x4xf32>
      %i1 = tensor.expand_shape %r#1 [[0, 1], [2]] output_shape [1, 3, 4] : tensor<3x4xf32> into tensor<1x3x4xf32>
      %i2 = tensor.expand_shape %r#2 [[0, 1], [2]] output_shape [1, 3, 4] : tensor<3x4xf32> into tensor<1x3x4xf32>
      %i3 = tensor.expand_shape %r#3 [[0, 1], [2]] output_shape [1, 3, 4] : tensor<3x4xf32> into tensor<1x3x4xf32>
      %i4 = tensor.expand_shape %r#4 [[0, 1], [2]] output_shape [1, 3, 4] : tensor<3x4xf32> into tensor<1x3x4xf32>
      %i5 = tensor.expand_shape %r#5 [[0, 1], [2]] output_shape [1, 3, 4] : tensor<3x4xf32> into tensor<1x3x4xf32>
      %i6 = tensor.expand_shape %r#6 [[0, 1], [2]] output_shape [1, 3, 4] : tensor<3x4xf32> into tensor<1x3x4xf32>
      %i7 = tensor.expand_shape %r#7 [[0, 1], [2]] output_shape [1, 3, 4] : tensor<3x4xf32> into tensor<1x3x4xf32>
      %i8 = tensor.expand_shape %r#8 [[0, 1], [2]] output_shape [1, 3, 4] : tensor<3x4xf32> into tensor<1x3x4xf32>
      %c = tensor.concat dim(0) %i0, %i1, %i2, %i3, %i4, %i5, %i6, %i7, %i8
          : (tensor<1x3x4xf32>, tensor<1x3x4xf32>, tensor<1x3x4xf32>, tensor<1x3x4xf32>, tensor<1x3x4xf32>,
             tensor<1x3x4xf32>, tensor<1x3x4xf32>, tensor<1x3x4xf32>, tensor<1x3x4xf32>) -> tensor<9x3x4xf32>
      return %c : tensor<9x3x4xf32>
    }"""
    import math

    x = rand(3, 4).astype(np.float64)
    a = np.abs(x)
    erf = np.vectorize(math.erf)(x)
    ref = [x**2, x**-3.0, 1 / np.sqrt(a), np.exp(x), np.tanh(x), erf, np.log(a), np.maximum(a**0.5, np.sqrt(a)), a]
    close(run(src, x.astype(np.float32))[0], np.stack(ref), 1e-5)


def test_arith_scalars_compare_select_and_ints():
    src = """
    func.func @f(%a: f32, %b: f32, %i: i32, %j: i32) -> (f32, i32, i1, f32, i32, i32, index) {
      %c = arith.cmpf olt, %a, %b : f32
      %s = arith.select %c, %a, %b : f32
      %n = arith.negf %s : f32
      %d = arith.divsi %i, %j : i32
      %r = arith.remsi %i, %j : i32
      %ci = arith.cmpi sgt, %i, %j : i32
      %m = arith.maxnumf %a, %b : f32
      %e = arith.extf %m : f32 to f64
      %t = arith.truncf %e : f64 to f32
      %k = arith.index_cast %i : i32 to index
      %k2 = arith.muli %k, %k : index
      %sh = arith.shli %j, %j : i32
      return %n, %d, %ci, %t, %r, %sh, %k2 : f32, i32, i1, f32, i32, i32, index
    }"""
    out = run(src, np.float32(1.5), np.float32(-2.0), np.int32(-7), np.int32(2))
    assert [o.dtype for o in out] == [np.float32, np.int32, np.bool_, np.float32, np.int32, np.int32, np.int64]
    assert [o.item() for o in out] == [2.0, -3, False, 1.5, -1, 8, 49]  # divsi/remsi round toward zero


def test_constants_dense_splat_scalar_and_ints():
    src = """
    func.func @f() -> (tensor<2x3xf32>, tensor<2x2xf16>, tensor<3xi64>, tensor<2xi1>, f64, tensor<2xbf16>, tensor<2x2xf32>) {
      %a = arith.constant dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.5]]> : tensor<2x3xf32>
      %b = arith.constant dense<0.1> : tensor<2x2xf16>
      %c = arith.constant dense<[1, -2, 3]> : tensor<3xi64>
      %d = arith.constant dense<[true, false]> : tensor<2xi1>
      %e = arith.constant 0xFFF0000000000000 : f64
      %g = arith.constant dense<[1.5, 0xFF80]> : tensor<2xbf16>
      %h = arith.constant dense_resource<blob> : tensor<2x2xf32>
      return %a, %b, %c, %d, %e, %g, %h : tensor<2x3xf32>, tensor<2x2xf16>, tensor<3xi64>, tensor<2xi1>, f64, tensor<2xbf16>, tensor<2x2xf32>
    }
    {-#
      dialect_resources: { builtin: { blob: "0x040000000000803F000000400000404000008040" } }
    #-}"""
    a, b, c, d, e, g, h = run(src)
    np.testing.assert_array_equal(a, [[1, 2, 3], [4, 5, 6.5]])
    assert b.dtype == np.float16 and (b == np.float16(0.1)).all()
    np.testing.assert_array_equal(c, [1, -2, 3])
    np.testing.assert_array_equal(d, [True, False])
    assert e == -np.inf
    np.testing.assert_array_equal(np.asarray(g, np.float32), [1.5, -np.inf])
    np.testing.assert_array_equal(h, [[1, 2], [3, 4]])


# ----------------------------------------------------------------------------- named linalg and tensor ops


def test_named_linalg_ops():
    src = """
    func.func @f(%x: tensor<4x8xf32>, %y: tensor<4x8xf32>, %v: tensor<4xf32>)
        -> (tensor<4x8xf32>, tensor<4x8xf32>, tensor<8x4xf32>, tensor<4x8xf32>, tensor<4xf32>, tensor<4x8xf32>, tensor<4x8xf32>) {
      %e = tensor.empty() : tensor<4x8xf32>
      %et = tensor.empty() : tensor<8x4xf32>
      %add = linalg.add ins(%x, %y : tensor<4x8xf32>, tensor<4x8xf32>) outs(%e : tensor<4x8xf32>) -> tensor<4x8xf32>
      %exp = linalg.elementwise kind=#linalg.elementwise_kind<exp> ins(%x : tensor<4x8xf32>) outs(%e : tensor<4x8xf32>) -> tensor<4x8xf32>
      %tr = linalg.transpose ins(%x : tensor<4x8xf32>) outs(%et : tensor<8x4xf32>) permutation = [1, 0]
      %bc = linalg.broadcast ins(%v : tensor<4xf32>) outs(%e : tensor<4x8xf32>) dimensions = [1]
      %red = linalg.reduce ins(%x : tensor<4x8xf32>) outs(%v : tensor<4xf32>) dimensions = [1]
        (%in: f32, %init: f32) {
          %s = arith.addf %in, %init : f32
          linalg.yield %s : f32
        }
      %mp = linalg.map ins(%x, %y : tensor<4x8xf32>, tensor<4x8xf32>) outs(%e : tensor<4x8xf32>)
        (%a: f32, %b: f32, %o: f32) {
          %s = arith.mulf %a, %b : f32
          linalg.yield %s : f32
        }
      %sm = linalg.softmax dimension(1) ins(%x : tensor<4x8xf32>) outs(%e : tensor<4x8xf32>) -> tensor<4x8xf32>
      return %add, %exp, %tr, %bc, %red, %mp, %sm
          : tensor<4x8xf32>, tensor<4x8xf32>, tensor<8x4xf32>, tensor<4x8xf32>, tensor<4xf32>, tensor<4x8xf32>, tensor<4x8xf32>
    }"""
    x, y, v = rand(4, 8), rand(4, 8), rand(4)
    add, exp, tr, bc, red, mp, sm = run(src, x, y, v)
    close(add, x + y)
    close(exp, np.exp(x))
    close(tr, x.T)
    close(bc, np.repeat(v[:, None], 8, 1))
    close(red, v + x.sum(1))
    close(mp, x * y)
    close(sm, np.exp(x) / np.exp(x).sum(1, keepdims=True))


def test_tensor_shape_ops_with_dynamic_sizes():
    src = """
    func.func @f(%x: tensor<?x6xf32>, %off: index) -> (tensor<?x2x3xf32>, tensor<?xf32>, tensor<2x3xf32>, tensor<?x6xf32>, tensor<4x6xf32>) {
      %c0 = arith.constant 0 : index
      %n = tensor.dim %x, %c0 : tensor<?x6xf32>
      %ex = tensor.expand_shape %x [[0], [1, 2]] output_shape [%n, 2, 3] : tensor<?x6xf32> into tensor<?x2x3xf32>
      %co = tensor.collapse_shape %x [[0, 1]] : tensor<?x6xf32> into tensor<?xf32>
      %sl = tensor.extract_slice %x[1, %off] [2, 3] [1, 2] : tensor<?x6xf32> to tensor<2x3xf32>
      %z = arith.constant 0.0 : f32
      %em = tensor.empty(%n) : tensor<?x6xf32>
      %zf = linalg.fill ins(%z : f32) outs(%em : tensor<?x6xf32>) -> tensor<?x6xf32>
      %ins = tensor.insert_slice %sl into %zf[0, 0] [2, 3] [1, 1] : tensor<2x3xf32> into tensor<?x6xf32>
      %ca = tensor.cast %x : tensor<?x6xf32> to tensor<4x6xf32>
      return %ex, %co, %sl, %ins, %ca : tensor<?x2x3xf32>, tensor<?xf32>, tensor<2x3xf32>, tensor<?x6xf32>, tensor<4x6xf32>
    }"""
    x = rand(4, 6)
    ex, co, sl, ins, ca = run(src, x, np.int64(1))
    np.testing.assert_array_equal(ex, x.reshape(4, 2, 3))
    np.testing.assert_array_equal(co, x.reshape(-1))
    np.testing.assert_array_equal(sl, x[1:3, 1:6:2])
    ref = np.zeros_like(x)
    ref[:2, :3] = x[1:3, 1:6:2]
    np.testing.assert_array_equal(ins, ref)
    np.testing.assert_array_equal(ca, x)


# ----------------------------------------------------------------------------- functions, entry, errors


def test_func_call_and_entry_selection():
    src = """
    func.func private @twice(%x: tensor<3xf32>) -> tensor<3xf32> {
      %r = arith.addf %x, %x : tensor<3xf32>
      return %r : tensor<3xf32>
    }
    func.func @main(%x: tensor<3xf32>) -> tensor<3xf32> {
      %a = func.call @twice(%x) : (tensor<3xf32>) -> tensor<3xf32>
      %b = call @twice(%a) : (tensor<3xf32>) -> tensor<3xf32>
      return %b : tensor<3xf32>
    }"""
    x = rand(3)
    close(run(src, x)[0], 4 * x)
    close(interpret(src, entry="twice", inputs=[x])[0], 2 * x)


def test_ambiguous_entry_is_an_error():
    src = """
    func.func @a() { return }
    func.func @b() { return }"""
    with pytest.raises(InterpreterError, match="exactly one public function"):
        interpret(src)
    assert interpret(src, entry="@b") == []


def test_unsupported_op_reports_its_line():
    src = """func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
      %y = math.exp %x : tensor<4xf32>
      %z = math.cbrt %y : tensor<4xf32>
      return %z : tensor<4xf32>
    }"""
    with pytest.raises(InterpreterError, match="no interpreter support for 'math.cbrt'") as e:
        run(src, rand(4))
    assert e.value.line == 3
    assert str(e.value).startswith(f"{e.value.filename}:3:")


def test_bad_inputs_and_parse_errors_are_interpreter_errors():
    src = """func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
      return %x : tensor<4xf32>
    }"""
    with pytest.raises(InterpreterError, match="shape"):
        run(src, rand(5))
    with pytest.raises(InterpreterError, match="takes 1 arguments"):
        run(src)
    with pytest.raises(InterpreterError, match="parse error") as e:
        interpret("func.func @f() {\n  %x = arith.bogus\n return }")
    assert e.value.line == 2


def test_random_inputs_and_existing_context():
    src = """
    func.func @f(%x: tensor<?x16xf16>, %y: tensor<3x?xf32>, %n: index) -> tensor<?x16xf16> {
      return %x : tensor<?x16xf16>
    }"""
    ctx = ir.Context()
    with ctx:
        module = ir.Module.parse(src)
        func = module.body.operations[0]
        a = random_inputs(func, seed=3, dims={(0, 0): 5})
        b = random_inputs(func, seed=3, dims={(0, 0): 5})
        assert [x.shape for x in a] == [(5, 16), (3, 8), ()]
        assert [x.dtype for x in a] == [np.float16, np.float32, np.int64]
        assert all(np.array_equal(p, q) for p, q in zip(a, b))
        assert abs(float(a[0].astype(np.float32).std()) - 0.25) < 0.1  # scaled by 1/sqrt(16)
        (r,) = interpret(module, seed=3, dims={(0, 0): 5})
        np.testing.assert_array_equal(r, a[0])
        (r2,) = interpret(src, context=ctx, inputs=a)
        np.testing.assert_array_equal(r2, a[0])
        assert Interpreter(module).entry() == func


def test_large_generic_contraction_and_softmax_are_fast():
    contraction = """
    #a = affine_map<(m, n, k) -> (m, k)>
    #b = affine_map<(m, n, k) -> (n, k)>
    #o = affine_map<(m, n, k) -> (m, n)>
    func.func @f(%a: tensor<16x4096xf16>, %b: tensor<4096x4096xf16>) -> tensor<16x4096xf32> {
      %z = arith.constant 0.0 : f32
      %e = tensor.empty() : tensor<16x4096xf32>
      %c = linalg.fill ins(%z : f32) outs(%e : tensor<16x4096xf32>) -> tensor<16x4096xf32>
      %r = linalg.generic {indexing_maps = [#a, #b, #o], iterator_types = ["parallel", "parallel", "reduction"]}
          ins(%a, %b : tensor<16x4096xf16>, tensor<4096x4096xf16>) outs(%c : tensor<16x4096xf32>) {
      ^bb0(%x: f16, %y: f16, %acc: f32):
        %xe = arith.extf %x : f16 to f32
        %ye = arith.extf %y : f16 to f32
        %p = arith.mulf %xe, %ye : f32
        %s = arith.addf %acc, %p : f32
        linalg.yield %s : f32
      } -> tensor<16x4096xf32>
      return %r : tensor<16x4096xf32>
    }"""
    a = rand(16, 4096, dtype=np.float16)
    b = (RNG.random((4096, 4096), dtype=np.float32) - 0.5).astype(np.float16)
    t = time.perf_counter()
    (r,) = run(contraction, a, b)
    assert time.perf_counter() - t < 5
    close(r, a.astype(np.float32) @ b.astype(np.float32).T, 1e-4)

    big = """
    #id = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
    #r = affine_map<(d0, d1, d2) -> (d0, d1, 0)>
    func.func @f(%x: tensor<2x256x4096xf32>) -> tensor<2x256x4096xf32> {
      %zero = arith.constant 0.0 : f32
      %e1 = tensor.empty() : tensor<2x256x1xf32>
      %si = linalg.fill ins(%zero : f32) outs(%e1 : tensor<2x256x1xf32>) -> tensor<2x256x1xf32>
      %s = linalg.generic {indexing_maps = [#id, #r], iterator_types = ["parallel", "parallel", "reduction"]}
          ins(%x : tensor<2x256x4096xf32>) outs(%si : tensor<2x256x1xf32>) {
      ^bb0(%in: f32, %out: f32):
        %ex = math.exp %in : f32
        %v = arith.addf %ex, %out : f32
        linalg.yield %v : f32
      } -> tensor<2x256x1xf32>
      %o = tensor.empty() : tensor<2x256x4096xf32>
      %y = linalg.generic {indexing_maps = [#id, #r, #id], iterator_types = ["parallel", "parallel", "parallel"]}
          ins(%x, %s : tensor<2x256x4096xf32>, tensor<2x256x1xf32>) outs(%o : tensor<2x256x4096xf32>) {
      ^bb0(%in: f32, %sv: f32, %out: f32):
        %ex = math.exp %in : f32
        %v = arith.divf %ex, %sv : f32
        linalg.yield %v : f32
      } -> tensor<2x256x4096xf32>
      return %y : tensor<2x256x4096xf32>
    }"""
    x = rand(2, 256, 4096) * 0.1
    t = time.perf_counter()
    (y,) = run(big, x)
    assert time.perf_counter() - t < 5
    e = np.exp(x.astype(np.float64))
    close(y, e / e.sum(-1, keepdims=True), 1e-5)


# ----------------------------------------------------------------------------- torch-mlir programs


def _silu(x):
    return x / (1 + np.exp(-x))


def _rms_norm(x):
    return x / np.sqrt(np.mean(x * x, -1, keepdims=True) + 1e-6)


def _layer_norm(x):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5)


def _attention(q, k, v, scale=1.0, stable=False):
    s = (q @ k) * scale
    if stable:
        s = s - s.max(-1, keepdims=True)
    e = np.exp(s)
    return (e / e.sum(-1, keepdims=True)) @ v


# The formula stated on the first line of each test/inputs/<name>_small_<dtype>.mlir,
# over its arguments in the order the line lists their shapes.
FORMULAS = {
    "gated_mlp": lambda x, w1, w2: _silu(x @ w1) * (x @ w2),
    "gqa": lambda q, k, v: _attention(q, k, v),
    "layernorm_linear": lambda x, w: _layer_norm(x) @ w,
    "lora": lambda x, w, a, b: x @ w + (x @ a) @ b,
    "ntrans": lambda h, x, alpha: _rms_norm(h + alpha * (_rms_norm(x) - h)),
    "qknorm_gqa": lambda q, k, v: _attention(_rms_norm(q), k, v),
    "rmsnorm_linear": lambda x, w: _rms_norm(x) @ w,
    "stable_attention": lambda q, k, v: _attention(q, k, v, 0.125, stable=True),
    "swiglu": lambda x, w1, w3, w2: (_silu(x @ w1) * (x @ w3)) @ w2,
}

SMALL_PROGRAMS = sorted(glob.glob(os.path.join(HERE, "inputs", "*_small_*.mlir")))


@pytest.mark.skipif(not SMALL_PROGRAMS, reason="no test/inputs/*_small_*.mlir yet")
@pytest.mark.parametrize("path", SMALL_PROGRAMS, ids=[os.path.basename(p) for p in SMALL_PROGRAMS])
def test_torch_mlir_small_programs(path):
    with open(path) as f:
        header = f.readline()
    m = re.match(r"//\s*(\w+)\s*\(", header)
    name = m.group(1) if m else ""
    if name not in FORMULAS:
        pytest.skip(f"no NumPy formula for '{name}'")
    shapes = re.search(r"shapes (.*?)\.\s", header).group(1)
    shapes = [[int(d) for d in s.split(",")] for s in re.findall(r"\[([\d,\s]+)\]", shapes)]
    f16 = "_f16" in os.path.basename(path)
    dtype = np.float16 if f16 else np.float32
    inputs = [(RNG.standard_normal(s) / np.sqrt(s[-1])).astype(dtype) for s in shapes]
    (out,) = interpret(path, inputs=inputs)
    assert out.dtype == dtype
    ref = FORMULAS[name](*[x.astype(np.float64) for x in inputs])
    assert out.shape == ref.shape
    err = np.abs(out.astype(np.float64) - ref).max() / np.abs(ref).max()
    assert err < (5e-3 if f16 else 1e-5), err


def test_errors_in_files_name_the_file(tmp_path):
    path = tmp_path / "bad.mlir"
    path.write_text("func.func @f(%x: f32) -> f32 {\n  %y = math.cbrt %x : f32\n  return %y : f32\n}\n")
    with pytest.raises(InterpreterError) as e:
        interpret(str(path), inputs=[np.float32(8)])
    assert e.value.filename == str(path) and e.value.line == 2
    assert str(e.value) == f"{path}:2:8: no interpreter support for 'math.cbrt'"
