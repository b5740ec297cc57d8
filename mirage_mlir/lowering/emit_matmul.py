"""Matmuls.

- on CUDA cores (SIMT): each thread owns a TM x TN micro-tile, runs the K loop with f32
  accumulators in registers and applies the stage's elementwise chain as an epilogue;
- on tensor cores: each warp owns wm x wn mma.sync m16n8k16 tiles, operand fragments loaded with
  ldmatrix; f16 through nvgpu.mma.sync, bf16 through nvvm.mma.sync (MLIR 22's nvgpu op cannot
  type bf16);
- register accumulators: an accum_sum of a tensor-core matmul whose mma accumulators the for-loop
  carries; its totals are stored to the accumulator's buffer once, after the loop (warps that split
  a tile's K meet once, in shared memory the loop's tiles no longer need);
- on warpgroup MMA (sm_90a, plan.wgmma_accumulators): a warpgroup's wgmma chain over its ring
  slots, the operands read by the tensor cores through descriptors (no ldmatrix, no fragments).
"""

from __future__ import annotations

from .emit_reduction import combine_tree
from .emitter import BYTES, Index
from .plan import (MAX_THREAD_REGISTERS, REGISTERS_PER_SM, WGMMA_LINE, RegisterAccumulator, mma_chains, numel,
                   vector_width)

WRITTEN_OUT_K_STEPS = 16  # a loop-of-one kernel's bf16 mma K loop up to this many steps is written out
# most registers a thread holds of B fragments preloaded while X's tiles are in flight (lora: 84)
PRELOAD_REGISTERS = 96


class MatmulEmitter:
    """Stages holding matmuls (each applies its elementwise chain as an epilogue) and the
    loop-carried register accumulators."""

    # -- CUDA cores ------------------------------------------------------------------------------
    def matmul_stage(self, target: tuple, root: int, matmuls: list[int], own: bool) -> None:
        """A stage holding matmuls: on tensor cores when one of them can use them, else by micro-tiles."""
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
                    rows.append(self.load_vector(self.buffers[a_i], batch + [row, k], unroll, "va"))
                else:
                    rows.append([self.value_at(a_v, batch + [row, em.add(k, u)], {}) for u in range(unroll)])
            return rows

        def b_vals(k: Index) -> list[list[str]]:
            """[u][col] values of B at rows k..k+unroll, columns n0.."""
            out = []
            for u in range(unroll):
                kk = em.add(k, u)
                if plain_b and tn > 1:
                    out.append(self.load_vector(self.buffers[b_i], batch + [kk, n0], tn, "vb"))
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

        zero = em.fconst(0.0)
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
            types = ", ".join([em.ctype] * len(init))
            header = (f"{res}:{len(init)} = scf.for {k} = {em.idx(0)} to {em.idx(k_dim)} step {em.idx(unroll)} "
                      f"iter_args({iter_args}) -> ({types}) {{")
            with em.region(header):
                new = step(k, args)
                em.emit(f"scf.yield {', '.join(new)} : {types}")
            accs = [f"{res}#{j}" for j in range(len(init))]
        dtype = node.types[0].dtype
        accs = [em.round(a, dtype) for a in accs]
        return [accs[r * tn:(r + 1) * tn] for r in range(tm)]

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
                           f"iter_args({acc} = {em.fconst(0.0)}) -> ({em.ctype}) {{"):
                x = em.fma(self.value_at(a_v, batch + [row, k], {}), self.value_at(b_v, batch + [k, col], {}), acc)
                em.emit(f"scf.yield {x} : {em.ctype}")
            total = res
        return em.round(total, node.types[0].dtype)

    # -- tensor cores ----------------------------------------------------------------------------
    def mma_stage(self, target: tuple, root: int, matmuls: list[int], own: bool) -> None:
        """Matmuls on tensor cores: each warp owns wm x wn tiles of 16 x 8 outputs; fragments are
        loaded from shared memory with ldmatrix in the m16n8k16 layouts (lane = 4 * group +
        t_in_group), the K loop carries the f32 accumulators in registers, and each thread then
        applies the stage's epilogue to the four outputs per tile it holds (a program output's two
        adjacent ones in one store: lora 1.73-1.75 -> 1.56-1.64 us, H100 run 244). Matmuls of the
        stage that cannot use tensor cores (e.g. K = 1) are computed per output element."""
        em = self.em
        shape = self.plan.vtype(root).shape
        m = shape[-2]
        mt = -(-m // 16)
        wm, wn, tiles = self.plan.stage_warp_tiles(shape)
        group, tig = self.group, self.tig
        mma = [i for i in matmuls if self.plan.mma_eligible(i)]
        rest = [i for i in matmuls if i not in mma]
        out = self.g.nodes[target[1]].types[0]
        paired = target[0] == "saver" and vector_width(out.dtype, shape[-1], out.shape[-1]) >= 2

        def body(wt, sliced=None):
            batch, m0, n0 = self.warp_tile_origin(shape, wt)
            results = {i: (sliced or {}).get(i) or self.mma_k_loop(i, batch, m0, n0, wm, wn) for i in mma}
            for a in range(wm):
                for b in range(wn):
                    for half in range(2):
                        row = em.add(em.add(m0, 16 * a + 8 * half), group)
                        guard = None
                        if m % 16 and 16 * (mt - 1) + 8 * half + 7 >= m:
                            guard = em.cmp_lt(row, m)
                        col = em.add(em.add(n0, 8 * b), em.mul(tig, 2))
                        pair_index = [batch + [row, em.add(col, c)] for c in range(2)]
                        pair = [{self.plan.value(i): results[i][a][b][half][c] for i in mma} for c in range(2)]

                        def epilogue(pair_index=pair_index, pair=pair):
                            outputs = []
                            for index, values in zip(pair_index, pair):
                                memo: dict = {}
                                for i in rest:
                                    values[self.plan.value(i)] = self.dot(i, index)
                                x = self.value_at(root, index, memo, values, compute=own)
                                if not paired:
                                    self.write(target, index, x, memo)
                                outputs.append(x)
                            if paired:  # a thread's two adjacent outputs in one store
                                self.store_global(target[1], pair_index[0], outputs)

                        if guard is None:
                            epilogue()
                        else:
                            with em.region(f"scf.if {guard} {{"):
                                epilogue()

        kslices, split = self.plan.stage_kslices(root, matmuls)
        if kslices == 1:
            self.for_each(numel(tiles), body, ids=self.warp, count=self.plan.warps)
            return
        # warp w: tile w % tiles, K slice w // tiles; slice 0's warps add up the others' and finish
        tile, k_slice = em.rem(self.warp, numel(tiles)), em.div(self.warp, numel(tiles))
        batch, m0, n0 = self.warp_tile_origin(shape, tile)
        partial = {}
        for i in split:
            partial[i] = self.mma_k_loop(i, batch, m0, n0, wm, wn, raw=True,
                                         k_range=self.k_slice_range(i, kslices, k_slice))
        totals = self.meet_k_slices([partial[i] for i in split], numel(tiles), kslices, k_slice)
        with em.region(f"scf.if {em.cmp_eq(k_slice, 0)} {{"):
            body(tile, {i: self.rounded_fragments(i, accs, wm, wn) for i, accs in zip(split, totals())})

    def preload_constant_fragments(self, weight_tiles: list[int]) -> None:
        """In a loop of one, loads into registers the B fragments of every tensor-core matmul whose B
        operand is one of `weight_tiles` (copied before the grid wait) while X's tiles, copied after
        it, are in flight: the K loops then wait on X's fragments alone (lora 1.82-1.86 -> 1.66-1.73
        us, H100 run 240). Only where a warp computes at most one warp tile of the stage (these loads
        are mma_stage's own, made earlier), each matmul in one stage, and the fragments fit
        PRELOAD_REGISTERS."""
        em, plan = self.em, self.plan
        budget = min(PRELOAD_REGISTERS, (min(MAX_THREAD_REGISTERS, REGISTERS_PER_SM // plan.threads) - 1) // 2)
        stages = plan.matmul_stages("pre")
        uses = [i for _, matmuls in stages for i in matmuls]
        loads = []  # (matmul, buffer, batch, n0, wn, k_first, steps)
        for root, matmuls in stages:
            shape = plan.vtype(root).shape
            _, wn, tiles = plan.stage_warp_tiles(shape)
            kslices, split = plan.stage_kslices(root, matmuls)
            if numel(tiles) * kslices > plan.warps:
                continue  # a warp walks several tiles
            # the warps past the tiles (mma_stage idles them) load a tile's fragments they never use
            batch, _, n0 = self.warp_tile_origin(shape, self.warp if numel(tiles) == plan.warps
                                                 else em.rem(self.warp, numel(tiles)))
            for i in matmuls:
                a_v, b_v = self.g.nodes[i].inputs
                if not plan.mma_eligible(i) or plan.node_of[b_v] not in weight_tiles or uses.count(i) > 1:
                    continue
                k_first, k_len = (self.k_slice_range(i, kslices, em.div(self.warp, numel(tiles))) if i in split
                                  else (0, plan.vtype(a_v).shape[-1]))
                loads.append((i, self.buffers[plan.node_of[b_v]], batch, n0, wn, k_first, k_len // 16))
        if not loads or sum(2 * wn * steps for *_, wn, _, steps in loads) > budget:
            return
        for i, buf, batch, n0, wn, k_first, steps in loads:
            self.preloaded_fragments[i] = [self.b_fragments(buf, batch, em.add(k_first, 16 * s), n0, wn)
                                           for s in range(steps)]

    def warp_tile_origin(self, shape: tuple[int, ...], wt: Index) -> tuple[list[Index], Index, Index]:
        """(batch index, first row, first column) of warp tile `wt` of a tensor-core stage of `shape`."""
        em = self.em
        wm, wn, tiles = self.plan.stage_warp_tiles(shape)
        where = em.unflatten(wt, tiles)
        return where[:-2], em.mul(where[-2], 16 * wm), em.mul(where[-1], 8 * wn)

    def k_slice_range(self, i: int, kslices: int, k_slice: Index) -> tuple[Index, int]:
        """(first K, length) of matmul i's K slice `k_slice` of `kslices`."""
        share = self.plan.vtype(self.g.nodes[i].inputs[0]).shape[-1] // kslices
        return self.em.mul(k_slice, share), share

    def meet_k_slices(self, partials: list[list[str]], n_tiles: int, kslices: int, k_slice: Index):
        """Each warp of K slice 1.. stores its partial mma accumulators (per matmul, vector<2x2xf32>
        each) in the plan's `k_slices` buffer; after a barrier, a function that (in slice 0's warps)
        returns the totals: its own accumulators plus the other slices' of the same tile."""
        em, buf = self.em, self.k_slices
        scalars = [em.op(f"vector.extract {acc}[{half}, {c}] : f32 from vector<2x2xf32>", "f")
                   for accs in partials for acc in accs for half in range(2) for c in range(2)]
        if buf.name in self.scratch_reads:
            self.barrier()  # an earlier stage's slice 0 still reads the buffer
        with em.region(f"scf.if {em.cmp_lt(0, k_slice)} {{"):
            for r, x in enumerate(scalars):
                em.emit(f"memref.store {x}, {buf.name}[{em.idx(self.warp)}, {em.idx(r)}, {em.idx(self.lane)}] : {buf.type}")
        self.barrier()
        self.scratch_reads.add(buf.name)

        def totals() -> list[list[str]]:
            out, r = [], 0
            for accs in partials:
                sums = []
                for acc in accs:
                    values = []
                    for j in range(4):
                        parts = [scalars[r]] + [
                            em.op(f"memref.load {buf.name}[{em.idx(em.add(self.warp, q * n_tiles))}, {em.idx(r)}, "
                                  f"{em.idx(self.lane)}] : {buf.type}", "l") for q in range(1, kslices)]
                        values.append(combine_tree(parts, lambda a, b: em.fbin("addf", a, b)))
                        r += 1
                    sums.append(em.op(f"vector.from_elements {', '.join(values)} : vector<2x2xf32>", "mma"))
                out.append(sums)
            return out

        return totals

    def mma_k_loop(self, i: int, batch, m0, n0, wm: int, wn: int, init: list[str] | None = None,
                   raw: bool = False, k_range: tuple[Index, int] | None = None, columns: int = 0,
                   column_sums: bool = False):
        """[a][b][half][c] f32 results (rounded to the matmul's type) of matmul node i's tiles;
        `k_range` (first, length): a slice of K only (raw partial sums); `columns`: N, where tiles
        past it (padding) read its last 8 columns instead; `column_sums` (A a constant tile,
        plan.constant_operands; raw only): the wn / 2 accumulators of column_sum_mma instead."""
        em = self.em
        node = self.g.nodes[i]
        a_v, b_v = node.inputs
        abuf, bbuf = self.buffers[self.plan.operand_node(a_v)], self.buffers[self.plan.node_of[b_v]]
        m, k_dim = self.plan.vtype(a_v).shape[-2:]
        k_first, k_dim = k_range or (0, k_dim)
        dtype = abuf.dtype
        computed_a = self.plan.node_of[a_v] in self.plan.fragment_operands
        constant = self.plan.constant_operands[self.plan.node_of[a_v]] if column_sums else None

        preloaded = self.preloaded_fragments.get(i)

        def step(k0: Index, accs: list[str], s: int | None) -> list[str]:
            af = [] if constant is not None else [self.ldmatrix_a(abuf, batch, em.add(m0, 16 * a), k0, m)
                                                  for a in range(wm)]
            if computed_a:
                af = [self.computed_fragment(a_v, frag, batch, em.add(m0, 16 * a), k0) for a, frag in enumerate(af)]
            bf = preloaded[s] if preloaded else self.b_fragments(bbuf, batch, k0, n0, wn, columns)
            if constant is not None:
                return [self.column_sum_mma(bf[b], bf[b + 1], constant, accs[b // 2], dtype) for b in range(0, wn, 2)]
            out = []
            for a in range(wm):
                for b in range(wn):
                    out.append(self.mma_sync(af[a], bf[b], accs[a * wn + b], dtype))
            return out

        zero = em.vconst_zero("vector<2x2xf32>")
        if init is None:
            init = [zero] * (wm * wn)
        # K step s goes to chain s % chains; chain 0 starts from init, the others from zero
        chains = mma_chains(k_dim // 16, len(init), self.plan.loop == 1)
        size = len(init)

        def steps(k0: Index, accs: list[str], s: int | None = None) -> list[str]:
            return [a for c in range(chains)
                    for a in step(em.add(k0, 16 * c), accs[c * size:(c + 1) * size], None if s is None else s + c)]

        accs = init + [zero] * (size * (chains - 1))
        if k_dim == 16 * chains or preloaded or \
                (dtype == "bf16" and self.plan.loop == 1 and k_dim <= 16 * WRITTEN_OUT_K_STEPS):
            # a loop of one waits on this chain alone. ptxas unrolls an f16 chain of this length itself
            # (lora: 42 HMMA) but keeps a bf16 one, its operands packed in i32, a loop (14 HMMA: 2.21 us
            # against f16's 1.94-1.98, H200 run 147); written out, bf16 ran 2.02-2.04, and f16 written
            # out ran slower than ptxas's own unrolling (2.05-2.07, run 149). Preloaded B fragments
            # (preload_constant_fragments) are one value per K step: written out
            for step_k in range(0, k_dim, 16 * chains):
                accs = steps(em.add(k_first, step_k), accs, step_k // 16)
        else:
            k, res = em.fresh("k"), em.fresh("mm")
            args = [em.fresh("s") for _ in accs]
            iter_args = ", ".join(f"{x} = {z}" for x, z in zip(args, accs))
            types = ", ".join(["vector<2x2xf32>"] * len(accs))
            k_stop = em.add(k_first, k_dim)
            with em.region(f"{res}:{len(accs)} = scf.for {k} = {em.idx(k_first)} to {em.idx(k_stop)} "
                           f"step {em.idx(16 * chains)} iter_args({iter_args}) -> ({types}) {{"):
                em.emit(f"scf.yield {', '.join(steps(k, args))} : {types}")
            accs = [f"{res}#{j}" for j in range(len(accs))]
        accs = [combine_tree(accs[j::size], lambda a, b: em.op(f"arith.addf {a}, {b} : vector<2x2xf32>", "mma"))
                for j in range(size)]
        return accs if raw else self.rounded_fragments(i, accs, wm, wn)

    def column_sum_mma(self, left: str, right: str, constant: float, acc: str, dtype: str) -> str:
        """acc + W^T c for the 16 columns whose B fragments (K 16 x 8 columns each) are `left` and
        `right`: a product A W whose A rows are all the constant c has every row c times W's column
        sums, so one m16n8k16 tile whose A is W^T and whose B is all c sums 16 columns (D[col][n] =
        c sum_k W[k][col] for each n), half the tensor work of c's rows times W's two tiles. W^T's
        A fragment is the two B fragments side by side: A row g's K pairs 2t.. and 2t + 8.. are column
        g's in `left`, row g + 8's in `right`."""
        em = self.em
        ftype = f"vector<2x2x{dtype}>"
        halves = [[em.op(f"vector.extract {frag}[{q}, {h}] : {dtype} from {ftype}", "h") for h in range(2)]
                  for q in range(2) for frag in (left, right)]
        wt = em.op(f"vector.from_elements {', '.join(x for pair in halves for x in pair)} : vector<4x2x{dtype}>", "fa")
        c = em.op(f"arith.constant dense<{constant!r}> : {ftype}", "splat")
        return self.mma_sync(wt, c, acc, dtype)

    def column_sum_tiles(self, info: RegisterAccumulator, sums: list[str]) -> list[str]:
        """The warp tiles' accumulators (tile_count, every row the same) from the column sums of
        column_sum_mma (count): tile b's columns 2t and 2t + 1 are in lanes 4 (2t) and 4 (2t + 1),
        row half b % 2 of sums[b // 2] (lane 4 g + t holds columns g and g + 8 of its 16)."""
        em = self.em
        sources = [em.op(f"arith.index_cast {em.idx(em.add(em.mul(self.tig, 8), 4 * c))} : index to i32", "ln")
                   for c in range(2)]
        tiles = []
        for k in range(info.per_warp):
            columns = []
            for b in range(info.wn):
                acc = sums[k * info.wn // 2 + b // 2]
                x = em.op(f"vector.extract {acc}[{b % 2}, 0] : f32 from vector<2x2xf32>", "f")
                pair = []
                for lane in sources:
                    pair.append(em.fresh("cs"))
                    em.emit(f"{pair[-1]}, {em.fresh('ok')} = gpu.shuffle idx {x}, {lane}, {em.i32(32)} : f32")
                columns.append(em.op(f"vector.from_elements {', '.join(pair + pair)} : vector<2x2xf32>", "mma"))
            tiles += columns * info.wm
        return tiles

    def rounded_fragments(self, i: int, accs: list[str], wm: int, wn: int) -> list:
        """[a][b][half][c]: the mma accumulators of matmul i's wm x wn tiles, rounded to its type."""
        em, dtype = self.em, self.g.nodes[i].types[0].dtype
        return [[[[em.round(em.op(f"vector.extract {accs[a * wn + b]}[{half}, {c}] : f32 from vector<2x2xf32>", "f"),
                            dtype) for c in range(2)] for half in range(2)] for b in range(wn)] for a in range(wm)]

    def computed_fragment(self, v: int, frag: str, batch: list[Index], row0: Index, k0: Index) -> str:
        """The A fragment of value v (plan.fragment_operands: a chain of ops over the tile `frag` was
        loaded from, its other operands read at each element's row and column) at rows row0.., K
        columns k0..: each of the thread's eight elements (register q holds row group + 8 (q % 2),
        columns 8 (q // 2) + 2 t + h; rows past M read row M - 1, as ldmatrix_a loads them) computed
        as a stage would, rounded to v's type."""
        em = self.em
        source = self.plan.value(self.plan.fragment_operands[self.plan.node_of[v]])
        dtype = self.plan.vtype(v).dtype
        m = self.plan.vtype(v).shape[-2]
        ftype = f"vector<4x2x{dtype}>"
        elements = []
        for q in range(4):
            for h in range(2):
                x = em.op(f"vector.extract {frag}[{q}, {h}] : {dtype} from {ftype}", "h")
                row = em.add(row0, em.add(self.group, 8 * (q % 2)))
                if m % 16:
                    row = em.op(f"arith.minui {em.idx(row)}, {em.idx(m - 1)} : index", "i")
                index = batch + [row, em.add(k0, em.add(em.mul(self.tig, 2), 8 * (q // 2) + h))]
                value = self.value_at(v, index, {}, {source: em.extend(x, dtype)})
                elements.append(em.truncate(value, dtype))
        return em.op(f"vector.from_elements {', '.join(elements)} : {ftype}", "fa")

    # ldmatrix: lane l gives the address of row l % 8 of 8x8 matrix l // 8 (16 bytes each).
    def ldmatrix_a(self, buf, batch: list[Index], row0: Index, k0: Index, m: int) -> str:
        """The m16n8k16 A fragment of rows row0.. and K columns k0.. of `buf` (x4: matrices (rows 0-7,
        k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15) give registers a0..a3 in
        order). Rows past M read row M-1 (clamped): they only feed output rows past M, which are never
        written."""
        em = self.em
        row = em.add(row0, em.add(self.lrow, em.mul(em.rem(self.lmat, 2), 8)))
        if m % 16:
            row = em.op(f"arith.minui {em.idx(row)}, {em.idx(m - 1)} : index", "i")
        col = em.add(k0, em.mul(em.div(self.lmat, 2), 8))
        return em.op(f"nvgpu.ldmatrix {buf.at(em, batch + [row, col])} "
                     f"{{numTiles = 4 : i32, transpose = false}} : {buf.type} -> vector<4x2x{buf.dtype}>", "fa")

    def b_fragments(self, buf, batch: list[Index], k0: Index, n0: Index, wn: int, columns: int = 0) -> list[str]:
        """The B fragments of K rows k0.. of the wn tiles of 8 columns from n0 on: two at a time (one x4
        load instead of two x2: fewer shared-memory instructions queued beside the A loads and the
        cp.async ring), an odd last one alone."""
        em = self.em
        out = []
        for b in range(0, wn - 1, 2):
            out += self.ldmatrix_b_pair(buf, batch, k0, em.add(n0, 8 * b), columns)
        if wn % 2:
            out.append(self.ldmatrix_b(buf, batch, k0, self.clamp_column(em.add(n0, 8 * (wn - 1)), columns)))
        return out

    def ldmatrix_b(self, buf, batch: list[Index], k0: Index, col0: Index) -> str:
        """The B fragment of K rows k0.. and columns col0..col0 + 7 of `buf`, stored [k][n] (x2,
        transposed: matrices k 0-7 and k 8-15)."""
        em = self.em
        row = self.b_row(k0)
        return em.op(f"nvgpu.ldmatrix {buf.at(em, batch + [row, col0])} "
                     f"{{numTiles = 2 : i32, transpose = true}} : {buf.type} -> vector<2x2x{buf.dtype}>", "fb")

    def b_row(self, k0: Index) -> Index:
        """The K row a lane addresses in a transposed B load: row l % 8 of matrix l // 8, the even
        matrices K 0-7 and the odd ones K 8-15."""
        return self.em.add(k0, self.em.add(self.lrow, self.em.mul(self.em.rem(self.lmat, 2), 8)))

    def clamp_column(self, col: Index, columns: int) -> Index:
        """A B tile's first column, a padding tile's (past N = `columns`; 0: none) clamped to N's last 8."""
        if not columns:
            return col
        return self.em.op(f"arith.minui {self.em.idx(col)}, {self.em.idx(columns - 8)} : index", "i")

    def ldmatrix_b_pair(self, buf, batch: list[Index], k0: Index, col0: Index, columns: int = 0) -> list[str]:
        """The B fragments of columns col0.. and col0 + 8.. (x4, transposed: matrices (k 0-7, n 0-7),
        (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15)); with `columns` (N), a tile past it reads
        N's last 8 columns (each lane addresses its own row, so the two tiles clamp separately)."""
        em = self.em
        row = self.b_row(k0)
        col = self.clamp_column(em.add(col0, em.mul(em.div(self.lmat, 2), 8)), columns)
        quad = em.op(f"nvgpu.ldmatrix {buf.at(em, batch + [row, col])} "
                     f"{{numTiles = 4 : i32, transpose = true}} : {buf.type} -> vector<4x2x{buf.dtype}>", "fb")
        halves = []
        for h in range(2):
            values = [em.op(f"vector.extract {quad}[{2 * h + r}, {c}] : {buf.dtype} from vector<4x2x{buf.dtype}>", "b")
                      for r in range(2) for c in range(2)]
            halves.append(em.op(f"vector.from_elements {', '.join(values)} : vector<2x2x{buf.dtype}>", "fb"))
        return halves

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

    # -- register accumulators -------------------------------------------------------------------
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
        info = self.plan.reg_accs[i]
        mm = info.mm
        reads: set[str] = set()
        for v in self.g.nodes[mm].inputs:
            reads |= self.reads_of(v)
        self.sync_for(reads)
        if info.wgmma:
            return self.wgmma_stage(i)
        size = info.count // info.per_warp
        outs = []
        for k in range(info.per_warp):
            batch, m0, n0 = self.reg_tile_origin(info, k)
            outs += self.mma_k_loop(mm, batch, m0, n0, info.wm, info.wn,
                                    init=self.reg_in[i][k * size:(k + 1) * size], raw=True,
                                    k_range=self.reg_k_range(info), columns=info.columns,
                                    column_sums=info.column_sums)
        self.reg_out[i] = outs

    def register_accumulator_flush(self, i: int, values: list[str]) -> None:
        """Writes the totals this thread holds into the accumulator's buffer (f32). Warps that shared a
        tile by K slices meet in shared memory the loop's tiles are done with (plan.slice_scratch):
        each stores its registers there, and after one barrier every thread adds up the slices of a
        kslices-th of its tile's registers and writes those totals. Where no such memory is large
        enough, the slices add theirs into the buffer in turn, a barrier apart."""
        em, info = self.em, self.plan.reg_accs[i]
        if info.column_sums:
            values = self.column_sum_tiles(info, values)
        scalars = [em.op(f"vector.extract {acc}[{half}, {c}] : f32 from vector<2x2xf32>", "f")
                   for acc in values for half in range(2) for c in range(2)]
        if info.wgmma:
            return self.wgmma_flush(i, scalars)
        if info.kslices == 1:
            return self.register_accumulator_store(i, scalars)
        scratch = self.plan.slice_scratch(i)
        k_slice = em.div(self.warp, numel(info.tiles))
        if scratch is None:
            for turn in range(info.kslices):
                if turn:
                    self.barrier()
                with em.region(f"scf.if {em.cmp_eq(k_slice, turn)} {{"):
                    self.register_accumulator_store(i, scalars, add=turn > 0)
            return
        view = em.shared_view(scratch.offset, scratch.type, self.smem, "slices")
        self.barrier()  # the ring's empty refills past the loop's end land in this memory
        for r, x in enumerate(scalars):
            em.emit(f"memref.store {x}, {view}[{em.idx(self.warp)}, {em.idx(r)}, {em.idx(self.lane)}] : {scratch.type}")
        self.barrier()
        tile = em.rem(self.warp, numel(info.tiles))
        registers = len(scalars)
        for j in range(-(-registers // info.kslices)):
            r = em.add(j * info.kslices, k_slice)

            def add_slices(r=r):
                parts = [em.op(f"memref.load {view}[{em.idx(em.add(q * numel(info.tiles), tile))}, {em.idx(r)}, "
                               f"{em.idx(self.lane)}] : {scratch.type}", "l") for q in range(info.kslices)]
                self.store_fragment_value(i, 0, r, combine_tree(parts, lambda a, b: em.fbin("addf", a, b)))

            if registers % info.kslices:
                with em.region(f"scf.if {em.cmp_lt(r, registers)} {{"):
                    add_slices()
            else:
                add_slices()
        self.dirty.add(self.buffers[i].name)

    def register_accumulator_store(self, i: int, scalars: list[str], add: bool = False) -> None:
        """Stores (or adds) this thread's register values, in register order, into the buffer."""
        size = self.plan.reg_accs[i].wm * self.plan.reg_accs[i].wn * 4
        for r, x in enumerate(scalars):
            self.store_fragment_value(i, r // size, r % size, x, add)
        self.dirty.add(self.buffers[i].name)

    def store_fragment_value(self, i: int, k: int, r: Index, x: str, add: bool = False) -> None:
        """Stores the value x of register r (static or not) of this thread's k-th warp tile of register
        accumulator i at its place in the buffer: mma tile (a, b), half and column c of the thread's
        vector<2x2xf32> with r = ((a * wn + b) * 2 + half) * 2 + c. Rows past the matmul's and the
        padding tiles' columns are none."""
        em, info, buf = self.em, self.plan.reg_accs[i], self.buffers[i]
        m = self.plan.vtype(self.plan.value(info.mm)).shape[-2]
        batch, m0, n0 = self.reg_tile_origin(info, k)
        group, tig = self.group, self.tig
        a, b = em.div(r, 4 * info.wn), em.rem(em.div(r, 4), info.wn)
        row = em.add(em.add(m0, em.add(em.mul(a, 16), em.mul(em.rem(em.div(r, 2), 2), 8))), group)
        col = em.add(em.add(n0, em.mul(b, 8)), em.add(em.mul(tig, 2), em.rem(r, 2)))
        where = f"{buf.at(em, batch + [row, col])} : {buf.type}"

        def store():
            value = em.fbin("addf", em.op(f"memref.load {where}", "l"), x) if add else x
            em.emit(f"memref.store {value}, {where}")

        guards = ([em.cmp_lt(row, m)] if m % 16 else []) + ([em.cmp_lt(col, info.columns)] if info.columns else [])
        with em.guarded(guards):
            store()

    # -- warpgroup MMA (sm_90a) ------------------------------------------------------------------
    def uniform_warpgroup(self) -> str:
        """The thread's warpgroup (128 threads), read from lane 0 by a shuffle: ptxas then knows it
        warp-uniform. Computed from the thread id alone, a branch on it is divergent to ptxas, and
        it serializes every wgmma of the kernel (C7518; H200 run 189, benchmarks/wgmma_probe.cu)."""
        em = self.em
        group = em.op(f"arith.index_cast {em.idx(em.div(self.tid, 128))} : index to i32", "wg")
        shuffled = em.fresh("wg")
        em.emit(f"{shuffled}, {em.fresh('ok')} = gpu.shuffle idx {group}, {em.i32(0)}, {em.i32(32)} : i32")
        return em.op(f"arith.index_cast {shuffled} : i32 to index", "wg")

    def wgmma_mine(self, info: RegisterAccumulator) -> str:
        """Whether this thread's warpgroup computes wgmma accumulator `info` (RegisterAccumulator)."""
        em = self.em
        return em.cmp_eq(em.rem(self.warpgroup, info.units), info.unit % (self.plan.warps // 4))

    def wgmma_everywhere(self, info: RegisterAccumulator) -> bool:
        """Whether every warpgroup computes wgmma accumulator `info` (no branch around its chain):
        wgmma_mine holds for every warpgroup where there is one unit or one warpgroup."""
        return info.units == 1 or self.plan.warps == 4

    def wgmma_stage(self, i: int) -> None:
        """One iteration's matmul of wgmma accumulator i in the warpgroups computing it (the others
        carry their registers on), with its unit's stacked constant operands in the same chain (their
        rows below X's): the accumulators' registers as vector<2x2xf32> b wn + j holding registers 4 j
        .. 4 j + 3 of weight block b's wgmma accumulator. A stacked accumulator's rows are all one
        row (the constant's product), carried as its wn registers a block, computed from the first."""
        em, info = self.em, self.plan.reg_accs[i]
        if info.stacked:
            return  # its unit's wgmma computes it
        stacked = [s for s, other in self.plan.reg_accs.items() if other.stacked and other.unit == info.unit]
        wn = info.wn
        blocks_in = [self.reg_in[i][b * wn:(b + 1) * wn] + [self.reg_in[s][b * wn] for s in stacked]
                     for b in range(info.wm)]
        accs = [i] + stacked
        carried = [r for a in accs for r in self.reg_in[a]]

        def chain(wait: bool) -> list[str]:
            blocks_out = self.wgmma_chain(info, blocks_in, wait)
            results = [r for b in range(info.wm) for r in blocks_out[b][:wn]]
            for q in range(len(stacked)):
                results += [blocks_out[b][wn + q] for b in range(info.wm) for _ in range(wn)]
            return results

        if self.wgmma_everywhere(info):
            # no branch to merge the accumulators at: they stay in flight through the iteration's
            # other stages (X's row sums) until the wait before its closing barrier (emit_loop)
            results = chain(wait=False)
            self.wgmma_in_flight = True
        else:
            types = ", ".join(["vector<2x2xf32>"] * len(carried))
            res = em.fresh("wgacc")
            with em.region(f"{res}:{len(carried)} = scf.if {self.wgmma_mine(info)} -> ({types}) {{", "} else {"):
                em.emit(f"scf.yield {', '.join(chain(wait=True))} : {types}")
            with em.region("", "}"):
                em.emit(f"scf.yield {', '.join(carried)} : {types}")
            results = [f"{res}#{r}" for r in range(len(carried))]
        position = 0
        for a in accs:
            self.reg_out[a] = results[position:position + len(self.reg_in[a])]
            position += len(self.reg_in[a])

    def wgmma_wait(self) -> None:
        """Waits for the chains left in flight (wgmma_stage): before anything reads their registers
        or the ring refills the slots they read."""
        if self.wgmma_in_flight:
            self.em.emit("nvvm.wgmma.wait.group.sync.aligned 0")
            self.wgmma_in_flight = False

    def wgmma_chain(self, info: RegisterAccumulator, blocks: list[list[str]], wait: bool = True) -> list[list[str]]:
        """The warpgroup's K slice of this iteration's slots as wgmma m64nNk16 chains, one a weight
        block (`blocks`: its accumulator as vector<2x2xf32> of 8 of X's rows each), in the swap form
        out^T = W^T X^T: A the weight block [K, 64] (MN-major: a 16-K step 16 lines of 128 bytes on;
        block b b K lines on), B X's tile [N, K] (K-major: a step 32 bytes on in each line, the next
        64 of K the next block of lines), N = 8 x the registers given a block (X's rows, and the
        constant rows stacked below them: Buffer.lines); the blocks' steps issued in turn, then
        committed and (`wait`) waited for."""
        em = self.em
        x_v, w_v = self.g.nodes[info.mm].inputs
        bx, bw = (self.buffers[self.plan.node_of[v]] for v in (x_v, w_v))
        rows = 8 * len(blocks[0])
        struct = f"!llvm.struct<({', '.join(['f32'] * (rows // 2))})>"
        chains = []
        for accs in blocks:
            d = em.op(f"llvm.mlir.undef : {struct}", "d")
            for j, acc in enumerate(accs):
                for h in range(2):
                    for c in range(2):
                        x = em.op(f"vector.extract {acc}[{h}, {c}] : f32 from vector<2x2xf32>", "f")
                        d = em.op(f"llvm.insertvalue {x}, {d}[{4 * j + 2 * h + c}] : {struct}", "d")
            chains.append(d)
        lines, k_tile = bx.lines or bx.shape[0], bx.shape[1]
        steps = k_tile // 16 // info.kslices
        first_k = em.mul(em.div(self.warpgroup, info.units), steps * 16)
        w_desc = self.wgmma_descriptor(bw, em.mul(first_k, WGMMA_LINE))
        size = BYTES[bx.dtype]
        line_values = WGMMA_LINE // size
        em.emit("nvvm.wgmma.fence.aligned")
        for step in range(steps):
            # X's K index k: in line block k / line_values (`lines` lines each), k % line_values values into its lines
            k = em.add(first_k, step * 16)
            b = self.wgmma_descriptor(bx, em.add(em.mul(em.div(k, line_values), lines * WGMMA_LINE),
                                                 em.mul(em.rem(k, line_values), size)))
            for block in range(info.wm):
                offset = (block * bw.shape[-2] + step * 16) * WGMMA_LINE
                a = em.op(f"arith.addi {w_desc}, {em.i64(offset >> 4)} : i64", "desc") if offset else w_desc
                chains[block] = em.op(
                    f"nvvm.wgmma.mma_async {a}, {b}, {chains[block]}, #nvvm.shape<m = 64, n = {rows}, k = 16>, "
                    f"D[<f32>, <one>, <wrapped>], A[<{bw.dtype}>, <one>, <col>], B[<{bx.dtype}>, <one>, <col>] "
                    f": {struct} -> {struct}", "d")
        em.emit("nvvm.wgmma.commit.group.sync.aligned")
        if wait:
            em.emit("nvvm.wgmma.wait.group.sync.aligned 0")
        out = []
        for d in chains:
            values = [em.op(f"llvm.extractvalue {d}[{r}] : {struct}", "f") for r in range(rows // 2)]
            out.append([em.op(f"vector.from_elements {', '.join(values[4 * j:4 * j + 4])} : vector<2x2xf32>", "mma")
                        for j in range(rows // 8)])
        return out

    def wgmma_descriptor(self, buf, offset: Index) -> str:
        """The shared-memory matrix descriptor of `buf`'s view `offset` bytes on, 128-byte swizzle:
        bits 0-13 the address / 16, 16-29 the leading byte offset / 16 (1: unused by a K-major
        operand, and by an MN-major one of 64 values), 32-45 the stride byte offset / 16 (1024: 8
        lines of 128 bytes), 62-63 the swizzle (1)."""
        em = self.em
        base = em.op(f"memref.extract_aligned_pointer_as_index {buf.name} : {buf.type} -> index", "p")
        address = em.op(f"arith.index_cast {em.idx(em.add(base, offset))} : index to i64", "p")
        low = em.op(f"arith.andi {address}, {em.i64(0x3FFFF)} : i64", "p")
        field = em.op(f"arith.shrui {low}, {em.i64(4)} : i64", "p")
        return em.op(f"arith.ori {field}, {em.i64(1 << 16 | (1024 >> 4) << 32 | 1 << 62)} : i64", "desc")

    def wgmma_flush(self, i: int, scalars: list[str]) -> None:
        """Stores the totals of wgmma accumulator i into its buffer: register r = 4 (b wn + j) + 2 h
        + c of a thread (warp w of its group, lane 4 g + t) is the weight column 64 b + 16 (w % 4) +
        g + 8 h of X's row 8 j + 2 t + c; K slices add theirs in turn, a barrier apart."""
        em, info, buf = self.em, self.plan.reg_accs[i], self.buffers[i]
        k_slice = em.div(self.warpgroup, info.units)
        column = em.add(em.mul(em.rem(self.warp, 4), 16), self.group)
        for turn in range(info.kslices):
            if turn:
                self.barrier()
            with em.guarded([self.wgmma_mine(info)] + ([em.cmp_eq(k_slice, turn)] if info.kslices > 1 else [])):
                for r, x in enumerate(scalars):
                    block, j, h, c = r // (4 * info.wn), (r // 4) % info.wn, (r // 2) % 2, r % 2
                    row = em.add(em.mul(self.tig, 2), 8 * j + c)
                    where = f"{buf.at(em, [row, em.add(column, 64 * block + 8 * h)])} : {buf.type}"
                    value = em.fbin("addf", em.op(f"memref.load {where}", "l"), x) if turn else x
                    em.emit(f"memref.store {value}, {where}")
        self.dirty.add(buf.name)
