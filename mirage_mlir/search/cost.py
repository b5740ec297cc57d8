"""A cost model that ranks verified mu-graphs without a GPU (estimated microseconds on the target chip).

Per kernel: launch overhead + time to move its device-memory bytes at the chip's bandwidth, scaled by
how well the grid fills the SMs (wave quantisation: blocks / (SMs * ceil(blocks / SMs))) + tensor-core
time for its matmuls (more warps per block hide latency better) + the for-loop's per-iteration
overhead. A block graph whose shared memory exceeds the chip's per-block limit is infeasible (inf).

Bytes: an input iterator reads its tile once per block and, when its fmap splits a dim, once per
loop iteration; a saver writes its output once; a predefined op reads its inputs and writes its
result once. Device memory (DRAM) moves every input byte once and every output byte once; tiles
that several blocks read (a replicated input: no grid axis splits it) come from L2 after the first
read, so a kernel's memory time is the larger of its DRAM bytes at `bandwidth` and all the bytes
its blocks load (replicas included) at `l2_bandwidth`. Replication is not free, but it costs L2
traffic, not DRAM traffic (cuBLAS reads a 16x4096 @ 4096x6144 f16 matmul's 16 rows once per
column tile and takes the same time as for 2 rows: 24.8 us vs 25.4 us on an H200).

`rank(candidates, measure=None)`: the hook for choosing by measured time later: pass a callable
Graph -> microseconds (e.g. a GPU timer) and it replaces the estimate for the candidates it is
given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..dtypes import BYTES
from ..mugraph import Graph, TensorType
from ..opset import ACCUMULATORS


@dataclass(frozen=True)
class Chip:
    name: str = "sm_90"
    sms: int = 132
    bandwidth: float = 2.97e12  # B/s, the streaming read bandwidth measured on the H100 (PLATFORM.md)
    # B/s, L2 -> SM: a reduction whose 2048 rows all read one 128 KiB - 8 MiB vector (so every read
    # after the first hits L2) ran 3.9-4.5 TB/s on an H200 (the H100's chip and L2), 1.2x its
    # DRAM-bound rate; a lower bound of what L2 serves
    l2_bandwidth: float = 4.5e12
    smem_per_block: int = 227 * 1024  # sm_90 opt-in maximum per block
    launch_us: float = 2.0  # per kernel (BENCHMARKS.md)
    tensor_flops: float = 4.0e14  # sustained f16 tensor-core FLOP/s (dense, H100 SXM ~ 990 peak)
    simt_flops: float = 3.0e13  # f32 FMA FLOP/s for elementwise work
    loop_iter_us: float = 0.05  # per for-loop iteration per wave (sync + pipeline bubble)
    warps_for_mma: int = 8  # warps per SM needed to hide tensor-core latency


CHIPS = {"sm_90": Chip(), "h100": Chip()}


def chip(name: str) -> Chip:
    try:
        return CHIPS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown target chip '{name}' (known: {', '.join(sorted(CHIPS))})") from None


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


def block_graph_smem(body: Graph) -> int:
    """Shared memory of one block as the GPU lowering will allocate it (tiles, buffers, padded
    tensor-core operands), so that no candidate the lowering must refuse wins the ranking."""
    from ..lowering import shared_memory_bytes

    return shared_memory_bytes(body)


def graph_def_cost(body: Graph, c: Chip, smem: int | None = None) -> KernelCost:
    """`smem`: the block's shared memory when the caller has it (block_graph_smem of the same graph
    at another block size: the allocation does not depend on it)."""
    blocks = body.grid_dim[0] * body.grid_dim[1] * body.grid_dim[2]
    loop = body.forloop_range
    read = written = unique = 0
    flops = simt = 0.0
    post = body.after_loop
    for index, node in enumerate(body.nodes):
        if node.op == "input_iterator":
            per = nbytes(node.types[0])
            read += per * blocks * (loop if node.attr("fmap") != -1 else 1)
            unique += nbytes(body.value_types[node.inputs[0]])
        elif node.op == "output_saver":
            written += nbytes(node.types[0])
        elif node.op == "matmul":
            a = body.value_types[node.inputs[0]].shape
            n = node.types[0].shape
            f = 2.0 * math.prod(n) * a[-1] * blocks
            flops += f * (1 if index in post else loop)
        elif node.op not in ACCUMULATORS:
            simt += math.prod(node.types[0].shape) * blocks * (1 if index in post else loop)
    fill = sm_fill(blocks, c)
    smem = block_graph_smem(body) if smem is None else smem
    if smem > c.smem_per_block:
        return KernelCost("graph_def", math.inf, read, written, blocks, fill, smem, flops, loop)
    warps = body.block_dim[0] * body.block_dim[1] * body.block_dim[2] // 32
    mma_eff = min(1.0, warps / c.warps_for_mma)
    waves = math.ceil(blocks / c.sms)
    memory = max(min(unique, read) + written, (read + written) * c.bandwidth / c.l2_bandwidth)
    us = (c.launch_us + memory / (c.bandwidth * fill) * 1e6
          + flops / (c.tensor_flops * fill * mma_eff) * 1e6 + simt / (c.simt_flops * fill) * 1e6
          + (loop * waves * c.loop_iter_us if loop > 1 else 0.0))
    return KernelCost("graph_def", us, read, written, blocks, fill, smem, flops, loop)


def predefined_cost(graph: Graph, node, c: Chip) -> KernelCost:
    read = sum(nbytes(graph.value_types[v]) for v in node.inputs)
    written = sum(nbytes(t) for t in node.types)
    flops = 0.0
    if node.op == "matmul":
        a = graph.value_types[node.inputs[0]].shape
        flops = 2.0 * math.prod(node.types[0].shape) * a[-1]
    us = c.launch_us + (read + written) / c.bandwidth * 1e6 + flops / c.tensor_flops * 1e6
    return KernelCost(node.op, us, read, written, flops=flops)


def cost(graph: Graph, c: Chip | str = "sm_90") -> Cost:
    c = chip(c) if isinstance(c, str) else c
    kernels = []
    for node in graph.nodes:
        if node.op == "graph_def":
            kernels.append(graph_def_cost(node.body, c))
        else:
            kernels.append(predefined_cost(graph, node, c))
    return Cost(sum(k.us for k in kernels), kernels)


def rank(candidates: list[Graph], c: Chip | str = "sm_90", measure=None) -> list[tuple[float, Graph]]:
    """Candidates sorted by estimated (or, with `measure`, measured) time; ties: fewer kernels."""
    scored = []
    for g in candidates:
        us = measure(g) if measure is not None else cost(g, c).total_us
        scored.append((us, len(g.nodes), g))
    scored.sort(key=lambda s: (s[0], s[1]))
    return [(us, g) for us, _, g in scored]
