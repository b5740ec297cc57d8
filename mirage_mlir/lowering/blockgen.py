"""Code generation for one block graph: a `gpu.func` in MLIR text (gpu/arith/math/memref/scf/vector).

The generated kernel keeps the block graph's structure:

  prologue   thread and block ids; shared-memory views; accumulators initialised; loop-invariant
             iterators (fmap = -1) copied and loop-invariant stages computed once
  for-loop   `scf.for` over forloop_range {mirage.forloop}: the other iterators copied
             global -> shared (vector loads of up to 16 bytes where alignment allows), a barrier,
             the block ops as stages, accumulator updates, a closing barrier
  epilogue   the ops after the accumulators, then the output savers (vector stores to global)

Values and where they live:
- input iterators, reductions, and values read by a matmul or by several ops are *buffers* in
  dynamic shared memory (one `memref.view` each, in the value's own element type);
- accumulators are f32 buffers in shared memory, each element updated by the same thread in every
  iteration (so updates need no barrier), finalised (mean/rms) when read;
- single-use elementwise ops and thread graphs are *inline*: recomputed in registers inside the
  stage that consumes them (this is the thread-graph fusion);
- a matmul whose one consumer chain is elementwise and ends in a buffer, an accumulator or a saver
  is computed inside that stage: each thread owns a TM x TN micro-tile, runs the K loop with f32
  accumulators in registers and applies the chain as an epilogue.
Arithmetic is in f32; every op result is rounded to its element type, as mirage_mlir.evaluate does.
Reductions give each output row to a warp and combine lanes with `gpu.shuffle xor`.
Barriers are placed where a stage reads a buffer written since the last barrier, and at the end of
each loop iteration (the next iteration overwrites the iterator tiles).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from ..mugraph import Graph, Node, TensorType
from ..opset import ACCUMULATORS, OPS
from .emitter import BYTES, STORAGE_TYPES, Emitter, Index, indices, memref_type

CODEGEN_VERSION = 4  # raise when generated kernels (and so the cost model's figures) change
MAX_SHARED_BYTES = 227 * 1024  # per block on sm_90 (sm_80: 163 KB), with the opt-in attribute
SHARED_ALIGN = 16
UNROLL = 4  # a per-thread loop with at most this many trips (and no remainder) is unrolled
PREFETCH_SLOTS = 32  # most 16-byte chunks per thread held in registers for coming iterations
PREFETCH_DEPTH = 4  # most iterations loaded ahead
# deepest cp.async ring for the for-loop's iterator tiles (MIRAGE_MAX_STAGES: for experiments)
MAX_STAGES = int(os.environ.get("MIRAGE_MAX_STAGES", "4"))
TWO_BLOCKS_BYTES = 113 * 1024  # shared memory per block that still lets two blocks share an SM
MMA_PAD = 8  # f16 elements added to each row of a tensor-core operand buffer (16 bytes: no bank conflicts)


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

    @property
    def stage_bytes(self) -> int:
        return -(-self.nbytes // SHARED_ALIGN) * SHARED_ALIGN

    @property
    def storage_shape(self) -> tuple[int, ...]:
        return self.shape[:-1] + (self.shape[-1] + self.pad,)

    @property
    def type(self) -> str:
        return memref_type(self.storage_shape, self.dtype, "workgroup")

    @property
    def nbytes(self) -> int:
        return math.prod(self.storage_shape) * BYTES[self.dtype]


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
    sync_inflight: int  # of those, in flight at once (prefetched iterations included)
    pre_round_trips: int  # memory latencies the copies of loop-invariant tiles wait, one after another
    tensor_core_matmuls: frozenset  # node indices of the matmuls on tensor cores
    mma_chain: int  # dependent mma.sync steps a warp runs per loop iteration (the arithmetic's latency)
    tile_rows: tuple  # per input iterator: (bytes a block loads in all, contiguous bytes per tile row)

    @property
    def inflight(self) -> int:
        """Loop-tile bytes a block has in flight while it runs the loop."""
        return (self.stages - 1) * self.ring_bytes + self.sync_inflight


@dataclass
class KernelCode:
    """One generated kernel: its text and what a launch needs."""

    name: str
    text: str
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    shared_bytes: int
    inputs: list[TensorType]
    outputs: list[TensorType]
    notes: list[str] = field(default_factory=list)


def _numel(shape) -> int:
    return math.prod(shape)


def _bcast(index: list[Index], shape: tuple[int, ...], target: tuple[int, ...]) -> list[Index]:
    """The index into an operand of `shape` broadcast to `target` (equal ranks)."""
    return [0 if s == 1 and t != 1 else i for i, s, t in zip(index, shape, target)]


def _vector_width(dtype: str, *dims: int) -> int:
    """The widest vector (at most 16 bytes) whose length divides every dim."""
    width = 16 // BYTES[dtype]
    while width > 1 and any(d % width for d in dims):
        width //= 2
    return width


class BlockKernelGen:
    def __init__(self, graph: Graph, name: str, path: tuple[int, ...] = (), use_mma: bool = True,
                 prefetch: bool = True, pipeline: bool = True):
        self.use_mma = use_mma
        self.prefetch = prefetch
        self.pipeline = pipeline
        self.g = graph
        self.name = name
        self.path = path
        bx, by, bz = graph.block_dim
        if by != 1 or bz != 1 or bx % 32 or not 32 <= bx <= 1024:
            raise LoweringError(f"block_dim {graph.block_dim} is not supported (need (32k,1,1), k <= 32)", path)
        self.threads = bx
        self.warps = bx // 32
        self.loop = graph.forloop_range
        self.em = Emitter()
        self.n_in = len(graph.inputs)
        self.types = graph.value_types
        self.node_of = {v: i for v, (i, _) in graph.producers.items()}
        self.consumers: dict[int, list[int]] = {}
        for i, node in enumerate(graph.nodes):
            for v in node.inputs:
                self.consumers.setdefault(v, []).append(i)
        for i, node in enumerate(graph.nodes):
            if len(node.types) != 1:
                raise LoweringError(f"'{node.op}' with {len(node.types)} results is not supported", path + (i,))
            for t in node.types:
                if t.dtype not in STORAGE_TYPES or not t.is_static():
                    raise LoweringError(f"'{node.op}' has type {t}: static f16/bf16/f32 tensors only", path + (i,))
        for t in graph.inputs:
            if t.dtype not in STORAGE_TYPES or not t.is_static():
                raise LoweringError(f"kernel tensor of type {t}: static f16/bf16/f32 tensors only", path)
        self.kind = [self._kind(i, n) for i, n in enumerate(graph.nodes)]
        self.buffered = [self._initially_buffered(i) for i in range(len(graph.nodes))]
        for i, k in enumerate(self.kind):
            if k == "matmul" and not self.buffered[i] and not self._matmul_chain_ok(i):
                self.buffered[i] = True
        self.invariant = self._invariants()
        self.buffers: dict[int, Buffer] = {}  # node index -> buffer (iterators, buffered, accumulators)
        self.max_buffers: dict[int, Buffer] = {}  # accum_rescaled_sum: running max
        self.input_args = {v: f"%arg{v}" for v in range(self.n_in)}
        self.scratch_reads: set[str] = set()  # the scratch, when read since the last barrier
        self.ring: list[int] = []  # loop iterators filled by cp.async, `stages` iterations ahead
        self.stages = 1
        if pipeline:
            self._choose_stages()
        self.dirty: set[str] = set()
        self.it: Index = 0  # the for-loop induction variable inside the loop
        self.reg_accs: dict = {}  # accumulators carried in registers by the for-loop
        self.barriers = 0

    # -- analysis ------------------------------------------------------------------------------
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
            raise LoweringError(f"'{op}' cannot appear in a block graph", self.path + (i,))
        category = OPS[op].category
        if category in ("unary", "binary"):
            return "ew"
        return {"reduce": "reduce", "matmul": "matmul"}[category]

    def _consumer_kinds(self, i: int) -> list[str]:
        return [self.kind[c] for c in self.consumers.get(self.value(i), [])]

    def _initially_buffered(self, i: int) -> bool:
        kind = self.kind[i]
        if kind in ("iter", "reduce", "acc_reduce1"):
            return True
        if kind in ("ew", "acc_id", "matmul"):
            users = self.consumers.get(self.value(i), [])
            return len(users) != 1 or self.kind[users[0]] == "matmul"
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

    def _async_chunk_ok(self, i: int) -> bool:
        """Iterator i's tile can be copied by cp.async: chunks of 4, 8 or 16 bytes."""
        tile, whole = self.g.nodes[i].types[0], self.vtype(self.g.nodes[i].inputs[0])
        return _vector_width(tile.dtype, tile.shape[-1], whole.shape[-1]) * BYTES[tile.dtype] >= 4

    def _choose_stages(self) -> None:
        """The cp.async ring's depth: the deepest (at most MAX_STAGES, at most the loop's trip count)
        that still lets two blocks share an SM, else the deepest that fits at all, else none."""
        if self.loop == 1:
            return
        self.ring = [i for i, k in enumerate(self.kind)
                     if k == "iter" and i not in self.invariant and self._async_chunk_ok(i)]
        best = 1
        for stages in range(min(MAX_STAGES, self.loop), 1, -1):
            self.stages = stages
            size = self._allocate(check=False)
            if size <= TWO_BLOCKS_BYTES:
                best = stages
                break
            if size <= MAX_SHARED_BYTES and best == 1:
                best = stages
        self.stages = best
        if best == 1:
            self.ring = []
        self.buffers.clear()
        self.max_buffers.clear()

    def is_buffer(self, i: int) -> bool:
        return self.buffered[i] or self.kind[i] == "acc"

    # -- shared memory ---------------------------------------------------------------------------
    def _allocate(self, check: bool = True) -> int:
        offset = 0

        def new(shape, dtype, hint, pad=0, stages=1) -> Buffer:
            nonlocal offset
            buf = Buffer(f"%{hint}", tuple(shape), dtype, offset, pad, stages)
            offset += buf.stage_bytes * stages
            return buf

        padded = set()
        for i, kind in enumerate(self.kind):
            if kind == "matmul" and self.mma_eligible(i):
                padded |= {self.node_of[v] for v in self.g.nodes[i].inputs}

        for i, node in enumerate(self.g.nodes):
            t = node.types[0]
            if self.kind[i] == "acc":
                self.buffers[i] = new(t.shape, "f32", f"acc{i}")
                if node.op == "accum_rescaled_sum":
                    self.max_buffers[i] = new(t.shape, "f32", f"accmax{i}")
            elif self.buffered[i]:
                hint = "tile" if self.kind[i] == "iter" else "buf"
                self.buffers[i] = new(t.shape, t.dtype, f"{hint}{i}", MMA_PAD if i in padded else 0,
                                      self.stages if i in self.ring else 1)
        if self._splits_rows():
            self.scratch = new((self.warps,), "f32", "scratch")  # split-row reductions' warp results
        if check and offset > MAX_SHARED_BYTES:
            raise LoweringError(f"the block graph needs {offset} bytes of shared memory for its tiles, buffers and "
                                f"accumulators (at most {MAX_SHARED_BYTES} per block); smaller tiles (a larger "
                                f"grid or for-loop) would fit", self.path)
        return offset

    # -- thread mapping helpers ------------------------------------------------------------------
    def for_each(self, n: int, body, ids: str | None = None, count: int | None = None, attr: str = "") -> None:
        """Runs body(e) for e in range(n), spread over `count` workers whose id is `ids`."""
        ids = ids or self.tid
        count = count or self.threads
        em = self.em
        if n <= count:
            if n == count:
                body(ids)
            else:
                with em.region(f"scf.if {em.cmp_lt(ids, n)} {{"):
                    body(ids)
        elif n % count == 0 and n // count <= UNROLL:
            for k in range(n // count):
                body(em.add(ids, k * count))
        else:
            e = em.fresh("e")
            header = f"scf.for {e} = {ids} to {em.idx(n)} step {em.idx(count)} {{"
            footer = f"}} {{{attr}}}" if attr else "}"
            with em.region(header, footer):
                body(e)

    def barrier(self) -> None:
        self.em.emit("gpu.barrier")
        self.dirty.clear()
        self.scratch_reads = set()
        self.barriers += 1

    def sync_for(self, reads: set[str]) -> None:
        if reads & self.dirty:
            self.barrier()

    # -- values at an index (f32 SSA names) ----------------------------------------------------
    def load(self, buf: Buffer, index: list[Index]) -> str:
        em = self.em
        raw = em.op(f"memref.load {buf.name}[{indices(em, index)}] : {buf.type}", "l")
        return em.extend(raw, buf.dtype)

    def value_at(self, v: int, index: list[Index], memo: dict, overrides: dict | None = None,
                 compute: bool = False) -> str:
        """Value v at `index` as f32: loaded from its buffer, or computed (always, with `compute`,
        which the stage that fills v's own buffer uses)."""
        key = (v, tuple(index), compute)
        if key in memo:
            return memo[key]
        if overrides and v in overrides:
            return overrides[v]
        if v < self.n_in:
            raise LoweringError("a kernel tensor is read without an input iterator", self.path)
        i = self.node_of[v]
        node = self.g.nodes[i]
        kind = self.kind[i]
        em = self.em
        if kind == "acc" and not compute:
            result = self.acc_final(i, self.load(self.buffers[i], index))
        elif self.buffered[i] and not compute:
            result = self.load(self.buffers[i], index)
        elif kind == "matmul":
            raise LoweringError("internal: an inline matmul was read outside its stage", self.path + (i,))
        elif kind not in ("ew", "acc_id"):
            raise LoweringError(f"internal: '{node.op}' cannot be computed inline", self.path + (i,))
        else:
            shape = node.types[0].shape
            args = [self.value_at(a, _bcast(index, self.vtype(a).shape, shape), memo, overrides)
                    for a in node.inputs]
            dtype = node.types[0].dtype
            if kind == "acc_id":
                result = em.round(self.acc_identity(node, args), dtype)
            elif node.op == "thread_graph":
                result = self.thread_graph(node.body, args)
            else:
                result = em.round(self.elementwise(node, args), dtype)
        memo[key] = result
        return result

    def elementwise(self, node: Node, args: list[str]) -> str:
        em, op = self.em, node.op
        x = args[0]
        if op == "exp":
            return em.fun("math.exp", x)
        if op == "square":
            return em.fbin("mulf", x, x)
        if op == "sqrt":
            return em.fun("math.sqrt", x)
        if op == "rsqrt":
            return em.fun("math.rsqrt", x)
        if op == "silu":
            e = em.fun("math.exp", em.fun("arith.negf", x))
            return em.fbin("divf", x, em.fbin("addf", em.f32(1.0), e))
        if op == "gelu":
            cube = em.fbin("mulf", em.fbin("mulf", x, x), x)
            inner = em.fbin("addf", x, em.fbin("mulf", em.f32(0.044715), cube))
            t = em.fun("math.tanh", em.fbin("mulf", em.f32(math.sqrt(2 / math.pi)), inner))
            return em.fbin("mulf", em.fbin("mulf", em.f32(0.5), x), em.fbin("addf", em.f32(1.0), t))
        if op == "relu":
            return em.fbin("maximumf", x, em.f32(0.0))
        if op == "neg":
            return em.fun("arith.negf", x)
        if op == "mul_scalar":
            return em.fbin("mulf", x, em.f32(node.attr("scalar")))
        if op == "add_scalar":
            return em.fbin("addf", x, em.f32(node.attr("scalar")))
        if op == "cast":
            return x
        binary = {"add": "addf", "sub": "subf", "mul": "mulf", "div": "divf", "max": "maximumf"}
        if op in binary:
            return em.fbin(binary[op], args[0], args[1])
        if op == "pow":
            return em.op(f"math.powf {args[0]}, {args[1]} : f32", "f")
        raise LoweringError(f"no lowering for elementwise op '{op}'", self.path)

    def thread_graph(self, body: Graph, args: list[str]) -> str:
        values = list(args)
        for node in body.nodes:
            if node.op not in OPS or OPS[node.op].category not in ("unary", "binary"):
                raise LoweringError(f"'{node.op}' cannot appear in a thread graph", self.path)
            values.append(self.em.round(self.elementwise(node, [values[v] for v in node.inputs]), node.types[0].dtype))
        return values[body.outputs[0]]

    # -- accumulators ----------------------------------------------------------------------------
    def acc_count(self, node: Node, iterations: int) -> int:
        dim = node.attr("reduce_dim", -1)
        return iterations * (self.vtype(node.inputs[0]).shape[dim] if dim != -1 else 1)

    def acc_identity(self, node: Node, args: list[str]) -> str:
        """A loop-of-one accumulator without reduce_dim: a function of its input element."""
        em, x = self.em, args[0]
        if node.op == "accum_rms":
            sq = em.round(em.fbin("mulf", x, x), node.types[0].dtype)
            return em.fun("math.sqrt", em.fbin("addf", sq, em.f32(node.attr("eps", 0.0))))
        return x  # sum, mean (count 1), max, rescaled_sum (x * exp(m - m))

    def acc_final(self, i: int, total: str) -> str:
        """The accumulator's value from its running total (mean and rms divide by the count)."""
        node = self.g.nodes[i]
        em, dtype = self.em, node.types[0].dtype
        if node.op in ("accum_mean", "accum_rms"):
            count = self.acc_count(node, self.loop)
            total = em.round(em.fbin("divf", total, em.f32(float(count))), dtype)
        if node.op == "accum_rms":
            total = em.round(em.fbin("addf", total, em.f32(node.attr("eps", 0.0))), dtype)
            total = em.round(em.fun("math.sqrt", total), dtype)
        return total

    def reduce_finish(self, node: Node, total: str, length: int) -> str:
        """The value of a reduction (or loop-of-one reducing accumulator) from its lane total."""
        em, op, dtype = self.em, node.op, node.types[0].dtype
        total = em.round(total, dtype)
        if op in ("reduce_mean", "accum_mean", "accum_rms"):
            total = em.round(em.fbin("divf", total, em.f32(float(length))), dtype)
        if op == "accum_rms":
            total = em.round(em.fbin("addf", total, em.f32(node.attr("eps", 0.0))), dtype)
            total = em.round(em.fun("math.sqrt", total), dtype)
        return total

    # -- write targets ---------------------------------------------------------------------------
    def write(self, target: tuple, index: list[Index], x: str, memo: dict) -> None:
        """Stores x (f32) at `index` of a target: ("buf", i), ("acc", i) or ("saver", i)."""
        em = self.em
        kind, i = target
        if kind == "buf":
            buf = self.buffers[i]
            em.emit(f"memref.store {em.truncate(x, buf.dtype)}, {buf.name}[{indices(em, index)}] : {buf.type}")
        elif kind == "acc":
            self.acc_update(i, index, x, memo)
        else:
            self.store_global(i, index, [x])

    def acc_update(self, i: int, index: list[Index], x: str, memo: dict) -> None:
        em = self.em
        node = self.g.nodes[i]
        buf, dtype = self.buffers[i], node.types[0].dtype
        where = f"{buf.name}[{indices(em, index)}] : {buf.type}"
        cur = em.op(f"memref.load {where}", "l")
        if node.op == "accum_rms" and node.attr("reduce_dim", -1) == -1:
            x = em.round(em.fbin("mulf", x, x), dtype)
        if node.op == "accum_max":
            new = em.fbin("maximumf", cur, x)
        elif node.op == "accum_rescaled_sum":
            m_val = node.inputs[1]
            m = self.value_at(m_val, _bcast(index, self.vtype(m_val).shape, node.types[0].shape), memo)
            mbuf = self.max_buffers[i]
            mwhere = f"{mbuf.name}[{indices(em, index)}] : {mbuf.type}"
            old_max = em.op(f"memref.load {mwhere}", "l")
            new_max = em.fbin("maximumf", old_max, m)
            scale_old = em.fun("math.exp", em.fbin("subf", old_max, new_max))
            scale_new = em.fun("math.exp", em.fbin("subf", m, new_max))
            new = em.fbin("addf", em.fbin("mulf", cur, scale_old), em.fbin("mulf", x, scale_new))
            em.emit(f"memref.store {new_max}, {mwhere}")
        else:
            new = em.fbin("addf", cur, x)
        em.emit(f"memref.store {em.round(new, dtype)}, {where}")

    def saver_offsets(self, i: int) -> list[Index]:
        node = self.g.nodes[i]
        tile = self.vtype(node.inputs[0]).shape
        offsets: list[Index] = [0] * len(tile)
        for axis, dim in enumerate(node.attr("omap")):
            if dim != -1 and self.g.grid_dim[axis] > 1:
                offsets[dim] = self.em.add(offsets[dim], self.em.mul(self.bid[axis], tile[dim]))
        return offsets

    def store_global(self, i: int, index: list[Index], xs: list[str]) -> None:
        """Stores len(xs) consecutive values (along the last dim) of saver i's tile at `index`."""
        em = self.em
        out = self.output_args[i]
        t = self.g.nodes[i].types[0]
        offsets = self.saver_offsets(i)
        where = [em.add(a, b) for a, b in zip(index, offsets)]
        mtype = memref_type(t.shape, t.dtype)
        vals = [em.truncate(x, t.dtype) for x in xs]
        if len(vals) == 1:
            em.emit(f"memref.store {vals[0]}, {out}[{indices(em, where)}] : {mtype}")
            return
        vec_type = f"vector<{len(vals)}x{t.dtype}>"
        vec = em.op(f"vector.from_elements {', '.join(vals)} : {vec_type}", "vec")
        align = len(vals) * BYTES[t.dtype]
        em.emit(f"vector.store {vec}, {out}[{indices(em, where)}] {{alignment = {align}}} : {mtype}, {vec_type}")

    # -- stages ----------------------------------------------------------------------------------
    def reads_of(self, v: int, seen: set | None = None) -> set[str]:
        """Shared buffers read when computing value v inline (or loading it)."""
        seen = set() if seen is None else seen
        if v < self.n_in or v in seen:
            return set()
        seen.add(v)
        i = self.node_of[v]
        if self.is_buffer(i):
            return {self.buffers[i].name}
        out: set[str] = set()
        for a in self.g.nodes[i].inputs:
            out |= self.reads_of(a, seen)
        return out

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

    def copy_geometry(self, i: int) -> dict:
        """How iterator i's tile is copied: `width`-element vectors (16 bytes where alignment allows)."""
        node = self.g.nodes[i]
        buf = self.buffers[i]
        tensor_v = node.inputs[0]
        gtype = self.vtype(tensor_v)
        width = _vector_width(buf.dtype, buf.shape[-1], gtype.shape[-1])
        return {
            "i": i, "node": node, "buf": buf, "width": width,
            "chunk_shape": buf.shape[:-1] + (buf.shape[-1] // width,),
            "n_chunks": _numel(buf.shape) // width,
            "arg": self.input_args[tensor_v], "gmem": memref_type(gtype.shape, gtype.dtype),
            "vec": f"vector<{width}x{buf.dtype}>" if width > 1 else buf.dtype,
            "align": width * BYTES[buf.dtype],
        }

    def copy_where(self, geo: dict, c: Index) -> list[Index]:
        where = self.em.unflatten(c, geo["chunk_shape"])
        where[-1] = self.em.mul(where[-1], geo["width"])
        return where

    def copy_load(self, geo: dict, where: list[Index]) -> str:
        """Loads one chunk of the tile for iteration self.it."""
        em = self.em
        offsets = self.iterator_offsets(geo["node"], geo["buf"].shape)
        src = [em.add(a, b) for a, b in zip(where, offsets)]
        if geo["width"] == 1:
            return em.op(f"memref.load {geo['arg']}[{indices(em, src)}] : {geo['gmem']}", "g")
        return em.op(f"vector.load {geo['arg']}[{indices(em, src)}] {{alignment = {geo['align']}}} "
                     f": {geo['gmem']}, {geo['vec']}", "g")

    def copy_store(self, geo: dict, where: list[Index], val: str) -> None:
        em, buf = self.em, geo["buf"]
        if geo["width"] == 1:
            em.emit(f"memref.store {val}, {buf.name}[{indices(em, where)}] : {buf.type}")
        else:
            em.emit(f"vector.store {val}, {buf.name}[{indices(em, where)}] {{alignment = {geo['align']}}} "
                    f": {buf.type}, {geo['vec']}")

    def copy_slots(self, geo: dict) -> list[tuple[Index, bool]]:
        """This thread's chunks when each thread copies a fixed number: (chunk id, may be past the end)."""
        n, count = geo["n_chunks"], self.threads
        return [(self.em.add(self.tid, q * count), (q + 1) * count > n) for q in range(-(-n // count))]

    def prefetch_loads(self, geos: list[dict]) -> list[str]:
        """Every chunk this thread copies, loaded for iteration self.it (past-the-end chunks clamped)."""
        em = self.em
        values = []
        for geo in geos:
            for c, partial in self.copy_slots(geo):
                if partial:
                    c = em.op(f"arith.minui {em.idx(c)}, {em.idx(geo['n_chunks'] - 1)} : index", "i")
                values.append(self.copy_load(geo, self.copy_where(geo, c)))
        return values

    def prefetch_stores(self, geos: list[dict], values: list[str]) -> None:
        em = self.em
        values = list(values)
        for geo in geos:
            for c, partial in self.copy_slots(geo):
                val = values.pop(0)
                if partial:
                    with em.region(f"scf.if {em.cmp_lt(c, geo['n_chunks'])} {{"):
                        self.copy_store(geo, self.copy_where(geo, c), val)
                else:
                    self.copy_store(geo, self.copy_where(geo, c), val)
            self.dirty.add(geo["buf"].name)

    def copy_stage(self, iterators: list[int]) -> None:
        """Global -> shared copies of input iterator tiles, all loads issued before the stores."""
        for i in iterators:
            geo = self.copy_geometry(i)
            n, count = geo["n_chunks"], self.threads
            if n % count == 0 and n // count <= 16:
                pending = []
                for c, _ in self.copy_slots(geo):
                    where = self.copy_where(geo, c)
                    pending.append((where, self.copy_load(geo, where)))
                for where, val in pending:
                    self.copy_store(geo, where, val)
            else:
                def body(c, geo=geo):
                    where = self.copy_where(geo, c)
                    self.copy_store(geo, where, self.copy_load(geo, where))

                self.for_each(n, body, attr=f"mirage.stage = \"copy {i}\"")
            self.dirty.add(geo["buf"].name)

    def ring_view(self, i: int, slot: Index) -> str:
        """A view of stage `slot` of ring buffer i (its offset is the same in every thread)."""
        em, buf = self.em, self.buffers[i]
        offset = em.add(buf.offset, em.mul(slot, buf.stage_bytes))
        return em.op(f"memref.view {self.smem}[{em.idx(offset)}][] : "
                     f"memref<?xi8, #gpu.address_space<workgroup>> to {buf.type}", "ring")

    def async_copy_stage(self, iteration: Index, slot: Index, live: str | None = None) -> str:
        """Issues the cp.async copies of the ring iterators' tiles of `iteration` into stage `slot`
        and commits them as one group (each thread commits its own copies); returns its token.
        `live` (an i1, the same in every thread): when false the copies read nothing (src-size 0)."""
        em = self.em
        saved = self.it
        self.it = iteration
        for i in self.ring:
            geo = self.copy_geometry(i)
            view = self.ring_view(i, slot)
            bypass = " {bypassL1}" if geo["align"] == 16 else ""
            size = ""
            if live is not None:
                size = ", " + em.op(f"arith.select {live}, {em.idx(geo['width'])}, {em.idx(0)} : index", "i")

            def body(c, geo=geo, view=view, bypass=bypass, size=size):
                where = self.copy_where(geo, c)
                src = [em.add(a, b) for a, b in zip(where, self.iterator_offsets(geo["node"], geo["buf"].shape))]
                em.op(f"nvgpu.device_async_copy {geo['arg']}[{indices(em, src)}], {view}[{indices(em, where)}], "
                      f"{geo['width']}{size}{bypass} : {geo['gmem']} to {geo['buf'].type}", "cp")

            self.for_each(geo["n_chunks"], body, attr=f"mirage.stage = \"cp.async {i}\"")
        self.it = saved
        return self.commit_group()

    def commit_group(self) -> str:
        """cp.async.commit_group: it commits every copy this thread issued since the last one, so the
        op's tokens (which order SSA only; copies inside loops have none to pass) are one poison
        value. With no token, MLIR 22 prints a form its parser misreads."""
        return self.em.op(f"nvgpu.device_async_create_group {self.no_token}", "grp")

    def async_wait(self, group: str, pending: int) -> None:
        """Waits until at most `pending` of this thread's copy groups are still in flight."""
        self.em.emit(f"nvgpu.device_async_wait {group} {{numGroups = {pending} : i32}}")

    def prefetch_depth(self, geos: list[dict]) -> int:
        """Iterations whose synchronously copied tiles are loaded ahead into loop-carried registers."""
        slots = sum(-(-geo["n_chunks"] // self.threads) for geo in geos)
        if not (self.prefetch and geos and all(-(-geo["n_chunks"] // self.threads) <= 16 for geo in geos)):
            return 0
        return max((d for d in range(1, PREFETCH_DEPTH + 1) if d * slots <= PREFETCH_SLOTS and d < self.loop),
                   default=0)

    def figures(self) -> "PlanFigures":
        """What the cost model needs to know of this kernel's memory pipeline."""
        smem = self._allocate(check=False)
        loop_iters = [i for i, k in enumerate(self.kind) if k == "iter" and self.phase_of(i) == "loop"]
        sync = [i for i in loop_iters if i not in self.ring]
        geos = [self.copy_geometry(i) for i in sync]
        depth = self.prefetch_depth(geos) if self.loop > 1 else 0
        tile_bytes = {i: _numel(self.buffers[i].shape) * BYTES[self.buffers[i].dtype] for i in loop_iters}
        sync_bytes = sum(tile_bytes[i] for i in sync)
        # a synchronous copy issues all of a thread's loads before its stores when it unrolls them
        sync_inflight = sum(tile_bytes[i] if -(-geo["n_chunks"] // self.threads) <= 16 else geo["align"] * self.threads
                            for i, geo in zip(sync, geos))
        # loop-invariant tiles are copied one after the other before the loop: each copy waits for
        # its loads, all at once when a thread's share is unrolled, else one 16-byte chunk at a time
        pre_round_trips = 0
        for i, k in enumerate(self.kind):
            if k == "iter" and i not in loop_iters:
                geo = self.copy_geometry(i)
                per_thread = -(-geo["n_chunks"] // self.threads)
                unrolled = geo["n_chunks"] % self.threads == 0 and per_thread <= 16
                pre_round_trips += 1 if unrolled else per_thread
        return PlanFigures(smem, self.threads, self.loop, self.stages, depth,
                           sum(tile_bytes[i] for i in self.ring), sync_bytes,
                           sync_bytes * depth if depth else sync_inflight, pre_round_trips,
                           frozenset(i for i, k in enumerate(self.kind) if k == "matmul" and self.mma_eligible(i)),
                           self.mma_chain(),
                           tuple((tile_bytes.get(i, 0) * self.loop or _numel(self.buffers[i].shape) * BYTES[self.buffers[i].dtype],
                                  self.contiguous_bytes(i)) for i, k in enumerate(self.kind) if k == "iter"))

    def contiguous_bytes(self, i: int) -> int:
        """Bytes of iterator i's tile that lie side by side in memory (a row, or several whole rows)."""
        tile, whole = self.g.nodes[i].types[0].shape, self.vtype(self.g.nodes[i].inputs[0]).shape
        run = BYTES[self.g.nodes[i].types[0].dtype]
        for t, w in zip(reversed(tile), reversed(whole)):
            run *= t
            if t != w:
                break
        return run

    def mma_chain(self) -> int:
        """Dependent mma.sync steps per warp and loop iteration, over the tensor-core matmuls."""
        phases = {i: self.phase_of(i) for i in range(len(self.g.nodes))}
        by_matmul = {info["mm"]: info for info in self.register_accumulators(phases).values()}
        chain = 0
        for i, kind in enumerate(self.kind):
            if kind != "matmul" or not self.mma_eligible(i) or phases[i] != ("loop" if self.loop > 1 else "pre"):
                continue
            k_dim = self.vtype(self.g.nodes[i].inputs[0]).shape[-1]
            if i in by_matmul:
                info = by_matmul[i]
                chain += info["per_warp"] * k_dim // (16 * info["kslices"])
            else:
                shape = self.vtype(self.value(i)).shape
                wm, wn = self.pick_warp_tile(shape)
                tiles = _numel(shape[:-2]) * (-(-shape[-2] // 16) // wm) * ((shape[-1] // 8) // wn)
                chain += -(-tiles // self.warps) * (k_dim // 16)
        return chain

    def iterator_offsets(self, node: Node, tile: tuple[int, ...]) -> list[Index]:
        em = self.em
        fmap = node.attr("fmap")
        offsets: list[Index] = [0] * len(tile)
        for axis, dim in enumerate(node.attr("imap")):
            if dim != -1 and self.g.grid_dim[axis] > 1:
                share = tile[dim] * (self.loop if fmap == dim else 1)
                offsets[dim] = em.add(offsets[dim], em.mul(self.bid[axis], share))
        if fmap != -1 and self.loop > 1:
            offsets[fmap] = em.add(offsets[fmap], em.mul(self.it, tile[fmap]))
        return offsets

    def compute_stage(self, target: tuple, root: int) -> None:
        """Computes value `root` elementwise (or by micro-tiles when it holds matmuls) into target."""
        reads = self.reads_of_stage(root)
        if target[0] == "acc":
            reads.add(self.buffers[target[1]].name)
            node = self.g.nodes[target[1]]
            for extra in node.inputs[1:]:
                reads |= self.reads_of(extra)
        self.sync_for(reads)
        own = target[0] == "buf" and self.value(target[1]) == root
        matmuls = self.inline_matmuls(root)
        if matmuls:
            self.matmul_stage(target, root, matmuls, own)
        elif target[0] == "saver":
            self.saver_stage(target[1], root)
        else:
            shape = self.vtype(root).shape

            def body(e):
                memo: dict = {}
                index = self.em.unflatten(e, shape)
                self.write(target, index, self.value_at(root, index, memo, compute=own), memo)

            self.for_each(_numel(shape), body)
        if target[0] == "buf":
            self.dirty.add(self.buffers[target[1]].name)

    def reads_of_stage(self, root: int) -> set[str]:
        i = self.node_of[root]
        if self.kind[i] in ("ew", "acc_id", "matmul") and self.buffered[i]:
            out: set[str] = set()
            for a in self.g.nodes[i].inputs:
                out |= self.reads_of(a)
            return out
        return self.reads_of(root)

    def saver_stage(self, i: int, root: int) -> None:
        em = self.em
        shape = self.vtype(root).shape
        out_t = self.g.nodes[i].types[0]
        width = _vector_width(out_t.dtype, shape[-1], out_t.shape[-1])
        chunk_shape = shape[:-1] + (shape[-1] // width,)

        def body(c):
            memo: dict = {}
            where = em.unflatten(c, chunk_shape)
            where[-1] = em.mul(where[-1], width)
            xs = []
            for k in range(width):
                index = where[:-1] + [em.add(where[-1], k)]
                xs.append(self.value_at(root, index, memo))
            self.store_global(i, where, xs)

        self.for_each(_numel(chunk_shape), body)

    def pick_microtile(self, shape: tuple[int, ...]) -> tuple[int, int]:
        batch, m, n = _numel(shape[:-2]), shape[-2], shape[-1]
        best = (1, 1)
        for tm, tn in ((4, 4), (2, 4), (4, 2), (1, 4), (2, 2), (4, 1), (1, 2), (2, 1)):
            if m % tm or n % tn:
                continue
            if batch * (m // tm) * (n // tn) >= self.threads and tm * tn > best[0] * best[1]:
                best = (tm, tn)
        return best

    def mma_eligible(self, i: int) -> bool:
        """Matmul node i runs on tensor cores (mma.sync m16n8k16, f16 or bf16 operands, f32
        accumulation): both operands buffers in shared memory of one of those types, K a multiple
        of 16 and N of 8."""
        if not self.use_mma:
            return False
        node = self.g.nodes[i]
        a, b = node.inputs
        if a < self.n_in or b < self.n_in:
            return False
        for v in (a, b):
            j = self.node_of[v]
            if not self.buffered[j] or self.kind[j] == "acc" or self.vtype(v).dtype not in ("f16", "bf16"):
                return False
        if self.vtype(a).dtype != self.vtype(b).dtype:
            return False
        k, n = self.vtype(a).shape[-1], self.vtype(b).shape[-1]
        return k % 16 == 0 and n % 8 == 0

    def matmul_stage(self, target: tuple, root: int, matmuls: list[int], own: bool) -> None:
        if any(self.mma_eligible(i) for i in matmuls):
            return self.mma_stage(target, root, matmuls, own)
        em = self.em
        shape = self.vtype(root).shape
        tm, tn = self.pick_microtile(shape)
        tiles = shape[:-2] + (shape[-2] // tm, shape[-1] // tn)

        def body(t):
            where = em.unflatten(t, tiles)
            batch = where[:-2]
            m0, n0 = em.mul(where[-2], tm), em.mul(where[-1], tn)
            overrides_per = []
            for mi in matmuls:
                overrides_per.append(self.k_loop(mi, batch, m0, n0, tm, tn))
            for a in range(tm):
                for b in range(tn):
                    index = batch + [em.add(m0, a), em.add(n0, b)]
                    overrides = {self.value(mi): acc[a][b] for mi, acc in zip(matmuls, overrides_per)}
                    memo: dict = {}
                    self.write(target, index, self.value_at(root, index, memo, overrides, compute=own), memo)

        self.for_each(_numel(tiles), body)

    def pick_warp_tile(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """(wm, wn): each warp computes wm x wn mma tiles of 16 x 8; enough tiles for every warp."""
        batch, mt, nt = _numel(shape[:-2]), -(-shape[-2] // 16), shape[-1] // 8
        best = (1, 1)
        for wm, wn in ((2, 4), (4, 2), (2, 2), (1, 4), (4, 1), (1, 2), (2, 1)):
            if mt % wm or nt % wn:
                continue
            if batch * (mt // wm) * (nt // wn) >= self.warps and wm * wn > best[0] * best[1]:
                best = (wm, wn)
        return best

    def mma_stage(self, target: tuple, root: int, matmuls: list[int], own: bool) -> None:
        """Matmuls on tensor cores: each warp owns wm x wn tiles of 16 x 8 outputs; fragments are
        loaded from shared memory with ldmatrix in the m16n8k16 layouts (lane = 4 * group + t_in_group), the K loop
        carries the f32 accumulators in registers, and each thread then applies the stage's epilogue
        to the four outputs per tile it holds. Matmuls of the stage that cannot use tensor cores
        (e.g. K = 1) are computed per output element."""
        em = self.em
        shape = self.vtype(root).shape
        m, n = shape[-2], shape[-1]
        wm, wn = self.pick_warp_tile(shape)
        mt = -(-m // 16)
        tiles = shape[:-2] + (mt // wm, (n // 8) // wn)
        group = em.div(self.lane, 4)
        tig = em.rem(self.lane, 4)
        mma = [i for i in matmuls if self.mma_eligible(i)]
        rest = [i for i in matmuls if i not in mma]

        def body(wt):
            where = em.unflatten(wt, tiles)
            batch = where[:-2]
            m0, n0 = em.mul(where[-2], 16 * wm), em.mul(where[-1], 8 * wn)
            results = {i: self.mma_k_loop(i, batch, m0, n0, wm, wn, group, tig) for i in mma}
            for a in range(wm):
                for b in range(wn):
                    for half in range(2):
                        row = em.add(em.add(m0, 16 * a + 8 * half), group)
                        guard = None
                        if m % 16 and 16 * (mt - 1) + 8 * half + 7 >= m:
                            guard = em.cmp_lt(row, m)
                        for c in range(2):
                            col = em.add(em.add(n0, 8 * b), em.add(em.mul(tig, 2), c))
                            index = batch + [row, col]
                            values = {self.value(i): results[i][a][b][half][c] for i in mma}

                            def epilogue(index=index, values=values):
                                memo: dict = {}
                                for i in rest:
                                    values[self.value(i)] = self.dot(i, index)
                                self.write(target, index, self.value_at(root, index, memo, values, compute=own), memo)

                            if guard is None:
                                epilogue()
                            else:
                                with em.region(f"scf.if {guard} {{"):
                                    epilogue()

        self.for_each(_numel(tiles), body, ids=self.warp, count=self.warps)

    def mma_k_loop(self, i: int, batch, m0, n0, wm: int, wn: int, group, tig, init: list[str] | None = None,
                   raw: bool = False, k_range: tuple[Index, int] | None = None):
        """[a][b][half][c] f32 results (rounded to the matmul's type) of matmul node i's tiles;
        `k_range` (first, length): a slice of K only (raw partial sums)."""
        em = self.em
        node = self.g.nodes[i]
        a_v, b_v = node.inputs
        abuf, bbuf = self.buffers[self.node_of[a_v]], self.buffers[self.node_of[b_v]]
        m, k_dim = self.vtype(a_v).shape[-2:]
        k_first, k_dim = k_range or (0, k_dim)
        dtype = abuf.dtype

        # ldmatrix: lane l gives the address of row l % 8 of 8x8 matrix l // 8 (16 bytes each).
        # A (x4): matrices (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15)
        # give the m16n8k16 A registers a0..a3 in order. Rows past M read row M-1 (clamped): they only
        # feed output rows past M, which are never written.
        lrow, lmat = em.rem(self.lane, 8), em.div(self.lane, 8)

        def a_frag(a: int, k0: Index) -> str:
            row = em.add(em.add(m0, 16 * a), em.add(lrow, em.mul(em.rem(lmat, 2), 8)))
            if m % 16:
                row = em.op(f"arith.minui {em.idx(row)}, {em.idx(m - 1)} : index", "i")
            col = em.add(k0, em.mul(em.div(lmat, 2), 8))
            return em.op(f"nvgpu.ldmatrix {abuf.name}[{indices(em, batch + [row, col])}] "
                         f"{{numTiles = 4 : i32, transpose = false}} : {abuf.type} -> vector<4x2x{dtype}>", "fa")

        # B (x2, transposed): matrices (k 0-7) and (k 8-15) of columns n0 + 8b .. + 7, stored [k][n].
        def b_frag(b: int, k0: Index) -> str:
            row = em.add(k0, em.add(lrow, em.mul(em.rem(lmat, 2), 8)))
            col = em.add(n0, 8 * b)
            return em.op(f"nvgpu.ldmatrix {bbuf.name}[{indices(em, batch + [row, col])}] "
                         f"{{numTiles = 2 : i32, transpose = true}} : {bbuf.type} -> vector<2x2x{dtype}>", "fb")

        def step(k0: Index, accs: list[str]) -> list[str]:
            af = [a_frag(a, k0) for a in range(wm)]
            bf = [b_frag(b, k0) for b in range(wn)]
            out = []
            for a in range(wm):
                for b in range(wn):
                    out.append(self.mma_sync(af[a], bf[b], accs[a * wn + b], dtype))
            return out

        if init is None:
            init = [em.vconst_zero("vector<2x2xf32>")] * (wm * wn)
        if k_dim == 16:
            accs = step(k_first, init)
        else:
            k, res = em.fresh("k"), em.fresh("mm")
            args = [em.fresh("s") for _ in init]
            iter_args = ", ".join(f"{x} = {z}" for x, z in zip(args, init))
            types = ", ".join(["vector<2x2xf32>"] * len(init))
            k_stop = em.add(k_first, k_dim)
            with em.region(f"{res}:{len(init)} = scf.for {k} = {em.idx(k_first)} to {em.idx(k_stop)} step {em.idx(16)} "
                           f"iter_args({iter_args}) -> ({types}) {{"):
                em.emit(f"scf.yield {', '.join(step(k, args))} : {types}")
            accs = [f"{res}#{j}" for j in range(len(init))]
        if raw:
            return accs
        dtype = node.types[0].dtype
        out = []
        for a in range(wm):
            row = []
            for b in range(wn):
                acc = accs[a * wn + b]
                row.append([[em.round(em.op(f"vector.extract {acc}[{half}, {c}] : f32 from vector<2x2xf32>", "f"), dtype)
                             for c in range(2)] for half in range(2)])
            out.append(row)
        return out

    def mma_sync(self, a: str, b: str, c: str, dtype: str) -> str:
        """D = A B + C for one m16n8k16 tile (fragments from ldmatrix, C and D vector<2x2xf32>).
        MLIR 22's nvgpu.mma.sync cannot deduce bf16's PTX types, so bf16 goes through nvvm.mma.sync
        with each pair of bf16 packed into an i32 (the PTX register form)."""
        em = self.em
        if dtype == "f16":
            return em.op(f"nvgpu.mma.sync({a}, {b}, {c}) {{mmaShape = [16, 8, 16]}} "
                         f": (vector<4x2xf16>, vector<2x2xf16>, vector<2x2xf32>) -> vector<2x2xf32>", "mma")

        def packed(frag: str, regs: int) -> list[str]:
            out = []
            for r in range(regs):
                pair = em.op(f"vector.extract {frag}[{r}] : vector<2x{dtype}> from vector<{regs}x2x{dtype}>", "pr")
                word = em.op(f"vector.bitcast {pair} : vector<2x{dtype}> to vector<1xi32>", "pw")
                out.append(em.op(f"vector.extract {word}[0] : i32 from vector<1xi32>", "pi"))
            return out

        cs = [em.op(f"vector.extract {c}[{h}, {k}] : f32 from vector<2x2xf32>", "f") for h in range(2) for k in range(2)]
        struct = "!llvm.struct<(f32, f32, f32, f32)>"
        d = em.op(f"nvvm.mma.sync A[{', '.join(packed(a, 4))}] B[{', '.join(packed(b, 2))}] C[{', '.join(cs)}] "
                  f"{{layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, "
                  f"multiplicandAPtxType = #nvvm.mma_type<{dtype}>, multiplicandBPtxType = #nvvm.mma_type<{dtype}>, "
                  f"shape = #nvvm.shape<m = 16, n = 8, k = 16>}} : (i32, i32, f32) -> {struct}", "mma")
        ds = [em.op(f"llvm.extractvalue {d}[{k}] : {struct}", "f") for k in range(4)]
        return em.op(f"vector.from_elements {', '.join(ds)} : vector<2x2xf32>", "mma")

    def register_accumulators(self, phases: dict) -> dict:
        """Accumulators kept in registers across the for-loop: an f32 accum_sum of a tensor-core
        matmul (f32) whose warp tiles split evenly over the warps. The loop carries the mma
        accumulators (the K loop simply continues from one iteration to the next); the totals are
        written to the accumulator's buffer once, after the loop."""
        out = {}
        for i, node in enumerate(self.g.nodes):
            if self.kind[i] != "acc" or phases.get(i) != "loop" or node.op != "accum_sum":
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
            per_warp = _numel(tiles) * kslices // self.warps
            out[i] = {"mm": mm, "wm": wm, "wn": wn, "tiles": tiles, "per_warp": per_warp, "kslices": kslices,
                      "count": per_warp * wm * wn, "in": None, "out": None}
        return out

    def split_warp_tiles(self, shape: tuple[int, ...], k_dim: int):
        """How the warps share a loop-carried tensor-core matmul: (wm, wn, tiles, kslices). Each warp
        owns wm x wn mma tiles (independent accumulators: the larger, the more mma in flight); when
        there are fewer warp tiles than warps, `kslices` warps share a tile, each taking a slice of
        K, and their partial sums are added once, after the loop. None: no even split."""
        batch, mt, nt = _numel(shape[:-2]), -(-shape[-2] // 16), shape[-1] // 8
        for wm, wn in ((2, 4), (4, 2), (1, 8), (2, 2), (1, 4), (4, 1), (1, 2), (2, 1), (1, 1)):
            if mt % wm or nt % wn:
                continue
            n_tiles = batch * (mt // wm) * (nt // wn)
            tiles = shape[:-2] + (mt // wm, nt // wn)
            if n_tiles % self.warps == 0 and n_tiles // self.warps <= UNROLL:
                return wm, wn, tiles, 1
            if self.warps % n_tiles == 0 and k_dim % (16 * (self.warps // n_tiles)) == 0:
                return wm, wn, tiles, self.warps // n_tiles
        return None

    def reg_tile_origin(self, info: dict, k: int):
        em = self.em
        n_tiles = _numel(info["tiles"])
        tile = em.add(self.warp, k * self.warps) if info["kslices"] == 1 else em.rem(self.warp, n_tiles)
        where = em.unflatten(tile, info["tiles"])
        return where[:-2], em.mul(where[-2], 16 * info["wm"]), em.mul(where[-1], 8 * info["wn"])

    def reg_k_range(self, info: dict) -> tuple[Index, int]:
        """(first K index, length) of this warp's slice of the matmul's K."""
        k_dim = self.vtype(self.g.nodes[info["mm"]].inputs[0]).shape[-1]
        if info["kslices"] == 1:
            return 0, k_dim
        share = k_dim // info["kslices"]
        return self.em.mul(self.em.div(self.warp, _numel(info["tiles"])), share), share

    def register_accumulator_stage(self, i: int) -> None:
        """One iteration's matmul, accumulated into the loop-carried mma accumulators."""
        em = self.em
        info = self.reg_accs[i]
        mm = info["mm"]
        reads: set[str] = set()
        for v in self.g.nodes[mm].inputs:
            reads |= self.reads_of(v)
        self.sync_for(reads)
        group, tig = em.div(self.lane, 4), em.rem(self.lane, 4)
        size = info["wm"] * info["wn"]
        outs = []
        for k in range(info["per_warp"]):
            batch, m0, n0 = self.reg_tile_origin(info, k)
            outs += self.mma_k_loop(mm, batch, m0, n0, info["wm"], info["wn"], group, tig,
                                    init=info["in"][k * size:(k + 1) * size], raw=True,
                                    k_range=self.reg_k_range(info))
        info["out"] = outs

    def register_accumulator_flush(self, i: int, values: list[str]) -> None:
        """Writes the totals this thread holds into the accumulator's buffer (f32); warps that
        shared a tile by K slices add theirs in turn, a barrier apart."""
        info = self.reg_accs[i]
        if info["kslices"] == 1:
            return self.register_accumulator_store(i, values, add=False)
        k_slice = self.em.div(self.warp, _numel(info["tiles"]))
        for turn in range(info["kslices"]):
            if turn:
                self.barrier()
            with self.em.region(f"scf.if {self.em.cmp_eq(k_slice, turn)} {{"):
                self.register_accumulator_store(i, values, add=turn > 0)

    def register_accumulator_store(self, i: int, values: list[str], add: bool) -> None:
        em = self.em
        info = self.reg_accs[i]
        buf = self.buffers[i]
        m = self.vtype(self.value(info["mm"])).shape[-2]
        group, tig = em.div(self.lane, 4), em.rem(self.lane, 4)
        wm, wn = info["wm"], info["wn"]
        for k in range(info["per_warp"]):
            batch, m0, n0 = self.reg_tile_origin(info, k)
            for a in range(wm):
                for b in range(wn):
                    acc = values[(k * wm + a) * wn + b]
                    for half in range(2):
                        row = em.add(em.add(m0, 16 * a + 8 * half), group)

                        def store(row=row, acc=acc, half=half, b=b):
                            for c in range(2):
                                col = em.add(em.add(n0, 8 * b), em.add(em.mul(tig, 2), c))
                                x = em.op(f"vector.extract {acc}[{half}, {c}] : f32 from vector<2x2xf32>", "f")
                                where = f"{buf.name}[{indices(em, batch + [row, col])}] : {buf.type}"
                                if add:
                                    x = em.fbin("addf", em.op(f"memref.load {where}", "l"), x)
                                em.emit(f"memref.store {x}, {where}")

                        if m % 16:
                            with em.region(f"scf.if {em.cmp_lt(row, m)} {{"):
                                store()
                        else:
                            store()
        self.dirty.add(buf.name)

    def dot(self, i: int, index: list[Index]) -> str:
        """Matmul node i at one output element (a K loop over its operands), rounded to its type."""
        em = self.em
        node = self.g.nodes[i]
        a_v, b_v = node.inputs
        k_dim = self.vtype(a_v).shape[-1]
        batch, row, col = index[:-2], index[-2], index[-1]
        total = None
        if k_dim <= 8:
            for k in range(k_dim):
                prod = (self.value_at(a_v, batch + [row, k], {}), self.value_at(b_v, batch + [k, col], {}))
                total = em.fbin("mulf", *prod) if total is None else em.fma(prod[0], prod[1], total)
        else:
            k, res, acc = em.fresh("k"), em.fresh("r"), em.fresh("s")
            with em.region(f"{res} = scf.for {k} = {em.idx(0)} to {em.idx(k_dim)} step {em.idx(1)} "
                           f"iter_args({acc} = {em.f32(0.0)}) -> (f32) {{"):
                x = em.fma(self.value_at(a_v, batch + [row, k], {}), self.value_at(b_v, batch + [k, col], {}), acc)
                em.emit(f"scf.yield {x} : f32")
            total = res
        return em.round(total, node.types[0].dtype)

    def k_loop(self, i: int, batch: list[Index], m0: Index, n0: Index, tm: int, tn: int) -> list[list[str]]:
        """The TM x TN f32 results of matmul node i at rows m0.., columns n0.. (rounded to its type)."""
        em = self.em
        node = self.g.nodes[i]
        a_v, b_v = node.inputs
        a_i, b_i = self.node_of[a_v], self.node_of[b_v]
        k_dim = self.vtype(a_v).shape[-1]
        unroll = next(u for u in (4, 2, 1) if k_dim % u == 0)
        plain_a = self.buffered[a_i] and self.kind[a_i] != "acc"
        plain_b = self.buffered[b_i] and self.kind[b_i] != "acc"

        def a_vals(k: Index) -> list[list[str]]:
            """[row][u] values of A at rows m0.., columns k..k+unroll."""
            rows = []
            for r in range(tm):
                row = em.add(m0, r)
                if plain_a and unroll > 1:
                    buf = self.buffers[a_i]
                    vec = f"vector<{unroll}x{buf.dtype}>"
                    align = unroll * BYTES[buf.dtype]
                    loaded = em.op(f"vector.load {buf.name}[{indices(em, batch + [row, k])}] {{alignment = {align}}} "
                                   f": {buf.type}, {vec}", "va")
                    rows.append([em.extend(em.op(f"vector.extract {loaded}[{u}] : {buf.dtype} from {vec}", "l"), buf.dtype)
                                 for u in range(unroll)])
                else:
                    rows.append([self.value_at(a_v, batch + [row, em.add(k, u)], {}) for u in range(unroll)])
            return rows

        def b_vals(k: Index) -> list[list[str]]:
            """[u][col] values of B at rows k..k+unroll, columns n0.."""
            out = []
            for u in range(unroll):
                kk = em.add(k, u)
                if plain_b and tn > 1:
                    buf = self.buffers[b_i]
                    vec = f"vector<{tn}x{buf.dtype}>"
                    align = tn * BYTES[buf.dtype]
                    loaded = em.op(f"vector.load {buf.name}[{indices(em, batch + [kk, n0])}] {{alignment = {align}}} "
                                   f": {buf.type}, {vec}", "vb")
                    out.append([em.extend(em.op(f"vector.extract {loaded}[{c}] : {buf.dtype} from {vec}", "l"), buf.dtype)
                                for c in range(tn)])
                else:
                    out.append([self.value_at(b_v, batch + [kk, em.add(n0, c)], {}) for c in range(tn)])
            return out

        def step(k: Index, accs: list[str]) -> list[str]:
            av, bv = a_vals(k), b_vals(k)
            accs = list(accs)
            for u in range(unroll):
                for r in range(tm):
                    for c in range(tn):
                        accs[r * tn + c] = em.fma(av[r][u], bv[u][c], accs[r * tn + c])
            return accs

        zero = em.f32(0.0)
        init = [zero] * (tm * tn)
        if k_dim // unroll <= 2:
            accs = init
            for k in range(0, k_dim, unroll):
                accs = step(k, accs)
        else:
            k = em.fresh("k")
            res = em.fresh("mm")
            args = [em.fresh("s") for _ in init]
            iter_args = ", ".join(f"{a} = {z}" for a, z in zip(args, init))
            types = ", ".join(["f32"] * len(init))
            header = (f"{res}:{len(init)} = scf.for {k} = {em.idx(0)} to {em.idx(k_dim)} step {em.idx(unroll)} "
                      f"iter_args({iter_args}) -> ({types}) {{")
            with em.region(header):
                new = step(k, args)
                em.emit(f"scf.yield {', '.join(new)} : {types}")
            accs = [f"{res}#{j}" for j in range(len(init))]
        dtype = node.types[0].dtype
        accs = [em.round(a, dtype) for a in accs]
        return [accs[r * tn:(r + 1) * tn] for r in range(tm)]

    def reduce_stage(self, target: tuple, node: Node, x_v: int) -> None:
        """A reduction over `reduce_dim`/`dim` of value x_v into a buffer or an accumulator."""
        em = self.em
        dim = node.attr("dim") if node.op in OPS else node.attr("reduce_dim")
        x_shape = self.vtype(x_v).shape
        dim %= len(x_shape)
        length = x_shape[dim]
        out_shape = node.types[0].shape
        is_max = node.op in ("reduce_max", "accum_max")
        squares = node.op == "accum_rms"
        acc_dtype = node.types[0].dtype
        reads = self.reads_of(x_v)
        if target[0] == "acc":
            reads.add(self.buffers[target[1]].name)
            for extra in node.inputs[1:]:
                reads |= self.reads_of(extra)
        self.sync_for(reads)

        def element(oidx: list[Index], j: Index, memo: dict) -> str:
            index = list(oidx)
            index[dim] = j
            x = self.value_at(x_v, index, memo)
            return em.round(em.fbin("mulf", x, x), acc_dtype) if squares else x

        def combine(a: str, b: str) -> str:
            return em.fbin("maximumf" if is_max else "addf", a, b)

        identity = em.f32(-math.inf if is_max else 0.0)

        def finish(oidx: list[Index], total: str, memo: dict) -> None:
            if target[0] == "acc":
                value = em.round(total, acc_dtype)
                self.acc_update(target[1], oidx, value, memo)
            else:
                self.write(target, oidx, self.reduce_finish(node, total, length), memo)

        if length >= 32:
            rows = _numel(out_shape)
            split = self.warps_per_row(rows, length)
            if split > 1:
                return self.split_row_reduction(target, node, out_shape, length, split, element, combine,
                                                identity, finish)

            def warp_body(o):
                oidx = em.unflatten(o, out_shape)
                total = self.lane_partial(lambda j, memo: element(oidx, j, memo), em.idx(self.lane), length, 32,
                                          combine, identity)
                total = self.warp_allreduce(total, combine)
                with em.region(f"scf.if {self.lane_zero} {{"):
                    finish(oidx, total, {})

            self.for_each(rows, warp_body, ids=self.warp, count=self.warps)
        else:
            def thread_body(o):
                oidx = em.unflatten(o, out_shape)
                memo: dict = {}
                total = None
                for j in range(length):
                    x = element(oidx, j, memo)
                    total = x if total is None else combine(total, x)
                finish(oidx, total, memo)

            self.for_each(_numel(out_shape), thread_body)
        if target[0] == "buf":
            self.dirty.add(self.buffers[target[1]].name)

    def _splits_rows(self) -> bool:
        """Some reduction of this kernel shares its rows among several warps (needs the scratch)."""
        for node in self.g.nodes:
            if node.op in ("reduce_sum", "reduce_mean", "reduce_max") or (
                    node.op in ACCUMULATORS and node.attr("reduce_dim", -1) != -1):
                x_shape = self.vtype(node.inputs[0]).shape
                dim = (node.attr("dim") if node.op in OPS else node.attr("reduce_dim")) % len(x_shape)
                if x_shape[dim] >= 32 and self.warps_per_row(_numel(node.types[0].shape), x_shape[dim]) > 1:
                    return True
        return False

    def warps_per_row(self, rows: int, length: int) -> int:
        """Warps that share one row of a reduction: all of them when rows are fewer than warps
        (a single warp would run the whole row's loads one after the other), else one."""
        split = 1
        while rows * split * 2 <= self.warps and length % (32 * split * 2) == 0 and length // (32 * split * 2) >= 2:
            split *= 2
        return split

    def lane_partial(self, element, first: Index, length: int, stride: int, combine, identity: str) -> str:
        """This lane's combination of elements first, first + stride, ... < length (`first` is below
        `stride`): unrolled when every lane has the same few, else a loop carrying four independent
        partial results where the count allows (one when lanes have different counts)."""
        em = self.em
        count = length // stride
        even = length % stride == 0
        if even and count <= 8:
            values = [element(em.add(first, stride * q), {}) for q in range(count)]
            while len(values) > 1:  # a tree: independent combines
                values = [combine(values[k], values[k + 1]) if k + 1 < len(values) else values[k]
                          for k in range(0, len(values), 2)]
            return values[0]
        ways = 4 if even and count % 4 == 0 else 1
        j, res = em.fresh("j"), em.fresh("r")
        accs = [em.fresh("s") for _ in range(ways)]
        with em.region(f"{res}:{ways} = scf.for {j} = {em.idx(first)} to {em.idx(length)} step {em.idx(stride * ways)} "
                       f"iter_args({', '.join(f'{a} = {identity}' for a in accs)}) -> "
                       f"({', '.join(['f32'] * ways)}) {{"):
            new = [combine(a, element(em.add(j, stride * w), {})) for w, a in enumerate(accs)]
            em.emit(f"scf.yield {', '.join(new)} : {', '.join(['f32'] * ways)}")
        parts = [f"{res}#{w}" for w in range(ways)]
        while len(parts) > 1:
            parts = [combine(parts[k], parts[k + 1]) for k in range(0, len(parts), 2)]
        return parts[0]

    def warp_allreduce(self, value: str, combine) -> str:
        em = self.em
        for offset in (16, 8, 4, 2, 1):
            other = em.fresh("sh")
            em.emit(f"{other}, {em.fresh('ok')} = gpu.shuffle xor {value}, {em.i32(offset)}, {em.i32(32)} : f32")
            value = combine(value, other)
        return value

    def split_row_reduction(self, target, node, out_shape, length: int, split: int, element, combine,
                            identity: str, finish) -> None:
        """`split` warps per row: each reduces a strided share of the row, lane 0 of each writes its
        warp's result to shared scratch, and after a barrier one thread per row combines them."""
        em = self.em
        rows = _numel(out_shape)
        scratch = self.scratch
        if scratch.name in self.scratch_reads:
            self.barrier()  # the previous split reduction's combine still reads the scratch
        row = em.div(self.warp, split)
        share = em.rem(self.warp, split)
        with em.region(f"scf.if {em.cmp_lt(row, rows)} {{"):
            oidx = em.unflatten(row, out_shape)
            first = em.add(self.lane, em.mul(share, 32))
            total = self.lane_partial(lambda j, memo: element(oidx, j, memo), first, length, 32 * split,
                                      combine, identity)
            total = self.warp_allreduce(total, combine)
            with em.region(f"scf.if {self.lane_zero} {{"):
                em.emit(f"memref.store {total}, {scratch.name}[{em.idx(self.warp)}] : {scratch.type}")
        self.barrier()

        def combine_row(r):
            parts = [em.op(f"memref.load {scratch.name}[{em.idx(em.add(em.mul(r, split), w))}] : {scratch.type}", "l")
                     for w in range(split)]
            while len(parts) > 1:
                parts = [combine(parts[k], parts[k + 1]) for k in range(0, len(parts), 2)]
            finish(em.unflatten(r, out_shape), parts[0], {})

        self.for_each(rows, combine_row)
        self.scratch_reads = {scratch.name}
        if target[0] == "buf":
            self.dirty.add(self.buffers[target[1]].name)

    def init_accumulators(self) -> None:
        em = self.em
        for i, buf in list(self.buffers.items()) + list(self.max_buffers.items()):
            if self.kind[i] != "acc":
                continue
            node = self.g.nodes[i]
            is_max_buf = buf is self.max_buffers.get(i)
            value = em.f32(-math.inf if (node.op == "accum_max" or is_max_buf) else 0.0)

            def body(e, buf=buf, value=value):
                index = em.unflatten(e, buf.shape)
                em.emit(f"memref.store {value}, {buf.name}[{indices(em, index)}] : {buf.type}")

            self.for_each(_numel(buf.shape), body)
            self.dirty.add(buf.name)

    # -- the kernel ------------------------------------------------------------------------------
    def stage_of(self, i: int):
        """(phase, emit) for node i, or None when it has no stage of its own (inline values)."""
        node, kind = self.g.nodes[i], self.kind[i]
        v = self.value(i)
        if kind == "iter":
            return None  # copied by the phase's copy stage
        if kind == "saver":
            return lambda: self.compute_stage(("saver", i), node.inputs[0])
        if kind == "acc":
            if i in self.reg_accs:
                return lambda: self.register_accumulator_stage(i)
            if node.attr("reduce_dim", -1) != -1:
                return lambda: self.reduce_stage(("acc", i), node, node.inputs[0])
            return lambda: self.compute_stage(("acc", i), node.inputs[0])
        if kind in ("reduce", "acc_reduce1"):
            return lambda: self.reduce_stage(("buf", i), node, node.inputs[0])
        if self.buffered[i]:
            return lambda: self.compute_stage(("buf", i), v)
        return None

    def phase_of(self, i: int) -> str:
        if self.loop == 1:
            return "pre"
        if i in self.g.after_loop or self.kind[i] == "saver":
            return "post"
        if self.kind[i] == "acc":
            return "loop"
        return "pre" if i in self.invariant else "loop"

    def generate(self, input_types: list[TensorType], output_types: list[TensorType]) -> KernelCode:
        g, em = self.g, self.em
        shared = self._allocate()
        self.output_args = {}
        saver_of_output = {v: self.node_of[v] for v in g.outputs}
        for k, v in enumerate(g.outputs):
            self.output_args[saver_of_output[v]] = f"%out{k}"
        # ids, computed up front so that they dominate every use
        self.tid = em.op("gpu.thread_id x", "tid")
        self.bid = [em.op(f"gpu.block_id {axis}", "bid") if g.grid_dim[n] > 1 else 0
                    for n, axis in enumerate("xyz")]
        self.lane = em.rem(self.tid, 32)
        self.warp = em.div(self.tid, 32)
        self.lane_zero = em.cmp_eq(self.lane, 0)
        if self.buffers or self._splits_rows():
            self.smem = smem = em.op("gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>",
                                     "smem")
            scratch = [(None, self.scratch)] if self._splits_rows() else []
            for i, buf in list(self.buffers.items()) + list(self.max_buffers.items()) + scratch:
                if buf.stages == 1:
                    em.emit(f"{buf.name} = memref.view {smem}[{em.idx(buf.offset)}][] : "
                            f"memref<?xi8, #gpu.address_space<workgroup>> to {buf.type}")
        if self.ring:
            self.no_token = em.op("ub.poison : !nvgpu.device.async.token", "tok")
        # the ring's first stages are in flight while the prologue runs
        for d in range(self.stages - 1):
            self.async_copy_stage(d, d)
        phases = {i: self.phase_of(i) for i in range(len(g.nodes))}
        # prologue
        self.init_accumulators()
        self.copy_stage([i for i in range(len(g.nodes)) if self.kind[i] == "iter" and phases[i] == "pre"])
        for i in range(len(g.nodes)):
            if phases[i] == "pre" and (emit := self.stage_of(i)):
                emit()
        # the for-loop
        if self.loop > 1:
            if self.dirty:
                self.barrier()
            loop_iters = [i for i in range(len(g.nodes))
                          if self.kind[i] == "iter" and phases[i] == "loop" and i not in self.ring]
            geos = [self.copy_geometry(i) for i in loop_iters]
            slots = sum(len(self.copy_slots(geo)) for geo in geos)
            # Software pipelining: the tiles of the next `depth` iterations are loaded into registers
            # (carried by the loop) while this one computes; each iteration stores the oldest set to
            # shared memory at its top and issues the loads of iteration it + depth.
            depth = self.prefetch_depth(geos)
            it = em.fresh("it")
            header = f"scf.for {it} = {em.idx(0)} to {em.idx(self.loop)} step {em.idx(1)}"
            init, types = [], []
            if depth:
                for d in range(depth):
                    self.it = d
                    init += self.prefetch_loads(geos)
                types += [geo["vec"] for geo in geos for _ in self.copy_slots(geo)] * depth
            n_prefetch = len(init)
            self.reg_accs = self.register_accumulators(phases) if self.use_mma else {}
            for info in self.reg_accs.values():
                init += [em.vconst_zero("vector<2x2xf32>")] * info["count"]
                types += ["vector<2x2xf32>"] * info["count"]
            carried = [em.fresh("lc") for _ in init]
            res = em.fresh("loop")
            if init:
                header = (f"{res}:{len(init)} = {header} iter_args("
                          + ", ".join(f"{c} = {v}" for c, v in zip(carried, init)) + f") -> ({', '.join(types)})")
            position = n_prefetch
            for info in self.reg_accs.values():
                info["in"] = carried[position:position + info["count"]]
                position += info["count"]
            with em.region(header + " {", "} {mirage.forloop}"):
                self.it = it
                following = []
                if self.ring:
                    # refill the stage iteration it - 1 used (the closing barrier ended its reads) with
                    # iteration it + stages - 1; past the loop's end the copies read nothing (their
                    # empty groups keep the wait's count), then wait for this iteration's group; the
                    # barrier makes every thread's copies visible
                    ahead = em.add(it, self.stages - 1)
                    clamped = em.op(f"arith.minui {em.idx(ahead)}, {em.idx(self.loop - 1)} : index", "i")
                    live = em.cmp_lt(ahead, self.loop)
                    group = self.async_copy_stage(clamped, em.rem(ahead, self.stages), live)
                    self.async_wait(group, self.stages - 1)
                    slot = em.rem(it, self.stages)
                    for i in self.ring:
                        self.buffers[i].name = self.ring_view(i, slot)
                        self.dirty.add(self.buffers[i].name)
                if depth:
                    self.prefetch_stores(geos, carried[:slots])
                    self.it = em.op(f"arith.minui {em.add(it, depth)}, {em.idx(self.loop - 1)} : index", "i")
                    following = carried[slots:n_prefetch] + self.prefetch_loads(geos)
                    self.it = it
                else:
                    self.copy_stage(loop_iters)
                for i in range(len(g.nodes)):
                    if phases[i] == "loop" and (emit := self.stage_of(i)):
                        emit()
                self.barrier()
                for info in self.reg_accs.values():
                    following += info["out"]
                if init:
                    em.emit(f"scf.yield {', '.join(following)} : {', '.join(types)}")
            self.it = 0
            if self.ring:
                self.async_wait(self.commit_group(), 0)  # the empty refills past the end
            position = n_prefetch
            for i, info in self.reg_accs.items():
                self.register_accumulator_flush(i, [f"{res}#{j}" for j in range(position, position + info["count"])])
                position += info["count"]
            # epilogue
            for i in range(len(g.nodes)):
                if phases[i] == "post" and (emit := self.stage_of(i)):
                    emit()
        em.emit("gpu.return")

        args = [f"%arg{k}: {memref_type(t.shape, t.dtype)}" for k, t in enumerate(input_types)]
        args += [f"%out{k}: {memref_type(t.shape, t.dtype)}" for k, t in enumerate(output_types)]
        gx, gy, gz = g.grid_dim
        header = (f"gpu.func @{self.name}({', '.join(args)}) kernel attributes {{"
                  f"known_block_size = array<i32: {self.threads}, 1, 1>, "
                  f"known_grid_size = array<i32: {gx}, {gy}, {gz}>, "
                  f"mirage.shared_bytes = {shared} : i64}} {{")
        text = header + "\n" + em.text() + "\n}"
        return KernelCode(self.name, text, tuple(g.grid_dim), (self.threads, 1, 1), shared,
                          list(input_types), list(output_types))


def shared_memory_bytes(graph: Graph) -> int:
    """Dynamic shared memory the generated kernel of block graph `graph` needs (tiles, buffers and
    accumulators, rows of tensor-core operands padded). Candidates above MAX_SHARED_BYTES cannot be
    lowered; the search can use this to drop them early."""
    return BlockKernelGen(graph, "probe")._allocate(check=False)


def plan_figures(graph: Graph) -> PlanFigures:
    return BlockKernelGen(graph, "probe").figures()


def generate_kernel(graph: Graph, name: str, path: tuple[int, ...] = (), use_mma: bool = True) -> KernelCode:
    """The gpu.func text for a block graph (the body of a graph_def). `use_mma`: f16 matmuls on
    tensor cores (nvgpu.mma.sync, sm_80 and later); otherwise every matmul runs on CUDA cores."""
    outputs = [graph.value_types[v] for v in graph.outputs]
    return BlockKernelGen(graph, name, path, use_mma).generate(list(graph.inputs), outputs)
