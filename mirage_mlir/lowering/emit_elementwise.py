"""Values at an index, as f32 SSA names: loaded from their buffers or computed inline.

Single-use elementwise ops and thread graphs are recomputed in registers inside the stage that
consumes them (the thread-graph fusion). Arithmetic is in f32; every op result is rounded to its
element type, as mirage_mlir.evaluate does.
"""

from __future__ import annotations

from ..mugraph import Graph, Node
from ..opset import OPS
from .emitter import BYTES, Index
from .plan import SWIZZLE_CHUNK, Buffer, LoweringError


def broadcast_index(index: list[Index], shape: tuple[int, ...], target: tuple[int, ...]) -> list[Index]:
    """The index into an operand of `shape` broadcast to `target` (equal ranks)."""
    return [0 if s == 1 and t != 1 else i for i, s, t in zip(index, shape, target)]


class ElementwiseEmitter:
    """Values at an index (as f32) inside a stage."""

    def load(self, buf: Buffer, index: list[Index]) -> str:
        em = self.em
        raw = em.op(f"memref.load {buf.at(em, index)} : {buf.type}", "l")
        return em.extend(raw, buf.dtype)

    def load_vector(self, buf: Buffer, index: list[Index], length: int, hint: str) -> list[str]:
        """`length` consecutive elements (along the last dim) of a buffer from `index`, as f32."""
        em = self.em
        piece = min(length, SWIZZLE_CHUNK // BYTES[buf.dtype]) if buf.swizzle else length  # a chunk at most
        vec = f"vector<{piece}x{buf.dtype}>"
        values = []
        for start in range(0, length, piece):
            at = buf.at(em, index[:-1] + [em.add(index[-1], start)])
            loaded = em.op(f"vector.load {at} {{alignment = {piece * BYTES[buf.dtype]}}} : {buf.type}, {vec}", hint)
            values += [em.extend(em.op(f"vector.extract {loaded}[{k}] : {buf.dtype} from {vec}", "l"), buf.dtype)
                       for k in range(piece)]
        return values

    def value_at(self, v: int, index: list[Index], memo: dict, overrides: dict | None = None,
                 compute: bool = False) -> str:
        """Value v at `index` as f32: loaded from its buffer, or computed (always, with `compute`,
        which the stage that fills v's own buffer uses)."""
        key = (v, tuple(index), compute)
        if key in memo:
            return memo[key]
        if overrides and v in overrides:
            return overrides[v]
        if v < self.plan.n_in:
            raise LoweringError("a kernel tensor is read without an input iterator", self.plan.path)
        i = self.plan.node_of[v]
        node = self.g.nodes[i]
        kind = self.plan.kind[i]
        em = self.em
        if kind == "acc" and not compute:
            result = self.acc_final(i, self.load(self.buffers[i], index))
        elif self.plan.buffered[i] and not compute:
            result = self.load(self.buffers[i], index)
        elif kind == "matmul":
            raise LoweringError("internal: an inline matmul was read outside its stage", self.plan.path + (i,))
        elif kind not in ("ew", "acc_id"):
            raise LoweringError(f"internal: '{node.op}' cannot be computed inline", self.plan.path + (i,))
        else:
            shape = node.types[0].shape
            args = [self.value_at(a, broadcast_index(index, self.plan.vtype(a).shape, shape), memo, overrides)
                    for a in node.inputs]
            dtype = node.types[0].dtype
            if kind == "acc_id":
                result = em.round(self.acc_identity(node, args), dtype)
            elif node.op == "thread_graph":
                result = self.thread_graph(node.body, args)
            else:
                result = em.round(self.elementwise(node, args), dtype)
        memo[key] = result
        return result

    def elementwise(self, node: Node, args: list[str]) -> str:
        """The op's GPU code (opset.OpInfo.gpu) on f32 (or f64) SSA values."""
        info = OPS.get(node.op)
        if info is None or info.gpu is None:
            raise LoweringError(f"no lowering for elementwise op '{node.op}'", self.plan.path)
        return info.gpu(self, *args, **dict(node.attrs))

    def divide(self, a: str, b: str) -> str:
        """a / b. Where a row kernel divides many elements by one value (a row's rms), it takes that
        value's reciprocal once and multiplies (within 3 ulp of the quotient, in the compute type):
        an IEEE division per element had ntrans at 3.7 us against 1.8 (NOTES.md, run 20)."""
        if self.reciprocals is None:
            return self.em.fdiv(a, b)
        if b not in self.reciprocals:
            self.reciprocals[b] = self.em.fdiv(self.em.fconst(1.0), b)
        return self.em.fbin("mulf", a, self.reciprocals[b])

    def thread_graph(self, body: Graph, args: list[str]) -> str:
        return self.thread_graph_all(body, [args])[0]

    def thread_graph_all(self, body: Graph, args: list[list[str]]) -> list[str]:
        """The thread graph on several elements (operands per element), each op's results rounded
        together (Emitter.round_all: in pairs)."""
        values = [list(a) for a in args]
        for node in body.nodes:
            if node.op not in OPS or OPS[node.op].category not in ("unary", "binary"):
                raise LoweringError(f"'{node.op}' cannot appear in a thread graph", self.plan.path)
            results = [self.elementwise(node, [vals[v] for v in node.inputs]) for vals in values]
            for vals, r in zip(values, self.em.round_all(results, node.types[0].dtype)):
                vals.append(r)
        return [vals[body.outputs[0]] for vals in values]
