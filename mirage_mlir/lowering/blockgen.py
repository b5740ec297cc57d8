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
from dataclasses import dataclass, field, replace

from ..mugraph import Graph, Node, TensorType
from ..opset import OPS
from .emitter import BYTES, Emitter, Index, indices, memref_type
from .plan import (UNROLL, BlockPlan, Buffer, CopyGeometry, LoweringError, PlanFigures, RegisterAccumulator, numel,
                   vector_width)


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


def _bcast(index: list[Index], shape: tuple[int, ...], target: tuple[int, ...]) -> list[Index]:
    """The index into an operand of `shape` broadcast to `target` (equal ranks)."""
    return [0 if s == 1 and t != 1 else i for i, s, t in zip(index, shape, target)]


class BlockKernelGen:
    def __init__(self, graph: Graph, name: str, path: tuple[int, ...] = (), use_mma: bool = True,
                 prefetch: bool = True, pipeline: bool = True):
        self.plan = BlockPlan(graph, path, use_mma, prefetch, pipeline)
        self.g = graph
        self.name = name
        self.em = Emitter()
        # SSA names are the generator's (ring buffers get a view per iteration): its own copies of the plan's buffers
        self.buffers = {i: replace(buf) for i, buf in self.plan.buffers.items()}
        self.max_buffers = {i: replace(buf) for i, buf in self.plan.max_buffers.items()}
        self.input_args = {v: f"%arg{v}" for v in range(self.plan.n_in)}
        self.dirty: set[str] = set()
        self.it: Index = 0  # the for-loop induction variable inside the loop
        # loop-carried mma accumulators of the register accumulators: at the loop's top, at its yield
        self.reg_in: dict[int, list[str]] = {}
        self.reg_out: dict[int, list[str]] = {}

    # -- thread mapping helpers ------------------------------------------------------------------
    def for_each(self, n: int, body, ids: str | None = None, count: int | None = None, attr: str = "") -> None:
        """Runs body(e) for e in range(n), spread over `count` workers whose id is `ids`."""
        ids = ids or self.tid
        count = count or self.plan.threads
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
        if v < self.plan.n_in:
            raise LoweringError("a kernel tensor is read without an input iterator", self.plan.path)
        i = self.plan.node_of[v]
        node = self.g.nodes[i]
        kind = self.plan.kind[i]
        em = self.em
        if kind == "acc" and not compute:
            result = self.acc_final(i, self.load(self.buffers[i], index))
        elif self.plan.buffered[i] and not compute:
            result = self.load(self.buffers[i], index)
        elif kind == "matmul":
            raise LoweringError("internal: an inline matmul was read outside its stage", self.plan.path + (i,))
        elif kind not in ("ew", "acc_id"):
            raise LoweringError(f"internal: '{node.op}' cannot be computed inline", self.plan.path + (i,))
        else:
            shape = node.types[0].shape
            args = [self.value_at(a, _bcast(index, self.plan.vtype(a).shape, shape), memo, overrides)
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
        raise LoweringError(f"no lowering for elementwise op '{op}'", self.plan.path)

    def thread_graph(self, body: Graph, args: list[str]) -> str:
        values = list(args)
        for node in body.nodes:
            if node.op not in OPS or OPS[node.op].category not in ("unary", "binary"):
                raise LoweringError(f"'{node.op}' cannot appear in a thread graph", self.plan.path)
            values.append(self.em.round(self.elementwise(node, [values[v] for v in node.inputs]), node.types[0].dtype))
        return values[body.outputs[0]]

    # -- accumulators ----------------------------------------------------------------------------
    def acc_count(self, node: Node, iterations: int) -> int:
        dim = node.attr("reduce_dim", -1)
        return iterations * (self.plan.vtype(node.inputs[0]).shape[dim] if dim != -1 else 1)

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
            count = self.acc_count(node, self.plan.loop)
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
            m = self.value_at(m_val, _bcast(index, self.plan.vtype(m_val).shape, node.types[0].shape), memo)
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
        tile = self.plan.vtype(node.inputs[0]).shape
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
        if v < self.plan.n_in or v in seen:
            return set()
        seen.add(v)
        i = self.plan.node_of[v]
        if self.plan.is_buffer(i):
            return {self.buffers[i].name}
        out: set[str] = set()
        for a in self.g.nodes[i].inputs:
            out |= self.reads_of(a, seen)
        return out

    def copy_where(self, geo: CopyGeometry, c: Index) -> list[Index]:
        where = self.em.unflatten(c, geo.chunk_shape)
        where[-1] = self.em.mul(where[-1], geo.width)
        return where

    def copy_source(self, geo: CopyGeometry, where: list[Index]) -> list[Index]:
        """The index into the kernel input of the chunk at `where` of the tile of iteration self.it."""
        return [self.em.add(a, b) for a, b in zip(where, self.iterator_offsets(geo))]

    def copy_load(self, geo: CopyGeometry, where: list[Index]) -> str:
        """Loads one chunk of the tile for iteration self.it."""
        em = self.em
        src, arg = self.copy_source(geo, where), self.input_args[geo.tensor]
        if geo.width == 1:
            return em.op(f"memref.load {arg}[{indices(em, src)}] : {geo.gmem}", "g")
        return em.op(f"vector.load {arg}[{indices(em, src)}] {{alignment = {geo.align}}} "
                     f": {geo.gmem}, {geo.vec}", "g")

    def copy_store(self, geo: CopyGeometry, where: list[Index], val: str) -> None:
        em, buf = self.em, self.buffers[geo.i]
        if geo.width == 1:
            em.emit(f"memref.store {val}, {buf.name}[{indices(em, where)}] : {buf.type}")
        else:
            em.emit(f"vector.store {val}, {buf.name}[{indices(em, where)}] {{alignment = {geo.align}}} "
                    f": {buf.type}, {geo.vec}")

    def copy_slots(self, geo: CopyGeometry) -> list[tuple[Index, bool]]:
        """This thread's chunks when each thread copies a fixed number: (chunk id, may be past the end)."""
        n, count = geo.n_chunks, self.plan.threads
        return [(self.em.add(self.tid, q * count), (q + 1) * count > n) for q in range(self.plan.chunks_per_thread(geo))]

    def prefetch_loads(self, geos: list[CopyGeometry]) -> list[str]:
        """Every chunk this thread copies, loaded for iteration self.it (past-the-end chunks clamped)."""
        em = self.em
        values = []
        for geo in geos:
            for c, partial in self.copy_slots(geo):
                if partial:
                    c = em.op(f"arith.minui {em.idx(c)}, {em.idx(geo.n_chunks - 1)} : index", "i")
                values.append(self.copy_load(geo, self.copy_where(geo, c)))
        return values

    def prefetch_stores(self, geos: list[CopyGeometry], values: list[str]) -> None:
        em = self.em
        values = list(values)
        for geo in geos:
            for c, partial in self.copy_slots(geo):
                val = values.pop(0)
                if partial:
                    with em.region(f"scf.if {em.cmp_lt(c, geo.n_chunks)} {{"):
                        self.copy_store(geo, self.copy_where(geo, c), val)
                else:
                    self.copy_store(geo, self.copy_where(geo, c), val)
            self.dirty.add(self.buffers[geo.i].name)

    def copy_stage(self, iterators: list[int]) -> None:
        """Global -> shared copies of input iterator tiles, all loads issued before the stores."""
        for i in iterators:
            geo = self.plan.copy_geometry(i)
            n, count = geo.n_chunks, self.plan.threads
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
            self.dirty.add(self.buffers[i].name)

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
        for i in self.plan.ring:
            geo = self.plan.copy_geometry(i)
            view = self.ring_view(i, slot)
            bypass = " {bypassL1}" if geo.align == 16 else ""
            size = ""
            if live is not None:
                size = ", " + em.op(f"arith.select {live}, {em.idx(geo.width)}, {em.idx(0)} : index", "i")

            def body(c, geo=geo, view=view, bypass=bypass, size=size):
                where = self.copy_where(geo, c)
                src = self.copy_source(geo, where)
                em.op(f"nvgpu.device_async_copy {self.input_args[geo.tensor]}[{indices(em, src)}], "
                      f"{view}[{indices(em, where)}], {geo.width}{size}{bypass} : {geo.gmem} to {self.buffers[i].type}",
                      "cp")

            self.for_each(geo.n_chunks, body, attr=f"mirage.stage = \"cp.async {i}\"")
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

    def iterator_offsets(self, geo: CopyGeometry) -> list[Index]:
        """Where iterator geo.i's tile of iteration self.it starts in its kernel input."""
        em, node, tile = self.em, self.g.nodes[geo.i], geo.shape
        fmap = node.attr("fmap")
        offsets: list[Index] = [0] * len(tile)
        for axis, dim in enumerate(node.attr("imap")):
            if dim != -1 and self.g.grid_dim[axis] > 1:
                share = tile[dim] * (self.plan.loop if fmap == dim else 1)
                offsets[dim] = em.add(offsets[dim], em.mul(self.bid[axis], share))
        if fmap != -1 and self.plan.loop > 1:
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
        own = target[0] == "buf" and self.plan.value(target[1]) == root
        matmuls = self.plan.inline_matmuls(root)
        if matmuls:
            self.matmul_stage(target, root, matmuls, own)
        elif target[0] == "saver":
            self.saver_stage(target[1], root)
        else:
            shape = self.plan.vtype(root).shape

            def body(e):
                memo: dict = {}
                index = self.em.unflatten(e, shape)
                self.write(target, index, self.value_at(root, index, memo, compute=own), memo)

            self.for_each(numel(shape), body)
        if target[0] == "buf":
            self.dirty.add(self.buffers[target[1]].name)

    def reads_of_stage(self, root: int) -> set[str]:
        i = self.plan.node_of[root]
        if self.plan.kind[i] in ("ew", "acc_id", "matmul") and self.plan.buffered[i]:
            out: set[str] = set()
            for a in self.g.nodes[i].inputs:
                out |= self.reads_of(a)
            return out
        return self.reads_of(root)

    def saver_stage(self, i: int, root: int) -> None:
        em = self.em
        shape = self.plan.vtype(root).shape
        out_t = self.g.nodes[i].types[0]
        width = vector_width(out_t.dtype, shape[-1], out_t.shape[-1])
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

        self.for_each(numel(chunk_shape), body)

    def matmul_stage(self, target: tuple, root: int, matmuls: list[int], own: bool) -> None:
        if any(self.plan.mma_eligible(i) for i in matmuls):
            return self.mma_stage(target, root, matmuls, own)
        em = self.em
        shape = self.plan.vtype(root).shape
        tm, tn = self.plan.pick_microtile(shape)
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
                    overrides = {self.plan.value(mi): acc[a][b] for mi, acc in zip(matmuls, overrides_per)}
                    memo: dict = {}
                    self.write(target, index, self.value_at(root, index, memo, overrides, compute=own), memo)

        self.for_each(numel(tiles), body)

    def mma_stage(self, target: tuple, root: int, matmuls: list[int], own: bool) -> None:
        """Matmuls on tensor cores: each warp owns wm x wn tiles of 16 x 8 outputs; fragments are
        loaded from shared memory with ldmatrix in the m16n8k16 layouts (lane = 4 * group + t_in_group), the K loop
        carries the f32 accumulators in registers, and each thread then applies the stage's epilogue
        to the four outputs per tile it holds. Matmuls of the stage that cannot use tensor cores
        (e.g. K = 1) are computed per output element."""
        em = self.em
        shape = self.plan.vtype(root).shape
        m, n = shape[-2], shape[-1]
        wm, wn = self.plan.pick_warp_tile(shape)
        mt = -(-m // 16)
        tiles = shape[:-2] + (mt // wm, (n // 8) // wn)
        group = em.div(self.lane, 4)
        tig = em.rem(self.lane, 4)
        mma = [i for i in matmuls if self.plan.mma_eligible(i)]
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
                            values = {self.plan.value(i): results[i][a][b][half][c] for i in mma}

                            def epilogue(index=index, values=values):
                                memo: dict = {}
                                for i in rest:
                                    values[self.plan.value(i)] = self.dot(i, index)
                                self.write(target, index, self.value_at(root, index, memo, values, compute=own), memo)

                            if guard is None:
                                epilogue()
                            else:
                                with em.region(f"scf.if {guard} {{"):
                                    epilogue()

        self.for_each(numel(tiles), body, ids=self.warp, count=self.plan.warps)

    def mma_k_loop(self, i: int, batch, m0, n0, wm: int, wn: int, group, tig, init: list[str] | None = None,
                   raw: bool = False, k_range: tuple[Index, int] | None = None):
        """[a][b][half][c] f32 results (rounded to the matmul's type) of matmul node i's tiles;
        `k_range` (first, length): a slice of K only (raw partial sums)."""
        em = self.em
        node = self.g.nodes[i]
        a_v, b_v = node.inputs
        abuf, bbuf = self.buffers[self.plan.node_of[a_v]], self.buffers[self.plan.node_of[b_v]]
        m, k_dim = self.plan.vtype(a_v).shape[-2:]
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

    def reg_tile_origin(self, info: RegisterAccumulator, k: int):
        em = self.em
        n_tiles = numel(info.tiles)
        tile = em.add(self.warp, k * self.plan.warps) if info.kslices == 1 else em.rem(self.warp, n_tiles)
        where = em.unflatten(tile, info.tiles)
        return where[:-2], em.mul(where[-2], 16 * info.wm), em.mul(where[-1], 8 * info.wn)

    def reg_k_range(self, info: RegisterAccumulator) -> tuple[Index, int]:
        """(first K index, length) of this warp's slice of the matmul's K."""
        k_dim = self.plan.vtype(self.g.nodes[info.mm].inputs[0]).shape[-1]
        if info.kslices == 1:
            return 0, k_dim
        share = k_dim // info.kslices
        return self.em.mul(self.em.div(self.warp, numel(info.tiles)), share), share

    def register_accumulator_stage(self, i: int) -> None:
        """One iteration's matmul, accumulated into the loop-carried mma accumulators."""
        em = self.em
        info = self.plan.reg_accs[i]
        mm = info.mm
        reads: set[str] = set()
        for v in self.g.nodes[mm].inputs:
            reads |= self.reads_of(v)
        self.sync_for(reads)
        group, tig = em.div(self.lane, 4), em.rem(self.lane, 4)
        size = info.wm * info.wn
        outs = []
        for k in range(info.per_warp):
            batch, m0, n0 = self.reg_tile_origin(info, k)
            outs += self.mma_k_loop(mm, batch, m0, n0, info.wm, info.wn, group, tig,
                                    init=self.reg_in[i][k * size:(k + 1) * size], raw=True,
                                    k_range=self.reg_k_range(info))
        self.reg_out[i] = outs

    def register_accumulator_flush(self, i: int, values: list[str]) -> None:
        """Writes the totals this thread holds into the accumulator's buffer (f32); warps that
        shared a tile by K slices add theirs in turn, a barrier apart."""
        info = self.plan.reg_accs[i]
        if info.kslices == 1:
            return self.register_accumulator_store(i, values, add=False)
        k_slice = self.em.div(self.warp, numel(info.tiles))
        for turn in range(info.kslices):
            if turn:
                self.barrier()
            with self.em.region(f"scf.if {self.em.cmp_eq(k_slice, turn)} {{"):
                self.register_accumulator_store(i, values, add=turn > 0)

    def register_accumulator_store(self, i: int, values: list[str], add: bool) -> None:
        em = self.em
        info = self.plan.reg_accs[i]
        buf = self.buffers[i]
        m = self.plan.vtype(self.plan.value(info.mm)).shape[-2]
        group, tig = em.div(self.lane, 4), em.rem(self.lane, 4)
        wm, wn = info.wm, info.wn
        for k in range(info.per_warp):
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
        k_dim = self.plan.vtype(a_v).shape[-1]
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
        a_i, b_i = self.plan.node_of[a_v], self.plan.node_of[b_v]
        k_dim = self.plan.vtype(a_v).shape[-1]
        unroll = next(u for u in (4, 2, 1) if k_dim % u == 0)
        plain_a = self.plan.buffered[a_i] and self.plan.kind[a_i] != "acc"
        plain_b = self.plan.buffered[b_i] and self.plan.kind[b_i] != "acc"

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
        x_shape = self.plan.vtype(x_v).shape
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
            def warp_body(o):
                oidx = em.unflatten(o, out_shape)
                memo: dict = {}
                if length % 32 == 0 and length // 32 <= 8:
                    total = None
                    for q in range(length // 32):
                        x = element(oidx, em.add(self.lane, 32 * q), memo)
                        total = x if total is None else combine(total, x)
                else:
                    j, res, acc = em.fresh("j"), em.fresh("r"), em.fresh("s")
                    with em.region(f"{res} = scf.for {j} = {self.lane} to {em.idx(length)} step {em.idx(32)} "
                                   f"iter_args({acc} = {identity}) -> (f32) {{"):
                        em.emit(f"scf.yield {combine(acc, element(oidx, j, {}))} : f32")
                    total = res
                for offset in (16, 8, 4, 2, 1):
                    other = em.fresh("sh")
                    em.emit(f"{other}, {em.fresh('ok')} = gpu.shuffle xor {total}, {em.i32(offset)}, {em.i32(32)} : f32")
                    total = combine(total, other)
                with em.region(f"scf.if {self.lane_zero} {{"):
                    finish(oidx, total, {})

            self.for_each(numel(out_shape), warp_body, ids=self.warp, count=self.plan.warps)
        else:
            def thread_body(o):
                oidx = em.unflatten(o, out_shape)
                memo: dict = {}
                total = None
                for j in range(length):
                    x = element(oidx, j, memo)
                    total = x if total is None else combine(total, x)
                finish(oidx, total, memo)

            self.for_each(numel(out_shape), thread_body)
        if target[0] == "buf":
            self.dirty.add(self.buffers[target[1]].name)

    def init_accumulators(self) -> None:
        em = self.em
        for i, buf in list(self.buffers.items()) + list(self.max_buffers.items()):
            if self.plan.kind[i] != "acc":
                continue
            node = self.g.nodes[i]
            is_max_buf = buf is self.max_buffers.get(i)
            value = em.f32(-math.inf if (node.op == "accum_max" or is_max_buf) else 0.0)

            def body(e, buf=buf, value=value):
                index = em.unflatten(e, buf.shape)
                em.emit(f"memref.store {value}, {buf.name}[{indices(em, index)}] : {buf.type}")

            self.for_each(numel(buf.shape), body)
            self.dirty.add(buf.name)

    # -- the kernel ------------------------------------------------------------------------------
    def stage_of(self, i: int):
        """(phase, emit) for node i, or None when it has no stage of its own (inline values)."""
        node, kind = self.g.nodes[i], self.plan.kind[i]
        v = self.plan.value(i)
        if kind == "iter":
            return None  # copied by the phase's copy stage
        if kind == "saver":
            return lambda: self.compute_stage(("saver", i), node.inputs[0])
        if kind == "acc":
            if i in self.plan.reg_accs:
                return lambda: self.register_accumulator_stage(i)
            if node.attr("reduce_dim", -1) != -1:
                return lambda: self.reduce_stage(("acc", i), node, node.inputs[0])
            return lambda: self.compute_stage(("acc", i), node.inputs[0])
        if kind in ("reduce", "acc_reduce1"):
            return lambda: self.reduce_stage(("buf", i), node, node.inputs[0])
        if self.plan.buffered[i]:
            return lambda: self.compute_stage(("buf", i), v)
        return None

    def generate(self, input_types: list[TensorType], output_types: list[TensorType]) -> KernelCode:
        g, em, plan = self.g, self.em, self.plan
        plan.check_shared_memory()
        self.output_args = {}
        saver_of_output = {v: self.plan.node_of[v] for v in g.outputs}
        for k, v in enumerate(g.outputs):
            self.output_args[saver_of_output[v]] = f"%out{k}"
        # ids, computed up front so that they dominate every use
        self.tid = em.op("gpu.thread_id x", "tid")
        self.bid = [em.op(f"gpu.block_id {axis}", "bid") if g.grid_dim[n] > 1 else 0
                    for n, axis in enumerate("xyz")]
        self.lane = em.rem(self.tid, 32)
        self.warp = em.div(self.tid, 32)
        self.lane_zero = em.cmp_eq(self.lane, 0)
        if self.buffers:
            self.smem = smem = em.op("gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>",
                                     "smem")
            for i, buf in list(self.buffers.items()) + list(self.max_buffers.items()):
                if buf.stages == 1:
                    em.emit(f"{buf.name} = memref.view {smem}[{em.idx(buf.offset)}][] : "
                            f"memref<?xi8, #gpu.address_space<workgroup>> to {buf.type}")
        if self.plan.ring:
            self.no_token = em.op("ub.poison : !nvgpu.device.async.token", "tok")
        # the ring's first stages are in flight while the prologue runs
        for d in range(self.plan.stages - 1):
            self.async_copy_stage(d, d)
        phases = plan.phase
        # prologue
        self.init_accumulators()
        self.copy_stage([i for i in range(len(g.nodes)) if plan.kind[i] == "iter" and phases[i] == "pre"])
        for i in range(len(g.nodes)):
            if phases[i] == "pre" and (emit := self.stage_of(i)):
                emit()
        # the for-loop
        if self.plan.loop > 1:
            if self.dirty:
                self.barrier()
            geos = plan.loop_copies()
            slots = sum(len(self.copy_slots(geo)) for geo in geos)
            # Software pipelining: the tiles of the next `depth` iterations are loaded into registers
            # (carried by the loop) while this one computes; each iteration stores the oldest set to
            # shared memory at its top and issues the loads of iteration it + depth.
            depth = self.plan.prefetch_depth(geos)
            it = em.fresh("it")
            header = f"scf.for {it} = {em.idx(0)} to {em.idx(self.plan.loop)} step {em.idx(1)}"
            init, types = [], []
            if depth:
                for d in range(depth):
                    self.it = d
                    init += self.prefetch_loads(geos)
                types += [geo.vec for geo in geos for _ in self.copy_slots(geo)] * depth
            n_prefetch = len(init)
            for info in plan.reg_accs.values():
                init += [em.vconst_zero("vector<2x2xf32>")] * info.count
                types += ["vector<2x2xf32>"] * info.count
            carried = [em.fresh("lc") for _ in init]
            res = em.fresh("loop")
            if init:
                header = (f"{res}:{len(init)} = {header} iter_args("
                          + ", ".join(f"{c} = {v}" for c, v in zip(carried, init)) + f") -> ({', '.join(types)})")
            position = n_prefetch
            for i, info in plan.reg_accs.items():
                self.reg_in[i] = carried[position:position + info.count]
                position += info.count
            with em.region(header + " {", "} {mirage.forloop}"):
                self.it = it
                following = []
                if self.plan.ring:
                    # refill the stage iteration it - 1 used (the closing barrier ended its reads) with
                    # iteration it + stages - 1; past the loop's end the copies read nothing (their
                    # empty groups keep the wait's count), then wait for this iteration's group; the
                    # barrier makes every thread's copies visible
                    ahead = em.add(it, self.plan.stages - 1)
                    clamped = em.op(f"arith.minui {em.idx(ahead)}, {em.idx(self.plan.loop - 1)} : index", "i")
                    live = em.cmp_lt(ahead, self.plan.loop)
                    group = self.async_copy_stage(clamped, em.rem(ahead, self.plan.stages), live)
                    self.async_wait(group, self.plan.stages - 1)
                    slot = em.rem(it, self.plan.stages)
                    for i in self.plan.ring:
                        self.buffers[i].name = self.ring_view(i, slot)
                        self.dirty.add(self.buffers[i].name)
                if depth:
                    self.prefetch_stores(geos, carried[:slots])
                    self.it = em.op(f"arith.minui {em.add(it, depth)}, {em.idx(self.plan.loop - 1)} : index", "i")
                    following = carried[slots:n_prefetch] + self.prefetch_loads(geos)
                    self.it = it
                else:
                    self.copy_stage([geo.i for geo in geos])
                for i in range(len(g.nodes)):
                    if phases[i] == "loop" and (emit := self.stage_of(i)):
                        emit()
                self.barrier()
                for i in plan.reg_accs:
                    following += self.reg_out[i]
                if init:
                    em.emit(f"scf.yield {', '.join(following)} : {', '.join(types)}")
            self.it = 0
            if self.plan.ring:
                self.async_wait(self.commit_group(), 0)  # the empty refills past the end
            position = n_prefetch
            for i, info in plan.reg_accs.items():
                self.register_accumulator_flush(i, [f"{res}#{j}" for j in range(position, position + info.count)])
                position += info.count
            # epilogue
            for i in range(len(g.nodes)):
                if phases[i] == "post" and (emit := self.stage_of(i)):
                    emit()
        em.emit("gpu.return")

        args = [f"%arg{k}: {memref_type(t.shape, t.dtype)}" for k, t in enumerate(input_types)]
        args += [f"%out{k}: {memref_type(t.shape, t.dtype)}" for k, t in enumerate(output_types)]
        gx, gy, gz = g.grid_dim
        header = (f"gpu.func @{self.name}({', '.join(args)}) kernel attributes {{"
                  f"known_block_size = array<i32: {self.plan.threads}, 1, 1>, "
                  f"known_grid_size = array<i32: {gx}, {gy}, {gz}>, "
                  f"mirage.shared_bytes = {plan.shared_bytes} : i64}} {{")
        text = header + "\n" + em.text() + "\n}"
        return KernelCode(self.name, text, tuple(g.grid_dim), (self.plan.threads, 1, 1), plan.shared_bytes,
                          list(input_types), list(output_types))


def shared_memory_bytes(graph: Graph) -> int:
    """Dynamic shared memory the generated kernel of block graph `graph` needs (tiles, buffers and
    accumulators, rows of tensor-core operands padded). Candidates above MAX_SHARED_BYTES cannot be
    lowered; the search can use this to drop them early."""
    return BlockPlan(graph).shared_bytes


def plan_figures(graph: Graph) -> PlanFigures:
    return BlockPlan(graph).figures()


def generate_kernel(graph: Graph, name: str, path: tuple[int, ...] = (), use_mma: bool = True) -> KernelCode:
    """The gpu.func text for a block graph (the body of a graph_def). `use_mma`: f16 matmuls on
    tensor cores (nvgpu.mma.sync, sm_80 and later); otherwise every matmul runs on CUDA cores."""
    outputs = [graph.value_types[v] for v in graph.outputs]
    return BlockKernelGen(graph, name, path, use_mma).generate(list(graph.inputs), outputs)
