"""`mirage-specialize-dims`: a function whose arguments have a dynamic leading dim (torch.export's
dynamic batch: `tensor<?x4096xf16>`, `tensor.dim`, `tensor.empty(%dim)`, `cf.assert` broadcast
checks) becomes static specializations `@f__n<size>`, one per size in `sizes`, and `@f` a
`mirage.dispatch` over them (mirage_mlir/dispatch.py: a call of size n means the smallest size >= n
on zero-padded inputs, the first n rows kept; the compiled kernels instead take n and touch no row
past it). Each specialization records which argument and result dims are dynamic
(`mirage.specialization`), for the lowering; the function as given stays, private, as the
dispatch's reference (`@f__mirage_dynamic`, `mirage.reference`), which mirage-verify checks the
dispatch against at sizes between the compiled ones.

That is exact only where rows along the dynamic dim are computed independently; the pass proves
that first and refuses the function otherwise (error at the op that mixes rows): every dynamic dim
is one size (the `?`s of arguments, results and `tensor.empty` operands all come from it), the
leading dim of its tensor, and every linalg op maps it to a parallel loop that every result keeps (a
reduction over it, or a loop that drops it, mixes rows). In a specialization `tensor.dim` of that
dim is the size, and a `cf.assert` whose condition is then decided is removed when it holds and an
error when it fails. The later passes (convert, superoptimize, verify, lower) see static functions.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import mlir.ir as ir
from mlir.dialects import arith, func, tensor

from mirage_mlir.diagnostics import remark
from mirage_mlir.dialects.host import DISPATCH
from mirage_mlir.search.reference import REFERENCE_ATTR, REFERENCE_FUNCTION_ATTR, find_function, functions

from .registry import Pass, PassError, option

# named linalg ops as (loop index per dim of each operand, inputs then the output; iterator kinds)
NAMED_MAPS = {
    "linalg.matmul": (((0, 2), (2, 1), (0, 1)), ("parallel", "parallel", "reduction")),
    "linalg.batch_matmul": (((0, 1, 3), (0, 3, 2), (0, 1, 2)), ("parallel",) * 3 + ("reduction",)),
}
NEUTRAL = ("arith.constant", "arith.cmpi", "cf.assert", "func.return")
# on each copy: {of = @f, size = N, inputs / outputs = the dynamic dim of each (-1: none)}, which the
# lowering masks (rows past the call's count are neither read nor written) and the remarks name
SPECIALIZATION_ATTR = "mirage.specialization"
SLOTS = DISPATCH.operands[0].max_count  # mirage.dispatch's operands (and results) at most


@dataclasses.dataclass
class MirageSpecializeDims(Pass):
    NAME: ClassVar[str] = "mirage-specialize-dims"
    SUMMARY: ClassVar[str] = "Compile functions with a dynamic dim as static specializations and a dispatch"

    sizes: str = option("1,8,16,32,64", "the specializations' sizes (comma-separated, increasing); a call "
                                        "may have any size from 1 to the largest")
    remarks: bool = option(True, "a remark per specialized function: the sizes it was compiled at")

    def run(self, module) -> None:
        root = module.operation if hasattr(module, "operation") else module
        sizes = self.parse_sizes(root)
        for fn in list(functions(root)):
            if _is_dynamic(fn) and "mirage.num_inputs" not in fn.attributes:
                self.specialize(root, fn, sizes)

    def parse_sizes(self, root) -> list[int]:
        try:
            sizes = [int(s) for s in self.sizes.split(",")]
        except ValueError:
            sizes = []
        if not sizes or sizes != sorted(set(sizes)) or sizes[0] < 1:
            raise PassError(root, f"mirage-specialize-dims: sizes must be increasing positive integers, "
                                  f"got '{self.sizes}'")
        return sizes

    def specialize(self, root, fn, sizes: list[int]) -> None:
        name = ir.StringAttr(fn.attributes["sym_name"]).value
        problem = rows_independent(fn)
        if problem is not None:
            op, why = problem
            raise PassError(op, f"mirage-specialize-dims: cannot specialize @{name}: {why}")
        args, results = list(_function_type(fn).inputs), list(_function_type(fn).results)
        if max(len(args), len(results)) > SLOTS:
            raise PassError(fn, f"mirage-specialize-dims: cannot specialize @{name}: mirage.dispatch takes at most "
                                f"{SLOTS} operands and results")
        taken = [n for n in [f"{name}__n{size}" for size in sizes] + [f"{name}__mirage_dynamic"]
                 if find_function(root, n) is not None]
        if taken:
            raise PassError(fn, f"mirage-specialize-dims: cannot specialize @{name}: @{taken[0]} exists already")
        callees = [_specialization(fn, f"{name}__n{size}", size) for size in sizes]
        with fn.location:  # the program as given, for mirage-verify's checks between the sizes
            reference = fn.clone(ip=ir.InsertionPoint(fn))
        reference.attributes["sym_name"] = ir.StringAttr.get(f"{name}__mirage_dynamic")
        reference.attributes["sym_visibility"] = ir.StringAttr.get("private")
        reference.attributes[REFERENCE_FUNCTION_ATTR] = ir.UnitAttr.get()
        if self.remarks:
            remark(fn.location, f"mirage-specialize-dims: @{name} compiled at sizes {', '.join(map(str, sizes))} "
                                f"of its dynamic dims (rows along them are computed independently: a call of "
                                f"size n runs the smallest size >= n, on n rows)")
        block = fn.regions[0].blocks[0]
        for op in reversed(list(block.operations)):
            op.operation.erase()
        with ir.InsertionPoint(block), fn.location:
            dispatch = ir.Operation.create(
                "mirage.dispatch", results=results, operands=list(block.arguments),
                attributes={
                    "sizes": ir.DenseI64ArrayAttr.get(sizes),
                    "callees": ir.ArrayAttr.get([ir.FlatSymbolRefAttr.get(c) for c in callees]),
                    "operandSegmentSizes": ir.DenseI32ArrayAttr.get(_segments(len(block.arguments), SLOTS)),
                    "resultSegmentSizes": ir.DenseI32ArrayAttr.get(_segments(len(results), SLOTS)),
                    REFERENCE_ATTR: ir.FlatSymbolRefAttr.get(f"{name}__mirage_dynamic"),
                })
            func.ReturnOp(list(dispatch.results))


@dataclasses.dataclass(frozen=True)
class Specialization:
    """What SPECIALIZATION_ATTR records on a copy: the function it specializes, its size, and per
    argument and result the dynamic dim (-1: none)."""

    of: str
    size: int
    inputs: tuple
    outputs: tuple


def specialization(fn) -> Specialization | None:
    """The record of a specialization made by this pass, or None for any other function."""
    if SPECIALIZATION_ATTR not in fn.attributes:
        return None
    spec = ir.DictAttr(fn.attributes[SPECIALIZATION_ATTR])
    return Specialization(ir.FlatSymbolRefAttr(spec["of"]).value, ir.IntegerAttr(spec["size"]).value,
                          tuple(ir.DenseI64ArrayAttr(spec["inputs"])), tuple(ir.DenseI64ArrayAttr(spec["outputs"])))


def _function_type(fn) -> ir.FunctionType:
    return ir.FunctionType(ir.TypeAttr(fn.attributes["function_type"]).value)


def _segments(n: int, slots: int) -> list[int]:
    return [1] * n + [0] * (slots - n)


def _is_dynamic(fn) -> bool:
    ftype = _function_type(fn)
    return any(_dynamic_dims(t) for t in list(ftype.inputs) + list(ftype.results))


def _dynamic_dims(t: ir.Type) -> set[int]:
    if not isinstance(t, ir.RankedTensorType):
        return set()
    rt = ir.RankedTensorType(t)
    return {d for d in range(rt.rank) if rt.is_dynamic_dim(d)}


def rows_independent(fn):
    """None when every dynamic dim of `fn` is one size along which rows are computed independently;
    else (op, why). `rows[v]`: the dims of tensor v that run along that size; `sizes`: the index
    values that are it (tensor.dim of such a dim)."""
    block = fn.regions[0].blocks[0]
    ftype = _function_type(fn)
    for t in list(ftype.inputs) + list(ftype.results):
        dims = _dynamic_dims(t)
        if dims - {0} or (dims and ir.RankedTensorType(t).rank < 2):
            return fn, (f"{t} has a dynamic dim other than a leading one (of two or more): the compiled kernels "
                        f"take a row count of the leading dim, the rows laid out one after the other")
    rows = {arg: _dynamic_dims(arg.type) for arg in block.arguments}
    sizes = set()
    for op in block.operations:
        op = op.operation
        if op.name == "tensor.dim":
            index = _constant_index(op.operands[1])
            if index is None or index not in rows.get(op.operands[0], set()):
                if index is None or index in _dynamic_dims(op.operands[0].type):
                    return op, "a tensor.dim of a dynamic dim at an index that is not a constant"
                continue
            sizes.add(op.results[0])
        elif op.name == "tensor.empty":
            if any(v not in sizes for v in op.operands):
                return op, "a tensor.empty sized by something other than the dynamic size"
            rows[op.results[0]] = _dynamic_dims(op.results[0].type)
        elif op.name == "linalg.fill":
            rows[op.results[0]] = rows.get(op.operands[1], set())
        elif op.name == "linalg.generic" or op.name in NAMED_MAPS:
            why = _structured_rows(op, rows)
            if why:
                return op, why
        elif op.name in NEUTRAL:
            if op.name == "func.return" and any(_dynamic_dims(v.type) - rows.get(v, set()) for v in op.operands):
                return op, "a result's dynamic dim does not follow the dynamic size"
        elif any(_dynamic_dims(v.type) for v in list(op.operands) + list(op.results)) or \
                any(v in sizes for v in op.operands):
            return op, f"'{op.name}' is not known to keep rows along the dynamic dim independent"
        for v in op.results:
            if _dynamic_dims(v.type) - rows.get(v, set()):
                return op, "a dynamic dim that does not follow the arguments' dynamic size"
    return None


def _structured_rows(op, rows: dict) -> str | None:
    """Records the row dims of a linalg op's results; why rows mix, if they do."""
    if op.name in NAMED_MAPS:
        loops, iterators = NAMED_MAPS[op.name]
    else:
        loops = []
        for attr in ir.ArrayAttr(op.attributes["indexing_maps"]):
            amap = ir.AffineMapAttr(attr).value
            loops.append(tuple(e.position if isinstance(e, ir.AffineDimExpr) else None
                               for e in amap.results))
        iterators = tuple("parallel" if "parallel" in str(a) else "reduction"
                          for a in ir.ArrayAttr(op.attributes["iterator_types"]))
    operands = list(op.operands)
    n_out = len(op.results)
    row_loops = set()
    for value, dims in zip(operands, loops):
        for d in rows.get(value, set()):
            if dims[d] is None or iterators[dims[d]] != "parallel":
                return "it reduces over the dynamic dim (or indexes it by an expression)"
            row_loops.add(dims[d])
    for value, dims in zip(operands, loops):
        for d, loop in enumerate(dims):
            if loop in row_loops and d not in rows.get(value, set()):
                return "an operand of static size runs along the dynamic dim"
    for result, dims in zip(op.results, loops[len(loops) - n_out:]):
        kept = {d for d, loop in enumerate(dims) if loop in row_loops}
        if {loop for loop in dims if loop in row_loops} != row_loops:
            return "a result drops the dynamic dim (its rows would be combined)"
        rows[result] = kept
    return None


def _row_dim(t: ir.Type) -> int:
    """The dynamic dim of an argument or result type, or -1 (rows_independent allows one)."""
    dims = _dynamic_dims(t)
    return dims.pop() if dims else -1


def _constant_index(value: ir.Value) -> int | None:
    owner = value.owner
    owner = owner.operation if hasattr(owner, "operation") else owner
    if isinstance(owner, ir.Operation) and owner.name == "arith.constant":
        return ir.IntegerAttr(owner.attributes["value"]).value
    return None


def _static(t: ir.Type, size: int) -> ir.Type:
    if not isinstance(t, ir.RankedTensorType):
        return t
    rt = ir.RankedTensorType(t)
    shape = [size if rt.is_dynamic_dim(d) else rt.get_dim_size(d) for d in range(rt.rank)]
    return ir.RankedTensorType.get(shape, rt.element_type, rt.encoding, loc=ir.Location.unknown())


def _specialization(fn, name: str, size: int) -> str:
    """A copy of `fn` named `name` with every dynamic dim `size`: tensor.dim of it folded to the
    size, tensor.empty made static, cf.asserts decided by it removed (an error when one fails)."""
    with fn.location:
        copy = fn.clone(ip=ir.InsertionPoint(fn))
    copy.attributes["sym_name"] = ir.StringAttr.get(name)
    copy.attributes["sym_visibility"] = ir.StringAttr.get("private")
    ftype = _function_type(fn)
    copy.attributes[SPECIALIZATION_ATTR] = ir.DictAttr.get({
        "of": ir.FlatSymbolRefAttr.get(ir.StringAttr(fn.attributes["sym_name"]).value),
        "size": ir.IntegerAttr.get(ir.IntegerType.get_signless(64), size),
        "inputs": ir.DenseI64ArrayAttr.get([_row_dim(t) for t in ftype.inputs]),
        "outputs": ir.DenseI64ArrayAttr.get([_row_dim(t) for t in ftype.results])})
    copy.attributes["function_type"] = ir.TypeAttr.get(ir.FunctionType.get(
        [_static(t, size) for t in ftype.inputs], [_static(t, size) for t in ftype.results]))
    block = copy.regions[0].blocks[0]
    for arg in block.arguments:
        arg.set_type(_static(arg.type, size))
    for op in list(block.operations):
        op = op.operation
        with ir.InsertionPoint(op), op.location:
            if op.name == "tensor.dim":
                op.results[0].replace_all_uses_with(arith.ConstantOp(ir.IndexType.get(), size).result)
                op.erase()
                continue
            if op.name == "tensor.empty" and len(op.operands):
                t = ir.RankedTensorType(_static(op.results[0].type, size))
                op.results[0].replace_all_uses_with(tensor.EmptyOp(t.shape, t.element_type).result)
                op.erase()
                continue
            if op.name == "cf.assert":
                holds = _decided(op.operands[0])
                if holds is False:
                    message = ir.StringAttr(op.attributes["msg"]).value
                    raise PassError(op, f"mirage-specialize-dims: at size {size} this assertion fails: {message}")
                if holds:
                    op.erase()
                continue
            for result in op.results:
                result.set_type(_static(result.type, size))
    _erase_dead(block)
    return name


def _decided(condition: ir.Value) -> bool | None:
    """The value of an `arith.cmpi eq|ne` of two constants, else None."""
    owner = condition.owner
    owner = owner.operation if hasattr(owner, "operation") else owner
    if not isinstance(owner, ir.Operation) or owner.name != "arith.cmpi":
        return None
    a, b = (_constant_index(v) for v in owner.operands)
    predicate = ir.IntegerAttr(owner.attributes["predicate"]).value
    if a is None or b is None or predicate not in (0, 1):  # eq, ne
        return None
    return (a == b) == (predicate == 0)


def _erase_dead(block: ir.Block) -> None:
    """Removes the index arithmetic the folding left unused (constants, comparisons)."""
    for op in reversed(list(block.operations)):
        op = op.operation
        if op.name in ("arith.constant", "arith.cmpi") and all(not list(r.uses) for r in op.results):
            op.erase()
