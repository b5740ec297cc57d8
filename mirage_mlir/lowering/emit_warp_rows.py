"""Warp-rows kernels (plan.WarpRows): FlashAttention 2's layout, for block graphs whose matmuls are
chained through row-wise CUDA-core ops (attention's exp(Q K) and row max and sums, then P V).

Each warp owns wm tiles of 16 rows of every value, and values live in registers in the layout of an
mma.sync m16n8k16 accumulator: thread (g = lane / 4, t = lane % 4) holds, per 16-row tile a, 8-column
tile b, half h and c in {0, 1}, element (16 a + 8 h + g, 8 b + 2 t + c) of its warp's rows; a row
value [R, 1] holds the same rows' values. So a matmul's result needs no move, a row reduction is a
thread's own elements and two shuffles among the four threads of a row, and a computed A operand
(P in P V) is the accumulator layout's consecutive column pairs, packed. Only the iterator tiles use
shared memory (the cp.async ring; ldmatrix to the tensor cores): one barrier an iteration, the
ring's (ring_wait_then_refill). Accumulators are loop-carried registers, updated by the shared-memory
kernels' rules (AccumulatorEmitter.acc_step). Every op result is rounded to its type, as
mirage_mlir.evaluate does.
"""

from __future__ import annotations

from .emit_reduction import combine_tree
from .emitter import Index

Key = tuple  # (a, b, h, c) of a [R, C] value, (a, h) of a row value [R, 1]
Frag = dict  # Key -> the SSA name of that element (compute type)


class WarpRowsEmitter:
    """The whole kernel of a warp-rows plan."""

    def emit_warp_rows(self, early: list[int]) -> None:
        plan = self.plan
        self.warp_row0 = self.em.mul(self.warp, 16 * plan.warp_rows.wm)  # the first of this warp's rows
        self.ring_fill(early)
        self.copy_stage([i for i, k in enumerate(plan.kind) if k == "iter" and plan.phase[i] == "pre"])
        values: dict[int, Frag] = {}
        self.warp_rows_phase("pre", values)
        if plan.loop > 1:
            self.warp_rows_loop(values)
            self.warp_rows_phase("post", values)

    # -- where a thread's elements are -------------------------------------------------------------
    def frag_keys(self, shape: tuple[int, ...]) -> list[Key]:
        wm = self.plan.warp_rows.wm
        if shape[-1] == 1:
            return [(a, h) for a in range(wm) for h in range(2)]
        return [(a, b, h, c) for a in range(wm) for b in range(shape[-1] // 8) for h in range(2) for c in range(2)]

    def frag_index(self, shape: tuple[int, ...], key: Key) -> list[Index]:
        em = self.em
        row = em.add(em.add(self.warp_row0, 16 * key[0] + 8 * key[-2 if len(key) == 4 else 1]), self.group)
        col: Index = 0 if len(key) == 2 else em.add(8 * key[1] + key[3], em.mul(self.tig, 2))
        return [0] * (len(shape) - 2) + [row, col]

    def operand(self, v: int, key: Key, values: dict[int, Frag]) -> str:
        """Value v at a thread's element `key` (a row value broadcast along its row)."""
        if v not in values:  # an iterator tile, read from shared memory in the phase that uses it
            i = self.plan.node_of[v]
            self.sync_for({self.buffers[i].name})
            shape = self.plan.vtype(v).shape
            values[v] = {k: self.load(self.buffers[i], self.frag_index(shape, k)) for k in self.frag_keys(shape)}
        frag = values[v]
        return frag[(key[0], key[2]) if len(key) == 4 and (key[0], 0) in frag else key]

    # -- the phases ------------------------------------------------------------------------------
    def warp_rows_phase(self, phase: str, values: dict[int, Frag]) -> None:
        for i, node in enumerate(self.g.nodes):
            kind = self.plan.kind[i]
            if self.plan.phase[i] != phase or kind in ("iter", "acc"):
                continue
            if kind == "saver":
                self.warp_rows_save(i, values)
            elif kind == "matmul":
                values[self.plan.value(i)] = self.warp_rows_matmul(i, values)
            elif kind in ("reduce", "acc_reduce1"):
                values[self.plan.value(i)] = self.warp_rows_reduce(i, values)
            else:
                values[self.plan.value(i)] = self.warp_rows_elementwise(i, values)

    def warp_rows_elementwise(self, i: int, values: dict[int, Frag]) -> Frag:
        em, node = self.em, self.g.nodes[i]
        dtype = node.types[0].dtype
        keys = self.frag_keys(node.types[0].shape)  # column pairs adjacent: rounded together
        args = [[self.operand(v, key, values) for v in node.inputs] for key in keys]
        if node.op == "thread_graph" and self.plan.kind[i] != "acc_id":
            return dict(zip(keys, self.thread_graph_all(node.body, args)))
        compute = self.acc_identity if self.plan.kind[i] == "acc_id" else self.elementwise
        return dict(zip(keys, em.round_all([compute(node, a) for a in args], dtype)))

    def warp_rows_reduce(self, i: int, values: dict[int, Frag]) -> Frag:
        """A row reduction: the thread's elements of each of its rows, then the row's four threads."""
        node = self.g.nodes[i]
        length = self.plan.vtype(node.inputs[0]).shape[-1]
        combine = self.reduction_combine(node)
        out = {}
        for key, part in self.row_parts(node, values).items():
            total = self.warp_allreduce(part, combine, lanes=4)
            out[key] = self.finish_total(node, self.em.round(total, node.types[0].dtype), length)
        return out

    def row_parts(self, node, values: dict[int, Frag]) -> Frag:
        """Per row of the thread: its own elements of reduction `node`'s input combined (squared for
        an rms)."""
        em, x_v = self.em, node.inputs[0]
        length = self.plan.vtype(x_v).shape[-1]
        combine = self.reduction_combine(node)
        out = {}
        for a, h in self.frag_keys(node.types[0].shape):
            parts = [self.operand(x_v, (a, b, h, c), values) for b in range(length // 8) for c in range(2)]
            if node.op == "accum_rms":
                parts = [em.round(em.fbin("mulf", x, x), node.types[0].dtype) for x in parts]
            out[(a, h)] = combine_tree(parts, combine)
        return out

    def warp_rows_matmul(self, i: int, values: dict[int, Frag]) -> Frag:
        """A = the warp's rows (ldmatrix from an iterator tile, or packed from registers), B from its
        tile by ldmatrix; every 16 x 8 tile of the warp's rows, K fully unrolled."""
        em, node, wm = self.em, self.g.nodes[i], self.plan.warp_rows.wm
        a_v, b_v = node.inputs
        bbuf = self.buffers[self.plan.node_of[b_v]]
        a_node = self.plan.node_of[a_v]
        abuf = self.buffers[a_node] if self.plan.kind[a_node] == "iter" else None
        self.sync_for({bbuf.name} | ({abuf.name} if abuf else set()))
        k_dim, n = self.plan.vtype(a_v).shape[-1], node.types[0].shape[-1]
        dtype = bbuf.dtype
        lead = [0] * (len(bbuf.shape) - 2)
        accs = {(a, b): em.vconst_zero("vector<2x2xf32>") for a in range(wm) for b in range(n // 8)}
        rows = [em.add(self.warp_row0, 16 * a) for a in range(wm)]
        for k0 in range(0, k_dim, 16):
            if abuf is not None:
                a_frags = [self.ldmatrix_a(abuf, lead, row, k0, self.plan.vtype(a_v).shape[-2]) for row in rows]
            else:
                a_frags = [self.packed_a(values[a_v], a, k0, dtype) for a in range(wm)]
            for b in range(n // 8):
                b_frag = self.ldmatrix_b(bbuf, lead, k0, 8 * b)
                for a in range(wm):
                    accs[a, b] = self.mma_sync(a_frags[a], b_frag, accs[a, b], dtype)
        out_dtype = node.types[0].dtype
        keys = [(a, b, h, c) for (a, b) in accs for h in range(2) for c in range(2)]
        raw = [em.op(f"vector.extract {accs[k[:2]]}[{k[2]}, {k[3]}] : f32 from vector<2x2xf32>", "f") for k in keys]
        return dict(zip(keys, em.round_all(raw, out_dtype)))

    def packed_a(self, frag: Frag, a: int, k0: int, dtype: str) -> str:
        """The m16n8k16 A fragment of K columns k0.. of a register value: registers a0..a3 hold
        (row g, k 2t..2t+1), (row g + 8, same), (row g, k 8 + 2t..), (row g + 8, same), which are
        halves 0 and 1 of accumulator column tiles k0 / 8 and k0 / 8 + 1."""
        em = self.em
        b0 = k0 // 8
        elements = [em.truncate(frag[(a, b, h, c)], dtype) for b in (b0, b0 + 1) for h in range(2) for c in range(2)]
        return em.op(f"vector.from_elements {', '.join(elements)} : vector<4x2x{dtype}>", "fa")

    # -- the loop and its accumulators -------------------------------------------------------------
    def warp_rows_loop(self, values: dict[int, Frag]) -> None:
        """The for-loop carrying every accumulator's elements, and one running max per distinct max
        operand of the rescaled sums (each rescaled sum's own running max would be the same values)."""
        em, plan, g = self.em, self.plan, self.g
        accs = [i for i, k in enumerate(plan.kind) if k == "acc"]
        maxes = sorted({g.nodes[i].inputs[1] for i in accs if g.nodes[i].op == "accum_rescaled_sum"})
        slots: list[tuple] = []  # (("acc", i) or ("max", m value), key)
        init = []
        for i in accs:
            keys = self.frag_keys(g.nodes[i].types[0].shape)
            slots += [(("acc", i), k) for k in keys]
            init += [em.fconst(float("-inf") if g.nodes[i].op == "accum_max" else 0.0)] * len(keys)
        for m in maxes:
            keys = self.frag_keys(plan.vtype(m).shape)
            slots += [(("max", m), k) for k in keys]
            init += [em.fconst(float("-inf"))] * len(keys)
        carried = [em.fresh("lc") for _ in init]
        res = em.fresh("loop")
        types = ", ".join([em.ctype] * len(init))
        it = em.fresh("it")
        header = (f"{res}:{len(init)} = scf.for {it} = {em.idx(0)} to {em.idx(plan.loop)} step {em.idx(1)} "
                  f"iter_args({', '.join(f'{c} = {v}' for c, v in zip(carried, init))}) -> ({types}) {{")
        with em.region(header, "} {mirage.forloop}"):
            self.it = it
            if plan.ring:
                self.ring_wait_then_refill(it)
            self.copy_stage([geo.i for geo in plan.loop_copies()])
            inner = dict(values)  # this iteration's values stay inside the loop's region
            self.warp_rows_phase("loop", inner)
            state = dict(zip(slots, carried))
            # (m, key of m) -> (new running max, (exp(old - new), exp(m - new)))
            rescales = {(m, k): self.rescale_factors(state[("max", m), k], self.operand(m, k, inner))
                        for m in maxes for k in self.frag_keys(plan.vtype(m).shape)}

            # a reducing accumulator carries the thread's own part of each row; its four threads meet
            # once, after the loop
            row_parts = {i: self.row_parts(g.nodes[i], inner) for i in accs if g.nodes[i].attr("reduce_dim", -1) != -1}
            following = []
            for (what, key), cur in zip(slots, carried):
                if what[0] == "max":
                    following.append(rescales[what[1], key][0])
                    continue
                node = g.nodes[what[1]]
                if what[1] in row_parts:
                    following.append(em.round(self.reduction_combine(node)(cur, row_parts[what[1]][key]),
                                              node.types[0].dtype))
                    continue
                factors = None
                if node.op == "accum_rescaled_sum":
                    m = node.inputs[1]
                    factors = rescales[m, key if (("max", m), key) in state else (key[0], key[2])][1]
                following.append(self.acc_step(node, cur, self.operand(node.inputs[0], key, inner), factors))
            if plan.loop_copies():
                self.barrier()  # the next iteration's copies overwrite this one's tiles
            em.emit(f"scf.yield {', '.join(following)} : {types}")
        self.it = 0
        self.ring_drain()
        for j, (what, key) in enumerate(slots):
            if what[0] == "acc":
                node, total = g.nodes[what[1]], f"{res}#{j}"
                if node.attr("reduce_dim", -1) != -1:
                    total = self.warp_allreduce(total, self.reduction_combine(node), lanes=4)
                values.setdefault(self.plan.value(what[1]), {})[key] = self.acc_final(what[1], total)

    # -- savers ----------------------------------------------------------------------------------
    def warp_rows_save(self, i: int, values: dict[int, Frag]) -> None:
        """Column pairs as one store each; a row value by the first thread of its row."""
        em, v = self.em, self.g.nodes[i].inputs[0]
        shape = self.plan.vtype(v).shape
        if shape[-1] == 1:
            with em.region(f"scf.if {em.cmp_eq(self.tig, 0)} {{"):
                for key in self.frag_keys(shape):
                    self.store_global(i, self.frag_index(shape, key), [self.operand(v, key, values)])
            return
        for key in self.frag_keys(shape):
            if key[3] == 0:
                pair = [self.operand(v, key[:3] + (c,), values) for c in range(2)]
                self.store_global(i, self.frag_index(shape, key), pair)
