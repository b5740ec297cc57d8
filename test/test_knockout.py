"""benchmarks/knockout.py: a program whose copies of some inputs read nothing computes the program on
those inputs zeroed, in the emulator, and nothing else in its kernels changes."""

import json
import os
import subprocess
import sys

import mlir.ir as ir
import numpy as np
import pytest

from mirage_mlir.lowering.simt import run_lowered

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "knockout.py")


def compile_published(name, out):
    proc = subprocess.run([sys.executable, "-m", "mirage_mlir.tools.mirage_compile", "--no-search", "-q",
                           "--plan", "published", os.path.join(ROOT, "test", "inputs", f"{name}.mlir"), "-o", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def knock_out(src, dst, *inputs):
    return subprocess.run([sys.executable, SCRIPT, "make", str(src), str(dst), "--inputs", *map(str, inputs)],
                          capture_output=True, text=True)


def test_attention_without_its_v_copies_computes_zeros(tmp_path):
    src, dst = tmp_path / "gqa_bs1_f16_published", tmp_path / "gqa_bs1_f16_noV"
    compile_published("gqa_small_f16", src)
    proc = knock_out(src, dst, 2)
    assert proc.returncode == 0, proc.stderr
    knockout = json.load(open(dst / "manifest.json"))["knockout"]
    assert knockout["inputs"] == [2] and knockout["ptx"]["main_kernels.ptx"]["changed"] == {"main_k0": 4}
    before, after = open(src / "gpu.mlir").read().splitlines(), open(dst / "gpu.mlir").read().splitlines()
    assert len(after) == len(before) + 1  # the zero constant, then the same ops
    changed = [(a, b) for a, b in zip(before, [line for line in after if "knockout_zero = " not in line]) if a != b]
    assert len(changed) == 4 and all("device_async_copy %arg2[" in a and ", %knockout_zero" in b for a, b in changed)
    assert open(dst / "main_kernels.ptx").read().count(", 16, 0;") == 4  # cp.async with a source size of 0

    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(s).astype(np.float16) for s in ((2, 16, 16), (2, 16, 64), (2, 64, 16)))
    with ir.Context():
        full = run_lowered(ir.Module.parse("\n".join(before)), [q, k, v])[0]
        without_v = run_lowered(ir.Module.parse("\n".join(after)), [q, k, v])[0]
    s = np.exp(q.astype(np.float64) @ k)
    np.testing.assert_allclose(full, s / s.sum(-1, keepdims=True) @ v, rtol=1e-2, atol=1e-2)
    assert np.all(without_v == 0)


def test_an_input_no_copy_reads_is_an_error(tmp_path):
    src = tmp_path / "gqa_bs1_f16_published"
    compile_published("gqa_small_f16", src)
    proc = knock_out(src, tmp_path / "out", 0)  # Q is read with plain loads
    assert proc.returncode == 1 and "no cp.async copy reads inputs [0]" in proc.stderr


def test_a_masked_copy_has_its_own_source_size_replaced():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from knockout import knock_out

    text = """    gpu.func @main_k0(%arg0: memref<2x8xf16>, %arg1: memref<2x8xf16>) kernel attributes {} {
      %1 = nvgpu.device_async_copy %arg0[%a, %b], %v[%c, %d], 8, %n {bypassL1} : memref<2x8xf16> to memref<2x8xf16, 3>
      %2 = nvgpu.device_async_copy %arg1[%a, %b], %v[%c, %d], 8 {bypassL1} : memref<2x8xf16> to memref<2x8xf16, 3>
"""
    out, changed = knock_out(text, {"main_k0": {0}})
    assert changed == {"main_k0": 1}
    assert "%v[%c, %d], 8, %knockout_zero {bypassL1}" in out and ", %n " not in out
    assert "%arg1[%a, %b], %v[%c, %d], 8 {bypassL1}" in out


def test_trips_end_the_block_graphs_for_loops_only():
    """--trips N: the scf.for closed by `{mirage.forloop}` runs N iterations (a new constant bound);
    the loops and branches inside and around it keep theirs."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from knockout import knock_out

    text = """    gpu.func @main_k0(%arg0: memref<2x8xf16>) kernel attributes {} {
      scf.for %i = %tid to %c64 step %c32 {
      }
      %r:2 = scf.for %it = %c0 to %c8 step %c1 iter_args(%a = %z, %b = %z) -> (f32, f32) {
        %w = scf.if %p -> (f32) {
          scf.for %j = %c0 to %c4 step %c1 {
          }
          scf.yield %a : f32
        } else {
          scf.yield %b : f32
        }
        scf.yield %w, %b : f32, f32
      } {mirage.forloop}
"""
    out, changed = knock_out(text, {}, trips=1)
    assert changed == {"main_k0": 1}
    assert "%knockout_trips3 = arith.constant 1 : index" in out
    assert "scf.for %it = %c0 to %knockout_trips3 step %c1 iter_args" in out
    assert "scf.for %i = %tid to %c64 step %c32 {" in out and "scf.for %j = %c0 to %c4 step %c1 {" in out


def test_without_wgmma_a_weight_stream_computes_zeros_and_keeps_its_copies(monkeypatch):
    """--no-mma: every warpgroup MMA passes its accumulator through (no tensor work), so gated_mlp's
    wgmma plan computes silu(0) * 0; its copies, fences, commits and waits stay."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from knockout import knock_out

    from mirage_mlir.lowering import lower_graph, plan
    from mirage_mlir.mugraph import TensorType
    from mirage_mlir.plans import VARIANTS

    monkeypatch.setattr(plan, "WGMMA", True)
    types = [TensorType((16, 256), "f16"), TensorType((256, 128), "f16"), TensorType((256, 128), "f16")]
    text = lower_graph(VARIANTS["gated_mlp_split_k"](types, col_tile=64, splits=2, k_tile=64, threads=256)).text()
    out, changed = knock_out(text, {}, mma=False)
    assert changed == {"main_k0": text.count("nvvm.wgmma.mma_async")} and "nvvm.wgmma.mma_async" not in out
    for op in ("device_async_copy", "nvvm.wgmma.commit.group", "nvvm.wgmma.wait.group", "nvvm.wgmma.fence"):
        assert out.count(op) == text.count(op)
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal(t.shape).astype(np.float16) for t in types]
    with ir.Context():
        assert np.all(run_lowered(ir.Module.parse(out), inputs)[0] == 0)


def test_without_mma_sync_a_weight_stream_computes_zeros_and_keeps_its_copies(monkeypatch):
    """--no-mma on mma.sync: each f16 mma.sync passes its accumulator through, so the same plan on
    mma.sync computes zeros too; its copies stay."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from knockout import knock_out

    from mirage_mlir.lowering import lower_graph, plan
    from mirage_mlir.mugraph import TensorType
    from mirage_mlir.plans import VARIANTS

    monkeypatch.setattr(plan, "WGMMA", False)
    types = [TensorType((16, 256), "f16"), TensorType((256, 128), "f16"), TensorType((256, 128), "f16")]
    text = lower_graph(VARIANTS["gated_mlp_split_k"](types, col_tile=64, splits=2, k_tile=64, threads=256)).text()
    out, changed = knock_out(text, {}, mma=False)
    assert text.count("nvgpu.mma.sync") > 0 and "nvgpu.mma.sync" not in out
    assert changed == {"main_k0": text.count("nvgpu.mma.sync")}
    assert out.count("device_async_copy") == text.count("device_async_copy")
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal(t.shape).astype(np.float16) for t in types]
    with ir.Context():
        assert np.all(run_lowered(ir.Module.parse(out), inputs)[0] == 0)


def test_a_copy_named_otherwise_is_known_by_its_manifests_source(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from programs import of_directory

    named = tmp_path / "gated_mlp_bs8_f16_sk_c64_s2_k64_t256"
    copy = tmp_path / "gated8_noW"
    stranger = tmp_path / "mine"
    for d, source in ((named, "x.mlir"), (copy, "gated_mlp_bs8_f16.mlir"), (stranger, "model.mlir")):
        d.mkdir()
        (d / "manifest.json").write_text(json.dumps({"source": source}))
    assert of_directory(str(named)) == ("gated_mlp", 8, "f16")
    assert of_directory(str(copy)) == ("gated_mlp", 8, "f16")
    with pytest.raises(ValueError, match="names a benchmark program"):
        of_directory(str(stranger))
