"""Shape reasoning for the search: index classes of the program's dims and the factor structure of
every kernel tensor the search creates.

Index classes: dims of the program's tensors that must be cut the same way (unified through
elementwise ops, matmul batch/M/N/K, reductions), found once by union-find on the reference graph.
A class is a *reduction class* when some op reduces it (matmul's K, reduce_*, rms_norm's last dim):
only those may be split by a for-loop (a loop over any other class could not be accumulated).

Factors: each dim of a kernel tensor is a tuple of factors, outer to inner: ("i", class, size) is an
ordinary index; ("p", class, size) enumerates partial sums (written side by side by an output saver
whose grid axis split a reduction class) that a later kernel must add up. Size-1 factors are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ..mugraph import Graph


class UnionFind:
    def __init__(self):
        self.parent: dict = {}

    def find(self, x):
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass(frozen=True)
class IndexInfo:
    input_dims: tuple  # per graph input: per dim a factor tuple
    reduction_classes: frozenset
    class_size: dict


def index_classes(graph: Graph) -> IndexInfo:
    uf = UnionFind()
    types = graph.value_types
    reduced = set()

    def node_dims(v):
        return [(v, d) for d in range(len(types[v].shape))]

    for index, node in enumerate(graph.nodes):
        out = graph.first_result[index]
        ins = node.inputs
        op = node.op
        if op == "graph_def":
            continue
        shape_out = types[out].shape
        if op == "matmul":
            a, b = ins
            r = len(shape_out)
            for d in range(r - 2):
                uf.union((a, d), (out, d))
                uf.union((b, d), (out, d))
            uf.union((a, r - 2), (out, r - 2))
            uf.union((b, r - 1), (out, r - 1))
            uf.union((a, r - 1), (b, r - 2))
            reduced.add((a, r - 1))
        elif op in ("reduce_sum", "reduce_mean", "reduce_max"):
            dim = node.attr("dim") % len(shape_out)
            for d in range(len(shape_out)):
                if d != dim:
                    uf.union((ins[0], d), (out, d))
            reduced.add((ins[0], dim))
        else:
            for v in ins:
                for d in range(len(shape_out)):
                    if types[v].shape[d] == shape_out[d] and shape_out[d] != 1:
                        uf.union((v, d), (out, d))
            if op == "rms_norm":
                reduced.add((ins[0], len(shape_out) - 1))
    sizes = {}
    for v in range(len(types)):
        for d, n in enumerate(types[v].shape):
            sizes[uf.find((v, d))] = n
    classes = {}

    def cls(v, d):
        root = uf.find((v, d))
        if root not in classes:
            classes[root] = len(classes)
        return classes[root]

    input_dims = []
    for i, t in enumerate(graph.inputs):
        input_dims.append(tuple((("i", cls(i, d), n),) if n != 1 else () for d, n in enumerate(t.shape)))
    red = frozenset(cls(*x) for x in reduced)
    class_size = {classes[r]: sizes[r] for r in classes}
    return IndexInfo(tuple(input_dims), red, class_size)


def dim_size(factors) -> int:
    n = 1
    for f in factors:
        n *= f[2]
    return n


def split_outer(factors: tuple, g: int):
    """Factors after a split by g of the outermost factor (None if g does not divide it)."""
    if g == 1:
        return factors
    if not factors or factors[0][2] % g:
        return None
    kind, c, n = factors[0]
    rest = factors[1:]
    return ((kind, c, n // g),) + rest if n // g > 1 else rest


@lru_cache(maxsize=None)
def divisors(n: int) -> tuple[int, ...]:
    """The divisors of n above 1, ascending."""
    small = [d for d in range(1, int(n**0.5) + 1) if n % d == 0]
    return tuple(sorted({d for s in small for d in (s, n // s)} - {1}))
