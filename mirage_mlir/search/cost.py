"""A cost model that ranks verified mu-graphs without a GPU (estimated microseconds on the target chip).

A graph_def's figures come from the GPU code generator's own plan (lowering.plan.PlanFigures): shared
memory per block (so how many blocks an SM holds), the bytes each iteration copies through the
cp.async ring or through registers, and the memory latencies its copies wait. Per kernel:

  launch + max(bandwidth, latency, per-SM, loop) + arithmetic
  (latency + the rest, not the larger, when one block per SM copies synchronously: nothing overlaps;
  a loop of one adds its mma chain and `copy_chunk_us` per chunk a thread copies to its copies'
  latency: it computes once they have landed)

(no launch for a combine kernel the lowering fuses into the split reduction before it).

- bandwidth: DRAM bytes (every input byte once, every output byte once) at `bandwidth`, slowed for
  tiles of short rows (measured: a tile with 64-byte rows streams at ~55% of a plain read), and all
  the bytes the blocks load (replicated tiles included: they come from L2) at `l2_bandwidth`;
  stretched by the idle slots of a grid's last wave when it needs more than one;
- latency: the memory latencies (`mem_latency_us` each) a block cannot hide, times the waves of
  resident blocks: 1 / (stages - 1) per iteration behind a cp.async ring, one per batch of a
  synchronous copy (fewer when prefetched into registers), and those of the loop-invariant copies;
- per-SM: the busiest SM's blocks, each streaming at most `sm_bandwidth` (a block alone on its SM
  takes in ~22 GB/s in one launch of a weight-sized stream: benchmarks/gemv_probe.cu; 31 GB/s only in
  a long steady state), those resident together side by side;
- loop: each iteration's fixed cost (barriers, the ring's wait) and the latency of its chain of
  dependent mma.sync steps per warp (K split across warps shortens it);
- arithmetic: tensor-core matmuls at `tensor_flops`, the rest (CUDA-core matmuls, elementwise) at
  `simt_flops`, scaled by the SMs the grid fills; or, when longer, the serial work of one thread
  (its elements over every CUDA-core stage at `thread_element_us` each, `register_element_us` in a
  warp-rows kernel, whose values stay in registers: small grids of few threads)
  plus `stage_us` per such stage (a barrier round whatever the stage's size; 0 by default, see Chip).
  In the ranking's form (Chip.serial_under_ring) a loop behind a ring of two or more stages pays
  max(memory, serial) + arithmetic instead: its CUDA-core work runs while the ring's tiles are in flight.
A block graph whose shared memory exceeds the chip's per-block limit is infeasible (inf). The
constants are fitted (benchmarks/calibrate.py) to the H200 timings in benchmarks/results/.

`rank(candidates, measure=None)`: the hook for choosing by measured time later: pass a callable
Graph -> microseconds (e.g. a GPU timer) and it replaces the estimate for the candidates it is
given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ..dtypes import BYTES
from ..lowering import plan
from ..mugraph import Graph, TensorType
from ..opset import ACCUMULATORS


@dataclass(frozen=True)
class Chip:
    name: str = "sm_90"
    sms: int = plan.SMS
    bandwidth: float = 4.05e12  # B/s, streaming read measured on the H200 (torch.sum, graph replays)
    # B/s, L2 -> SM: a reduction whose 2048 rows all read one 128 KiB - 8 MiB vector (so every read
    # after the first hits L2) ran 3.9-4.5 TB/s on an H200, 1.2x its DRAM-bound rate; a lower bound
    l2_bandwidth: float = 4.5e12
    # B/s one block streams from a column strip within one launch of a weight-sized stream: the 50 MB
    # probe (gemv_probe.cu, run 11) one block per SM 22-27 GB/s, our one-per-SM kernels 19-26 under ncu
    # (run 81: LayerNorm + Linear's projection, gated_mlp bs8, SwiGLU's gate kernel); two side by side
    # reach the chip's bandwidth (the probe at 264 blocks: 31 GB/s an SM)
    sm_bandwidth: float = 22e9
    mem_latency_us: float = 1.0  # a load's latency under load (fitted)
    smem_per_block: int = 227 * 1024  # sm_90 opt-in maximum per block
    smem_per_sm: int = plan.SHARED_PER_SM
    threads_per_sm: int = plan.THREADS_PER_SM
    blocks_per_sm: int = plan.BLOCKS_PER_SM
    # per kernel, with its ramp-up and tail: the fit says 1.5, but at 1.5 chains of small kernels look
    # nearly free and the best-first search spends its budget on them (ntrans: no candidate in 60 s,
    # one in 4 s at 2.5); the converted ntrans measures ~1.75 us a kernel
    launch_us: float = 2.5
    tensor_flops: float = 4.0e14  # sustained f16 tensor-core FLOP/s (dense, H100 SXM ~ 990 peak)
    simt_flops: float = 3.0e13  # f32 FMA FLOP/s for elementwise work and CUDA-core matmuls
    loop_iter_us: float = 0.44  # per for-loop iteration of a block (barriers, waits, latency; fitted)
    mma_step_us: float = 0.01  # one dependent mma.sync step of a warp (with its ldmatrix loads; fitted)
    # tiles read as short rows stream slower: a tile whose rows hold r contiguous bytes reads at
    # stream_peak * r / (r + row_overhead) of the bandwidth (H200: 64-byte rows ~55%, 128-byte ~63%)
    stream_peak: float = 1.0
    row_overhead: float = 32.0
    warps_for_mma: int = 8  # warps per SM needed to hide tensor-core latency
    # one element of a CUDA-core stage, per thread, one after another (shared-memory loads, math,
    # stores): ntrans at 128 threads (160 elements a thread) ran 0.9 us slower than at 512 (40)
    thread_element_us: float = 0.0075
    # one CUDA-core stage of a block, whatever its size (its barrier, every warp waiting for the
    # slowest, the shared-memory round trips): stable attention's 4 KV steps a block ran 6 us slower
    # than 1 step of 4x the columns (H200 run 58, 21 stages more). Fitted alone on runs 58 and 62
    # (benchmarks/calibrate.py) it is 0.12 us and puts the model's pick within 10% of the fastest in
    # 21 of 22 groups (19 at 0); not the default yet: at 0.12 the search's own ranking moved (small
    # rmsnorm_linear: its best 8% above Mirage's plan; small ntrans f16: nothing verified in 20 s)
    stage_us: float = 0.0
    # one element of a warp-rows kernel (lowering.plan.WarpRows), per thread: its values live in
    # registers, no shared-memory round trip or barrier per stage (fitted on stable attention's
    # warp-rows plans, H200 run 65: the model's error flat below ~0.003)
    register_element_us: float = 0.002
    # one 16-byte chunk a thread copies synchronously before the loop, in a loop of one (its loads, then
    # its stores, each waiting for its load): lora's one kernel at 16 / 32 / 64 columns a block ran
    # 0.3-0.8 us faster at 256 threads (7-13 chunks a thread) than at 128 (13-25; H200 run 87). Not
    # charged to warp-rows kernels: with it, run 86's stable attention bs1 bf16 pick went 1.00 -> 1.30x
    # the fastest (benchmarks/calibrate.py)
    copy_chunk_us: float = 0.05
    # bytes into the SMs per byte a warp's cp.async copies into rows padded by 16 bytes (tiles whose rows
    # cannot be swizzled): their copies split into 2.6x the L2 requests and 1.5x the bytes (H200 run 93,
    # benchmarks/sector_probe.cu)
    padded_intake: float = 1.5
    # a loop streaming through a cp.async ring of two or more stages runs its CUDA-core work while the
    # ring's next tiles are in flight, so the serial term overlaps the memory terms (the larger counts)
    # instead of adding to them (H200 run 183: LayerNorm + Linear's plans of 282-298 elements a thread,
    # 7 us of serial work, ran 11.2-11.7 us, faster than its plans of 8; rmsnorm_linear bs8's one-kernel
    # plan at 128 threads, 516 elements, as fast as at 256, 258: 15.7 / 16.0 us). Ranking only
    # (RANKING) until a device run times what the search would keep with it
    serial_under_ring: bool = False

    def resident_blocks(self, smem: int, threads: int, registers: int | None = None) -> int:
        """Blocks of this size one SM holds at once."""
        return plan.resident_blocks(smem, threads, self.smem_per_sm, self.threads_per_sm, self.blocks_per_sm,
                                    registers)


CHIPS = {"sm_90": Chip(), "h100": Chip()}

# The constants the compiler ranks a search's verified candidates with (mirage-compile's
# rank_with_registers: the estimates in the manifest and the model's choice), fitted for ranking by
# benchmarks/calibrate.py to every variant timed on the H200 in run 168 (mean Spearman 0.54 -> 0.72,
# the pick within 10% of the fastest in 23 -> 31 of 32 groups; on run 164, held out, 0.62 -> 0.70 and
# 25 -> 28: results/calibration_run168_holdout164.txt; a joint fit of both runs ended lower, 0.64,
# in a coordinate search's local optimum: calibration_runs164_168_joint.txt). The search itself
# explores and keeps its candidates with the chip's own constants above: a fit judged on plans that
# were timed says nothing of plans the search never kept, and twice (runs 118 and 119) a search
# steered by such a fit kept slower plans. With the weights' copies of a first kernel beside the call
# before (runs_beside_the_call_before, session 28) copy_chunk_us was refitted on run 183 (0 -> 0.073;
# its default pipeline's candidates 0.73 -> 0.75, the pick within 10% in 24 -> 28 of 28 groups; every
# variant 0.72 -> 0.76, 27 -> 31 of 32) and, out of sample, ranks run 176's lora plans 0.09 -> 0.81
# (results/calibration_run183_beside.txt). Session 30: in the ranking's own form (serial_under_ring),
# every constant refitted on run 183's candidates from the search's: mean Spearman 0.75 -> 0.80 (28 of
# 28 picks); out of sample run 183's other variants 0.60 -> 0.75, run 176's 0.55 -> 0.68
# (results/calibration_run183_ring.txt, calibration_run176_ring.txt).
RANKING = {"sm_90": dict(mem_latency_us=0.2506, loop_iter_us=0.2065, mma_step_us=0.01439, stream_peak=1.0,
                         row_overhead=5.657, sm_bandwidth=3.833e10, launch_us=0.9, thread_element_us=0.0327,
                         stage_us=0.0, copy_chunk_us=0.07313, l2_bandwidth=5.315e12, tensor_flops=6.6e14,
                         serial_under_ring=True)}


def chip(name: str) -> Chip:
    try:
        return CHIPS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown target chip '{name}' (known: {', '.join(sorted(CHIPS))})") from None


def ranking_chip(name: str) -> Chip:
    """Chip `name` with the constants fitted to rank verified candidates (RANKING), where there are."""
    return replace(chip(name), **RANKING.get(name.lower(), {}))


def nbytes(t: TensorType) -> int:
    return t.numel() * BYTES[t.dtype]


@dataclass
class KernelCost:
    op: str
    us: float
    bytes_read: int = 0
    bytes_written: int = 0
    blocks: int = 1
    sm_fill: float = 1.0
    smem: int = 0
    flops: float = 0.0
    loop: int = 1
    threads: int = 0  # a block's (the plan's)
    resident: int = 0  # blocks an SM holds at once (its shared memory, threads and registers)
    # graph_def_cost's terms in us before it combines them (bandwidth, latency, per_sm, iterations,
    # copies; arithmetic, serial): what calibrate.py --detail shows of a plan the model misprices
    terms: dict = field(default_factory=dict)


@dataclass
class Cost:
    total_us: float
    kernels: list[KernelCost] = field(default_factory=list)

    @property
    def launches(self) -> int:
        return len(self.kernels)

    @property
    def bytes(self) -> int:
        return sum(k.bytes_read + k.bytes_written for k in self.kernels)

    def summary(self) -> str:
        parts = [f"{k.op}: {k.us:.2f}us blocks={k.blocks} fill={k.sm_fill:.2f} smem={k.smem // 1024}KiB loop={k.loop}"
                 for k in self.kernels]
        return f"{self.total_us:.2f}us ({self.launches} kernels, {self.bytes / 1e6:.2f} MB): " + "; ".join(parts)


def sm_fill(blocks: int, c: Chip) -> float:
    waves = blocks / c.sms
    return waves / math.ceil(waves)


def graph_def_cost(body: Graph, c: Chip, figures=None, registers: int | None = None,
                   beside: bool = False) -> KernelCost:
    """`figures`: the generator's plan figures (plan_figures(body)) when the caller has them;
    `registers`: a thread's, from ptxas, once the kernel is compiled; `beside`: a loop of one whose
    weight copies run beside the call before (`runs_beside_the_call_before`)."""
    from ..lowering import plan_figures

    fig = plan_figures(body) if figures is None else figures
    blocks = body.grid_dim[0] * body.grid_dim[1] * body.grid_dim[2]
    threads = fig.threads  # the plan's (a row kernel picks its own)
    loop = body.forloop_range
    read = written = unique = 0
    tensor = simt = 0.0
    post = body.after_loop
    for index, node in enumerate(body.nodes):
        times = 1 if index in post else loop
        if node.op == "input_iterator":
            read += nbytes(node.types[0]) * blocks * (loop if node.attr("fmap") != -1 else 1)
            unique += nbytes(body.value_types[node.inputs[0]])
        elif node.op == "output_saver":
            written += nbytes(node.types[0])
        elif node.op == "matmul":
            k = body.value_types[node.inputs[0]].shape[-1]
            flops = 2.0 * math.prod(node.types[0].shape) * k * blocks * times
            if index in fig.tensor_core_matmuls:
                tensor += flops
            else:
                simt += flops
        elif node.op not in ACCUMULATORS:
            simt += math.prod(node.types[0].shape) * blocks * times
    fill = sm_fill(blocks, c)
    if fig.smem > c.smem_per_block:
        return KernelCost("graph_def", math.inf, read, written, blocks, fill, fig.smem, tensor + simt, loop)
    resident = c.resident_blocks(fig.smem, threads, registers)
    waves = math.ceil(blocks / (resident * c.sms))
    loaded = sum(b for b, _ in fig.tile_rows)
    slowed = sum(b * (r + c.row_overhead) / (c.stream_peak * r) for b, r in fig.tile_rows)
    efficiency = loaded / slowed if slowed else 1.0
    taken_in = read + (c.padded_intake - 1) * fig.padded_ring_bytes * blocks  # L2 -> SM bytes
    bandwidth = max((min(unique, read) / efficiency + written) / c.bandwidth, (taken_in + written) / c.l2_bandwidth)
    # the last wave's blocks stream while the rest of the SMs' slots sit idle (measured: 384 blocks
    # two to an SM, 1.34x the time of three to an SM, benchmarks/NOTES.md run 41)
    bandwidth *= plan.wave_slots(blocks, resident, c.sms) / blocks
    loop_trips = fig.loop_round_trips * loop if loop > 1 else 0.0
    latency = waves * c.mem_latency_us * 1e-6 * (loop_trips + fig.pre_round_trips)
    per_block = (taken_in + written) / blocks
    # the busiest SM's blocks in turns of `resident` streaming side by side (SwiGLU's 172-block gate
    # kernel, two on 40 SMs: 57.6 us, where one block's rate for both would take 68; NOTES.md run 79)
    per_sm = math.ceil(math.ceil(blocks / c.sms) / resident) * per_block / c.sm_bandwidth
    per_iteration = 0.0 if fig.unrolled else c.loop_iter_us * (loop > 1)
    iterations = waves * (loop * per_iteration + loop * fig.mma_chain * c.mma_step_us) * 1e-6
    warps = threads // 32
    mma_eff = min(1.0, warps * min(resident, math.ceil(blocks / c.sms)) / c.warps_for_mma)
    arithmetic = tensor / (c.tensor_flops * fill * mma_eff) + simt / (c.simt_flops * fill)
    element_us = c.register_element_us if fig.in_registers else c.thread_element_us
    serial = waves * (fig.thread_elements * element_us + fig.stage_rounds * c.stage_us) * 1e-6
    # a loop of one computes only once its copies have landed: its mma chain follows the latency,
    # and the latency grows with the chunks a thread copies
    copies = 0.0 if fig.in_registers or loop > 1 else fig.pre_chunks * c.copy_chunk_us * 1e-6
    if loop == 1:
        memory = max(bandwidth, per_sm, latency + copies + iterations)
        if beside:  # the weights' copies and intake under the call before: X's round trip remains
            memory = max(bandwidth, c.mem_latency_us * 1e-6 + iterations)
    elif resident == 1 and fig.stages == 1:
        # one block per SM copying synchronously: the SM streams nothing while it waits for a copy's
        # round trips, so the latencies add to the streaming time instead of hiding under it
        memory = latency + max(bandwidth, per_sm, iterations)
    else:
        memory = max(bandwidth, latency, per_sm, iterations)
    if c.serial_under_ring and loop > 1 and fig.stages > 1:
        us = c.launch_us + (max(memory, serial) + arithmetic) * 1e6
    else:
        us = c.launch_us + (memory + max(arithmetic, serial)) * 1e6
    terms = dict(bandwidth=bandwidth, latency=latency, per_sm=per_sm, iterations=iterations, copies=copies,
                 arithmetic=arithmetic, serial=serial)
    return KernelCost("graph_def", us, read, written, blocks, fill, fig.smem, tensor + simt, loop, threads, resident,
                      {name: t * 1e6 for name, t in terms.items()})


def config_lower_bound(c: Chip, blocks: int, read: int, unique: int, loop: int) -> float:
    """A lower bound of graph_def_cost for a configuration before its block graph exists: `read`
    bytes loaded by all blocks, `unique` bytes of distinct inputs (outputs not counted)."""
    bandwidth = max(min(unique, read) / c.bandwidth, read / c.l2_bandwidth)
    waves = math.ceil(blocks / (c.blocks_per_sm * c.sms))
    iterations = waves * loop * c.loop_iter_us * 1e-6 if loop > 1 else 0.0
    latency = c.mem_latency_us * 1e-6  # every block waits for its first tile at least once
    per_sm = math.ceil(math.ceil(blocks / c.sms) / c.blocks_per_sm) * read / blocks / c.sm_bandwidth
    return c.launch_us + max(bandwidth, iterations, latency, per_sm) * 1e6


def predefined_cost(graph: Graph, node, c: Chip) -> KernelCost:
    """A predefined kernel op costs what the block graph the lowering gives it costs; an op the
    lowering cannot take is costed as moving its bytes at the bandwidth."""
    from ..lowering import LoweringError
    from ..lowering.predefined import predefined_block_graph

    try:
        body = predefined_block_graph(node, [graph.value_types[v] for v in node.inputs])
    except LoweringError:
        body = None
    if body is not None:
        kc = graph_def_cost(body, c)
        return replace(kc, op=node.op)
    read = sum(nbytes(graph.value_types[v]) for v in node.inputs)
    written = sum(nbytes(t) for t in node.types)
    flops = 0.0
    if node.op == "matmul":
        a = graph.value_types[node.inputs[0]].shape
        flops = 2.0 * math.prod(node.types[0].shape) * a[-1]
    us = c.launch_us + (read + written) / c.bandwidth * 1e6 + flops / c.tensor_flops * 1e6
    return KernelCost(node.op, us, read, written, flops=flops)


def fused_combine_us(us: float, c: Chip) -> float:
    """A combine kernel run by the last blocks of the split reduction before it (the lowering's
    fuse_split_k): its time without a launch of its own."""
    return us - c.launch_us


def fits_half_the_sms(blocks: int, sms: int) -> bool:
    """Whether a grid of `blocks`, launched spread under the call before, finds SMs of its own at once."""
    return blocks <= sms // 2


def runs_beside_the_call_before(graph: Graph, n: int, constant_inputs: frozenset, c: Chip) -> bool:
    """Whether kernel-graph node n is a first kernel with a loop of one that reads a constant input
    (a weight) and whose grid fits half the SMs: launched under the call before, spread, its blocks
    find free SMs at once and copy the weights while that call runs (lora's 64-block plan, the
    fastest of its candidates: H200 runs 146-147, 183), where a grid of more blocks waits for the
    call before's to leave."""
    node = graph.nodes[n]
    if n != 0 or node.op != "graph_def" or node.body.forloop_range != 1:
        return False
    return bool(set(node.inputs) & set(constant_inputs)) and fits_half_the_sms(math.prod(node.body.grid_dim), c.sms)


def arrangement_of(graph: Graph, constant_inputs: frozenset, c: Chip):
    """The lowering's launches of a kernel graph of two or more graph_def kernels (for their plans
    and last_kernel_crowded), else None: a single kernel's needs no arranging."""
    from ..lowering.program import arrange_launches

    if sum(1 for node in graph.nodes if node.op == "graph_def") < 2:
        return None
    try:
        return arrange_launches(graph, constant_inputs, c.sms)
    except plan.LoweringError:
        return None


def last_kernel_crowded(arrangement, registers: dict[int, int], c: Chip) -> int | None:
    """The node of the last kernel of a call, where the call's first kernel overlaps the call before,
    the last one copies before its wait, and its grid has more blocks than the SMs hold beside the
    kernel before it's: its other blocks start only as that kernel's leave, and the next call's first
    kernel launches only once all of them have started, so consecutive calls stop pipelining. The
    clock said one more of that kernel's time (SwiGLU + down: its down projection of 256 blocks at 76
    KB, one of which fits beside the gate kernel on 92 SMs, 84 us, at 39 KB, three, 67 us; 512 blocks
    at 21 KB, five, 95 us; H200 run 185). None otherwise."""
    if arrangement is None or len(arrangement.starts) < 2:
        return None
    if not arrangement.first_overlaps or not arrangement.copies[-1]:
        return None
    before, last = arrangement.plans[-2], arrangement.plans[-1]
    n_before, n_last = arrangement.starts[-2], arrangement.starts[-1]
    fit = plan.blocks_beside(arrangement.launch_shared_bytes(-1), last.threads, registers.get(n_last),
                             (math.prod(before.g.grid_dim), arrangement.launch_shared_bytes(-2), before.threads),
                             registers.get(n_before), c.sms)
    return n_last if fit < math.prod(last.g.grid_dim) else None


def cost(graph: Graph, c: Chip | str = "sm_90", registers: dict[int, int] | None = None,
         constant_inputs: frozenset = frozenset()) -> Cost:
    """Per kernel-graph node (a combine fused into the kernel before it costs no launch), and the
    call's total (last_kernel_crowded's kernel counted twice).
    `registers`: a thread's registers in the kernel of node n (ptxas -v on the lowered program; a
    fused combine runs in its split kernel's), where known; `constant_inputs`: the program inputs
    that are weights (mirage-compile --constant-inputs), whose copies a first kernel may run beside
    the call before. The search passes neither (its candidates' ranking by the clock-fitted
    constants, mirage-compile's rank_with_registers, does)."""
    from ..lowering.fuse_split_k import fused_pairs

    c = chip(c) if isinstance(c, str) else c
    combines = {n + 1 for n in fused_pairs(graph)}
    registers = registers or {}
    arrangement = arrangement_of(graph, constant_inputs, c)
    figures = {n: p.figures() for n, p in zip(arrangement.starts, arrangement.plans)} if arrangement else {}
    kernels = []
    for n, node in enumerate(graph.nodes):
        if node.op == "graph_def":
            kc = graph_def_cost(node.body, c, figures.get(n), registers=registers.get(n - 1 if n in combines else n),
                                beside=runs_beside_the_call_before(graph, n, constant_inputs, c))
            kernels.append(replace(kc, op="graph_def (fused)", us=fused_combine_us(kc.us, c)) if n in combines else kc)
        else:
            kernels.append(predefined_cost(graph, node, c))
    crowded = last_kernel_crowded(arrangement, registers, c)
    again = kernels[crowded].us - c.launch_us if crowded is not None else 0.0
    return Cost(sum(k.us for k in kernels) + again, kernels)


def rank(candidates: list[Graph], c: Chip | str = "sm_90", measure=None) -> list[tuple[float, Graph]]:
    """Candidates sorted by estimated (or, with `measure`, measured) time; ties: fewer kernels."""
    scored = []
    for g in candidates:
        us = measure(g) if measure is not None else cost(g, c).total_us
        scored.append((us, len(g.nodes), g))
    scored.sort(key=lambda s: (s[0], s[1]))
    return [(us, g) for us, _, g in scored]
