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
read only by the second, through an iterator whose grid mapping equals the first kernel's saver on
every axis but s and whose for-loop walks the S partials (so block x of the second reads exactly
what blocks (x, 0..S-1) of the first wrote); the second runs on the first's thread count.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..mugraph import Graph
from .blockgen import BlockKernelGen, KernelCode, kernel_code
from .emitter import Emitter, memref_type

FLAG_ALIGN = 16


@dataclass(frozen=True)
class SplitKPair:
    axis: int  # the first kernel's grid axis that splits the reduction
    splits: int
    tiles: int  # output tiles (the second kernel's blocks): one counter each


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
    written = list(range(graph.first_result[n], graph.first_result[n] + len(first.types)))
    later_reads = [v for node in graph.nodes[n + 2:] for v in node.inputs]
    if any(v in graph.outputs or v in later_reads or v not in second.inputs for v in written):
        return None
    saver_omap = [s.attr("omap") for s in _savers(a)]
    # the split axis: the one grid axis of the first kernel the second does not have
    axes = [k for k in range(3) if a.grid_dim[k] != b.grid_dim[k]]
    if len(axes) != 1 or b.grid_dim[axes[0]] != 1:
        return None
    axis = axes[0]
    splits = a.grid_dim[axis]
    if b.forloop_range != splits:
        return None
    reads = 0
    for node in b.nodes:
        if node.op != "input_iterator":
            continue
        value = second.inputs[node.inputs[0]]
        if value not in written:
            continue
        omap, imap, fmap = saver_omap[written.index(value)], node.attr("imap"), node.attr("fmap")
        if omap[axis] == -1 or fmap != omap[axis] or imap[axis] != -1:
            return None
        if any(imap[k] != omap[k] for k in range(3) if k != axis):
            return None
        reads += 1
    if reads == 0 or b.block_dim[1:] != (1, 1) or a.block_dim[1:] != (1, 1):
        return None
    return SplitKPair(axis, splits, b.grid_dim[0] * b.grid_dim[1] * b.grid_dim[2])


def fused_pairs(graph: Graph) -> list[int]:
    """The nodes n whose pair (n, n + 1) runs as one launch, taken greedily from the first node (as
    the lowering takes them)."""
    pairs, n = [], 0
    while n < len(graph.nodes):
        if split_k_pair(graph, n) is not None:
            pairs.append(n)
            n += 2
        else:
            n += 1
    return pairs


def generate_fused(graph: Graph, n: int, pair: SplitKPair, name: str, path: tuple[int, ...] = ()) -> tuple[KernelCode, list]:
    """The fused kernel of nodes n, n + 1 and its arguments as kernel-graph value ids, the counters
    last (as the string "counters")."""
    first, second = graph.nodes[n], graph.nodes[n + 1]
    a = first.body
    b = replace(second.body, block_dim=a.block_dim)  # the block size never changes a block graph's value
    gen_a = BlockKernelGen(a, name, path)
    gen_b = BlockKernelGen(b, name, path + (1,), em=gen_a.em, prefix="combine_",
                           smem_budget=gen_a.plan.shared_bytes)
    if gen_a.plan.ctype != gen_b.plan.ctype:
        raise ValueError("fused kernels compute in one type")
    em = gen_a.em
    written = list(range(graph.first_result[n], graph.first_result[n] + len(first.types)))
    values = list(first.inputs) + written + [v for v in second.inputs if v not in first.inputs and v not in written]
    first_out = graph.first_result[n + 1]
    values += list(range(first_out, first_out + len(second.types)))
    names = {v: f"%arg{k}" for k, v in enumerate(values)}
    gen_a.input_args = {k: names[v] for k, v in enumerate(first.inputs)}
    gen_a.output_args = {gen_a.plan.node_of[o]: names[v] for o, v in zip(a.outputs, written)}
    gen_b.input_args = {k: names[v] for k, v in enumerate(second.inputs)}
    gen_b.output_args = {gen_b.plan.node_of[o]: names[first_out + r] for r, o in enumerate(b.outputs)}
    counters = "%counters"
    shared = max(gen_a.plan.shared_bytes, gen_b.plan.shared_bytes)
    flag_offset = -(-shared // FLAG_ALIGN) * FLAG_ALIGN

    gen_a.emit_body()
    last_block = _emit_fixup_vote(em, gen_a, a, pair, counters, flag_offset)
    with em.region(f"scf.if {last_block} {{"):
        em.emit('llvm.fence syncscope("device") acquire')
        gen_b.emit_body()
    em.emit("gpu.return")

    types = [graph.value_types[v] for v in values]
    args = [f"{names[v]}: {memref_type(t.shape, t.dtype)}" for v, t in zip(values, types)]
    args.append(f"{counters}: {memref_type((pair.tiles,), 'i32')}")
    code = kernel_code(name, args, em, a.grid_dim, gen_a.plan.threads, flag_offset + FLAG_ALIGN, types, [])
    return code, values + ["counters"]


def _emit_fixup_vote(em: Emitter, gen: BlockKernelGen, a: Graph, pair: SplitKPair, counters: str,
                     flag_offset: int) -> str:
    """Publishes this block's partials and finds out whether it is its tile's last: an i1 SSA value,
    the same in every thread of the block."""
    em.emit('llvm.fence syncscope("device") release')
    em.emit("gpu.barrier")
    tile = em.linearize([gen.bid[k] for k in (2, 1, 0) if k != pair.axis],
                        tuple(a.grid_dim[k] for k in (2, 1, 0) if k != pair.axis))  # the block index without s
    smem = em.op("gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>", "smem")
    flag_type = memref_type((1,), "i32", "workgroup")
    flag = em.op(f"memref.view {smem}[{em.idx(flag_offset)}][] : memref<?xi8, #gpu.address_space<workgroup>> "
                 f"to {flag_type}", "flag")
    with em.region(f"scf.if {em.cmp_eq(gen.tid, 0)} {{"):
        before = em.op(f"memref.atomic_rmw addi {em.i32(1)}, {counters}[{em.idx(tile)}] : "
                       f"(i32, memref<{pair.tiles}xi32>) -> i32", "arrived")
        last = em.op(f"arith.cmpi eq, {before}, {em.i32(pair.splits - 1)} : i32", "last")
        with em.region(f"scf.if {last} {{"):
            em.emit(f"memref.store {em.i32(0)}, {counters}[{em.idx(tile)}] : memref<{pair.tiles}xi32>")
        em.emit(f"memref.store {em.op(f'arith.extui {last} : i1 to i32', 'f')}, {flag}[{em.idx(0)}] : {flag_type}")
    em.emit("gpu.barrier")
    return em.op(f"arith.cmpi ne, {em.op(f'memref.load {flag}[{em.idx(0)}] : {flag_type}', 'f')}, "
                           f"{em.i32(0)} : i32", "is_last")
