"""The GPU code generator in pieces: the planner's decisions (mirage_mlir.lowering.plan) and each
emitter's text, on small block graphs, without lowering whole programs."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import numpy as np
import pytest

from mirage_mlir import plans
from mirage_mlir.builder import BlockBuilder
from mirage_mlir.lowering import plan
from mirage_mlir.lowering.blockgen import BlockKernelGen
from mirage_mlir.lowering.emitter import Emitter
from mirage_mlir.mugraph import TensorType
from mirage_mlir.plans import benchmark_inputs

NO_MAP = (-1, -1, -1)


def matmul_body(m: int, k: int, n: int, dtype: str, threads: int = 128):
    """One block: x (m x k) @ w (k x n), saved."""
    inputs = [TensorType((m, k), dtype), TensorType((k, n), dtype)]
    bb = BlockBuilder(inputs, (1, 1, 1), 1, (threads, 1, 1))
    x, w = bb.iterator(0, NO_MAP, -1), bb.iterator(1, NO_MAP, -1)
    return bb.finish([bb.save(bb.op("matmul", x, w, dtype=dtype), NO_MAP)])


def row_body(shape: tuple[int, int], dtype: str, op: str, **attrs):
    """One block: `op` of a whole input tile, saved."""
    bb = BlockBuilder([TensorType(shape, dtype)], (1, 1, 1), 1)
    x = bb.iterator(0, NO_MAP, -1)
    return bb.finish([bb.save(bb.op(op, x, **attrs), NO_MAP)])


def rmsnorm_linear_body(inputs, **tiles):
    return plans.rmsnorm_linear(inputs, **tiles).nodes[0].body


def started(body, **options) -> BlockKernelGen:
    """A generator that has emitted its ids and views: ready for any one of the shared-memory
    emitters (with row kernels off: a row kernel has none of their stages)."""
    saved, plan.MAX_ROW_SLOTS = plan.MAX_ROW_SLOTS, 0
    try:
        gen = BlockKernelGen(body, "k", **options)
    finally:
        plan.MAX_ROW_SLOTS = saved
    gen.emit_entry()
    return gen


def emitted(gen: BlockKernelGen, emit) -> str:
    """The lines `emit()` adds to the kernel body."""
    start = len(gen.em.lines)
    emit()
    return "\n".join(gen.em.lines[start:])


def node_index(body, op: str) -> int:
    return next(i for i, node in enumerate(body.nodes) if node.op == op)


# -- the planner -------------------------------------------------------------------------------------

def lora_body(threads: int = 128):
    return plans.lora_fused(benchmark_inputs("lora", 1, "f16"), threads=threads).nodes[0].body


def test_accumulators_over_a_loop_of_one_are_their_inputs():
    """lora's one-kernel form: its four accum_sums over the loop of one are dropped, so its matmuls
    read the iterators' tiles (swizzled for ldmatrix) instead of copies of them; (X A) B's chain has
    no row reduction, so the block's warps share the matmuls (no warp-rows layout)."""
    body = lora_body()
    p = plan.BlockPlan(body)
    assert p.origin == tuple(i for i, node in enumerate(body.nodes) if node.op != "accum_sum")
    assert not any(node.op == "accum_sum" for node in p.g.nodes) and p.warp_rows is None
    assert all(p.buffers[i].swizzle for i, kind in enumerate(p.kind) if kind == "iter")
    text = BlockKernelGen(body, "k").generate(list(body.inputs), [body.value_types[v] for v in body.outputs]).text
    assert "memref.load %tile" not in text  # no element copies between shared buffers
    looped = plans.lora_fused(benchmark_inputs("lora", 1, "f16")).nodes[0].body
    assert plan.without_identity_accumulators(replace(looped, forloop_range=2))[0] == replace(looped, forloop_range=2)


def test_a_tile_that_does_not_split_over_the_threads_joins_its_groups_round_trip():
    """B's strip (32 chunks, 128 threads) is loaded with the other tiles, under a guard: the
    prologue waits one memory latency, not two."""
    p = plan.BlockPlan(lora_body())
    b = next(plan_i for plan_i, node in enumerate(p.g.nodes) if node.op == "input_iterator" and node.inputs == (3,))
    assert p.copy_geometry(b).n_chunks < p.threads and p.unrolled_copy(p.copy_geometry(b))
    assert p.figures().pre_round_trips == 1


# a slice's K steps in chains (a loop of one: plan.LOOP_OF_ONE_CHAINS), their sums added after it:
# 8 steps -> 4 chains of 2 + 2 additions, 4 -> 2 chains of 2 + 1, 2 -> one chain
@pytest.mark.parametrize("threads,kslices,chain", [(128, 2, 4 + 4 + 1), (256, 4, 3 + 3 + 1), (512, 8, 2 + 2 + 1)])
def test_tensor_core_stages_split_k_across_idle_warps(threads, kslices, chain):
    """lora's stages hold two 16 x 8 mma tiles: the block's other warps each take a slice of X A's
    and X W's K (256), not of (X A) B's (16), and the slices meet in `k_slices`."""
    p = plan.BlockPlan(lora_body(threads))
    splits = [p.stage_kslices(root, matmuls) for root, matmuls in p.matmul_stages()]
    assert [(k, len(split)) for k, split in splits] == [(kslices, 1), (kslices, 1)]
    assert p.mma_chain() == chain and p.k_slices.shape == (p.warps, 4, 32)
    assert plan.BlockPlan(matmul_body(64, 256, 64, "f16")).k_slices is None  # 32 tiles: every warp busy


def test_loop_tiles_go_through_a_ring_as_deep_as_two_blocks_per_sm_allow():
    body = rmsnorm_linear_body(benchmark_inputs("rmsnorm_linear", 8, "f16"), col_tile=32, k_tile=512)
    p = plan.BlockPlan(body)  # 192 blocks, more than SMs: two an SM (one wave) over a deeper ring
    loop_iterators = [i for i, k in enumerate(p.kind) if k == "iter" and p.phase[i] == "loop"]
    assert p.ring == loop_iterators and len(loop_iterators) == 2
    assert p.stages == 2 < plan.MAX_STAGES
    assert p.shared_bytes == p._allocate(2)[-1]
    assert plan.resident_blocks(p.shared_bytes, p.threads) == 2 > plan.resident_blocks(p._allocate(3)[-1], p.threads)
    assert all(p.buffers[i].stages == 2 for i in p.ring)


def test_a_grid_of_one_block_an_sm_takes_the_deepest_ring():
    """96 blocks never share an SM, so the ring is not kept shallow for a second block's sake."""
    p = plan.BlockPlan(rmsnorm_linear_body(benchmark_inputs("rmsnorm_linear", 8, "f16"), col_tile=64, k_tile=256))
    assert math.prod(p.g.grid_dim) == 96 < plan.SMS
    assert p.stages == plan.MAX_STAGES and p.shared_bytes <= plan.MAX_SHARED_BYTES
    assert plan.resident_blocks(p.shared_bytes, p.threads) == 1 < plan.resident_blocks(p._allocate(2)[-1], p.threads)


@pytest.mark.parametrize("shared, threads, blocks, per_sm", [
    (53520, 128, 256, 2),  # LayerNorm + Linear's 4-stage plan: four fit an SM, its grid needs two
    (34320, 128, 96, 1),  # Mirage's rmsnorm_linear plan: six fit, one needed
    (100, 128, 1000, 8),  # eight an SM is the grid's share; its size and threads would allow sixteen
])
def test_a_spread_launch_holds_only_the_blocks_its_grid_needs_of_an_sm(shared, threads, blocks, per_sm):
    spread = plan.spread_shared_bytes(shared, threads, blocks)
    assert plan.resident_blocks(spread, threads) == per_sm == -(-blocks // plan.SMS)
    assert spread % plan.SHARED_ALIGN == 0 and shared < spread <= plan.MAX_SHARED_BYTES


def test_a_grid_that_fills_its_sms_launches_as_it_is():
    assert plan.spread_shared_bytes(65680, 128, 384) == 65680  # three an SM, as 384 blocks need
    assert plan.spread_shared_bytes(229392, 256, 128) == 229392  # one an SM already


def test_ring_is_the_deepest_that_fits_when_two_blocks_cannot_share_an_sm():
    p = plan.BlockPlan(rmsnorm_linear_body(benchmark_inputs("rmsnorm_linear", 1, "f16"), col_tile=128, k_tile=256))
    assert p.stages == 3
    assert plan.resident_blocks(p._allocate(2)[-1], p.threads) == 1
    assert p.shared_bytes <= plan.MAX_SHARED_BYTES < p._allocate(4)[-1]


def test_wave_slots_count_the_last_waves_idle_slots():
    assert plan.wave_slots(384, 3) == 384  # one wave of 396 slots
    assert plan.wave_slots(384, 2) == 2 * 264  # a second wave of 120 blocks leaves 144 slots idle
    assert plan.wave_slots(96, 1) == 96 and plan.wave_slots(96, 2, sms=40) == 2 * 80


@pytest.mark.parametrize("bs,stages", [(1, 4), (8, 3)])
def test_ring_keeps_the_grid_in_one_wave(bs, stages):
    """384 blocks need three to an SM: at 16 rows the fourth stage (X's tile too) would leave two."""
    graph = plans.rmsnorm_linear_split_k(benchmark_inputs("rmsnorm_linear", bs, "f16"), col_tile=64, splits=4,
                                         k_tile=128, threads=128)
    p = plan.BlockPlan(graph.nodes[0].body)
    assert math.prod(graph.nodes[0].body.grid_dim) == 384 and p.stages == stages
    assert plan.resident_blocks(p.shared_bytes, p.threads) == 3
    if stages < plan.MAX_STAGES:
        assert plan.resident_blocks(p._allocate(stages + 1)[-1], p.threads) == 2


def test_no_ring_without_pipelining_or_with_max_stages_1(monkeypatch):
    body = rmsnorm_linear_body(benchmark_inputs("rmsnorm_linear", 1, "f16"))
    assert plan.BlockPlan(body).ring
    assert not plan.BlockPlan(body, pipeline=False).ring
    monkeypatch.setattr(plan, "MAX_STAGES", 1)
    p = plan.BlockPlan(body)
    assert p.stages == 1 and not p.ring and p.figures().prefetch_depth > 0  # registers instead


@pytest.mark.parametrize("m,k,n,dtype,eligible", [
    (16, 32, 16, "f16", True),
    (16, 32, 16, "bf16", True),
    (16, 24, 16, "f16", False),  # K % 16
    (16, 32, 12, "f16", False),  # N % 8
    (16, 32, 16, "f32", False),
])
def test_tensor_core_eligibility(m, k, n, dtype, eligible):
    body = matmul_body(m, k, n, dtype)
    mm = node_index(body, "matmul")
    assert plan.BlockPlan(body).mma_eligible(mm) == eligible
    assert not plan.BlockPlan(body, use_mma=False).mma_eligible(mm)
    # tensor-core operand rows are swizzled against bank conflicts (unpadded)
    a_tile = plan.BlockPlan(body).buffers[0]
    assert a_tile.swizzle == eligible and a_tile.pad == 0


@pytest.mark.parametrize("shape,dtype", [((16, 64), "f16"), ((64, 128), "bf16"), ((4, 16, 32), "f16"),
                                         ((16, 16), "f16"), ((32, 8), "f16")])
def test_swizzle_is_a_conflict_free_permutation_of_each_row(shape, dtype):
    """Each row's 16-byte chunks are permuted within the row (every element has one place, rows stay
    whole), and the same chunk of eight consecutive rows (one ldmatrix: a lane a row) falls in eight
    different 16-byte bank groups of the 128-byte bank line."""
    assert plan.swizzles(shape, dtype)
    buf = plan.Buffer("%b", shape, dtype, 0, swizzle=True)
    em = Emitter()
    width = plan.SWIZZLE_CHUNK // 2
    rows = math.prod(shape[:-1])
    place = {}
    for row in range(rows):
        index = list(np.unravel_index(row, shape[:-1])) + [0]
        for col in range(shape[-1]):
            where = buf.place(em, [int(i) for i in index[:-1]] + [col])
            assert where[:-1] == [int(i) for i in index[:-1]]
            place[row, col] = row * shape[-1] + where[-1]
    assert sorted(place.values()) == list(range(rows * shape[-1]))
    for col in range(0, shape[-1], width):
        for first in range(0, rows - 7, 8):
            groups = {place[first + r, col] * 2 // 16 % 8 for r in range(8)}
            assert len(groups) == 8
    assert not em.text().strip()  # constant indices fold: no ops emitted


@pytest.mark.parametrize("shape", [(16, 344), (16, 12), (16, 48)])
def test_rows_that_do_not_swizzle_are_padded(shape):
    """Rows of 43, 1.5 or 6 chunks have no XOR permutation within them: those operands keep the
    16-byte padding."""
    assert not plan.swizzles(shape, "f16")


def test_tensor_cores_need_both_operands_in_shared_memory():
    inputs = [TensorType((16, 32), "f16"), TensorType((32, 16), "f16")]
    bb = BlockBuilder(inputs, (1, 1, 1), 2)
    x = bb.iterator(0, NO_MAP, -1)
    w = bb.iterator(1, NO_MAP, -1)
    total = bb.accum("accum_sum", w, dtype="f16")  # an accumulator: f32 in shared memory
    body = bb.finish([bb.save(bb.op("matmul", x, total, dtype="f32"), NO_MAP)])
    assert not plan.BlockPlan(body).mma_eligible(node_index(body, "matmul"))


def scaled_a_body(dtype: str, loop: int = 4, as_b: bool = False):
    """One block over a loop: (x * 0.5 + 1) @ w accumulated, x [16, 64] and w [64, 64] loop tiles;
    with `as_b`, w @ (x * 0.5 + 1), w [16, 64] and x [64, 64]."""
    rows = 64 if as_b else 16
    inputs = [TensorType((rows, 64 * loop), dtype), TensorType((64 * loop, 64) if not as_b else (16, 64 * loop), dtype)]
    if as_b:
        inputs[0] = TensorType((64 * loop, 64), dtype)
    bb = BlockBuilder(inputs, (1, 1, 1), loop, (128, 1, 1))
    x = bb.iterator(0, NO_MAP, 0 if as_b else 1)
    w = bb.iterator(1, NO_MAP, 1 if as_b else 0)
    scaled = bb.op("add_scalar", bb.op("mul_scalar", x, scalar=0.5), scalar=1.0)
    product = bb.op("matmul", w, scaled, dtype="f32") if as_b else bb.op("matmul", scaled, w, dtype="f32")
    return bb.finish([bb.save(bb.accum("accum_sum", product), NO_MAP)])


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_a_unary_chain_read_only_as_an_mma_a_operand_is_computed_on_its_fragments(dtype):
    """x * 0.5 + 1 feeding a tensor-core matmul's A: no buffer or stage of its own; ldmatrix reads x's
    tile and each fragment element goes through the chain (rounded to the type) before the mma."""
    body = scaled_a_body(dtype)
    p = plan.BlockPlan(body)
    chain, matmul = node_index(body, "add_scalar"), node_index(body, "matmul")
    assert p.fragment_operands == {chain: node_index(body, "input_iterator")}
    assert not p.buffered[chain] and chain not in p.buffers and p.mma_eligible(matmul)
    assert p.figures().stage_rounds == 1  # the saver after the loop: no CUDA-core stage in it
    gen = started(body)
    text = emitted(gen, gen.emit_loop)
    lines = text.splitlines()
    a_loads = [line for line in lines if "nvgpu.ldmatrix" in line and "transpose = false" in line]
    computed = [line for line in lines if "vector.from_elements" in line and f"vector<4x2x{dtype}>" in line]
    assert a_loads and len(computed) == len(a_loads)
    assert "arith.mulf" in text and "arith.addf" in text and "arith.truncf" in text


def test_only_a_operands_of_the_same_tile_type_are_computed_on_fragments():
    assert plan.BlockPlan(scaled_a_body("f32")).fragment_operands == {}  # f32: no tensor cores
    assert plan.BlockPlan(scaled_a_body("f16", as_b=True)).fragment_operands == {}  # B: ldmatrix .trans pairs
    # a loop-invariant chain is made once, before the loop, into a buffer (not again each iteration)
    inputs = [TensorType((16, 64), "f16"), TensorType((256, 64), "f16")]
    bb = BlockBuilder(inputs, (1, 1, 1), 4, (128, 1, 1))
    x, w = bb.iterator(0, NO_MAP, -1), bb.iterator(1, NO_MAP, 0)
    scaled = bb.op("mul_scalar", x, scalar=0.5)
    body = bb.finish([bb.save(bb.accum("accum_sum", bb.op("matmul", scaled, w, dtype="f32")), NO_MAP)])
    p = plan.BlockPlan(body)
    assert p.fragment_operands == {} and p.buffered[node_index(body, "mul_scalar")]


def test_warps_slice_k_when_there_are_fewer_warp_tiles_than_warps():
    p = plan.BlockPlan(matmul_body(16, 128, 16, "f16", threads=256))  # 8 warps, two 16x8 tiles
    wm, wn, tiles, kslices = p.split_warp_tiles((16, 16), 128)
    assert kslices > 1 and tiles[0] * tiles[1] * kslices == p.warps and 128 % (16 * kslices) == 0
    assert p.split_warp_tiles((128, 128), 128)[3] == 1  # enough tiles: each warp owns whole ones


def test_loop_carried_tensor_core_sum_stays_in_registers():
    body = rmsnorm_linear_body([TensorType((4, 512), "f16"), TensorType((512, 256), "f16")])
    p = plan.BlockPlan(body)
    (acc, info), = p.reg_accs.items()
    assert p.g.nodes[acc].op == "accum_sum" and p.g.nodes[info.mm].op == "matmul"
    assert info.count == info.per_warp * info.wm * info.wn
    assert p.figures().mma_chain > 0


def test_k_slices_meet_in_memory_only_the_loop_tiles_use(monkeypatch):
    monkeypatch.setattr(plan, "WGMMA", False)  # mma.sync's warps, whose K slices meet in shared memory
    graph = plans.rmsnorm_linear_split_k(benchmark_inputs("rmsnorm_linear", 8, "f16"), col_tile=64, splits=4,
                                         k_tile=128, threads=128)
    p = plan.BlockPlan(graph.nodes[0].body)
    (acc, info), = p.reg_accs.items()
    scratch = p.slice_scratch(acc)
    assert info.kslices == 4 and scratch.shape == (p.warps, info.count * 4, 32)
    tiles = [b for j, b in p.buffers.items() if p.kind[j] == "iter" and p.phase[j] == "loop"]
    others = [b for j, b in p.buffers.items() if b not in tiles]
    assert min(b.offset for b in tiles) <= scratch.offset
    assert scratch.offset + scratch.nbytes <= max(b.offset + b.stage_bytes * b.stages for b in tiles)
    assert all(b.offset >= scratch.offset + scratch.nbytes or b.offset + b.nbytes <= scratch.offset for b in others)


def test_row_sums_into_a_sum_accumulator_are_carried_in_registers():
    inputs = benchmark_inputs("rmsnorm_linear", 1, "f16")
    for body, ops in ((plans.rmsnorm_linear_split_k(inputs, splits=4).nodes[0].body, ("accum_sum", "reduce_sum")),
                      (rmsnorm_linear_body(inputs), ("accum_rms", "accum_rms"))):  # reduce_dim: sums itself
        carried = plan.BlockPlan(body).carried_rows
        assert [(body.nodes[a].op, body.nodes[r].op) for a, r in carried.items()] == [ops]
    bb = BlockBuilder([TensorType((16, 1024), "f32")], (1, 1, 1), 8, (128, 1, 1))
    x = bb.iterator(0, NO_MAP, 1)
    peak = bb.accum("accum_max", bb.op("reduce_max", x, dim=1))
    assert not plan.BlockPlan(bb.finish([bb.save(peak, NO_MAP)])).carried_rows  # sums only


def ones_body(*chain: tuple[str, float]):
    """One block: (chain of scalar ops over x) @ w, accumulated over a loop of 4."""
    inputs = [TensorType((16, 256), "f16"), TensorType((256, 64), "f16")]
    bb = BlockBuilder(inputs, (1, 1, 1), 4, (256, 1, 1))
    x, w = bb.iterator(0, NO_MAP, 1), bb.iterator(1, NO_MAP, 0)
    a = x
    for op, scalar in chain:
        a = bb.op(op, a, scalar=scalar)
    return bb.finish([bb.save(bb.accum("accum_sum", bb.op("matmul", a, w, dtype="f32")), NO_MAP)])


def test_a_chain_that_multiplies_by_zero_first_is_a_constant_operand(monkeypatch):
    """x * 0 + 1 is the constant 1 for every finite x (and in the verifier's fields); on mma.sync its
    matmul is carried as W's column sums, one mma tile per 16 columns, each a W^T tile times ones.
    x * 2 + 1 depends on x, and x * 0 then * -1 is -0 or +0 by x's sign: neither is a constant."""
    monkeypatch.setattr(plan, "WGMMA", False)
    body = ones_body(("mul_scalar", 0.0), ("add_scalar", 1.0))
    p = plan.BlockPlan(body)
    assert list(p.constant_operands.values()) == [1.0]
    (info,) = p.reg_accs.values()
    assert info.column_sums and info.count == info.per_warp * info.wn // 2 and info.tile_count == 2 * info.count
    gen = started(body)
    text = emitted(gen, gen.emit_loop)
    assert "dense<1.0> : vector<2x2xf16>" in text and "gpu.shuffle idx" in text  # B all ones; to the tiles' layout
    for chain in ((("mul_scalar", 2.0), ("add_scalar", 1.0)), (("mul_scalar", 0.0), ("mul_scalar", -1.0))):
        p = plan.BlockPlan(ones_body(*chain))
        assert p.fragment_operands and not p.constant_operands
        assert not any(info.column_sums for info in p.reg_accs.values())
    # a chain with a side operand first (another input's tile times x * 0) is no constant either
    inputs = [TensorType((16, 256), "f16"), TensorType((256, 64), "f16"), TensorType((16, 4), "f16")]
    bb = BlockBuilder(inputs, (1, 1, 1), 4, (256, 1, 1))
    x, w, side = bb.iterator(0, NO_MAP, 1), bb.iterator(1, NO_MAP, 0), bb.iterator(2, NO_MAP, 1)
    a = bb.op("mul", side, bb.op("mul_scalar", x, scalar=0.0))
    p = plan.BlockPlan(bb.finish([bb.save(bb.accum("accum_sum", bb.op("matmul", a, w, dtype="f32")), NO_MAP)]))
    assert p.fragment_operands and not p.constant_operands


def test_a_constant_operand_of_wgmma_is_a_tile_written_once_before_the_loop(monkeypatch):
    """On wgmma (which reads operands from shared memory only) the ones are a tile of their own,
    in X's tile's shape and wgmma's line blocks, 1024-aligned after everything else, filled with the
    constant before the loop and fenced for the async proxy; without wgmma no such tile."""
    body = ones_body(("mul_scalar", 0.0), ("add_scalar", 1.0))
    p = plan.BlockPlan(body)
    assert p.wgmma and p.reg_accs[node_index(body, "accum_sum")].wgmma
    ((j, tile),) = p.constant_tiles.items()
    assert p.buffers[j] is tile and (tile.shape, tile.dtype, tile.atoms) == ((16, 64), "f16", 1)
    assert tile.swizzle and tile.offset % plan.WGMMA_ALIGN == 0 and p.shared_bytes >= tile.offset + tile.stage_bytes
    gen = started(body)
    text = emitted(gen, gen.fill_constant_tiles)
    assert text.count("memref.store") == 16 * 64 // 256 and "arith.truncf" in text and "fence.proxy" in text
    assert "nvvm.wgmma.mma_async" in emitted(gen, gen.emit_loop)
    monkeypatch.setattr(plan, "WGMMA", False)
    assert not plan.BlockPlan(body).constant_tiles



def test_a_constant_operand_beside_xs_matmul_is_stacked_below_xs_rows_on_wgmma():
    """LayerNorm's form, x @ w beside (x * 0 + 1) @ w: on wgmma the ones are 8 rows stacked below X's
    in each of X's ring slots (Buffer.lines 24), written once before the loop, and one chain of
    m64n24k16 computes both products reading W once (the ones' accumulator stacked on x W's unit,
    no tile of their own); both warpgroups split the K tile."""
    inputs = [TensorType((16, 256), "f16"), TensorType((256, 64), "f16")]
    bb = BlockBuilder(inputs, (1, 1, 1), 4, (256, 1, 1))
    x, w = bb.iterator(0, NO_MAP, 1), bb.iterator(1, NO_MAP, 0)
    ones = bb.op("add_scalar", bb.op("mul_scalar", x, scalar=0.0), scalar=1.0)
    xw = bb.accum("accum_sum", bb.op("matmul", x, w, dtype="f32"))
    sums = bb.accum("accum_sum", bb.op("matmul", ones, w, dtype="f32"))
    body = bb.finish([bb.save(bb.op("add", xw, sums), NO_MAP)])
    p = plan.BlockPlan(body)
    x_node = node_index(body, "input_iterator")
    assert p.stacked_rows == {x_node: 8} and p.stacked_constants == {x_node: 1.0} and not p.constant_tiles
    assert (p.buffers[x_node].lines, p.buffers[x_node].storage_shape) == (24, (24, 64))
    lead, stacked = sorted(p.reg_accs.values(), key=lambda info: info.stacked)
    assert lead.wgmma and stacked.stacked and (lead.unit, lead.units, lead.kslices) == (stacked.unit, 1, 2)
    gen = started(body)
    fill = emitted(gen, gen.fill_constant_tiles)
    assert "dense<1.0> : vector<8xf16>" in fill and "fence.proxy" in fill
    loop = emitted(gen, gen.emit_loop)
    assert loop.count("nvvm.wgmma.mma_async") == 2 and "n = 24" in loop

# -- the emitters ------------------------------------------------------------------------------------

def test_copies_use_cp_async_bypassing_l1_for_16_byte_chunks_and_issue_nothing_past_the_end():
    body = rmsnorm_linear_body([TensorType((4, 256), "f16"), TensorType((256, 16), "f16")], col_tile=4)
    gen = started(body)
    assert gen.plan.ring
    first = emitted(gen, lambda: gen.async_copy_stage(0, 0))
    x_copies = [line for line in first.splitlines() if "device_async_copy %arg0" in line]
    w_copies = [line for line in first.splitlines() if "device_async_copy %arg1" in line]
    assert x_copies and all(line.endswith(", 8 {bypassL1} : memref<4x256xf16> to memref<4x64xf16, "
                                          "#gpu.address_space<workgroup>>") for line in x_copies)
    assert w_copies and all(", 4 : memref<256x16xf16>" in line and "bypassL1" not in line for line in w_copies)
    assert "arith.select" not in first and "nvgpu.device_async_create_group" in first

    # a refill past the loop's end issues no copy (src-size 0 copies cost time, run 93) but still
    # commits its (empty) group, which keeps every iteration's wait count
    refill = emitted(gen, lambda: gen.async_copy_stage("%it", 1, live="%live"))
    guarded, commit = refill.index("scf.if %live {"), refill.index("nvgpu.device_async_create_group")
    copies = [m.start() for m in re.finditer("device_async_copy", refill)]
    assert copies and all(guarded < c < commit for c in copies) and "arith.select" not in refill
    assert refill.rindex("}", 0, commit) > copies[-1]


def test_ring_views_are_the_generators_own():
    body = rmsnorm_linear_body(benchmark_inputs("rmsnorm_linear", 1, "f16"))
    gen = BlockKernelGen(body, "k")
    gen.generate(list(body.inputs), [body.value_types[v] for v in body.outputs])
    for i in gen.plan.ring:
        assert gen.plan.buffers[i].name == f"%tile{i}" and gen.buffers[i].name.startswith("%ring")


def test_register_prefetch_carries_the_next_tiles():
    gen = started(rmsnorm_linear_body(benchmark_inputs("rmsnorm_linear", 1, "f16")), pipeline=False)
    geos = gen.plan.loop_copies()
    loads = emitted(gen, lambda: gen.prefetch_loads(geos))
    assert loads.count("vector.load %arg") == sum(len(gen.copy_slots(geo)) for geo in geos)
    stores = emitted(gen, lambda: gen.prefetch_stores(geos, [f"%v{k}" for k in range(loads.count("vector.load"))]))
    assert "vector.store %v0, %tile" in stores and {gen.buffers[geo.i].name for geo in geos} <= gen.dirty


@pytest.mark.parametrize("dtype,op,other", [("f16", "nvgpu.mma.sync", "nvvm.mma.sync"),
                                            ("bf16", "nvvm.mma.sync", "nvgpu.mma.sync")])
def test_mma_sync_form_per_element_type(dtype, op, other):
    gen = started(matmul_body(16, 32, 16, dtype))
    text = emitted(gen, lambda: gen.mma_sync("%a", "%b", "%c", dtype))
    assert op in text and other not in text
    if dtype == "bf16":  # operands packed two to an i32, the PTX register form
        assert text.count("vector.bitcast") == 6 and "#nvvm.mma_type<bf16>" in text


@pytest.mark.parametrize("dtype,loops", [("f16", 2), ("bf16", 0)])
def test_a_loop_of_ones_bf16_mma_chain_is_written_out(dtype, loops):
    """lora's one kernel at 128 threads (X A's and X W's K of 256 in two slices of 8 mma steps): an f16
    chain stays an scf.for (ptxas unrolls it), a bf16 one is written out step by step (ptxas kept it
    a loop, 12% slower on the H200, run 147)."""
    body = plans.lora_fused(benchmark_inputs("lora", 1, dtype), col_tile=64, threads=128).nodes[0].body
    text = BlockKernelGen(body, "k").generate(list(body.inputs), [body.value_types[v] for v in body.outputs]).text
    mma_ops = text.count("mma.sync")  # nvgpu.mma.sync (f16), nvvm.mma.sync (bf16)
    assert text.count("scf.for") == loops and (mma_ops < 16 if loops else mma_ops >= 32)


@pytest.mark.parametrize("dtype,tensor_cores", [("f16", True), ("bf16", True), ("f32", False)])
def test_matmul_stage_uses_tensor_cores_where_eligible(dtype, tensor_cores):
    body = matmul_body(16, 32, 16, dtype)
    gen = started(body)
    saver = node_index(body, "output_saver")
    text = emitted(gen, lambda: gen.compute_stage(("saver", saver), body.nodes[saver].inputs[0]))
    assert ("nvgpu.ldmatrix" in text) == tensor_cores and ("mma.sync" in text) == tensor_cores
    assert ("math.fma" in text) != tensor_cores  # CUDA cores: a K loop of fused multiply-adds


@pytest.mark.parametrize("length,shuffles", [(64, 5), (32, 5), (16, 0)])
def test_reduction_shuffles_rows_of_at_least_32(length, shuffles):
    body = row_body((4, length), "f32", "reduce_sum", dim=1)
    gen = started(body)
    i = node_index(body, "reduce_sum")
    text = emitted(gen, lambda: gen.reduce_stage(("buf", i), body.nodes[i]))
    assert text.count("gpu.shuffle xor") == shuffles
    assert [int(o) for o in re.findall(r"gpu.shuffle xor %\w+, %c(\d+)_i32", text)] == [16, 8, 4, 2, 1][:shuffles]
    assert "memref.store" in text and gen.buffers[i].name in gen.dirty


@pytest.mark.parametrize("dtype,length,vector", [("f16", 1024, "vector<8xf16>"), ("f32", 1024, "vector<4xf32>"),
                                                 ("f16", 64, "vector<2xf16>"), ("f16", 100, None)])
def test_reductions_read_their_rows_in_vectors_where_the_lanes_shares_allow(dtype, length, vector):
    """A reduction along the last dim reads the tile its (elementwise) input comes from in vectors
    of up to 16 bytes, each lane whole chunks of its row (4 rows, so 32 lanes a row); else elements."""
    bb = BlockBuilder([TensorType((4, length), dtype)], (1, 1, 1), 1)
    x = bb.iterator(0, NO_MAP, -1)
    body = bb.finish([bb.save(bb.op("reduce_sum", bb.op("square", bb.op("cast", x, dtype="f32")), dim=1), NO_MAP)])
    gen = started(body)
    i = node_index(body, "reduce_sum")
    text = emitted(gen, lambda: gen.reduce_stage(("buf", i), body.nodes[i]))
    tile = gen.buffers[node_index(body, "input_iterator")].name
    loads = re.findall(rf"(vector|memref)\.load {tile}\[.*?>(, vector<\w+>)?$", text, re.M)
    assert loads and all(kind == ("vector" if vector else "memref") for kind, _ in loads)
    assert all(vec == (f", {vector}" if vector else "") for _, vec in loads)


@pytest.mark.parametrize("cols,store", [(64, "vector<8xf16>"), (12, "vector<4xf16>"), (3, None)])
def test_savers_store_up_to_16_bytes_where_alignment_allows(cols, store):
    body = row_body((4, cols), "f16", "exp")
    gen = started(body)
    saver = node_index(body, "output_saver")
    text = emitted(gen, lambda: gen.saver_stage(saver, body.nodes[saver].inputs[0]))
    if store is None:
        assert "vector.store" not in text and "memref.store" in text
    else:
        width = int(store[len("vector<"):].split("x")[0])
        assert f"{{alignment = {2 * width}}} : memref<4x{cols}xf16>, {store}" in text


def test_inline_elementwise_chain_is_computed_in_the_consuming_stage():
    bb = BlockBuilder([TensorType((4, 32), "f32")], (1, 1, 1), 1)
    x = bb.iterator(0, NO_MAP, -1)
    body = bb.finish([bb.save(bb.op("mul_scalar", bb.op("exp", x), scalar=2.0), NO_MAP)])
    gen = started(body)
    assert [gen.plan.buffered[node_index(body, op)] for op in ("exp", "mul_scalar")] == [False, False]
    root = body.nodes[node_index(body, "output_saver")].inputs[0]
    text = emitted(gen, lambda: gen.value_at(root, [0, 0], {}))
    assert re.search(r"memref.load %tile0.*\n.*math.exp.*\n.*arith.mulf", text)


def test_accumulators_start_at_their_identity():
    bb = BlockBuilder([TensorType((4, 64), "f32")], (1, 1, 1), 2)
    x = bb.iterator(0, NO_MAP, 1)
    body = bb.finish([bb.save(bb.accum("accum_max", x), NO_MAP)])
    gen = started(body)
    text = emitted(gen, gen.init_accumulators)
    acc = node_index(body, "accum_max")
    assert f"memref.store %cst_ff800000, {gen.buffers[acc].name}" in text  # -inf


def test_small_tile_copies_share_one_round_trip():
    """ntrans copies three 1 x 4096 rows per block: all twelve 16-byte loads of a thread are issued
    before its first store (one memory latency, not three), and the figures count one round trip.
    They are volatile and the row used first (X, input 1: rms_norm(X)) is loaded last, H (input 0,
    used next) before it, alpha first: ptxas keeps strong loads in order, so none waits behind X's
    reduction."""
    body = plans.ntrans(benchmark_inputs("ntrans", 1, "f16")).nodes[0].body
    text = BlockKernelGen(body, "k").generate(list(body.inputs), [body.value_types[v] for v in body.outputs]).text
    first_store = text.index("vector.store")
    assert text[:first_store].count("llvm.load volatile") == 12 and "vector.load %arg" not in text
    loaded = re.findall(r"extract_aligned_pointer_as_index %arg(\d)", text[:first_store])  # one a load
    assert loaded == ["2"] * 4 + ["0"] * 4 + ["1"] * 4
    assert plan.BlockPlan(body).figures().pre_round_trips == 1


def test_a_broadcast_value_is_computed_once_into_a_buffer(monkeypatch):
    """x * rsqrt(mean(x^2) + eps): the row's rsqrt, broadcast over the row by the multiply, gets a
    buffer of its own instead of being recomputed for every element of the row (through shared
    memory: as a row kernel each thread computes it once per chunk)."""
    monkeypatch.setattr(plan, "MAX_ROW_SLOTS", 0)
    bb = BlockBuilder([TensorType((2, 256), "f32")], (1, 1, 1), 1)
    x = bb.iterator(0, NO_MAP, -1)
    mean = bb.op("reduce_mean", bb.op("square", x), dim=1)
    scale = bb.op("rsqrt", bb.op("add_scalar", mean, scalar=1e-6))
    body = bb.finish([bb.save(bb.op("mul", x, scale), NO_MAP)])
    p = plan.BlockPlan(body)
    rsqrt = next(i for i, n in enumerate(body.nodes) if n.op == "rsqrt")
    add = next(i for i, n in enumerate(body.nodes) if n.op == "add_scalar")
    assert p.buffered[rsqrt] and not p.buffered[add]  # the add is inline in the rsqrt's stage
    assert len(re.findall(r"math\.rsqrt", BlockKernelGen(body, "k").generate(list(body.inputs), [body.value_types[body.outputs[0]]]).text)) == 1


def test_thread_elements_count_each_threads_serial_work():
    """Per thread: the elements of each CUDA-core stage (a reduction: its inputs) over the threads;
    more threads, fewer elements; a row kernel's elements once; tensor-core accumulators are not
    CUDA-core work."""
    def reduce_and_scale(cols, threads):
        bb = BlockBuilder([TensorType((1, cols), "f32")], (1, 1, 1), 1, (threads, 1, 1))
        x = bb.iterator(0, NO_MAP, -1)
        return bb.finish([bb.save(bb.op("mul_scalar", bb.op("reduce_sum", x, dim=1), scalar=2.0), NO_MAP)])

    # rows of 4000 (not a whole number of warps' chunks: through shared memory): the reduction's
    # 4000 inputs over the threads and the saver's one element
    assert plan.BlockPlan(reduce_and_scale(4000, 128)).figures().thread_elements == -(-4000 // 128) + 1
    assert plan.BlockPlan(reduce_and_scale(4000, 512)).figures().thread_elements == -(-4000 // 512) + 1
    # rows of 4096 make a row kernel, on 256 threads of four chunks of 4 whatever the block size
    for threads in (128, 512):
        figures = plan.BlockPlan(reduce_and_scale(4096, threads)).figures()
        assert (figures.threads, figures.thread_elements) == (256, 16)
    mm = rmsnorm_linear_body(benchmark_inputs("rmsnorm_linear", 1, "f16"), col_tile=64, k_tile=128)
    mm_plan = plan.BlockPlan(mm)
    assert mm_plan.reg_accs and mm_plan.figures().thread_elements < mm.forloop_range * 4


def attention_body(q_rows: int, kv_tile: int, loop: int = 2, dtype: str = "f16", threads: int = 128):
    """Online-softmax attention's first kernel (plans.stable_attention) for Q tiles of q_rows rows and
    KV tiles of kv_tile columns."""
    inputs = [TensorType((2, 256, 64), dtype), TensorType((2, 64, 4 * loop * kv_tile), dtype),
              TensorType((2, 4 * loop * kv_tile, 64), dtype)]
    return plans.stable_attention(inputs, q_tile=q_rows, splits=4, loop=loop, threads=threads).nodes[0].body


def test_warp_rows_for_chained_matmuls_within_the_register_file():
    """Chained matmuls with row-wise ops between them: warp-rows, one warp per 16 rows whatever the
    block size, only the iterator tiles in shared memory (no accumulator or score buffer), no CUDA-core
    stage; a tile too wide for the registers, f32 operands (no tensor cores) or a weight-streaming
    matmul (nothing chained) stay with the shared-memory stages."""
    p = plan.BlockPlan(attention_body(64, 64, threads=512))
    assert p.warp_rows == plan.WarpRows(rows=64, wm=1) and p.threads == 128
    assert all(p.kind[i] == "iter" for i in p.buffers) and not p.reg_accs and not p.max_buffers
    figures = p.figures()
    assert figures.in_registers and figures.stage_rounds == 0
    # 256 rows of 128 columns: 16 warps would need ~170 registers each, more than the file holds
    assert plan.BlockPlan(attention_body(256, 128)).warp_rows is None
    assert plan.BlockPlan(attention_body(64, 256)).warp_rows is None  # 128 f32 of S a thread
    assert plan.BlockPlan(attention_body(64, 64, dtype="f32")).warp_rows is None
    assert plan.BlockPlan(rmsnorm_linear_body(benchmark_inputs("rmsnorm_linear", 1, "f16"))).warp_rows is None


def test_warp_rows_loop_waits_then_refills_behind_one_barrier():
    """Each iteration: wait for its tiles, one barrier, then the refill of the stage the iteration
    before read; scores and P never touch shared memory (loads only ldmatrix of K, V and Q)."""
    body = attention_body(64, 64, loop=4)
    gen = BlockKernelGen(body, "k")
    text = gen.generate(list(body.inputs), [body.value_types[v] for v in body.outputs]).text
    loop = text[text.index("scf.for %it"):text.index("{mirage.forloop}")]
    wait, barrier, refill = (loop.index(s) for s in ("nvgpu.device_async_wait", "gpu.barrier", "nvgpu.device_async_copy"))
    assert wait < barrier < refill and loop.count("gpu.barrier") == 1
    assert "memref.load" not in loop and "memref.store" not in loop
    assert loop.count("nvgpu.mma.sync") == 2 * (64 // 8) * (64 // 16)  # Q K and P V, one warp's 16 rows


def test_a_rescaled_sum_over_splits_is_one_maximum_then_independent_factors():
    """A combine's accum_rescaled_sum (its loop unrolled in a row kernel) takes the maximum over every
    split first: one exp per split and row slot, none chained through a running max."""
    types = [TensorType((2, 256, 64), "f16"), TensorType((2, 64, 4096), "f16"), TensorType((2, 4096, 64), "f16")]
    combine = plans.stable_attention(types, splits=16, loop=1).nodes[1].body
    gen = BlockKernelGen(combine, "k")
    assert gen.plan.rows is not None
    text = gen.generate(list(combine.inputs), [combine.value_types[v] for v in combine.outputs]).text
    slots = gen.plan.rows.slots
    # per slot: each split's factor, for the sums and the outputs (two accumulators, one max each)
    assert text.count("math.exp") == 2 * 16 * slots
