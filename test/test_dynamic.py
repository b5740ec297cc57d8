"""Dynamic batch end to end (issue #11): torch-mlir-style programs with `tensor<?x...>`
(test/inputs/dynamic/) through mirage-specialize-dims, the search and mirage-verify, compared with
the original at odd sizes; the compiled specializations run in the SIMT emulator on arrays of the
call's own row count; the runtime's dispatch rules (sizes, errors) without a GPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlir.ir as ir
import numpy as np
import pytest

from mirage_mlir import dispatch
from mirage_mlir.context import make_context, parse_module
from mirage_mlir.interpreter import interpret, random_inputs
from mirage_mlir.lowering.simt import run_lowered
from mirage_mlir.passes import pass_class

DYNAMIC = Path(__file__).parent / "inputs" / "dynamic"
PROGRAMS = ["rmsnorm_linear", "gated_mlp", "ntrans"]


def source(program: str) -> Path:
    return DYNAMIC / f"{program}_dyn_small_f32.mlir"


def inputs_at(path: Path, n: int, seed: int = 3) -> list[np.ndarray]:
    with make_context() as ctx:
        module = parse_module(path.read_text(), ctx)
        fn = next(op.operation for op in module.body.operations
                  if op.operation.name == "func.func" and "sym_visibility" not in op.operation.attributes)
        return random_inputs(fn, seed=seed, dynamic_size=n)


@pytest.mark.parametrize("program", PROGRAMS)
def test_specialized_search_verifies_and_computes_the_original(program):
    """Each specialization becomes at most 2 verified kernels; the dispatching program equals the
    original at sizes between and at the specializations (3, 8, 17)."""
    with make_context() as ctx:
        module = parse_module(source(program).read_text(), ctx)
        for name, options in [("mirage-specialize-dims", "sizes=1,8,32"), ("convert-linalg-to-mirage", ""),
                              ("mirage-superoptimize", "time-budget=5 remarks=false"), ("mirage-verify", "")]:
            instance = pass_class(name).from_options(options)
            instance.run(module.operation)
            if name == "mirage-superoptimize":
                search = instance
        assert module.operation.verify()
        assert [fn for fn, _ in search.results] == ["main__n1", "main__n8", "main__n32"]
        for _, result in search.results:
            assert result.graph is not None and len(result.graph.nodes) <= 2
        optimized = str(module)
    for n in (3, 8, 17):
        args = inputs_at(source(program), n)
        with make_context():
            want = interpret(str(source(program)), inputs=args)
            got = interpret(optimized, inputs=args)
        assert got[0].shape == want[0].shape == (n,) + want[0].shape[1:]
        np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """rmsnorm_linear's dynamic program compiled (no search: fast) at sizes 1, 4, 8."""
    out = tmp_path_factory.mktemp("dyn") / "build"
    proc = subprocess.run([sys.executable, "-m", "mirage_mlir.tools.mirage_compile", str(source("rmsnorm_linear")),
                           "-o", str(out), "--sizes", "1,4,8", "--no-search", "--no-ptxas", "-q"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


def test_the_manifest_dispatches_to_static_specializations(compiled):
    manifest = json.loads((compiled / "manifest.json").read_text())
    main = manifest["functions"]["main"]
    assert main["inputs"][0]["shape"] == [-1, 64] and main["outputs"][0]["shape"] == [-1, 128]
    assert main["dispatch"]["sizes"] == [1, 4, 8]
    assert main["dispatch"]["functions"] == ["main__n1", "main__n4", "main__n8"]
    assert "1 <= n <= 8" in main["dispatch"]["rule"]
    for size, name in zip([1, 4, 8], main["dispatch"]["functions"]):
        assert manifest["functions"][name]["inputs"][0]["shape"] == [size, 64]


@pytest.mark.parametrize("n", [1, 3, 5, 8])
def test_odd_sizes_run_in_the_emulator_on_their_own_rows(compiled, n):
    """The chosen specialization's kernels, run by the SIMT emulator on arrays of exactly n rows
    (its bounds checks fail any access past them) with the row count, give the original's rows."""
    args = inputs_at(source("rmsnorm_linear"), n)
    with make_context():
        want = interpret(str(source("rmsnorm_linear")), inputs=args)[0]
    sizes = [1, 4, 8]
    with ir.Context():
        module = ir.Module.parse((compiled / "gpu.mlir").read_text())
        got = run_lowered(module, args, name=f"main__n{sizes[dispatch.choose(sizes, n)]}", rows=n)
    assert got[0].shape == want.shape == (n, 128)
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-5)


def test_the_kernels_take_the_row_count(compiled):
    """Loads of a masked input are clamped to its last row, stores of a masked output guarded."""
    manifest = json.loads((compiled / "manifest.json").read_text())
    spec = manifest["functions"]["main__n8"]
    assert spec["rows"] == {"inputs": [0, -1], "outputs": [0]}
    assert all(kernel["args"][-1] == ["rows", 0] for kernel in spec["kernels"])
    text = (compiled / "gpu.mlir").read_text()
    assert ": index) kernel" in text and "arith.minui" in text  # the count, last; rows clamped


def test_the_runtime_refuses_sizes_outside_the_range_and_disagreeing_dims(compiled):
    """Checked before any GPU work: errors name the argument and the rule."""
    from mirage_mlir import tuning
    from mirage_mlir.runtime import Dispatcher, load

    program = load(str(compiled))
    assert isinstance(program, Dispatcher)
    assert len(tuning.artifact_digest(str(compiled), program.specialization(1).manifest)) == 64  # its cache key
    assert program.specialization(3).name == "main__n4"
    assert program.specialization(8).name == "main__n8"
    with pytest.raises(ValueError, match=r"dynamic size is 9, outside the compiled range 1..8"):
        program.specialization(9)
    with pytest.raises(ValueError, match=r"dynamic size is 0"):
        program(np.zeros((0, 64), np.float32), np.zeros((64, 128), np.float32))
    with pytest.raises(ValueError, match=r"argument #1 dim 0 is 32, expected 64"):
        program(np.zeros((3, 64), np.float32), np.zeros((32, 128), np.float32))
    with pytest.raises(ValueError, match=r"argument #1 dim 0 is 4 but argument #0 dim 0 is 3"):
        dispatch.common_size([(3, 8), (4, 8)], [(-1, 8), (-1, 8)])
