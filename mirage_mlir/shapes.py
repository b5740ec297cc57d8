"""Shape rules of the opset and of block-graph maps, on plain tuples (None = dynamic dim).

Each rule returns the result shape or raises ShapeError with a message fit for a diagnostic.
"""

from __future__ import annotations

from .opset import OPS


class ShapeError(ValueError):
    pass


Shape = tuple


def _dim_join(a, b, what: str):
    if a is None or b is None:
        return b if a is None else a
    if a != b:
        raise ShapeError(f"{what}: {a} vs {b}")
    return a


def broadcast(a: Shape, b: Shape) -> Shape:
    if len(a) != len(b):
        raise ShapeError(f"operands must have equal ranks to broadcast, got {len(a)} and {len(b)}")
    out = []
    for x, y in zip(a, b):
        if x == 1:
            out.append(y)
        elif y == 1:
            out.append(x)
        else:
            out.append(_dim_join(x, y, "operand dims do not broadcast"))
    return tuple(out)


def check_dim(dim: int, rank: int) -> int:
    if not -rank <= dim < rank:
        raise ShapeError(f"dim {dim} is out of range for rank {rank}")
    return dim % rank


def reduce(shape: Shape, dim: int) -> Shape:
    dim = check_dim(dim, len(shape))
    return shape[:dim] + (1,) + shape[dim + 1 :]


def matmul(a: Shape, b: Shape) -> Shape:
    if len(a) < 2 or len(a) != len(b):
        raise ShapeError(f"matmul needs operands of equal rank >= 2, got ranks {len(a)} and {len(b)}")
    batch = tuple(_dim_join(x, y, "matmul batch dims differ") for x, y in zip(a[:-2], b[:-2]))
    _dim_join(a[-1], b[-2], "matmul contraction dims differ")
    return batch + (a[-2], b[-1])


def infer(op: str, shapes: list[Shape], attrs: dict) -> Shape:
    """Result shape of opset op `op` on operand shapes."""
    category = OPS[op].category
    arity = 2 if category in ("binary", "matmul") else 1
    if len(shapes) != arity:
        raise ShapeError(f"expects {arity} operand(s), got {len(shapes)}")
    if category in ("unary", "norm"):
        return shapes[0]
    if category == "binary":
        return broadcast(shapes[0], shapes[1])
    if category == "reduce":
        return reduce(shapes[0], attrs["dim"])
    return matmul(shapes[0], shapes[1])


def iterator_tile(shape: Shape, imap, fmap: int, grid, forloop_range: int) -> Shape:
    """The tile an input iterator gives each block per iteration; every split must be even."""
    tile = list(shape)
    for axis, dim in enumerate(imap):
        if dim == -1:
            continue
        dim = check_dim(dim, len(shape))
        if tile[dim] is not None:
            if tile[dim] % grid[axis]:
                raise ShapeError(f"grid dim {'xyz'[axis]}={grid[axis]} does not divide tensor dim {dim} of size {tile[dim]}")
            tile[dim] //= grid[axis]
    if fmap != -1:
        dim = check_dim(fmap, len(shape))
        if tile[dim] is not None:
            if tile[dim] % forloop_range:
                raise ShapeError(f"forloop_range {forloop_range} does not divide the tile's dim {dim} of size {tile[dim]}")
            tile[dim] //= forloop_range
    return tuple(tile)


def saver_shape(tile: Shape, omap, grid) -> Shape:
    """The kernel-level output an output saver assembles from every block's tile."""
    out = list(tile)
    for axis, dim in enumerate(omap):
        if dim == -1:
            if grid[axis] > 1:
                raise ShapeError(f"grid dim {'xyz'[axis]}={grid[axis]} > 1 must map to an output dim (omap is -1)")
            continue
        dim = check_dim(dim, len(tile))
        out[dim] = None if out[dim] is None else out[dim] * grid[axis]
    return tuple(out)
