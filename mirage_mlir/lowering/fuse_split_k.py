"""A split reduction and its combine kernel as one launch (a "serial fixup", as CUTLASS's split-K).

Mirage writes a reduction split across blocks as two kernels: blocks (x, s) of the first write
partial sums side by side along a dim of a temporary P, and the second, on the grid without the
axis s, loops over the S partial tiles of its block x, adding them. On an H200 the second launch and
its chain of dependent loads cost 3-5 us beside ~14 us of weight streaming (benchmarks/NOTES.md).

Fused, each block of the first kernel publishes its partial tile (a release fence), then counts
itself on its output tile's counter (an atomic add); the block that arrives last for that tile runs
the second kernel's block, reading the S partials from L2 after an acquire fence, and resets the
counter to zero for the next launch. The mu-graph is unchanged: only its launches are.

`split_k_pair` says when two consecutive kernels have that shape: every tensor the first writes is
read only by the second, which reads nothing else, whose for-loop walks the S partials and whose
grid axes each cut a dim as the first kernel's blocks do (in any axis order): then one block of the
second reads exactly one tile of the first, and the tile's last block runs it. The second runs on
the first's thread count, within its shared memory where its ring allows. (Combines that read a
weight of their own, or several combine blocks per tile run in the tail, measured slower: run 17 in
benchmarks/NOTES.md.)

On sm_90, where a tile has 2 splits (CLUSTER_SPLITS; plan.SPLIT_K_CLUSTER, on by default), its blocks
run as one thread-block cluster instead: each keeps its partial tile in its own shared memory (in
the ring's slots where they fit), a cluster barrier makes them visible (its release a fence
restricted to the block's own shared memory: the plain release's GPU-wide membar cost ~0.5 us, ncu
run 206), the cluster's first block reads its peer's through distributed shared memory (mapa,
ld.shared::cluster) and runs the combine block, and a last cluster barrier keeps the peer resident
until it has read it. Where the combine has a block per split block of each tile (`rank_axis`: the
search's combines over half-width tiles), each block of the cluster runs one of them on its share
of every block's partials, halving the tail's serial work (this shape has no counter form: its last
block would run them one after another). No partial leaves the SMs, and neither the device fence
(which waits for every partial store to reach L2) nor the counter's round trip is on the tail; the
launch keeps the counter form's arguments. gated_mlp bs8 (ncu: the counter tail >= 4 of 24 us, run
198): its 2-split plans 6-8% faster on an H100 (run 201); 4- and 8-split tails mostly lost in
clusters (their blocks hold their SMs until the slowest arrives), so they keep the counters.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..mugraph import Graph
from . import plan as plan_module
from .blockgen import BlockKernelGen, GridDependency, KernelCode, RowMask, kernel_code
from .emitter import BYTES, ROWS_ARG, Emitter, memref_type
from .plan import LoweringError, numel

FLAG_ALIGN = 16
# most splits of a tile that run as one cluster: 2-split tails gained in clusters, 4- and 8-split ones
# mostly lost (their blocks hold their SMs until the slowest one arrives; H100 run 201: gated_mlp bs8's
# 2-split candidates 6-8% faster, 4-split ones up to 1.5x slower; H200 run 98 alike)
CLUSTER_SPLITS = 2


@dataclass(frozen=True)
class SplitKPair:
    axis: int  # the first kernel's grid axis that splits the reduction
    splits: int
    tiles: int  # the first kernel's output tiles (its blocks along the other axes): one counter each
    # per grid axis of the second kernel: the first kernel's axis over the same dim (-1: none)
    combine_axes: tuple = ()
    # the second kernel's axis with `splits` blocks per tile (-1: none): in the cluster form each block
    # of a tile's cluster runs one of them, on its share of the partial tiles
    rank_axis: int = -1


def clusters_take(splits: int) -> bool:
    """A tile of `splits` blocks runs as one thread-block cluster (the cluster form, module doc)."""
    return plan_module.SPLIT_K_CLUSTER and plan_module.target_has_clusters() and splits <= CLUSTER_SPLITS


def _savers(body: Graph) -> list:
    return [n for n in body.nodes if n.op == "output_saver"]


def split_k_pair(graph: Graph, n: int) -> SplitKPair | None:
    """The split-K shape of kernel-graph nodes n and n + 1, or None."""
    if n + 1 >= len(graph.nodes):
        return None
    first, second = graph.nodes[n], graph.nodes[n + 1]
    if first.op != "graph_def" or second.op != "graph_def":
        return None
    a, b = first.body, second.body
    if b.block_dim[1:] != (1, 1) or a.block_dim[1:] != (1, 1):
        return None
    written = list(range(graph.first_result[n], graph.first_result[n] + len(first.types)))
    later_reads = [v for node in graph.nodes[n + 2:] for v in node.inputs]
    if any(v in graph.outputs or v in later_reads or v not in second.inputs for v in written):
        return None
    if any(v not in written for v in second.inputs):
        return None  # a combine that reads more (a weight to stream) is a kernel of its own, not a tail
    saver_omap = [s.attr("omap") for s in _savers(a)]
    reads = [(saver_omap[written.index(second.inputs[node.inputs[0]])], node.attr("imap"), node.attr("fmap"))
             for node in b.nodes if node.op == "input_iterator" and second.inputs[node.inputs[0]] in written]
    if not reads:
        return None
    # the split axis: the first kernel's axis along which its blocks write the partials the second
    # kernel's for-loop walks
    omap, _, fmap = reads[0]
    axis = omap.index(fmap) if fmap in omap else -1
    if axis == -1 or a.grid_dim[axis] != b.forloop_range or b.forloop_range < 2:
        return None
    combine_axes, rank_axis = [], -1
    for k in range(3):  # each axis of the second kernel, against the first's over the same dim
        dims = {imap[k] for _, imap, _ in reads}
        if b.grid_dim[k] == 1:
            combine_axes.append(-1)
            continue
        if len(dims) != 1 or -1 in dims:
            return None
        (dim,) = dims
        owners = {om.index(dim) if dim in om else -1 for om, _, _ in reads}
        if len(owners) != 1:
            return None
        (owner,) = owners
        if owner in (-1, axis):
            return None
        if b.grid_dim[k] != a.grid_dim[owner]:
            # several combine blocks per tile: one per block of the tile's cluster, or none (run one after
            # another in the counter form's tail, they ran slower: run 17)
            if b.grid_dim[k] != a.grid_dim[owner] * a.grid_dim[axis] or rank_axis != -1 \
                    or not clusters_take(a.grid_dim[axis]):
                return None
            rank_axis = k
        combine_axes.append(owner)
    mapped = {owner for owner in combine_axes if owner != -1}
    for om, imap, fm in reads:
        if om[axis] != fm or fm in imap:  # the loop, not a grid axis, walks the partials
            return None
        # every first-kernel axis that splits the partials must be matched by one of the second's
        if any(om[k] != -1 and a.grid_dim[k] > 1 and k not in mapped for k in range(3) if k != axis):
            return None
    tiles = a.grid_dim[0] * a.grid_dim[1] * a.grid_dim[2] // a.grid_dim[axis]
    return SplitKPair(axis, a.grid_dim[axis], tiles, tuple(combine_axes), rank_axis)


def fused_pairs(graph: Graph) -> dict[int, SplitKPair]:
    """The nodes n whose pair (n, n + 1) runs as one launch, with its shape, taken greedily from the
    first node (as the lowering takes them)."""
    pairs, n = {}, 0
    while n < len(graph.nodes):
        pair = split_k_pair(graph, n)
        if pair is not None:
            pairs[n] = pair
            n += 2
        else:
            n += 1
    return pairs


def generate_fused(graph: Graph, n: int, pair: SplitKPair, name: str, path: tuple[int, ...] = (),
                   masked: dict | None = None, dependency: GridDependency | None = None) -> tuple[KernelCode, list]:
    """The fused kernel of nodes n, n + 1 and its arguments as kernel-graph value ids, then the
    counters (the string "counters") and, where `masked` ({value id: dim}, blockgen.RowMask) touches
    its arguments, the row count ("rows"). `dependency`: its place among the program's launches."""
    masked = masked or {}
    first, second = graph.nodes[n], graph.nodes[n + 1]
    first_out = graph.first_result[n + 1]
    a = first.body
    rows_a = RowMask.of(masked, first.inputs, [])  # its outputs are the partials, temporaries
    rows_b = RowMask.of(masked, second.inputs, range(first_out, first_out + len(second.types)))
    gen_a = BlockKernelGen(a, name, path, rows=rows_a, dependency=dependency)
    # the combine runs on the launch's threads: the first kernel's plan's (a row kernel picks its own
    # count, fewer than its block_dim); the block size never changes a block graph's value
    b = replace(second.body, block_dim=(gen_a.plan.threads, 1, 1))
    gen_b = BlockKernelGen(b, name, path + (1,), em=gen_a.em, prefix="combine_",
                           smem_budget=gen_a.plan.shared_bytes, fixed_threads=True, rows=rows_b)
    if gen_a.plan.ctype != gen_b.plan.ctype:
        raise ValueError("fused kernels compute in one type")
    em = gen_a.em
    written = list(range(graph.first_result[n], graph.first_result[n] + len(first.types)))
    values = list(first.inputs) + written  # the second kernel reads nothing else (split_k_pair)
    values += list(range(first_out, first_out + len(second.types)))
    names = {v: f"%arg{k}" for k, v in enumerate(values)}
    gen_a.input_args = {k: names[v] for k, v in enumerate(first.inputs)}
    gen_a.output_args = {gen_a.plan.node_of[o]: names[v] for o, v in zip(gen_a.g.outputs, written)}
    gen_b.input_args = {k: names[v] for k, v in enumerate(second.inputs)}
    gen_b.output_args = {gen_b.plan.node_of[o]: names[first_out + r] for r, o in enumerate(gen_b.g.outputs)}
    counters = "%counters"
    shared = max(gen_a.plan.shared_bytes, gen_b.plan.shared_bytes)
    flag_offset = -(-shared // FLAG_ALIGN) * FLAG_ALIGN

    partials = _cluster_partials(gen_a, gen_b, pair, written, second, flag_offset)
    if partials is None and pair.rank_axis != -1:
        raise LoweringError("a combine with a block per split block needs the cluster form, "
                            "and its partial tiles find no room", path)
    if partials is not None:
        _emit_cluster_tail(gen_a, gen_b, pair, partials)
        shared_bytes = partials.shared_bytes
    else:
        gen_a.emit_body()
        last_block = _emit_fixup_vote(em, gen_a, a, pair, counters, flag_offset)
        with em.region(f"scf.if {last_block} {{"):
            em.emit('llvm.fence syncscope("device") acquire')
            _emit_combine_block(gen_a, gen_b, pair)
        shared_bytes = flag_offset + FLAG_ALIGN
    em.emit("gpu.return")

    types = [graph.value_types[v] for v in values]
    args = [f"{names[v]}: {memref_type(t.shape, t.dtype)}" for v, t in zip(values, types)]
    args.append(f"{counters}: {memref_type((pair.tiles,), 'i32')}")
    rows = ["rows"] if rows_a or rows_b else []
    args += [f"{ROWS_ARG}: index"] if rows else []
    cluster = tuple(pair.splits if k == pair.axis else 1 for k in range(3)) if partials is not None else None
    code = kernel_code(name, args, em, a.grid_dim, gen_a.plan.threads, shared_bytes, types, [], cluster)
    return code, values + ["counters"] + rows


@dataclass(frozen=True)
class ClusterPartials:
    """The cluster form's layout: where each partial tile lies in its block's shared memory."""
    savers: dict  # the first kernel's saver node: (byte offset, tile shape)
    # the combine's input (index among its kernel's inputs): the same, and the tile's dim that the
    # cluster's blocks share among them (None: each reads whole tiles)
    sources: dict
    shared_bytes: int  # the fused kernel's shared memory, the partials included


def _cluster_partials(gen_a: BlockKernelGen, gen_b: BlockKernelGen, pair: SplitKPair, written: list,
                      second, end: int) -> ClusterPartials | None:
    """The cluster form's layout (the kernel's shared memory otherwise `end` bytes); None where that
    form does not apply: not asked for, a chip without clusters, more splits than CLUSTER_SPLITS, a
    combine that reads other tiles than the blocks keep or copies them by cp.async, or no room for
    the partials."""
    if not clusters_take(pair.splits):
        return None
    sizes, shared_dims = {}, {}
    for j, v in enumerate(written):
        saver = gen_a.plan.node_of[gen_a.g.outputs[j]]
        tile = gen_a.plan.vtype(gen_a.g.nodes[saver].inputs[0]).shape
        readers = [i for i, node in enumerate(gen_b.g.nodes)
                   if node.op == "input_iterator" and second.inputs[node.inputs[0]] == v]
        dim = None if pair.rank_axis == -1 or not readers else gen_b.g.nodes[readers[0]].attr("imap")[pair.rank_axis]
        read = tile if dim is None else tuple(t // pair.splits if d == dim else t for d, t in enumerate(tile))
        if any(gen_b.g.nodes[i].types[0].shape != read or i in gen_b.plan.ring for i in readers):
            return None  # other tiles than the blocks keep, or copied by cp.async (global only)
        dtype = gen_a.g.nodes[saver].types[0].dtype
        sizes[v] = (saver, tile, -(-numel(tile) * BYTES[dtype] // FLAG_ALIGN) * FLAG_ALIGN)
        shared_dims[v] = dim
    start = _free_span(gen_a, gen_b, sum(size for _, _, size in sizes.values()), end)
    if start is None:
        return None
    savers, placed = {}, {}
    for v, (saver, tile, size) in sizes.items():
        savers[saver] = placed[v] = (start, tile)
        start += size
    sources = {k: placed[v] + (shared_dims[v],) for k, v in enumerate(second.inputs)}
    return ClusterPartials(savers, sources, max(end, start))


def _free_span(gen_a: BlockKernelGen, gen_b: BlockKernelGen, size: int, end: int) -> int | None:
    """The lowest offset of `size` bytes of shared memory that nothing live after the first kernel's
    loop uses: not its buffers but the ring's slots (its loop is over; the ring holds most of a
    weight stream's shared memory), not the combine's (from 0 on), the kernel's `end` bytes grown
    where no hole fits; None past the chip's shared memory."""
    plan = gen_a.plan
    live = [(0, gen_b.plan.shared_bytes)]
    for buffers in (plan.buffers, plan.max_buffers, plan.scale_buffers):
        live += [(b.offset, b.offset + b.stage_bytes * b.stages) for i, b in buffers.items()
                 if buffers is not plan.buffers or i not in plan.ring]
    scratch = [gen_a.scratch, gen_a.k_slices, *gen_a.row_scratch.values()]
    live += [(b.offset, b.offset + b.stage_bytes * b.stages) for b in scratch if b is not None]
    for start in sorted({0, end} | {hi for _, hi in live}):
        start = -(-start // FLAG_ALIGN) * FLAG_ALIGN
        if not any(lo < start + size and start < hi for lo, hi in live):
            return start if start + size <= plan_module.MAX_SHARED_BYTES else None
    return None


def _emit_cluster_tail(gen_a: BlockKernelGen, gen_b: BlockKernelGen, pair: SplitKPair,
                       partials: ClusterPartials) -> None:
    """The first kernel's body saving its partials into its shared memory, then the cluster's first
    block's combine over its peers' (the cluster form, module doc)."""
    em = gen_a.em
    gen_a.partial_buffers = partials.savers
    gen_a.emit_body()
    # release: this block's partials, which lie in its own shared memory; a fence restricted to that
    # space orders them at cluster scope without the plain release's GPU-wide membar (MEMBAR.ALL.GPU:
    # ~0.5 us of gated_mlp bs8's tail, ncu run 206)
    em.emit("nvvm.fence.sync_restrict {order = #nvvm.mem_order<release>}")
    em.emit("nvvm.cluster.arrive.relaxed {aligned}")
    em.emit("nvvm.cluster.wait {aligned}")  # acquire: every peer's
    gen_b.cluster_sources = partials.sources
    gen_b.cluster_rank = gen_a.bid[pair.axis]
    if pair.rank_axis == -1:
        with em.region(f"scf.if {em.cmp_eq(gen_b.cluster_rank, 0)} {{"):
            _emit_combine_block(gen_a, gen_b, pair)
    else:  # each block its own combine block, on its share of every block's partial tiles
        _emit_combine_block(gen_a, gen_b, pair)
    # the peers stay resident until the blocks that read them are done; their reads are complete once
    # the combine has used them, so the arrive needs no release
    em.emit("nvvm.cluster.arrive.relaxed {aligned}")
    em.emit("nvvm.cluster.wait {aligned}")


def _emit_combine_block(gen_a: BlockKernelGen, gen_b: BlockKernelGen, pair: SplitKPair) -> None:
    """The second kernel's block that reads this tile's partials, its block ids the first kernel's
    over the same dims."""
    em = gen_a.em
    gen_b.block_ids = [0 if owner == -1 else gen_a.bid[owner] if k != pair.rank_axis
                       else em.add(em.mul(gen_a.bid[owner], pair.splits), gen_a.bid[pair.axis])
                       for k, owner in enumerate(pair.combine_axes)]
    gen_b.emit_body()


def _emit_fixup_vote(em: Emitter, gen: BlockKernelGen, a: Graph, pair: SplitKPair, counters: str,
                     flag_offset: int) -> str:
    """Publishes this block's partials and finds out whether it is its tile's last: an i1 SSA value,
    the same in every thread of the block."""
    em.emit('llvm.fence syncscope("device") release')
    em.emit("gpu.barrier")
    tile = em.linearize([gen.bid[k] for k in (2, 1, 0) if k != pair.axis],
                        tuple(a.grid_dim[k] for k in (2, 1, 0) if k != pair.axis))  # the block index without s
    flag_type = memref_type((1,), "i32", "workgroup")
    flag = em.shared_view(flag_offset, flag_type)
    with em.region(f"scf.if {em.cmp_eq(gen.tid, 0)} {{"):
        before = em.op(f"memref.atomic_rmw addi {em.i32(1)}, {counters}[{em.idx(tile)}] : "
                       f"(i32, memref<{pair.tiles}xi32>) -> i32", "arrived")
        last = em.op(f"arith.cmpi eq, {before}, {em.i32(pair.splits - 1)} : i32", "last")
        with em.region(f"scf.if {last} {{"):
            em.emit(f"memref.store {em.i32(0)}, {counters}[{em.idx(tile)}] : memref<{pair.tiles}xi32>")
        em.emit(f"memref.store {em.op(f'arith.extui {last} : i1 to i32', 'f')}, {flag}[{em.idx(0)}] : {flag_type}")
    em.emit("gpu.barrier")
    flag_value = em.op(f"memref.load {flag}[{em.idx(0)}] : {flag_type}", "f")
    return em.op(f"arith.cmpi ne, {flag_value}, {em.i32(0)} : i32", "is_last")
