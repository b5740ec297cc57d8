"""Code generation for one block graph: a `gpu.func` in MLIR text (gpu/arith/math/memref/scf/vector/nvgpu).

BlockKernelGen takes the block graph's plan (plan.BlockPlan: where every value lives, how tiles move,
which matmuls use tensor cores) and drives the emitters, one concern per module (emit_copies,
emit_matmul, emit_reduction, emit_elementwise, emit_accumulators, emit_savers), mixed into it. The
generated kernel keeps the block graph's structure:

  prologue   thread and block ids; shared-memory views; the cp.async ring's first stages issued
             (in a kernel that overlaps the one before it, the weights' tiles, the grid-dependency
             wait, then the rest: GridDependency);
             accumulators initialised; loop-invariant iterators (fmap = -1) copied and
             loop-invariant stages computed once
  for-loop   `scf.for` over forloop_range {mirage.forloop}: the ring refilled and waited for, the
             other iterators copied global -> shared (or stored from prefetched registers), a
             barrier, the block ops as stages, accumulator updates, a closing barrier
  epilogue   register accumulators stored, carried row sums combined, the ops after the accumulators,
             then the output savers

A row kernel (plan.RowLayout) has none of this: emit_rows computes it in registers.

A *stage* computes one value that has a place of its own (a buffer, an accumulator or a saver's
output) over all its elements, its inline inputs recomputed in registers. Barriers are placed where
a stage reads a buffer written since the last barrier (`dirty`, by SSA name of the buffer's view),
and at the end of each loop iteration (the next iteration overwrites the iterator tiles).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..mugraph import Graph, TensorType
from .emit_accumulators import AccumulatorEmitter
from .emit_copies import CopyEmitter
from .emit_elementwise import ElementwiseEmitter
from .emit_matmul import MatmulEmitter
from .emit_reduction import ReductionEmitter
from .emit_rows import RowEmitter
from .emit_savers import SaverEmitter
from .emit_warp_rows import WarpRowsEmitter
from .emitter import ROWS_ARG, SMEM_TYPE, Emitter, Index, memref_type
from .plan import UNROLL, BlockPlan, PlanFigures, numel


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


@dataclass(frozen=True)
class RowMask:
    """Dims of a kernel's arguments that run along a dynamic size n up to their static size (a
    specialization of mirage-specialize-dims serving every smaller size): past row n nothing is read
    (zeros instead; rows are computed independently, and what the rows past n compute is never
    stored) and nothing is stored. n is the kernel's last argument, %rows."""

    inputs: dict = field(default_factory=dict)  # kernel input index -> dim
    outputs: dict = field(default_factory=dict)  # kernel output index -> dim

    @classmethod
    def of(cls, masked: dict, inputs, outputs) -> RowMask:
        """The mask of a kernel reading kernel-graph values `inputs` and writing `outputs`, where
        `masked` ({value id: dim}) says which program values have a run-time row count."""
        return cls({k: masked[v] for k, v in enumerate(inputs) if v in masked},
                   {k: masked[v] for k, v in enumerate(outputs) if v in masked})

    def __bool__(self) -> bool:
        return bool(self.inputs or self.outputs)


@dataclass(frozen=True)
class GridDependency:
    """A kernel's part in overlapping the kernels of one program (programmatic dependent launch,
    sm_90). A kernel that `waits` is launched as a dependent of the kernel before it: its blocks start
    while that one finishes, issue the cp.async ring's first stages of the program's inputs
    (`early`: block-graph input indices; the weights) and copy their loop-invariant tiles, then
    `griddepcontrol.wait` (that grid done, its writes visible) before anything that kernel may write
    is touched; with nothing to copy early it waits first (program.lower_graph launches it spread, so
    that its blocks cannot crowd the SMs the kernel before leaves room on). A kernel that `triggers`
    lets the next one launch so (`griddepcontrol.launch_dependents` at entry, or right after its wait
    where it waits first or is a row kernel: triggered before, the next kernel's early copies would
    run beside the kernel before this one, crowding its SMs; SwiGLU + down 72 -> 92 us, H200 run 139;
    but at entry wherever `trigger_at_entry`, which program.lower_graph sets where this grid and the
    next two launches fit the SMs at once: nothing the early trigger lets start can crowd them then,
    and the next kernel's early loads go out during this one's wait, not beside its first reads
    after it: ntrans bs1 1.39-1.40 -> 1.24-1.27 us, while at bs8 (64 blocks) it lost 0.04-0.26, H100
    run 255). A loop of one copies its early tiles in waves of the relative sizes `waves`
    (EARLY_COPY_WAVES where program.lower_graph finds it starts beside the launch before it), each
    issued after the one before has landed."""

    triggers: bool = False
    waits: bool = False
    early: frozenset = frozenset()
    waves: tuple[int, ...] = (1,)
    trigger_at_entry: bool = False


# A kernel that starts beside the launch before it (both grids fit the SMs at once, spread one block
# an SM) starts when the launch before that one exits, which is when the launch before it passes its
# grid wait: its early copies' burst then goes out beside that launch's first reads, which queue
# behind it (lora's 64 blocks, the next call's weights: X's 8 KB took 0.5 us after the wait, 0.15
# with no weights in flight). In waves, each issued after the one before has landed, less of the
# burst stands in the way (hand-edited PTX, H100 run 229: 2.03-2.07 us in one wave, 1.86-1.94 in 3
# equal ones). Since the weights' fragments are loaded while X flies (preload_constant_fragments
# waits for the last wave), a small first wave and one large one are best: lora 1.54-1.61 us in 3
# equal waves, 1.47-1.57 in 2, 1.45-1.49 as 7 + 14 of a thread's 21 chunks (H100 runs 252-254); a
# small last wave ran 1.57-1.63, 3 + 6 + 12 chunks 1.54-1.56. These are the waves' relative sizes.
# Grids of 128 blocks, whose next launch starts only as they exit, lost 17-19% in 3 waves (run 230).
EARLY_COPY_WAVES = (1, 2)


def early_copies(plan: BlockPlan, early: frozenset) -> tuple[list[int], list[int]]:
    """The iterators of `plan` that copy tiles of block-graph inputs `early` before a grid-dependency
    wait: through the cp.async ring, and (outside warp-rows kernels) loop-invariant tiles copied
    before the loop (a loop of one's: lora's weights; a row kernel's, loaded into registers)."""
    pre = [i for i, kind in enumerate(plan.kind)
           if kind == "iter" and plan.phase[i] == "pre" and plan.g.nodes[i].inputs[0] in early]
    if plan.rows is not None:
        return [], pre
    ring = [i for i in plan.ring if plan.g.nodes[i].inputs[0] in early]
    if plan.warp_rows is not None:
        return ring, []
    return ring, pre


class BlockKernelGen(CopyEmitter, MatmulEmitter, ReductionEmitter, ElementwiseEmitter, AccumulatorEmitter,
                     SaverEmitter, RowEmitter, WarpRowsEmitter):
    """The emitters' shared state: the plan, the Emitter `em`, the buffers (copies of the plan's,
    named by their views), the SSA names of ids and arguments, the for-loop's induction variable `it`
    and the buffers written since the last barrier."""

    def __init__(self, graph: Graph, name: str, path: tuple[int, ...] = (), use_mma: bool = True,
                 prefetch: bool = True, pipeline: bool = True, em: Emitter | None = None, prefix: str = "",
                 smem_budget: int | None = None, fixed_threads: bool = False, rows: RowMask = RowMask(),
                 dependency: GridDependency | None = None):
        self.plan = BlockPlan(graph, path, use_mma, prefetch, pipeline, smem_budget, fixed_threads)
        self.rows = rows
        self.dependency = dependency
        self.g = graph = self.plan.g  # without its identity accumulators
        self.name = name
        # a shared emitter `em`: this block graph follows another in one kernel, its buffers' names prefixed
        self.em = em or Emitter(ctype=self.plan.ctype)

        def own(buf):  # the buffers' names are SSA names, the generator's (each iteration views the ring anew)
            return replace(buf, name="%" + prefix + buf.name[1:])

        self.buffers = {i: own(buf) for i, buf in self.plan.buffers.items()}
        self.max_buffers = {i: own(buf) for i, buf in self.plan.max_buffers.items()}
        self.scale_buffers = {i: own(buf) for i, buf in self.plan.scale_buffers.items()}
        self.scratch = own(self.plan.scratch) if self.plan.scratch is not None else None
        self.k_slices = own(self.plan.k_slices) if self.plan.k_slices is not None else None
        self.row_scratch = {i: own(buf) for i, buf in self.plan.row_scratch.items()}
        self.input_args = {v: f"%arg{v}" for v in range(self.plan.n_in)}
        self.output_args = {self.plan.node_of[v]: f"%out{k}" for k, v in enumerate(graph.outputs)}  # by saver
        self.masked_savers = {self.plan.node_of[graph.outputs[k]]: d for k, d in rows.outputs.items()}
        # a fused split-K tail's cluster form (fuse_split_k): savers whose tile stays in this block's
        # shared memory ({saver: (offset, tile)}), and inputs read from the cluster's blocks' ({input:
        # (offset, tile, the dim its blocks share or None)})
        self.partial_buffers: dict[int, tuple] = {}
        self.cluster_sources: dict[int, tuple] = {}
        self.cluster_rank: Index = 0  # this block's rank in its cluster
        self.block_ids: list | None = None  # given: this block graph runs as those blocks (fuse_split_k)
        self.dirty: set[str] = set()
        self.reciprocals: dict[str, str] | None = None  # divisor -> its reciprocal, in a row kernel (divide)
        self.scratch_reads: set[str] = set()  # the scratch, when read since the last barrier
        self.it: Index = 0  # the for-loop induction variable inside the loop
        # loop-carried mma accumulators of the register accumulators: at the loop's top, at its yield
        self.reg_in: dict[int, list[str]] = {}
        self.reg_out: dict[int, list[str]] = {}
        self.preloaded_fragments: dict[int, list[list[str]]] = {}  # matmul -> B fragments per K step
        self.wgmma_in_flight = False  # a wgmma chain committed and not yet waited for (MatmulEmitter.wgmma_wait)
        # the same for the carried-row accumulators' partial sums, and the rows each thread sums
        self.row_in: dict[int, list[str]] = {}
        self.row_out: dict[int, list[str]] = {}
        self.row_slots: dict[int, list] = {}

    def emit_entry(self) -> None:
        """Thread and block ids, the shared-memory views and the cp.async token, up front so that
        they dominate every use."""
        em, g = self.em, self.g
        self.tid = em.op("gpu.thread_id x", "tid")
        self.bid = self.block_ids or [em.op(f"gpu.block_id {axis}", "bid") if g.grid_dim[n] > 1 else 0
                                      for n, axis in enumerate("xyz")]
        self.lane = em.rem(self.tid, 32)
        self.warp = em.div(self.tid, 32)
        self.lane_zero = em.cmp_eq(self.lane, 0)
        # the mma.sync fragment layouts: a lane's group of four and place in it; ldmatrix's row and matrix
        self.group, self.tig = em.div(self.lane, 4), em.rem(self.lane, 4)
        self.lrow, self.lmat = em.rem(self.lane, 8), em.div(self.lane, 8)
        if self.plan.wgmma:
            self.warpgroup = self.uniform_warpgroup()
        if self.rows:
            self.last_row = em.op(f"arith.subi {ROWS_ARG}, {em.idx(1)} : index", "last")
        scratch = [b for b in (self.scratch, self.k_slices) if b is not None] + list(self.row_scratch.values())
        if self.buffers or scratch:
            self.smem = smem = em.op(f"gpu.dynamic_shared_memory : {SMEM_TYPE}", "smem")
            for buf in [*self.buffers.values(), *self.max_buffers.values(), *self.scale_buffers.values(), *scratch]:
                if buf.stages == 1:
                    em.emit(f"{buf.name} = memref.view {smem}[{em.idx(buf.offset)}][] : {SMEM_TYPE} to {buf.type}")
        if self.plan.ring or self.plan.direct_copies:
            self.no_token = em.op("ub.poison : !nvgpu.device.async.token", "tok")

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
        elif not self.loops(n, count):
            for k in range(n // count):
                body(em.add(ids, k * count))
        else:
            e = em.fresh("e")
            header = f"scf.for {e} = {ids} to {em.idx(n)} step {em.idx(count)} {{"
            footer = f"}} {{{attr}}}" if attr else "}"
            with em.region(header, footer):
                body(e)

    @staticmethod
    def loops(n: int, count: int) -> bool:
        """for_each(n) over `count` workers is an scf.for (not one guarded step or unrolled steps)."""
        return n > count and (n % count or n // count > UNROLL)

    def barrier(self) -> None:
        self.em.emit("gpu.barrier")
        self.dirty.clear()
        self.scratch_reads = set()

    def sync_for(self, reads: set[str]) -> None:
        if reads & self.dirty:
            self.barrier()

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

    def target_reads(self, target: tuple) -> set[str]:
        """Shared buffers a stage writing to `target` reads besides its value: an accumulator's own
        buffer and its other operands (accum_rescaled_sum's running max)."""
        if target[0] != "acc":
            return set()
        reads = {self.buffers[target[1]].name}
        if target[1] in self.scale_buffers:
            reads.add(self.scale_buffers[target[1]].name)
        for extra in self.g.nodes[target[1]].inputs[1:]:
            reads |= self.reads_of(extra)
        return reads

    def compute_stage(self, target: tuple, root: int) -> None:
        """Computes value `root` elementwise (or by micro-tiles when it holds matmuls) into target."""
        own = target[0] == "buf" and self.plan.value(target[1]) == root
        # a stage filling root's own buffer reads root's inputs; any other stage reads root (its buffer)
        self.sync_for((self.reads_of_stage(root) if own else self.reads_of(root)) | self.target_reads(target))
        # a matmul with a buffer of its own is computed in its own stage only (others read the buffer)
        matmuls = self.plan.inline_matmuls(root, root=own)
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

    def stage_of(self, i: int):
        """The function emitting node i's stage, or None when it has none of its own (inline values)."""
        node, kind = self.g.nodes[i], self.plan.kind[i]
        v = self.plan.value(i)
        if kind == "iter":
            return None  # copied by the phase's copy stage
        if kind == "saver":
            return lambda: self.compute_stage(("saver", i), node.inputs[0])
        if kind == "acc":
            if i in self.plan.reg_accs:
                return lambda: self.register_accumulator_stage(i)
            if i in self.plan.carried_rows:
                return lambda: self.carried_rows_stage(i)
            if node.attr("reduce_dim", -1) != -1:
                return lambda: self.reduce_stage(("acc", i), node)
            if i in self.scale_buffers:
                return lambda: (self.rescale_stage(i), self.compute_stage(("acc", i), node.inputs[0]))
            return lambda: self.compute_stage(("acc", i), node.inputs[0])
        if kind in ("reduce", "acc_reduce1"):
            if i in self.plan.carried_rows.values():
                return None  # its carried-row accumulator sums it
            return lambda: self.reduce_stage(("buf", i), node)
        if self.plan.buffered[i]:
            return lambda: self.compute_stage(("buf", i), v)
        return None

    def generate(self, input_types: list[TensorType], output_types: list[TensorType]) -> KernelCode:
        g, em, plan = self.g, self.em, self.plan
        self.emit_body()
        em.emit("gpu.return")
        args = [f"%arg{k}: {memref_type(t.shape, t.dtype)}" for k, t in enumerate(input_types)]
        args += [f"%out{k}: {memref_type(t.shape, t.dtype)}" for k, t in enumerate(output_types)]
        args += [f"{ROWS_ARG}: index"] if self.rows else []
        return kernel_code(self.name, args, em, g.grid_dim, plan.threads, plan.shared_bytes, input_types, output_types)

    def emit_body(self) -> None:
        """The block graph's code where the emitter stands (a kernel's whole body but its return)."""
        plan = self.plan
        plan.check_shared_memory()
        self.emit_entry()
        dependency = self.dependency or GridDependency()
        early, early_pre = early_copies(plan, dependency.early) if dependency.waits else ([], [])
        waits_first = dependency.waits and not early and not early_pre
        if not self.trigger_after_wait:
            self.let_the_next_kernel_launch()
        if waits_first:
            self.grid_dependency_wait()
        if plan.rows is not None:
            self.emit_register_rows(early_pre)
            return
        if plan.warp_rows is not None:
            self.emit_warp_rows(early)
            return
        self.ring_fill(early, early_pre)  # in flight while the prologue runs
        self.init_accumulators()
        self.fill_constant_tiles()
        self.copy_stage([i for i, kind in enumerate(plan.kind)
                         if kind == "iter" and plan.phase[i] == "pre" and i not in early_pre],
                        while_in_flight=(lambda: self.preload_constant_fragments(early_pre)) if early_pre else None)
        self.emit_stages("pre")
        if plan.loop > 1:
            if self.dirty:
                self.barrier()
            self.emit_loop()
            if self.partial_buffers:  # they may lie over the ring's slots, which the loop's last reads used
                self.barrier()
            self.emit_stages("post")

    @property
    def trigger_after_wait(self) -> bool:
        """Whether the trigger comes right after the grid wait (where the kernel waits first or is a
        row kernel, unless GridDependency.trigger_at_entry), not at entry."""
        dependency = self.dependency
        if dependency is None or not dependency.waits or dependency.trigger_at_entry:
            return False
        return self.plan.rows is not None or not any(early_copies(self.plan, dependency.early))

    def let_the_next_kernel_launch(self) -> None:
        """The trigger (GridDependency.triggers), at entry or right after the wait (trigger_after_wait)."""
        if self.dependency and self.dependency.triggers:
            self.em.emit("nvvm.griddepcontrol launch_dependents")

    def grid_dependency_wait(self) -> None:
        """The wait for the kernel before (GridDependency); in a kernel with a loop of one, after L2
        prefetches of its tiles of every input that kernel may write (emit_copies.l2_prefetch): all
        it reads, one round trip on its path (lora 2.03-2.13 -> 1.91-1.99 us, H200 runs 175-176).
        Kernels with a for-loop gained nothing or lost (gqa bs1 6.86 -> 7.55 us, run 175), their rings
        hiding all but the first tiles' latency."""
        if self.plan.loop == 1:
            early = self.dependency.early if self.dependency else frozenset()
            self.l2_prefetch([i for i, kind in enumerate(self.plan.kind)
                              if kind == "iter" and self.g.nodes[i].inputs[0] not in early])
        self.em.emit("nvvm.griddepcontrol wait")
        if self.trigger_after_wait:
            self.let_the_next_kernel_launch()

    def emit_stages(self, phase: str) -> None:
        for i in range(len(self.g.nodes)):
            if self.plan.phase[i] == phase and (emit := self.stage_of(i)):
                emit()

    def emit_loop(self) -> None:
        """The for-loop, then what its loop-carried values leave: the register accumulators' totals.

        Software pipelining: the synchronously copied tiles of the next `depth` iterations are loaded
        into registers (carried by the loop) while this one computes; each iteration stores the oldest
        set to shared memory at its top and issues the loads of iteration it + depth."""
        em, plan = self.em, self.plan
        geos = plan.loop_copies()
        slots = sum(len(self.copy_slots(geo)) for geo in geos)
        depth = plan.prefetch_depth(geos)
        it = em.fresh("it")
        header = f"scf.for {it} = {em.idx(0)} to {em.idx(plan.loop)} step {em.idx(1)}"
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
        for i in plan.carried_rows:
            self.row_slots[i] = self.carried_slots(i)
            init += [em.fconst(0.0)] * len(self.row_slots[i])
            types += [em.ctype] * len(self.row_slots[i])
        carried = [em.fresh("lc") for _ in init]
        res = em.fresh("loop")
        if init:
            header = (f"{res}:{len(init)} = {header} iter_args("
                      + ", ".join(f"{c} = {v}" for c, v in zip(carried, init)) + f") -> ({', '.join(types)})")
        position = n_prefetch
        for i, info in plan.reg_accs.items():
            self.reg_in[i] = carried[position:position + info.count]
            position += info.count
        for i in plan.carried_rows:
            self.row_in[i] = carried[position:position + len(self.row_slots[i])]
            position += len(self.row_slots[i])
        with em.region(header + " {", "} {mirage.forloop}"):
            self.it = it
            following = []
            self.ring_advance(it)
            if depth:
                self.prefetch_stores(geos, carried[:slots])
                self.it = em.op(f"arith.minui {em.add(it, depth)}, {em.idx(plan.loop - 1)} : index", "i")
                following = carried[slots:n_prefetch] + self.prefetch_loads(geos)
                self.it = it
            else:
                self.copy_stage([geo.i for geo in geos])
            self.emit_stages("loop")
            self.wgmma_wait()
            self.barrier()
            for i in plan.reg_accs:
                following += self.reg_out[i]
            for i in plan.carried_rows:
                following += self.row_out[i]
            if init:
                em.emit(f"scf.yield {', '.join(following)} : {', '.join(types)}")
        self.it = 0
        self.ring_drain()
        position = n_prefetch
        for i, info in plan.reg_accs.items():
            self.register_accumulator_flush(i, [f"{res}#{j}" for j in range(position, position + info.count)])
            position += info.count
        for i in plan.carried_rows:
            self.carried_rows_finish(i, [f"{res}#{j}" for j in range(position, position + len(self.row_slots[i]))])
            position += len(self.row_slots[i])

def kernel_code(name: str, args: list[str], em: Emitter, grid: tuple, threads: int, shared_bytes: int,
                input_types: list[TensorType], output_types: list[TensorType],
                cluster: tuple | None = None) -> KernelCode:
    """A gpu.func around the emitter's text (which ends with its gpu.return); `args` as "%name: type";
    `cluster`: the thread-block cluster its launches form (PTX .reqnctapercluster, so that a plain
    launch forms it too)."""
    gx, gy, gz = grid
    clusters = f"nvvm.cluster_dim = array<i32: {', '.join(map(str, cluster))}>, " if cluster else ""
    header = (f"gpu.func @{name}({', '.join(args)}) kernel attributes {{{clusters}"
              f"known_block_size = array<i32: {threads}, 1, 1>, "
              f"known_grid_size = array<i32: {gx}, {gy}, {gz}>, "
              f"mirage.shared_bytes = {shared_bytes} : i64}} {{")
    return KernelCode(name, header + "\n" + em.text() + "\n}", tuple(grid), (threads, 1, 1), shared_bytes,
                      list(input_types), list(output_types))


def one_block_an_sm(kernel: KernelCode) -> KernelCode:
    """`kernel` marked for ptxas as running one block an SM (nvvm.minctasm = 1: PTX .minnctapersm 1),
    so that it may give a thread up to 64K / threads registers. Unmarked, ptxas holds a 512-thread
    kernel to 64 registers (two blocks an SM) and spills where the launch holds one block an SM anyway
    (LayerNorm + Linear's one-split plan at 512 threads: 64 registers and a spill, 84 marked)."""
    header = " kernel attributes {"
    return replace(kernel, text=kernel.text.replace(header, header + "nvvm.minctasm = 1 : i32, ", 1))


def plan_figures(graph: Graph) -> PlanFigures:
    return BlockPlan(graph).figures()


def warp_tiles(graph: Graph) -> dict:
    """How the warps share each loop-carried tensor-core matmul ({node: plan.RegisterAccumulator})."""
    return BlockPlan(graph).reg_accs


def generate_kernel(graph: Graph, name: str, path: tuple[int, ...] = (), use_mma: bool = True,
                    rows: RowMask = RowMask(), dependency: GridDependency | None = None) -> KernelCode:
    """The gpu.func text for a block graph (the body of a graph_def). `use_mma`: f16 matmuls on
    tensor cores (nvgpu.mma.sync, sm_80 and later); otherwise every matmul runs on CUDA cores.
    `rows`: arguments whose rows past a run-time count are not touched (RowMask); `dependency`: its
    place among the program's launches (GridDependency)."""
    outputs = [graph.value_types[v] for v in graph.outputs]
    return BlockKernelGen(graph, name, path, use_mma, rows=rows, dependency=dependency).generate(
        list(graph.inputs), outputs)
