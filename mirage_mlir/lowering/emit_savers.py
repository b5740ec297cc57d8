"""Output savers: a block's tile stored to its place in the kernel's output (vector stores of up to 16
bytes where alignment allows), and `write`, which stores a stage's value to its target.
"""

from __future__ import annotations

from .emitter import BYTES, ROWS_ARG, Index, indices, memref_type
from .plan import numel, vector_width


class SaverEmitter:
    """Stores of a stage's values: to a buffer, an accumulator, or (savers) the kernel's output."""

    def write(self, target: tuple, index: list[Index], x: str, memo: dict) -> None:
        """Stores x (f32) at `index` of a target: ("buf", i), ("acc", i) or ("saver", i)."""
        em = self.em
        kind, i = target
        if kind == "buf":
            buf = self.buffers[i]
            em.emit(f"memref.store {em.truncate(x, buf.dtype)}, {buf.at(em, index)} : {buf.type}")
        elif kind == "acc":
            self.acc_update(i, index, x, memo)
        else:
            self.store_global(i, index, [x])

    def saver_offsets(self, i: int) -> list[Index]:
        node = self.g.nodes[i]
        tile = self.plan.vtype(node.inputs[0]).shape
        offsets: list[Index] = [0] * len(tile)
        for axis, dim in enumerate(node.attr("omap")):
            if dim != -1 and self.g.grid_dim[axis] > 1:
                offsets[dim] = self.em.add(offsets[dim], self.em.mul(self.bid[axis], tile[dim]))
        return offsets

    def store_global(self, i: int, index: list[Index], xs: list[str]) -> None:
        """Stores len(xs) consecutive values (along the last dim) of saver i's tile at `index`."""
        em = self.em
        t = self.g.nodes[i].types[0]
        if i in self.partial_buffers:  # kept in this block's shared memory (fuse_split_k's cluster form)
            offset, tile = self.partial_buffers[i]
            mtype = memref_type(tile, t.dtype, "workgroup")
            self.store_values(em.shared_view(offset, mtype), index, [em.truncate(x, t.dtype) for x in xs],
                              mtype, t.dtype)
            return
        out = self.output_args[i]
        offsets = self.saver_offsets(i)
        where = [em.add(a, b) for a, b in zip(index, offsets)]
        mtype = memref_type(t.shape, t.dtype)
        vals = [em.truncate(x, t.dtype) for x in xs]
        dim = self.masked_savers.get(i)
        if dim is not None:  # rows past the run-time count are not the caller's (blockgen.RowMask)
            with em.region(f"scf.if {em.cmp_lt(where[dim], ROWS_ARG)} {{"):
                self.store_values(out, where, vals, mtype, t.dtype)
        else:
            self.store_values(out, where, vals, mtype, t.dtype)

    def store_values(self, out: str, where: list[Index], vals: list[str], mtype: str, dtype: str) -> None:
        em = self.em
        if len(vals) == 1:
            em.emit(f"memref.store {vals[0]}, {out}[{indices(em, where)}] : {mtype}")
            return
        vec_type = f"vector<{len(vals)}x{dtype}>"
        vec = em.op(f"vector.from_elements {', '.join(vals)} : {vec_type}", "vec")
        align = len(vals) * BYTES[dtype]
        em.emit(f"vector.store {vec}, {out}[{indices(em, where)}] {{alignment = {align}}} : {mtype}, {vec_type}")

    def saver_stage(self, i: int, root: int) -> None:
        em = self.em
        shape = self.plan.vtype(root).shape
        out_t = self.g.nodes[i].types[0]
        width = vector_width(out_t.dtype, shape[-1], out_t.shape[-1])
        chunk_shape = shape[:-1] + (shape[-1] // width,)

        def body(c):
            memo: dict = {}
            where = em.unflatten(c, chunk_shape)
            where[-1] = em.mul(where[-1], width)
            xs = []
            for k in range(width):
                index = where[:-1] + [em.add(where[-1], k)]
                xs.append(self.value_at(root, index, memo))
            self.store_global(i, where, xs)

        self.for_each(numel(chunk_shape), body)
