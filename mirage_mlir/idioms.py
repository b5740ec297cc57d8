"""Idiom rewriting on kernel mu-graphs: chains of opset nodes that spell a fused opset op.

- reduce_mean: mul_scalar(reduce_sum(x, d), 1/n) with n = x.shape[d] (how `sum / n` is imported).
- rms_norm{eps}: x * rsqrt(reduce_mean(x^2, last) + eps) with x^2 as square(x) or mul(x, x), eps from
  add_scalar (absent: eps 0), rsqrt as rsqrt(e) or recip(sqrt(e)), the product in either order, or
  x / sqrt(...).
- silu: x * sigmoid(x) with sigmoid(x) = recip(add_scalar(exp(neg(x)), 1)) (torch-mlir's negf, exp,
  addf 1, divf 1 / s), either operand order, or x / (1 + exp(-x)).

A match is applied only when every matched intermediate value has no other user and is not a graph
output, and all matched nodes share one element type (a cast inside a match means the program rounds
there, so it is not rewritten). The fused node computes in its element type's compute precision and
rounds once: that is the only rounding an idiom removes.

`recip` (1/x) is an import-only node (PSEUDO_OPS): it is not in the opset, so a graph that still
holds one after `apply_idioms` cannot be built.
"""

from __future__ import annotations

from dataclasses import replace

from .mugraph import Graph, Node

PSEUDO_OPS = ("recip",)


class _Editor:
    """A graph of single-result nodes keyed by their value id, with users recomputed on demand."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.n_inputs = len(graph.inputs)
        self.nodes: dict[int, Node] = {}
        self.origins: dict[int, tuple[int, ...]] = {}
        self.types = dict(enumerate(graph.value_types))
        for index, node in enumerate(graph.nodes):
            vid = graph.first_result[index]
            self.nodes[vid] = node
            self.origins[vid] = (index,)
        self.outputs = set(graph.outputs)
        self._users = None

    def users(self, v: int) -> list[int]:
        if self._users is None:
            self._users = {}
            for vid, node in self.nodes.items():
                for x in node.inputs:
                    self._users.setdefault(x, []).append(vid)
        return self._users.get(v, [])

    def node(self, v: int, op: str | None = None) -> Node | None:
        node = self.nodes.get(v)
        if node is None or (op is not None and node.op != op):
            return None
        return node

    def private(self, v: int, op: str | None = None) -> Node | None:
        """The node producing `v` if it is `op` and `v` feeds exactly one node and no output."""
        node = self.node(v, op)
        if node is None or v in self.outputs or len(self.users(v)) != 1:
            return None
        return node

    def replace(self, root: int, node: Node, matched: list[int]) -> None:
        """Replaces the node of `root` by `node`; `matched` (intermediates) become dead."""
        origin = set(self.origins[root])
        for v in matched:
            origin.update(self.origins.pop(v))
            del self.nodes[v]
        self.nodes[root] = node
        self.origins[root] = tuple(sorted(origin))
        self._users = None

    def result(self) -> tuple[Graph, tuple[tuple[int, ...], ...]]:
        remap = {i: i for i in range(self.n_inputs)}
        nodes, origins = [], []
        for vid in sorted(self.nodes):
            node = self.nodes[vid]
            remap[vid] = self.n_inputs + len(nodes)
            nodes.append(Node(node.op, tuple(remap[x] for x in node.inputs), node.types, node.attrs, node.body))
            origins.append(self.origins[vid])
        graph = replace(self.graph, nodes=tuple(nodes), outputs=tuple(remap[v] for v in self.graph.outputs))
        return graph, tuple(origins)


def _same_dtype(ed: _Editor, values) -> bool:
    return len({ed.types[v].dtype for v in values}) == 1


def _reduce_mean(ed: _Editor, root: int):
    node = ed.node(root, "mul_scalar")
    if node is None:
        return None
    s = node.inputs[0]
    total = ed.private(s, "reduce_sum")
    if total is None:
        return None
    x = total.inputs[0]
    shape = ed.types[x].shape
    dim = total.attr("dim") % len(shape)
    n = shape[dim]
    scalar = node.attr("scalar")
    if n is None or not (scalar == 1.0 / n or abs(scalar * n - 1.0) <= 2.0 ** -24):
        return None
    if not _same_dtype(ed, [s, root]):
        return None
    return Node.make("reduce_mean", [x], node.types, dim=dim), [s]


def _inv_sqrt(ed: _Editor, r: int):
    """e and the matched values when `r` is rsqrt(e) or recip(sqrt(e))."""
    node = ed.private(r, "rsqrt")
    if node is not None:
        return node.inputs[0], [r]
    node = ed.private(r, "recip")
    if node is not None:
        inner = ed.private(node.inputs[0], "sqrt")
        if inner is not None:
            return inner.inputs[0], [r, node.inputs[0]]
    return None


def _mean_square_plus_eps(ed: _Editor, e: int, x: int):
    """eps and the matched values when `e` is reduce_mean(x^2, last) + eps (or without + eps)."""
    matched = []
    eps = 0.0
    node = ed.private(e, "add_scalar")
    m = e
    if node is not None:
        eps = node.attr("scalar")
        matched.append(e)
        m = node.inputs[0]
    mean = ed.private(m, "reduce_mean")
    if mean is None:
        return None
    matched.append(m)
    q = mean.inputs[0]
    rank = len(ed.types[q].shape)
    if mean.attr("dim") % rank != rank - 1:
        return None
    square = ed.private(q)
    if square is None:
        return None
    if not ((square.op == "square" and square.inputs == (x,)) or (square.op == "mul" and square.inputs == (x, x))):
        return None
    matched.append(q)
    return eps, matched


def _rms_norm(ed: _Editor, root: int):
    node = ed.node(root)
    if node is None or node.op not in ("mul", "div"):
        return None
    a, b = node.inputs
    candidates = [(a, b), (b, a)] if node.op == "mul" else [(a, b)]
    for x, r in candidates:
        if x == r or ed.types[x].shape != ed.types[root].shape:
            continue
        if node.op == "mul":
            inv = _inv_sqrt(ed, r)
        else:
            sq = ed.private(r, "sqrt")
            inv = (sq.inputs[0], [r]) if sq is not None else None
        if inv is None:
            continue
        e, matched = inv
        found = _mean_square_plus_eps(ed, e, x)
        if found is None:
            continue
        eps, more = found
        matched = matched + more
        if not _same_dtype(ed, [x, root] + matched):
            continue
        return Node.make("rms_norm", [x], node.types, eps=float(eps)), matched
    return None


def _sigmoid_denominator(ed: _Editor, s: int, x: int):
    """The matched values when `s` is add_scalar(exp(neg(x)), 1)."""
    plus = ed.private(s, "add_scalar")
    if plus is None or plus.attr("scalar") != 1.0:
        return None
    t = plus.inputs[0]
    exp = ed.private(t, "exp")
    if exp is None:
        return None
    u = exp.inputs[0]
    neg = ed.private(u, "neg")
    if neg is None or neg.inputs[0] != x:
        return None
    return [s, t, u]


def _silu(ed: _Editor, root: int):
    node = ed.node(root)
    if node is None or node.op not in ("mul", "div"):
        return None
    a, b = node.inputs
    candidates = [(a, b), (b, a)] if node.op == "mul" else [(a, b)]
    for x, g in candidates:
        if x == g or ed.types[x].shape != ed.types[root].shape or ed.types[g].shape != ed.types[x].shape:
            continue
        if node.op == "mul":
            recip = ed.private(g, "recip")
            if recip is None:
                continue
            rest = _sigmoid_denominator(ed, recip.inputs[0], x)
            matched = None if rest is None else [g] + rest
        else:
            matched = _sigmoid_denominator(ed, g, x)
        if matched is None or not _same_dtype(ed, [x, root] + matched):
            continue
        return Node.make("silu", [x], node.types), matched
    return None


IDIOMS = (("reduce_mean", _reduce_mean), ("rms_norm", _rms_norm), ("silu", _silu))


def apply_idioms(graph: Graph, names: tuple[str, ...] | None = None) -> tuple[Graph, tuple[tuple[int, ...], ...]]:
    """Rewrites the idioms (all, or those in `names`, in IDIOMS order) in a kernel graph of
    single-result nodes. Returns the new graph (same inputs and outputs) and, per new node, the
    indices of the nodes of `graph` it replaces."""
    if any(len(node.types) != 1 for node in graph.nodes):
        return graph, tuple((i,) for i in range(len(graph.nodes)))
    ed = _Editor(graph)
    for name, matcher in IDIOMS:
        if names is not None and name not in names:
            continue
        for root in sorted(ed.nodes):
            if root not in ed.nodes:
                continue
            found = matcher(ed, root)
            if found is not None:
                node, matched = found
                ed.replace(root, node, matched)
    return ed.result()
