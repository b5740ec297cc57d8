"""Input iterator tiles, global -> shared memory.

- synchronous copies: vector loads of up to 16 bytes where alignment allows, all of a thread's loads
  issued before its stores;
- register prefetch: the loads of coming iterations carried by the for-loop in registers, stored to
  shared memory at the top of the iteration that uses them;
- the cp.async ring: `stages` copies of each tile side by side, filled by nvgpu.device_async_copy
  (L1 bypassed for 16-byte chunks) `stages - 1` iterations ahead, one commit group per iteration.
"""

from __future__ import annotations

import itertools
import math

from .emitter import BYTES, ROWS_ARG, Index, indices
from .plan import COPY_UNROLL, CopyGeometry, numel

L2_LINE = 128  # bytes


class CopyEmitter:
    """Copies of iterator tiles into their buffers (for a CopyGeometry of the plan); the chunks of
    iteration `self.it`."""

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

    def copy_where(self, geo: CopyGeometry, c: Index) -> list[Index]:
        where = self.em.unflatten(c, geo.chunk_shape)
        where[-1] = self.em.mul(where[-1], geo.width)
        return where

    def copy_source(self, geo: CopyGeometry, where: list[Index]) -> tuple[list[Index], str | None]:
        """The index into the kernel input of the chunk at `where` of the tile of iteration self.it,
        and for a masked input (blockgen.RowMask) whether its row is below the call's row count (the
        index then clamped to a row there is; the chunk is not read: a read of the last row by every
        row past it made one L2 line the target of every SM, run 38)."""
        em = self.em
        src = [em.add(a, b) for a, b in zip(where, self.iterator_offsets(geo))]
        dim = self.rows.inputs.get(geo.tensor)
        if dim is None:
            return src, None
        valid = em.cmp_lt(src[dim], ROWS_ARG)
        src[dim] = em.op(f"arith.minui {em.idx(src[dim])}, {self.last_row} : index", "row")
        return src, valid

    def copy_load(self, geo: CopyGeometry, where: list[Index], strong: bool = False) -> str:
        """Loads one chunk of the tile for iteration self.it (zeros past a masked row count). A
        `strong` load is volatile: ptxas keeps strong loads in their order, so a thread's loads issued
        together stay together (it moves plain ones past the first use of an earlier load's data:
        ntrans's row kernel paid two memory round trips, benchmarks/NOTES.md session 39)."""
        em = self.em
        if geo.tensor in self.cluster_sources:
            return self.cluster_copy_load(geo, where)
        (src, valid), arg = self.copy_source(geo, where), self.input_args[geo.tensor]
        if strong:
            pointer = self.global_pointer(self.input_base(geo), geo, src, "<1>")
            load = f"llvm.load volatile {pointer} {{alignment = {geo.align} : i64}} : !llvm.ptr<1> -> {geo.vec}"
        elif geo.width == 1:
            load = f"memref.load {arg}[{indices(em, src)}] : {geo.gmem}"
        else:
            load = f"vector.load {arg}[{indices(em, src)}] {{alignment = {geo.align}}} : {geo.gmem}, {geo.vec}"
        if valid is None:
            return em.op(load, "g")
        return em.if_value(valid, geo.vec, lambda: em.op(load, "g"), em.vconst_zero(geo.vec))

    def input_base(self, geo: CopyGeometry) -> str:
        """The address of geo's kernel input (an index)."""
        return self.em.op(f"memref.extract_aligned_pointer_as_index {self.input_args[geo.tensor]} : "
                          f"{geo.gmem} -> index", "base")

    def global_pointer(self, base: str, geo: CopyGeometry, src: list[Index], space: str = "") -> str:
        """An !llvm.ptr (of address space `space`) to element `src` of geo's kernel input at `base`."""
        em = self.em
        offset = em.mul(em.linearize(src, geo.whole.shape), BYTES[geo.dtype])
        address = em.op(f"arith.index_cast {em.idx(em.add(base, offset))} : index to i64", "addr")
        return em.op(f"llvm.inttoptr {address} : i64 to !llvm.ptr{space}", "ptr")

    def cluster_copy_load(self, geo: CopyGeometry, where: list[Index]) -> str:
        """One chunk of a split partial tile that block self.it of the cluster keeps in its shared
        memory (fuse_split_k's cluster form): the tile of iteration it is that block's, or where the
        blocks share its `dim`, this block's (self.cluster_rank) share of it."""
        em = self.em
        offset, tile, dim = self.cluster_sources[geo.tensor]
        if dim is not None:
            where = list(where)
            where[dim] = em.add(where[dim], em.mul(self.cluster_rank, geo.shape[dim]))
        byte = em.add(offset, em.mul(em.linearize(where, tile), BYTES[geo.dtype]))
        return em.cluster_load(byte, self.it, geo.vec, geo.align)

    def copy_store(self, geo: CopyGeometry, where: list[Index], val: str) -> None:
        em, buf = self.em, self.buffers[geo.i]
        if geo.width == 1:
            em.emit(f"memref.store {val}, {buf.at(em, where)} : {buf.type}")
        else:
            em.emit(f"vector.store {val}, {buf.at(em, where)} {{alignment = {geo.align}}} "
                    f": {buf.type}, {geo.vec}")

    def copy_slots(self, geo: CopyGeometry) -> list[tuple[Index, bool]]:
        """This thread's chunks when each thread copies a fixed number: (chunk id, may be past the end)."""
        n, count = geo.n_chunks, self.plan.threads
        return [(self.em.add(self.tid, q * count), (q + 1) * count > n)
                for q in range(self.plan.chunks_per_thread(geo))]

    def copy_stage(self, iterators: list[int], wait: bool = True, while_in_flight=None) -> None:
        """Global -> shared copies of input iterator tiles, all loads issued before the stores (for
        a group of small tiles, all the group's loads: one memory latency for the group). In a kernel
        with a loop of one, the tiles cp.async can copy go that way instead, and the copy_stage that
        waits waits for all of the kernel's (not `wait`: before the grid wait, left in flight):
        nothing passes through registers, so all of a thread's copies issue at once, where register
        copies (loads, then stores) are issued as the registers allow (stable attention bs1: 16 of
        its 20 chunks' loads, 4 stores, then the 4 other loads, a second memory round trip; NOTES.md
        session 39). `while_in_flight()`, where the stage waits, is emitted once every earlier copy
        has landed (a barrier after it) and this stage's are still in flight."""
        cp_async = set(self.plan.direct_copies)
        direct = [i for i in iterators if i in cp_async]
        cuts = set() if wait else self.early_copy_waves(direct)
        issued = itertools.count(1)

        def after_chunk():  # a wave's last chunk: wait for it and those before it
            if next(issued) in cuts:
                self.async_wait(self.commit_group(), 0)

        for i in direct:
            self.async_copy_tile(self.plan.copy_geometry(i), after_chunk)
        if direct and not wait:
            self.commit_group()
        if wait and cp_async:
            group = self.commit_group()
            if while_in_flight:
                self.async_wait(group, 1)
                self.barrier()
                self.dirty.update(self.buffers[i].name for i in direct)  # still in flight
                while_in_flight()
            self.async_wait(group, 0)
        iterators = [i for i in iterators if i not in direct]
        geos = [self.plan.copy_geometry(i) for i in iterators]
        for group in self.plan.copy_groups(geos):
            if self.plan.unrolled_copy(group[0]):
                self.copy_chunks([(geo, c, partial) for geo in group for c, partial in self.copy_slots(geo)])
            else:
                self.copy_loop(group[0])
            for geo in group:
                self.dirty.add(self.buffers[geo.i].name)

    def async_copy_tile(self, geo: CopyGeometry, after_chunk=lambda: None) -> None:
        """cp.async copies of iterator geo.i's whole tile into its buffer (uncommitted); after_chunk()
        is emitted after each of a thread's chunks in straight-line code (once in a loop's body)."""
        def body(where):
            self.async_copy_chunk(geo, where)
            after_chunk()

        self.for_each_chunk(geo, body, attr=f"mirage.stage = \"cp.async {geo.i}\"")
        self.dirty.add(self.buffers[geo.i].name)

    def early_copy_waves(self, iterators: list[int]) -> set[int]:
        """After which of a thread's chunks (counted from 1) a loop of one's copies of these tiles before
        the grid wait wait for those before them (GridDependency.waves); none where a tile's copies
        take a loop (a wave's end would fall in its body) or in a kernel with a for-loop (its ring's
        early stages are its first iterations' tiles, not all of the weights)."""
        waves = self.dependency.waves if self.dependency else (1,)
        if len(waves) == 1 or self.plan.loop != 1:
            return set()
        counts = [self.unrolled_chunks(self.plan.copy_geometry(i)) for i in iterators]
        if None in counts:
            return set()
        total = sum(counts)
        return {total * sum(waves[:w]) // sum(waves) for w in range(1, len(waves))} - {0, total}

    def async_copy_chunk(self, geo: CopyGeometry, where: list[Index], view: str | None = None) -> None:
        """One cp.async of the chunk at `where` of geo's tile (of iteration self.it) into its buffer
        (`view`: a ring stage of it); a chunk past a masked row count reads nothing (zeros)."""
        em = self.em
        src, valid = self.copy_source(geo, where)
        size = ""
        if valid is not None:
            size = ", " + em.op(f"arith.select {valid}, {em.idx(geo.width)}, {em.idx(0)} : index", "i")
        bypass = " {bypassL1}" if geo.align == 16 else ""
        em.op(f"nvgpu.device_async_copy {self.input_args[geo.tensor]}[{indices(em, src)}], "
              f"{self.buffers[geo.i].at(em, where, view)}, {geo.width}{size}{bypass} : {geo.gmem} to "
              f"{self.buffers[geo.i].type}", "cp")

    def copy_loop(self, geo: CopyGeometry) -> None:
        """A tile too large to unroll: a loop over batches of chunks (loads, then stores), or over
        single chunks when the tile does not split into batches."""
        n, count = geo.n_chunks, self.plan.threads
        batch = self.plan.copy_batch(geo)
        if batch > 1:
            e = self.em.fresh("e")
            with self.em.region(f"scf.for {e} = {self.tid} to {self.em.idx(n)} step {self.em.idx(count * batch)} {{",
                                f"}} {{mirage.stage = \"copy {geo.i}\"}}"):
                self.copy_chunks([(geo, self.em.add(e, q * count), False) for q in range(batch)])
        else:
            def body(c):
                where = self.copy_where(geo, c)
                self.copy_store(geo, where, self.copy_load(geo, where))

            self.for_each(n, body, attr=f"mirage.stage = \"copy {geo.i}\"")

    def copy_chunks(self, chunks: list[tuple[CopyGeometry, Index, bool]]) -> None:
        """Copies these (tile, chunk, may be past the end) chunks, every load issued before the first
        store (a chunk that may be past the end loaded and stored under a guard)."""
        em = self.em
        pending = []
        for geo, c, partial in chunks:
            where = self.copy_where(geo, c)
            if partial:
                inside = em.cmp_lt(c, geo.n_chunks)
                val = em.if_value(inside, geo.vec, lambda geo=geo, where=where: self.copy_load(geo, where),
                                  em.vconst_zero(geo.vec))
            else:
                inside, val = None, self.copy_load(geo, where)
            pending.append((geo, where, val, inside))
        for geo, where, val, inside in pending:
            with em.guarded([inside] if inside else []):
                self.copy_store(geo, where, val)

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

    def ring_view(self, i: int, slot: Index) -> str:
        """A view of stage `slot` of ring buffer i (its offset is the same in every thread)."""
        em, buf = self.em, self.buffers[i]
        offset = em.add(buf.offset, em.mul(slot, buf.stage_bytes))
        return em.shared_view(offset, buf.type, self.smem, "ring")

    def async_copy_stage(self, iteration: Index, slot: Index, live: str | None = None,
                         iterators: list[int] | None = None, commit: bool = True) -> str | None:
        """Issues the cp.async copies of the ring iterators' tiles (`iterators`, default all) of
        `iteration` into stage `slot` and commits them as one group (each thread commits its own
        copies); returns its token (None when not `commit`: they join the next group). `live` (an
        i1, the same in every thread): when false no copy is issued and the group is empty (copies
        of src-size 0 were issued before: they cost the ring ~0.4 us in 16, run 93)."""
        em = self.em
        saved = self.it
        self.it = iteration
        with em.guarded([live] if live is not None else []):
            for i in self.plan.ring if iterators is None else iterators:
                geo = self.plan.copy_geometry(i)
                view = self.ring_view(i, slot)
                self.for_each_chunk(geo, lambda where, geo=geo, view=view: self.async_copy_chunk(geo, where, view),
                                    attr=f"mirage.stage = \"cp.async {i}\"")
        self.it = saved
        return self.commit_group() if commit else None

    def for_each_chunk(self, geo: CopyGeometry, body, attr: str) -> None:
        """Runs body(where) for every chunk of the tile (`where`: its first element's index in the
        tile), spread over the threads. A tile of up to COPY_UNROLL chunks a thread whose rows of C
        chunks the threads cover in whole passes is unrolled (thread t: column chunk t % C of rows
        t // C + k threads // C). A tile that takes a loop and whose rows hold a number of
        chunks C that is no power of two (344 columns: 43) is walked by rows: thread t copies column
        chunk t % C of rows t // C, t // C + threads // C, ... (threads // C * C threads busy), so a
        chunk's place costs an addition, not a division by C (~30 instructions a chunk before; ncu
        run 78 found 42% of SwiGLU's gate kernel's samples there, though under its memory latency:
        the kernel gained ~1%, NOTES.md run 79)."""
        rows, cols = numel(geo.chunk_shape[:-1]), geo.chunk_shape[-1]
        em, walk, per_pass = self.em, *self.chunk_walk(geo)
        if walk == "passes":
            # the chunks of the loop over t + k threads, each at an added constant: no division, no
            # branch (LayerNorm's W tile, 8 chunks a thread: ~15 instructions a chunk in the loop)
            first, col = em.div(self.tid, cols), em.mul(em.rem(self.tid, cols), geo.width)
            for k in range(rows // per_pass):
                body([0] * (len(geo.shape) - 2) + [em.add(first, k * per_pass), col])
            return
        if walk == "chunks":
            return self.for_each(geo.n_chunks, lambda c: body(self.copy_where(geo, c)), attr=attr)
        first, col, r = em.div(self.tid, cols), em.mul(em.rem(self.tid, cols), geo.width), em.fresh("r")
        header = f"scf.for {r} = {em.idx(first)} to {em.idx(rows)} step {em.idx(per_pass)} {{"
        with em.region(f"scf.if {em.cmp_lt(self.tid, per_pass * cols)} {{"):
            with em.region(header, f"}} {{{attr}}}"):
                body([0] * (len(geo.shape) - 2) + [r, col])

    def chunk_walk(self, geo: CopyGeometry) -> tuple[str, int]:
        """How for_each_chunk walks geo's chunks: "passes" (unrolled passes of rows), "rows" (a loop
        over rows) or "chunks" (for_each over the flat chunks); and the rows a pass covers."""
        rows, cols, count = numel(geo.chunk_shape[:-1]), geo.chunk_shape[-1], self.plan.threads
        per_pass = count // cols if cols <= count else 0
        whole_rows = numel(geo.chunk_shape[:-2]) == 1
        if (whole_rows and per_pass and count % cols == 0 and rows % per_pass == 0
                and self.loops(geo.n_chunks, count) and rows // per_pass <= COPY_UNROLL):
            return "passes", per_pass
        if cols & (cols - 1) and cols <= count and whole_rows and self.loops(geo.n_chunks, count):
            return "rows", per_pass
        return "chunks", per_pass

    def unrolled_chunks(self, geo: CopyGeometry) -> int | None:
        """How many of geo's chunks a thread copies in straight-line code (for_each_chunk); None where
        they take a loop."""
        walk, per_pass = self.chunk_walk(geo)
        if walk == "passes":
            return numel(geo.chunk_shape[:-1]) // per_pass
        if walk == "rows" or self.loops(geo.n_chunks, self.plan.threads):
            return None
        return max(1, geo.n_chunks // self.plan.threads)

    def l2_prefetch(self, iterators: list[int]) -> None:
        """Prefetches into L2 the lines of the iterators' tiles (those of self.it: a wait comes before
        the loop): inputs a kernel reads only after its grid-dependency wait (the kernel before may
        write them), issued before the wait so that they land while that kernel finishes and the
        loads after the wait hit L2 instead of DRAM. Safe: L2 is where global memory is coherent (what the kernel before
        writes lands there) and prefetch.global.L2 fills no L1. An ntrans-like kernel: 1.86 -> 1.41
        us a call (benchmarks/prefetch_probe.cu, H200 run 174)."""
        em = self.em
        bases: dict[int, str] = {}
        for i in iterators:
            tile, tensor = self.g.nodes[i].types[0], self.g.nodes[i].inputs[0]
            # one prefetch a line: "chunks" of a line's elements (a tile row's, where shorter)
            line = math.gcd(tile.shape[-1], L2_LINE // BYTES[tile.dtype])
            geo = CopyGeometry(i, tensor, tile.shape, tile.dtype, self.plan.vtype(tensor), line)
            if tensor not in bases:
                bases[tensor] = self.input_base(geo)

            def body(where, geo=geo, base=bases[tensor]):
                src, valid = self.copy_source(geo, where)
                with em.guarded([valid] if valid is not None else []):
                    em.emit(f"nvvm.prefetch level = L2, {self.global_pointer(base, geo, src)} : !llvm.ptr")

            self.for_each_chunk(geo, body, attr=f"mirage.stage = \"prefetch {i}\"")

    def ring_fill(self, early: list[int], early_pre: list[int] = ()) -> None:
        """Issues the copies of the ring's first stages - 1 iterations (before the loop). The `early`
        iterators' copies of all of them go first, then the `early_pre` iterators' loop-invariant
        tiles, then the grid-dependency wait (GridDependency), then the rest stage by stage: the
        first group holds every early copy, so each iteration's wait still covers its tiles."""
        stages = range(self.plan.stages - 1)
        if early or early_pre:
            for d in stages if early else ():
                self.async_copy_stage(d, d, iterators=early, commit=False)
            self.copy_stage(list(early_pre), wait=False)
            self.grid_dependency_wait()
        late = [i for i in self.plan.ring if i not in early]
        for d in stages:
            self.async_copy_stage(d, d, iterators=late)

    def ring_advance(self, it: str) -> None:
        """At the top of iteration `it`: refills the stage iteration it - 1 used (the closing barrier
        ended its reads) with iteration it + stages - 1, whose copies read nothing past the loop's
        end (their empty groups keep the wait's count); waits for this iteration's group and views
        its stage. The barrier before the next read makes every thread's copies visible."""
        if not self.plan.ring:
            return
        self.async_wait(self.ring_refill(it), self.plan.stages - 1)
        if self.plan.wgmma:  # this thread's landed copies, before the barrier, ordered before wgmma's reads
            self.em.fence_async_proxy()
        for name in self.ring_views(it):
            self.dirty.add(name)

    def ring_wait_then_refill(self, it: str) -> None:
        """The ring with one barrier an iteration (for loops whose iteration ends with no barrier of
        its own): wait for iteration `it`'s group, a barrier (every thread's copies visible, and
        every thread done with iteration it - 1), then refill the stage iteration it - 1 used and
        view this one's."""
        self.async_wait(self.no_token, self.plan.stages - 2)
        self.barrier()
        self.ring_refill(it)
        self.ring_views(it)

    def ring_refill(self, it: str) -> str:
        """Issues iteration it + stages - 1's copies into the stage iteration it - 1 used (reading
        nothing past the loop's end); returns their group."""
        plan, em = self.plan, self.em
        ahead = em.add(it, plan.stages - 1)
        return self.async_copy_stage(ahead, em.rem(ahead, plan.stages), em.cmp_lt(ahead, plan.loop))

    def ring_views(self, it: str) -> list[str]:
        """Points the ring buffers at iteration `it`'s stage; their new names."""
        slot = self.em.rem(it, self.plan.stages)
        for i in self.plan.ring:
            self.buffers[i].name = self.ring_view(i, slot)
        return [self.buffers[i].name for i in self.plan.ring]

    def ring_drain(self) -> None:
        """After the loop: waits for the empty refills past its end."""
        if self.plan.ring:
            self.async_wait(self.commit_group(), 0)

    def commit_group(self) -> str:
        """cp.async.commit_group: it commits every copy this thread issued since the last one, so the
        op's tokens (which order SSA only; copies inside loops have none to pass) are one poison
        value. With no token, MLIR 22 prints a form its parser misreads."""
        return self.em.op(f"nvgpu.device_async_create_group {self.no_token}", "grp")

    def async_wait(self, group: str, pending: int) -> None:
        """Waits until at most `pending` of this thread's copy groups are still in flight."""
        self.em.emit(f"nvgpu.device_async_wait {group} {{numGroups = {pending} : i32}}")
