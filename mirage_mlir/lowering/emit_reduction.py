"""Reductions (reduce ops, and accumulators with reduce_dim): an output row of 32 or more elements
goes to a warp, whose lanes combine their partial results with `gpu.shuffle xor`; shorter rows go
to one thread each.
"""

from __future__ import annotations

import math

from ..mugraph import Node
from ..opset import OPS
from .emitter import Index
from .plan import numel


class ReductionEmitter:
    """Reduction stages into a buffer or an accumulator."""

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
        self.sync_for(self.reads_of(x_v) | self.target_reads(target))

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
                self.write(target, oidx, self.finish_total(node, em.round(total, acc_dtype), length), memo)

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
