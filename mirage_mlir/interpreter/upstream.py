"""Interpreter handlers for upstream dialects: func, cf (assert), arith, math, tensor, linalg.

Elementwise handlers work on whole arrays, so the same code evaluates scalar ops,
elementwise ops on tensors, and `linalg.generic` bodies vectorized over the iteration
space (see `_structured`).
"""

from __future__ import annotations

import math
import re

import mlir.ir as ir
import numpy as np

from .core import (
    BF16,
    InterpreterError,
    compute_dtype,
    element_type,
    numpy_dtype,
    register,
    shape_of,
    to_storage,
)

try:
    from scipy.special import erf as _erf, erfc as _erfc  # type: ignore
except ImportError:  # pragma: no cover - depends on the environment
    _erf = np.vectorize(math.erf, otypes=[np.float64])
    _erfc = np.vectorize(math.erfc, otypes=[np.float64])


# --------------------------------------------------------------------------- helpers


def _f(x) -> np.ndarray:
    """A float array in compute precision (f16/bf16 -> float32)."""
    x = np.asarray(x)
    if x.dtype == np.float16 or (BF16 is not None and x.dtype == BF16):
        return x.astype(np.float32)
    return x


def _u(x) -> np.ndarray:
    """An integer array reinterpreted as unsigned (arith's *ui ops)."""
    x = np.asarray(x)
    if x.dtype.kind == "i":
        return x.astype(np.dtype(f"uint{x.dtype.itemsize * 8}"))
    return x


def _int_attr(op, name: str) -> int:
    return ir.IntegerAttr(op.attributes[name]).value


def _i64_array(op, name: str) -> list[int]:
    return list(ir.DenseI64ArrayAttr(op.attributes[name]))


def _result_type(op, i: int = 0) -> ir.Type:
    return op.results[i].type


def _users(value: ir.Value) -> list:
    return [use.owner.operation for use in value.uses]


def _defining_op(value: ir.Value):
    return value.owner.operation if isinstance(value, ir.OpResult) else None


def _fill_dynamic(static: list[int], dynamic_values: list) -> list[int]:
    """Static sizes with the dynamic sentinel replaced, in order, by `dynamic_values`."""
    dyn = ir.ShapedType.get_dynamic_size()
    values = iter(int(v) for v in dynamic_values)
    return [next(values) if s == dyn else s for s in static]


# --------------------------------------------------------------------------- func


@register("func.return", "linalg.yield", terminator=True)
def _return(interp, op, args):
    return args


@register("func.call")
def _call(interp, op, args):
    callee = ir.FlatSymbolRefAttr(op.attributes["callee"]).value
    if callee not in interp.functions:
        raise InterpreterError(op.location, f"call to unknown function '@{callee}'")
    return interp.call(interp.functions[callee], args)


# --------------------------------------------------------------------------- cf


@register("cf.assert")
def _assert(interp, op, args):
    """Checks torch-mlir emits around ops on dynamic shapes (e.g. "mismatched size for
    broadcast" when two `?` dims differ at run time). A false condition is an error of the
    program at the assert, so it stops the run there instead of failing later in an op
    whose operand shapes disagree."""
    if not np.all(np.asarray(args[0])):
        message = ir.StringAttr(op.attributes["msg"]).value
        raise InterpreterError(op.location, f"assertion failed: {message}")
    return []


# --------------------------------------------------------------------------- arith


@register("arith.constant")
def _constant(interp, op, args):
    attr = op.attributes["value"]
    t = _result_type(op)
    if isinstance(attr, (ir.FloatAttr, ir.IntegerAttr, ir.BoolAttr)):
        return [np.asarray(attr.value)]
    if isinstance(attr, ir.DenseElementsAttr):
        return [_dense_to_array(attr, t)]
    text = str(attr)
    m = re.match(r"dense_resource<([^>]+)>", text)
    if m:
        return [_resource_to_array(interp.resource_blob(m.group(1)), t)]
    raise InterpreterError(op.location, f"no interpreter support for constant '{text[:80]}'")


def _dense_to_array(attr, t) -> np.ndarray:
    shape = [int(d) for d in t.shape]
    try:
        return np.array(attr).reshape(shape)
    except Exception:  # the bindings raise for element types NumPy has no buffer format for
        pass
    # bf16 (and other types NumPy cannot view): read the values back from the text.
    if attr.is_splat:
        return np.full(shape, attr.get_splat_value().value)
    text = str(attr)
    body = text[text.index("<") + 1 : text.rindex(" : ")].rstrip(">")
    if body.startswith('"0x'):
        return _raw_to_array(bytes.fromhex(body[3:-1]), t)
    values = []
    for tok in re.findall(r"0x[0-9A-Fa-f]+|[-+]?(?:inf|nan|\d+\.?\d*(?:[eE][-+]?\d+)?)|true|false", body):
        if tok.startswith("0x"):  # a non-finite float printed as its bit pattern
            values.append(_raw_to_array(int(tok, 16).to_bytes(8, "little"), t, count=1)[0])
        elif tok in ("true", "false"):
            values.append(tok == "true")
        else:
            values.append(float(tok))
    return np.asarray(values).reshape(shape)


def _raw_to_array(data: bytes, t, count: int | None = None) -> np.ndarray:
    """Little-endian element bytes of type `t` -> array (bf16 via its upper 16 bits)."""
    et = element_type(t)
    if isinstance(et, ir.BF16Type):
        bits = np.frombuffer(data, dtype=np.uint16, count=count if count else -1)
        return (bits.astype(np.uint32) << 16).view(np.float32)
    if isinstance(et, ir.IntegerType) and et.width == 1:
        return np.frombuffer(data, dtype=np.uint8, count=count if count else -1).astype(bool)
    dt = numpy_dtype(et)
    return np.frombuffer(data, dtype=dt, count=count if count else -1)


def _resource_to_array(blob: bytes, t) -> np.ndarray:
    # A resource blob starts with its 4-byte alignment.
    shape = [int(d) for d in t.shape]
    return _raw_to_array(blob[4:], t).reshape(shape).copy()


def _elementwise(names_to_fn: dict, wrap):
    for name, fn in names_to_fn.items():
        register(name)(wrap(fn))


def _float_binary(fn):
    return lambda interp, op, args: [fn(_f(args[0]), _f(args[1]))]


def _float_unary(fn):
    return lambda interp, op, args: [fn(_f(args[0]))]


def _round_half_away(x):
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


_elementwise(
    {
        "arith.addf": np.add,
        "arith.subf": np.subtract,
        "arith.mulf": np.multiply,
        "arith.divf": np.divide,
        "arith.remf": np.fmod,
        "arith.maximumf": np.maximum,
        "arith.minimumf": np.minimum,
        "arith.maxnumf": np.fmax,
        "arith.minnumf": np.fmin,
        "math.powf": np.power,
        "math.atan2": np.arctan2,
        "math.copysign": np.copysign,
    },
    _float_binary,
)

_elementwise(
    {
        "arith.negf": np.negative,
        "math.exp": np.exp,
        "math.exp2": np.exp2,
        "math.expm1": np.expm1,
        "math.log": np.log,
        "math.log2": np.log2,
        "math.log10": np.log10,
        "math.log1p": np.log1p,
        "math.sqrt": np.sqrt,
        "math.rsqrt": lambda x: 1.0 / np.sqrt(x),
        "math.tanh": np.tanh,
        "math.sin": np.sin,
        "math.cos": np.cos,
        "math.tan": np.tan,
        "math.asin": np.arcsin,
        "math.acos": np.arccos,
        "math.atan": np.arctan,
        "math.sinh": np.sinh,
        "math.cosh": np.cosh,
        "math.erf": lambda x: _erf(x).astype(x.dtype),
        "math.erfc": lambda x: _erfc(x).astype(x.dtype),
        "math.absf": np.abs,
        "math.floor": np.floor,
        "math.ceil": np.ceil,
        "math.trunc": np.trunc,
        "math.round": _round_half_away,
        "math.roundeven": np.rint,
    },
    _float_unary,
)


@register("math.fma")
def _fma(interp, op, args):
    return [_f(args[0]) * _f(args[1]) + _f(args[2])]


@register("math.fpowi")
def _fpowi(interp, op, args):
    x = _f(args[0])
    return [np.power(x, np.asarray(args[1]).astype(x.dtype))]


@register("math.ipowi")
def _ipowi(interp, op, args):
    base, exp = np.asarray(args[0]), np.asarray(args[1])
    # Negative exponents: 1 and -1 keep a value, everything else truncates to 0.
    safe = np.power(base, np.maximum(exp, 0))
    neg = np.where(base == 1, 1, np.where(base == -1, np.where(exp % 2 == 0, 1, -1), 0))
    return [np.where(exp < 0, neg, safe)]


@register("math.absi")
def _absi(interp, op, args):
    return [np.abs(args[0])]


def _divsi(a, b):
    a, b = np.asarray(a), np.asarray(b)
    b = np.where(b == 0, 1, b)  # division by zero is undefined behaviour: any value will do
    q = a // b
    return q + ((a % b != 0) & ((a < 0) != (b < 0)))


def _ceildivsi(a, b):
    a, b = np.asarray(a), np.asarray(b)
    b = np.where(b == 0, 1, b)
    return -((-a) // b)


def _int_binary(fn):
    return lambda interp, op, args: [fn(np.asarray(args[0]), np.asarray(args[1]))]


_elementwise(
    {
        "arith.addi": np.add,
        "arith.subi": np.subtract,
        "arith.muli": np.multiply,
        "arith.divsi": _divsi,
        "arith.divui": lambda a, b: _u(a) // np.where(_u(b) == 0, 1, _u(b)),
        "arith.remsi": lambda a, b: np.fmod(a, np.where(b == 0, 1, b)),
        "arith.remui": lambda a, b: _u(a) % np.where(_u(b) == 0, 1, _u(b)),
        "arith.floordivsi": lambda a, b: a // np.where(b == 0, 1, b),
        "arith.ceildivsi": _ceildivsi,
        "arith.maxsi": np.maximum,
        "arith.minsi": np.minimum,
        "arith.maxui": lambda a, b: np.maximum(_u(a), _u(b)),
        "arith.minui": lambda a, b: np.minimum(_u(a), _u(b)),
        "arith.andi": np.bitwise_and,
        "arith.ori": np.bitwise_or,
        "arith.xori": np.bitwise_xor,
        "arith.shli": lambda a, b: np.left_shift(a, b.astype(a.dtype)),
        "arith.shrsi": lambda a, b: np.right_shift(a, b.astype(a.dtype)),
        "arith.shrui": lambda a, b: np.right_shift(_u(a), _u(b).astype(_u(a).dtype)),
    },
    _int_binary,
)


def _uno(a, b):
    return np.isnan(a) | np.isnan(b)


# arith.cmpf predicates by their enum value.
_CMPF = {
    0: lambda a, b: np.zeros(np.broadcast(a, b).shape, bool),
    1: lambda a, b: a == b,
    2: lambda a, b: a > b,
    3: lambda a, b: a >= b,
    4: lambda a, b: a < b,
    5: lambda a, b: a <= b,
    6: lambda a, b: ~_uno(a, b) & (a != b),
    7: lambda a, b: ~_uno(a, b),
    8: lambda a, b: _uno(a, b) | (a == b),
    9: lambda a, b: _uno(a, b) | (a > b),
    10: lambda a, b: _uno(a, b) | (a >= b),
    11: lambda a, b: _uno(a, b) | (a < b),
    12: lambda a, b: _uno(a, b) | (a <= b),
    13: lambda a, b: a != b,
    14: _uno,
    15: lambda a, b: np.ones(np.broadcast(a, b).shape, bool),
}

# arith.cmpi predicates: eq ne slt sle sgt sge ult ule ugt uge.
_CMPI = {
    0: lambda a, b: a == b,
    1: lambda a, b: a != b,
    2: lambda a, b: a < b,
    3: lambda a, b: a <= b,
    4: lambda a, b: a > b,
    5: lambda a, b: a >= b,
    6: lambda a, b: _u(a) < _u(b),
    7: lambda a, b: _u(a) <= _u(b),
    8: lambda a, b: _u(a) > _u(b),
    9: lambda a, b: _u(a) >= _u(b),
}


@register("arith.cmpf")
def _cmpf(interp, op, args):
    return [_CMPF[_int_attr(op, "predicate")](_f(args[0]), _f(args[1]))]


@register("arith.cmpi")
def _cmpi(interp, op, args):
    return [_CMPI[_int_attr(op, "predicate")](np.asarray(args[0]), np.asarray(args[1]))]


@register("arith.select")
def _select(interp, op, args):
    return [np.where(args[0], args[1], args[2])]


# Casts: the interpreter rounds/wraps every result to its declared type (to_storage),
# so most casts only have to produce the value in a wide enough dtype.
@register("arith.extf", "arith.truncf")
def _float_cast(interp, op, args):
    return [np.asarray(args[0]).astype(compute_dtype(_result_type(op)))]


@register("arith.sitofp")
def _sitofp(interp, op, args):
    a = np.asarray(args[0])
    return [-a.astype(np.float64) if a.dtype == np.bool_ else a.astype(np.float64)]  # i1 true is -1


@register("arith.uitofp")
def _uitofp(interp, op, args):
    return [_u(args[0]).astype(np.float64)]


@register("arith.fptosi", "arith.fptoui")
def _fptoint(interp, op, args):
    return [np.trunc(_f(args[0]))]


@register("arith.extsi")
def _extsi(interp, op, args):
    a = np.asarray(args[0])
    return [-a.astype(np.int64) if a.dtype == np.bool_ else a.astype(np.int64)]


@register("arith.extui", "arith.index_castui")
def _extui(interp, op, args):
    return [_u(args[0]).astype(np.uint64)]


@register("arith.trunci", "arith.index_cast")
def _int_cast(interp, op, args):
    return [np.asarray(args[0])]


@register("arith.bitcast")
def _bitcast(interp, op, args):
    a = np.asarray(args[0])
    dt = numpy_dtype(_result_type(op))
    if a.dtype.itemsize != dt.itemsize or a.dtype == np.bool_:
        raise InterpreterError(op.location, "no interpreter support for this arith.bitcast (bf16 or i1)")
    return [np.ascontiguousarray(a).view(dt)]


# --------------------------------------------------------------------------- tensor


@register("tensor.empty")
def _empty(interp, op, args):
    t = _result_type(op)
    shape = _fill_dynamic(list(t.shape), args)
    return [np.zeros(shape, numpy_dtype(t))]


@register("tensor.cast")
def _tensor_cast(interp, op, args):
    return [args[0]]


def _reshaped(src: np.ndarray, shape: list[int], what: str) -> np.ndarray:
    """src in `shape`, or an error that says why not (sizes only known at run time can disagree)."""
    if any(d < 0 for d in shape) or int(np.prod(shape)) != src.size:
        raise ValueError(f"{what} {tuple(shape)} does not hold the source's {src.size} elements "
                         f"(shape {tuple(src.shape)})")
    return np.reshape(src, shape)


@register("tensor.expand_shape")
def _expand_shape(interp, op, args):
    shape = _fill_dynamic(_i64_array(op, "static_output_shape"), args[1:])
    return [_reshaped(args[0], shape, "the output shape")]


@register("tensor.collapse_shape")
def _collapse_shape(interp, op, args):
    src = args[0]
    groups = [[ir.IntegerAttr(d).value for d in g] for g in op.attributes["reassociation"]]
    shape = [int(np.prod([src.shape[d] for d in g])) for g in groups]
    return [np.reshape(src, shape)]


@register("tensor.reshape")
def _reshape(interp, op, args):
    return [_reshaped(args[0], [int(s) for s in np.asarray(args[1]).reshape(-1)], "the shape operand")]


def _slice_params(op, dynamic: list):
    """(index tuple, sizes) of an extract/insert_slice, dynamic operands filled in."""
    dyn = ir.ShapedType.get_dynamic_size()
    params = []
    for name in ("static_offsets", "static_sizes", "static_strides"):
        static = _i64_array(op, name)
        count = sum(1 for s in static if s == dyn)
        params.append(_fill_dynamic(static, dynamic[:count]))
        dynamic = dynamic[count:]
    offsets, sizes, strides = params
    index = tuple(
        slice(o, o + (s - 1) * st + 1, st) if s > 0 else slice(o, o) for o, s, st in zip(offsets, sizes, strides)
    )
    return index, sizes


@register("tensor.extract_slice")
def _extract_slice(interp, op, args):
    src = args[0]
    index, sizes = _slice_params(op, args[1:])
    part = src[index]
    if list(part.shape) != sizes:
        raise InterpreterError(op.location, f"slice {sizes} is out of bounds of shape {list(src.shape)}")
    # Rank-reducing slices drop unit dims: any reshape to the result rank keeps the order.
    shape = list(sizes)
    while len(shape) > len(shape_of(_result_type(op))):
        shape.remove(1)
    return [np.array(part.reshape(shape))]


@register("tensor.insert_slice")
def _insert_slice(interp, op, args):
    src, dest = args[0], np.array(args[1])
    index, sizes = _slice_params(op, args[2:])
    dest[index] = np.reshape(src, sizes)
    return [dest]


@register("tensor.extract")
def _extract(interp, op, args):
    return [np.asarray(args[0][tuple(int(i) for i in args[1:])])]


@register("tensor.insert")
def _insert(interp, op, args):
    dest = np.array(args[1])
    dest[tuple(int(i) for i in args[2:])] = args[0]
    return [dest]


@register("tensor.dim")
def _dim(interp, op, args):
    return [np.asarray(args[0].shape[int(args[1])], dtype=np.int64)]


@register("tensor.from_elements")
def _from_elements(interp, op, args):
    return [np.stack([np.asarray(a) for a in args]).reshape(list(_result_type(op).shape))]


@register("tensor.splat")
def _splat(interp, op, args):
    t = _result_type(op)
    return [np.full(_fill_dynamic(list(t.shape), args[1:]), args[0])]


@register("tensor.concat")
def _concat(interp, op, args):
    return [np.concatenate(args, axis=_int_attr(op, "dim"))]


# --------------------------------------------------------------------------- linalg: simple ops


@register("linalg.fill")
def _fill(interp, op, args):
    return [np.broadcast_to(np.asarray(args[0]), args[1].shape).copy()]


@register("linalg.transpose")
def _transpose(interp, op, args):
    return [np.transpose(args[0], _i64_array(op, "permutation")).copy()]


@register("linalg.broadcast")
def _broadcast(interp, op, args):
    src, init = args
    added = _i64_array(op, "dimensions")
    return [np.broadcast_to(np.expand_dims(src, added), init.shape).copy()]


@register("linalg.softmax")
def _softmax(interp, op, args):
    x = _f(args[0])
    dim = _int_attr(op, "dimension")
    e = np.exp(x - np.max(x, axis=dim, keepdims=True))
    return [e / np.sum(e, axis=dim, keepdims=True)]


@register("linalg.index")
def _index(interp, op, args):
    if not interp.loop_indices:
        raise InterpreterError(op.location, "linalg.index outside a linalg op")
    return [interp.loop_indices[-1][_int_attr(op, "dim")]]


# --------------------------------------------------------------------------- linalg: structured ops


def _unsupported(what: str, detail: str):
    return InterpreterError(None, f"unsupported {what} form: {detail}")


def _parse_map(amap: ir.AffineMap, what: str) -> list[int | None]:
    """Results of a projected-permutation map: dim positions, None for a constant 0."""
    if amap.n_symbols:
        raise _unsupported(what, f"indexing map with symbols {amap}")
    out = []
    for e in amap.results:
        if isinstance(e, ir.AffineDimExpr):
            out.append(e.position)
        elif isinstance(e, ir.AffineConstantExpr) and e.value == 0:
            out.append(None)
        else:
            raise _unsupported(what, f"indexing map {amap}")
    dims = [d for d in out if d is not None]
    if len(set(dims)) != len(dims):
        raise _unsupported(what, f"indexing map {amap} repeats a dim")
    return out


def _maps_attr(op, what: str):
    maps = [ir.AffineMapAttr(a).value for a in op.attributes["indexing_maps"]]
    n = maps[0].n_dims if maps else 0
    return [_parse_map(m, what) for m in maps], n


def _to_space(arr: np.ndarray, m: list, sizes: list) -> np.ndarray:
    """View of operand `arr` over the iteration space: axis d is dim d, size 1 where unused."""
    a = np.asarray(arr)
    if None in m:
        a = a[tuple(0 if d is None else slice(None) for d in m)]
    dims = [d for d in m if d is not None]
    a = a.transpose(np.argsort(dims, kind="stable")) if dims else a
    shape = [1] * len(sizes)
    for d in dims:
        shape[d] = sizes[d]
    return a.reshape(shape)


def _from_space(a: np.ndarray, m: list, sizes: list, out_shape) -> np.ndarray:
    """Inverse of `_to_space` for an output: `a` (size 1 on dims not in `m`) -> tensor layout."""
    dims = [d for d in m if d is not None]
    keep = sorted(dims)
    target = [sizes[d] if d in dims else 1 for d in range(len(sizes))]
    a = np.broadcast_to(a, target).reshape([sizes[d] for d in keep])
    a = a.transpose([keep.index(d) for d in dims]) if dims else a
    return np.array(a.reshape(out_shape))


def _loop_sizes(n: int, operands: list, maps: list, what: str) -> list[int]:
    sizes: list[int | None] = [None] * n
    for i, (arr, m) in enumerate(zip(operands, maps)):
        if np.ndim(arr) != len(m):
            raise _unsupported(what, f"operand #{i} has rank {np.ndim(arr)} but its map has {len(m)} results")
        for axis, d in enumerate(m):
            size = np.shape(arr)[axis]
            if d is None:
                if size < 1:
                    raise InterpreterError(None, f"operand #{i} is empty along a dim indexed by 0")
            elif sizes[d] is None:
                sizes[d] = size
            elif sizes[d] != size:
                raise InterpreterError(None, f"operand shapes disagree on the size of loop dim d{d}: {sizes[d]} vs {size}")
    if None in sizes:
        raise _unsupported(what, f"size of loop dim d{sizes.index(None)} cannot be inferred")
    return sizes  # type: ignore[return-value]


# combine op -> ufunc that combines and reduces.
_COMBINERS = {
    "arith.addf": np.add,
    "arith.mulf": np.multiply,
    "arith.maximumf": np.maximum,
    "arith.minimumf": np.minimum,
    "arith.maxnumf": np.fmax,
    "arith.minnumf": np.fmin,
    "arith.addi": np.add,
    "arith.muli": np.multiply,
    "arith.maxsi": np.maximum,
    "arith.minsi": np.minimum,
    "arith.andi": np.bitwise_and,
    "arith.ori": np.bitwise_or,
    "arith.xori": np.bitwise_xor,
}
_MAX_COMBINERS = ("arith.maximumf", "arith.maxnumf")
_MIN_COMBINERS = ("arith.minimumf", "arith.minnumf")
# cmpf predicates of arg-max/arg-min: ogt, oge, olt, ole.
_ARG_PREDICATES = {2: (">", False), 3: (">=", True), 4: ("<", False), 5: ("<=", True)}

# Iteration spaces larger than this are evaluated in chunks along a parallel dim.
CHUNK_ELEMENTS = 1 << 22


class _Combine:
    """Output yielding `combine(x, out)`; `product` = (p, q) when x = p * q is contracted."""

    def __init__(self, op, x):
        self.op, self.x, self.product = op, x, None


class _ArgBest:
    """Output yielding `select(cmpf(pred, x_j, out_j), index(r), out_k)`: arg-max/arg-min of output j."""

    def __init__(self, j: int, predicate: int):
        self.j, self.predicate = j, predicate


def _analyze_reduction(block, n_in: int, n_out: int, red: list, what: str):
    """Recognize the per-output forms of a body with reduction iterators."""
    args = list(block.arguments)
    out_args = args[n_in:]
    term = list(block.operations)[-1]
    yielded = list(term.operands)
    forms: list = [None] * n_out
    allowed_users: list[list] = [[] for _ in range(n_out)]  # ops allowed to read out_args[k]
    skip = []  # body ops not evaluated elementwise

    def only_used_by(value, ops) -> bool:
        return all(any(u == o.operation for o in ops) for u in _users(value))

    for k, y in enumerate(yielded):
        c = _defining_op(y)
        if c is not None and c.name in _COMBINERS and out_args[k] in list(c.operands):
            a, b = c.operands
            x = b if a == out_args[k] else a
            if x == out_args[k] or not only_used_by(c.results[0], [term]):
                raise _unsupported(what, f"output #{k} reduction")
            forms[k] = _Combine(c, x)
            allowed_users[k].append(c)
            skip.append(c)
    for k, y in enumerate(yielded):
        if forms[k] is not None:
            continue
        sel = _defining_op(y)
        if sel is None or sel.name != "arith.select" or sel.operands[2] != out_args[k]:
            raise _unsupported(what, f"output #{k} is not a recognized reduction")
        cmp = _defining_op(sel.operands[0])
        if cmp is None or cmp.name != "arith.cmpf" or _int_attr(cmp, "predicate") not in _ARG_PREDICATES:
            raise _unsupported(what, f"output #{k} select condition")
        pred = _int_attr(cmp, "predicate")
        v, o = cmp.operands
        j = next((i for i, oa in enumerate(out_args) if oa == o), None)
        wanted = _MAX_COMBINERS if pred in (2, 3) else _MIN_COMBINERS
        if j is None or not isinstance(forms[j], _Combine) or forms[j].op.name not in wanted or forms[j].x != v:
            raise _unsupported(what, f"output #{k} select does not track output's running max/min")
        idx = _defining_op(sel.operands[1])
        if idx is not None and idx.name == "arith.index_cast":
            idx = _defining_op(idx.operands[0])
        if len(red) != 1 or idx is None or idx.name != "linalg.index" or _int_attr(idx, "dim") != red[0]:
            raise _unsupported(what, f"output #{k} select value is not the reduction index")
        if not only_used_by(cmp.results[0], [sel]) or not only_used_by(sel.results[0], [term]):
            raise _unsupported(what, f"output #{k} arg-reduction values are reused")
        forms[k] = _ArgBest(j, pred)
        allowed_users[k].append(sel)
        allowed_users[j].append(cmp)
        skip += [sel, cmp]
    for k, o in enumerate(out_args):
        if not only_used_by(o, allowed_users[k]):
            raise _unsupported(what, f"output #{k} init value is used outside its reduction")
    # Contractions: sum of a product -> matmul instead of materializing the product.
    for form in forms:
        if isinstance(form, _Combine) and form.op.name == "arith.addf":
            mul = _defining_op(form.x)
            if (
                mul is not None
                and mul.name == "arith.mulf"
                and only_used_by(form.x, [form.op])
                and not any(v == o for v in mul.operands for o in out_args)
            ):
                form.product = tuple(mul.operands)
                skip.append(mul)
    return forms, skip


def _contract(p, q, sizes: list, red: list, dtype) -> np.ndarray:
    """sum over `red` of p * q (both broadcastable over the iteration space) via matmul.

    Returns an array over the iteration space with size 1 on reduction dims.
    """
    n = len(sizes)
    p = np.asarray(p).astype(dtype, copy=False)
    q = np.asarray(q).astype(dtype, copy=False)
    p = p.reshape((1,) * (n - p.ndim) + p.shape)
    q = q.reshape((1,) * (n - q.ndim) + q.shape)
    inp = [p.shape[d] != 1 for d in range(n)]
    inq = [q.shape[d] != 1 for d in range(n)]
    redset = set(red)
    scale = int(np.prod([sizes[d] for d in red if not inp[d] and not inq[d]]))
    p_only = tuple(d for d in red if inp[d] and not inq[d])
    q_only = tuple(d for d in red if inq[d] and not inp[d])
    if p_only:
        p = p.sum(axis=p_only, keepdims=True)
    if q_only:
        q = q.sum(axis=q_only, keepdims=True)
    batch = [d for d in range(n) if d not in redset and inp[d] and inq[d]]
    k = [d for d in red if inp[d] and inq[d]]
    m = [d for d in range(n) if d not in redset and inp[d] and not inq[d]]
    nn = [d for d in range(n) if d not in redset and inq[d] and not inp[d]]

    def arrange(a, groups):
        order = [d for g in groups for d in g]
        rest = [d for d in range(n) if d not in order]  # all of size 1 in `a`
        a = a.transpose(order + rest)
        return a.reshape([int(np.prod([sizes[d] for d in g])) for g in groups])

    r = np.matmul(arrange(p, [batch, m, k]), arrange(q, [batch, k, nn]))
    order = batch + m + nn
    rest = [d for d in range(n) if d not in order]
    r = r.reshape([sizes[d] for d in order] + [1] * len(rest)).transpose(np.argsort(order + rest))
    return r * scale if scale != 1 else r


def _structured(interp, op, ins: list, outs: list, maps: list, n: int, iterators=None, what=None):
    """Evaluate a linalg structured op from its indexing maps and region body.

    Inputs are viewed over the iteration space without copying (size-1 axes where a
    map does not use a dim) and the body's ops run once on whole arrays, so NumPy
    broadcasting materializes only what the body actually combines.
    """
    what = what or op.operation.name
    n_in, n_out = len(ins), len(outs)
    if len(op.results) != n_out:
        raise _unsupported(what, "buffer (memref) semantics")
    if len(maps) != n_in + n_out:
        raise _unsupported(what, f"{len(maps)} indexing maps for {n_in + n_out} operands")
    sizes = _loop_sizes(n, ins + outs, maps, what)
    out_dims = {d for m in maps[n_in:] for d in m if d is not None}
    if iterators is None:
        iterators = ["parallel" if d in out_dims else "reduction" for d in range(n)]
    if any(it not in ("parallel", "reduction") for it in iterators):
        raise _unsupported(what, f"iterator types {iterators}")
    red = [d for d in range(n) if iterators[d] == "reduction"]
    par = [d for d in range(n) if iterators[d] == "parallel"]
    for k, m in enumerate(maps[n_in:]):
        if sorted(d for d in m if d is not None) != par:
            raise _unsupported(what, f"output #{k} map does not index exactly the parallel dims")

    block = op.regions[0].blocks[0]
    args = list(block.arguments)
    if len(args) not in (n_in + n_out, n_in):
        raise _unsupported(what, "block arguments do not match operands")
    ops = list(block.operations)
    term, body_ops = ops[-1], ops[:-1]
    if term.name != "linalg.yield" or len(term.operands) != n_out:
        raise _unsupported(what, "terminator")
    yielded = list(term.operands)
    forms, skip = (None, [])
    if red:
        forms, skip = _analyze_reduction(block, n_in, n_out, red, what)
    dtypes = [compute_dtype(r.type) for r in op.results]

    in_views = [_to_space(a, m, sizes) for a, m in zip(ins, maps)]
    out_views = [_to_space(a, m, sizes) for a, m in zip(outs, maps[n_in:])]
    contraction = forms is not None and any(isinstance(f, _Combine) and f.product for f in forms)

    def evaluate(csizes, offset, lo, hi, chunk_dim):
        def cut(v):
            if chunk_dim is None or v.shape[chunk_dim] == 1:
                return v
            return v[(slice(None),) * chunk_dim + (slice(lo, hi),)]

        ins_c = [cut(v) for v in in_views]
        outs_c = [cut(v) for v in out_views]
        for a, v in zip(args, ins_c):
            interp.values[a] = v
        if not red and len(args) == n_in + n_out:
            for a, v in zip(args[n_in:], outs_c):
                interp.values[a] = v
        indices = []
        for d in range(n):
            shape = [1] * n
            shape[d] = csizes[d]
            start = offset if d == chunk_dim else 0
            indices.append(np.arange(start, start + csizes[d], dtype=np.int64).reshape(shape))
        interp.loop_indices.append(indices)
        try:
            for bop in body_ops:
                if not any(bop.operation == s for s in skip):
                    interp.eval_op(bop)
        finally:
            interp.loop_indices.pop()

        target = [csizes[d] if d in par else 1 for d in range(n)]
        if not red:
            return [np.broadcast_to(interp.get(y), target) for y in yielded]
        reduced = {}
        for k, f in enumerate(forms):
            if isinstance(f, _Combine):
                dt = dtypes[k]
                if f.product:
                    reduced[k] = _contract(interp.get(f.product[0]), interp.get(f.product[1]), csizes, red, dt)
                else:
                    x = np.broadcast_to(np.asarray(interp.get(f.x)).astype(dt, copy=False), csizes)
                    reduced[k] = _COMBINERS[f.op.name].reduce(x, axis=tuple(red), keepdims=True)
        results = []
        for k, f in enumerate(forms):
            init = outs_c[k]
            if isinstance(f, _Combine):
                r = _COMBINERS[f.op.name](reduced[k], init.astype(dtypes[k], copy=False))
            else:
                j, (cmp, last) = f.j, _ARG_PREDICATES[f.predicate]
                x = np.broadcast_to(np.asarray(interp.get(forms[j].x)).astype(dtypes[j], copy=False), csizes)
                r_dim = red[0]
                if cmp[0] == ">":
                    best = np.argmax(np.flip(x, r_dim) if last else x, axis=r_dim, keepdims=True)
                else:
                    best = np.argmin(np.flip(x, r_dim) if last else x, axis=r_dim, keepdims=True)
                if last:
                    best = csizes[r_dim] - 1 - best
                init_best = outs_c[j].astype(dtypes[j], copy=False)
                better = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}[cmp]
                r = np.where(better(reduced[j], init_best), best, init)
            results.append(np.broadcast_to(r, target))
        return results

    total = int(np.prod(sizes)) if sizes else 1
    chunk_dim = next((d for d in par if sizes[d] > 1), None)
    try:
        if contraction or total <= CHUNK_ELEMENTS or chunk_dim is None:
            results = evaluate(sizes, 0, None, None, None)
        else:
            step = max(1, CHUNK_ELEMENTS * sizes[chunk_dim] // total)
            parts = []
            for lo in range(0, sizes[chunk_dim], step):
                hi = min(lo + step, sizes[chunk_dim])
                csizes = list(sizes)
                csizes[chunk_dim] = hi - lo
                parts.append(evaluate(csizes, lo, lo, hi, chunk_dim))
            results = [np.concatenate([p[k] for p in parts], axis=chunk_dim) for k in range(n_out)]
    finally:
        # Body values span the iteration space: do not keep them alive in the environment.
        for a in args:
            interp.values.pop(a, None)
        for bop in body_ops:
            for r in bop.results:
                interp.values.pop(r, None)
    return [
        _from_space(r, m, sizes, np.shape(o)) for r, m, o in zip(results, maps[n_in:], outs)
    ]


def _split_operands(op, args):
    """(ins, outs) of a DPS linalg op from operandSegmentSizes (default: last is the init)."""
    if "operandSegmentSizes" in op.attributes:
        n_in, n_out = list(ir.DenseI32ArrayAttr(op.attributes["operandSegmentSizes"]))[:2]
    else:
        n_out = len(op.results) or 1
        n_in = len(args) - n_out
    return list(args[:n_in]), list(args[n_in : n_in + n_out])


@register("linalg.generic")
def _generic(interp, op, args):
    ins, outs = _split_operands(op, args)
    maps, n = _maps_attr(op, "linalg.generic")
    iterators = []
    for it in op.attributes["iterator_types"]:
        text = str(it)
        iterators.append("parallel" if "parallel" in text else "reduction" if "reduction" in text else text)
    return _structured(interp, op, ins, outs, maps, n, iterators, "linalg.generic")


# Default indexing maps of named contractions (dims listed per operand: A, B, C), used
# when the op carries no `indexing_maps` attribute. The *_transpose_* ops are gone from
# upstream MLIR 22 (they are `linalg.matmul` with `indexing_maps`), kept for older IR.
_NAMED_CONTRACTIONS = {
    "linalg.matmul": (3, [[0, 2], [2, 1], [0, 1]]),
    "linalg.matmul_transpose_a": (3, [[2, 0], [2, 1], [0, 1]]),
    "linalg.matmul_transpose_b": (3, [[0, 2], [1, 2], [0, 1]]),
    "linalg.batch_matmul": (4, [[0, 1, 3], [0, 3, 2], [0, 1, 2]]),
    "linalg.batch_matmul_transpose_a": (4, [[0, 3, 1], [0, 3, 2], [0, 1, 2]]),
    "linalg.batch_matmul_transpose_b": (4, [[0, 1, 3], [0, 2, 3], [0, 1, 2]]),
    "linalg.batch_reduce_matmul": (4, [[0, 1, 3], [0, 3, 2], [1, 2]]),
    "linalg.matvec": (2, [[0, 1], [1], [0]]),
    "linalg.vecmat": (2, [[1], [1, 0], [0]]),
    "linalg.batch_matvec": (3, [[0, 1, 2], [0, 2], [0, 1]]),
    "linalg.batch_vecmat": (3, [[0, 2], [0, 2, 1], [0, 1]]),
    "linalg.dot": (1, [[0], [0], []]),
    "linalg.contract": None,  # always has indexing_maps
}


@register(*_NAMED_CONTRACTIONS)
def _named_contraction(interp, op, args):
    name = op.operation.name
    ins, outs = _split_operands(op, args)
    if "indexing_maps" in op.attributes:
        maps, n = _maps_attr(op, name)
    else:
        n, maps = _NAMED_CONTRACTIONS[name]
    return _structured(interp, op, ins, outs, maps, n, None, name)


_NAMED_ELEMENTWISE = [
    "linalg.add", "linalg.sub", "linalg.mul", "linalg.div", "linalg.div_unsigned",
    "linalg.max", "linalg.min", "linalg.powf", "linalg.exp", "linalg.log", "linalg.abs",
    "linalg.ceil", "linalg.floor", "linalg.negf", "linalg.reciprocal", "linalg.round",
    "linalg.sqrt", "linalg.rsqrt", "linalg.square", "linalg.tanh", "linalg.erf",
    "linalg.select", "linalg.copy", "linalg.elementwise", "linalg.map",
]


@register(*_NAMED_ELEMENTWISE)
def _named_elementwise(interp, op, args):
    name = op.operation.name
    ins, outs = _split_operands(op, args)
    if "indexing_maps" in op.attributes:
        maps, n = _maps_attr(op, name)
    else:
        n = np.ndim(outs[0])
        maps = [list(range(n)) if np.ndim(a) == n else [] for a in ins + outs]
    return _structured(interp, op, ins, outs, maps, n, ["parallel"] * n, name)


@register("linalg.reduce")
def _reduce(interp, op, args):
    n_in = len(op.results)
    ins, outs = list(args[:n_in]), list(args[n_in:])
    n = np.ndim(ins[0])
    dims = set(_i64_array(op, "dimensions"))
    maps = [list(range(n))] * n_in + [[d for d in range(n) if d not in dims]] * len(outs)
    iterators = ["reduction" if d in dims else "parallel" for d in range(n)]
    return _structured(interp, op, ins, outs, maps, n, iterators, "linalg.reduce")
