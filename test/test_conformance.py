"""Every operator of the table (mirage_mlir/opset.py) on every backend: the float evaluator, the
finite-field domain, the abstract expressions, the GPU lowering run in the SIMT emulator, and ptxas.
A backend that misses an op fails here, by name, instead of silently (an op never searched, every
candidate rejected as 'cannot verify', a kernel that does not lower)."""

from __future__ import annotations

import mlir.ir as ir
import numpy as np
import pytest

from mirage_mlir import finite_field as ff
from mirage_mlir.builder import KernelBuilder
from mirage_mlir.dtypes import round_to
from mirage_mlir.evaluate import evaluate
from mirage_mlir.lowering import lower_graph
from mirage_mlir.lowering.ptx import compile_gpu_module, find_ptxas, run_ptxas
from mirage_mlir.lowering.simt import run_lowered
from mirage_mlir.mugraph import TensorType
from mirage_mlir.opset import OPS
from mirage_mlir.search.absexpr import TermBuilder, apply_op

# per category: operand shapes and attributes of one small instance
SHAPES = {"unary": [(4, 64)], "binary": [(4, 64), (4, 64)], "reduce": [(4, 64)], "matmul": [(16, 64), (64, 32)],
          "norm": [(4, 64)]}
ATTRS = {"mul_scalar": {"scalar": 0.5}, "add_scalar": {"scalar": 0.5}, "reduce_sum": {"dim": 1},
         "reduce_mean": {"dim": 1}, "reduce_max": {"dim": 1}, "rms_norm": {"eps": 1e-6}}
POSITIVE = {"sqrt", "rsqrt", "pow"}  # ops whose (first) operand must be positive for real results
OPERATORS = sorted(OPS)


def instance(op: str, dtype: str = "f32"):
    """A kernel graph of the one op, and inputs in its domain."""
    types = [TensorType(s, dtype) for s in SHAPES[OPS[op].category]]
    kb = KernelBuilder(types)
    graph = kb.finish([kb.op(op, *range(len(types)), **ATTRS.get(op, {}))])
    rng = np.random.default_rng(sum(map(ord, op)))
    inputs = [rng.standard_normal(t.shape).astype(np.float32) for t in types]
    if op in POSITIVE:
        inputs[0] = np.abs(inputs[0]) + 0.5
    return graph, [round_to(x, dtype) for x in inputs]


@pytest.mark.parametrize("op", OPERATORS)
def test_float_semantics(op):
    graph, inputs = instance(op)
    (out,) = evaluate(graph, inputs)
    assert out.shape == graph.value_types[graph.outputs[0]].shape and np.isfinite(out).all()


@pytest.mark.parametrize("op", OPERATORS)
def test_finite_field_model(op):
    """Each op evaluates over the finite fields (no FieldUnsupported), and a program equals itself."""
    graph, _ = instance(op)
    result = ff.check_equivalent(graph, graph, trials=1)
    assert result.equivalent, result.reason


@pytest.mark.parametrize("op", OPERATORS)
def test_abstract_expression(op):
    """The search's pruning can express each op (apply_op knows it)."""
    graph, _ = instance(op)
    shapes = [graph.value_types[v].shape for v in graph.nodes[0].inputs]
    tb = TermBuilder()
    args = [tb.var(f"x{i}") for i in range(len(shapes))]
    assert apply_op(tb, op, args, dict(graph.nodes[0].attrs), shapes) is not None


@pytest.mark.parametrize("dtype", ["f32", "f16"])
@pytest.mark.parametrize("op", OPERATORS)
def test_gpu_kernel_in_the_emulator(op, dtype):
    """Each op lowers to a kernel whose execution, thread by thread, matches the evaluator."""
    graph, inputs = instance(op, dtype)
    program = lower_graph(graph)
    with ir.Context():
        module = ir.Module.parse(program.text())
        assert module.operation.verify()
        (out,) = run_lowered(module, inputs)
    (ref,) = evaluate(graph, inputs)
    ref64 = np.asarray(ref, np.float64)
    err = np.linalg.norm(np.asarray(out, np.float64) - ref64) / max(np.linalg.norm(ref64), 1e-30)
    assert err < (1e-5 if dtype == "f32" else 2e-3)


@pytest.mark.skipif(find_ptxas() is None, reason="ptxas not installed")
@pytest.mark.parametrize("op", OPERATORS)
def test_ptx_assembles(op):
    graph, _ = instance(op, "f16")
    result = run_ptxas(compile_gpu_module(lower_graph(graph).gpu_module_text()).ptx, "sm_90")
    assert result.ok, result.log
