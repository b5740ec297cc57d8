"""The interpreter runs mirage-dialect programs: each published plan, written out as MLIR, computes
the same outputs as torch-mlir's linalg program for it (both run by the interpreter)."""

from pathlib import Path

import mlir.ir as ir
import numpy as np
import pytest
from mlir.dialects import func

from mirage_mlir.bridge import build_graph, tensor_type
from mirage_mlir.context import make_context
from mirage_mlir.interpreter import interpret, random_inputs
from mirage_mlir.plans import PLANS

INPUTS = Path(__file__).parent / "inputs"


def plan_module(name: str, linalg_module: ir.Module) -> ir.Module:
    """A module whose @main is the published plan for the arguments of linalg_module's @main."""
    main = linalg_module.body.operations[0]
    arg_types = list(main.type.inputs)
    graph = PLANS[name]([tensor_type(t) for t in arg_types])
    with linalg_module.context, ir.Location.unknown():
        module = ir.Module.create()
        with ir.InsertionPoint(module.body):
            fn = func.FuncOp("main", main.type)
            entry = fn.add_entry_block()
            with ir.InsertionPoint(entry):
                func.ReturnOp(build_graph(graph, list(entry.arguments)))
    return module


@pytest.mark.parametrize("dtype,tolerance", [("f32", 1e-4), ("f16", 1e-2)])
@pytest.mark.parametrize("name", sorted(PLANS))
def test_plan_matches_linalg_program(name, dtype, tolerance):
    context = make_context()
    with context:
        linalg = ir.Module.parseFile(str(INPUTS / f"{name}_small_{dtype}.mlir"))
        plan = plan_module(name, linalg)
        assert plan.operation.verify()
        inputs = random_inputs(linalg.body.operations[0], seed=3)
        (expected,) = interpret(linalg, inputs=inputs, context=context)
        (got,) = interpret(plan, inputs=inputs, context=context)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    expected = expected.astype(np.float64)
    assert np.abs(got - expected).max() <= tolerance * np.abs(expected).max()
