"""Abstract expressions (Mirage section 4.2) and the subexpression oracle that prunes the search.

An abstract expression forgets which elements a tensor holds and keeps what is computed from what:
  Var(input) | Cst(c) | Add | Mul | Div | Exp | Sqrt | Fn(silu|gelu|relu, x) | Fn2(pow, x, y) | Sum(n, x)
with matmul = Sum(K, Mul(a, b)), reductions Sum(n, x), mean = Mul(Sum(n, x), Cst(1/n)),
sub(a, b) = Add(a, Mul(Cst(-1), b)), square(x) = Mul(x, x), rsqrt(x) = Div(Cst(1), Sqrt(x)),
rms_norm(x) = Div(x, Sqrt(Add(Mul(Sum(n, Mul(x, x)), Cst(1/n)), Cst(eps)))); casts are transparent.

A prefix of a candidate survives only if every tensor's expression can still be a subexpression of
the program's (A_eq + A_sub: commutativity, associativity, distributivity, division rules,
Sum(i, Sum(j, x)) = Sum(i*j, x), sums over add/mul/div, exp(a)exp(b) = exp(a+b),
sqrt(a)sqrt(b) = sqrt(ab); no cancellation). As in Mirage since 2025, the program's expressions are
saturated ONCE in an e-graph (egglog, under node and time limits), and each candidate node is then
looked up bottom-up in the saturated e-graph's hash-cons: a node is a subexpression iff its operator
applied to its children's e-classes is an e-node there. The lookup is a dict access, so the search
asks millions of them; candidates never enter the e-graph.

Soundness for pruning: every node in the saturated e-graph is a subterm of a term equal (under the
axioms) to the program, so the lookup never accepts a term the axioms reject... the converse
(complete acceptance) holds when saturation finishes within the limits; otherwise some valid
candidates may be pruned, never an invalid one accepted (verification decides correctness anyway).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

from ..finite_field import exact_fraction
from ..mugraph import Graph
from ..opset import OPS

SCHEMA = """
(datatype E
  (Var String) (Cst String)
  (Add E E) (Mul E E) (Div E E)
  (Exp E) (Sqrt E) (Fn String E) (Fn2 String E E)
  (Sum i64 E))
"""

RULES = """
(rewrite (Add a b) (Add b a))
(rewrite (Mul a b) (Mul b a))
(birewrite (Add a (Add b c)) (Add (Add a b) c))
(birewrite (Mul a (Mul b c)) (Mul (Mul a b) c))
(birewrite (Mul a (Add b c)) (Add (Mul a b) (Mul a c)))
(birewrite (Div (Add a c) b) (Add (Div a b) (Div c b)))
(birewrite (Mul a (Div b c)) (Div (Mul a b) c))
(birewrite (Div (Div a b) c) (Div a (Mul b c)))
(rewrite (Sum i (Sum j a)) (Sum j (Sum i a)))
(birewrite (Sum i (Add a b)) (Add (Sum i a) (Sum i b)))
(rewrite (Mul (Sum i a) b) (Sum i (Mul a b)))
(birewrite (Sum i (Div a b)) (Div (Sum i a) b))
(birewrite (Mul (Exp a) (Exp b)) (Exp (Add a b)))
(birewrite (Mul (Sqrt a) (Sqrt b)) (Sqrt (Mul a b)))
"""


@lru_cache(maxsize=4096)
def const_key(c: float) -> str:
    """The name of a scalar constant: exact small fractions by value, other floats by float32 value."""
    fr = exact_fraction(float(c))
    if fr is not None:
        return f"{fr.numerator}/{fr.denominator}"
    import numpy as np

    return repr(float(np.float32(c)))


@lru_cache(maxsize=4096)
def inverse_key(n: int) -> str:
    fr = Fraction(1, n)
    return f"{fr.numerator}/{fr.denominator}"


def _divisors(n: int) -> list[int]:
    return [d for d in range(2, n) if n % d == 0]


# ---------------------------------------------------------------------------------------------
class TermBuilder:
    """Builds abstract expressions as hash-consed tuples (used for the target) with the normalisations
    above; `ops` mirrors the opset so kernel and block graphs are translated the same way."""

    def var(self, name: str):
        return ("Var", name)

    def cst(self, key: str):
        return ("Cst", key)

    def add(self, a, b):
        return ("Add", a, b)

    def mul(self, a, b):
        return ("Mul", a, b)

    def div(self, a, b):
        return ("Div", a, b)

    def exp(self, a):
        return ("Exp", a)

    def sqrt(self, a):
        return ("Sqrt", a)

    def fn(self, name: str, a):
        return ("Fn", name, a)

    def fn2(self, name: str, a, b):
        return ("Fn2", name, a, b)

    def sum(self, n: int, a):
        return a if n == 1 else ("Sum", int(n), a)


def apply_op(tb, op: str, args: list, attrs: dict, shapes: list[tuple]):
    """The abstract expression of opset op `op` (kernel or block level) in builder `tb`
    (a TermBuilder or an Oracle, which returns e-classes or None). `shapes` are the operand shapes."""
    if any(a is None for a in args):
        return None
    info = OPS[op]
    if info.category in ("unary", "binary"):
        if info.term is None:  # an uninterpreted function of the operands
            return tb.fn(op, args[0]) if len(args) == 1 else tb.fn2(op, args[0], args[1])
        scalars = {k: tb.cst(const_key(v)) for k, v in attrs.items() if k == "scalar"}
        return info.term(tb, *args, **scalars)
    if op in ("reduce_sum", "reduce_mean", "reduce_max"):
        n = shapes[0][attrs["dim"] % len(shapes[0])]
        if op == "reduce_max":
            return tb.fn2("max", tb.sum(n, args[0]), tb.cst("max"))
        s = tb.sum(n, args[0])
        return s if op == "reduce_sum" or n == 1 or s is None else tb.mul(s, tb.cst(inverse_key(n)))
    if op == "matmul":
        m = tb.mul(args[0], args[1])
        return None if m is None else tb.sum(shapes[0][-1], m)
    if op == "rms_norm":
        return tb.div(args[0], rms_expr(tb, args[0], shapes[0][-1], attrs["eps"]))
    raise KeyError(op)


def rms_expr(tb, x, n: int, eps: float):
    """sqrt(mean(x^2 over n) + eps)."""
    sq = tb.mul(x, x)
    s = None if sq is None else tb.sum(n, sq)
    if s is None:
        return None
    mean = s if n == 1 else tb.mul(s, tb.cst(inverse_key(n)))
    if mean is None:
        return None
    a = tb.add(mean, tb.cst(const_key(eps)))
    return None if a is None else tb.sqrt(a)


def mean_expr(tb, x, n: int):
    s = tb.sum(n, x)
    if s is None or n == 1:
        return s
    return tb.mul(s, tb.cst(inverse_key(n)))


def kernel_terms(graph: Graph) -> list:
    """The abstract expression of every value of a kernel graph of opset ops (inputs are Var(i))."""
    tb = TermBuilder()
    terms = [tb.var(f"x{i}") for i in range(len(graph.inputs))]
    for node in graph.nodes:
        shapes_in = [graph.value_types[v].shape for v in node.inputs]
        terms.append(apply_op(tb, node.op, [terms[v] for v in node.inputs], dict(node.attrs), shapes_in))
    return terms


def to_egglog(term) -> str:
    head = term[0]
    if head in ("Var", "Cst"):
        return f'({head} "{term[1]}")'
    if head == "Sum":
        return f"(Sum {term[1]} {to_egglog(term[2])})"
    if head in ("Fn", "Fn2"):
        return f'({head} "{term[1]}" ' + " ".join(to_egglog(t) for t in term[2:]) + ")"
    return f"({head} " + " ".join(to_egglog(t) for t in term[1:]) + ")"


def sum_sizes(term, out: set) -> set:
    if isinstance(term, tuple):
        if term[0] == "Sum":
            out.add(term[1])
        for t in term[1:]:
            sum_sizes(t, out)
    return out


# ---------------------------------------------------------------------------------------------
@dataclass
class OracleStats:
    saturation_s: float = 0.0
    iterations: int = 0
    enodes: int = 0
    saturated: bool = False
    lookups: int = 0
    hits: int = 0


class Oracle:
    """The saturated e-graph of the target expressions, as a hash-cons for bottom-up lookups.

    Methods mirror TermBuilder but take and return e-class ids (ints), or None when the node is not
    a subexpression of the target.
    """

    def __init__(self, targets: list, node_limit: int = 60_000, time_limit: float = 6.0, max_iters: int = 30):
        self.stats = OracleStats()
        self.table: dict[tuple, int] = {}
        self.roots: list[int | None] = []
        self._build(targets, node_limit, time_limit, max_iters)

    def _build(self, targets, node_limit, time_limit, max_iters):
        import egglog.bindings as eb

        start = time.perf_counter()
        sizes: set[int] = set()
        for t in targets:
            sum_sizes(t, sizes)
        closed = set()
        for n in sizes:
            closed.update([n] + _divisors(n))
        rules = [RULES]
        for n in sorted(closed):
            for d in _divisors(n):
                if d <= n // d:
                    rules.append(f"(birewrite (Sum {n} a) (Sum {d} (Sum {n // d} a)))")
        egraph = eb.EGraph()
        program = SCHEMA + "".join(rules)
        program += "".join(f"(let $t{i} {to_egglog(t)})\n" for i, t in enumerate(targets))
        egraph.run_program(*egraph.parse_program(program))
        size = 0
        for it in range(max_iters):
            out = egraph.run_program(*egraph.parse_program("(run 1)"))
            self.stats.iterations = it + 1
            updated = bool(out[0].report.updated) if hasattr(out[0], "report") else True
            frozen = egraph.freeze()
            size = sum(len(fn.rows) for fn in frozen.functions.values())
            if not updated:
                self.stats.saturated = True
                break
            if size > node_limit or time.perf_counter() - start > time_limit:
                break
        frozen = egraph.freeze()
        ids: dict = {}

        def cid(value) -> int:
            key = value  # egglog Values hash and compare by e-class
            if key not in ids:
                ids[key] = len(ids)
            return ids[key]

        for name, fn in frozen.functions.items():
            for row in fn.rows:
                if name.startswith("$t"):
                    continue
                ins = row.inputs
                if name in ("Var", "Cst"):
                    key = (name, egraph.value_to_string(ins[0]))
                elif name == "Sum":
                    key = (name, egraph.value_to_i64(ins[0]), cid(ins[1]))
                elif name in ("Fn", "Fn2"):
                    key = (name, egraph.value_to_string(ins[0])) + tuple(cid(v) for v in ins[1:])
                else:
                    key = (name,) + tuple(cid(v) for v in ins)
                self.table[key] = cid(row.output)
        for i in range(len(targets)):
            fn = frozen.functions.get(f"$t{i}")
            self.roots.append(cid(fn.rows[0].output) if fn is not None and fn.rows else None)
        self.stats.enodes = len(self.table)
        self.stats.saturation_s = time.perf_counter() - start

    # -- graph views of the saturated e-graph -----------------------------------------------------
    def _enodes(self) -> list:
        """[(op, children e-classes, e-class)] for every e-node but variables."""
        if not hasattr(self, "_nodes"):
            nodes = []
            for key, out in self.table.items():
                if key[0] == "Var":
                    continue
                if key[0] == "Cst":
                    kids = ()
                elif key[0] == "Sum":
                    kids = (key[2],)
                elif key[0] in ("Fn", "Fn2"):
                    kids = key[2:]
                else:
                    kids = key[1:]
                nodes.append((key, kids, out))
            self._nodes = nodes
        return self._nodes

    def closure(self, base) -> frozenset:
        """The e-classes buildable from e-classes `base` (and constants) through e-nodes of the
        saturated e-graph: every value a block graph computes from tensors of those classes is one of
        them (each op it adds is an e-node lookup whose children were built the same way)."""
        base = frozenset(base)
        memo = self.__dict__.setdefault("_closures", {})
        if base in memo:
            return memo[base]
        if not hasattr(self, "_by_child"):
            by_child: dict = {}
            for index, (_, kids, _) in enumerate(self._enodes()):
                for k in set(kids):
                    by_child.setdefault(k, []).append(index)
            self._by_child = by_child
        nodes = self._enodes()
        missing = [len(set(kids)) for _, kids, _ in nodes]
        have = set(base)
        work = list(have)
        for index, (_, kids, out) in enumerate(nodes):
            if not kids and out not in have:
                have.add(out)
                work.append(out)
        while work:
            c = work.pop()
            for index in self._by_child.get(c, ()):
                missing[index] -= 1
                if missing[index] == 0:
                    out = nodes[index][2]
                    if out not in have:
                        have.add(out)
                        work.append(out)
        memo[base] = frozenset(have)
        return memo[base]

    def op_distance(self) -> dict:
        """For every e-class, a lower bound of the number of block-graph ops that must follow a tile of
        that class before it becomes a program output (a root): one op adds one e-node above its
        operand, or two in the chains block ops make (matmul Sum(Mul(a, b)), sub Add(a, Mul(-1, b)),
        means Mul(Sum(x), 1/n), rsqrt Div(1, Sqrt(x))), or the five of an rms accumulator
        Sqrt(Add(Mul(Sum(Mul(x, x)), 1/n), eps)) (rms_norm(x) = Div(x, ...) has x one e-node below).
        Classes that cannot reach a root are absent."""
        if hasattr(self, "_distance"):
            return self._distance
        nodes = self._enodes()
        by_out: dict = {}
        for key, kids, out in nodes:
            by_out.setdefault(out, []).append((key, kids))
        dist: dict = {}
        frontier = {r for r in self.roots if r is not None}
        for r in frontier:
            dist[r] = 0
        k = 0
        consts = {out for key, kids, out in nodes if key[0] == "Cst"}
        minus_one = self.table.get(("Cst", "-1/1"))

        def lower(o):
            """(op, children) of e-nodes of class o."""
            return by_out.get(o, ())

        while frontier:
            nxt = set()

            def reach(c):
                if c not in dist:
                    dist[c] = k + 1
                    nxt.add(c)

            for o in frontier:
                for key, kids in lower(o):
                    for c in kids:
                        reach(c)  # one e-node
                    # two e-nodes in one op: matmul Sum(Mul(a, b)); sub Add(a, Mul(-1, b));
                    # means Mul(Sum(x), 1/n); rsqrt Div(1, Sqrt(x))
                    head = key[0]
                    if head == "Sum":
                        for k2, kids2 in lower(kids[0]):
                            if k2[0] == "Mul":
                                for c in kids2:
                                    reach(c)
                    elif head == "Add":
                        for a in kids:
                            for k2, kids2 in lower(a):
                                if k2[0] == "Mul" and minus_one in kids2:
                                    for c in kids2:
                                        reach(c)
                    elif head == "Mul" and any(c in consts for c in kids):
                        for a in kids:
                            for k2, kids2 in lower(a):
                                if k2[0] == "Sum":
                                    reach(kids2[0])
                    elif head == "Div" and kids[0] in consts:
                        for k2, kids2 in lower(kids[1]):
                            if k2[0] == "Sqrt":
                                reach(kids2[0])
            # the rms accumulator: five e-nodes in one op
            for o in frontier:
                for key, kids in by_out.get(o, ()):
                    if key[0] != "Sqrt":
                        continue
                    for c in self._rms_operands(kids[0], by_out):
                        reach(c)
            frontier = nxt
            k += 1
        self._distance = dist
        return dist

    @staticmethod
    def _rms_operands(u, by_out) -> set:
        """x such that u = Add(Mul(Sum(n, Mul(x, x)), c), eps) (either operand order)."""
        out = set()

        def args(cls, head):
            for key, kids in by_out.get(cls, ()):
                if key[0] == head:
                    yield key, kids

        for _, (a, b) in args(u, "Add"):
            for t in (a, b):
                for _, (m1, m2) in args(t, "Mul"):
                    for s in (m1, m2):
                        for key, (sq,) in args(s, "Sum"):
                            for _, (x, y) in args(sq, "Mul"):
                                if x == y:
                                    out.add(x)
        return out

    # -- lookups --------------------------------------------------------------------------------
    def _get(self, key):
        self.stats.lookups += 1
        c = self.table.get(key)
        if c is not None:
            self.stats.hits += 1
        return c

    def var(self, name):
        return self._get(("Var", name))

    def cst(self, key):
        return self._get(("Cst", key))

    def add(self, a, b):
        return None if a is None or b is None else self._get(("Add", a, b))

    def mul(self, a, b):
        return None if a is None or b is None else self._get(("Mul", a, b))

    def div(self, a, b):
        return None if a is None or b is None else self._get(("Div", a, b))

    def exp(self, a):
        return None if a is None else self._get(("Exp", a))

    def sqrt(self, a):
        return None if a is None else self._get(("Sqrt", a))

    def fn(self, name, a):
        return None if a is None else self._get(("Fn", name, a))

    def fn2(self, name, a, b):
        return None if a is None or b is None else self._get(("Fn2", name, a, b))

    def sum(self, n, a):
        if a is None:
            return None
        return a if n == 1 else self._get(("Sum", int(n), a))


@dataclass
class Target:
    """The program being optimised: its kernel graph, the expressions of its outputs and the oracle."""

    graph: Graph
    terms: list
    oracle: Oracle
    constants: tuple = field(default_factory=tuple)  # scalar constants of the program (eps, scales)

    @staticmethod
    def of(graph: Graph, **oracle_options) -> Target:
        terms = kernel_terms(graph)
        outs = [terms[v] for v in graph.outputs]
        consts = set()
        for node in graph.nodes:
            for name in ("scalar", "eps"):
                if node.attr(name) is not None:
                    consts.add((node.op, float(node.attr(name))))
        return Target(graph, outs, Oracle(outs, **oracle_options), tuple(sorted(consts)))
