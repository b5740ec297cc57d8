"""Row kernels (plan.RowLayout): every value in registers, no tile in shared memory.

Each thread loads its chunks (`width` consecutive elements, 16 bytes where alignment allows) of every
input tile at once (one memory latency), then computes node after node on its chunks. A for-loop is
unrolled: each iteration's tiles loaded, its values computed, its accumulators updated in registers
(a combine over split partials needs no barrier at all). A reduction
along the rows costs one barrier: a warp's 32 chunks of a slot lie in one row, so the lanes combine
their partial results with shuffles, lane 0 stores the warp's total to the node's scratch, and after
the barrier every thread adds up the totals of its rows itself (no thread-0 step, no second barrier).
Barriers are taken lazily, when a value is first needed: reductions whose inputs are ready by then
(independent ones) share one.
"""

from __future__ import annotations

import math

from .emit_reduction import combine_tree
from .emitter import Index
from .plan import CopyGeometry, vector_width


class RowEmitter:
    """A row kernel's body. `self.rowvals[v]`: per slot, value v's elements (a list) for a tile
    value, or one name for a row value; a reduction waiting for its barrier is in `self.pending`."""

    def emit_register_rows(self, early: list[int] = ()) -> None:
        """The kernel's body. `early`: iterators of constant inputs (blockgen.early_copies) whose
        chunks are loaded before the grid wait; with any, that wait comes here, after their loads."""
        em, plan, layout = self.em, self.plan, self.plan.rows
        self.rowvals: dict[int, list] = {}
        self.pending: list[int] = []
        self.reciprocals = {}  # straight-line code: a divisor's reciprocal serves every later division
        if layout.threads < plan.threads:  # a launch of more threads (fuse_split_k): the rest idle
            with em.region(f"scf.if {em.cmp_lt(self.tid, layout.threads)} {{"):
                self.emit_row_body(early)
        else:
            self.emit_row_body(early)

    def emit_row_body(self, early: list[int]) -> None:
        em, plan, layout = self.em, self.plan, self.plan.rows
        chunks = [em.add(self.tid, s * layout.threads) for s in range(layout.slots)]
        self.row_where = []  # per slot: the index of its chunk's first element in the tile
        for c in chunks:
            where = em.unflatten(c, layout.chunk_shape)
            where[-1] = em.mul(where[-1], layout.width)
            self.row_where.append(where)
        self.early_loads = dict(zip(early, self.row_issue_loads(early)))
        if early:
            self.grid_dependency_wait()
        self.row_phase([i for i in range(len(self.g.nodes)) if plan.phase[i] == "pre"])
        if plan.loop > 1:
            # the loop unrolled: every iteration's loads can be in flight at once
            self.acc_state: dict[int, list] = {}  # per accumulator, per slot: its running value(s)
            self.acc_terms: dict[int, list] = {}  # per accum_rescaled_sum, per slot: each iteration's (xs, maxes)
            loop_nodes = [i for i in range(len(self.g.nodes)) if plan.phase[i] == "loop"]
            tiles = [i for i in loop_nodes if plan.kind[i] == "iter"]
            # every iteration's loads issued before any iteration's arithmetic: in program order the
            # loads of step k + 1 would wait behind step k's use of its own (run 26: a 16-step
            # combine took 12 us, a memory latency per step); the last step's first (row_issue_loads)
            issued = {}
            for it in reversed(range(plan.loop)):
                self.it = it
                issued[it] = self.row_issue_loads(tiles)
            for it in range(plan.loop):
                self.row_unpack(issued[it])
                self.row_phase([i for i in loop_nodes if plan.kind[i] != "iter"], fresh=True)
            self.it = 0
            for i in self.acc_terms:
                self.acc_state[i] = self.rescaled_totals(i)
            for i, totals in self.acc_state.items():
                self.rowvals[plan.value(i)] = [[self.acc_final(i, t) for t in slot] if isinstance(slot, list)
                                               else self.acc_final(i, slot) for slot in totals]
            self.row_phase([i for i in range(len(self.g.nodes)) if plan.phase[i] == "post"])

    def row_phase(self, nodes: list[int], fresh: bool = False) -> None:
        """The nodes of one phase (or one loop iteration, `fresh`: its values computed anew): their
        input tiles loaded first, then each node in order, reductions finished lazily."""
        plan = self.plan
        if fresh:
            for i in nodes:
                self.rowvals.pop(plan.value(i), None)
        self.row_load_inputs([i for i in nodes if plan.kind[i] == "iter"])
        reductions = [i for i in nodes if plan.kind[i] in ("reduce", "acc_reduce1")]
        for i in nodes:
            node, kind = self.g.nodes[i], plan.kind[i]
            if kind == "iter" or plan.value(i) in self.rowvals or plan.value(i) in self.pending:
                continue
            if any(v in self.pending for v in node.inputs):
                # later reductions whose input is ready share the barrier
                for j in reductions:
                    ready = self.g.nodes[j].inputs[0] in self.rowvals
                    done = plan.value(j) in self.pending or plan.value(j) in self.rowvals
                    if j > i and ready and not done:
                        self.row_reduce_partials(j)
                self.finish_row_reductions()
            if kind == "saver":
                self.row_save(i, node.inputs[0])
            elif kind in ("reduce", "acc_reduce1"):
                self.row_reduce_partials(i)
            elif kind == "acc":
                self.row_accumulate(i)
            else:
                self.row_elementwise(i)

    def row_accumulate(self, i: int) -> None:
        """One iteration's update of an elementwise accumulator, in registers (the first iteration's
        value starts it); accum_rescaled_sum keeps the iteration's terms for rescaled_totals."""
        em, node = self.em, self.g.nodes[i]
        layout, dtype = self.plan.rows, node.types[0].dtype
        per_slot = 1 if node.types[0].shape == layout.row_shape else layout.width
        state = self.acc_state.get(i)
        if node.op == "accum_rescaled_sum":
            terms = self.acc_terms.setdefault(i, [[] for _ in range(layout.slots)])
        new_state = []
        for s in range(layout.slots):
            xs = [self.row_element(node.inputs[0], s, k) for k in range(per_slot)]
            if node.op == "accum_rms":
                xs = [em.round(em.fbin("mulf", x, x), dtype) for x in xs]
            old = None if state is None else ([state[s]] if per_slot == 1 else state[s])
            if node.op == "accum_rescaled_sum":
                m_v = node.inputs[1]
                per_max = 1 if self.plan.vtype(m_v).shape == layout.row_shape else per_slot
                terms[s].append((xs, [self.row_element(m_v, s, k) for k in range(per_max)]))
                continue
            if old is None:
                new = xs
            else:
                combine = self.reduction_combine(node)
                new = [em.round(combine(prev, x), dtype) for prev, x in zip(old, xs)]
            new_state.append(new[0] if per_slot == 1 else new)
        if node.op != "accum_rescaled_sum":
            self.acc_state[i] = new_state

    def rescaled_totals(self, i: int) -> list:
        """accum_rescaled_sum i over the unrolled loop, by its definition sum_i x_i exp(m_i - max_j m_j):
        the maximum over every iteration first, then independent factors and a tree of products (a
        running max would chain the iterations: 16 splits took 5.7 us in one warp, run 64)."""
        em, node = self.em, self.g.nodes[i]
        add = self.reduction_combine(node)
        totals = []
        for terms in self.acc_terms[i]:
            per_max = len(terms[0][1])
            top = [combine_tree([ms[j] for _, ms in terms], lambda a, b: em.fbin("maximumf", a, b))
                   for j in range(per_max)]
            factors = [[em.exp(em.fbin("subf", m, top[j])) for j, m in enumerate(ms)] for _, ms in terms]
            sums = [em.round(combine_tree([em.fbin("mulf", xs[k], f[k % per_max]) for (xs, _), f in zip(terms, factors)],
                                          add), node.types[0].dtype) for k in range(len(terms[0][0]))]
            totals.append(sums[0] if node.types[0].shape == self.plan.rows.row_shape else sums)
        return totals

    def row_element(self, v: int, s: int, k: int) -> str:
        """Element k of slot s of value v (a row value is the same for every element of its slot)."""
        val = self.rowvals[v][s]
        return val if isinstance(val, str) else val[k]

    def row_load_inputs(self, iterators: list[int]) -> None:
        """Every chunk of these input tiles (of iteration self.it): all loads issued (but those issued
        before the grid wait), then unpacked."""
        later = [i for i in iterators if i not in self.early_loads]
        issued = dict(zip(later, self.row_issue_loads(later)))
        self.row_unpack([self.early_loads.get(i) or issued[i] for i in iterators])

    def row_issue_loads(self, iterators: list[int]) -> list:
        """The loads of this thread's chunks of these tiles (of iteration self.it), issued; a tile of
        rows [..., 1] gives each slot its row's one element. The loads are strong and the tile used
        first is loaded last: ptxas keeps strong loads in order but sinks a run of them past the first
        use of an earlier one's data (ntrans: H's and alpha's loads waited for X's reduction, a second
        memory round trip, benchmarks/NOTES.md session 39); loaded in that order, none can move."""
        plan, layout = self.plan, self.plan.rows
        issued = {}
        for i in sorted(iterators, key=self.first_use, reverse=True):
            node = self.g.nodes[i]
            dtype, whole = node.types[0].dtype, plan.vtype(node.inputs[0])
            if node.types[0].shape == layout.row_shape:
                geo = CopyGeometry(i, node.inputs[0], layout.row_shape, dtype, whole, 1)
                issued[i] = (geo, True, [self.copy_load(geo, where[:-1] + [0], strong=True)
                                         for where in self.row_where])
            else:
                geo = CopyGeometry(i, node.inputs[0], layout.shape, dtype, whole, layout.width)
                issued[i] = (geo, False, [self.copy_load(geo, where, strong=True) for where in self.row_where])
        return [issued[i] for i in iterators]

    def first_use(self, i: int) -> int:
        """The first node that reads node i's value."""
        v = self.plan.value(i)
        return next((j for j, node in enumerate(self.g.nodes) if v in node.inputs), len(self.g.nodes))

    def row_unpack(self, issued: list) -> None:
        """Issued loads as the values of their tiles, per slot (a row tile: one value a slot)."""
        em = self.em
        for geo, row, chunks in issued:
            v = self.plan.value(geo.i)
            if row:
                self.rowvals[v] = [em.extend(c, geo.dtype) for c in chunks]
            elif geo.width == 1:
                self.rowvals[v] = [[em.extend(c, geo.dtype)] for c in chunks]
            else:
                self.rowvals[v] = [
                    [em.extend(em.op(f"vector.extract {c}[{k}] : {geo.dtype} from {geo.vec}", "l"), geo.dtype)
                     for k in range(geo.width)] for c in chunks]

    def row_elementwise(self, i: int) -> None:
        """An elementwise node (or a one-iteration accumulator without reduce_dim) on every element
        this thread holds: once per slot for a row value."""
        em, node = self.em, self.g.nodes[i]
        layout, dtype = self.plan.rows, node.types[0].dtype
        per_slot = 1 if node.types[0].shape == layout.row_shape else layout.width

        def at(k: int, s: int) -> str:
            args = [self.row_element(v, s, k) for v in node.inputs]
            if self.plan.kind[i] == "acc_id":
                return em.round(self.acc_identity(node, args), dtype)
            if node.op == "thread_graph":
                return self.thread_graph(node.body, args)
            return em.round(self.elementwise(node, args), dtype)

        values = [[at(k, s) for k in range(per_slot)] for s in range(layout.slots)]
        self.rowvals[self.plan.value(i)] = [vals[0] if per_slot == 1 else vals for vals in values]

    def row_reduce_partials(self, i: int) -> None:
        """This warp's total of each row's chunks into the node's scratch (finished after a barrier):
        a thread combines its slots of one row first (RowLayout.row_slots: ntrans's four, one warp
        reduction where it took four)."""
        em, node = self.em, self.g.nodes[i]
        layout, scratch = self.plan.rows, self.row_scratch[i]
        combine = self.reduction_combine(node)
        squares = node.op == "accum_rms"
        group = layout.row_slots
        for j in range(layout.slots // group):
            xs = [self.row_element(node.inputs[0], s, k)
                  for s in range(j * group, (j + 1) * group) for k in range(layout.width)]
            if squares:
                xs = [em.round(em.fbin("mulf", x, x), node.types[0].dtype) for x in xs]
            total = self.warp_allreduce(combine_tree(xs, combine), combine)
            with em.region(f"scf.if {self.lane_zero} {{"):
                em.emit(f"memref.store {total}, {scratch.name}[{em.idx(self.row_warp_total(j))}] : {scratch.type}")
        self.pending.append(self.plan.value(i))

    def row_warp_total(self, j: int) -> Index:
        """Where this warp's total of its slot group j (row_slots slots of one row) goes: among the
        tile's runs of 32 * row_slots chunks."""
        return self.em.add(self.warp, j * self.plan.warps)

    def finish_row_reductions(self) -> None:
        """One barrier, then every pending reduction's row totals in every thread."""
        em, layout = self.em, self.plan.rows
        self.barrier()
        per_row, group = layout.warp_totals_per_row, layout.row_slots
        for v in self.pending:
            i = self.plan.node_of[v]
            node, scratch = self.g.nodes[i], self.row_scratch[i]
            combine = self.reduction_combine(node)
            totals = []
            for j in range(layout.slots // group):
                first = em.mul(em.div(self.row_warp_total(j), per_row), per_row)
                width = vector_width(scratch.dtype, per_row)
                parts = []
                for q in range(0, per_row, width):
                    where = [em.add(first, q)]
                    parts += ([self.load(scratch, where)] if width == 1 else
                              self.load_vector(scratch, where, width, "rs"))
                total = em.round(combine_tree(parts, combine), node.types[0].dtype)
                totals += [self.finish_total(node, total, layout.shape[-1])] * group
            self.rowvals[v] = totals
        self.pending = []

    def row_save(self, i: int, v: int) -> None:
        """A tile value stored chunk by chunk (vectors as wide as the output allows); a row value by
        the thread holding the row's first chunk."""
        em, layout = self.em, self.plan.rows
        out = self.g.nodes[i].types[0]
        if self.plan.vtype(v).shape == layout.row_shape:
            for s, where in enumerate(self.row_where):
                x = self.row_element(v, s, 0)
                index = where[:-1] + [0]
                if where[-1] == 0:
                    self.store_global(i, index, [x])
                    continue
                with em.region(f"scf.if {em.cmp_eq(where[-1], 0)} {{"):
                    self.store_global(i, index, [x])
            return
        piece = math.gcd(layout.width, vector_width(out.dtype, layout.shape[-1], out.shape[-1]))
        for s, where in enumerate(self.row_where):
            for k in range(0, layout.width, piece):
                xs = [self.row_element(v, s, k + j) for j in range(piece)]
                self.store_global(i, where[:-1] + [em.add(where[-1], k)], xs)
