"""The cost model reads the code generator's plan: shared memory, the cp.async ring, bytes in flight."""

from __future__ import annotations

import itertools

import pytest

from mirage_mlir import plans
from mirage_mlir.lowering import plan, plan_figures
from mirage_mlir.mugraph import TensorType
from mirage_mlir.search import cost

C = cost.chip("sm_90")


def rmsnorm_linear(bs=1, **tiles):
    return plans.rmsnorm_linear(plans.benchmark_inputs("rmsnorm_linear", bs, "f16"), **tiles)


def test_figures_follow_the_generated_pipeline():
    body = rmsnorm_linear(col_tile=32, k_tile=256).nodes[0].body
    fig = plan_figures(body)
    # X tile 2 x 256 and W tile 256 x 32 (f16) per iteration, through a 4-stage ring
    assert fig.ring_bytes == 2 * 256 * 2 + 256 * 32 * 2 and fig.stages == 4 and fig.sync_bytes == 0
    assert fig.loop_round_trips == 1 / 3  # the wait for a group issued three iterations earlier
    assert fig.tensor_core_matmuls  # f16 x f16 -> f32 on mma.sync
    assert C.resident_blocks(fig.smem, fig.threads) >= 2


def test_fewer_longer_iterations_cost_less():
    """Same bytes, same grid: fewer, larger loop iterations (each has a fixed cost) are faster
    (measured on the H200: 27.6 us with K tiles of 64, 22.9 us with 256)."""
    shallow = rmsnorm_linear(col_tile=32, k_tile=64)
    deep = rmsnorm_linear(col_tile=32, k_tile=256)
    assert cost.cost(deep).total_us < cost.cost(shallow).total_us


def test_synchronous_copies_cost_a_latency_per_batch():
    """A for-loop of one stages a 4096 x 16 slab of W per block before any arithmetic: through
    registers (no cp.async), 64 chunks a thread loaded in batches of 8 (8 memory latencies), plus one
    for X's tile; by cp.async (the default), every chunk in flight at once: one latency. A
    loop-carried tile copied through the ring costs a third of a latency per iteration instead."""
    slab = rmsnorm_linear(col_tile=16, k_tile=4096).nodes[0].body
    registers = plan.BlockPlan(slab, pipeline=False).figures()
    assert registers.loop == 1 and registers.pre_round_trips == 8 + 1
    assert plan_figures(slab).pre_round_trips == 1
    ring = plan_figures(rmsnorm_linear(col_tile=16, k_tile=256).nodes[0].body)
    assert ring.pre_round_trips == 0 and ring.loop_round_trips == 1 / 3


@pytest.mark.parametrize("col,k,bs", [(c, k, 1) for c, k in itertools.product((16, 32, 64, 128), (64, 256, 1024))]
                         + [(16, 256, 8), (32, 64, 8)])
def test_configuration_lower_bound_holds(col, k, bs):
    """The search prunes configurations by config_lower_bound: it never exceeds the full estimate
    (also for grids of more blocks than SMs, several resident on one)."""
    graph = rmsnorm_linear(bs, col_tile=col, k_tile=k)
    body = graph.nodes[0].body
    blocks = body.grid_dim[0]
    read = sum(cost.nbytes(n.types[0]) * blocks * (body.forloop_range if n.attr("fmap") != -1 else 1)
               for n in body.nodes if n.op == "input_iterator")
    unique = sum(cost.nbytes(t) for t in graph.inputs)
    bound = cost.config_lower_bound(C, blocks, read, unique, body.forloop_range)
    assert bound <= cost.graph_def_cost(body, C).us + 1e-9


def test_estimates_reach_the_manifest(tmp_path):
    """mirage-lower-to-gpu writes each kernel's estimate; mirage-compile's manifest carries it."""
    import json
    import os
    import subprocess
    import sys

    from mirage_mlir.mugraph import TensorType

    source = os.path.join(os.path.dirname(__file__), "inputs", "rmsnorm_linear_small_f16.mlir")
    out = tmp_path / "build"
    subprocess.run([sys.executable, "-m", "mirage_mlir.tools.mirage_compile", source, "-o", str(out), "--plan",
                    "published", "-q", "--no-ptxas"], check=True)
    kernels = json.loads((out / "manifest.json").read_text())["functions"]["main"]["kernels"]
    graph = plans.rmsnorm_linear([TensorType(s, "f16") for s in plans.SMALL_SHAPES["rmsnorm_linear"]])
    expected = [k.us for k in cost.cost(graph).kernels]
    assert [round(k["estimate_us"], 3) for k in kernels] == [round(e, 3) for e in expected]


def test_a_whole_number_estimate_still_parses():
    """An estimate of exactly 16 us is written as an f64 MLIR reads back (printed "16" it was an
    integer literal, and mirage-lower-to-gpu failed on its own output: rmsnorm_linear bs8's published
    plan under stage_us = 0.12)."""
    import mlir.ir as ir

    from mirage_mlir.lowering import lower_graph
    from mirage_mlir.mugraph import TensorType

    graph = plans.rmsnorm_linear([TensorType(s, "f16") for s in plans.SMALL_SHAPES["rmsnorm_linear"]])
    program = lower_graph(graph)
    for launch in program.launches:
        launch.estimate_us = 16.0
    with ir.Context():
        module = ir.Module.parse(program.text())
    assert module.operation.verify() and "mirage.estimate_us = 1.600000e+01 : f64" in program.text()


def test_a_fused_combine_costs_no_launch():
    """A split-K plan's combine kernel runs inside the partial kernel (lowering/fuse_split_k.py): the
    model charges one launch for the pair, and the manifest's one kernel carries both estimates."""
    from mirage_mlir.mugraph import TensorType

    types = [TensorType(s, "f16") for s in ((16, 512), (512, 128), (512, 128))]
    graph = plans.gated_mlp_split_k(types, col_tile=32, splits=2, k_tile=64)
    kernels = cost.cost(graph, C).kernels
    alone = cost.graph_def_cost(graph.nodes[1].body, C)
    assert kernels[1].op == "graph_def (fused)"
    assert kernels[1].us == pytest.approx(alone.us - C.launch_us)


def test_few_blocks_of_many_elements_cost_their_serial_work(monkeypatch):
    """ntrans (8 rows of 4096, a block per row) through shared memory: each thread's elements one
    after another bound it; 512 threads cost less than 128 (measured 2.7 against 3.6 us on an H200,
    NOTES.md run 13). As a row kernel (registers, one pass) it costs less than either."""
    inputs = plans.benchmark_inputs("ntrans", 1, "f16")
    in_registers = cost.cost(plans.ntrans(inputs, threads=128), C).total_us
    monkeypatch.setattr(plan, "MAX_ROW_SLOTS", 0)
    narrow, wide = (cost.cost(plans.ntrans(inputs, threads=t), C).total_us for t in (128, 512))
    assert wide < narrow - 0.5
    assert in_registers < wide


def test_synchronous_copies_of_a_lone_block_do_not_overlap_its_streaming():
    """One block per SM without a ring: its copies' latencies add to its streaming time."""
    from dataclasses import replace

    inputs = plans.benchmark_inputs("rmsnorm_linear", 1, "f16")
    body = plans.rmsnorm_linear(inputs, col_tile=48, k_tile=1024, threads=256).nodes[0].body
    fig = plan_figures(body)
    assert fig.stages == 1 and C.resident_blocks(fig.smem, fig.threads) == 1
    lone = cost.graph_def_cost(body, C, fig).us
    overlapped = cost.graph_def_cost(body, C, replace(fig, smem=fig.smem // 3)).us  # three blocks per SM
    assert lone > overlapped + C.mem_latency_us


def test_a_row_kernel_loop_costs_no_time_per_iteration():
    """A row kernel's for-loop (a split combine: one iteration per split) is unrolled, its loads all
    in flight at once with no barrier between iterations: the per-iteration cost does not apply to
    it, and does to a shared-memory kernel's loop."""
    from dataclasses import replace

    graph = plans.stable_attention(plans.benchmark_inputs("gqa", 1, "f16"), splits=16)
    partials, combine = (node.body for node in graph.nodes)
    assert plan_figures(combine).unrolled and not plan_figures(partials).unrolled
    slow = replace(C, loop_iter_us=10 * C.loop_iter_us)
    assert cost.graph_def_cost(combine, slow).us == pytest.approx(cost.graph_def_cost(combine, C).us)
    assert cost.graph_def_cost(partials, slow).us > cost.graph_def_cost(partials, C).us


def test_each_cuda_core_stage_costs_a_barrier_round(monkeypatch):
    """Stable attention over the same 256 KV columns a block, in 4 steps or 1, in shared-memory stages
    (warp-rows kernels off: the 64-column steps would be one, with no stage): about the same elements
    per thread, 4x the CUDA-core stages (each ending at a barrier), priced stage_us each; a row kernel
    (the combine) has no such stage."""
    monkeypatch.setattr(plan, "MAX_WARP_ROW_REGISTERS", 0)
    inputs = plans.benchmark_inputs("gqa", 1, "f16")
    four, one = (plans.stable_attention(inputs, splits=16, loop=loop, threads=512) for loop in (4, 1))
    f4, f1 = plan_figures(four.nodes[0].body), plan_figures(one.nodes[0].body)
    loop_stages = (f4.stage_rounds - f1.stage_rounds) // 3  # the stages inside the loop, once per step
    assert loop_stages >= 5 and f4.thread_elements - f1.thread_elements < f4.thread_elements // 2
    assert plan_figures(one.nodes[1].body).stage_rounds == 0
    from dataclasses import replace

    staged = replace(C, stage_us=C.stage_us + 0.12)
    gap = cost.cost(four, staged).total_us - cost.cost(one, staged).total_us
    assert gap > cost.cost(four, C).total_us - cost.cost(one, C).total_us > 0


def test_blocks_resident_together_stream_side_by_side():
    """SwiGLU's gate kernel of 64-column tiles: 172 blocks of 82 KB, two on 40 of the SMs, which
    stream both at once (ncu: 57.6 us, not the 68 of one block's rate for both). Its per-SM term is
    one block's bytes at a block's rate; with room for one block per SM, two blocks' in turn."""
    from dataclasses import replace

    from mirage_mlir.mugraph import TensorType

    shapes = [(8, 4096), (4096, 11008), (4096, 11008), (11008, 4096)]
    gate = plans.swiglu_down([TensorType(s, "f16") for s in shapes], col_tile=64, threads=256).nodes[0].body
    fig = plan_figures(gate)
    assert gate.grid_dim[0] == 172 and C.resident_blocks(fig.smem, fig.threads) == 2
    per_block = sum(b for b, _ in fig.tile_rows) / C.sm_bandwidth * 1e6  # us, W1's and W3's strips and X
    streaming = replace(C, bandwidth=1e15, l2_bandwidth=1e15, mem_latency_us=0.0, loop_iter_us=0.0, launch_us=0.0)
    side_by_side = cost.graph_def_cost(gate, streaming, fig).us
    in_turns = cost.graph_def_cost(gate, streaming, replace(fig, smem=120 * 1024)).us
    assert side_by_side >= per_block and in_turns - side_by_side == pytest.approx(per_block, rel=0.02)


def test_a_kernels_terms_are_what_its_price_combines():
    """KernelCost.terms (what calibrate.py --detail prints): a ring kernel's price is the launch, the
    largest of its memory terms, and the larger of its arithmetic and serial work."""
    kc = cost.graph_def_cost(rmsnorm_linear(col_tile=32, k_tile=256).nodes[0].body, C)
    t = kc.terms
    assert set(t) == {"bandwidth", "latency", "per_sm", "iterations", "copies", "arithmetic", "serial"}
    memory = max(t["bandwidth"], t["latency"], t["per_sm"], t["iterations"])
    assert kc.us == pytest.approx(C.launch_us + memory + max(t["arithmetic"], t["serial"]))
    assert t["bandwidth"] > 0 and t["copies"] == 0  # a loop of 16 copies nothing before it


def test_the_ranking_form_hides_a_ring_loops_serial_work_under_its_stream():
    """Chip.serial_under_ring (cost.RANKING's form): a loop behind a ring of 2+ stages pays the larger
    of its memory terms and its serial work, plus its arithmetic; a loop of one (no ring: it computes
    once its copies have landed) pays as in the search's form."""
    from dataclasses import replace

    overlapping = replace(C, serial_under_ring=True)
    ring = rmsnorm_linear(col_tile=32, k_tile=256, threads=128).nodes[0].body
    assert ring.forloop_range > 1 and plan_figures(ring).stages > 1
    kc = cost.graph_def_cost(ring, overlapping)
    t = kc.terms
    memory = max(t["bandwidth"], t["latency"], t["per_sm"], t["iterations"])
    assert t["serial"] > 0
    assert kc.us == pytest.approx(C.launch_us + max(memory, t["serial"]) + t["arithmetic"])
    assert kc.us < cost.graph_def_cost(ring, C).us
    once = plans.ntrans(plans.benchmark_inputs("ntrans", 1, "f16"), threads=128).nodes[0].body
    assert once.forloop_range == 1
    assert cost.graph_def_cost(once, overlapping).us == pytest.approx(cost.graph_def_cost(once, C).us)


def test_a_loop_of_one_pays_for_the_chunks_a_thread_copies():
    """lora's one kernel (H200 run 87): at 128 threads each thread copies 13 chunks before the first
    mma and the kernel ran 0.7 us slower than at 256 (7 chunks); the model ranks it so."""
    inputs = plans.benchmark_inputs("lora", 1, "f16")
    narrow, wide = (plans.lora_fused(inputs, threads=t) for t in (128, 256))
    assert plan_figures(narrow.nodes[0].body).pre_chunks == 13 and plan_figures(wide.nodes[0].body).pre_chunks == 7
    assert cost.cost(wide).total_us < cost.cost(narrow).total_us


def test_registers_hold_residency_and_cost():
    """ptxas's registers a thread may allow fewer resident blocks than shared memory does: H200 run 94,
    rmsnorm_linear bs8's 384-block split plan at 256 threads took 90 registers (two blocks an SM,
    two waves) and ran 20.1 us, the same plan at 128 threads (64 registers, three an SM) 17.7."""
    graph = plans.rmsnorm_linear_split_k(plans.benchmark_inputs("rmsnorm_linear", 8, "f16"),
                                         col_tile=64, splits=4, k_tile=128, threads=256)
    fig = plan_figures(graph.nodes[0].body)
    assert C.resident_blocks(fig.smem, fig.threads) == 3
    assert C.resident_blocks(fig.smem, fig.threads, registers=80) == 3  # 80 x 256 x 3 fits 64K
    assert C.resident_blocks(fig.smem, fig.threads, registers=90) == 2  # allocated as 96 a thread
    plain, held = cost.cost(graph, C), cost.cost(graph, C, registers={0: 90})
    assert held.total_us > plain.total_us
    assert cost.cost(graph, C, registers={0: 64}).total_us == plain.total_us


def test_candidates_are_ranked_with_the_constants_fitted_for_ranking():
    """mirage-compile orders a search's kept candidates with cost.RANKING (fitted by
    benchmarks/calibrate.py); the search explores with the chip's own constants; a chip without a fit
    ranks with its own."""
    from dataclasses import fields

    from mirage_mlir.search.cost import RANKING, chip, ranking_chip

    base, ranking = chip("sm_90"), ranking_chip("sm_90")
    changed = {f.name for f in fields(base) if getattr(base, f.name) != getattr(ranking, f.name)}
    assert changed and changed <= set(RANKING["sm_90"])
    assert all(getattr(ranking, name) == value for name, value in RANKING["sm_90"].items())
    assert ranking_chip("h100") == chip("h100")


def test_a_first_kernel_copying_weights_beside_the_call_before_is_priced_without_those_copies():
    """lora's one kernel (a loop of one) at 64 blocks fits half the SMs: launched under the call
    before, its blocks copy the weights W, A and B while that call runs, so with the weights
    declared constant only X's round trip and its arithmetic remain on its path, and it ranks first
    (the fastest of lora's plans on the H200, runs 146-183). At 256 blocks, or with no constant
    inputs, nothing changes."""
    inputs = plans.benchmark_inputs("lora", 1, "f16")
    chip = cost.ranking_chip("sm_90")
    weights = frozenset({1, 2, 3})
    half, full = (plans.lora_fused(inputs, col_tile=c, threads=128) for c in (64, 16))
    assert cost.runs_beside_the_call_before(half, 0, weights, chip)
    assert not cost.runs_beside_the_call_before(full, 0, weights, chip)
    assert not cost.runs_beside_the_call_before(half, 0, frozenset(), chip)
    assert cost.cost(half, chip, constant_inputs=weights).total_us < cost.cost(half, chip).total_us
    assert cost.cost(full, chip, constant_inputs=weights).total_us == cost.cost(full, chip).total_us
    assert cost.cost(half, chip, constant_inputs=weights).total_us < cost.cost(full, chip, constant_inputs=weights).total_us
    rmsnorm = plans.rmsnorm_linear(plans.benchmark_inputs("rmsnorm_linear", 1, "f16"))  # a for-loop
    assert not cost.runs_beside_the_call_before(rmsnorm, 0, frozenset({1}), chip)


def test_blocks_beside_another_grid_take_what_its_blocks_leave_of_each_sm():
    """SwiGLU + down's gate kernel (172 blocks of 128 threads, 108.5 KB: two on 40 SMs, one on 92)
    leaves room for three 38.9 KB blocks of the down projection on 92 SMs, none on 40; for one of
    75.8 KB on 92; and registers bound it where given (256 threads of 126 registers hold half an SM's)."""
    gate = (172, 108544, 128)
    assert plan.blocks_beside(38912, 128, None, gate, None) == 3 * 92
    assert plan.blocks_beside(75792, 128, None, gate, None) == 92
    assert plan.blocks_beside(20480, 128, None, gate, None) == 5 * 92
    assert plan.blocks_beside(38912, 256, 64, (172, 108544, 256), 126) == 2 * 92
    assert plan.blocks_beside(38912, 128, None, (0, 108544, 128), None) == plan.resident_blocks(38912, 128) * plan.SMS


def test_a_last_kernel_crowded_beside_the_one_before_costs_its_time_again():
    """SwiGLU + down, its down projection split 8 ways (512 blocks, five fit beside the gate kernel on
    92 SMs): the next call's first kernel waits for its last blocks to start, so consecutive calls
    stop pipelining (95.5 us against 67.4 split 4 ways, 256 blocks, all fitting; H200 run 185). Its
    time counts twice; split 4 ways, nothing changes. A single kernel has no kernel before it."""
    inputs = [TensorType(s, "f16") for s in ((8, 4096), (4096, 11008), (4096, 11008), (11008, 4096))]
    chip = cost.ranking_chip("sm_90")
    weights = frozenset({1, 2, 3})
    fits, crowded = (plans.swiglu_down(inputs, splits=s, down_k_tile=k) for s, k in ((4, 64), (8, 32)))
    assert cost.last_kernel_crowded(cost.arrangement_of(fits, weights, chip), {}, chip) is None
    node = cost.last_kernel_crowded(cost.arrangement_of(crowded, weights, chip), {}, chip)
    assert node == 1
    priced = cost.cost(crowded, chip, constant_inputs=weights)
    assert priced.total_us == pytest.approx(sum(k.us for k in priced.kernels) + priced.kernels[node].us - chip.launch_us)
    assert priced.total_us > cost.cost(fits, chip, constant_inputs=weights).total_us + 15
    assert cost.arrangement_of(rmsnorm_linear(), frozenset({1}), chip) is None
