"""Reading linalg-on-tensors (as torch-mlir emits it) into kernel mu-graphs: the pattern matching of
the `convert-linalg-to-mirage` pass, kept apart from the pass so that it can be tested on its own.

Three steps, each on plain data once the MLIR ops are read:

1. `analyze_block(block)` reads every op of a block once. A supported op gets a `Recipe`: a small
   kernel Graph over the values the op reads, computing its results (named matmuls, elementwise and
   reduction `linalg.generic`s, `tensor.expand_shape` of a rank-dropping reduction). Structural ops
   (`arith.constant`, `tensor.empty`, `linalg.fill`) get none: scalars become attributes, fills
   become reduction/matmul inits, empties are only ever written. Everything else gets the reason it
   is left alone.
2. `plan_block(info)` groups the supported ops into convex subgraphs (one per "level": a group never
   feeds an op it also reads from, so unsupported ops can sit between groups), assembles each group
   into one Graph, rewrites idioms on it (`mirage_mlir.idioms`), and repeats without the ops whose
   import-only nodes (`recip`) no idiom absorbed.
3. The pass builds each Subgraph's Graph as mirage_kernel ops (`bridge.build_graph`).

Translation rules (and their precision): every arith/math op of a generic body becomes one opset
node that rounds its result to its element type. Tensor element-type changes become `cast` nodes,
exactly where the program changes a tensor's type. A body that widens only to compute one op (e.g.
`extf; exp; truncf` on f16 tensors) becomes that op in the tensor type, which rounds the same way;
a body that computes several ops in a wider type keeps casts around them, so that the rounding to
the narrow type still happens once, where the program does it. Scalar constants become
`mul_scalar`/`add_scalar` attributes rounded to the type they are used in (the f64 eps that torch-mlir
truncates to f16 is the f16 value). `x / c` is `mul_scalar(1/c)`, `c - x` is `add_scalar(c)` of
`neg(x)`, `c / x` is an import-only `recip` (then `mul_scalar(c)`), which only an idiom (silu) may
absorb. Reductions keep the reduced dim (keepdim maps `(d0, d1) -> (d0, 0)` directly; rank-dropping
maps only when every use is a `tensor.expand_shape` back to the keepdim shape); a zero-filled sum or
a -inf/lowest-filled max is the plain reduction, other inits are added (`add_scalar`, `add`, `max`).
Matmuls need the default indexing maps (the opset has no transpose); the init is handled like a
reduction's, so `matmul ins(f16, f16) outs(f32 zero fill)` is a matmul with an f32 result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mlir.ir as ir
import numpy as np

from . import idioms, shapes
from .dtypes import FLOAT_TYPES, round_to
from .graph_verify import verify
from .mugraph import Graph, Node, TensorType
from .opset import OPS

# generic-body ops that are one opset op each (opset.OpInfo.linalg): a math function of a tensor,
# and the binary arithmetic (whose constant operands become scalar ops below)
LINALG_UNARY = {name: info.name for info in OPS.values() if info.category == "unary" for name in info.linalg}
LINALG_BINARY = {name: info.name for info in OPS.values() if info.category == "binary" for name in info.linalg}

# -------------------------------------------------------------------------------------------------
# Plain data


@dataclass(frozen=True)
class Recipe:
    """How one op becomes opset nodes. `graph.inputs` are the types of the values `inputs` (value
    ids of the block) as the converted graph sees them; `results` pairs each produced op result
    (a value id) with an index into `graph.outputs`. A result that is an input (a copy) has no node."""

    inputs: tuple[int, ...]
    graph: Graph
    results: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class OpInfo:
    index: int
    name: str
    uses: tuple[int, ...]  # value ids read: operands and values captured by nested regions
    results: tuple[int, ...]
    recipe: Recipe | None = None
    why: str = ""  # why a compute op is left alone ("" for supported and structural ops)

    @property
    def structural(self) -> bool:
        return self.name in STRUCTURAL


@dataclass(frozen=True)
class BlockInfo:
    """A block as plain data. Values are numbered: block arguments, then each op's results, then
    values defined outside the block (no producer). The last op is the block's terminator."""

    types: tuple[TensorType | None, ...]  # None: not a ranked tensor
    producers: tuple[int | None, ...]  # op index per value
    ops: tuple[OpInfo, ...]
    virtual: frozenset[int] = frozenset()  # rank-dropped reduction results: exist only inside a graph

    def consumers(self, converted: set | frozenset = frozenset()) -> dict[int, list[int]]:
        """value id -> the ops that read it; an op in `converted` reads only its recipe's inputs."""
        result: dict[int, list[int]] = {}
        for op in self.ops:
            reads = op.recipe.inputs if op.index in converted else op.uses
            for v in reads:
                result.setdefault(v, []).append(op.index)
        return result


@dataclass(frozen=True)
class Subgraph:
    """One converted group: `graph` reads the block values `inputs` and its outputs replace the
    values in `results` ((value id, output index)); `ops` are the converted op indices and
    `origins[i]` the op indices node i stands for (several after an idiom)."""

    graph: Graph
    inputs: tuple[int, ...]
    results: tuple[tuple[int, int], ...]
    ops: tuple[int, ...]
    origins: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class Plan:
    subgraphs: tuple[Subgraph, ...]
    left: tuple[tuple[int, str], ...]  # (op index, reason) of every compute op left alone


STRUCTURAL = ("arith.constant", "tensor.empty", "linalg.fill")

MATMUL_MAPS = {
    "linalg.matmul": ("(d0, d1, d2) -> (d0, d2)", "(d0, d1, d2) -> (d2, d1)", "(d0, d1, d2) -> (d0, d1)"),
    "linalg.batch_matmul": ("(d0, d1, d2, d3) -> (d0, d1, d3)", "(d0, d1, d2, d3) -> (d0, d3, d2)",
                            "(d0, d1, d2, d3) -> (d0, d1, d2)"),
}

# A wider float type holds every value of a narrower one exactly (used for the body-widening rule).
_CONTAINS = {("f32", "f16"), ("f64", "f16"), ("f32", "bf16"), ("f64", "bf16"), ("f64", "f32")}


class Unsupported(Exception):
    """The op is left alone; the message says why."""


# -------------------------------------------------------------------------------------------------
# Step 1: reading a block


@dataclass
class BlockImport:
    """`analyze_block`'s result: the plain `info` and the MLIR objects it was read from."""

    info: BlockInfo
    ops: list  # ir.Operation per op index (the terminator last)
    values: list  # ir.Value per value id


class _Reader:
    def __init__(self, block: ir.Block):
        self.block = block
        self.values: list[ir.Value] = []
        self.ids: dict[ir.Value, int] = {}
        self.types: list[TensorType | None] = []
        self.producers: list[int | None] = []
        self.ops = [op.operation for op in block.operations]
        self.virtual_types: dict[int, TensorType] = {}
        for arg in block.arguments:
            self._add(arg, None)
        for index, op in enumerate(self.ops):
            for r in op.results:
                self._add(r, index)

    def _add(self, value: ir.Value, producer: int | None) -> int:
        self.ids[value] = len(self.values)
        self.values.append(value)
        self.types.append(_tensor_type(value.type))
        self.producers.append(producer)
        return self.ids[value]

    def vid(self, value: ir.Value) -> int:
        """The id of `value`; values from outside the block are numbered on first sight."""
        if value not in self.ids:
            self._add(value, None)
        return self.ids[value]

    def uses(self, op: ir.Operation) -> tuple[int, ...]:
        seen: list[int] = []
        for v in op.operands:
            seen.append(self.vid(v))
        for inner in nested_ops(op):
            for v in inner.operands:
                if _defined_outside(v, op):
                    seen.append(self.vid(v))
        return tuple(dict.fromkeys(seen))

    def producer_op(self, value: ir.Value) -> ir.Operation | None:
        p = self.producers[self.vid(value)]
        return None if p is None else self.ops[p]

    def read(self) -> BlockImport:
        infos = []
        last = len(self.ops) - 1
        for index, op in enumerate(self.ops):
            uses = self.uses(op)
            results = tuple(self.ids[r] for r in op.results)
            recipe, why = None, ""
            if index != last and op.name not in STRUCTURAL:
                try:
                    recipe = self.recipe(op)
                except Unsupported as e:
                    why = str(e)
            infos.append(OpInfo(index, op.name, uses, results, recipe, why))
        types = list(self.types)
        for v, t in self.virtual_types.items():
            types[v] = t
        info = BlockInfo(tuple(types), tuple(self.producers), tuple(infos), frozenset(self.virtual_types))
        return BlockImport(info, self.ops, self.values)

    # -- per op -------------------------------------------------------------------------------
    def recipe(self, op: ir.Operation) -> Recipe:
        if op.name in MATMUL_MAPS:
            return self.matmul(op)
        if op.name == "linalg.generic":
            return _GenericReader(self, op).read()
        if op.name == "tensor.expand_shape":
            return self.expand_shape(op)
        raise Unsupported(f"'{op.name}' has no mirage form")

    def matmul(self, op: ir.Operation) -> Recipe:
        name = op.name
        if "indexing_maps" in op.attributes:
            maps = tuple(str(m.value) for m in op.attributes["indexing_maps"])
            if maps != MATMUL_MAPS[name]:
                raise Unsupported(f"'{name}' with indexing maps {list(maps)}: a transposed or broadcast "
                                  "operand needs a transpose, which the opset lacks")
        a, b, c = list(op.operands)
        ta, tb, tc = (_float_tensor(v.type, name) for v in (a, b, c))
        if ta.dtype != tb.dtype:
            raise Unsupported(f"'{name}' mixes operand element types {ta.dtype} and {tb.dtype}")
        builder = _Builder(self)
        x, y = builder.input(a), builder.input(b)
        out = builder.node("matmul", [x, y], tc)
        out = self.combine_init(builder, out, c, "sum", keepdim=True)
        return builder.recipe([(self.ids[op.results[0]], out)])

    def expand_shape(self, op: ir.Operation) -> Recipe:
        source = op.operands[0]
        sid = self.vid(source)
        if sid not in self.virtual_types:
            raise Unsupported("'tensor.expand_shape' is a reshape; only the one that restores a reduction's kept "
                              "dim converts")
        if _tensor_type(op.results[0].type) != self.virtual_types[sid]:
            raise Unsupported("'tensor.expand_shape' does not restore the reduction's kept dim")
        builder = _Builder(self)
        x = builder.input(source)
        return builder.recipe([(self.ids[op.results[0]], x)])

    def combine_init(self, builder: _Builder, value: _T, init: ir.Value, kind: str, keepdim: bool) -> _T:
        """`value` (a reduction or matmul result) combined with the initial value of its accumulator."""
        producer = self.producer_op(init)
        dtype = value.dtype
        if producer is not None and producer.name == "tensor.empty":
            raise Unsupported("the accumulator starts from an uninitialized 'tensor.empty'")
        if producer is not None and producer.name == "linalg.fill":
            c = _constant_of(producer.operands[0])
            if c is not None:
                if kind == "sum":
                    return value if c == 0.0 else builder.node("add_scalar", [value], value.type, scalar=c)
                if c == -math.inf or c <= -_max_finite(dtype):
                    return value
                if c == 0.0:
                    return builder.node("relu", [value], value.type)
        if not keepdim:
            raise Unsupported("a rank-dropping reduction into a non-constant init")
        other = builder.input(init)
        if other.shape != value.shape:
            raise Unsupported("the accumulator's shape does not match the reduction")
        return builder.node("add" if kind == "sum" else "max", [value, other], value.type)


def analyze_block(block: ir.Block) -> BlockImport:
    """Reads `block` (its last op is the terminator) into plain data."""
    return _Reader(block).read()


# -------------------------------------------------------------------------------------------------
# Recipes


@dataclass(frozen=True)
class _T:
    """A tensor in a recipe: local value id, shape, element type."""

    id: int
    shape: tuple
    dtype: str

    @property
    def type(self) -> TensorType:
        return TensorType(self.shape, self.dtype)


@dataclass(frozen=True)
class _C:
    """A scalar constant (float or int) of MLIR type `dtype`."""

    value: float
    dtype: str


@dataclass(frozen=True)
class _Out:
    """The accumulator argument of result `j` (read only by the combining op of a reduction)."""

    j: int


@dataclass(frozen=True)
class _Red:
    kind: str  # sum | max
    expr: _T
    j: int


class _Builder:
    def __init__(self, reader: _Reader):
        self.reader = reader
        self.inputs: list[int] = []
        self.input_types: list[TensorType] = []
        self.nodes: list[tuple] = []  # (op, operands as ("i", input) or ("n", node), result type, attrs)

    def input(self, value: ir.Value) -> _T:
        vid = self.reader.vid(value)
        t = self.reader.virtual_types.get(vid) or self.reader.types[vid]
        if t is None or t.dtype not in FLOAT_TYPES:
            raise Unsupported(f"operand of type {value.type} (the opset takes tensors of {', '.join(FLOAT_TYPES)})")
        if vid not in self.inputs:
            self.inputs.append(vid)
            self.input_types.append(t)
        return _T(self.inputs.index(vid), t.shape, t.dtype)

    def node(self, op: str, args: list[_T], result: TensorType, **attrs) -> _T:
        # Inputs are numbered first: shift node operands when they are finalised (see recipe()).
        local = [("i", a.id) if a.id < _NODE_BASE else ("n", a.id - _NODE_BASE) for a in args]
        self.nodes.append((op, local, result, attrs))
        return _T(_NODE_BASE + len(self.nodes) - 1, result.shape, result.dtype)

    def recipe(self, results: list[tuple[int, _T]]) -> Recipe:
        base = len(self.inputs)

        def gid(a: int) -> int:
            return a if a < _NODE_BASE else base + a - _NODE_BASE

        nodes = []
        for op, local, result, attrs in self.nodes:
            ids = [i if kind == "i" else base + i for kind, i in local]
            nodes.append(Node.make(op, ids, [result], **attrs))
        outputs: list[int] = []
        pairs = []
        for vid, t in results:
            g = gid(t.id)
            if g not in outputs:
                outputs.append(g)
            pairs.append((vid, outputs.index(g)))
        graph = Graph(tuple(self.input_types), tuple(nodes), tuple(outputs))
        return Recipe(tuple(self.inputs), graph, tuple(pairs))


_NODE_BASE = 1 << 30  # local ids of node results in a _Builder (inputs are below)


class _GenericReader:
    """One `linalg.generic`: its maps, iterators and the body slice that computes its used results."""

    def __init__(self, reader: _Reader, op: ir.Operation):
        self.reader = reader
        self.op = op
        self.b = _Builder(reader)
        self.n_in = len(op.regions[0].blocks[0].arguments) - len(op.results)
        self.uniform: str | None = None  # the one tensor element type the body computes in, if so
        self.virtual: dict[int, TensorType] = {}  # rank-dropped results, registered once the op converts

    def read(self) -> Recipe:
        op = self.op
        if len(op.regions[0].blocks) != 1:
            raise Unsupported("'linalg.generic' with a multi-block body")
        if not op.results:
            raise Unsupported("'linalg.generic' on buffers (no tensor results)")
        operands = list(op.operands)
        ins, outs = operands[: self.n_in], operands[self.n_in:]
        maps = [m.value for m in op.attributes["indexing_maps"]]
        iterators = [str(a) for a in op.attributes["iterator_types"]]
        self.reductions = [k for k, it in enumerate(iterators) if "reduction" in it]
        if any("parallel" not in it and "reduction" not in it for it in iterators):
            raise Unsupported(f"iterator types {iterators}")
        self.n_loops = len(iterators)
        self.maps = maps
        self.ins, self.outs = ins, outs
        self.extents = self._extents(operands, maps)

        body = op.regions[0].blocks[0]
        body_ops = [o.operation for o in body.operations]
        yield_op = body_ops[-1]
        used = [j for j, r in enumerate(op.results) if _has_uses(r)]
        if not used:
            raise Unsupported("no result of the 'linalg.generic' is used")
        needed_values = [yield_op.operands[j] for j in used]
        slice_ops = _backward_slice(body_ops[:-1], needed_values)

        # Element types: tensors of one type T whose body only widens compute in T ("uniform").
        tensor_types = [_tensor_type(v.type) for v in ins] + [_tensor_type(outs[j].type) for j in used]
        for v, t in zip(ins + [outs[j] for j in used], tensor_types):
            if t is None or t.dtype not in FLOAT_TYPES:
                raise Unsupported(f"operand of type {v.type} (the opset takes tensors of {', '.join(FLOAT_TYPES)})")
        dtypes = {t.dtype for t in tensor_types}
        uniform, widened = None, False
        if len(dtypes) == 1:
            (t,) = dtypes
            floats = {str(r.type) for o in slice_ops for r in o.results} & set(FLOAT_TYPES)
            if all(s == t or (s, t) in _CONTAINS for s in floats):
                uniform, widened = t, floats != {t} and bool(floats)
        recipe = self._translate(slice_ops, used, yield_op, uniform)
        if widened and len(recipe.graph.nodes) > 1:
            # Several ops computed in a wider type round once at the end: keep that with casts.
            recipe = self._translate(slice_ops, used, yield_op, None)
        self.reader.virtual_types.update(self.virtual)
        return recipe

    def _translate(self, slice_ops, used, yield_op, uniform) -> Recipe:
        self.uniform = uniform
        self.b = _Builder(self.reader)
        self.virtual = {}
        env: dict[ir.Value, object] = {}
        for o in slice_ops:
            self._body_op(o, env)
        results = []
        for j in used:
            sym = self._sym(yield_op.operands[j], env)
            results.append((self.reader.ids[self.op.results[j]], self._result(j, sym)))
        for o in slice_ops:  # a reduction's partial value may only feed the yield
            for r in o.results:
                if isinstance(env.get(r), _Red) and any(u.owner.operation.name != "linalg.yield" for u in r.uses):
                    raise Unsupported("the reduction's combined value is used inside the body")
        return self.b.recipe(results)

    # -- maps -----------------------------------------------------------------------------------
    def _extents(self, operands, maps) -> list:
        extents = [None] * self.n_loops
        for v, m in zip(operands, maps):
            t = _tensor_type(v.type)
            if t is None:
                continue
            for pos, e in enumerate(m.results):
                if isinstance(e, ir.AffineDimExpr) and pos < t.rank and t.shape[pos] is not None:
                    extents[e.position] = t.shape[pos]
        return extents

    def _aligned(self, m, t: TensorType, what: str) -> None:
        """Checks a map of the form (d0, ..., dn) -> (d0 | 0, ..., dn | 0) on a tensor of `t`."""
        results = list(m.results)
        if len(results) != self.n_loops:
            raise Unsupported(f"{what} map {m} changes the rank (the opset broadcasts on equal ranks)")
        for k, e in enumerate(results):
            if isinstance(e, ir.AffineDimExpr) and e.position == k:
                continue
            if isinstance(e, ir.AffineConstantExpr) and e.value == 0 and t.shape[k] == 1:
                continue
            raise Unsupported(f"{what} map {m} permutes or slices dims (the opset has no transpose)")

    # -- body -----------------------------------------------------------------------------------
    def _sym(self, value: ir.Value, env: dict):
        if value in env:
            return env[value]
        if isinstance(value, ir.BlockArgument) and value.owner == self.op.regions[0].blocks[0]:
            index = value.arg_number
            if index < self.n_in:
                operand = self.ins[index]
                t = _tensor_type(operand.type)
                self._aligned(self.maps[index], t, "input")
                sym = self.b.input(operand)
                if self.uniform:
                    sym = _T(sym.id, sym.shape, self.uniform)
            else:
                sym = self._out_arg(index - self.n_in)
            env[value] = sym
            return sym
        c = _constant_of(value)
        if c is None:
            raise Unsupported("the body reads a value from above that is not a scalar constant")
        return _C(c, str(value.type))

    def _out_arg(self, j: int):
        if self.reductions:
            return _Out(j)
        out = self.outs[j]
        producer = self.reader.producer_op(out)
        if producer is not None and producer.name == "tensor.empty":
            raise Unsupported("the body reads the initial value of a 'tensor.empty' output")
        if producer is not None and producer.name == "linalg.fill":
            c = _constant_of(producer.operands[0])
            if c is not None:
                return _C(c, str(producer.operands[0].type))
        t = _tensor_type(out.type)
        self._aligned(self.maps[self.n_in + j], t, "output")
        sym = self.b.input(out)
        return _T(sym.id, sym.shape, self.uniform) if self.uniform else sym

    def _dtype(self, value: ir.Value) -> str:
        t = str(value.type)
        if self.uniform:
            return self.uniform
        if t not in FLOAT_TYPES:
            raise Unsupported(f"the body computes in {t}")
        return t

    def _body_op(self, o: ir.Operation, env: dict) -> None:
        name = o.name
        if name == "arith.constant":
            c = _constant_of(o.results[0])
            if c is None:
                raise Unsupported("a non-scalar constant in the body")
            env[o.results[0]] = _C(c, str(o.results[0].type))
            return
        args = [self._sym(v, env) for v in o.operands]
        result = o.results[0] if len(o.results) == 1 else None
        if result is None:
            raise Unsupported(f"'{name}' in the body")
        if any(isinstance(a, _Red) for a in args):
            raise Unsupported("the reduction's combined value is used inside the body")
        outs = [a for a in args if isinstance(a, _Out)]
        if outs:
            env[result] = self._combine(name, args)
            return
        if all(isinstance(a, _C) for a in args):
            env[result] = _C(_fold(name, [a.value for a in args], str(result.type)), str(result.type))
            return
        env[result] = self._compute(name, args, result)

    def _combine(self, name: str, args: list):
        kinds = {"arith.addf": "sum", "arith.maximumf": "max", "arith.maxnumf": "max"}
        if name not in kinds or len(args) != 2:
            raise Unsupported(f"a reduction combined by '{name}'")
        if sum(isinstance(a, _Out) for a in args) != 1:
            raise Unsupported("a reduction that combines two accumulators")
        out, expr = (args[0], args[1]) if isinstance(args[0], _Out) else (args[1], args[0])
        if not isinstance(expr, _T):
            raise Unsupported("a reduction of a constant")
        return _Red(kinds[name], expr, out.j)

    def _compute(self, name: str, args: list, result: ir.Value) -> _T:
        dtype = self._dtype(result)
        b = self.b

        def unary(op: str, x: _T, **attrs) -> _T:
            return b.node(op, [x], TensorType(x.shape, dtype), **attrs)

        if name in ("arith.extf", "arith.truncf"):
            (x,) = args
            if self.uniform or x.dtype == dtype:
                return x
            return unary("cast", x)
        if name in LINALG_UNARY:
            return unary(LINALG_UNARY[name], args[0])
        if name == "math.fpowi":
            x, n = args
            if not isinstance(n, _C):
                raise Unsupported("'math.fpowi' with a non-constant exponent")
            if n.value == 2:
                return unary("square", x)
            if n.value == 1:
                return x
            raise Unsupported(f"'math.fpowi' with exponent {n.value} (only 1 and 2 have opset forms)")
        if name == "math.powf" and isinstance(args[1], _C) and isinstance(args[0], _T):
            x, n = args[0], args[1].value
            forms = {2.0: "square", 0.5: "sqrt", -0.5: "rsqrt", -1.0: "recip"}
            if n == 1.0:
                return x
            if n in forms:
                return unary(forms[n], x)
            raise Unsupported(f"'math.powf' with exponent {n}")
        if name not in LINALG_BINARY:
            raise Unsupported(f"'{name}' in the body has no opset form")
        a, c = args
        kind = LINALG_BINARY[name]
        if isinstance(a, _T) and isinstance(c, _T):
            if kind == "mul" and a.id == c.id and a.shape == c.shape:
                return unary("square", a)
            try:
                shape = shapes.broadcast(a.shape, c.shape)
            except shapes.ShapeError as e:
                raise Unsupported(str(e)) from None
            return b.node(kind, [a, c], TensorType(shape, dtype))
        t, k = (a, c.value) if isinstance(a, _T) else (c, a.value)
        tensor_first = isinstance(a, _T)
        if kind == "add":
            return unary("add_scalar", t, scalar=float(k))
        if kind == "mul":
            return unary("mul_scalar", t, scalar=float(k))
        if kind == "sub":
            if tensor_first:
                return unary("add_scalar", t, scalar=float(-k))
            return unary("add_scalar", unary("neg", t), scalar=float(k))
        if kind == "div":
            if tensor_first:
                if k == 0:
                    raise Unsupported("division by the constant 0")
                return unary("mul_scalar", t, scalar=1.0 / float(k))
            r = unary("recip", t)
            return r if k == 1.0 else unary("mul_scalar", r, scalar=float(k))
        if kind == "max":
            if k == -math.inf:
                return t
            if k == 0.0:
                return unary("relu", t)
            raise Unsupported(f"max with the constant {k}")
        raise Unsupported(f"'{name}' with a constant operand")

    def _result(self, j: int, sym) -> _T:
        out_value = self.outs[j]
        t = _tensor_type(out_value.type)
        dtype = self.uniform or t.dtype
        if isinstance(sym, _Red):
            if sym.j != j:
                raise Unsupported("a reduction yields another result's accumulator")
            return self._reduction(j, sym, t, dtype)
        if self.reductions:
            raise Unsupported("a result of a reduction generic that is not a reduction")
        if not isinstance(sym, _T):
            raise Unsupported("a result that is a constant (a fill)")
        m = self.maps[self.n_in + j]
        if len(m.results) != self.n_loops or any(not isinstance(e, ir.AffineDimExpr) or e.position != k
                                                 for k, e in enumerate(m.results)):
            raise Unsupported(f"output map {m} is not the identity")
        if sym.shape != t.shape:
            raise Unsupported("the body's value must be broadcast to the result shape (no opset op does)")
        return sym

    def _reduction(self, j: int, red: _Red, t: TensorType, dtype: str) -> _T:
        m = self.maps[self.n_in + j]
        results = list(m.results)
        parallel = [k for k in range(self.n_loops) if k not in self.reductions]
        keepdim = len(results) == self.n_loops and all(
            (isinstance(e, ir.AffineDimExpr) and e.position == k and k in parallel)
            or (isinstance(e, ir.AffineConstantExpr) and e.value == 0 and k in self.reductions)
            for k, e in enumerate(results))
        dropped = len(results) == len(parallel) and all(
            isinstance(e, ir.AffineDimExpr) and e.position == k for e, k in zip(results, parallel))
        if not keepdim and not dropped:
            raise Unsupported(f"reduction output map {m}")
        expr = red.expr
        if tuple(expr.shape) != tuple(self.extents):
            raise Unsupported("the reduced value is broadcast along the iteration space")
        value = expr
        op = "reduce_sum" if red.kind == "sum" else "reduce_max"
        for k in self.reductions:
            value = self.b.node(op, [value], TensorType(shapes.reduce(value.shape, k), dtype), dim=k)
        keep_type = TensorType(value.shape, t.dtype)
        result_vid = self.reader.ids[self.op.results[j]]
        if dropped and len(self.reductions):
            for use in self.op.results[j].uses:
                user = use.owner.operation
                if user.name != "tensor.expand_shape" or _tensor_type(user.results[0].type) != keep_type:
                    raise Unsupported("a rank-dropping reduction whose result is used other than through a "
                                      "'tensor.expand_shape' back to the kept dims")
            self.virtual[result_vid] = keep_type
        return self.reader.combine_init(self.b, value, self.outs[j], red.kind, keepdim)


# -------------------------------------------------------------------------------------------------
# Step 2: grouping, assembling, idioms


def plan_block(info: BlockInfo, apply_idioms: bool = True) -> Plan:
    """The converted subgraphs of a block and the compute ops left alone (with reasons)."""
    left: dict[int, str] = {op.index: op.why for op in info.ops if op.why}
    supported = {op.index for op in info.ops if op.recipe is not None}
    while True:
        _close_virtual(info, supported, left)
        groups = _levels(info, supported)
        subgraphs, rejected = [], {}
        consumers = info.consumers(supported)
        for ops in groups:
            sub = _assemble(info, ops, consumers)
            if apply_idioms:
                graph, origins = idioms.apply_idioms(sub.graph)
                origins = tuple(tuple(sorted({o for n in group for o in sub.origins[n]})) for group in origins)
                sub = Subgraph(graph, sub.inputs, sub.results, sub.ops, origins)
            for node, origin in zip(sub.graph.nodes, sub.origins):
                if node.op in idioms.PSEUDO_OPS:
                    for index in origin:
                        rejected[index] = (f"'{node.op}' (from a constant divided by a tensor) has no opset "
                                           "form outside an idiom")
            subgraphs.append(sub)
        if not rejected:
            break
        supported -= set(rejected)
        left.update(rejected)
    for sub in subgraphs:
        errors = verify(sub.graph)
        if errors:
            raise AssertionError(f"converted graph does not verify: {errors[0].message}")
    return Plan(tuple(subgraphs), tuple(sorted(left.items())))


def _close_virtual(info: BlockInfo, supported: set, left: dict) -> None:
    """A virtual value needs its producer and every consumer converted: drop the others too."""
    consumers = info.consumers()
    changed = True
    while changed:
        changed = False
        for v in info.virtual:
            p = info.producers[v]
            ops = [p] + consumers.get(v, [])
            if any(o not in supported for o in ops) and any(o in supported for o in ops):
                for o in ops:
                    if o in supported:
                        supported.discard(o)
                        left.setdefault(o, "it shares a rank-dropped reduction result with an op that stays")
                changed = True


def _levels(info: BlockInfo, supported: set) -> list[list[int]]:
    """Groups supported ops so that no group reads a value that depends on one of its own results
    through an unsupported op: level(s) = max over what it reads of the producer's level (supported)
    or 1 + the deepest level an unsupported producer depends on."""
    level: dict[int, int] = {}  # supported op -> level
    after: dict[int, int] = {}  # unsupported op -> deepest level it depends on (-1: none)
    for op in info.ops:
        i = op.index
        if i in supported:
            reads = op.recipe.inputs
            lv = 0
            for v in reads:
                p = info.producers[v]
                if p is None:
                    continue
                lv = max(lv, level[p] if p in supported else after[p] + 1)
            level[i] = lv
        else:
            deepest = -1
            for v in op.uses:
                p = info.producers[v]
                if p is None:
                    continue
                deepest = max(deepest, level[p] if p in supported else after[p])
            after[i] = deepest
    groups: dict[int, list[int]] = {}
    for i in sorted(level):
        groups.setdefault(level[i], []).append(i)
    return [groups[k] for k in sorted(groups)]


def _assemble(info: BlockInfo, ops: list[int], consumers: dict[int, list[int]]) -> Subgraph:
    """One Graph from the recipes of `ops` (in block order)."""
    members = set(ops)
    graph_value: dict[int, int] = {}  # block value id -> graph value id
    inputs: list[int] = []
    nodes: list[Node] = []
    origins: list[tuple[int, ...]] = []
    produced: list[tuple[int, int]] = []  # (block value, graph value) of member results
    # Inputs first (graph numbering): values read by a member but produced outside the group.
    for i in ops:
        for v in info.ops[i].recipe.inputs:
            p = info.producers[v]
            if (p is None or p not in members) and v not in graph_value:
                graph_value[v] = len(inputs)
                inputs.append(v)
    n_values = len(inputs)
    for i in ops:
        recipe = info.ops[i].recipe
        local = [graph_value[v] for v in recipe.inputs]
        for node in recipe.graph.nodes:
            nodes.append(Node(node.op, tuple(local[x] for x in node.inputs), node.types, node.attrs))
            origins.append((i,))
            local.append(n_values)
            n_values += 1
        for vid, out_index in recipe.results:
            g = local[recipe.graph.outputs[out_index]]
            graph_value[vid] = g
            produced.append((vid, g))
    outputs: list[int] = []
    results = []
    for vid, g in produced:
        if any(c not in members for c in consumers.get(vid, [])):
            if vid in info.virtual:
                raise AssertionError("a rank-dropped value escapes its subgraph")
            if g not in outputs:
                outputs.append(g)
            results.append((vid, outputs.index(g)))
    graph = Graph(tuple(info.types[v] for v in inputs), tuple(nodes), tuple(outputs))
    return Subgraph(graph, tuple(inputs), tuple(results), tuple(ops), tuple(origins))


# -------------------------------------------------------------------------------------------------
# Helpers on MLIR objects


def _tensor_type(t: ir.Type) -> TensorType | None:
    if not isinstance(t, ir.RankedTensorType):
        return None
    shape = tuple(None if t.is_dynamic_dim(i) else t.get_dim_size(i) for i in range(t.rank))
    return TensorType(shape, str(t.element_type))


def _float_tensor(t: ir.Type, what: str) -> TensorType:
    tt = _tensor_type(t)
    if tt is None or tt.dtype not in FLOAT_TYPES:
        raise Unsupported(f"'{what}' on {t} (the opset takes tensors of {', '.join(FLOAT_TYPES)})")
    return tt


def _constant_of(value: ir.Value):
    """The Python value of a scalar `arith.constant` (float or int), else None."""
    owner = value.owner
    if not isinstance(owner, (ir.Operation, ir.OpView)):
        return None
    owner = owner.operation
    if owner.name != "arith.constant":
        return None
    attr = owner.attributes["value"]
    if isinstance(attr, ir.FloatAttr):
        return float(attr.value)
    if isinstance(attr, ir.IntegerAttr) and not isinstance(attr.type, ir.IndexType):
        return int(attr.value)
    return None


def _fold(name: str, args: list, dtype: str):
    """Constant folding of scalar body ops (e.g. `arith.truncf %eps : f64 to f16`), rounded to `dtype`."""
    fns = {"arith.extf": lambda x: x, "arith.truncf": lambda x: x, "arith.negf": lambda x: -x,
           "arith.addf": lambda x, y: x + y, "arith.subf": lambda x, y: x - y,
           "arith.mulf": lambda x, y: x * y, "arith.divf": lambda x, y: x / y if y else math.copysign(math.inf, x)}
    if name not in fns or dtype not in FLOAT_TYPES:
        raise Unsupported(f"'{name}' on constants")
    return float(round_to(np.asarray(fns[name](*[float(a) for a in args]), np.float64), dtype))


def _max_finite(dtype: str) -> float:
    return {"f16": 65504.0, "bf16": 3.3895313892515355e38, "f32": float(np.finfo(np.float32).max),
            "f64": float(np.finfo(np.float64).max)}[dtype]


def _has_uses(value: ir.Value) -> bool:
    for _ in value.uses:
        return True
    return False


def nested_ops(op: ir.Operation):
    """Every op nested in op's regions, in pre-order; a stack, not recursion (regions nest deep)."""
    stack = [iter(_ops_of(op))]
    while stack:
        inner = next(stack[-1], None)
        if inner is None:
            stack.pop()
            continue
        yield inner
        stack.append(iter(_ops_of(inner)))


def _ops_of(op: ir.Operation):
    return [inner.operation for region in op.regions for block in region.blocks for inner in block.operations]


def _defined_outside(value: ir.Value, op: ir.Operation) -> bool:
    """Whether `value` (used inside a region of `op`) is defined outside `op`."""
    owner = value.owner
    node = owner.operation if isinstance(owner, (ir.Operation, ir.OpView)) else owner.owner
    # `node` is the op defining the value (or the op owning the block of a block argument).
    while node is not None:
        if node == op:
            return False
        node = node.parent
    return True


def _backward_slice(body_ops: list, values: list) -> list:
    """The body ops (in order) that the yielded `values` depend on."""
    needed = set(values)
    keep = []
    for o in reversed(body_ops):
        if any(r in needed for r in o.results):
            keep.append(o)
            needed.update(o.operands)
    return list(reversed(keep))
