"""Reductions (reduce ops, and accumulators with reduce_dim): each output row goes to an aligned group
of lanes (`BlockPlan.lanes_per_row`: a whole warp for few long rows, fewer lanes when rows are many,
one thread for short rows), whose lanes combine their partial results with `gpu.shuffle xor`; when a
block has fewer rows than warps, several warps share each row and combine through a shared scratch.
Lanes keep four independent partial results over long rows, and read the buffers a reduction along
the last dim computes from in 16-byte vectors where the rows allow (`reduction_vector`: a scalar
shared-memory load per element had LayerNorm's whole-K plan waiting on them, H200 run 180). A row
reduction that feeds a sum
accumulator over the for-loop (plan.carried_rows) keeps each lane's partial sums in loop-carried
registers instead, and combines the lanes once, after the loop.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ..mugraph import Node
from ..opset import OPS
from .emit_elementwise import broadcast_index
from .emitter import BYTES, Index
from .plan import SWIZZLE_CHUNK, numel


class CarriedSlot(NamedTuple):
    """One row a thread sums for a carried-row accumulator: `row` (its number; `index` the same,
    clamped to the last row when `clamped`: a thread past the rows sums the last one and never
    finishes it), the thread's first element and stride along the row, the lanes that combine it
    (1: the thread alone), the warps that share it (`split`), and who finishes it (`finisher`: an
    i1, or None for every thread)."""

    row: Index
    index: Index
    clamped: bool
    first: Index
    stride: int
    lanes: int
    split: int
    finisher: str | None


class ReductionEmitter:
    """Reduction stages into a buffer or an accumulator."""

    def reduction_parts(self, node: Node):
        """Reduction `node` (a reduce op, or an accumulator with reduce_dim) of its input x:
        (out_shape, length, element(oidx, j, memo): x's element j along the reduced dim (squared
        for rms), combine, identity)."""
        em, x_v = self.em, node.inputs[0]
        dim = node.attr("dim") if node.op in OPS else node.attr("reduce_dim")
        x_shape = self.plan.vtype(x_v).shape
        dim %= len(x_shape)
        acc_dtype = node.types[0].dtype

        def element(oidx: list[Index], j: Index, memo: dict) -> str:
            index = list(oidx)
            index[dim] = j
            x = self.value_at(x_v, index, memo)
            return em.round(em.fbin("mulf", x, x), acc_dtype) if node.op == "accum_rms" else x

        identity = em.fconst(-math.inf if node.op in ("reduce_max", "accum_max") else 0.0)
        return node.types[0].shape, x_shape[dim], element, self.reduction_combine(node), identity

    def reduce_stage(self, target: tuple, node: Node) -> None:
        """Reduction `node` of its input into a buffer or an accumulator."""
        em, x_v = self.em, node.inputs[0]
        out_shape, length, element, combine, identity = self.reduction_parts(node)
        acc_dtype = node.types[0].dtype
        self.sync_for(self.reads_of(x_v) | self.target_reads(target))

        def finish(oidx: list[Index], total: str, memo: dict) -> None:
            if target[0] == "acc":
                value = em.round(total, acc_dtype)
                self.acc_update(target[1], oidx, value, memo)
            else:
                self.write(target, oidx, self.finish_total(node, em.round(total, acc_dtype), length), memo)

        rows = numel(out_shape)
        if length >= 32:
            lanes = self.plan.lanes_per_row(rows, length)
            split = self.plan.warps_per_row(rows, length)
            if split > 1:
                return self.split_row_reduction(target, node, split, finish)
            # `lanes` lanes per row (a whole warp, or an aligned group of one): strided partial results,
            # then shuffles within the group; the group's first lane finishes the row
            lane = em.rem(self.tid, lanes)
            first_lane = self.lane_zero if lanes == 32 else em.cmp_eq(lane, 0)

            def group_body(o):
                oidx = em.unflatten(o, out_shape)
                total = self.row_partial(node, element, oidx, lane, length, lanes, combine, identity)
                total = self.warp_allreduce(total, combine, lanes)
                with em.region(f"scf.if {first_lane} {{"):
                    finish(oidx, total, {})

            self.for_each(rows, group_body, ids=em.div(self.tid, lanes), count=self.plan.threads // lanes)
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

    # -- sums carried across the for-loop (plan.carried_rows) ---------------------------------------
    def carried_slots(self, i: int) -> list[CarriedSlot]:
        """Where carried-row accumulator i's reduction runs in this thread, one slot per row it takes
        part in, the rows spread as the reduction's stage spreads them: lane groups, warps sharing
        a row, or a thread per row (emitted before the loop: the loop and what follows it use them)."""
        em, plan = self.em, self.plan
        rows, length = self.carried_size(i)
        split = plan.warps_per_row(rows, length) if length >= 32 else 1
        if length < 32:
            workers, count, first, stride, lanes, finisher = self.tid, plan.threads, 0, 1, 1, None
        elif split > 1:
            workers, count, stride, lanes, finisher = em.div(self.warp, split), plan.warps // split, 32 * split, 32, \
                self.lane_zero
            first = em.add(self.lane, em.mul(em.rem(self.warp, split), 32))
        else:
            lanes = plan.lanes_per_row(rows, length)
            workers, count, first, stride = em.div(self.tid, lanes), plan.threads // lanes, em.rem(self.tid, lanes), lanes
            finisher = self.lane_zero if lanes == 32 else em.cmp_eq(first, 0)
        slots = []
        for k in range(-(-rows // count)):
            row = em.add(workers, k * count)
            clamped = (k + 1) * count > rows
            index = em.op(f"arith.minui {em.idx(row)}, {em.idx(rows - 1)} : index", "i") if clamped else row
            slots.append(CarriedSlot(row, index, clamped, first, stride, lanes, split, finisher))
        return slots

    def carried_size(self, i: int) -> tuple[int, int]:
        """(rows, length) of carried-row accumulator i's reduction."""
        out_shape, length, *_ = self.reduction_parts(self.g.nodes[self.plan.carried_rows[i]])
        return numel(out_shape), length

    def carried_rows_stage(self, i: int) -> None:
        """One iteration of carried-row accumulator i: each thread adds its partial sums over this
        iteration's elements to its loop-carried registers (no shuffle, no barrier)."""
        reduction = self.g.nodes[self.plan.carried_rows[i]]
        self.sync_for(self.reads_of(reduction.inputs[0]))
        out_shape, length, element, combine, identity = self.reduction_parts(reduction)
        out = []
        for carried, slot in zip(self.row_in[i], self.row_slots[i]):
            oidx = self.em.unflatten(slot.index, out_shape)
            if length < 32:
                part = combine_tree([element(oidx, j, {}) for j in range(length)], combine)
            else:
                part = self.row_partial(reduction, element, oidx, slot.first, length, slot.stride, combine,
                                        identity)
            out.append(combine(carried, part))
        self.row_out[i] = out

    def carried_rows_finish(self, i: int, partials: list[str]) -> None:
        """After the loop: the lanes' partial sums of accumulator i combined (shuffles; through the
        scratch, a barrier apart, where warps share a row) and added to the accumulator."""
        em = self.em
        reduction = self.g.nodes[self.plan.carried_rows[i]]
        out_shape, length, _, combine, _ = self.reduction_parts(reduction)
        rows = numel(out_shape)

        def finish(row: Index, total: str) -> None:
            if reduction is not self.g.nodes[i]:  # a reduce op's result (a mean divides) feeds the sum
                total = self.finish_total(reduction, total, length)
            self.acc_update(i, em.unflatten(row, out_shape), total, {})

        slots = self.row_slots[i]
        split = slots[0].split
        if split > 1 and self.scratch.name in self.scratch_reads:
            self.barrier()  # the previous split reduction's combine still reads the scratch
        for partial, slot in zip(partials, slots):
            total = self.warp_allreduce(partial, combine, slot.lanes) if slot.lanes > 1 else partial
            conditions = [slot.finisher] if slot.finisher else []
            conditions += [em.cmp_lt(slot.row, rows)] if slot.clamped else []
            with em.guarded(conditions):
                if split > 1:
                    em.emit(f"memref.store {total}, {self.scratch.name}[{em.idx(self.warp)}] : {self.scratch.type}")
                else:
                    finish(slot.index, total)
        if split > 1:
            self.combine_warp_totals(rows, split, combine, finish)
        self.dirty.add(self.buffers[i].name)

    def combine_warp_totals(self, rows: int, split: int, combine, finish) -> None:
        """After a barrier, one thread per row combines the `split` warp totals of row r in the
        scratch (warp w's at [w]; a row's warps side by side) and calls finish(r, total)."""
        em, scratch = self.em, self.scratch
        self.barrier()

        def combine_row(r):
            parts = [em.op(f"memref.load {scratch.name}[{em.idx(em.add(em.mul(r, split), w))}] : {scratch.type}", "l")
                     for w in range(split)]
            finish(r, combine_tree(parts, combine))

        self.for_each(rows, combine_row)
        self.scratch_reads = {scratch.name}

    def reduction_combine(self, node: Node):
        """How partial results of reduction or accumulator `node` combine: max, or a sum."""
        op = "maximumf" if node.op in ("reduce_max", "accum_max") else "addf"
        return lambda a, b: self.em.fbin(op, a, b)

    def lane_partial(self, elements, first: Index, length: int, stride: int, combine, identity: str,
                     vec: int = 1) -> str:
        """This lane's combination of the elements of its chunks of `vec`: chunks first, first +
        stride, ... (in chunks; `first` is below `stride`) of the `length` elements, elements(j, n)
        giving the n from element j on: unrolled when every lane has the same few chunks, else a
        loop carrying four independent partial results where the count allows (one when lanes have
        different counts)."""
        em = self.em
        step = stride * vec
        count = length // step
        even = length % step == 0
        first = em.mul(first, vec)

        def chunk(j: Index) -> str:
            return combine_tree(elements(j, vec), combine)
        if even and count <= 8:
            return combine_tree([chunk(em.add(first, step * q)) for q in range(count)], combine)
        ways = 4 if even and count % 4 == 0 else 1
        j, res = em.fresh("j"), em.fresh("r")
        accs = [em.fresh("s") for _ in range(ways)]
        types = ", ".join([em.ctype] * ways)
        with em.region(f"{res}:{ways} = scf.for {j} = {em.idx(first)} to {em.idx(length)} step {em.idx(step * ways)} "
                       f"iter_args({', '.join(f'{a} = {identity}' for a in accs)}) -> ({types}) {{"):
            new = [combine(a, chunk(em.add(j, step * w))) for w, a in enumerate(accs)]
            em.emit(f"scf.yield {', '.join(new)} : {types}")
        return combine_tree([f"{res}#{w}" for w in range(ways)], combine)

    def row_partial(self, node: Node, element, oidx: list[Index], first: Index, length: int, stride: int,
                    combine, identity: str) -> str:
        """lane_partial over row `oidx` of reduction `node` (element(oidx, j, memo): its input's
        element j of `length`), the buffers that input is computed from read in vectors where
        `reduction_vector` allows."""
        leaves = self.buffered_leaves(node.inputs[0])
        vec = self.reduction_vector(node, leaves, stride)
        return self.lane_partial(self.chunk_reader(node, element, oidx, leaves), first, length, stride, combine,
                                 identity, vec)

    def reduction_vector(self, node: Node, leaves: set[int] | None, stride: int) -> int:
        """Elements a lane reads at once (`lane_partial`'s vec) of reduction `node`, whose lanes
        interleave with `stride`: 16 bytes (or 8, 4) of each buffer its input is computed from
        (`leaves`; operands broadcast along the reduced dim aside), where the reduction runs along the
        last dim, every lane's share is whole chunks and the buffers' rows keep them aligned; else 1."""
        shape = self.plan.vtype(node.inputs[0]).shape
        dim = (node.attr("dim") if node.op in OPS else node.attr("reduce_dim")) % len(shape)
        if dim != len(shape) - 1 or not leaves:
            return 1
        rows = [self.buffers[self.plan.node_of[v]] for v in leaves if self.plan.vtype(v).shape[-1] == shape[-1] > 1]
        for vec in (8, 4, 2):
            if rows and shape[-1] % (stride * vec) == 0 and all(
                    vec * BYTES[b.dtype] <= SWIZZLE_CHUNK and b.storage_shape[-1] % vec == 0 for b in rows):
                return vec
        return 1

    def buffered_leaves(self, v: int) -> set[int] | None:
        """The buffered values that value v is computed from inline (v itself where buffered), or
        None where that takes anything but buffered values and elementwise ops."""
        if v < self.plan.n_in:
            return None
        i = self.plan.node_of[v]
        if self.plan.kind[i] == "acc":
            return None
        if self.plan.buffered[i]:
            return {v}
        if self.plan.kind[i] != "ew":
            return None
        leaves: set[int] = set()
        for a in self.g.nodes[i].inputs:
            sub = self.buffered_leaves(a)
            if sub is None:
                return None
            leaves |= sub
        return leaves

    def chunk_reader(self, node: Node, element, oidx: list[Index], leaves: set[int] | None):
        """elements(j, n) for lane_partial: element(oidx, j + k, memo) for k < n, the buffers their
        value is computed from (`leaves`) read n elements at a time (one vector load each, ahead of the
        elementwise chain, which finds them in the memo)."""
        em = self.em
        shape = self.plan.vtype(node.inputs[0]).shape

        def at(j: Index) -> list[Index]:
            return list(oidx[:-1]) + [j]

        def elements(j: Index, n: int) -> list[str]:
            if n == 1:
                return [element(oidx, j, {})]
            memo: dict = {}
            js = [j] + [em.add(j, k) for k in range(1, n)]
            for v in leaves:
                leaf_shape = self.plan.vtype(v).shape
                if leaf_shape[-1] == 1:
                    continue
                values = self.load_vector(self.buffers[self.plan.node_of[v]], broadcast_index(at(j), leaf_shape, shape),
                                          n, "l")
                for jk, value in zip(js, values):
                    memo[(v, tuple(broadcast_index(at(jk), leaf_shape, shape)), False)] = value
            return [element(oidx, jk, memo) for jk in js]
        return elements

    def warp_allreduce(self, value: str, combine, lanes: int = 32) -> str:
        """value combined over each aligned group of `lanes` lanes (the whole warp by default)."""
        em = self.em
        for offset in (16, 8, 4, 2, 1)[5 - (lanes.bit_length() - 1):]:
            other = em.fresh("sh")
            em.emit(f"{other}, {em.fresh('ok')} = gpu.shuffle xor {value}, {em.i32(offset)}, {em.i32(32)} : {em.ctype}")
            value = combine(value, other)
        return value

    def split_row_reduction(self, target, node: Node, split: int, finish) -> None:
        """`split` warps per row of reduction `node`: each reduces a strided share of the row, lane 0
        of each writes its warp's result to the shared scratch, and after a barrier one thread per row
        combines them."""
        em = self.em
        out_shape, length, element, combine, identity = self.reduction_parts(node)
        rows = numel(out_shape)
        scratch = self.scratch
        if scratch.name in self.scratch_reads:
            self.barrier()  # the previous split reduction's combine still reads the scratch
        row, share = em.div(self.warp, split), em.rem(self.warp, split)
        with em.region(f"scf.if {em.cmp_lt(row, rows)} {{"):
            oidx = em.unflatten(row, out_shape)
            first = em.add(self.lane, em.mul(share, 32))
            total = self.row_partial(node, element, oidx, first, length, 32 * split, combine, identity)
            total = self.warp_allreduce(total, combine)
            with em.region(f"scf.if {self.lane_zero} {{"):
                em.emit(f"memref.store {total}, {scratch.name}[{em.idx(self.warp)}] : {scratch.type}")
        self.combine_warp_totals(rows, split, combine, lambda r, total: finish(em.unflatten(r, out_shape), total, {}))
        if target[0] == "buf":
            self.dirty.add(self.buffers[target[1]].name)


def combine_tree(values: list[str], combine) -> str:
    """The values combined pairwise (independent operations, not a chain)."""
    while len(values) > 1:
        values = [combine(values[k], values[k + 1]) if k + 1 < len(values) else values[k]
                  for k in range(0, len(values), 2)]
    return values[0]
