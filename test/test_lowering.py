"""GPU lowering without a GPU: every published plan (plans.py) and every converted test program is
lowered, run on the CPU by the SIMT emulator (mirage_mlir.lowering.simt: lockstep threads, bounds,
race and unwritten-output checks) and compared with the mu-graph evaluator or the reference
interpreter; every PTX the lowering produces is assembled with ptxas (skipped when absent)."""

from __future__ import annotations

import glob
import json
import math
import os
import re
import subprocess
import sys
from dataclasses import replace

import mlir.ir as ir
import numpy as np
import pytest

from mirage_mlir.dtypes import round_to
from mirage_mlir.evaluate import evaluate
from mirage_mlir.graph_verify import verify
from mirage_mlir.lowering import LoweringError, blockgen, lower_graph, plan
from mirage_mlir.lowering.predefined import predefined_block_graph
from mirage_mlir.lowering.ptx import compile_gpu_module, find_ptxas, run_ptxas
from mirage_mlir.lowering.simt import SimtError, run_lowered
from mirage_mlir.mugraph import Node, TensorType
from mirage_mlir.plans import PLANS, SMALL_SHAPES, VARIANTS, benchmark_inputs
from mirage_mlir.builder import BlockBuilder, KernelBuilder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INPUTS = os.path.join(ROOT, "test", "inputs")

# The shapes of test/inputs (small) and shapes where every plan's for-loop runs several iterations
# and the f16 matmuls run on tensor cores (mma.sync, ldmatrix) with register accumulators.
SMALL = SMALL_SHAPES
MEDIUM = {
    "gqa": [(2, 64, 64), (2, 64, 2048), (2, 2048, 64)],  # Q K tiles of 64 x 32: tensor cores
    "qknorm_gqa": [(2, 64, 64), (2, 64, 2048), (2, 2048, 64)],
    "rmsnorm_linear": [(4, 512), (512, 256)],
    "lora": [(16, 256), (256, 256), (256, 16), (16, 256)],
    "gated_mlp": [(16, 512), (512, 128), (512, 128)],
    "ntrans": [(4, 1024)] * 3,
}
SCALE = {"gqa": 0.3, "qknorm_gqa": 0.3}
PTXAS = find_ptxas()


def random_inputs(types, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return [round_to((rng.standard_normal(t.shape) * scale).astype(np.float32), t.dtype) for t in types]


def run_on_cpu(graph, inputs):
    program = lower_graph(graph)
    with ir.Context():
        module = ir.Module.parse(program.text())
        assert module.operation.verify()
        return run_lowered(module, inputs)


def rel_err(out, ref):
    ref = np.asarray(ref, np.float64)
    return float(np.linalg.norm(np.asarray(out, np.float64) - ref) / np.linalg.norm(ref))


@pytest.mark.parametrize("dtype", ["f16", "bf16", "f32"])
@pytest.mark.parametrize("sizes", ["small", "medium"])
@pytest.mark.parametrize("name", sorted(PLANS))
def test_plan_kernels_compute_the_mu_graph(name, sizes, dtype):
    """The generated kernels, executed thread by thread, compute what the mu-graph means."""
    types = [TensorType(s, dtype) for s in (SMALL if sizes == "small" else MEDIUM)[name]]
    graph = PLANS[name](types)
    assert not verify(graph)
    inputs = random_inputs(types, seed=hash((name, sizes, dtype)) % 1000, scale=SCALE.get(name, 1.0))
    ref = evaluate(graph, inputs)
    out = run_on_cpu(graph, inputs)
    for o, r in zip(out, ref):
        assert np.isfinite(o).all(), "an output element was not written"
        # Same roundings as the evaluator; only f32 summation order differs.
        assert rel_err(o, r) < (1e-5 if dtype == "f32" else 2e-3)


@pytest.mark.skipif(PTXAS is None, reason="ptxas not installed")
@pytest.mark.parametrize("dtype", ["f16", "bf16", "f32"])
@pytest.mark.parametrize("bs", [1, 8])
@pytest.mark.parametrize("name", sorted(PLANS))
def test_plan_ptx_assembles_at_full_size(name, bs, dtype):
    program = lower_graph(PLANS[name](benchmark_inputs(name, bs, dtype)))
    text = program.gpu_module_text()
    binary = compile_gpu_module(text)
    # 1024-aligned where wgmma reads its 128-byte-swizzled operands (rmsnorm_linear bs8's published plan)
    alignment = 1024 if "nvvm.wgmma" in text else 16
    assert f".extern .shared .align {alignment} .b8 __dynamic_shmem__0[]".encode() in binary.ptx
    result = run_ptxas(binary.ptx, "sm_90")
    assert result.ok and "C7518" not in result.log and "C7517" not in result.log, result.log
    assert set(result.registers) == {launch.kernel.name for launch in program.launches}
    assert all(spill == 0 for spill in result.spills.values()), result.log  # no local-memory traffic
    for launch in program.launches:
        assert launch.kernel.shared_bytes <= plan.MAX_SHARED_BYTES
        assert all(g >= 1 for g in launch.kernel.grid)


@pytest.mark.skipif(PTXAS is None, reason="ptxas not installed")
def test_ptx_for_sm80():
    program = lower_graph(PLANS["gqa"](benchmark_inputs("gqa", 1, "f16")))
    binary = compile_gpu_module(program.gpu_module_text(), chip="sm_80")
    assert b".target sm_80" in binary.ptx and b".version 8.0" in binary.ptx
    assert run_ptxas(binary.ptx, "sm_80").ok


def test_tensor_core_paths_are_exercised(monkeypatch):
    """The medium shapes go through ldmatrix/mma.sync (where wgmma is off, or on sm_80),
    loop-carried accumulators and a cp.async ring."""
    monkeypatch.setattr(plan, "WGMMA", False)
    for name in ("gqa", "rmsnorm_linear", "gated_mlp"):
        text = lower_graph(PLANS[name]([TensorType(s, "f16") for s in MEDIUM[name]])).gpu_module_text()
        assert "nvgpu.mma.sync" in text and "nvgpu.ldmatrix" in text, name
        assert "nvgpu.device_async_copy" in text and "nvgpu.device_async_wait" in text, name
    text = lower_graph(PLANS["gated_mlp"]([TensorType(s, "f16") for s in MEDIUM["gated_mlp"]])).gpu_module_text()
    loop_header = text[text.index("iter_args(%lc"):].split("{")[0]
    assert "vector<2x2xf32>" in loop_header


@pytest.mark.parametrize("name", ["rmsnorm_linear", "gated_mlp", "gqa"])
def test_register_prefetch_without_the_ring(name, monkeypatch):
    """With no cp.async ring (MAX_STAGES 1), loop tiles are prefetched into loop-carried registers."""
    monkeypatch.setattr(plan, "MAX_STAGES", 1)
    types = [TensorType(s, "f16") for s in MEDIUM[name]]
    graph = PLANS[name](types)
    text = lower_graph(graph).gpu_module_text()
    assert "device_async" not in text and "vector<8xf16>" in text[text.index("iter_args(%lc"):].split("{")[0]
    inputs = random_inputs(types, seed=5, scale=SCALE.get(name, 1.0))
    assert rel_err(run_on_cpu(graph, inputs)[0], evaluate(graph, inputs)[0]) < 2e-3


def test_ring_depth_follows_shared_memory():
    """The ring is as deep as MAX_STAGES and the loop allow while two blocks still share an SM (the
    plan's 96 blocks fill one wave)."""
    block_plan = plan.BlockPlan(PLANS["rmsnorm_linear"](benchmark_inputs("rmsnorm_linear", 1, "f16")).nodes[0].body)
    assert block_plan.stages == plan.MAX_STAGES and block_plan.ring
    assert plan.resident_blocks(block_plan.shared_bytes, block_plan.threads) >= 2


def test_a_block_graph_sets_its_ring_depth():
    """A block graph's max_stages bounds its ring in place of MAX_STAGES, shallower or deeper (8 stages
    of the published plan still fit three blocks an SM), and a ring deeper than 4 stages, run thread by
    thread, computes the plan (8 iterations: every slot of the ring filled and reused once)."""
    body = PLANS["rmsnorm_linear"](benchmark_inputs("rmsnorm_linear", 1, "f16")).nodes[0].body
    assert plan.BlockPlan(replace(body, max_stages=2)).stages == 2
    deep = plan.BlockPlan(replace(body, max_stages=8))
    assert deep.stages == 8 and plan.resident_blocks(deep.shared_bytes, deep.threads) == 3
    types = [TensorType(s, "f16") for s in [(4, 1024), (1024, 128)]]
    graph = VARIANTS["rmsnorm_linear_split_k"](types, col_tile=64, splits=2, k_tile=64)
    split = replace(graph.nodes[0].body, max_stages=8)
    assert split.forloop_range == 8 and plan.BlockPlan(split).stages == 8
    graph = replace(graph, nodes=(replace(graph.nodes[0], body=split),) + graph.nodes[1:])
    inputs = random_inputs(types, seed=4)
    assert rel_err(run_on_cpu(graph, inputs)[0], evaluate(graph, inputs)[0]) < 2e-3


def test_a_block_graph_sets_whether_its_warps_split_k():
    """rmsnorm_linear's split plan: 4 warps share one warp tile of 1 x 8 mma tiles by K slices and
    add their registers after the loop; with whole_k_warps each takes 1 x 2 tiles over the whole K
    (no slices to add), and run thread by thread it computes the plan."""
    types = [TensorType(s, "f16") for s in [(4, 1024), (1024, 128)]]
    graph = VARIANTS["rmsnorm_linear_split_k"](types, col_tile=64, splits=2, k_tile=64)
    body = graph.nodes[0].body
    ((_, split),) = plan.BlockPlan(body).reg_accs.items()
    ((_, whole),) = plan.BlockPlan(replace(body, whole_k_warps=True)).reg_accs.items()
    assert (split.wn, split.kslices, whole.wn, whole.kslices) == (8, 4, 2, 1)
    graph = replace(graph, nodes=(replace(graph.nodes[0], body=replace(body, whole_k_warps=True)),) + graph.nodes[1:])
    assert "%kslices" not in lower_graph(graph).gpu_module_text()
    inputs = random_inputs(types, seed=4)
    assert rel_err(run_on_cpu(graph, inputs)[0], evaluate(graph, inputs)[0]) < 2e-3


def test_a_loop_of_tiles_too_narrow_for_cp_async_copies_them_synchronously():
    """Tiles whose rows hold under 4 bytes get no ring (and no ring stages): the folded LayerNorm
    plan at one output column a block takes K tiles of one element (it had stopped the lowering
    with an internal error). Its kernel still computes the plan."""
    types = [TensorType(s, "f16") for s in [(2, 32), (32, 32)]]
    graph = VARIANTS["layernorm_linear_folded"](types, col_tile=1, splits=2, k_tile=1)
    block_plan = plan.BlockPlan(graph.nodes[0].body)
    assert block_plan.ring == [] and block_plan.stages == 1
    inputs = random_inputs(types, seed=2)
    assert rel_err(run_on_cpu(graph, inputs)[0], evaluate(graph, inputs)[0]) < 2e-3


def run_rmsnorm_linear_on_cpu():
    """Mirage's rmsnorm_linear plan at medium shapes, lowered and run in the emulator."""
    types = [TensorType(s, "f16") for s in MEDIUM["rmsnorm_linear"]]
    return run_on_cpu(PLANS["rmsnorm_linear"](types), random_inputs(types, 0))


def test_missing_async_wait_is_caught(monkeypatch):
    """Copies that no wait completes never land: the emulator refuses such a kernel."""
    monkeypatch.setattr(blockgen.BlockKernelGen, "async_wait", lambda self, group, pending: None)
    with pytest.raises(SimtError, match="never waited for"):
        run_rmsnorm_linear_on_cpu()


def test_async_copies_land_at_the_wait(monkeypatch):
    """A wait that leaves this iteration's group in flight computes on stale tiles: a wrong result."""
    original = blockgen.BlockKernelGen.async_wait
    monkeypatch.setattr(blockgen.BlockKernelGen, "async_wait",
                        lambda self, group, pending: original(self, group, pending and pending + 1))
    types = [TensorType(s, "f32") for s in MEDIUM["rmsnorm_linear"]]
    graph = PLANS["rmsnorm_linear"](types)
    inputs = random_inputs(types, 1)
    assert rel_err(run_on_cpu(graph, inputs)[0], evaluate(graph, inputs)[0]) > 0.1


def test_full_size_plans_use_128_bit_accesses():
    program = lower_graph(PLANS["rmsnorm_linear"](benchmark_inputs("rmsnorm_linear", 1, "f16")))
    text = program.gpu_module_text()
    assert "nvgpu.device_async_copy %arg1[" in text and "8 {bypassL1} : memref<4096x6144xf16>" in text
    assert "vector<8xf16>" in text.split("vector.store")[-1]  # the saver stores 8 halves at a time


@pytest.mark.parametrize("rows", [32, 8])
@pytest.mark.parametrize("fused", [False, True], ids=["ops", "thread_graph"])
@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_an_a_operand_computed_on_its_fragments_is_the_chain_of_each_element(dtype, fused, rows):
    """((x - r) * c) W with the chain computed on x's mma fragments (plan.fragment_operands), r a
    value per row and c one per column of x's tile: every element at its row and column (32 rows:
    two tiles of 16, each in halves of 8; 8 rows: the tile's padding rows read the last row's r, in
    bounds; K tiles of 64 in four steps of 16), rounded per op; as ops, or as the search's thread
    graph of them."""
    from mirage_mlir.search.threads import fuse_thread_graphs

    types = [TensorType((rows, 256), dtype), TensorType((256, 64), dtype), TensorType((rows, 1), dtype),
             TensorType((1, 256), dtype)]
    bb = BlockBuilder(types, (1, 1, 1), 4, (128, 1, 1))
    x, w = bb.iterator(0, (-1, -1, -1), 1), bb.iterator(1, (-1, -1, -1), 0)
    r, c = bb.iterator(2, (-1, -1, -1), -1), bb.iterator(3, (-1, -1, -1), 1)
    a = bb.op("mul", bb.op("sub", x, r), c)
    body = bb.finish([bb.save(bb.accum("accum_sum", bb.op("matmul", a, w, dtype="f32")), (-1, -1, -1))])
    kb = KernelBuilder(types)
    graph = kb.finish(kb.graph_def(body, [0, 1, 2, 3]))
    if fused:
        graph = fuse_thread_graphs(graph)
        body = graph.nodes[0].body
    chain = node_index(body, "thread_graph" if fused else "mul")
    assert plan.BlockPlan(body).fragment_operands == {chain: node_index(body, "input_iterator")}
    inputs = random_inputs(types, seed=3)
    assert rel_err(run_on_cpu(graph, inputs)[0], evaluate(graph, inputs)[0]) < 1e-5


def node_index(body, op: str) -> int:
    return next(i for i, node in enumerate(body.nodes) if node.op == op)


def kernel_op_graph(op, in_types, **attrs):
    kb = KernelBuilder(in_types)
    out = kb.op(op, *range(len(in_types)), **attrs)
    return kb.finish([out])


PREDEFINED = [
    ("matmul", [(16, 64), (64, 48)], {}),
    ("matmul", [(2, 8, 32), (2, 32, 16)], {}),
    ("exp", [(4, 96)], {}),
    ("silu", [(3, 40)], {}),
    ("gelu", [(2, 24)], {}),
    ("add", [(8, 32), (8, 1)], {}),
    ("mul", [(1, 32), (6, 32)], {}),
    ("div", [(2, 4, 8), (2, 4, 1)], {}),
    ("mul_scalar", [(4, 16)], {"scalar": 0.5}),
    ("reduce_sum", [(16, 48)], {"dim": 1}),
    ("reduce_sum", [(16, 48)], {"dim": 0}),
    ("reduce_max", [(8, 64)], {"dim": 1}),
    ("reduce_mean", [(2, 8, 40)], {"dim": 2}),
    ("rms_norm", [(6, 128)], {"eps": 1e-6}),
    ("reduce_max", [(2, 2048)], {"dim": 1}),  # rows fewer than warps: split across warps
    ("rms_norm", [(2, 1024)], {"eps": 1e-6}),
]


@pytest.mark.parametrize("dtype", ["f16", "f32"])
@pytest.mark.parametrize("op,shapes,attrs", PREDEFINED, ids=[f"{o}-{len(s[0])}d-{i}" for i, (o, s, _) in enumerate(PREDEFINED)])
def test_predefined_kernel_ops(op, shapes, attrs, dtype):
    """Kernel-level ops get kernels of their own (through block graphs the verifier accepts)."""
    types = [TensorType(s, dtype) for s in shapes]
    graph = kernel_op_graph(op, types, **attrs)
    assert not verify(graph)
    body = predefined_block_graph(graph.nodes[0], types)
    wrapped = KernelBuilder(types)
    outs = wrapped.graph_def(body, list(range(len(types))))
    assert not verify(wrapped.finish(outs)), "the predefined op's block graph breaks the block-graph rules"
    inputs = random_inputs(types, seed=3)
    ref = evaluate(graph, inputs)
    out = run_on_cpu(graph, inputs)
    assert rel_err(out[0], ref[0]) < (1e-5 if dtype == "f32" else 2e-3)


def test_short_row_counts_split_rows_across_warps(monkeypatch):
    """A block reducing fewer rows than it has warps gives each row several warps (a shared
    scratch and one barrier), each lane reading 16-byte vectors of the row (row kernels turned off:
    they would keep ntrans in registers), and over a long row four independent partial sums."""
    monkeypatch.setattr(plan, "MAX_ROW_SLOTS", 0)
    text = lower_graph(PLANS["ntrans"](benchmark_inputs("ntrans", 1, "f16"))).gpu_module_text()
    assert "%scratch" in text and re.search(r"vector\.load %tile\d+\[.*workgroup.*vector<8xf16>", text)
    graph = kernel_op_graph("reduce_sum", [TensorType((2, 16384), "f32")], dim=1)
    assert ":4 = scf.for" in lower_graph(graph).gpu_module_text()
    inputs = random_inputs([TensorType((2, 16384), "f32")], seed=4)
    assert rel_err(run_on_cpu(graph, inputs)[0], evaluate(graph, inputs)[0]) < 1e-5


@pytest.mark.parametrize("threads", [128, 512])
def test_row_kernel_keeps_values_in_registers(threads):
    """ntrans's plan is a row kernel: 16-byte loads straight to registers (volatile: ptxas keeps
    them together, all 12 of a thread's issued before the first is used), no tile in shared memory,
    one barrier per rms reduction, on 128 threads of four chunks whatever its block size; a thread
    adds up its four chunks of the row before one warp's shuffles a reduction (four chains of
    shuffles before: ntrans 1.43-1.46 -> 1.34-1.42 us, H100 run 242); it matches the interpreter in
    the emulator."""
    types = benchmark_inputs("ntrans", 1, "f16")
    kernel = lower_graph(PLANS["ntrans"](types, threads=threads)).launches[0].kernel
    assert kernel.block == (128, 1, 1)
    assert len(re.findall(r"llvm\.load volatile %ptr\d+ \{alignment = 16 : i64\} : !llvm\.ptr<1> -> vector<8xf16>",
                          kernel.text)) == 12
    assert "%tile" not in kernel.text
    assert kernel.text.count("gpu.barrier") == 2
    assert kernel.text.count("gpu.shuffle") == 2 * 5  # two reductions, one butterfly of five steps each
    small = [TensorType((2, 512), "f16")] * 3  # a row of 64 chunks of 8: 32 threads of two
    inputs = random_inputs(small, seed=5)
    small_graph = PLANS["ntrans"](small, threads=threads)
    assert plan.BlockPlan(small_graph.nodes[0].body).rows.slots == 2
    assert rel_err(run_on_cpu(small_graph, inputs)[0], evaluate(small_graph, inputs)[0]) < 2e-3


def test_row_kernel_of_several_rows_per_block():
    """Tiles of several rows (each thread's four chunks in different rows): a softmax less the row's
    mean, and the row's sum plus its max saved. The sum, mean and max share one barrier, the sum of
    the exponentials takes a second, and its division is a multiply by one reciprocal per row."""
    x_type = TensorType((8, 128), "f32")
    kb = KernelBuilder([x_type])
    bb = BlockBuilder([x_type], (2, 1, 1), 1, (64, 1, 1))
    x = bb.accum("accum_sum", bb.iterator(0, (0, -1, -1), -1))
    total = bb.op("reduce_sum", x, dim=1)
    top = bb.op("reduce_max", x, dim=1)
    e = bb.op("exp", bb.op("sub", x, top))
    softmax = bb.op("div", e, bb.op("reduce_sum", e, dim=1))
    centred = bb.op("sub", softmax, bb.op("reduce_mean", x, dim=1))
    both = bb.op("add", total, top)
    body = bb.finish([bb.save(centred, (0, -1, -1)), bb.save(both, (0, -1, -1))])
    graph = kb.finish(kb.graph_def(body, [0]))
    layout = plan.BlockPlan(body).rows
    assert layout is not None and layout.shape == (4, 128) and layout.slots == 4 and layout.row_slots == 1
    text = lower_graph(graph).gpu_module_text()
    # per slot: the mean's division by the count and one reciprocal (not one division per element)
    assert text.count("gpu.barrier") == 2 and text.count("arith.divf") == 2 * layout.slots
    inputs = random_inputs([x_type], seed=6)
    out, ref = run_on_cpu(graph, inputs), evaluate(graph, inputs)
    assert rel_err(out[0], ref[0]) < 1e-5 and rel_err(out[1], ref[1]) < 1e-5


def test_missing_barrier_is_caught(monkeypatch):
    """The emulator's race check is live: without barriers every plan fails."""
    monkeypatch.setattr(blockgen.BlockKernelGen, "barrier", lambda self: self.dirty.clear())
    with pytest.raises(SimtError, match="race"):
        run_rmsnorm_linear_on_cpu()


def test_a_read_of_what_nothing_wrote_is_caught():
    """The outputs and temporaries of a host function start unwritten: a kernel that reads an element
    of one that nothing has written is refused (a combine reading partials its split kernel never
    stored, as the H100 saw in run 201, ran in the emulator to NaN outputs before). Here the split
    kernel of a two-launch split-K plan stores no partial."""
    from mirage_mlir.plans import VARIANTS

    types = [TensorType(s, "f16") for s in [(16, 512), (512, 128), (512, 128)]]
    text = lower_graph(VARIANTS["gated_mlp_split_k"](types, col_tile=32, splits=2, k_tile=64), fuse=False).text()
    first = text.index("gpu.func @")
    second = text.index("gpu.func @", first + 1)
    split = [line for line in text[first:second].splitlines()
             if not (line.strip().startswith("vector.store") and "workgroup" not in line)]
    assert len(split) < len(text[first:second].splitlines())
    with ir.Context():
        with pytest.raises(SimtError, match="that nothing has written"):
            run_lowered(ir.Module.parse(text[:first] + "\n".join(split) + text[second:]), random_inputs(types, 0))


def test_unwritten_output_is_caught(monkeypatch):
    """Outputs start as NaN in the emulator: a saver that skips blocks leaves NaN behind."""
    original = blockgen.BlockKernelGen.saver_offsets

    def first_block_only(self, i):
        return [0 for _ in original(self, i)]

    monkeypatch.setattr(blockgen.BlockKernelGen, "saver_offsets", first_block_only)
    types = [TensorType(s, "f32") for s in SMALL["ntrans"]]
    graph = PLANS["ntrans"](types)
    with pytest.raises(SimtError, match="race"):  # every block writes block 0's tile
        run_on_cpu(graph, random_inputs(types, 0))


def test_f64_kernels_compute_in_f64():
    """A kernel holding f64 values computes in f64 (f32 results still rounded to f32), as torch-mlir's
    layer_norm variance asks; f32 kernels stay in f32."""
    kb = KernelBuilder([TensorType((16, 256), "f32")])
    x = kb.op("cast", 0, dtype="f64")
    centered = kb.op("sub", x, kb.op("reduce_mean", x, dim=1))
    graph = kb.finish([kb.op("cast", kb.op("reduce_mean", kb.op("square", centered), dim=1), dtype="f32")])
    text = lower_graph(graph).gpu_module_text()
    assert "arith.subf" in text and ": f64" in text and "arith.truncf" in text
    inputs = random_inputs(graph.inputs, seed=6)
    inputs[0] = inputs[0] + 1000.0  # a large mean: f32 arithmetic would lose the variance's digits
    assert rel_err(run_on_cpu(graph, inputs)[0], evaluate(graph, inputs)[0]) < 1e-6
    assert ": f64" not in lower_graph(kernel_op_graph("exp", [TensorType((4, 8), "f32")])).gpu_module_text()


def test_lowering_errors():
    kb = KernelBuilder([TensorType((4, 8), "f32")])
    with pytest.raises(LoweringError, match="returns one of its inputs"):
        lower_graph(kb.finish([0]))


# -- the passes and the tool on the converted test programs ----------------------------------------

CONVERTIBLE = sorted(glob.glob(os.path.join(INPUTS, "*.mlir")))  # layernorm_linear: f64 kernels


def compile_dir(tmp_path, source, *extra, search=False):
    """mirage-compile SOURCE (without the search unless asked: it takes seconds to minutes)."""
    out = tmp_path / "build"
    flags = [] if search else ["--no-search"]
    proc = subprocess.run([sys.executable, "-m", "mirage_mlir.tools.mirage_compile", source, "-o", str(out), "-q",
                           *flags, *extra], capture_output=True, text=True)
    return proc, out


def check_against_interpreter(path, out, tol16=3e-3, gpu="gpu.mlir"):
    from mirage_mlir.context import make_context
    from mirage_mlir.interpreter import interpret

    manifest = json.load(open(out / "manifest.json"))
    spec = manifest["functions"]["main"]
    dtype = spec["inputs"][0]["dtype"]
    inputs = random_inputs([TensorType(tuple(t["shape"]), t["dtype"]) for t in spec["inputs"]], seed=5, scale=0.3)
    storage = {"f16": np.float16, "f32": np.float32}[dtype]
    with make_context():
        ref = interpret(path, inputs=[x.astype(storage) for x in inputs])
    with ir.Context():
        got = run_lowered(ir.Module.parse(open(out / gpu).read()), inputs)
    assert rel_err(got[0], ref[0]) < (1e-5 if dtype == "f32" else tol16)
    return manifest


@pytest.mark.parametrize("path", CONVERTIBLE, ids=[os.path.basename(p)[:-5] for p in CONVERTIBLE])
def test_converted_programs_match_the_interpreter(path, tmp_path):
    """The pipeline without the search (convert-linalg-to-mirage, one kernel per kernel op, PTX) on
    torch-mlir programs: the gpu.mlir it writes, run on the CPU, matches the reference interpreter on
    the original linalg."""
    proc, out = compile_dir(tmp_path, path)
    assert proc.returncode == 0, proc.stderr
    manifest = check_against_interpreter(path, out)
    assert manifest["pipeline"] == ["mirage-specialize-dims", "convert-linalg-to-mirage", "mirage-lower-to-gpu",
                                    "mirage-gpu-to-ptx"]
    if PTXAS:
        assert "ptxas" in manifest and manifest["ptxas"]


@pytest.mark.parametrize("name", ["rmsnorm_linear_small_f16", "gqa_small_f32"])
def test_search_results_lower_correctly(name, tmp_path, monkeypatch):
    """The default pipeline with mirage-superoptimize (short budget): whatever mu-graph the search
    returns is lowered and computes the original program."""
    from mirage_mlir.passes import PASSES

    if "mirage-superoptimize" not in PASSES:
        pytest.skip("mirage-superoptimize is not registered")
    path = os.path.join(INPUTS, name + ".mlir")
    proc, out = compile_dir(tmp_path, path, "--search-options", "time-budget=5 workers=2", "--candidates", "3",
                            search=True)
    assert proc.returncode == 0, proc.stderr
    manifest = check_against_interpreter(path, out)
    assert "mirage-superoptimize" in manifest["pipeline"]
    # every candidate plan kept for the runtime's timing computes the program too
    spec = manifest["functions"]["main"]
    candidates = spec.get("candidates", [])
    assert name != "rmsnorm_linear_small_f16" or len(candidates) >= 2, "no alternative plan kept"
    if candidates:
        assert candidates[0]["kernels"] == spec["kernels"] and len(candidates) <= 3
        # each estimated again with its kernels' registers (ptxas); the model's choice the lowest
        estimates = [c["estimate_us"] for c in candidates]
        assert spec["model_choice"] == estimates.index(min(estimates))
        if PTXAS:
            from mirage_mlir.lowering.manifest import kernel_registers
            from mirage_mlir.search.cache import graph_from_json
            from mirage_mlir.search.cost import cost, ranking_chip

            graphs = [graph_from_json(c["graph"]) for c in json.load(open(out / "candidates.json"))["main"]]
            for c, candidate in enumerate(candidates):
                registers = kernel_registers(manifest, candidate["kernels"])
                estimate = cost(graphs[c], ranking_chip("sm_90"), registers).total_us
                assert registers and candidate["estimate_us"] == pytest.approx(estimate)
    for c, candidate in enumerate(candidates[1:], start=1):
        assert all((out / k["ptx"]).exists() and k["ptx"].startswith(f"c{c}_") for k in candidate["kernels"])
        check_against_interpreter(path, out, gpu=f"c{c}_gpu.mlir")
    if candidates:  # benchmarks/rerank.py: the build's estimates and choice under a refitted ranking
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
        import rerank

        from mirage_mlir.lowering.manifest import kernel_registers
        from mirage_mlir.search import cost
        from mirage_mlir.search.cache import graph_from_json

        monkeypatch.setitem(cost.RANKING, "sm_90", {**cost.RANKING["sm_90"], "launch_us": 4.0, "mem_latency_us": 3.0})
        assert [name for name, *_ in rerank.rerank(str(out))] == ["main"]
        manifest = json.load(open(out / "manifest.json"))
        graphs = [graph_from_json(c["graph"]) for c in json.load(open(out / "candidates.json"))["main"]]
        reranked = manifest["functions"]["main"]["candidates"]
        expected = [cost.cost(graphs[c], cost.ranking_chip("sm_90"), kernel_registers(manifest, x["kernels"])).total_us
                    for c, x in enumerate(reranked)]
        assert [x["estimate_us"] for x in reranked] == pytest.approx(expected)
        assert manifest["functions"]["main"]["model_choice"] == expected.index(min(expected))


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(INPUTS, "*_f16.mlir"))),
                         ids=lambda p: os.path.basename(p)[:-5])
def test_published_plans_through_mirage_compile(path, tmp_path):
    name = os.path.basename(path)[: -len("_small_f16.mlir")]
    proc, out = compile_dir(tmp_path, path, "--plan", "published", "--chip", "sm_90")
    if name not in PLANS:
        assert proc.returncode == 1 and "no published plan" in proc.stderr
        return
    assert proc.returncode == 0, proc.stderr
    manifest = json.load(open(out / "manifest.json"))
    assert manifest["format"] == "mirage-gpu" and manifest["chip"] == "sm_90"
    assert manifest["pipeline"][0] == "plan:published"
    spec = manifest["functions"]["main"]
    for kernel in spec["kernels"]:
        assert os.path.exists(out / kernel["ptx"])
        assert kernel["block"] == [128, 1, 1]
        assert {k for k, _ in kernel["args"]} <= {"input", "temp", "output"}
    assert "mirage.reference_function" not in (out / "gpu.mlir").read_text()


def test_mirage_compile_reports_errors(tmp_path):
    bad = tmp_path / "bad.mlir"
    bad.write_text("func.func @main(%a: tensor<4xf32>) -> tensor<4xf32> {\n  return %b : tensor<4xf32>\n}\n")
    proc, _ = compile_dir(tmp_path, str(bad))
    assert proc.returncode == 1 and "bad.mlir:2:" in proc.stderr
    proc, _ = compile_dir(tmp_path, os.path.join(INPUTS, "gqa_small_f16.mlir"), "--plan", "nope")
    assert proc.returncode == 1 and "no published plan for 'nope'" in proc.stderr
    rms = os.path.join(INPUTS, "rmsnorm_linear_small_f16.mlir")
    proc, _ = compile_dir(tmp_path, rms, "--plan", "published:bogus=3")
    assert proc.returncode == 1 and "does not take these parameters" in proc.stderr and "Traceback" not in proc.stderr
    proc, _ = compile_dir(tmp_path, rms, "--plan", "published:col_tile=wide")
    assert proc.returncode == 1 and "expected key=integer" in proc.stderr


# Plans beyond Mirage's (plans.VARIANTS) at small shapes: K split across blocks, SwiGLU + down.
VARIANT_CASES = [
    ("rmsnorm_linear_split_k", [(4, 512), (512, 256)], dict(col_tile=64, splits=4, k_tile=64)),
    ("gated_mlp_split_k", [(16, 512), (512, 128), (512, 128)], dict(col_tile=32, splits=2, k_tile=64)),
    # sixteen warps: K split eight ways over each warp tile (one block an SM: the minctasm mark)
    ("gated_mlp_split_k", [(16, 512), (512, 128), (512, 128)], dict(col_tile=32, splits=2, k_tile=128, threads=512)),
    ("swiglu_down", [(8, 64), (64, 128), (64, 128), (128, 64)],
     dict(col_tile=32, k_tile=32, down_col_tile=32, splits=2, down_k_tile=32)),
    # eight warps over two mma tiles: X A's and X W's K split four ways (plan.stage_kslices)
    ("lora_fused", [(16, 128), (128, 128), (128, 16), (16, 128)], dict(col_tile=16, threads=256)),
    # x W and W's column sums (a matmul by ones) on the tensor cores, X's row sums and sums of squares
    # (f16 / bf16: the ones, x * 0 + 1, computed on the A fragments of X's tile: plan.fragment_operands)
    ("layernorm_linear_folded", [(16, 256), (256, 128)], dict(col_tile=32, splits=2, k_tile=64)),
    ("layernorm_linear_folded", [(16, 256), (256, 128)], dict(col_tile=32, splits=2, k_tile=32)),
    # one split: each block walks the whole K and finishes its tile (no partials, no combine)
    ("layernorm_linear_folded", [(16, 256), (256, 128)], dict(col_tile=32, splits=1, k_tile=64)),
    # eight warps over 64 columns, each warp tile eight mma tiles wide: W's column sums as W^T times
    # ones, one mma per 16 columns (plan.constant_operands), its K split eight ways
    ("layernorm_linear_folded", [(16, 1024), (1024, 128)], dict(col_tile=64, splits=2, k_tile=256, threads=256)),
]


@pytest.mark.parametrize("dtype", ["f16", "bf16", "f32"])
@pytest.mark.parametrize("name,shapes,tiles", VARIANT_CASES,
                         ids=[c[0] + "".join(f"-{k}{v}" for k, v in c[2].items() if k in ("splits", "k_tile"))
                              for c in VARIANT_CASES])
def test_variant_plans_compute_their_program(name, shapes, tiles, dtype):
    """The split-K plans and lora's one-kernel form equal the published plans (SwiGLU + down and
    LayerNorm + Linear their formulas), and their kernels, executed thread by thread, compute the
    mu-graph."""
    types = [TensorType(s, dtype) for s in shapes]
    graph = VARIANTS[name](types, **tiles)
    assert not verify(graph)
    inputs = random_inputs(types, seed=11)
    inputs = [inputs[0]] + [round_to(x * 0.1, dtype) for x in inputs[1:]]
    ref = evaluate(graph, inputs)
    if name == "swiglu_down":
        x, w1, w3, w2 = (np.asarray(a, np.float64) for a in inputs)
        h = x @ w1
        expected = ((h / (1 + np.exp(-h))) * (x @ w3)) @ w2
    elif name == "layernorm_linear_folded":
        x, w = (np.asarray(a, np.float64) for a in inputs)
        centered = x - x.mean(axis=1, keepdims=True)
        expected = centered / np.sqrt((centered ** 2).mean(axis=1, keepdims=True) + 1e-5) @ w
    else:
        expected = evaluate(PLANS[name.removesuffix("_split_k").removesuffix("_fused")](types), inputs)[0]
    assert rel_err(ref[0], expected) < (1e-5 if dtype == "f32" else 2e-2)
    assert rel_err(run_on_cpu(graph, inputs)[0], ref[0]) < (1e-5 if dtype == "f32" else 2e-3)



def test_layernorms_column_sums_share_the_w_loads_of_x_w(monkeypatch):
    """In the PTX of LayerNorm's pick's geometry on mma.sync, each K step loads X once and W's four
    column pairs once for both x W (8 mma) and W's column sums (4 mma, W^T times ones): 10 ldmatrix
    and 24 mma an iteration. LLVM shares the loads; run 217 (branch exp/mma-rows) saw them loaded
    twice once the walk was no longer unrolled, and 8 more ldmatrix an iteration cost more than they
    saved. On wgmma both matmuls are one chain reading W once: the ones are 8 rows stacked below X's
    in its ring slots, one wgmma m64n24k16 a 16-K step, each warpgroup half the K tile (8 of 16)."""
    types = [TensorType((16, 1024), "f16"), TensorType((1024, 128), "f16")]
    graph = VARIANTS["layernorm_linear_folded"](types, col_tile=64, splits=2, k_tile=256, threads=256)
    ptx = compile_gpu_module(lower_graph(graph).gpu_module_text()).ptx.decode()
    assert (ptx.count("ldmatrix"), ptx.count("mma.sync"), ptx.count("wgmma.mma_async")) == (0, 0, 8)
    assert "m64n24k16" in ptx
    monkeypatch.setattr(plan, "WGMMA", False)
    ptx = compile_gpu_module(lower_graph(graph).gpu_module_text()).ptx.decode()
    assert (ptx.count("ldmatrix"), ptx.count("mma.sync")) == (10, 24)


def layernorm_on_wgmma():
    """LayerNorm + Linear in its pick's geometry (one wgmma chain in both warpgroups) at small sizes."""
    types = [TensorType((16, 1024), "f16"), TensorType((1024, 128), "f16")]
    return types, VARIANTS["layernorm_linear_folded"](types, col_tile=64, splits=2, k_tile=256, threads=256)


def test_xs_row_sums_run_while_the_wgmma_chain_is_in_flight():
    """Where every warpgroup runs a chain (no branch to merge its registers at), its wait comes
    before the iteration's closing barrier, after the iteration's other stages: X's row sums (their
    shared-memory loads and adds) lie between the commit and the wait, and ptxas keeps them there."""
    _, graph = layernorm_on_wgmma()
    ptx = compile_gpu_module(lower_graph(graph).gpu_module_text()).ptx.decode()
    commit, wait = ptx.index("wgmma.commit_group"), ptx.index("wgmma.wait_group")
    between = ptx[commit:wait]
    assert ptx.count("wgmma.wait_group") == 1 and between.count("ld.shared.v4") == 2
    assert between.count("add.rn.f32") >= 16 and ptx[wait:].split("\n")[1].split() == ["bar.sync", "0;"]


def test_wgmma_accumulators_read_before_their_wait_are_refused(monkeypatch):
    """An accumulator of a chain in flight may not be read (undefined in PTX): without the wait
    before the closing barrier the loop's yield reads it, and the emulator refuses the kernel; with
    it the kernel computes the mu-graph."""
    types, graph = layernorm_on_wgmma()
    inputs = random_inputs(types, seed=5)
    inputs = [inputs[0], round_to(inputs[1] * 0.1, "f16")]
    assert rel_err(run_on_cpu(graph, inputs)[0], evaluate(graph, inputs)[0]) < 2e-3
    monkeypatch.setattr(blockgen.BlockKernelGen, "wgmma_wait", lambda self: None)
    with pytest.raises(SimtError, match="before the wgmma.wait_group"):
        run_on_cpu(graph, inputs)


def test_writes_into_shared_memory_an_inflight_wgmma_reads_are_refused():
    """A wgmma reads its operands from shared memory any time before its wait: a store into them
    in between (here the stores of LayerNorm's stacked ones, repeated right after the chain's commit:
    the same values, so only the timing is wrong) is refused (the emulator, whose wgmma reads at
    issue, would compute the right result)."""
    types, graph = layernorm_on_wgmma()
    text = lower_graph(graph).text()
    lines = text.split("\n")
    stacked = [line for line in lines if line.lstrip().startswith("vector.store %splat")]
    commit = next(k for k, line in enumerate(lines) if "nvvm.wgmma.commit.group.sync.aligned" in line)
    assert len(stacked) == 2  # one a stage of X's ring
    mutated = "\n".join(lines[:commit + 1] + stacked + lines[commit + 1:])
    inputs = random_inputs(types, seed=5)
    inputs = [inputs[0], round_to(inputs[1] * 0.1, "f16")]
    with ir.Context():
        assert rel_err(run_lowered(ir.Module.parse(text), inputs)[0], evaluate(graph, inputs)[0]) < 2e-3
        with pytest.raises(SimtError, match="a store into shared memory that a wgmma reads before its wgmma.wait_group"):
            run_lowered(ir.Module.parse(mutated), inputs)


# the plans whose warps split a matmul's K and could walk it whole instead (not the attention plans,
# lora's or ntrans's; not sixteen warps over four mma tiles, nor eight over one warp tile)
WHOLE_K_CASES = [(name, MEDIUM[name], {}) for name in ("gated_mlp", "rmsnorm_linear")] + [
    case for case in VARIANT_CASES if case[0] != "lora_fused" and case[2].get("threads") not in (256, 512)]


@pytest.mark.parametrize("name,shapes,tiles", WHOLE_K_CASES, ids=[f"{c[0]}-{k}" for k, c in enumerate(WHOLE_K_CASES)])
def test_whole_k_twins_compute_the_mu_graph(name, shapes, tiles, monkeypatch):
    """A plan whose warps split a matmul's K has a whole-K twin (driver.whole_k_twin, kept for the
    clock beside every such candidate); executed thread by thread it computes the mu-graph. (On
    wgmma a warpgroup walks its matmul's whole K where the warpgroups allow: no twin to make.)"""
    from mirage_mlir.search.driver import whole_k_twin

    monkeypatch.setattr(plan, "WGMMA", False)
    types = [TensorType(s, "f16") for s in shapes]
    twin = whole_k_twin((PLANS.get(name) or VARIANTS[name])(types, **tiles))
    assert twin is not None
    inputs = random_inputs(types, seed=7, scale=SCALE.get(name, 1.0))
    inputs = inputs[:1] + [round_to(x * 0.1, "f16") for x in inputs[1:]]
    for o, r in zip(run_on_cpu(twin, inputs), evaluate(twin, inputs)):
        assert np.isfinite(o).all() and rel_err(o, r) < 2e-3


# warps walking 8-16 K steps of their tiles an iteration (two iterations), and lora's loop of one
CHAIN_CASES = [
    ("rmsnorm_linear_split_k", [(4, 1024), (1024, 256)], dict(col_tile=32, splits=2, k_tile=256, threads=64)),
    ("gated_mlp_split_k", [(16, 1024), (1024, 128), (1024, 128)], dict(col_tile=32, splits=2, k_tile=256, threads=64)),
    ("layernorm_linear_folded", [(16, 512), (512, 128)], dict(col_tile=32, splits=1, k_tile=256, threads=64)),
    ("lora_fused", [(16, 128), (128, 128), (128, 16), (16, 128)], dict(col_tile=64, threads=128)),
]


@pytest.mark.parametrize("chains", [2, 4])
@pytest.mark.parametrize("dtype", ["f16", "bf16"])
@pytest.mark.parametrize("name,shapes,tiles", CHAIN_CASES, ids=[c[0] for c in CHAIN_CASES])
def test_mma_chains_compute_the_mu_graph(name, shapes, tiles, dtype, chains, monkeypatch):
    """plan.MMA_CHAINS (MIRAGE_MMA_CHAINS): each warp deals its K steps to independent accumulator
    chains and adds them after the walk, in loops of one (lora) and across a for-loop's iterations
    (the weight streams' register accumulators); executed thread by thread the kernels compute the
    mu-graph, and the plan's figure counts one chain's steps."""
    types = [TensorType(s, dtype) for s in shapes]
    graph = VARIANTS[name](types, **tiles)
    monkeypatch.setattr(plan, "MMA_CHAINS", 1)
    one_chain = plan.BlockPlan(graph.nodes[0].body).mma_chain()
    monkeypatch.setattr(plan, "MMA_CHAINS", chains)
    assert plan.BlockPlan(graph.nodes[0].body).mma_chain() < one_chain
    assert "vector<2x2xf32>" in lower_graph(graph).text().split("arith.addf", 1)[1].split("\n", 1)[0]
    inputs = random_inputs(types, seed=5)
    inputs = [inputs[0]] + [round_to(x * 0.1, dtype) for x in inputs[1:]]
    for o, r in zip(run_on_cpu(graph, inputs), evaluate(graph, inputs)):
        assert np.isfinite(o).all() and rel_err(o, r) < 2e-3


def test_a_loop_of_one_walks_its_k_steps_in_chains_by_default(monkeypatch):
    """lora's one kernel: nothing overlaps its mma chains (X A, X W after X arrives), so by default
    each warp deals its K steps to LOOP_OF_ONE_CHAINS chains; a weight stream's loop keeps one."""
    lora = VARIANTS["lora_fused"]([TensorType(s, "f16") for s in CHAIN_CASES[3][1]], **CHAIN_CASES[3][2])
    stream = VARIANTS["rmsnorm_linear_split_k"]([TensorType(s, "f16") for s in CHAIN_CASES[0][1]],
                                                **CHAIN_CASES[0][2])
    default = [plan.BlockPlan(g.nodes[0].body).mma_chain() for g in (lora, stream)]
    monkeypatch.setattr(plan, "MMA_CHAINS", 1)
    one = [plan.BlockPlan(g.nodes[0].body).mma_chain() for g in (lora, stream)]
    assert default[0] < one[0] and default[1] == one[1]


def test_chains_divide_the_steps_within_the_accumulator_budget(monkeypatch):
    # by default: LOOP_OF_ONE_CHAINS (4) in a kernel with a loop of one, one chain in a loop
    monkeypatch.setattr(plan, "MMA_CHAINS", 0)
    assert [plan.mma_chains(steps, 1, True) for steps in (1, 2, 3, 4, 6, 16)] == [1, 1, 1, 2, 3, 4]
    assert plan.mma_chains(16, 4, True) == 2 and plan.mma_chains(16, 8, True) == 1  # 8 accumulators at most
    assert plan.dependent_steps(16, 1, True) == 4 + 2 and plan.dependent_steps(6, 1, True) == 2 + 2
    assert plan.mma_chains(16, 1, False) == 1 and plan.dependent_steps(16, 1, False) == 16
    monkeypatch.setattr(plan, "MMA_CHAINS", 1)  # MIRAGE_MMA_CHAINS: everywhere
    assert plan.mma_chains(16, 1, True) == 1 and plan.dependent_steps(16, 1, True) == 16
    monkeypatch.setattr(plan, "MMA_CHAINS", 4)
    assert plan.mma_chains(16, 1, False) == 4


@pytest.mark.parametrize("tiles,room,even", [(dict(col_tile=64, splits=4, k_tile=64), True, True),
                                             (dict(col_tile=8, splits=2, k_tile=128, threads=256), True, False),
                                             (dict(col_tile=64, splits=4, k_tile=64), False, True)],
                         ids=["shares", "uneven-shares", "turns"])
def test_k_slices_of_an_mma_tile_meet_once(tiles, room, even, monkeypatch):
    """Warps that share an mma tile by K slices add up their registers after the loop: in the loop
    tiles' shared memory, every thread adding a share of the registers (also when they do not divide
    evenly among the slices), or, where that memory is too small, one slice after another."""
    types = [TensorType((4, 1024), "f16"), TensorType((1024, 64), "f16")]
    graph = VARIANTS["rmsnorm_linear_split_k"](types, **tiles)
    body_plan = plan.BlockPlan(graph.nodes[0].body)
    (info,) = body_plan.reg_accs.values()
    assert info.kslices > 1 and (info.count * 4 % info.kslices == 0) == even
    if not room:
        monkeypatch.setattr(plan.BlockPlan, "slice_scratch", lambda self, i: None)
    assert ("%slices" in lower_graph(graph).gpu_module_text()) == room
    inputs = random_inputs(types, seed=3)
    inputs[1] = round_to(inputs[1] * 0.1, "f16")
    assert rel_err(run_on_cpu(graph, inputs)[0], evaluate(graph, inputs)[0]) < 2e-3


@pytest.mark.parametrize("columns,threads,split", [(88, 128, (1, 3, 4, 1, 88)), (48, 256, (1, 3, 2, 4, 0))],
                         ids=["padded", "three-tile-shares"])
def test_mma_tiles_of_odd_counts_stay_in_registers(columns, threads, split):
    """88 columns are 11 mma tiles, a prime: 4 warps take 3 each, and the 12th tile (padding) reads
    the last real columns and stores nothing. 48 columns are 6 tiles: 2 warp tiles of 3, each shared
    by 4 warps' K slices. Either way the accumulator stays in registers across the loop, and a warp
    loads its 3 B tiles as a pair (one ldmatrix.x4.trans, the padding tile clamped lane by lane) and
    one alone."""
    types = [TensorType((4, 1024), "f16"), TensorType((1024, 2 * columns), "f16")]
    graph = VARIANTS["rmsnorm_linear_split_k"](types, col_tile=columns, splits=2, k_tile=64, threads=threads)
    (info,) = plan.BlockPlan(graph.nodes[0].body).reg_accs.values()
    assert (info.wm, info.wn, info.tiles[-1], info.kslices, info.columns) == split
    # W's rows of 11 or 6 chunks: the cp.async loops step whole rows, no division per chunk
    text = lower_graph(graph).gpu_module_text()
    loops = re.findall(r'scf\.for %r\d+ = (?:(?!mirage\.stage).)*?\} \{mirage\.stage = "cp\.async \d+"\}', text, re.S)
    assert loops and not any("divui" in loop or "remui" in loop for loop in loops)
    assert "numTiles = 4 : i32, transpose = true" in text and "numTiles = 2 : i32, transpose = true" in text
    inputs = random_inputs(types, seed=5)
    inputs[1] = round_to(inputs[1] * 0.1, "f16")
    assert rel_err(run_on_cpu(graph, inputs)[0], evaluate(graph, inputs)[0]) < 2e-3


@pytest.mark.parametrize("rows,k_tile", [(16, 128), (2, 128), (4, 16), (6, 64)],
                         ids=["lane-groups", "warps-share-a-row", "thread-per-row", "idle-lanes"])
def test_row_sums_are_carried_across_the_loop(rows, k_tile):
    """X's sums of squares (a row reduction feeding a sum accumulator) stay in loop-carried
    registers, combined once after the loop: no shuffle and only the loop's two barriers in its
    body, and the result is the mu-graph's however the rows spread over the threads."""
    types = [TensorType((rows, 1024), "f16"), TensorType((1024, 64), "f16")]
    graph = VARIANTS["rmsnorm_linear_split_k"](types, col_tile=64, splits=2, k_tile=k_tile)
    assert plan.BlockPlan(graph.nodes[0].body).carried_rows
    text = lower_graph(graph).gpu_module_text()
    loop = text[text.index("iter_args(%lc"):text.index("mirage.forloop")]
    assert "gpu.shuffle" not in loop and loop.count("gpu.barrier") == 2
    inputs = random_inputs(types, seed=rows)
    inputs[1] = round_to(inputs[1] * 0.1, "f16")
    assert rel_err(run_on_cpu(graph, inputs)[0], evaluate(graph, inputs)[0]) < 2e-3


# A split reduction and its combine kernel as one launch (lowering/fuse_split_k.py).
SPLIT_K_CASES = [c for c in VARIANT_CASES if c[0] != "lora_fused" and c[2].get("splits") != 1]


@pytest.mark.parametrize("name,shapes,tiles", SPLIT_K_CASES, ids=[c[0] for c in SPLIT_K_CASES])
def test_split_k_pairs_fuse_into_one_launch(name, shapes, tiles):
    """With the combine on the partials' column tiles, each split-K pair is one kernel whose last
    block per tile combines; fused and unfused kernels, run thread by thread (the emulator also checks
    that the counters are back at zero), compute the same values."""
    from mirage_mlir.lowering.fuse_split_k import fused_pairs
    from mirage_mlir.plans import VARIANTS

    types = [TensorType(s, "f16") for s in shapes]
    graph = VARIANTS[name](types, **tiles)
    pairs = list(fused_pairs(graph))
    assert pairs == [len(graph.nodes) - 2]
    program = lower_graph(graph)
    assert [launch.nodes for launch in program.launches][-1] == (pairs[0], pairs[0] + 1)
    assert len(program.launches) == len(graph.nodes) - 1
    (counters,) = program.zeroed
    assert program.temps[counters].dtype == "i32"
    inputs = random_inputs(types, seed=5)
    inputs = [inputs[0]] + [round_to(x * 0.1, "f16") for x in inputs[1:]]
    fused = run_on_cpu(graph, inputs)[0]
    with ir.Context():
        unfused = run_lowered(ir.Module.parse(lower_graph(graph, fuse=False).text()), inputs)[0]
    assert rel_err(fused, unfused) < 1e-6
    assert rel_err(fused, evaluate(graph, inputs)[0]) < 2e-3


CLUSTER_CASES = [
    ("gated_mlp_split_k", [(16, 512), (512, 128), (512, 128)], dict(col_tile=32, splits=2, k_tile=64), "f16", True),
    ("gated_mlp_split_k", [(64, 512), (512, 128), (512, 128)], dict(col_tile=64, splits=2, k_tile=128, threads=256),
     "bf16", True),
    ("rmsnorm_linear_split_k", [(4, 512), (512, 256)], dict(col_tile=64, splits=2, k_tile=64), "f16", True),
    # 4 splits: counters (CLUSTER_SPLITS); a combine copying its partials by cp.async: counters
    ("rmsnorm_linear_split_k", [(4, 512), (512, 256)], dict(col_tile=64, splits=4, k_tile=64), "f16", False),
    ("gated_mlp_split_k", [(64, 1024), (1024, 128), (1024, 128)], dict(col_tile=64, splits=2, k_tile=64, threads=128),
     "f16", False),
]


@pytest.mark.parametrize("name,shapes,tiles,dtype,clustered", CLUSTER_CASES,
                         ids=[f"{c[0]}_s{c[2]['splits']}_t{c[2].get('threads', 0)}_{c[3]}" for c in CLUSTER_CASES])
def test_a_split_k_tail_through_a_cluster_computes_what_the_counters_do(name, shapes, tiles, dtype, clustered,
                                                                         monkeypatch):
    """fuse_split_k's cluster form (plan.SPLIT_K_CLUSTER, sm_90): the 2 split blocks of a tile run as
    one cluster, keep their partials in shared memory (in the ring's slots where they fit) and the
    first block reads its peer's through distributed shared memory; no counter, no device fence. The
    emulator runs the cluster (and checks each peer read against the cluster barriers) and matches
    the counter form; ptxas takes it. More splits, or a combine whose partials cp.async would copy
    from global memory (128 threads: on the H100 its cluster form read partials never written, run
    201), keep the counters."""
    from mirage_mlir.plans import VARIANTS

    types = [TensorType(s, dtype) for s in shapes]
    graph = VARIANTS[name](types, **tiles)
    inputs = random_inputs(types, seed=5)
    inputs = [inputs[0]] + [round_to(x * 0.1, dtype) for x in inputs[1:]]
    monkeypatch.setattr(plan, "SPLIT_K_CLUSTER", False)
    assert "nvvm.mapa" not in lower_graph(graph).launches[-1].kernel.text
    counters = run_on_cpu(graph, inputs)[0]
    monkeypatch.setattr(plan, "SPLIT_K_CLUSTER", True)
    program = lower_graph(graph)
    text = program.launches[-1].kernel.text
    assert ("nvvm.cluster_dim = array<i32: 1, 2, 1>" in text and "nvvm.mapa" in text) == clustered
    assert ("atomic_rmw" in text) != clustered
    assert rel_err(run_on_cpu(graph, inputs)[0], counters) < 1e-6
    if PTXAS and clustered:
        ptx = compile_gpu_module(program.gpu_module_text()).ptx
        assert ".reqnctapercluster 1, 2, 1" in ptx.decode() and run_ptxas(ptx).ok
        assert ".version 8.6" in ptx.decode()  # the release fence's PTX (ptx.NEWER_PTX); the rest stay 8.0
    assert "nvvm.mapa" not in lower_graph(graph, chip="sm_80").launches[-1].kernel.text  # no clusters there


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_a_combine_with_a_block_per_split_block_runs_in_both_blocks_of_the_cluster(dtype, monkeypatch):
    """A split-K pair whose combine has as many blocks per tile as the tile has splits (the search's
    combine over columns half as wide): in the cluster form each block of the tile's cluster runs one
    of them on its half of both blocks' partials (half the tail a block, where the first block ran it
    all), one launch; the counter form cannot (its last block would run them one after another), so
    without clusters the pair stays two launches. Emulated against the two launches; ptxas takes it."""
    from mirage_mlir.lowering.fuse_split_k import fused_pairs
    from mirage_mlir.plans import VARIANTS
    from mirage_mlir.search.seeds import retile

    types = [TensorType(s, dtype) for s in [(64, 512), (512, 128), (512, 128)]]
    paired = VARIANTS["gated_mlp_split_k"](types, col_tile=64, splits=2, k_tile=64, threads=256)
    graph = retile(paired, 1, 1, (4, 1, 1))  # 2 column tiles x 2 splits, combined by 4 blocks of 32 columns
    inputs = random_inputs(types, seed=5)
    inputs = [inputs[0]] + [round_to(x * 0.1, dtype) for x in inputs[1:]]
    monkeypatch.setattr(plan, "SPLIT_K_CLUSTER", False)
    assert not fused_pairs(graph) and len(lower_graph(graph).launches) == 2
    unfused = run_on_cpu(graph, inputs)[0]
    monkeypatch.setattr(plan, "SPLIT_K_CLUSTER", True)
    assert fused_pairs(graph)[0].rank_axis == 0
    program = lower_graph(graph)
    assert len(program.launches) == 1
    text = program.launches[0].kernel.text
    assert "nvvm.cluster_dim = array<i32: 1, 2, 1>" in text and "atomic_rmw" not in text
    assert rel_err(run_on_cpu(graph, inputs)[0], unfused) < 1e-6
    if PTXAS:
        assert run_ptxas(compile_gpu_module(program.gpu_module_text()).ptx).ok
    assert len(lower_graph(graph, chip="sm_80").launches) == 2


@pytest.mark.parametrize("edit,message", [
    ("nvvm.fence.sync_restrict {order = #nvvm.mem_order<release>}", "after the last releasing cluster barrier"),
    ("nvvm.cluster.arrive.relaxed {aligned}\n", "may exit while a peer"),
], ids=["no_release_fence", "no_last_barrier"])
def test_the_emulator_checks_reads_of_a_peers_shared_memory(edit, message, monkeypatch):
    """A read of a peer's partials needs the peer's releasing cluster arrive before it, and a cluster
    barrier after it (else the peer may exit and its shared memory go): the emulator refuses the cluster
    form without the release fence before its first (relaxed) arrive, or without its last barrier."""
    from mirage_mlir.plans import VARIANTS

    monkeypatch.setattr(plan, "SPLIT_K_CLUSTER", True)
    types = [TensorType(s, "f16") for s in [(16, 512), (512, 128), (512, 128)]]
    text = lower_graph(VARIANTS["gated_mlp_split_k"](types, col_tile=32, splits=2, k_tile=64)).text()
    if edit.startswith("nvvm.fence"):
        assert edit in text
        text = text.replace(edit, "", 1)
    else:  # the last barrier: its arrive and the wait after it
        head, _, tail = text.rpartition("nvvm.cluster.arrive.relaxed {aligned}")
        text = head + tail.replace("nvvm.cluster.wait {aligned}", "", 1)
    with ir.Context():
        with pytest.raises(SimtError, match=message):
            run_lowered(ir.Module.parse(text), random_inputs(types, seed=3))


def test_a_split_combine_fused_with_its_own_combine_runs_on_the_launchs_threads():
    """The combine of a split-K plan, itself split across blocks (a candidate the search offers the
    clock): that split is a row kernel, which picks fewer threads than its block_dim; the combine
    fused into its last blocks must run on those threads (it ran on block_dim's and left outputs
    unwritten, NaN, on the H200: run 31)."""
    from mirage_mlir.lowering.fuse_split_k import fused_pairs
    from mirage_mlir.plans import VARIANTS
    from mirage_mlir.search.seeds import split_reduction

    types = [TensorType(s, "f16") for s in [(8, 256), (256, 256), (256, 256)]]
    graph = split_reduction(VARIANTS["gated_mlp_split_k"](types, col_tile=64, splits=4, k_tile=32), 1, 2)
    assert [n.body.grid_dim for n in graph.nodes] == [(4, 4, 1), (4, 2, 1), (4, 1, 1)]
    assert list(fused_pairs(graph)) == [1]
    inputs = random_inputs(types, seed=5)
    inputs = [inputs[0]] + [round_to(x * 0.1, "f16") for x in inputs[1:]]
    assert rel_err(run_on_cpu(graph, inputs)[0], evaluate(graph, inputs)[0]) < 2e-3


@pytest.mark.parametrize("combine_tile,fused", [(64, True), (32, True), (16, False), (128, False)])
def test_a_combine_on_the_partial_tiles_is_fused_other_tiles_not(combine_tile, fused):
    """The last partial block of a tile runs the combine block that reads that tile; combine tiles one
    per split block (32: each block of the tile's cluster runs one, sm_90) too; finer ones (which the
    tail would run one after another) and coarser ones (which need several tiles) keep their own
    launch. Either way the kernels compute the graph."""
    from mirage_mlir import plans
    from mirage_mlir.lowering.fuse_split_k import fused_pairs

    types = [TensorType(s, "f16") for s in ((16, 512), (512, 128), (512, 128))]
    kb = KernelBuilder(types)
    partials = plans._split_k_partials(kb, types, [1, 2], col_tile=64, splits=2, k_tile=64, threads=128)
    bb, (a, b) = plans._split_k_combine([kb.types[p] for p in partials], splits=2, col_tile=combine_tile)
    graph = kb.finish(kb.graph_def(bb.finish([bb.save(bb.op("mul", a, b), (1, -1, -1))]), list(partials)))
    assert not verify(graph) and list(fused_pairs(graph)) == ([0] if fused else [])
    assert len(lower_graph(graph).launches) == (1 if fused else 2)
    inputs = random_inputs(types, seed=3)
    inputs = [inputs[0]] + [round_to(x * 0.1, "f16") for x in inputs[1:]]
    assert rel_err(run_on_cpu(graph, inputs)[0], evaluate(graph, inputs)[0]) < 2e-3


def test_a_combine_on_another_grid_axis_is_fused():
    """The search's own split-K form for gated_mlp: the K split on grid x and the columns on grid y,
    the combine's columns on its grid x."""
    from mirage_mlir.builder import BlockBuilder
    from mirage_mlir.lowering.fuse_split_k import split_k_pair

    types = [TensorType(s, "f16") for s in ((8, 256), (256, 128), (256, 128))]
    kb = KernelBuilder(types)
    bb = BlockBuilder(types, (2, 2, 1), 2, (128, 1, 1))
    x = bb.iterator(0, (1, -1, -1), 1)
    saves = [bb.save(bb.accum("accum_sum", bb.op("matmul", x, bb.iterator(w, (0, 1, -1), 0), dtype="f32")),
                     (0, 1, -1)) for w in (1, 2)]
    partials = kb.graph_def(bb.finish(saves), [0, 1, 2])
    cb = BlockBuilder([kb.types[p] for p in partials], (2, 1, 1), 2, (128, 1, 1))
    a, b = (cb.accum("accum_sum", cb.iterator(i, (1, -1, -1), 0)) for i in range(2))
    out = cb.op("cast", cb.op("mul", cb.op("silu", a), b), dtype="f16")
    graph = kb.finish(kb.graph_def(cb.finish([cb.save(out, (1, -1, -1))]), list(partials)))
    assert not verify(graph)
    pair = split_k_pair(graph, 0)
    assert pair is not None and pair.axis == 0 and pair.combine_axes == (1, -1, -1)
    inputs = random_inputs(types, seed=4)
    inputs = [inputs[0]] + [round_to(v * 0.1, "f16") for v in inputs[1:]]
    assert len(lower_graph(graph).launches) == 1
    assert rel_err(run_on_cpu(graph, inputs)[0], evaluate(graph, inputs)[0]) < 2e-3


def test_emulator_catches_counters_left_dirty(monkeypatch):
    """The runtime zeroes the counters once: a fused kernel that does not reset them is wrong on its
    second launch, and the emulator says so on the first."""
    from mirage_mlir.plans import VARIANTS

    monkeypatch.setattr(plan, "SPLIT_K_CLUSTER", False)  # the counter form (a 2-split plan)
    name, shapes, tiles = VARIANT_CASES[1]
    types = [TensorType(s, "f32") for s in shapes]
    text = lower_graph(VARIANTS[name](types, **tiles)).text()
    reset = next(line for line in text.split("\n") if "memref.store %c0_i32, %counters" in line)
    with ir.Context():
        module = ir.Module.parse(text.replace(reset, ""))
        with pytest.raises(SimtError, match="holds other values when the function returns"):
            run_lowered(module, random_inputs(types, seed=1))

# -- the runtime ----------------------------------------------------------------------------------------

def test_runtime_imports_no_mlir_and_checks_arguments(tmp_path):
    proc, out = compile_dir(tmp_path, os.path.join(INPUTS, "rmsnorm_linear_small_f16.mlir"), "--plan", "published")
    assert proc.returncode == 0, proc.stderr
    if PTXAS:  # the machine code for the chip beside the PTX, for the runtime to load without JIT
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["cubins"] == {"main_kernels.ptx": "main_kernels.cubin"}
        assert (out / "main_kernels.cubin").read_bytes()[:4] == b"\x7fELF"
    script = f"""
import sys
import mirage_mlir.runtime as rt
assert not [m for m in sys.modules if m == "mlir" or m.startswith("mlir.")], "the runtime imported MLIR"
p = rt.load({str(out)!r})
assert "main((4, 64)xf16, (64, 128)xf16) -> (4, 128)xf16" in repr(p), repr(p)
try:
    p(1)
except TypeError as e:
    assert "takes 2 arguments, got 1" in str(e)
else:
    raise AssertionError("no error")
import numpy as np
try:
    p(np.zeros((4, 64), np.float16), np.zeros((64, 128), np.float16))
except ValueError as e:
    assert "argument 0 is not on a CUDA device (DLPack device type 1)" in str(e), str(e)
else:
    raise AssertionError("no error for host arrays")
try:
    p(np.zeros((4, 64), np.float32), np.zeros((64, 128), np.float16))
except ValueError as e:
    assert "argument 0 must be (4, 64) f16, got numpy (4, 64) float32" in str(e), str(e)
else:
    raise AssertionError("no error for a wrong dtype")
try:
    import torch
except ImportError:
    sys.exit(0)
for args, message in [
    ((torch.zeros(4, 64, dtype=torch.float16), torch.zeros(64, 127, dtype=torch.float16)), "argument 1 must be (64, 128) f16"),
    ((torch.zeros(4, 64, dtype=torch.float32), torch.zeros(64, 128, dtype=torch.float16)), "argument 0 must be (4, 64) f16"),
    ((torch.zeros(4, 64, dtype=torch.float16), torch.zeros(64, 128, dtype=torch.float16)), "not on a CUDA device"),
]:
    try:
        p(*args)
    except ValueError as e:
        assert message in str(e), str(e)
    else:
        raise AssertionError("no error for " + message)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_bad_directory():
    from mirage_mlir.runtime import RuntimeError_, load

    with pytest.raises(RuntimeError_, match="cannot read"):
        load("/nonexistent/dir")


def test_node_helper_is_hashable():
    # Graphs built by the predefined lowering stay hashable plain data (the search caches them).
    node = Node.make("exp", [0], [TensorType((2, 2), "f32")])
    graph = predefined_block_graph(node, [TensorType((2, 2), "f32")])
    assert hash(graph) == hash(predefined_block_graph(node, [TensorType((2, 2), "f32")]))


def test_online_softmax_attention_runs_in_the_emulator():
    """The two kernels of plans.stable_attention (running maxima and rescaled sums, tensor-core
    matmuls, a combine over the splits) match the interpreter: kernel 1 as a warp-rows kernel (KV
    tiles of 32 columns) and through shared-memory stages (a 256-column tile: too many registers)."""
    types = [TensorType((2, 64, 16), "f16"), TensorType((2, 16, 128), "f16"), TensorType((2, 128, 16), "f16")]
    graph = VARIANTS["stable_attention"](types, q_tile=32, splits=4, loop=2, combine_rows=16)
    launches = lower_graph(graph).launches
    assert plan.BlockPlan(graph.nodes[0].body).warp_rows == plan.WarpRows(rows=32, wm=1)
    # the combine is a row kernel: its loop over the splits unrolled in registers, no barrier
    assert len(launches) == 2 and plan.BlockPlan(graph.nodes[1].body).rows is not None
    assert "gpu.barrier" not in launches[1].kernel.text
    inputs = random_inputs(types, seed=7)
    assert rel_err(run_on_cpu(graph, inputs)[0], evaluate(graph, inputs)[0]) < 1e-3
    # at full size with 256-column KV tiles, two tensor-core K loops in kernel 1 (Q K and P V): the P V
    # product, with a buffer of its own for the rescaled accumulator, is not computed a second time in
    # the accumulator's stage
    full = [TensorType((2, 256, 64), "f16"), TensorType((2, 64, 4096), "f16"), TensorType((2, 4096, 64), "f16")]
    wide = VARIANTS["stable_attention"](full, splits=4, loop=4, threads=512)
    first = plan.BlockPlan(wide.nodes[0].body)
    assert first.warp_rows is None
    assert lower_graph(wide).launches[0].kernel.text.count("= scf.for %k") == 2
    # the rescaled output [64, 64] takes its running max per row: two exps a row, not two an element
    (rescaled,) = [i for i, buf in first.max_buffers.items() if first.rescales_rows(i)]
    assert first.max_buffers[rescaled].shape == (1, 64, 1) and first.scale_buffers[rescaled].shape == (2, 1, 64, 1)
    long = [TensorType((2, 64, 16), "f16"), TensorType((2, 16, 256), "f16"), TensorType((2, 256, 16), "f16")]
    wide_small = VARIANTS["stable_attention"](long, q_tile=32, splits=1, loop=1, combine_rows=16)
    assert plan.BlockPlan(wide_small.nodes[0].body).warp_rows is None
    inputs = random_inputs(long, seed=7)
    assert rel_err(run_on_cpu(wide_small, inputs)[0], evaluate(wide_small, inputs)[0]) < 1e-3


@pytest.mark.parametrize("dtype,loop,q_tile", [("f16", 4, 32), ("bf16", 2, 64), ("f16", 1, 16)])
def test_warp_rows_attention_matches_the_interpreter(dtype, loop, q_tile):
    """Warp-rows kernels (one and several warps, bf16 through nvvm.mma.sync, a loop of one whose
    accumulators are their inputs) match the interpreter; the kernel's one barrier is the tiles'
    (in the loop: after the ring's copies land, before it refills the stage the last iteration read)."""
    types = [TensorType((2, 64, 16), dtype), TensorType((2, 16, 256), dtype), TensorType((2, 256, 16), dtype)]
    graph = VARIANTS["stable_attention"](types, q_tile=q_tile, splits=2, loop=loop, combine_rows=16)
    body = graph.nodes[0].body
    warp_rows = plan.BlockPlan(body).warp_rows
    assert warp_rows is not None and plan.BlockPlan(body).threads == 32 * q_tile // 16
    kernel = lower_graph(graph, fuse=False).launches[0].kernel.text
    assert kernel.count("gpu.barrier") == 1 and "gpu.shuffle xor" in kernel
    inputs = random_inputs(types, seed=11)
    assert rel_err(run_on_cpu(graph, inputs)[0], evaluate(graph, inputs)[0]) < (1e-3 if dtype == "f16" else 1e-2)


def test_warp_rows_row_sums_over_the_loop_meet_once():
    """gqa as the search writes it: the exp row sums an accumulator with reduce_dim (each thread's
    part carried, the row's four threads meeting after the loop) beside the P V sum; it matches the
    interpreter."""
    types = [TensorType((2, 32, 16), "f16"), TensorType((2, 16, 256), "f16"), TensorType((2, 256, 16), "f16")]
    kb = KernelBuilder(types)
    bb = BlockBuilder(types, (2, 2, 1), 4, (256, 1, 1))
    q, k, v = bb.iterator(0, (0, -1, 1), -1), bb.iterator(1, (0, 2, -1), 2), bb.iterator(2, (0, 1, -1), 1)
    p = bb.op("cast", bb.op("exp", bb.op("matmul", q, k, dtype="f32")), dtype="f16")
    row_sum = bb.accum("accum_sum", p, reduce_dim=2)
    out = bb.accum("accum_sum", bb.op("matmul", p, v, dtype="f32"))
    body = bb.finish([bb.save(row_sum, (0, 2, 1)), bb.save(out, (0, 2, 1))])
    graph = kb.finish(kb.graph_def(body, [0, 1, 2]))
    assert plan.BlockPlan(body).warp_rows == plan.WarpRows(rows=32, wm=1)
    inputs = random_inputs(types, seed=3, scale=0.3)
    for got, want in zip(run_on_cpu(graph, inputs), evaluate(graph, inputs)):
        assert rel_err(got, want) < 1e-3


@pytest.mark.skipif(PTXAS is None, reason="ptxas not installed")
def test_warp_rows_round_bf16_in_pairs():
    """gqa as the search writes it in bf16 (exp and the cast in one thread graph): a thread's column
    pairs are rounded together, cvt.rn.bf16x2.f32 (ALU), never one by one with cvt.rn.bf16.f32 (the
    conversion unit, a quarter of the rate: NOTES.md, runs 71-73); it matches the interpreter."""
    from mirage_mlir.builder import GraphBuilder

    types = [TensorType((2, 32, 16), "bf16"), TensorType((2, 16, 256), "bf16"), TensorType((2, 256, 16), "bf16")]
    tb = GraphBuilder([TensorType((), "f32")])
    exp_cast = tb.finish([tb.op("cast", tb.op("exp", 0), dtype="bf16")])
    kb = KernelBuilder(types)
    bb = BlockBuilder(types, (2, 2, 1), 4, (256, 1, 1))
    q, k, v = bb.iterator(0, (0, -1, 1), -1), bb.iterator(1, (0, 2, -1), 2), bb.iterator(2, (0, 1, -1), 1)
    s = bb.op("matmul", q, k, dtype="f32")
    p = bb.add(Node.make("thread_graph", [s], [TensorType(bb.types[s].shape, "bf16")], exp_cast))[0]
    row_sum = bb.accum("accum_sum", p, reduce_dim=2)
    out = bb.accum("accum_sum", bb.op("matmul", p, v, dtype="f32"))
    body = bb.finish([bb.save(row_sum, (0, 2, 1)), bb.save(out, (0, 2, 1))])
    graph = kb.finish(kb.graph_def(body, [0, 1, 2]))
    assert plan.BlockPlan(body).warp_rows is not None
    ptx = compile_gpu_module(lower_graph(graph).gpu_module_text()).ptx
    assert b"cvt.rn.bf16x2.f32" in ptx and b"cvt.rn.bf16.f32" not in ptx
    inputs = random_inputs(types, seed=3, scale=0.3)
    for got, want in zip(run_on_cpu(graph, inputs), evaluate(graph, inputs)):
        assert rel_err(got, want) < 1e-2


def test_many_short_rows_take_a_few_lanes_each():
    """64 rows of 32 on 128 threads: two lanes a row (one shuffle step), a warp finishing 16 rows at
    once, not a warp per row one after another; sum and max match the interpreter."""
    x_type = TensorType((128, 32), "f32")
    kb = KernelBuilder([x_type])
    bb = BlockBuilder([x_type], (2, 1, 1), 1, (128, 1, 1))
    x = bb.iterator(0, (0, -1, -1), -1)
    total = bb.accum("accum_sum", bb.op("add", bb.op("reduce_sum", x, dim=1), bb.op("reduce_max", x, dim=1)))
    body = bb.finish([bb.save(total, (0, -1, -1))])
    graph = kb.finish(kb.graph_def(body, [0]))
    assert plan.BlockPlan(body).lanes_per_row(64, 32) == 2
    text = lower_graph(graph).gpu_module_text()
    assert "gpu.shuffle xor" in text and "%c16_i32" not in text  # one step (offset 1), not five
    inputs = random_inputs([x_type], seed=8)
    assert rel_err(run_on_cpu(graph, inputs)[0], evaluate(graph, inputs)[0]) < 1e-6


def test_a_fused_combine_runs_in_registers_on_the_threads_it_needs():
    """rmsnorm_linear's split-K combine, run by the last block of each tile (fuse_split_k): a row
    kernel on the launch's threads, those beyond its chunks idle, its loop over the splits unrolled;
    the fused kernel matches the interpreter."""
    types = [TensorType((4, 512), "f16"), TensorType((512, 256), "f16")]
    graph = VARIANTS["rmsnorm_linear_split_k"](types, col_tile=64, splits=4, k_tile=64)
    combine = plan.BlockPlan(graph.nodes[1].body, fixed_threads=True)
    assert combine.rows is not None and combine.rows.threads < combine.threads == 128
    (launch,) = lower_graph(graph).launches
    tail = launch.kernel.text.split('llvm.fence syncscope("device") acquire')[1]
    assert "gpu.barrier" not in tail  # the combine after the last block's acquire: no barrier at all
    inputs = random_inputs(types, seed=12)
    inputs = [inputs[0], round_to(inputs[1] * 0.1, "f16")]
    assert rel_err(run_on_cpu(graph, inputs)[0], evaluate(graph, inputs)[0]) < 2e-3


def test_later_kernels_wait_for_the_kernel_before():
    """Programmatic dependent launch (blockgen.GridDependency): the down projection copies its weight
    W2 before its griddepcontrol.wait and the gated product after it; the emulator runs it so, and a
    kernel without its wait touches what the kernel before it writes too early."""
    types = [TensorType(s, "f16") for s in [(8, 256), (256, 512), (256, 512), (512, 256)]]
    graph = VARIANTS["swiglu_down"](types, col_tile=64, k_tile=64, down_col_tile=64, splits=4, down_k_tile=32)
    program = lower_graph(graph)
    first, second = (launch.kernel.text for launch in program.launches)
    assert [launch.overlap for launch in program.launches] == [False, True]
    assert "griddepcontrol  wait" not in first and "launch_dependents" in first
    before_wait = second[:second.index("nvvm.griddepcontrol wait")]
    assert "device_async_copy %arg1" in before_wait and "device_async_copy %arg0" not in before_wait
    inputs = random_inputs(types, seed=3)
    with ir.Context():
        assert rel_err(run_lowered(ir.Module.parse(program.text()), inputs)[0], evaluate(graph, inputs)[0]) < 2e-3
        early = ir.Module.parse(program.text().replace("nvvm.griddepcontrol wait\n", "", 1))
        with pytest.raises(SimtError, match="before its griddepcontrol.wait"):
            run_lowered(early, inputs)


def test_constant_inputs_let_the_first_kernel_overlap_the_work_before():
    """With its weights declared constant, the program's first kernel also waits (it overlaps
    whatever runs before the call, copying only W1 and W3 before its wait, X after), and the last
    kernel lets the next call's first launch; the emulator gates X for the first kernel, so a first
    kernel without its wait reads X too early."""
    types = [TensorType(s, "f16") for s in [(8, 256), (256, 512), (256, 512), (512, 256)]]
    graph = VARIANTS["swiglu_down"](types, col_tile=64, k_tile=64, down_col_tile=64, splits=4, down_k_tile=32)
    program = lower_graph(graph, constant_inputs=frozenset({1, 2, 3}), sms=1)  # its 32 blocks fill one SM
    first, second = (launch.kernel.text for launch in program.launches)
    assert [launch.overlap for launch in program.launches] == [True, True]
    before_wait = first[:first.index("nvvm.griddepcontrol wait")]
    assert "device_async_copy %arg1" in before_wait and "device_async_copy %arg0" not in before_wait
    assert "launch_dependents" in first and "launch_dependents" in second
    text = program.text()
    assert "mirage.constant_inputs = array<i64: 1, 2, 3>" in text
    inputs = random_inputs(types, seed=3)
    with ir.Context():
        assert rel_err(run_lowered(ir.Module.parse(text), inputs)[0], evaluate(graph, inputs)[0]) < 2e-3
        early = ir.Module.parse(text.replace("nvvm.griddepcontrol wait\n", "", 1))
        with pytest.raises(SimtError, match="before its griddepcontrol.wait"):
            run_lowered(early, inputs)
    with pytest.raises(LoweringError, match="constant inputs"):
        lower_graph(graph, constant_inputs=frozenset({4}))


def test_a_row_kernel_loads_its_weights_before_the_wait():
    """ntrans with alpha declared constant: its row kernel loads alpha's chunks into registers before
    its grid wait, prefetches H's and X's lines into L2 and loads them after it. It lets the next
    kernel launch right after its wait, or at entry where three of its grids fit the SMs at once
    (GridDependency.trigger_at_entry: 4 blocks, 132 SMs, not 8); the emulator runs it so, and refuses
    it with H's loads moved before the wait."""
    types = [TensorType(s, "f16") for s in MEDIUM["ntrans"]]
    graph = PLANS["ntrans"](types)
    (launch,) = lower_graph(graph, constant_inputs=frozenset({2}), sms=8).launches
    text = launch.kernel.text
    before_wait = text[:text.index("nvvm.griddepcontrol wait")]
    assert 3 * before_wait.count("llvm.load volatile") == text.count("llvm.load volatile")  # alpha's third
    assert "extract_aligned_pointer_as_index %arg2" in before_wait
    assert before_wait.count("nvvm.prefetch level = L2") == 2  # H and X, not alpha
    assert text.index("launch_dependents") > text.index("nvvm.griddepcontrol wait")
    (small,) = lower_graph(graph, constant_inputs=frozenset({2})).launches
    assert small.kernel.text.count("launch_dependents") == 1
    assert small.kernel.text.index("launch_dependents") < small.kernel.text.index("llvm.load volatile")
    (waits_first,) = lower_graph(graph).launches  # nothing constant: the kernel waits before any load
    assert "llvm.load" not in waits_first.kernel.text[:waits_first.kernel.text.index("nvvm.griddepcontrol wait")]
    program = lower_graph(graph, constant_inputs=frozenset({2}))
    inputs = random_inputs(types, seed=5)
    inputs[2] = round_to(np.random.default_rng(6).uniform(0, 1, types[2].shape).astype(np.float32), "f16")
    with ir.Context():
        out = run_lowered(ir.Module.parse(program.text()), inputs)[0]
        assert rel_err(out, evaluate(graph, inputs)[0]) < 2e-3
        with pytest.raises(SimtError, match="before its griddepcontrol.wait"):
            run_lowered(ir.Module.parse(lower_graph(graph, constant_inputs=frozenset({0, 2})).text().replace(
                "constant_inputs = array<i64: 0, 2>", "constant_inputs = array<i64: 2>")), inputs)


def test_inputs_the_work_before_may_write_are_prefetched_into_l2_before_the_wait(monkeypatch):
    """A waiting kernel prefetches into L2 the lines of its first tiles of every input the work
    before may write (emit_copies.l2_prefetch), one prefetch per 128-byte line, before its wait, and
    none of its constant inputs (copied early instead); the emulator runs them (they read nothing a
    thread sees, so they may precede the wait) and checks each address lies in its buffer."""
    # lora's one kernel: X [16, 256], 64 lines of 128 bytes; its weights constant
    graph = VARIANTS["lora_fused"](benchmark_inputs("lora", 1, "f16"), col_tile=64, threads=128)
    (launch,) = lower_graph(graph, constant_inputs=frozenset({1, 2, 3})).launches
    before_wait = launch.kernel.text[:launch.kernel.text.index("nvvm.griddepcontrol wait")]
    assert "extract_aligned_pointer_as_index %arg0" in before_wait
    assert not any(f"extract_aligned_pointer_as_index %arg{k}" in launch.kernel.text for k in (1, 2, 3))
    assert before_wait.count("nvvm.prefetch level = L2") == 1  # in a loop over X's 64 lines
    assert launch.kernel.text.count("nvvm.prefetch") == 1
    types = [TensorType(s, "f16") for s in MEDIUM["ntrans"]]
    graph = PLANS["ntrans"](types)
    inputs = random_inputs(types, seed=4)
    assert rel_err(run_on_cpu(graph, inputs)[0], evaluate(graph, inputs)[0]) < 2e-3
    original = blockgen.BlockKernelGen.copy_source

    def one_row_further(self, geo, where):
        src, valid = original(self, geo, where)
        return [self.em.add(src[0], 1)] + src[1:], valid

    monkeypatch.setattr(blockgen.BlockKernelGen, "copy_source", one_row_further)
    with pytest.raises(SimtError, match="prefetch of an address outside"):
        run_on_cpu(graph, inputs)


def test_a_loop_of_ones_early_copies_go_out_in_waves():
    """lora's kernel copies its weights before the grid wait in the waves EARLY_COPY_WAVES sizes, each
    issued after the one before has landed (21 chunks a thread: 7, then 14), the last left in flight
    for the wait after X's copies, so the next call's weights, copied beside it, do not all queue
    ahead of this call's X (H100 runs 229-230, 252-254); the emulator runs it to the interpreter's
    result. A grid
    of 128 blocks (no room for the next call's beside it) and a kernel with a for-loop (its early
    copies are its ring's first stages) keep theirs in one group."""
    from mirage_mlir.lowering.blockgen import EARLY_COPY_WAVES

    types = benchmark_inputs("lora", 1, "f16")
    graph = VARIANTS["lora_fused"](types, col_tile=64, threads=128)
    program = lower_graph(graph, constant_inputs=frozenset({1, 2, 3}))
    (launch,) = program.launches
    before_wait = launch.kernel.text[:launch.kernel.text.index("nvvm.griddepcontrol wait")]
    waves = [wave.count("nvgpu.device_async_copy") for wave in before_wait.split("nvgpu.device_async_wait")]
    assert EARLY_COPY_WAVES == (1, 2) and waves == [7, 14]
    assert before_wait.count("device_async_create_group") == 2  # the last wave committed, not waited for
    inputs = random_inputs(types, seed=5)
    with ir.Context():
        assert rel_err(run_lowered(ir.Module.parse(program.text()), inputs)[0], evaluate(graph, inputs)[0]) < 2e-3
    # 128 blocks: the next call's grid starts only as this one exits (no room beside it), one wave
    (wide,) = lower_graph(VARIANTS["lora_fused"](types, col_tile=32, threads=256),
                          constant_inputs=frozenset({1, 2, 3})).launches
    assert "device_async_wait" not in wide.kernel.text[:wide.kernel.text.index("nvvm.griddepcontrol wait")]
    split = VARIANTS["rmsnorm_linear_split_k"](benchmark_inputs("rmsnorm_linear", 8, "f16"), col_tile=64, splits=4)
    (ring,) = lower_graph(split, constant_inputs=frozenset({1})).launches
    ring_before_wait = ring.kernel.text[:ring.kernel.text.index("nvvm.griddepcontrol wait")]
    assert "nvgpu.device_async_copy %arg1" in ring_before_wait and "device_async_wait" not in ring_before_wait


def test_a_loop_of_ones_weight_fragments_load_while_x_is_in_flight():
    """lora's kernel loads the B fragments of its three matmuls (W's, A's and B's tiles, copied before
    the grid wait) between X's copies and X's wait: the weights' groups waited for (numGroups = 1), a
    barrier, every transposed ldmatrix, then X's wait; after it only X's (and X A's) fragments load
    (H100 run 240: 1.82-1.86 -> 1.66-1.73 us). The emulator runs it to the interpreter's result. A
    kernel without early copies (no grid dependency) loads its fragments where it uses them."""
    types = benchmark_inputs("lora", 1, "f16")
    graph = VARIANTS["lora_fused"](types, col_tile=64, threads=128)
    (launch,) = lower_graph(graph, constant_inputs=frozenset({1, 2, 3})).launches
    text = launch.kernel.text
    after_wait = text[text.index("nvvm.griddepcontrol wait"):]
    in_flight = after_wait[after_wait.index("numGroups = 1"):after_wait.index("numGroups = 0")]
    rest = after_wait[after_wait.index("numGroups = 0"):]
    assert "gpu.barrier" in in_flight
    assert in_flight.count("transpose = true") == 8 + 16 + 1  # X A's 8 K steps, X W's 16, (X A) B's 1
    assert "transpose = true" not in rest and rest.count("nvgpu.ldmatrix") == 8 + 16 + 1  # X's, X A's
    inputs = random_inputs(types, seed=7)
    with ir.Context():
        out = run_lowered(ir.Module.parse(lower_graph(graph, constant_inputs=frozenset({1, 2, 3})).text()), inputs)
    assert rel_err(out[0], evaluate(graph, inputs)[0]) < 2e-3
    (plain,) = lower_graph(graph).launches
    assert "numGroups = 1" not in plain.kernel.text
    # each thread's two adjacent outputs of an mma tile (c0, c1) leave in one 4-byte store
    assert len(re.findall(r"vector\.store %\w+, %out0\[.*\] \{alignment = 4\} : memref<16x4096xf16>, vector<2xf16>",
                          text)) == 4 and not re.search(r"memref\.store [^\n]*%out0", text)


def test_a_first_kernel_overlaps_the_call_before_unless_a_later_kernel_copies_early():
    """A call's first kernel overlaps the call before, launched spread over the SMs (so that its early
    blocks cannot crowd onto the few SMs the call before leaves room on: Mirage's 96-block plan 18.2 ->
    16.8 us on the H200, session 24), copying only constant inputs before its wait, or waiting first.
    Where a later kernel copies early (lora's published plan: a one-block kernel, then one copying
    W), the first overlaps only a grid that fills half of the SMs' block slots, as before: that copy,
    let launch by the first kernel's start, would run beside the call before (H200 run 96: 2.4-3.6x
    slower so; run 138: 12%)."""
    weights = frozenset({1})
    split = VARIANTS["rmsnorm_linear_split_k"](benchmark_inputs("rmsnorm_linear", 8, "f16"), col_tile=64, splits=4)
    (launch,) = lower_graph(split, constant_inputs=weights).launches
    assert launch.overlap and launch.shared_bytes == launch.kernel.shared_bytes  # three an SM, as its grid needs
    published = PLANS["rmsnorm_linear"](benchmark_inputs("rmsnorm_linear", 8, "f16"))
    program = lower_graph(published, constant_inputs=weights)
    (launch,) = program.launches
    assert launch.overlap and plan.resident_blocks(launch.kernel.shared_bytes, 128) == 5
    assert plan.resident_blocks(launch.shared_bytes, 128) == 1
    assert f"%c{launch.shared_bytes}_i32 = arith.constant {launch.shared_bytes} : i32" in program.text()
    before_wait = launch.kernel.text.split("nvvm.griddepcontrol wait")[0]
    assert "%arg1[" in before_wait and "%arg0[" not in before_wait  # W's stages copied early, X's not
    (plain,) = lower_graph(published).launches  # no weights: it waits before it reads anything
    assert plain.overlap and plain.shared_bytes == launch.shared_bytes
    assert not re.search(r"%arg\d\[", plain.kernel.text.split("nvvm.griddepcontrol wait")[0])
    lora = lower_graph(PLANS["lora"](benchmark_inputs("lora", 1, "f16")), constant_inputs=frozenset({1, 2, 3}))
    assert [launch.overlap for launch in lora.launches] == [False, True]  # its second still overlaps its first
    assert [launch.shared_bytes for launch in lora.launches] == [None, None]


def test_ptxas_is_told_where_an_sm_holds_one_block_of_a_kernel():
    """A kernel of 512 threads or more whose launch holds one block an SM (here LayerNorm's one-split
    plan at 512 threads, 128 blocks launched spread) is marked nvvm.minctasm = 1, so ptxas may give it
    up to 128 registers a thread: unmarked it held it to 64 and spilled. So is a kernel without a
    cp.async ring whose grid fits the SMs (lora's loop of one: ptxas then keeps its copies' loads in
    registers, 110 of them, and issues them at once; stable attention's combine of its KV splits).
    Kernels with a ring, and kernels of which an SM holds several, are not."""
    inputs = [TensorType((16, 4096), "f16"), TensorType((4096, 4096), "f16")]
    one = lower_graph(VARIANTS["layernorm_linear_folded"](inputs, col_tile=32, splits=1, k_tile=256, threads=512))
    (launch,) = one.launches
    assert plan.resident_blocks(launch.shared_bytes, 512) == 1
    assert "kernel attributes {nvvm.minctasm = 1 : i32," in launch.kernel.text
    lora = lower_graph(VARIANTS["lora_fused"](benchmark_inputs("lora", 1, "f16"), col_tile=64, threads=128),
                       constant_inputs=frozenset({1, 2, 3}))
    (launch,) = lora.launches  # a loop of one on 64 blocks: marked too
    assert math.prod(launch.kernel.grid) <= plan.SMS and "kernel attributes {nvvm.minctasm = 1 : i32," in launch.kernel.text
    attention = lower_graph(VARIANTS["stable_attention"](benchmark_inputs("gqa", 1, "f16")))
    ring, combine = attention.launches  # the ring's kernel fits the SMs too, but is not marked
    assert math.prod(ring.kernel.grid) <= plan.SMS and "minctasm" not in ring.kernel.text
    assert "kernel attributes {nvvm.minctasm = 1 : i32," in combine.kernel.text
    several = lower_graph(PLANS["rmsnorm_linear"](benchmark_inputs("rmsnorm_linear", 1, "f16")), sms=1)
    assert all(plan.resident_blocks(launch.shared_bytes or launch.kernel.shared_bytes, launch.kernel.block[0]) > 1
               and "minctasm" not in launch.kernel.text for launch in several.launches)
    if PTXAS is not None:
        result = run_ptxas(compile_gpu_module(one.gpu_module_text()).ptx, "sm_90")
        assert result.ok and b".minnctapersm 1" in compile_gpu_module(one.gpu_module_text()).ptx
        assert result.spills == {one.launches[0].kernel.name: 0} and result.registers[one.launches[0].kernel.name] > 64, result.log
        # lora's copies before its wait issued in one batch, their loads held in registers (40 unmarked)
        result = run_ptxas(compile_gpu_module(lora.gpu_module_text()).ptx, "sm_90")
        assert result.ok and result.registers[lora.launches[0].kernel.name] > 100, result.log


def test_a_later_kernel_with_nothing_to_copy_waits_first_launched_spread():
    """Attention's combine reads only the first kernel's partials: it overlaps that kernel all the
    same (its launch and block placement under the first kernel's tail), launched spread, and both
    kernels overlap the call before (H200 run 138: gqa, qknorm_gqa and stable attention 5-18% faster)."""
    program = lower_graph(PLANS["gqa"](benchmark_inputs("gqa", 1, "f16")))
    assert [launch.overlap for launch in program.launches] == [True, True]
    first, combine = program.launches
    assert plan.resident_blocks(combine.shared_bytes, combine.kernel.block[0]) == -(-math.prod(combine.kernel.grid) // plan.SMS)
    # the next call's first kernel launches under it, but only once it has waited (triggered at its
    # entry, a kernel copying early after it would start beside the kernel before: run 139)
    assert combine.kernel.text.index("griddepcontrol wait") < combine.kernel.text.index("launch_dependents")


def test_a_loop_of_one_copies_its_constant_tiles_before_it_waits():
    """lora's one kernel (a loop of one) copies its loop-invariant tiles of the constant W, A and B
    (cp.async, straight into shared memory) before its griddepcontrol.wait and leaves them in flight,
    X's after it; it waits for the weights' group, then (their fragments loaded meanwhile) X's."""
    types = [TensorType(s, "f16") for s in MEDIUM["lora"]]
    graph = VARIANTS["lora_fused"](types)
    program = lower_graph(graph, constant_inputs=frozenset({1, 2, 3}), sms=1)  # its 16 blocks fill one SM
    (launch,) = program.launches
    before_wait, after_wait = launch.kernel.text.split("nvvm.griddepcontrol wait")
    assert launch.overlap and "launch_dependents" in before_wait
    assert all(f"device_async_copy %arg{k}" in before_wait for k in (1, 2, 3))
    assert "device_async_copy %arg0" not in before_wait and "device_async_wait" not in before_wait
    assert "vector.load" not in launch.kernel.text  # no copy through registers
    x_copies, after_copies = after_wait.rsplit("device_async_copy %arg0", 1)
    assert "device_async_wait" not in x_copies
    assert re.search(r"device_async_create_group .*\n.*device_async_wait .*numGroups = 1", after_copies)
    assert "numGroups = 0" in after_copies.split("numGroups = 1", 1)[1]
    inputs = random_inputs(types, seed=4, scale=0.3)
    with ir.Context():
        assert rel_err(run_lowered(ir.Module.parse(program.text()), inputs)[0], evaluate(graph, inputs)[0]) < 2e-3


@pytest.mark.parametrize("rows,dtype,threads", [(16, "f16", 256), (8, "bf16", 256), (64, "f16", 256), (16, "f16", 512)])
def test_loop_carried_matmuls_on_warpgroup_mma_compute_the_mu_graph(monkeypatch, rows, dtype, threads):
    """gated_mlp's split-K plan with K tiles of 64 (X's and the weights' tiles 128-byte rows, swizzled
    as wgmma's 128-byte swizzle is): on warpgroup MMA (plan.WGMMA), one warpgroup a weight (two at 512
    threads: K split between them), the weights' 64 columns wgmma's M and X's rows its N. Executed
    thread by thread (the emulator reads the operands through the descriptors) it computes the
    mu-graph; ptxas assembles it for sm_90a and does not serialize the wgmma (C7518) or wait for them
    where the code does not (C7517)."""
    monkeypatch.setattr(plan, "WGMMA", True)
    types = [TensorType((rows, 256), dtype), TensorType((256, 128), dtype), TensorType((256, 128), dtype)]
    graph = VARIANTS["gated_mlp_split_k"](types, col_tile=64, splits=2, k_tile=64, threads=threads)
    body = plan.BlockPlan(graph.nodes[0].body)
    assert body.wgmma and all(info.wgmma and info.units == 2 for info in body.reg_accs.values())
    assert {info.kslices for info in body.reg_accs.values()} == {threads // 256}
    inputs = random_inputs(types, seed=11)
    inputs = [inputs[0]] + [round_to(x * 0.1, dtype) for x in inputs[1:]]
    assert rel_err(run_on_cpu(graph, inputs)[0], evaluate(graph, inputs)[0]) < 2e-3
    text = lower_graph(graph).gpu_module_text()
    assert text.count("nvvm.wgmma.mma_async") == 2 * 4 // (threads // 256)  # two weights' chains of K steps
    assert "wgmma" not in lower_graph(graph, chip="sm_80").gpu_module_text()  # mma.sync where wgmma is not
    if PTXAS is not None:
        binary = compile_gpu_module(text)
        assert b".target sm_90a" in binary.ptx and b".align 1024 .b8 __dynamic_shmem" in binary.ptx
        result = run_ptxas(binary.ptx, "sm_90")
        assert result.ok and "C7518" not in result.log and "C7517" not in result.log, result.log


@pytest.mark.parametrize("rows,dtype,threads,col_tile,k_tile", [
    (64, "f16", 128, 128, 64), (64, "f16", 256, 128, 64), (8, "bf16", 256, 128, 64), (16, "f16", 256, 64, 128),
    (64, "bf16", 256, 128, 128)])
def test_tiles_wider_than_a_swizzle_line_run_on_wgmma_in_line_blocks(monkeypatch, rows, dtype, threads, col_tile, k_tile):
    """gated_mlp's split-K plan with 128-column weight tiles (X re-read half as often as at 64) or K
    tiles of 128: a ring slot wider than wgmma's 128-byte swizzle line is stored as blocks of such
    lines (plan.Buffer.atoms): the weight tile as [K, 64] blocks, each read by its own wgmma chain,
    X's tile as [rows, 64] blocks, a K step past 64 reading the next one. At 128 threads the one
    warpgroup computes both weights. The emulator computes the mu-graph; ptxas neither spills nor
    serializes the wgmma."""
    monkeypatch.setattr(plan, "WGMMA", True)
    types = [TensorType((rows, 512), dtype), TensorType((512, 256), dtype), TensorType((512, 256), dtype)]
    graph = VARIANTS["gated_mlp_split_k"](types, col_tile=col_tile, splits=2, k_tile=k_tile, threads=threads)
    body = plan.BlockPlan(graph.nodes[0].body)
    assert {(b.shape, b.atoms) for i, b in body.buffers.items() if i in body.ring} == {
        ((rows, k_tile), k_tile // 64), ((k_tile, col_tile), col_tile // 64)}
    assert body.wgmma and all(info.wm == col_tile // 64 and info.units == 2 for info in body.reg_accs.values())
    inputs = random_inputs(types, seed=12)
    inputs = [inputs[0]] + [round_to(x * 0.1, dtype) for x in inputs[1:]]
    assert rel_err(run_on_cpu(graph, inputs)[0], evaluate(graph, inputs)[0]) < 2e-3
    text = lower_graph(graph).gpu_module_text()
    # two weights' chains: a block's K steps each
    assert text.count("nvvm.wgmma.mma_async") == 2 * (col_tile // 64) * (k_tile // 16) // (threads // 256 or 1)
    if PTXAS is not None:
        result = run_ptxas(compile_gpu_module(text).ptx, "sm_90")
        assert result.ok and " 0 bytes spill stores" in result.log, result.log
        assert not any(f"C75{n}" in result.log for n in (12, 17, 18)), result.log


def test_tiles_stay_in_rows_where_wgmma_does_not_read_them(monkeypatch):
    """At 512 threads the two weights' 128-column accumulators would not fit a thread's 128 registers
    beside the rest (WGMMA_HEADROOM): the plan keeps mma.sync, and its tiles their rows."""
    monkeypatch.setattr(plan, "WGMMA", True)
    types = [TensorType((64, 256), "f16"), TensorType((256, 256), "f16"), TensorType((256, 256), "f16")]
    graph = VARIANTS["gated_mlp_split_k"](types, col_tile=128, splits=2, k_tile=64, threads=512)
    body = plan.BlockPlan(graph.nodes[0].body)
    assert not body.wgmma and body.reg_accs and all(b.atoms == 1 for b in body.buffers.values())


def test_buffer_in_line_blocks_places_each_block_after_the_other():
    """Buffer.atoms: [16, 128] f16 in two blocks of 64 values: (r, c) at line 16 (c / 64) + r, its
    16-byte chunk permuted by r % 8 as every swizzled buffer's."""
    from mirage_mlir.lowering.emitter import Emitter
    buf = plan.Buffer("%t", (16, 128), "f16", 0, swizzle=True, atoms=2)
    assert buf.storage_shape == (32, 64) and buf.nbytes == 16 * 128 * 2
    em = Emitter()
    for r, c in [(0, 0), (3, 70), (15, 127), (9, 8)]:
        line, column = buf.place(em, [r, c])
        assert (line, column) == (16 * (c // 64) + r, (c % 64) ^ (8 * (r % 8)))


def test_warpgroup_mma_needs_tiles_its_swizzle_reads(monkeypatch):
    """K tiles of 32 (X's rows 64 bytes: half a line of the 128-byte swizzle) keep the mma.sync path."""
    monkeypatch.setattr(plan, "WGMMA", True)
    types = [TensorType((16, 512), "f16"), TensorType((512, 128), "f16"), TensorType((512, 128), "f16")]
    body = plan.BlockPlan(VARIANTS["gated_mlp_split_k"](types, col_tile=64, splits=2, k_tile=32, threads=256).nodes[0].body)
    assert body.reg_accs and not body.wgmma
