"""Accumulators: f32 buffers in shared memory, each element updated by the same thread in every
iteration (so updates need no barrier), finalised (mean/rms) when read. A loop of one iteration has
no accumulator buffer: its accumulators are functions of their input (acc_identity).
"""

from __future__ import annotations

import math

from ..mugraph import Node
from .emitter import BYTES, Index, indices
from .emit_elementwise import broadcast_index
from .plan import SWIZZLE_CHUNK, numel


class AccumulatorEmitter:
    """Accumulator buffers: initial values, updates, and the value an accumulator has when read."""

    def acc_count(self, node: Node, iterations: int) -> int:
        dim = node.attr("reduce_dim", -1)
        return iterations * (self.plan.vtype(node.inputs[0]).shape[dim] if dim != -1 else 1)

    def acc_identity(self, node: Node, args: list[str]) -> str:
        """A loop-of-one accumulator without reduce_dim: a function of its input element."""
        em, x = self.em, args[0]
        if node.op == "accum_rms":
            sq = em.round(em.fbin("mulf", x, x), node.types[0].dtype)
            return em.fun("math.sqrt", em.fbin("addf", sq, em.fconst(node.attr("eps", 0.0))))
        return x  # sum, mean (count 1), max, rescaled_sum (x * exp(m - m))

    def acc_final(self, i: int, total: str) -> str:
        """The accumulator's value from its running total."""
        node = self.g.nodes[i]
        return self.finish_total(node, total, self.acc_count(node, self.plan.loop))

    def finish_total(self, node: Node, total: str, count: int) -> str:
        """The value of a sum of `count` terms for op `node`: means and rms divide by the count, rms adds
        eps and takes the square root (each step rounded to the result type)."""
        em, op, dtype = self.em, node.op, node.types[0].dtype
        if op in ("reduce_mean", "accum_mean", "accum_rms"):
            total = em.round(em.fbin("divf", total, em.fconst(float(count))), dtype)
        if op == "accum_rms":
            total = em.round(em.fbin("addf", total, em.fconst(node.attr("eps", 0.0))), dtype)
            total = em.round(em.fun("math.sqrt", total), dtype)
        return total

    def acc_step(self, node: Node, cur: str, x: str, factors: tuple[str, str] | None = None) -> str:
        """The accumulator's next value (rounded to its type) from its running value and this
        iteration's input x; `factors` (exp(old max - new max), exp(m - new max): rescale_factors)
        for a rescaled sum. A reducing accumulator's x is already its row's total."""
        em, dtype = self.em, node.types[0].dtype
        if node.op == "accum_rms" and node.attr("reduce_dim", -1) == -1:
            x = em.round(em.fbin("mulf", x, x), dtype)
        if node.op == "accum_max":
            new = em.fbin("maximumf", cur, x)
        elif node.op == "accum_rescaled_sum":
            new = em.fbin("addf", em.fbin("mulf", cur, factors[0]), em.fbin("mulf", x, factors[1]))
        else:
            new = em.fbin("addf", cur, x)
        return em.round(new, dtype)

    def rescale_factors(self, old_max: str, m: str) -> tuple[str, tuple[str, str]]:
        """Online softmax's step: the new running max, and the factors exp(old - new), exp(m - new)."""
        em = self.em
        new = em.fbin("maximumf", old_max, m)
        return new, (em.exp(em.fbin("subf", old_max, new)), em.exp(em.fbin("subf", m, new)))

    def acc_update(self, i: int, index: list[Index], x: str, memo: dict) -> None:
        em = self.em
        node = self.g.nodes[i]
        buf = self.buffers[i]
        where = f"{buf.at(em, index)} : {buf.type}"
        cur = em.op(f"memref.load {where}", "l")
        factors = None
        if i in self.scale_buffers:  # per-row rescale factors, taken once per row (rescale_stage)
            sbuf = self.scale_buffers[i]
            row = broadcast_index(index, self.plan.vtype(node.inputs[1]).shape, node.types[0].shape)
            factors = tuple(em.op(f"memref.load {sbuf.name}[{indices(em, [k] + row)}] : {sbuf.type}", "l")
                            for k in (0, 1))
        elif node.op == "accum_rescaled_sum":
            m_val = node.inputs[1]
            m = self.value_at(m_val, broadcast_index(index, self.plan.vtype(m_val).shape, node.types[0].shape), memo)
            mbuf = self.max_buffers[i]
            mwhere = f"{mbuf.name}[{indices(em, index)}] : {mbuf.type}"
            new_max, factors = self.rescale_factors(em.op(f"memref.load {mwhere}", "l"), m)
            em.emit(f"memref.store {new_max}, {mwhere}")
        em.emit(f"memref.store {self.acc_step(node, cur, x, factors)}, {where}")

    def rescale_stage(self, i: int) -> None:
        """Per row of accum_rescaled_sum i's broadcast max m: the new running max, and the factors
        exp(old - new) and exp(m - new) that this iteration's element updates apply."""
        em, node = self.em, self.g.nodes[i]
        m_val, mbuf, sbuf = node.inputs[1], self.max_buffers[i], self.scale_buffers[i]
        self.sync_for(self.reads_of(m_val) | {sbuf.name})

        def body(e):
            index = em.unflatten(e, mbuf.shape)
            where = f"{mbuf.name}[{indices(em, index)}] : {mbuf.type}"
            new, factors = self.rescale_factors(em.op(f"memref.load {where}", "l"), self.value_at(m_val, index, {}))
            em.emit(f"memref.store {new}, {where}")
            for k, factor in enumerate(factors):
                em.emit(f"memref.store {factor}, {sbuf.name}[{indices(em, [k] + index)}] : {sbuf.type}")

        self.for_each(numel(mbuf.shape), body)
        self.dirty.add(sbuf.name)

    def init_accumulators(self) -> None:
        em = self.em
        for i, buf in list(self.buffers.items()) + list(self.max_buffers.items()):
            if self.plan.kind[i] != "acc":
                continue
            node = self.g.nodes[i]
            is_max_buf = buf is self.max_buffers.get(i)
            value = em.fconst(-math.inf if (node.op == "accum_max" or is_max_buf) else 0.0)

            def body(e, buf=buf, value=value):
                index = em.unflatten(e, buf.shape)
                em.emit(f"memref.store {value}, {buf.at(em, index)} : {buf.type}")

            self.for_each(numel(buf.shape), body)
            self.dirty.add(buf.name)

    def fill_constant_tiles(self) -> None:
        """Writes wgmma's constant operands once, before the loop, and orders the writes before
        wgmma's reads (the async proxy's): each constant tile (plan.constant_tiles) whole, and the
        rows stacked below X's in every stage of X's ring slots (plan.stacked_constants: the copies
        write X's rows only), 16 bytes a store; any layout of one value holds the same."""
        em = self.em
        for i in self.plan.constant_tiles:
            buf = self.buffers[i]
            value = em.truncate(em.fconst(self.plan.constant_operands[i]), buf.dtype)

            def body(e, buf=buf, value=value):
                em.emit(f"memref.store {value}, {buf.at(em, em.unflatten(e, buf.shape))} : {buf.type}")

            self.for_each(numel(buf.shape), body)
            self.dirty.add(buf.name)
        for x, constant in self.plan.stacked_constants.items():
            buf = self.buffers[x]
            per_store = SWIZZLE_CHUNK // BYTES[buf.dtype]
            lines, width = buf.storage_shape[-2:]
            stacked, chunks = buf.lines - buf.shape[-2], width // per_store
            vector = f"vector<{per_store}x{buf.dtype}>"
            value = em.op(f"arith.constant dense<{constant!r}> : {vector}", "splat")
            for stage in range(buf.stages):
                view = em.shared_view(buf.offset + stage * buf.stage_bytes, buf.type, self.smem, "stacked")

                def body(e, view=view):
                    group, chunk = em.div(e, chunks), em.rem(e, chunks)  # group: a block's stacked line
                    line = em.add(em.mul(em.div(group, stacked), buf.lines), em.add(buf.shape[-2], em.rem(group, stacked)))
                    em.emit(f"vector.store {value}, {view}[{em.idx(line)}, {em.idx(em.mul(chunk, per_store))}] "
                            f"{{alignment = {SWIZZLE_CHUNK}}} : {buf.type}, {vector}")

                self.for_each(lines // buf.lines * stacked * chunks, body)
            self.dirty.add(buf.name)
        if self.plan.constant_tiles or self.plan.stacked_constants:
            em.fence_async_proxy()
