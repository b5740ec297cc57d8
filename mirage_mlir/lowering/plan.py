"""The plan of one block graph's kernel: every decision the code generator takes before it writes any
text, and the figures the cost model reads from them (`BlockPlan.figures`).

Values and where they live:
- input iterators, reductions, and values read by a matmul or by several ops are *buffers* in
  dynamic shared memory (one `memref.view` each, in the value's own element type);
- accumulators are buffers of the compute type (f32; f64 in kernels holding f64 values) in shared
  memory, each element updated by the same thread in every iteration (so updates need no barrier),
  finalised (mean/rms) when read;
- single-use elementwise ops and thread graphs are *inline*: recomputed in registers inside the
  stage that consumes them (this is the thread-graph fusion);
- a matmul whose one consumer chain is elementwise and ends in a buffer, an accumulator or a saver
  is computed inside that stage (each thread a micro-tile, or each warp tensor-core tiles) and the
  chain is applied as an epilogue.

How the for-loop's tiles move: iterators that change every iteration go through a cp.async ring
(`stages` iterations in flight) as deep as shared memory allows while two blocks still share an SM;
the others are copied synchronously, their next iterations' tiles prefetched into loop-carried
registers. Loop-invariant iterators (fmap = -1) are copied once, before the loop. Synchronous
copies issue a thread's loads before its stores: all of them for small tiles (consecutive small
tiles together), COPY_BATCH at a time for large ones. A kernel with a loop of one copies the tiles
cp.async can copy straight into shared memory instead (`direct_copies`), one wait for all of them.
Reductions with fewer rows than warps give each row several warps (a shared scratch combines them).

A block graph whose values are all tiles [R, C] or their rows [R, 1] (elementwise ops, reductions
along rows outside the for-loop, elementwise accumulators over it, no matmul) is a *row kernel*
(`RowLayout`): no buffers at all, every value in registers, each thread holding the same chunks of
every tile, the for-loop unrolled (emit_rows), on as few threads as hold the tile in at most
MAX_ROW_SLOTS chunks each, whatever the block graph's block_dim.

Matmuls whose operands are f16 or bf16 buffers (K % 16, N % 8) run on tensor cores (mma.sync
m16n8k16); an f32 accum_sum of such a matmul is carried in registers across the loop when its warp
tiles split evenly over the warps (K sliced across warps when there are fewer tiles than warps).

A block graph whose matmuls are chained through row-wise CUDA-core ops (attention: exp(Q K) then
P V, with the row max and sums between) is a *warp-rows kernel* (`WarpRows`, FlashAttention 2's
layout): each warp owns 16-row slabs of every value, which live in registers in the mma
accumulator layout; row reductions are a thread's own elements plus two shuffles, the second
matmul takes P from registers, accumulators are loop-carried registers, and only the iterator
tiles use shared memory (emit_warp_rows). No barrier but the ring's.
"""

from __future__ import annotations

import contextvars
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

from ..evaluate import FloatDomain, apply_opset, evaluate
from ..mugraph import Graph, Node, TensorType
from ..opset import ACCUMULATORS, OPS
from .emitter import BYTES, STORAGE_TYPES, Emitter, Index, indices, memref_type

CODEGEN_VERSION = 57  # raise when generated kernels (and so the cost model's figures) change
MAX_SHARED_BYTES = 227 * 1024  # per block on sm_90 (sm_80: 163 KB), with the opt-in attribute
SHARED_ALIGN = 16
UNROLL = 4  # a per-thread loop with at most this many trips (and no remainder) is unrolled
COPY_UNROLL = 16  # most chunks per thread a tile copy unrolls (issuing all its loads before its stores)
COPY_BATCH = 8  # a longer copy loops over batches of this many chunks per thread: loads, then stores
PREFETCH_SLOTS = 32  # most 16-byte chunks per thread held in registers for coming iterations
PREFETCH_DEPTH = 4  # most iterations loaded ahead
# deepest cp.async ring for the for-loop's iterator tiles where the block graph does not say
# (Graph.max_stages; MIRAGE_MAX_STAGES: for experiments)
MAX_STAGES = int(os.environ.get("MIRAGE_MAX_STAGES", "4"))
# every block graph as if whole_k_warps were set (Graph.whole_k_warps; MIRAGE_WHOLE_K_WARPS=1: for experiments)
WHOLE_K_WARPS = os.environ.get("MIRAGE_WHOLE_K_WARPS") == "1"
# independent accumulator chains a warp deals a tile's K steps to, each step to the next chain, added
# after the walk: a dependent mma.sync step costs ~14 ns (cost.RANKING's fit), so a chain of 16 steps
# waits ~0.2 us where 4 chains of 4 wait a quarter of it. In a kernel with a loop of one nothing
# overlaps the chain (lora's X W: 16 steps after its X arrives), so there LOOP_OF_ONE_CHAINS; in a
# loop the chains overlap the ring's stream, one a tile (MIRAGE_MMA_CHAINS=N: N everywhere, experiments)
MMA_CHAINS = int(os.environ.get("MIRAGE_MMA_CHAINS", "0"))
LOOP_OF_ONE_CHAINS = 4
# loop-carried matmuls on sm_90a's warpgroup MMA where their tiles allow (wgmma_accumulators): gated_mlp
# bs8's 2-split plan 23.0 -> 21.5 us, no plan slower beyond noise (H200 run 192); MIRAGE_WGMMA=0: mma.sync
WGMMA = os.environ.get("MIRAGE_WGMMA", "1") != "0"
# a fused split-K tail (fuse_split_k) through a thread-block cluster of the 2 split blocks on sm_90:
# the partials stay in each block's shared memory and one block reads its peer's (distributed shared
# memory) after a cluster barrier, instead of a round trip through L2, a device fence and a counter:
# gated_mlp bs8's 2-split plans 6-8% faster (H100 run 201); MIRAGE_SPLIT_K_CLUSTER=0: the counters
SPLIT_K_CLUSTER = os.environ.get("MIRAGE_SPLIT_K_CLUSTER", "1") != "0"
WGMMA_ALIGN = 1024  # a 128-byte-swizzled wgmma operand's alignment: the swizzle repeats every 8 lines
# registers a thread keeps for everything but the wgmma accumulators the loop carries (every thread
# carries all of them, N / 2 registers for each 64 x N): gated_mlp's 128-column tiles at 512 threads
# (128 registers of accumulators, 128 a thread in all) spilled and ptxas serialized the wgmma (C7512)
WGMMA_HEADROOM = 64
MAX_THREAD_REGISTERS = 255
WGMMA_STACKED_ROWS = 8  # constant rows stacked below X's in its ring slot (Buffer.lines): one n8 of wgmma
WGMMA_LINE = 128  # bytes of a line of wgmma's 128-byte swizzle: an m64 weight block's 64 f16 or bf16 columns
_TARGET_HAS_WGMMA = contextvars.ContextVar("target_has_wgmma", default=True)  # the default chip, sm_90's
_TARGET_HAS_CLUSTERS = contextvars.ContextVar("target_has_clusters", default=True)  # sm_90 and later
MAX_CHAINED_TILES = 8  # most m16n8 accumulators (4 f32 registers each) a warp's chains hold at once
SMS = 132  # streaming multiprocessors of the target (H100 / H200 SXM)
SHARED_PER_SM = 228 * 1024
SHARED_RESERVED = 1024  # per resident block
THREADS_PER_SM = 2048
BLOCKS_PER_SM = 32
REGISTERS_PER_SM = 64 * 1024
REGISTER_UNIT = 8  # registers a thread is allocated in (256 a warp)
MAX_ROW_SLOTS = 4  # most chunks of a tile one thread of a row kernel holds (registers per value)
MAX_ROW_STEPS = 32  # most chunks x loop iterations a thread of a row kernel unrolls
MIN_SLICE_STEPS = 2  # fewest mma steps in a K slice of a tensor-core stage (plan.stage_kslices)
MMA_PAD = 8  # f16 elements added to each row of a tensor-core operand buffer that cannot be swizzled
SWIZZLE_CHUNK = 16  # bytes a swizzled buffer moves as a unit (a cp.async chunk, an ldmatrix row)


@contextmanager
def target(chip: str):
    """Plans made inside are for `chip` (lower_graph's): warpgroup MMA only where it exists, sm_90."""
    token = _TARGET_HAS_WGMMA.set(chip.removesuffix("a") == "sm_90")
    clusters = _TARGET_HAS_CLUSTERS.set(int("".join(c for c in chip if c.isdigit()) or 0) >= 90)
    try:
        yield
    finally:
        _TARGET_HAS_WGMMA.reset(token)
        _TARGET_HAS_CLUSTERS.reset(clusters)


def target_has_clusters() -> bool:
    """The chip of the plans being made launches thread-block clusters (sm_90 and later)."""
    return _TARGET_HAS_CLUSTERS.get()


def resident_blocks(shared_bytes: int, threads: int, shared_per_sm: int = SHARED_PER_SM,
                    threads_per_sm: int = THREADS_PER_SM, blocks_per_sm: int = BLOCKS_PER_SM,
                    registers: int | None = None) -> int:
    """Blocks of this size one SM holds at once; `registers` a thread (ptxas -v), where known, may
    hold it to fewer than its shared memory and threads allow."""
    held = min(shared_per_sm // (shared_bytes + SHARED_RESERVED), threads_per_sm // threads, blocks_per_sm)
    if registers:
        held = min(held, REGISTERS_PER_SM // (-(-registers // REGISTER_UNIT) * REGISTER_UNIT * threads))
    return max(1, held)


def blocks_beside(shared_bytes: int, threads: int, registers: int | None, other: tuple[int, int, int],
                  other_registers: int | None, sms: int = SMS) -> int:
    """Blocks of `shared_bytes` and `threads` (`registers` a thread where known) that the SMs hold
    beside the resident blocks of another grid `other` (blocks, shared bytes, threads), dealt evenly
    over the SMs."""
    other_blocks, other_shared, other_threads = other

    def registers_of(count: int, per_thread: int | None, block_threads: int) -> int:
        return count * -(-(per_thread or 0) // REGISTER_UNIT) * REGISTER_UNIT * block_threads

    held = min(other_blocks, resident_blocks(other_shared, other_threads, registers=other_registers) * sms)
    fewer, more = divmod(held, sms)  # `more` SMs hold fewer + 1 of the other grid's blocks
    fit = 0
    for count, count_sms in ((fewer + 1, more), (fewer, sms - more)):
        free = min((SHARED_PER_SM - count * (other_shared + SHARED_RESERVED)) // (shared_bytes + SHARED_RESERVED),
                   (THREADS_PER_SM - count * other_threads) // threads, BLOCKS_PER_SM - count)
        if registers:
            free = min(free, (REGISTERS_PER_SM - registers_of(count, other_registers, other_threads))
                       // registers_of(1, registers, threads))
        fit += max(free, 0) * count_sms
    return fit


def spread_shared_bytes(shared_bytes: int, threads: int, blocks: int, sms: int = SMS) -> int:
    """The dynamic shared memory to launch a grid with so that an SM holds at most the blocks the
    grid needs of it (ceil(blocks / sms)): where more would fit, blocks that start while other work
    holds some SMs (an overlapping launch) could crowd onto the others. Its own size where that
    many already fill an SM."""
    per_sm = -(-blocks // sms)
    if resident_blocks(shared_bytes, threads) <= per_sm:
        return shared_bytes
    spread = SHARED_PER_SM // (per_sm + 1) - SHARED_RESERVED + 1  # per_sm + 1 of these do not fit
    return max(shared_bytes, -(-spread // SHARED_ALIGN) * SHARED_ALIGN)


def wave_slots(blocks: int, resident: int, sms: int = SMS) -> int:
    """Block slots a grid occupies over its waves: a bandwidth-bound grid takes about this many
    times the time of one block (the last wave's empty slots included)."""
    capacity = resident * sms
    return -(-blocks // capacity) * min(capacity, blocks)


class LoweringError(Exception):
    """The graph cannot be lowered; `path` locates the node (as graph_verify's paths do)."""

    def __init__(self, message: str, path: tuple[int, ...] = ()):
        super().__init__(message)
        self.path = tuple(path)


@dataclass
class Buffer:
    name: str  # SSA name of the memref view
    shape: tuple[int, ...]  # the value's (logical) shape; indices are always logical
    dtype: str
    offset: int
    pad: int = 0  # extra elements at the end of each row (bank-conflict-free tensor-core fragments)
    stages: int = 1  # copies side by side: a ring that asynchronous copies fill ahead of the loop
    swizzle: bool = False  # 16-byte chunks of each row permuted by the row (swizzle_term), no padding
    # a swizzled [R, C] tile stored as `atoms` column blocks of WGMMA_LINE-byte rows, [R, C / atoms]
    # each, one after the other (as wgmma reads a weight tile wider than its m64), not as R rows of
    # C values; 1: rows
    atoms: int = 1
    # storage lines of each line block (of the tile when atoms is 1) where constant rows lie stacked
    # below the tile's (BlockPlan.stacked_rows: wgmma reads them as more of X's rows); 0: the rows
    lines: int = 0

    def at(self, em: Emitter, index: list[Index], name: str | None = None) -> str:
        """`name[indices]` (default: this buffer's name) of the element at logical `index`."""
        return f"{name or self.name}[{indices(em, self.place(em, index))}]"

    def place(self, em: Emitter, index: list[Index]) -> list[Index]:
        """Where logical `index` is stored: in a swizzled buffer, 16-byte chunk q of row r holds the
        row's chunk q ^ swizzle_term(r), so that eight rows of the same chunk (one ldmatrix, or a
        warp's cp.async copies of a column strip) fall in eight different bank groups while every
        row stays whole and 128-byte aligned. (Rows padded by 16 bytes also avoid the conflicts, but
        a warp's cp.async.cg copies into them fetch ~1.5x their bytes from L2: run 93.) An access
        must stay inside one chunk."""
        if not self.swizzle:
            return index
        chunk = SWIZZLE_CHUNK // BYTES[self.dtype]
        row = em.linearize(index[:-1], self.shape[:-1])
        if self.atoms > 1:  # column c of row r: line (c / width) R + r of the storage, whose lines are atoms'
            width = self.shape[-1] // self.atoms
            line = em.add(em.mul(em.div(index[-1], width), self.lines or self.shape[-2]), index[-2])
            column = em.xor(em.rem(index[-1], width), em.mul(swizzle_term(em, row, width // chunk), chunk))
            return index[:-2] + [line, column]
        term = swizzle_term(em, row, self.shape[-1] // chunk)
        return index[:-1] + [em.xor(index[-1], em.mul(term, chunk))]

    @property
    def stage_bytes(self) -> int:
        return -(-self.nbytes // SHARED_ALIGN) * SHARED_ALIGN

    @property
    def storage_shape(self) -> tuple[int, ...]:
        if self.atoms > 1:
            return self.shape[:-2] + ((self.lines or self.shape[-2]) * self.atoms, self.shape[-1] // self.atoms)
        if self.lines:
            return self.shape[:-2] + (self.lines, self.shape[-1] + self.pad)
        return self.shape[:-1] + (self.shape[-1] + self.pad,)

    @property
    def type(self) -> str:
        return memref_type(self.storage_shape, self.dtype, "workgroup")

    @property
    def nbytes(self) -> int:
        return math.prod(self.storage_shape) * BYTES[self.dtype]


def swizzle_term(em: Emitter, row: Index, chunks: int) -> Index:
    """The chunk permutation of a row of `chunks` 16-byte chunks (8 or a multiple, or 1, 2 or 4):
    eight consecutive rows meet one 128-byte bank line in eight different 16-byte groups."""
    period = min(chunks, 8)
    return em.rem(em.div(row, 8 // period), period)


def swizzles(shape: tuple[int, ...], dtype: str) -> bool:
    """Whether a buffer's rows split into chunks that swizzle_term can permute."""
    chunk = SWIZZLE_CHUNK // BYTES[dtype]
    chunks = shape[-1] // chunk if shape[-1] % chunk == 0 else 0
    return chunks in (1, 2, 4) or (chunks > 0 and chunks % 8 == 0)


@dataclass(frozen=True)
class PlanFigures:
    """A block kernel's memory pipeline as the generator plans it (per block; bytes of tiles)."""

    smem: int  # dynamic shared memory
    threads: int
    loop: int  # for-loop trip count
    stages: int  # cp.async ring depth (1: no ring)
    prefetch_depth: int  # iterations of synchronously copied tiles loaded ahead into registers
    ring_bytes: int  # per iteration, through the cp.async ring
    sync_bytes: int  # per iteration, copied through registers (loads, then stores)
    sync_round_trips: float  # memory latencies those copies wait per iteration (less when prefetched)
    pre_round_trips: int  # memory latencies the copies of loop-invariant tiles wait, one after another
    tensor_core_matmuls: frozenset  # node indices of the matmuls on tensor cores (in the block graph given)
    mma_chain: int  # dependent mma.sync steps a warp runs per loop iteration (the arithmetic's latency)
    tile_rows: tuple  # per input iterator: (bytes a block loads in all, contiguous bytes per tile row)
    thread_elements: int = 0  # elements one thread computes one after another, over every CUDA-core stage
    stage_rounds: int = 0  # those stages, one after another, each ending at a barrier (loop iterations counted)
    unrolled: bool = False  # a row kernel: its for-loop is unrolled, no barrier or wait per iteration
    in_registers: bool = False  # a warp-rows kernel: its CUDA-core elements are register values
    pre_chunks: int = 0  # chunks one thread copies synchronously before the loop (loads, then stores)
    padded_ring_bytes: int = 0  # of those through the ring, the bytes copied into padded rows (MMA_PAD)

    @property
    def loop_round_trips(self) -> float:
        """Memory latencies one loop iteration cannot hide: the ring's wait (stages - 1 iterations
        ahead) and the synchronous copies'."""
        return (1 / (self.stages - 1) if self.ring_bytes else 0.0) + self.sync_round_trips


@dataclass(frozen=True)
class CopyGeometry:
    """How iterator `i`'s tile (of kernel input `tensor`) is copied: `width`-element vectors (16 bytes
    where alignment allows)."""

    i: int
    tensor: int
    shape: tuple[int, ...]
    dtype: str
    whole: TensorType  # the kernel input
    width: int

    @property
    def chunk_shape(self) -> tuple[int, ...]:
        return self.shape[:-1] + (self.shape[-1] // self.width,)

    @property
    def n_chunks(self) -> int:
        return numel(self.shape) // self.width

    @property
    def gmem(self) -> str:
        return memref_type(self.whole.shape, self.whole.dtype)

    @property
    def vec(self) -> str:
        return f"vector<{self.width}x{self.dtype}>" if self.width > 1 else self.dtype

    @property
    def align(self) -> int:
        return self.width * BYTES[self.dtype]


@dataclass(frozen=True)
class RegisterAccumulator:
    """An accumulator carried in registers across the for-loop: matmul `mm`'s warp tiles of wm x wn
    mma tiles (`tiles`: their grid), `per_warp` of them per warp, K split into `kslices` slices."""

    mm: int
    wm: int
    wn: int
    tiles: tuple[int, ...]
    per_warp: int
    kslices: int
    columns: int = 0  # the matmul's N when the tiles cover more (padding tiles): 0 when they cover N exactly
    # on warpgroup MMA (wgmma_accumulators): warpgroup w computes unit u (this one: `unit`) where
    # w % units == u % warpgroups, K slice w // units (kslices warpgroups a unit, or units / warpgroups
    # units a warpgroup); wm = the weight tile's m64 blocks, wn = X's rows / 8 (a thread's
    # vector<2x2xf32> registers: wn a block)
    wgmma: bool = False
    unit: int = 0
    units: int = 1
    # A a constant tile (plan.constant_operands: LayerNorm's ones): every row of the product is the
    # same column sums, carried as W^T's sums, one m16n8 tile per 16 columns (see MatmulEmitter)
    column_sums: bool = False
    # on wgmma: a constant operand read as the rows stacked below X's in X's ring slot (stacked_rows),
    # computed by the wgmma of its unit's accumulator of X (one chain, N = X's rows + the stacked rows)
    stacked: bool = False

    @property
    def count(self) -> int:
        """vector<2x2xf32> registers per thread the loop carries."""
        return self.per_warp * self.wn // 2 if self.column_sums else self.tile_count

    @property
    def tile_count(self) -> int:
        """vector<2x2xf32> registers per thread of the warp tiles (the totals after the loop)."""
        return self.per_warp * self.wm * self.wn


@dataclass(frozen=True)
class RowLayout:
    """A row kernel's layout: the tile `shape` [..., C] in chunks of `width` consecutive elements;
    thread t of the chunks / slots threads holds chunks t, t + threads, ... (`slots` of them), so a
    warp's 32 chunks of one slot lie side by side in one row (C is a multiple of 32 chunks)."""

    shape: tuple[int, ...]
    width: int
    slots: int

    @property
    def chunk_shape(self) -> tuple[int, ...]:
        return self.shape[:-1] + (self.shape[-1] // self.width,)

    @property
    def row_slots(self) -> int:
        """Consecutive slots of a thread that lie in one row (the thread combines them before its
        warp's shuffles): a row's chunks over the threads where they divide it, else 1."""
        per_row = self.shape[-1] // self.width
        return per_row // self.threads if per_row % self.threads == 0 else 1

    @property
    def warp_totals_per_row(self) -> int:
        """The warp totals of a row's reduction: one for each run of 32 * row_slots of its chunks."""
        return self.shape[-1] // (32 * self.width * self.row_slots)

    @property
    def row_shape(self) -> tuple[int, ...]:
        return self.shape[:-1] + (1,)

    @property
    def threads(self) -> int:
        """The threads that hold chunks (a launch with more leaves the rest idle)."""
        return numel(self.chunk_shape) // self.slots


@dataclass(frozen=True)
class WarpRows:
    """A warp-rows kernel's layout: every value is [..., rows, C] or its rows [..., rows, 1] (leading
    dims 1); warp w owns rows 16 * wm * w .. + 16 * wm, as wm mma tiles of 16 rows."""

    rows: int
    wm: int

    @property
    def warps(self) -> int:
        return self.rows // (16 * self.wm)


MAX_WARP_ROW_REGISTERS = 64  # f32 values of one [rows, C] value a thread may hold (wm * C / 2)


def mma_chains(steps: int, tiles: int, loop_of_one: bool) -> int:
    """Independent accumulator chains a warp walks `steps` K steps of its `tiles` m16n8 tiles in, in
    a kernel with a loop of one or not: the most, up to MMA_CHAINS (LOOP_OF_ONE_CHAINS or 1 by
    default), that divide the steps into chains of two or more and keep the chains' accumulators
    within MAX_CHAINED_TILES (1: one chain)."""
    wanted = MMA_CHAINS or (LOOP_OF_ONE_CHAINS if loop_of_one else 1)
    most = min(wanted, steps // 2, MAX_CHAINED_TILES // tiles)
    return next((c for c in range(most, 1, -1) if steps % c == 0), 1)


def dependent_steps(steps: int, tiles: int, loop_of_one: bool) -> int:
    """The longest chain of dependent mma steps in a warp's walk of `steps` K steps of its `tiles`
    tiles: one chain's steps, and the additions of the chains' sums after the walk."""
    chains = mma_chains(steps, tiles, loop_of_one)
    return steps // chains + (chains - 1).bit_length()


def _multiplies_by_zero(node: Node) -> bool:
    """Whether a one-input op (or thread graph) starts by multiplying its input by 0, and reads it
    nowhere else."""
    if node.op == "thread_graph":
        users = [n for n in node.body.nodes if 0 in n.inputs]
        return len(users) == 1 and _multiplies_by_zero(users[0]) and 0 not in node.body.outputs
    return node.op == "mul_scalar" and node.attr("scalar") == 0


def numel(shape) -> int:
    return math.prod(shape)


def vector_width(dtype: str, *dims: int) -> int:
    """The widest vector (at most 16 bytes) whose length divides every dim."""
    width = 16 // BYTES[dtype]
    while width > 1 and any(d % width for d in dims):
        width //= 2
    return width


IDENTITY_ACCUMULATORS = ("accum_sum", "accum_mean", "accum_max")


def without_identity_accumulators(graph: Graph) -> tuple[Graph, tuple[int, ...]]:
    """`graph` less its accumulators that are their input (a sum, mean or max over a loop of one
    iteration, in the input's own type): their uses read the input. Else a matmul operand would be
    copied element by element from its tile into a padded buffer of the accumulator's (lora's
    kernel: three such copy loops before its first mma). Also each kept node's index in `graph`."""
    if graph.forloop_range != 1:
        return graph, tuple(range(len(graph.nodes)))
    types = graph.value_types
    n_in = len(graph.inputs)
    source: dict[int, int] = {}  # value of graph -> value of the new graph
    source.update((v, v) for v in range(n_in))
    nodes, origin = [], []
    kept = n_in  # the new graph's next value
    for i, node in enumerate(graph.nodes):
        first = graph.first_result[i]
        inputs = tuple(source[v] for v in node.inputs)
        if (node.op in IDENTITY_ACCUMULATORS and node.attr("reduce_dim", -1) == -1 and inputs[0] >= n_in
                and types[node.inputs[0]] == node.types[0]):
            source[first] = inputs[0]
            continue
        source.update((first + r, kept + r) for r in range(len(node.types)))
        kept += len(node.types)
        nodes.append(replace(node, inputs=inputs))
        origin.append(i)
    if len(nodes) == len(graph.nodes):
        return graph, tuple(origin)
    return replace(graph, nodes=tuple(nodes), outputs=tuple(source[v] for v in graph.outputs)), tuple(origin)


class BlockPlan:
    """The decisions for block graph `graph`: node kinds, buffers and their shared-memory layout,
    phases, the cp.async ring, tensor-core matmuls and their warp tiling, register accumulators."""

    def __init__(self, graph: Graph, path: tuple[int, ...] = (), use_mma: bool = True, prefetch: bool = True,
                 pipeline: bool = True, smem_budget: int | None = None, fixed_threads: bool = False):
        self.use_mma = use_mma
        # the shared memory this block graph should stay within (a combine fused into a kernel must not
        # cost that kernel resident blocks): it then gets no deeper ring than the budget allows
        self.smem_budget = smem_budget
        self.prefetch = prefetch
        self.path = path
        bx, by, bz = graph.block_dim
        if by != 1 or bz != 1 or bx % 32 or not 32 <= bx <= 1024:
            raise LoweringError(f"block_dim {graph.block_dim} is not supported (need (32k,1,1), k <= 32)", path)
        for i, node in enumerate(graph.nodes):
            if len(node.types) != 1:
                raise LoweringError(f"'{node.op}' with {len(node.types)} results is not supported", path + (i,))
            for t in node.types:
                if t.dtype not in STORAGE_TYPES or not t.is_static():
                    raise LoweringError(f"'{node.op}' has type {t}: static f16/bf16/f32/f64 tensors only", path + (i,))
        for t in graph.inputs:
            if t.dtype not in STORAGE_TYPES or not t.is_static():
                raise LoweringError(f"kernel tensor of type {t}: static f16/bf16/f32/f64 tensors only", path)
        # the graph the kernel computes; origin[i]: node i's index in the block graph given (for diagnostics)
        self.g, self.origin = without_identity_accumulators(graph)
        graph = self.g
        self.threads = bx
        self.warps = bx // 32
        self.loop = graph.forloop_range
        self.n_in = len(graph.inputs)
        self.types = graph.value_types
        self.node_of = {v: i for v, (i, _) in graph.producers.items()}
        self.consumers: dict[int, list[int]] = {}
        for i, node in enumerate(graph.nodes):
            for v in node.inputs:
                self.consumers.setdefault(v, []).append(i)
        # arithmetic in f32, or in f64 when the kernel holds f64 values (each result is still rounded
        # to its own type, so an f32 op computed in f64 and rounded gives the f32 result)
        self.ctype = "f64" if any(t.dtype == "f64" for t in graph.value_types) else "f32"
        self.kind = [self._kind(i, n) for i, n in enumerate(graph.nodes)]
        self.buffered = [self._initially_buffered(i) for i in range(len(graph.nodes))]
        for i, k in enumerate(self.kind):
            if k == "matmul" and not self.buffered[i] and not self._matmul_chain_ok(i):
                self.buffered[i] = True
        self.invariant = self._invariants()
        self.fragment_operands = self._fragment_operands()
        self.phase = [self._phase_of(i) for i in range(len(graph.nodes))]
        self.warp_rows = self._warp_rows() if smem_budget is None and not fixed_threads else None
        if self.warp_rows is not None:
            # its own thread count (one warp per slab of rows); only the iterators need shared memory
            self.threads, self.warps = 32 * self.warp_rows.warps, self.warp_rows.warps
            self.buffered = [k == "iter" for k in self.kind]
            self.fragment_operands = {}  # its matmuls read computed operands from registers anyway
        for j in self.fragment_operands:
            self.buffered[j] = False
        self.constant_operands = self._constant_operands()
        self.constant_tiles: dict[int, Buffer] = {}  # set once wgmma is chosen (_constant_tiles)
        self.stacked_constants: dict[int, float] = {}  # likewise
        self.stacked_rows = self._stacked_rows()
        self.ring: list[int] = []  # loop iterators filled by cp.async, `stages` iterations ahead
        self.stages = 1
        self.pipeline = pipeline  # cp.async at all (the ring, a loop of one's direct copies)
        if pipeline:
            self._choose_stages()
        self.rows = self._row_layout(fixed_threads) if self.warp_rows is None else None
        if self.rows is not None and not fixed_threads:
            # a row kernel runs on the threads its layout needs (any count computes the same)
            self.threads = self.rows.threads
            self.warps = self.threads // 32
        # a row kernel's reductions: each warp's total per node (one slot after another), else none
        self.row_scratch: dict[int, Buffer] = {}
        if self.rows is not None:
            self.buffers, self.max_buffers, self.scale_buffers, self.scratch, self.reg_accs = {}, {}, {}, None, {}
            self.wgmma = False
            self.carried_rows, self.k_slices = {}, None
            self.ring, self.stages, self.shared_bytes = [], 1, 0
            for i, kind in enumerate(self.kind):
                if kind in ("reduce", "acc_reduce1"):
                    warp_totals = numel(self.rows.chunk_shape) // 32
                    self.row_scratch[i] = Buffer(f"%rowsum{i}", (warp_totals,), self.ctype, self.shared_bytes)
                    self.shared_bytes += self.row_scratch[i].stage_bytes
            return
        # node index -> buffer (iterators, buffered values, accumulators); accum_rescaled_sum's running max
        self.buffers, self.max_buffers, self.scale_buffers, self.shared_bytes = self._allocate(self.stages)
        # split-row reductions' per-warp results, after everything else
        self.scratch = (Buffer("%scratch", (self.warps,), self.ctype, self.shared_bytes)
                        if self.warp_rows is None and self.splits_rows() else None)
        if self.scratch is not None:
            self.shared_bytes += self.scratch.stage_bytes
        self.reg_accs = self._register_accumulators() if self.warp_rows is None else {}
        if self._wgmma_target():
            self.reg_accs.update(self.wgmma_accumulators())
        self.wgmma = any(info.wgmma for info in self.reg_accs.values())
        # wgmma's constant operands (LayerNorm's ones), filled once before the loop: rows stacked below
        # X's in its ring slots ({X: the constant}), else tiles of their own
        self.stacked_constants = {self.fragment_operands[j]: self.constant_operands[j] for j in
                                  (self.node_of[self.g.nodes[info.mm].inputs[0]] for info in self.reg_accs.values()
                                   if info.stacked)}
        self.constant_tiles = self._constant_tiles(self.reg_accs, self.shared_bytes)
        for i, buf in self.constant_tiles.items():
            self.buffers[i] = buf
            self.shared_bytes = buf.offset + buf.stage_bytes
        # tiles laid out in line blocks for wgmma that it does not read go back to plain rows
        wgmma_operands = {self.node_of[v] for info in self.reg_accs.values() if info.wgmma
                          for v in self.g.nodes[info.mm].inputs}
        self.buffers = {i: b if b.atoms == 1 or i in wgmma_operands else replace(b, atoms=1)
                        for i, b in self.buffers.items()}
        self.carried_rows = self._carried_rows() if self.warp_rows is None else {}
        # where the K slices of tensor-core stages meet: [warp, register, lane] f32, after everything else
        registers = max((self.k_slice_registers(root, matmuls) for root, matmuls in self.matmul_stages()), default=0)
        self.k_slices = Buffer("%kslices", (self.warps, registers, 32), "f32", self.shared_bytes) if registers else None
        if self.k_slices is not None:
            self.shared_bytes += self.k_slices.stage_bytes

    # -- values ----------------------------------------------------------------------------------
    def node_path(self, i: int) -> tuple[int, ...]:
        """Where node i is, for a diagnostic (in the block graph given, not the one computed)."""
        return self.path + (self.origin[i],)

    def value(self, i: int) -> int:
        return self.g.first_result[i]

    def vtype(self, v: int) -> TensorType:
        return self.types[v]

    def _kind(self, i: int, node: Node) -> str:
        op = node.op
        if op == "input_iterator":
            return "iter"
        if op == "output_saver":
            return "saver"
        if op in ACCUMULATORS:
            reduce_dim = node.attr("reduce_dim", -1)
            if self.loop == 1:
                return "acc_id" if reduce_dim == -1 else "acc_reduce1"
            return "acc"
        if op == "thread_graph":
            return "ew"
        if op not in OPS or op == "rms_norm":
            raise LoweringError(f"'{op}' cannot appear in a block graph", self.node_path(i))
        category = OPS[op].category
        if category in ("unary", "binary"):
            return "ew"
        return {"reduce": "reduce", "matmul": "matmul"}[category]

    def _initially_buffered(self, i: int) -> bool:
        kind = self.kind[i]
        if kind in ("iter", "reduce", "acc_reduce1"):
            return True
        if kind in ("ew", "acc_id", "matmul"):
            users = self.consumers.get(self.value(i), [])
            if len(users) != 1 or self.kind[users[0]] == "matmul":
                return True
            # a value its consumer broadcasts (a row's rsqrt over the row) would be recomputed for
            # every element of the consumer: computed once into a buffer instead
            user = users[0]
            return (self.kind[user] in ("ew", "acc_id")
                    and numel(self.vtype(self.value(i)).shape) < numel(self.g.nodes[user].types[0].shape))
        return False  # acc (own buffer), saver

    def _matmul_chain_ok(self, i: int) -> bool:
        """A matmul can be computed inside the stage its single-consumer elementwise chain ends in."""
        shape = self.vtype(self.value(i)).shape
        cur = i
        while True:
            (c,) = self.consumers[self.value(cur)]
            kind, node = self.kind[c], self.g.nodes[c]
            if kind in ("ew", "acc_id"):
                if self.vtype(self.value(c)).shape != shape:
                    return False
                if self.buffered[c]:
                    return True
                cur = c
                continue
            if kind == "acc":
                return (node.attr("reduce_dim", -1) == -1 and node.op != "accum_rescaled_sum"
                        and node.inputs[0] == self.value(cur))
            return kind == "saver"

    def _fragment_operands(self) -> dict[int, int]:
        """Elementwise values read only as tensor-core matmuls' A operand, each a chain of ops over a
        tile in shared memory of its type and shape (the chain's other operands buffers it
        broadcasts, e.g. a row's mean): computed on the A fragments ldmatrix loads from that tile (a
        few ALU instructions per fragment) instead of into a buffer of their own, a stage through
        shared memory and a barrier each iteration (LayerNorm's ones, x * 0 + 1, at K tiles of 128:
        NOTES.md run 166). {node: the node whose tile ldmatrix reads}."""
        if not self.use_mma or self.ctype != "f32":
            return {}
        out = {}
        for j, kind in enumerate(self.kind):
            v = self.value(j)
            users = self.consumers.get(v, [])
            if kind != "ew" or not users or any(
                    self.kind[u] != "matmul" or self.g.nodes[u].inputs[1] == v for u in users):
                continue
            if j in self.invariant and any(u not in self.invariant for u in users):
                continue  # made once before the loop into a buffer, not again every iteration
            source = self._fragment_source(j)
            if source is not None and all(self._tile_b_ok(v, self.g.nodes[u].inputs[1]) for u in users):
                out[j] = source
        return out

    def _fragment_source(self, j: int) -> int | None:
        """The buffered node of value j's type and shape that j's chain of elementwise ops starts from,
        every other operand of the chain a buffer (broadcast to j's shape); None if there is none."""
        shape = self.vtype(self.value(j)).shape
        cur = j
        while self.kind[cur] == "ew":  # an op or a thread graph (the search fuses chains into them)
            main = [a for a in self.g.nodes[cur].inputs if self.vtype(a).shape == shape]
            side = [a for a in self.g.nodes[cur].inputs if a not in main]
            if len(main) != 1 or main[0] < self.n_in or any(
                    a < self.n_in or not self.buffered[self.node_of[a]] or self.kind[self.node_of[a]] == "acc"
                    for a in side):
                return None
            (a,) = main
            source = self.node_of[a]
            if self.buffered[source] and self.kind[source] != "acc":
                return source if self.vtype(a) == self.vtype(self.value(j)) else None
            if self.kind[source] != "ew" or len(self.consumers[a]) != 1:
                return None
            cur = source
        return None

    def _constant_operands(self) -> dict[int, float]:
        """Fragment operands that are one constant c wherever their source tile is finite: a chain of
        one-input ops whose first multiplies the tile by 0 (LayerNorm's ones, x * 0 + 1). For a
        finite x, x * 0 is +0 or -0, so where the chain gives the same c at x = +0 and x = -0 it is c
        (in the finite fields the verifier proves plans in, x * 0 = 0 for every x). {node: c}"""
        out = {}
        for j, source in self.fragment_operands.items():
            chain = [j]
            while len(self.g.nodes[chain[-1]].inputs) == 1 and self.node_of[self.g.nodes[chain[-1]].inputs[0]] != source:
                chain.append(self.node_of[self.g.nodes[chain[-1]].inputs[0]])
            nodes = [self.g.nodes[c] for c in reversed(chain)]
            if any(len(n.inputs) != 1 for n in nodes) or not _multiplies_by_zero(nodes[0]):
                continue  # side operands (a row's mean), or not multiplied by 0 first
            values = []
            for x in (0.0, -0.0):
                value = np.array(x, np.float32)
                for n in nodes:
                    value = (evaluate(n.body, [value])[0] if n.op == "thread_graph"
                             else apply_opset(FloatDomain(), n, [value], n.types[0].dtype))
                values.append(np.float32(value))
            if values[0] == values[1] and np.signbit(values[0]) == np.signbit(values[1]):
                out[j] = float(values[0])
        return out

    def operand_node(self, v: int) -> int:
        """The node whose shared-memory tile a tensor-core matmul's operand v is loaded from."""
        i = self.node_of[v]
        return self.fragment_operands.get(i, i)

    def _stacked_rows(self) -> dict[int, int]:
        """Tiles X whose ring slots hold WGMMA_STACKED_ROWS constant rows below X's, on a wgmma target:
        where a constant operand (constant_operands) of X's shape is multiplied by the weight of a
        matmul of X itself (LayerNorm: the ones' column sums beside x W), one wgmma of N = X's rows +
        8 computes both and reads the weight once (two chains read it twice: 80 KB of shared memory
        an iteration for LayerNorm's K tiles of 256 instead of 44). {X's node: rows}"""
        if not self._wgmma_target():
            return {}
        out = {}
        for mm, kind in enumerate(self.kind):
            a, w = self.g.nodes[mm].inputs if kind == "matmul" else (None, None)
            j = self.node_of.get(a)
            if j not in self.constant_operands:
                continue
            x = self.fragment_operands[j]
            (rows, k), (_, n) = self.vtype(self.value(x)).shape, self.vtype(w).shape  # wgmma's own bounds
            if rows % 8 or k % 64 or n % 64 or self.vtype(w).dtype not in ("f16", "bf16"):
                continue
            if self.kind[x] == "iter" and any(self.kind[c] == "matmul" and tuple(self.g.nodes[c].inputs) == (self.value(x), w)
                                              for c in self.consumers.get(self.value(x), [])):
                out[x] = WGMMA_STACKED_ROWS
        return out

    def _invariants(self) -> set[int]:
        """Node indices whose values are the same in every loop iteration."""
        inv: set[int] = set()
        for i, node in enumerate(self.g.nodes):
            if self.kind[i] == "iter":
                if node.attr("fmap") == -1 or self.loop == 1:
                    inv.add(i)
            elif self.kind[i] not in ("acc", "saver") and all(
                    v >= self.n_in and self.node_of[v] in inv for v in node.inputs):
                inv.add(i)
        return inv

    def _phase_of(self, i: int) -> str:
        """"pre" (before the for-loop), "loop" or "post"."""
        if self.loop == 1:
            return "pre"
        if i in self.g.after_loop or self.kind[i] == "saver":
            return "post"
        if self.kind[i] == "acc":
            return "loop"
        return "pre" if i in self.invariant else "loop"

    def is_buffer(self, i: int) -> bool:
        return self.buffered[i] or self.kind[i] == "acc" or i in self.constant_tiles

    def inline_matmuls(self, v: int, root: bool = True) -> list[int]:
        """Matmul node indices computed inside the stage whose root value is v."""
        if v < self.n_in:
            return []
        i = self.node_of[v]
        if self.kind[i] == "matmul" and (root or not self.buffered[i]):
            return [i]
        if self.is_buffer(i) and not root:
            return []
        if self.kind[i] in ("ew", "acc_id"):
            out = []
            for a in self.g.nodes[i].inputs:
                out += self.inline_matmuls(a, root=False)
            return out
        return []

    def _row_layout(self, fixed_threads: bool) -> RowLayout | None:
        """The row-kernel layout when this block graph is one (see the module doc), else None: input
        tiles of one shape [..., C] or its rows [..., 1]; every value that shape or its rows;
        reductions along the last dim, and only outside the for-loop; accumulators over the loop
        elementwise (no reduce_dim); each thread the same number (at most MAX_ROW_SLOTS) of chunks,
        the loop unrolled (loop x chunks at most MAX_ROW_STEPS)."""
        iters = [i for i, kind in enumerate(self.kind) if kind == "iter"]
        if not iters:
            return None
        full = max((self.g.nodes[i].types[0].shape for i in iters), key=numel)
        row = full[:-1] + (1,)
        if full == row:
            return None
        widths, reduces = [], False
        for i, node in enumerate(self.g.nodes):
            kind = self.kind[i]
            shape = self.vtype(node.inputs[0]).shape if kind == "saver" else node.types[0].shape
            inputs = [self.vtype(v).shape for v in node.inputs]
            if kind == "iter":
                if shape not in (full, row):
                    return None
                if shape == full:
                    widths.append(vector_width(node.types[0].dtype, full[-1], inputs[0][-1]))
            elif kind in ("reduce", "acc_reduce1"):
                dim = node.attr("dim") if node.op in OPS else node.attr("reduce_dim")
                if (node.op == "accum_rescaled_sum" or inputs[0] != full or dim % len(full) != len(full) - 1
                        or self.phase[i] == "loop"):
                    return None
                reduces = True
            elif kind == "acc":
                if node.attr("reduce_dim", -1) != -1 or shape not in (full, row):
                    return None
                if any(s not in (shape, row) for s in inputs):
                    return None
            elif kind in ("ew", "acc_id"):
                if shape not in (full, row) or any(s not in (shape, row) for s in inputs):
                    return None
            elif kind != "saver" or shape not in (full, row):
                return None
        width = min(widths)
        chunks = numel(full) // width
        if reduces and full[-1] % (32 * width):
            return None  # a warp's chunks of one slot must lie in one row
        if fixed_threads:
            # the launch's threads are given (a combine run by the last block of a split, fuse_split_k):
            # as many of them as hold the tile in the fewest chunks each, the others idle (no
            # barrier may then run: no reductions)
            for slots in range(1, MAX_ROW_SLOTS + 1):
                if not reduces and chunks % slots == 0 and chunks // slots <= self.threads and \
                        slots * self.loop <= MAX_ROW_STEPS:
                    return RowLayout(full, width, slots)
            return None
        # the fewest threads (each with the most chunks) that hold the tile: the block's fixed work
        # (addresses, each reduction's totals) repeats in every warp; ntrans ran 1.85 us at 128
        # threads of 4 chunks against 2.43 at 512 of 1 (NOTES.md, run 19)
        for slots in range(MAX_ROW_SLOTS, 0, -1):
            threads = chunks // slots
            if chunks % slots == 0 and threads % 32 == 0 and 32 <= threads <= 1024 and \
                    slots * self.loop <= MAX_ROW_STEPS:
                return RowLayout(full, width, slots)
        return None

    def _warp_rows(self) -> WarpRows | None:
        """The warp-rows layout when this block graph is one (see the module doc), else None: matmuls
        on tensor cores, at least one of them reading a value computed from another matmul (a chain
        of CUDA-core ops between them with row reductions, the case the layout exists for) and all of them inside the
        for-loop; every computed value [..., R, C] (C % 8 == 0) or [..., R, 1] with the same R (a
        multiple of 16) and leading dims 1; reductions along rows; accumulators elementwise over
        the loop; a matmul's A an iterator tile or a computed value, its B an iterator tile (f16 or
        bf16, K % 16 == 0, N % 8 == 0)."""
        if not self.use_mma or self.ctype != "f32":
            return None
        matmuls = [i for i, k in enumerate(self.kind) if k == "matmul"]
        loop_phase = "loop" if self.loop > 1 else "pre"
        if not matmuls or any(self.phase[i] != loop_phase for i in matmuls):
            return None
        rows = self.vtype(self.value(matmuls[0])).shape[-2]
        if rows % 16:
            return None

        def row_tile(shape: tuple[int, ...]) -> bool:
            return (len(shape) >= 2 and numel(shape[:-2]) == 1 and shape[-2] == rows
                    and (shape[-1] == 1 or shape[-1] % 8 == 0))

        def after_matmul(v: int, seen: set) -> bool:
            if v < self.n_in or v in seen:
                return False
            seen.add(v)
            j = self.node_of[v]
            return self.kind[j] == "matmul" or any(after_matmul(a, seen) for a in self.g.nodes[j].inputs)

        widest, chained, row_wise = 1, False, False
        for i, node in enumerate(self.g.nodes):
            kind = self.kind[i]
            if kind == "iter":
                continue
            shape = self.vtype(node.inputs[0]).shape if kind == "saver" else node.types[0].shape
            operands = node.inputs[:1] if kind == "matmul" else node.inputs  # B: a [K, N] tile
            if not row_tile(shape) or not all(row_tile(self.vtype(v).shape) for v in operands):
                return None
            widest = max(widest, shape[-1])
            if kind == "matmul":
                a, b = node.inputs
                b_node = self.node_of.get(b)
                if b_node is None or self.kind[b_node] != "iter" or a < self.n_in:
                    return None
                dtype = self.vtype(b).dtype
                k, n = self.vtype(a).shape[-1], self.vtype(b).shape[-1]
                if dtype not in ("f16", "bf16") or self.vtype(a).dtype != dtype or k % 16 or n % 8:
                    return None
                chained |= after_matmul(a, set())
            elif kind == "reduce" or node.attr("reduce_dim", -1) != -1:
                dim = node.attr("dim") if node.op in OPS else node.attr("reduce_dim")
                x_shape = self.vtype(node.inputs[0]).shape
                if dim % len(x_shape) != len(x_shape) - 1 or node.op == "accum_rescaled_sum":
                    return None
                row_wise = True
        if not (chained and row_wise):
            return None  # without row reductions (lora's (X A) B) the block's warps share every matmul
        # a thread holds wm * C / 2 registers of a [rows, C] value, about two such values at once plus
        # addresses: the fewest rows a warp (most warps) whose registers fit the register file
        for wm in (1, 2, 4):
            warps = rows // (16 * wm)
            if (rows % (16 * wm) == 0 and warps <= 32 and wm * widest // 2 <= MAX_WARP_ROW_REGISTERS
                    and 32 * warps * (wm * widest + 40) <= REGISTERS_PER_SM):
                return WarpRows(rows, wm)
        return None

    # -- shared memory ---------------------------------------------------------------------------
    @property
    def direct_copies(self) -> list[int]:
        """The iterators of a loop of one that cp.async copies straight into shared memory (no
        registers between: CopyEmitter.copy_stage)."""
        if self.loop != 1 or self.rows is not None or not self.pipeline:
            return []
        return [i for i, k in enumerate(self.kind) if k == "iter" and self.async_chunk_ok(i)]

    def async_chunk_ok(self, i: int) -> bool:
        """Iterator i's tile can be copied by cp.async: chunks of 4, 8 or 16 bytes."""
        tile, whole = self.g.nodes[i].types[0], self.vtype(self.g.nodes[i].inputs[0])
        return vector_width(tile.dtype, tile.shape[-1], whole.shape[-1]) * BYTES[tile.dtype] >= 4

    @property
    def grid_per_sm(self) -> int:
        """The most blocks the grid puts on an SM: 1 for <= SMS blocks."""
        return -(-math.prod(self.g.grid_dim) // SMS)

    def _choose_stages(self) -> None:
        """The cp.async ring's depth (at most the block graph's max_stages, else MAX_STAGES, and at
        most the loop's trip count). A grid that needs a second wave of blocks streams that wave while
        the slots it leaves idle wait (rmsnorm_linear's 384 blocks ran 1.34x slower two to an SM than
        three: benchmarks/NOTES.md run 41). So: two blocks per SM where any depth allows it and the
        grid has the blocks for it (one's loads overlap the other's barriers; one block per SM
        streamed slowest in every measurement), then the fewest slot-waves (waves x slots in use),
        then the deepest ring; with a budget, the deepest within it, else none."""
        if self.loop == 1:
            return
        self.ring = [i for i, k in enumerate(self.kind)
                     if k == "iter" and i not in self.invariant and self.async_chunk_ok(i)]
        if not self.ring:  # no tile cp.async can copy (rows under 4 bytes): synchronous copies
            return
        blocks = math.prod(self.g.grid_dim)
        best, best_key = 1, None
        for stages in range(min(self.g.max_stages or MAX_STAGES, self.loop), 1, -1):
            size = self._allocate(stages)[-1]
            if self.smem_budget is not None:
                if size <= self.smem_budget:
                    best = stages
                    break
                continue
            resident = resident_blocks(size, self.threads)
            key = (min(resident, 2, self.grid_per_sm), -wave_slots(blocks, resident), stages)
            if size <= MAX_SHARED_BYTES and (best_key is None or key > best_key):
                best, best_key = stages, key
        self.stages = best
        if best == 1:
            self.ring = []

    def rescales_rows(self, i: int) -> bool:
        """accum_rescaled_sum node i takes its running max per row of a broadcast max (online
        softmax's output: one max per row of a [rows, d] sum): its rescale factors are computed once
        per row into a buffer (`scale_buffers`: old and new scale), and each element's update only
        multiplies (two exps per row, not per element)."""
        node = self.g.nodes[i]
        return node.op == "accum_rescaled_sum" and numel(self.vtype(node.inputs[1]).shape) < numel(node.types[0].shape)

    def _allocate(self, stages: int) -> tuple[dict[int, Buffer], dict[int, Buffer], dict[int, Buffer], int]:
        """The shared-memory layout with the ring `stages` deep: (buffers, running-max buffers, per-row
        rescale buffers, bytes)."""
        offset = 0

        def new(shape, dtype, hint, operand=False, stages=1, atoms=1, stacked=0) -> Buffer:
            nonlocal offset
            swizzle = operand and swizzles(shape, dtype)
            pad = MMA_PAD if operand and not swizzle else 0
            lines = shape[-2] + stacked if stacked and swizzle else 0
            buf = Buffer(f"%{hint}", tuple(shape), dtype, offset, pad, stages, swizzle, atoms if swizzle else 1, lines)
            offset += buf.stage_bytes * stages
            return buf

        operands = set()  # buffers ldmatrix reads
        for i, kind in enumerate(self.kind):
            if kind == "matmul" and self.mma_eligible(i):
                operands |= {self.operand_node(v) for v in self.g.nodes[i].inputs if v >= self.n_in}

        buffers, max_buffers, scale_buffers = {}, {}, {}
        for i, node in enumerate(self.g.nodes):
            t = node.types[0]
            if self.kind[i] == "acc" and self.warp_rows is None:
                buffers[i] = new(t.shape, self.ctype, f"acc{i}")
                if node.op == "accum_rescaled_sum":
                    m_shape = self.vtype(node.inputs[1]).shape
                    max_buffers[i] = new(m_shape, self.ctype, f"accmax{i}")
                    if self.rescales_rows(i):
                        scale_buffers[i] = new((2,) + m_shape, self.ctype, f"accscale{i}")
            elif self.buffered[i]:
                hint = "tile" if self.kind[i] == "iter" else "buf"
                ring = i in self.ring
                buffers[i] = new(t.shape, t.dtype, f"{hint}{i}", i in operands, stages if ring else 1,
                                 self.wgmma_blocks(i), self.stacked_rows.get(i, 0) if ring else 0)
        return buffers, max_buffers, scale_buffers, offset

    def _wgmma_target(self) -> bool:
        """Loop-carried matmuls of this kernel may run on wgmma: on, the chip has it, a for-loop."""
        return WGMMA and _TARGET_HAS_WGMMA.get() and self.loop > 1

    def wgmma_blocks(self, i: int) -> int:
        """The blocks of WGMMA_LINE-byte rows a ring tile wider than that splits into as a wgmma
        operand (Buffer.atoms), so that each block's lines lie as wgmma's swizzle atoms do: a
        tensor-core matmul's X [M, K] (a block for each 64 of K) or W [K, N] (an m64 block for each
        64 columns), 2-D, f16 or bf16, rows a multiple of 8; else 1."""
        t = self.g.nodes[i].types[0]
        if not (self._wgmma_target() and i in self.ring):
            return 1
        if t.dtype not in ("f16", "bf16") or len(t.shape) != 2 or t.shape[0] % 8:
            return 1
        width = WGMMA_LINE // BYTES[t.dtype]
        if t.shape[1] <= width or t.shape[1] % width:
            return 1
        matmuls = [j for j in self.consumers.get(self.value(i), []) if self.kind[j] == "matmul"]
        return t.shape[1] // width if matmuls and all(self.mma_eligible(j) for j in matmuls) else 1

    def lanes_per_row(self, rows: int, length: int) -> int:
        """Lanes that reduce one row of 32 or more together (a power of two up to a warp; 1: a
        thread per row): enough to keep every thread busy, no more (each halving of the group
        saves a shuffle step per row, and a warp then finishes 32 / lanes rows at once instead of
        one after another: 64 rows of 32 took ~1.6 us per reduction a warp per row, NOTES.md).
        Groups fill whole warps (rows a multiple of 32 / lanes), so every shuffle has its whole
        warp. (Rows shorter than 32 go to single threads, fully unrolled.)"""
        lanes = 32
        while lanes > 1 and rows * lanes > self.threads and length % (lanes // 2) == 0 and rows % (64 // lanes) == 0:
            lanes //= 2
        return lanes

    def warps_per_row(self, rows: int, length: int) -> int:
        """Warps that share one row of a reduction: all of them when rows are fewer than warps
        (a single warp would run the whole row's loads one after the other), else one."""
        split = 1
        while rows * split * 2 <= self.warps and length % (32 * split * 2) == 0 and length // (32 * split * 2) >= 2:
            split *= 2
        return split

    def splits_rows(self) -> bool:
        """Some reduction of this kernel shares its rows among several warps (it needs the scratch)."""
        for node in self.g.nodes:
            if node.op in ("reduce_sum", "reduce_mean", "reduce_max") or (
                    node.op in ACCUMULATORS and node.attr("reduce_dim", -1) != -1):
                x_shape = self.vtype(node.inputs[0]).shape
                dim = (node.attr("dim") if node.op in OPS else node.attr("reduce_dim")) % len(x_shape)
                if x_shape[dim] >= 32 and self.warps_per_row(numel(node.types[0].shape), x_shape[dim]) > 1:
                    return True
        return False

    def check_shared_memory(self) -> None:
        if self.shared_bytes > MAX_SHARED_BYTES:
            raise LoweringError(f"the block graph needs {self.shared_bytes} bytes of shared memory for its tiles, "
                                f"buffers and accumulators (at most {MAX_SHARED_BYTES} per block); smaller tiles "
                                f"(a larger grid or for-loop) would fit", self.path)

    # -- copies ----------------------------------------------------------------------------------
    def copy_geometry(self, i: int) -> CopyGeometry:
        buf = self.buffers[i]
        tensor = self.g.nodes[i].inputs[0]
        whole = self.vtype(tensor)
        width = vector_width(buf.dtype, buf.shape[-1], whole.shape[-1])
        return CopyGeometry(i, tensor, buf.shape, buf.dtype, whole, width)

    def chunks_per_thread(self, geo: CopyGeometry) -> int:
        return -(-geo.n_chunks // self.threads)

    def loop_copies(self) -> list[CopyGeometry]:
        """The for-loop's iterators copied synchronously (not through the ring)."""
        return [self.copy_geometry(i) for i, k in enumerate(self.kind)
                if k == "iter" and self.phase[i] == "loop" and i not in self.ring]

    def prefetch_depth(self, geos: list[CopyGeometry]) -> int:
        """Iterations whose synchronously copied tiles are loaded ahead into loop-carried registers."""
        slots = sum(self.chunks_per_thread(geo) for geo in geos)
        if not (self.prefetch and geos and all(self.chunks_per_thread(geo) <= COPY_UNROLL for geo in geos)):
            return 0
        return max((d for d in range(1, PREFETCH_DEPTH + 1) if d * slots <= PREFETCH_SLOTS and d < self.loop),
                   default=0)

    def contiguous_bytes(self, i: int) -> int:
        """Bytes of iterator i's tile that lie side by side in memory (a row, or several whole rows)."""
        tile, whole = self.g.nodes[i].types[0].shape, self.vtype(self.g.nodes[i].inputs[0]).shape
        run = BYTES[self.g.nodes[i].types[0].dtype]
        for t, w in zip(reversed(tile), reversed(whole)):
            run *= t
            if t != w:
                break
        return run

    # -- matmuls ---------------------------------------------------------------------------------
    def mma_eligible(self, i: int) -> bool:
        """Matmul node i runs on tensor cores (mma.sync m16n8k16, f16 or bf16 operands, f32
        accumulation): both operands tiles in shared memory of one of those types (A, or computed on
        its fragments from one: fragment_operands), K a multiple of 16 and N of 8."""
        if self.warp_rows is not None:
            return True  # _warp_rows checked every matmul
        if not self.use_mma or self.ctype != "f32":
            return False
        a, b = self.g.nodes[i].inputs
        if a < self.n_in or b < self.n_in:
            return False
        return all(self.buffered[j] and self.kind[j] != "acc" for j in (self.operand_node(a), self.operand_node(b))) \
            and self._mma_operands_ok(a, b)

    def _tile_b_ok(self, a: int, b: int) -> bool:
        """Matmul operand b is a tile in shared memory that mma.sync can multiply by a."""
        return (b >= self.n_in and self.buffered[self.node_of[b]] and self.kind[self.node_of[b]] != "acc"
                and self._mma_operands_ok(a, b))

    def _mma_operands_ok(self, a: int, b: int) -> bool:
        """Values a and b have the types and shapes mma.sync m16n8k16 multiplies."""
        ta, tb = self.vtype(a), self.vtype(b)
        return ta.dtype in ("f16", "bf16") and ta.dtype == tb.dtype and ta.shape[-1] % 16 == 0 and tb.shape[-1] % 8 == 0

    def pick_microtile(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """(tm, tn): each thread computes tm x tn outputs of a CUDA-core matmul; enough for every thread."""
        batch, m, n = numel(shape[:-2]), shape[-2], shape[-1]
        best = (1, 1)
        for tm, tn in ((4, 4), (2, 4), (4, 2), (1, 4), (2, 2), (4, 1), (1, 2), (2, 1)):
            if m % tm or n % tn:
                continue
            if batch * (m // tm) * (n // tn) >= self.threads and tm * tn > best[0] * best[1]:
                best = (tm, tn)
        return best

    def pick_warp_tile(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """(wm, wn): each warp computes wm x wn mma tiles of 16 x 8; enough tiles for every warp."""
        batch, mt, nt = numel(shape[:-2]), -(-shape[-2] // 16), shape[-1] // 8
        best = (1, 1)
        for wm, wn in ((2, 4), (4, 2), (2, 2), (1, 4), (4, 1), (1, 2), (2, 1)):
            if mt % wm or nt % wn:
                continue
            if batch * (mt // wm) * (nt // wn) >= self.warps and wm * wn > best[0] * best[1]:
                best = (wm, wn)
        return best

    def split_warp_tiles(self, shape: tuple[int, ...], k_dim: int):
        """How the warps share a loop-carried tensor-core matmul: (wm, wn, tiles, kslices). Each warp
        owns wm x wn mma tiles (independent accumulators: the larger, the more mma in flight); when
        there are fewer warp tiles than warps, `kslices` warps share a tile, each taking a slice of
        K, and their partial sums are added once, after the loop. Where the N tiles split no way
        evenly (344 columns: 43 tiles, a prime), they are padded to one warp tile per warp: the padding
        tiles compute on clamped columns and store nothing (RegisterAccumulator.columns). None: no split.
        A block graph with whole_k_warps takes the first warp tile that needs no K split, where one
        fits: a weight stream's mma rate does not matter, and the warps' sums are the first step of a
        split-K plan's tail (rmsnorm_linear bs8's split plan 15.1 -> 14.6 us, H200 run 163)."""
        batch, mt, nt = numel(shape[:-2]), -(-shape[-2] // 16), shape[-1] // 8
        # the usual shapes first, then those that fit N tiles of 3, 5, 6, 7 (48 columns: 6 tiles)
        shapes = ((2, 4), (4, 2), (1, 8), (2, 2), (1, 4), (4, 1), (1, 2), (2, 1), (1, 1),
                  (1, 6), (2, 3), (1, 3), (1, 5), (1, 7))
        for whole_k in ((True, False) if self.g.whole_k_warps or WHOLE_K_WARPS else (False,)):
            for wm, wn in shapes:
                if mt % wm or nt % wn:
                    continue
                n_tiles = batch * (mt // wm) * (nt // wn)
                tiles = shape[:-2] + (mt // wm, nt // wn)
                if n_tiles % self.warps == 0 and n_tiles // self.warps <= UNROLL:
                    return wm, wn, tiles, 1
                if (not whole_k and self.warps % n_tiles == 0
                        and k_dim % (16 * (self.warps // n_tiles)) == 0):
                    return wm, wn, tiles, self.warps // n_tiles
        return self.padded_warp_tiles(shape)

    def matmul_stages(self, phase: str | None = None) -> list[tuple[int, list[int]]]:
        """(root value, matmul nodes) of each stage (of `phase` only, if given) that computes matmuls
        (blockgen.compute_stage's): a saver's or an accumulator's input, a buffered value."""
        stages = []
        for i, node in enumerate(self.g.nodes):
            kind = self.kind[i]
            if phase is not None and self.phase[i] != phase:
                continue
            if kind == "saver" or (kind == "acc" and i not in self.reg_accs and i not in self.carried_rows
                                   and node.attr("reduce_dim", -1) == -1):
                root, own = node.inputs[0], False
            elif kind in ("ew", "acc_id", "matmul") and self.buffered[i]:
                root, own = self.value(i), True
            else:
                continue
            matmuls = self.inline_matmuls(root, root=own)
            if matmuls:
                stages.append((root, matmuls))
        return stages

    def stage_warp_tiles(self, shape: tuple[int, ...]) -> tuple[int, int, tuple[int, ...]]:
        """(wm, wn, tiles) of a tensor-core stage computing a value of `shape`: the warps' tiles."""
        wm, wn = self.pick_warp_tile(shape)
        return wm, wn, shape[:-2] + (-(-shape[-2] // 16) // wm, (shape[-1] // 8) // wn)

    def stage_kslices(self, root: int, matmuls: list[int]) -> tuple[int, list[int]]:
        """(warps sharing each warp tile, the matmuls whose K they split) of a tensor-core stage: where
        its warp tiles are fewer than the warps, each of `kslices` warps takes a slice of K of every
        matmul with a long K (each slice MIN_SLICE_STEPS mma steps or more), and they meet in shared
        memory (`k_slices`). Else (1, []): a warp walks a tile's whole K, the other warps idle (lora's
        16 x 16 outputs over K = 256: two warps of eight, 16 dependent mma steps each)."""
        if self.warp_rows is not None or not any(self.mma_eligible(i) for i in matmuls):
            return 1, []
        _, _, tiles = self.stage_warp_tiles(self.vtype(root).shape)
        n_tiles = numel(tiles)
        if not 0 < n_tiles < self.warps or self.warps % n_tiles:
            return 1, []
        kslices = self.warps // n_tiles
        split = [i for i in matmuls if self.mma_eligible(i)
                 and self.vtype(self.g.nodes[i].inputs[0]).shape[-1] % (16 * MIN_SLICE_STEPS * kslices) == 0]
        return (kslices, split) if split else (1, [])

    def k_slice_registers(self, root: int, matmuls: list[int]) -> int:
        """f32 registers a warp of this stage leaves in `k_slices` (0: the stage splits no K)."""
        _, split = self.stage_kslices(root, matmuls)
        wm, wn, _ = self.stage_warp_tiles(self.vtype(root).shape)
        return 4 * wm * wn * len(split)

    def padded_warp_tiles(self, shape: tuple[int, ...]):
        """(wm, wn, tiles, 1) of one warp tile per warp whose N tiles cover N with padding, or None.
        Without it such a matmul's accumulator goes through shared memory and each warp walks its
        tiles one dependent mma chain at a time (H200 run 75: ~5 us per loop iteration)."""
        batch, mt, nt = numel(shape[:-2]), -(-shape[-2] // 16), shape[-1] // 8
        for wm in (1, 2, 4):
            if mt % wm or self.warps % (batch * (mt // wm)):
                continue
            across = self.warps // (batch * (mt // wm))  # warp tiles along N
            wn = -(-nt // across)
            if wm * wn <= 8 and across * wn - nt < wn:
                return wm, wn, shape[:-2] + (mt // wm, across), 1
        return None

    def slice_scratch(self, i: int) -> Buffer | None:
        """Where the K slices of register accumulator i meet after the loop: every thread's registers,
        [warp, register, lane] f32, in shared memory that only the loop's iterator tiles use (free once
        the loop is over). None: no such span is large enough."""
        shape = (self.warps, self.reg_accs[i].tile_count * 4, 32)
        need = Buffer("%slices", shape, "f32", 0).nbytes
        spans: list[list[int]] = []
        for j in sorted((j for j, kind in enumerate(self.kind) if kind == "iter" and self.phase[j] == "loop"),
                        key=lambda j: self.buffers[j].offset):
            buf = self.buffers[j]
            start, end = buf.offset, buf.offset + buf.stage_bytes * buf.stages
            if spans and spans[-1][1] == start:
                spans[-1][1] = end
            else:
                spans.append([start, end])
        start = next((a for a, b in spans if b - a >= need), None)
        return None if start is None else Buffer(f"%slices{i}", shape, "f32", start)

    def _register_accumulators(self) -> dict[int, RegisterAccumulator]:
        """Accumulators kept in registers across the for-loop: an f32 accum_sum of a tensor-core
        matmul (f32) whose warp tiles split evenly over the warps. The loop carries the mma
        accumulators (the K loop simply continues from one iteration to the next); the totals are
        written to the accumulator's buffer once, after the loop."""
        out = {}
        for i, node in enumerate(self.g.nodes):
            if self.kind[i] != "acc" or self.phase[i] != "loop" or node.op != "accum_sum":
                continue
            if node.attr("reduce_dim", -1) != -1 or node.types[0].dtype != "f32":
                continue
            v = node.inputs[0]
            if v < self.n_in:
                continue
            mm = self.node_of[v]
            if self.kind[mm] != "matmul" or self.buffered[mm] or not self.mma_eligible(mm):
                continue
            if self.g.nodes[mm].types[0].dtype != "f32":
                continue
            split = self.split_warp_tiles(self.vtype(v).shape, self.vtype(self.g.nodes[mm].inputs[0]).shape[-1])
            if split is None:
                continue
            wm, wn, tiles, kslices = split
            n = self.vtype(v).shape[-1]
            column_sums = self.node_of[self.g.nodes[mm].inputs[0]] in self.constant_operands and wn % 2 == 0
            out[i] = RegisterAccumulator(mm, wm, wn, tiles, numel(tiles) * kslices // self.warps, kslices,
                                         n if tiles[-1] * wn * 8 > n else 0, column_sums=column_sums)
        return out

    def wgmma_accumulators(self) -> dict[int, RegisterAccumulator]:
        """The register accumulators whose matmul runs on warpgroup MMA (wgmma m64nNk16, sm_90a), all
        or none: out^T = W^T X^T, each 64-column block of the weight tile wgmma's M (A, MN-major)
        and X's rows its N (B, K-major), both read from their cp.async ring slots through
        descriptors, so X's 8-256 rows waste no tensor work. Each operand must be a ring buffer of
        128-byte lines (64 f16 or bf16: each 64 of X's K tile, each 64 of the weight's columns; a
        wider tile is stored as blocks of them, Buffer.atoms), swizzled as the 128-byte wgmma swizzle
        is (chunk q of line r at q ^ r % 8) and 1024-byte aligned; every matmul the same shape. Warpgroups and
        matmuls (units) pair up as in RegisterAccumulator: each matmul's K steps split evenly over
        its warpgroups, or each warpgroup computes units / warpgroups whole matmuls; the accumulators,
        which every thread carries, leave WGMMA_HEADROOM of a thread's registers free."""
        accs, shapes = self.reg_accs, set()
        stacked = {}  # accumulator of a stacked constant operand -> its unit's accumulator of X
        for i, info in accs.items():
            a, w_v = self.g.nodes[info.mm].inputs
            j = self.node_of[a]
            if j in self.constant_operands and self.fragment_operands[j] in self.stacked_rows:
                x_v = self.value(self.fragment_operands[j])
                lead = next((k for k, o in accs.items() if tuple(self.g.nodes[o.mm].inputs) == (x_v, w_v)), None)
                if lead is not None:
                    stacked[i] = lead
                    continue  # X's checks cover it
            x, w = (self.node_of[v] for v in self.g.nodes[info.mm].inputs)
            constant = x in self.constant_operands  # read from a tile of its own (_constant_tiles)
            if w not in self.ring or not constant and (x in self.fragment_operands or x not in self.ring):
                return {}
            bx, bw = self._constant_tile(x, 0) if constant else self.buffers[x], self.buffers[w]
            rows, k = bx.shape[-2:]
            blocks = bw.atoms
            if len(bx.shape) != 2 or len(bw.shape) != 2 or bw.shape != (k, 64 * blocks) or bx.dtype != bw.dtype:
                return {}
            if bx.dtype not in ("f16", "bf16") or k % 64 or bx.atoms != k // 64 or rows % 8 or rows > 256:
                return {}
            if not (bx.swizzle and bw.swizzle) or any(b.offset % WGMMA_ALIGN or b.stage_bytes % WGMMA_ALIGN
                                                       for b in (bx, bw)):
                return {}
            shapes.add((rows, k, bx.dtype, blocks))
        leads = sorted(i for i in accs if i not in stacked)
        groups, units = self.warps // 4, len(leads)
        if len(shapes) != 1 or self.warps % 4 or not units or (groups % units and units % groups):
            return {}
        rows, k, _, blocks = shapes.pop()
        kslices = max(1, groups // units)
        carried = len(accs) * blocks * rows // 2
        if (k // 16) % kslices or carried + WGMMA_HEADROOM > min(MAX_THREAD_REGISTERS, REGISTERS_PER_SM // self.threads):
            return {}
        out = {i: RegisterAccumulator(accs[i].mm, blocks, rows // 8, (1,), 1, kslices, 0, True, unit, units)
               for unit, i in enumerate(leads)}
        for i, lead in stacked.items():
            out[i] = replace(out[lead], mm=accs[i].mm, stacked=True)
        tiles = self._constant_tiles(out, self.shared_bytes)
        end = max((b.offset + b.stage_bytes for b in tiles.values()), default=self.shared_bytes)
        if end > MAX_SHARED_BYTES or (min(resident_blocks(end, self.threads), self.grid_per_sm)
                                      < min(resident_blocks(self.shared_bytes, self.threads), self.grid_per_sm)):
            return {}  # the constant tiles would cost the block its memory or an SM a block the grid has
        return out

    def _constant_tiles(self, accs: dict[int, RegisterAccumulator], offset: int) -> dict[int, Buffer]:
        """The shared-memory tiles, from byte `offset` on, of the constant operands (constant_operands:
        every element c) that accumulators `accs` read on wgmma, which reads operands from shared
        memory only; written once before the loop. {node: Buffer}"""
        out = {}
        for info in accs.values():
            j = self.node_of[self.g.nodes[info.mm].inputs[0]]
            if info.wgmma and not info.stacked and j in self.constant_operands and j not in out:
                out[j] = self._constant_tile(j, offset)
                offset = out[j].offset + out[j].stage_bytes
        return out

    def _constant_tile(self, j: int, offset: int) -> Buffer:
        """Constant operand j's tile from byte `offset` on, rounded up to wgmma's alignment: its value's
        shape, in swizzled blocks of 128-byte lines as wgmma reads X's tiles (any layout of one value
        holds the same, so nothing else reads it in this layout)."""
        t = self.vtype(self.value(j))
        return Buffer(f"%const{j}", t.shape, t.dtype, -(-offset // WGMMA_ALIGN) * WGMMA_ALIGN, swizzle=True,
                      atoms=max(1, t.shape[-1] * BYTES[t.dtype] // WGMMA_LINE))

    def _carried_rows(self) -> dict[int, int]:
        """Sum accumulators fed by a row reduction (the reduction node: a reduce_sum or reduce_mean
        whose only consumer the accumulator is, or the accumulator itself with reduce_dim), all in
        f32: each lane keeps its partial sums over the rows' elements in loop-carried registers, and
        the lanes are combined (shuffles, a barrier where warps share a row) once, after the loop.
        Sums only: a sum of per-iteration sums is the sum of the partial sums."""
        out = {}
        for i, node in enumerate(self.g.nodes):
            if self.kind[i] != "acc" or self.phase[i] != "loop" or (node.types[0].dtype, self.ctype) != ("f32", "f32"):
                continue
            if node.attr("reduce_dim", -1) != -1:
                if node.op in ("accum_sum", "accum_mean", "accum_rms"):
                    out[i] = i
                continue
            v = node.inputs[0]
            if node.op != "accum_sum" or v < self.n_in:
                continue
            r = self.node_of[v]
            if (self.g.nodes[r].op in ("reduce_sum", "reduce_mean") and self.consumers[v] == [i]
                    and self.phase[r] == "loop" and self.vtype(v).dtype == "f32"):
                out[i] = r
        return out

    # -- what the cost model reads ---------------------------------------------------------------
    def figures(self) -> PlanFigures:
        """What the cost model needs to know of this kernel's memory pipeline."""
        loop_iters = [i for i, k in enumerate(self.kind) if k == "iter" and self.phase[i] == "loop"]
        geos = self.loop_copies() if self.rows is None else []  # a row kernel's loads: all issued up front
        sync = [geo.i for geo in geos]
        depth = self.prefetch_depth(geos) if self.loop > 1 else 0
        tile_bytes = {i: numel(self.g.nodes[i].types[0].shape) * BYTES[self.g.nodes[i].types[0].dtype]
                      for i, k in enumerate(self.kind) if k == "iter"}
        sync_bytes = sum(tile_bytes[i] for i in sync)
        # synchronous copies run one after the other, each waiting for its loads; prefetching into
        # registers `depth` iterations ahead hides all but 1 / depth of that
        sync_round_trips = self.copies_round_trips(geos) / (depth or 1)
        pre_chunks = 0
        if self.rows is not None:
            pre_round_trips = 1  # every thread's loads of every tile issued together
        else:
            pre = [self.copy_geometry(i) for i, k in enumerate(self.kind) if k == "iter" and i not in loop_iters]
            # a loop of one's cp.async copies all in flight together, beside the synchronous ones
            direct = set(self.direct_copies)
            sync = [geo for geo in pre if geo.i not in direct]
            pre_round_trips = max(int(len(sync) < len(pre)), self.copies_round_trips(sync))
            pre_chunks = sum(self.chunks_per_thread(geo) for geo in pre)
        elements, stages = self.cuda_core_work()
        return PlanFigures(self.shared_bytes, self.threads, self.loop, self.stages, depth,
                           sum(tile_bytes[i] for i in self.ring), sync_bytes, sync_round_trips, pre_round_trips,
                           frozenset(self.origin[i] for i, k in enumerate(self.kind) if k == "matmul" and self.mma_eligible(i)),
                           self.mma_chain(),
                           tuple((tile_bytes[i] * (self.loop if i in loop_iters else 1), self.contiguous_bytes(i))
                                 for i in tile_bytes),
                           thread_elements=elements, stage_rounds=stages, unrolled=self.rows is not None,
                           in_registers=self.warp_rows is not None, pre_chunks=pre_chunks,
                           padded_ring_bytes=sum(tile_bytes[i] * self.loop for i in self.ring
                                                 if i in self.buffers and self.buffers[i].pad))

    def cuda_core_work(self) -> tuple[int, int]:
        """(elements one thread handles one after another in the stages that run on CUDA cores, those
        stages), loop iterations counted. Each stage spreads its elements, or a reduction its inputs,
        over the threads: the elements are the serial work more threads shorten, the stages the
        barrier rounds they do not. A row kernel's elements are those it holds in registers, one
        pass, and no stage."""
        if self.rows is not None:
            return self.rows.slots * self.rows.width, 0
        if self.warp_rows is not None:  # each thread its elements of every value, in registers
            return sum(-(-numel(node.types[0].shape) // self.threads) * (self.loop if self.phase[i] == "loop" else 1)
                       for i, node in enumerate(self.g.nodes) if self.kind[i] not in ("iter", "matmul", "saver")), 0
        total = stages = 0
        for i, node in enumerate(self.g.nodes):
            kind = self.kind[i]
            if kind in ("iter", "matmul") or i in self.reg_accs or (
                    kind not in ("reduce", "acc_reduce1", "acc", "saver") and not self.buffered[i]):
                continue  # copies, tensor cores, inline values (computed where they are consumed)
            if kind in ("reduce", "acc_reduce1") or node.attr("reduce_dim", -1) != -1:
                n = numel(self.vtype(node.inputs[0]).shape)
            elif kind == "saver":
                n = numel(self.vtype(node.inputs[0]).shape)
            elif self.inline_matmuls(self.value(i)):
                continue  # a tensor-core or micro-tiled stage: the cost model's arithmetic terms
            else:
                n = numel(node.types[0].shape)
            rounds = self.loop if self.phase[i] == "loop" else 1
            total += -(-n // self.threads) * rounds
            stages += rounds
        return total, stages

    def unrolled_copy(self, geo: CopyGeometry) -> bool:
        """The tile's copy is unrolled: each thread loads its few chunks (the last of a tile that does
        not split evenly under a guard), then stores them."""
        return self.chunks_per_thread(geo) <= COPY_UNROLL

    def copy_groups(self, geos: list[CopyGeometry]) -> list[list[CopyGeometry]]:
        """Copies issued together: consecutive unrolled copies share one round trip (all their loads,
        then all their stores) up to COPY_UNROLL chunks a thread; every other copy is alone."""
        groups: list[list[CopyGeometry]] = []
        held = COPY_UNROLL + 1  # chunks a thread holds in the open group (none open yet)
        for geo in geos:
            if not self.unrolled_copy(geo):
                groups.append([geo])
                held = COPY_UNROLL + 1
                continue
            per = self.chunks_per_thread(geo)
            if held + per > COPY_UNROLL:
                groups.append([])
                held = 0
            groups[-1].append(geo)
            held += per
        return groups

    def copies_round_trips(self, geos: list[CopyGeometry]) -> int:
        """Memory latencies a sequence of synchronous copies waits, one group after another."""
        return sum(self.copy_round_trips(group[0]) if len(group) == 1 else 1 for group in self.copy_groups(geos))

    def copy_batch(self, geo: CopyGeometry) -> int:
        """Chunks a thread has in flight in a synchronous copy: all of its share when the copy is
        unrolled, else COPY_BATCH when the chunks split into such batches, else one."""
        if self.unrolled_copy(geo):
            return self.chunks_per_thread(geo)
        return COPY_BATCH if geo.n_chunks % (self.threads * COPY_BATCH) == 0 else 1

    def copy_round_trips(self, geo: CopyGeometry) -> int:
        """Memory latencies one synchronous copy of the tile waits, one batch after another."""
        return -(-self.chunks_per_thread(geo) // self.copy_batch(geo))

    def mma_chain(self) -> int:
        """Dependent mma.sync steps per warp and loop iteration, over the tensor-core matmuls."""
        by_matmul = {info.mm: info for info in self.reg_accs.values()}
        # the K slices of each matmul that a tensor-core stage splits
        sliced = {i: kslices for root, matmuls in self.matmul_stages()
                  for kslices, split in [self.stage_kslices(root, matmuls)] for i in split}
        chain = 0
        for i, kind in enumerate(self.kind):
            if kind != "matmul" or not self.mma_eligible(i) or self.phase[i] != ("loop" if self.loop > 1 else "pre"):
                continue
            steps = self.vtype(self.g.nodes[i].inputs[0]).shape[-1] // 16
            if self.warp_rows is not None:  # a warp computes every column of its rows
                chain += self.warp_rows.wm * (self.vtype(self.value(i)).shape[-1] // 8) * steps
            elif i in by_matmul:
                info = by_matmul[i]
                if not info.wgmma:  # a warpgroup's wgmma chain runs on the tensor cores' own pipeline
                    chain += info.per_warp * dependent_steps(steps // info.kslices, info.wm * info.wn,
                                                             self.loop == 1)
            else:
                wm, wn, tiles = self.stage_warp_tiles(self.vtype(self.value(i)).shape)
                chain += -(-numel(tiles) // self.warps) * dependent_steps(steps // sliced.get(i, 1), wm * wn,
                                                                          self.loop == 1)
        return chain
