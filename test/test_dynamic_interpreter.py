"""The interpreter on torch-mlir-style programs with a dynamic batch dim (test/inputs/dynamic/*_dyn_small_f32.mlir,
examples/dynamic/): tensor.dim, tensor.empty(%dim) and cf.assert broadcast checks, checked against
NumPy float64 references of the formulas in the files' headers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mirage_mlir.interpreter import Interpreter, InterpreterError, interpret, parse_module, random_inputs

ROOT = Path(__file__).resolve().parent.parent
INPUTS = ROOT / "test" / "inputs" / "dynamic"
EXAMPLES = ROOT / "examples" / "dynamic"


def rms_norm(x):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-6)


def silu(x):
    return x / (1.0 + np.exp(-x))


# program -> (NumPy float64 reference of the header's formula, batch of the static small file)
PROGRAMS = {
    "rmsnorm_linear": (lambda x, w: rms_norm(x) @ w, 4),
    "gated_mlp": (lambda x, w1, w2: silu(x @ w1) * (x @ w2), 8),
    "ntrans": (lambda h, x, alpha: rms_norm(h + alpha * (rms_norm(x) - h)), 8),
}


def dyn_file(program: str) -> Path:
    return INPUTS / f"{program}_dyn_small_f32.mlir"


def run_file(path: Path, n: int | None = None, seed: int = 1, dims=None):
    """(inputs, outputs) of the file's @main on the interpreter's seeded inputs, dynamic dims `n`."""
    module = parse_module(str(path))
    with module.context:
        interp = Interpreter(module)
        func = interp.entry()
        inputs = random_inputs(func, seed=seed, dims=dims, dynamic_size=n if n is not None else 8)
        return inputs, interp.run(func, inputs)


@pytest.mark.parametrize("n", [1, 3, 17])
@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_dynamic_batch_matches_numpy(program, n):
    reference, _ = PROGRAMS[program]
    inputs, (out,) = run_file(dyn_file(program), n)
    assert inputs[0].shape[0] == n and out.shape[0] == n and out.dtype == np.float32
    ref = reference(*[np.asarray(a, np.float64) for a in inputs])
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(ref).max())))


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_dynamic_batch_equals_static_program(program):
    """At the static file's batch the dynamic program sees the same inputs and gives the same bits."""
    _, batch = PROGRAMS[program]
    _, (dyn,) = run_file(dyn_file(program), batch)
    _, (static,) = run_file(INPUTS.parent / f"{program}_small_f32.mlir")
    np.testing.assert_array_equal(dyn, static)


def _assert_lines(path: Path) -> list[int]:
    """Lines of the file's cf.assert ops (the header line only mentions them)."""
    return [i for i, line in enumerate(path.read_text().splitlines(), 1) if line.lstrip().startswith("cf.assert")]


def test_mismatched_batch_fails_at_broadcast_assert():
    # H (arg0) has 3 rows, X (arg1) 4: rms_norm(X) - H is the first op combining them.
    path = dyn_file("ntrans")
    with pytest.raises(InterpreterError) as info:
        interpret(str(path), seed=1, dims={(0, 0): 3, (1, 0): 4, (2, 0): 3})
    e = info.value
    assert e.message == "assertion failed: mismatched size for broadcast"
    assert e.line == _assert_lines(path)[1] and e.column == 5
    assert str(e) == f"{path}:{e.line}:5: assertion failed: mismatched size for broadcast"


def test_assert_in_generic_body_and_passing_assert():
    src = """
    func.func @f(%a: tensor<?xf32>) -> tensor<?xf32> {
      %c0 = arith.constant 0 : index
      %c4 = arith.constant 4 : index
      %n = tensor.dim %a, %c0 : tensor<?xf32>
      %le = arith.cmpi sle, %n, %c4 : index
      cf.assert %le, "at most 4 rows"
      %e = tensor.empty(%n) : tensor<?xf32>
      %r = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>],
                           iterator_types = ["parallel"]} ins(%a : tensor<?xf32>) outs(%e : tensor<?xf32>) {
      ^bb0(%x: f32, %o: f32):
        %zero = arith.constant 0.0 : f32
        %pos = arith.cmpf oge, %x, %zero : f32
        cf.assert %pos, "negative input"
        linalg.yield %x : f32
      } -> tensor<?xf32>
      return %r : tensor<?xf32>
    }"""
    a = np.array([0.0, 1.0, 2.0], np.float32)
    (r,) = interpret(src, inputs=[a])
    np.testing.assert_array_equal(r, a)
    with pytest.raises(InterpreterError, match="assertion failed: at most 4 rows"):
        interpret(src, inputs=[np.zeros(5, np.float32)])
    with pytest.raises(InterpreterError, match="assertion failed: negative input") as info:
        interpret(src, inputs=[np.array([1.0, -1.0], np.float32)])
    assert info.value.location is not None


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.mlir")) + sorted(INPUTS.glob("*_dyn_small_f32.mlir")),
                         ids=lambda p: p.name)
def test_dynamic_files_parse_with_a_dynamic_batch(path):
    header = path.read_text().splitlines()[0]
    assert re.match(r"// \w+ \(dynamic batch, f(16|32)\): ", header)
    module = parse_module(str(path))
    with module.context:
        func = Interpreter(module).entry()
        text = str(func)
    assert "tensor<?x" in text and "tensor.empty(%dim)" in text and "cf.assert" in text


def mirage_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mirage_mlir.tools.mirage_run", *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_runs_dynamic_file():
    proc = mirage_run(str(dyn_file("ntrans")), "--dims", "?=3", "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    assert "output 0: shape=[3, 64] dtype=float32" in proc.stdout


def test_cli_mismatched_dims_is_a_located_error():
    path = dyn_file("ntrans")
    proc = mirage_run(str(path), "--dims", "arg0.0=3", "arg1.0=4")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    line = _assert_lines(path)[1]
    assert f"{path}:{line}:5: error: assertion failed: mismatched size for broadcast" in proc.stderr
