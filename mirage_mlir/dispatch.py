"""What `mirage.dispatch` means, in one place for the interpreter, the lowering's manifest and the
runtime (no MLIR here).

A function whose arguments have dynamic dims (torch.export's dynamic batch: `tensor<?x4096xf16>`)
is compiled as static specializations at a few sizes (mirage-specialize-dims). Every dynamic dim of
the arguments and results is one size n, a leading dim along which rows are computed independently
(the pass proves it). A call with size n means the specialization of the smallest size N >= n on
its operands zero-padded to N rows, the first n rows of each result kept: the interpreter runs
exactly that; the compiled kernels get the same rows without the padding, by taking n and
neither reading nor writing rows past it (rows are independent, so what the others would hold
does not matter).
"""

from __future__ import annotations

import numpy as np

RULE = ("every dynamic dim of the inputs has the same size n, 1 <= n <= {largest}; a call runs the "
        "specialization of the smallest compiled size >= n")


class DispatchError(ValueError):
    pass


def common_size(shapes: list[tuple], patterns: list[tuple]) -> int:
    """The size n of every dynamic dim (-1 in `patterns`, the declared shapes) of the actual
    `shapes`; DispatchError naming the argument when they disagree or a static dim differs."""
    n, first = None, None
    for k, (shape, pattern) in enumerate(zip(shapes, patterns)):
        if len(shape) != len(pattern):
            raise DispatchError(f"argument #{k} has rank {len(shape)}, expected {len(pattern)} ({_show(pattern)})")
        for d, (size, want) in enumerate(zip(shape, pattern)):
            if want == -1:
                if n is None:
                    n, first = size, (k, d)
                elif size != n:
                    raise DispatchError(f"argument #{k} dim {d} is {size} but argument #{first[0]} dim {first[1]} "
                                        f"is {n}: {RULE.format(largest='the largest size')}")
            elif size != want:
                raise DispatchError(f"argument #{k} dim {d} is {size}, expected {want} ({_show(pattern)})")
    if n is None:
        raise DispatchError("no argument has a dynamic dim")
    return n


def choose(sizes: list[int], n: int, what: str = "the dynamic size") -> int:
    """The index of the specialization that runs size n: the smallest size >= n."""
    for i, size in enumerate(sizes):
        if size >= n >= 1:
            return i
    raise DispatchError(f"{what} is {n}, outside the compiled range 1..{sizes[-1]}: "
                        f"{RULE.format(largest=sizes[-1])}")


def pad(x: np.ndarray, pattern: tuple, size: int) -> np.ndarray:
    """x zero-padded along its dynamic dims (-1 in pattern) to `size`."""
    widths = [(0, size - x.shape[d] if want == -1 else 0) for d, want in enumerate(pattern)]
    return np.pad(x, widths) if any(w for _, w in widths) else x


def crop(x: np.ndarray, pattern: tuple, n: int) -> np.ndarray:
    """The first n rows of x along its dynamic dims."""
    return x[tuple(slice(0, n) if want == -1 else slice(None) for want in pattern)]


def _show(pattern: tuple) -> str:
    return "[" + ", ".join("?" if d == -1 else str(d) for d in pattern) + "]"
