"""Random testing over finite fields (Mirage, OSDI 2025, section 5), as a Domain for evaluate.py.

Why: a candidate mu-graph must compute the same function as the program it replaces. Mirage evaluates
both on random inputs over finite fields, where rounding cannot hide a difference and a wrong map gives
a wrong answer with high probability.

The arithmetic. A value is an int64 NumPy array whose LAST axis holds one residue per *lane*; lane i
lives in Z_{m_i}. The moduli form a tower m_{L-1} | m_{L-2} - 1, ..., m_1 | m_0 - 1 (for L = 2 this is
the paper's pair q | p - 1). Lane i+1 is the *exponent lane* of lane i:

    exp(x)[lane i] = w_i ^ x[lane i+1]  (mod m_i),  w_i of multiplicative order m_{i+1}

so exp(a + b) = exp(a) * exp(b) holds exactly and the exponent's arithmetic is exact modulo m_{i+1}.
The deepest lane of an exp result is garbage (there is no lane below it); a value with exp nesting
depth e has lanes 0 .. L-1-e exact. `check_equivalent` measures the depth of both programs and uses
L = depth + 1 lanes (at least 2, the paper's setting), so nested exp is handled, which Mirage's
verifier cannot do (its second exp sees a zero q-residue).

The tensor axes come first, so evaluate.py's tiling (slicing, writing back by omap) is unchanged.

Everything that is not a field operation, and how it is made sound:
- sqrt, silu, gelu, relu, pow: random functions, a fresh keyed hash per trial and lane, the same on
  both sides. rsqrt(t) = 1 / sqrt(t), so rsqrt and 1/sqrt forms agree and rms_norm(x) =
  x * rsqrt(mean(x^2) + eps) agrees with x / accum_rms(x). Identities such as sqrt(a)sqrt(b) =
  sqrt(ab) are NOT modelled: a candidate relying on them is rejected (no false positive, a possible
  false negative).
- constants: a float within 2^-20 (relative) of a fraction n/d with d <= 2^16 is that fraction
  (1/4096, 0.125, 2); any other float (eps = 1e-6) is a random field element keyed by its float32
  bits, fixed within a trial and shared by both sides.
- division: multiplication by the inverse (Fermat); 0 has inverse 0 (probability ~ size/m per trial).
- cast: the identity (the field has no precision; the float check covers rounding).
- max (max, reduce_max, accum_max, accum_rescaled_sum's running max): the field has no order, so each
  trial draws one: max is the largest element under a keyed random total order sigma of the values
  (all lanes of an element hashed together; the element is taken whole, every lane). That is a true
  max for some order: associative, commutative, idempotent, so a max of partial maxes (a split
  reduction, online softmax) is the max of the whole, on both sides. Where max only stabilises
  (softmax's x - max(x)), the output does not depend on which element it picks; where its value
  reaches an output (relu as max(x, 0), max pooling), it does, and nothing then says the real order
  would give the same answer. So a program with max is run twice per trial, under sigma and under its
  reverse (a different element of every set of two or more): outputs that change are the value of a
  max reaching them, which the finite fields cannot decide (`check_equivalent` then falls back to
  the float check and says so: method "float-only", no bound). Outputs that do not change are
  invariant to the max (up to the same Schwartz-Zippel bound as the comparison), so comparing them
  compares the max-free functions.

What the bound covers: see `false_positive_bound`.
"""

from __future__ import annotations

import hashlib
import math
import time
import multiprocessing as mp
import random
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from . import evaluate as ev
from .batch_slice import one_chunk
from .mugraph import Graph
from .opset import OPS

BITS = 31  # m_0 < 2^31, so a product of two residues fits in int64


class FieldUnsupported(Exception):
    """The program uses an op the finite-field domain cannot model (e.g. max)."""


# ---------------------------------------------------------------------------------------------
# primes
def is_prime(n: int) -> bool:
    if n < 2:
        return False
    for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):  # deterministic below 3.3e24
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


_TOWERS: dict[int, tuple[int, ...]] = {}


def prime_tower(lanes: int) -> tuple[int, ...]:
    """Primes m_0 > m_1 > ... with m_{i+1} | m_i - 1 and m_0 < 2^31, each step as small as it can be
    (m_i = k m_{i+1} + 1 with the least even k), so the deepest prime is as large as possible."""
    if lanes in _TOWERS:
        return _TOWERS[lanes]
    top = (1 << BITS) - 1
    q = top >> (2 * (lanes - 1))  # each step costs about one factor 2..4
    q |= 1
    while True:
        q -= 2
        if not is_prime(q):
            continue
        chain = [q]
        ok = True
        for _ in range(lanes - 1):
            for k in range(2, 64, 2):
                cand = k * chain[-1] + 1
                if cand > top:
                    ok = False
                    break
                if is_prime(cand):
                    chain.append(cand)
                    break
            else:
                ok = False
            if not ok:
                break
        if ok:
            _TOWERS[lanes] = tuple(reversed(chain))
            return _TOWERS[lanes]


# ---------------------------------------------------------------------------------------------
# vectorised modular helpers
def _mulmod(a, b, m):
    return (a * b) % m


def _powmod(base: np.ndarray, exponent: int, m) -> np.ndarray:
    result = np.ones_like(base)
    base = base % m
    e = exponent
    while e:
        if e & 1:
            result = _mulmod(result, base, m)
        base = _mulmod(base, base, m)
        e >>= 1
    return result


def _inverse(x: np.ndarray, moduli: np.ndarray) -> np.ndarray:
    """Per lane x^(m-2) mod m (0 -> 0)."""
    out = np.empty_like(x)
    for lane, m in enumerate(moduli):
        out[..., lane] = _powmod(x[..., lane], int(m) - 2, int(m))
    return out


def _mix64(x: np.ndarray, key: int) -> np.ndarray:
    """A keyed pseudo-random function Z -> 64-bit words (splitmix64 finaliser)."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(key & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _hash_to(x: np.ndarray, key: int, m: int) -> np.ndarray:
    """A keyed pseudo-random function Z -> Z_m."""
    return (_mix64(x, key) % np.uint64(m)).astype(np.int64)


def exact_fraction(c: float) -> Fraction | None:
    """`c` as a small fraction n/d (d <= 2^16) when it is one up to float32 rounding, else None."""
    if c == 0:
        return Fraction(0)
    fr = Fraction(c).limit_denominator(1 << 16)
    if fr != 0 and abs(float(fr) - c) <= abs(c) * 2.0**-20:
        return fr
    return None


# ---------------------------------------------------------------------------------------------
class FieldDomain:
    """The Domain of evaluate.py over the lanes of a prime tower, for one random trial."""

    def __init__(self, lanes: int = 2, seed: int = 0, reverse_max: bool = False):
        # max under the trial's random order sigma, or (reverse_max) under its reverse
        self.reverse_max = reverse_max
        self.moduli = np.array(prime_tower(lanes), dtype=np.int64)
        self.lanes = lanes
        self.seed = seed
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(self.rng.getrandbits(64))
        self.keys: dict[str, list[int]] = {}
        self.constants: dict[int, np.ndarray] = {}
        self.generators = []
        self._tables = []
        for i in range(lanes - 1):
            m, order = int(self.moduli[i]), int(self.moduli[i + 1])
            while True:
                w = pow(self.rng.randrange(2, m - 1), (m - 1) // order, m)
                if w != 1:
                    break
            self.generators.append(w)
            self._tables.append(self._exp_tables(w, m, order))

    # -- inputs -------------------------------------------------------------------------------
    def random(self, shape) -> np.ndarray:
        # One uniform draw per lane (32-bit bounded draws are the fastest NumPy has; every modulus
        # is below 2^31), written into the lane axis.
        out = np.empty(tuple(shape) + (self.lanes,), dtype=np.int64)
        for lane, m in enumerate(self.moduli):
            out[..., lane] = self.np_rng.integers(0, int(m), size=tuple(shape), dtype=np.uint32)
        return out

    def _key(self, name: str, lane: int) -> int:
        if name not in self.keys:
            self.keys[name] = [self._derived(f"key:{name}", i) for i in range(self.lanes)]
        return self.keys[name][lane]

    def _derived(self, what: str, lane: int) -> int:
        """A 64-bit random number for (this trial, what, lane), whatever else was drawn before: two
        domains of one trial (the original and the candidate evaluated apart) agree on it."""
        digest = hashlib.blake2b(f"{self.seed}:{what}:{lane}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little")

    def constant(self, c: float) -> np.ndarray:
        """A field constant per lane, shape (lanes,)."""
        bits = int(np.float32(c).view(np.uint32)) if np.isfinite(c) else hash(c)
        if bits in self.constants:
            return self.constants[bits]
        fr = exact_fraction(float(c))
        if fr is not None:
            value = np.array([fr.numerator % int(m) * pow(fr.denominator, -1, int(m)) % int(m) for m in self.moduli],
                             dtype=np.int64)
        else:
            value = np.array([self._derived(f"constant:{bits}", i) % int(m) for i, m in enumerate(self.moduli)],
                             dtype=np.int64)
        self.constants[bits] = value
        return value

    # -- exp ---------------------------------------------------------------------------------
    @staticmethod
    def _exp_tables(w: int, m: int, order: int):
        """w^lo and w^(hi * 2^16) for x = hi * 2^16 + lo < order."""

        def powers(base: int, count: int) -> np.ndarray:
            table = np.ones(1, dtype=np.int64)
            step = base
            while len(table) < count:
                table = np.concatenate([table, table * step % m])
                step = step * step % m
            return table[:count]

        return powers(w, 1 << 16), powers(pow(w, 1 << 16, m), (order >> 16) + 1)

    def exp(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros_like(x)
        for lane in range(self.lanes - 1):
            lo_table, hi_table = self._tables[lane]
            e = x[..., lane + 1]
            out[..., lane] = lo_table[e & 0xFFFF] * hi_table[e >> 16] % int(self.moduli[lane])
        # the deepest lane has no exponent lane below it: garbage (zero); depth analysis keeps it out
        return out

    def _order(self, x: np.ndarray) -> np.ndarray:
        """sigma(x) per element (the lane axis folded): the trial's random total order of values."""
        z = np.zeros(x.shape[:-1], dtype=np.uint64)
        with np.errstate(over="ignore"):
            for lane in range(self.lanes):
                z = z * np.uint64(0x9E3779B97F4A7C15) + _mix64(x[..., lane], self._key("max-order", lane))
        return ~z if self.reverse_max else z

    def max(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = np.broadcast_arrays(a, b)
        return np.where((self._order(a) >= self._order(b))[..., None], a, b)

    def _reduce_max(self, x: np.ndarray, dim: int) -> np.ndarray:
        top = np.expand_dims(np.argmax(self._order(x), axis=dim), dim)[..., None]
        return np.take_along_axis(x, np.broadcast_to(top, top.shape[:-1] + (self.lanes,)), axis=dim)

    def _uninterpreted(self, name: str, x: np.ndarray) -> np.ndarray:
        out = np.empty_like(x)
        for lane, m in enumerate(self.moduli):
            out[..., lane] = _hash_to(x[..., lane], self._key(name, lane), int(m))
        return out

    # -- what the op records (opset.OpInfo.field) build on --------------------------------------
    def inverse(self, x: np.ndarray) -> np.ndarray:
        return _inverse(x, self.moduli)

    def random_function(self, name: str, *args: np.ndarray) -> np.ndarray:
        """A keyed random function of the operands (the same on both sides of a trial)."""
        x = args[0]
        for y in args[1:]:
            x, y = np.broadcast_arrays(x, y)
            x = (x * 0x9E3779B1 + y) % (1 << 62)
        return self._uninterpreted(name, x)

    # -- the Domain interface of evaluate.py ---------------------------------------------------
    def unary(self, op: str, x, attrs: dict, dtype: str):
        info = OPS[op]
        x = np.asarray(x)
        return info.field(self, x, **attrs) if info.field else self.random_function(op, x)

    def binary(self, op: str, a, b, dtype: str):
        info = OPS[op]
        a, b = np.asarray(a), np.asarray(b)
        return info.field(self, a, b) if info.field else self.random_function(op, a, b)

    def reduce(self, op: str, x, dim: int, dtype: str):
        x = np.asarray(x)
        if op == "reduce_max":
            return self._reduce_max(x, dim)
        total = np.sum(x, axis=dim, keepdims=True) % self.moduli
        if op == "reduce_mean":
            total = self.div_count(total, x.shape[dim], dtype)
        return total

    # -- lanes no output reads ------------------------------------------------------------------
    def use_lanes(self, table: dict) -> None:
        """`table`: (id(graph), node index) -> the lanes some output needs of that node's result
        (`needed_lanes`); matmuls then compute only those (the others stay zero, unread)."""
        self.lane_table = table
        self.live = None

    def at_node(self, graph: Graph, index: int) -> None:
        table = getattr(self, "lane_table", None)
        self.live = None if table is None else table.get((id(graph), index))

    def matmul(self, a, b, dtype: str):
        a, b = np.asarray(a), np.asarray(b)
        # lanes become a leading batch axis: one set of BLAS calls for all of them
        am, bm = np.moveaxis(a, -1, 0), np.moveaxis(b, -1, 0)
        m = self.moduli.reshape((self.lanes,) + (1,) * (am.ndim - 1))
        live = getattr(self, "live", None)
        if live is not None and len(live) < self.lanes:
            lanes = sorted(live)
            out = _matmul_mod(am[lanes], bm[lanes], m[lanes])
            full = np.zeros((self.lanes,) + out.shape[1:], dtype=np.int64)
            full[lanes] = out
            return np.moveaxis(full, 0, -1)
        return np.moveaxis(_matmul_mod(am, bm, m), 0, -1)

    def div_count(self, x, count: int, dtype: str):
        inv = np.array([pow(count, -1, int(m)) for m in self.moduli], dtype=np.int64)
        return np.asarray(x) * inv % self.moduli

    def rms_norm(self, x, eps: float, dtype: str):
        x = np.asarray(x)
        axis = x.ndim - 2  # the tensor's last dim (the lane axis is last)
        mean = self.reduce("reduce_mean", x * x % self.moduli, axis, dtype)
        rms = self._uninterpreted("sqrt", (mean + self.constant(eps)) % self.moduli)
        return x * _inverse(rms, self.moduli) % self.moduli


def _limb_bits(k: int) -> int:
    """The widest limbs that keep a K-term float64 dot product of limbs and residues exact:
    K * 2^bits * 2^31 <= 2^53."""
    return 53 - BITS - max(0, (k - 1).bit_length())


def _matmul_mod(a: np.ndarray, b: np.ndarray, m) -> np.ndarray:
    """Exact (a @ b) mod m for residues < 2^31 (leading axes broadcast; `m` broadcasts against the
    result), through float64 BLAS: the operand with fewer elements is cut into limbs (16 bits for
    K <= 64, 10 for K <= 4096, ...) stacked along its free dim, the other is converted once, whole;
    every product is below 2^(31 + bits) and every K-term sum below 2^53, so each float64 result is
    an exact integer. K beyond 2^14 (8-bit limbs) is cut into chunks."""
    k = a.shape[-1]
    bits = _limb_bits(k)
    if bits < 8:
        chunk = 1 << (53 - BITS - 8)
        total = 0
        for s in range(0, k, chunk):
            total = (total + _matmul_mod(a[..., s:s + chunk], b[..., s:s + chunk, :], m)) % m
        return total
    limbs = -(-BITS // bits)
    bits = -(-BITS // limbs)  # the same number of limbs, evened out
    split_a = a.size <= b.size
    small, big = (a, b) if split_a else (b, a)
    bigf = np.asarray(big, dtype=np.float64, order="C")
    mask = (1 << bits) - 1
    pieces = [((small >> (bits * j)) & mask).astype(np.float64) for j in range(limbs)]
    if split_a:  # rows of the limbs one after the other: [..., L*M, K] @ [..., K, N]
        r = np.matmul(np.concatenate(pieces, axis=-2), bigf)
        parts = np.split(r, limbs, axis=-2)
    else:  # columns: [..., M, K] @ [..., K, L*N]
        r = np.matmul(bigf, np.concatenate(pieces, axis=-1))
        parts = np.split(r, limbs, axis=-1)
    # Horner from the top limb: acc * 2^bits + part < 2^31 * 2^16 + 2^53 fits int64; one % per limb
    total = parts[-1].astype(np.int64) % m
    for j in range(limbs - 2, -1, -1):
        total = ((total << bits) + parts[j].astype(np.int64)) % m
    return total


_REFERENCE_MEMO: dict = {}  # (graph, lanes, seed, trial) -> lane-0 outputs of the original


def _remember_reference(memo_key: tuple, trial: int, reverse: bool, outputs) -> None:
    if len(_REFERENCE_MEMO) > 32:
        _REFERENCE_MEMO.clear()
    _REFERENCE_MEMO[(memo_key, trial, reverse)] = outputs


def reference_trial_seconds(original: Graph, seed: int = 0, deadline: float | None = None) -> float:
    """Seconds of the original's first finite-field trial, which this runs and remembers for
    check_equivalent (at the lanes its own exps need): what a verification's trials cost. Run as
    the verification's tasks run (forked, one BLAS thread) and stopped at `deadline`."""
    start = time.perf_counter()
    (cut,), _, _ = one_chunk(original)
    if 2 * _elements(cut) <= _elements(original):
        # the batch is most of the work (attention): candidates are cut alike and share this trial;
        # where weights are (a projection), its candidates read every row and the whole costs the same
        original = cut
    lanes = max(2, exp_depth(original) + 1)
    tasks = [("ref", 0, reverse) for reverse in ((False, True) if uses_max(original) else (False,))]
    try:
        for (_, trial, reverse), outputs in _finished(tasks, (original, original, lanes, seed), 1, deadline):
            if not isinstance(outputs, str):
                _remember_reference((hash(original), lanes, seed), trial, reverse, outputs)
    except mp.TimeoutError:
        pass
    return time.perf_counter() - start


def _elements(graph: Graph) -> int:
    return sum(t.numel() for t in graph.value_types)


def _finished(tasks: list, job: tuple, workers: int, deadline: float | None):
    """(task, result) of each of `tasks` (see _do; job: original, candidate, lanes, seed) as they
    finish: in `workers` forked processes when there are several to share or a deadline to keep
    (mp.TimeoutError there), else here."""
    if (workers > 1 and len(tasks) > 1 or deadline is not None) and not mp.current_process().daemon:
        global _JOB
        _JOB = job
        pool = mp.get_context("fork").Pool(max(1, min(workers, len(tasks))))
        try:
            results = pool.imap_unordered(_job, tasks)
            for _ in tasks:
                wait = None if deadline is None else deadline - time.perf_counter()
                if wait is not None and wait <= 0:
                    raise mp.TimeoutError
                yield results.next(timeout=wait)
        finally:
            pool.terminate()
            _JOB = None
    else:
        with _OneBlasThread():
            for task in tasks:
                yield task, _do(task, *job)


# ---------------------------------------------------------------------------------------------
# static analyses of a kernel graph: exp nesting depth, rational degree, exp count
def _applies_exp(op: str) -> bool:
    return op == "accum_rescaled_sum" or (op in OPS and OPS[op].exps > 0)


def exp_depth(graph: Graph) -> int:
    """The most exps on any input-to-output path (through block and thread graphs)."""

    def walk(g: Graph, ins: list[int]) -> list[int]:
        d = list(ins)
        for node in g.nodes:
            args = [d[v] for v in node.inputs]
            if node.body is not None:
                outs = walk(node.body, args)
                d.extend(outs)
                continue
            base = max(args, default=0) + (1 if _applies_exp(node.op) else 0)
            d.extend([base] * len(node.types))
        return [d[v] for v in g.outputs]

    return max(walk(graph, [0] * len(graph.inputs)), default=0)


def degree_and_exps(graph: Graph) -> tuple[int, int]:
    """(d, k): a bound on the total degree of each output as a rational function (numerator plus
    denominator degree, every exp/sqrt/silu... application counted as a fresh variable of degree 1),
    and the number of exp ops (structural: one per op, as Mirage counts them)."""
    exps = 0

    def walk(g: Graph, ins: list[tuple[int, int]]) -> list[tuple[int, int]]:
        nonlocal exps
        d = list(ins)
        for node in g.nodes:
            args = [d[v] for v in node.inputs]
            op = node.op
            if node.body is not None:
                d.extend(walk(node.body, args))
                continue
            info = OPS.get(op)
            if info is not None and info.category in ("unary", "binary"):
                exps += info.exps
                r = info.degree(*args) if info.degree else (1, 0)
            elif op == "accum_rescaled_sum":
                exps += 1
                r = args[0]
            elif op == "matmul":
                (na, da), (nb, db) = args
                r = (na + nb, da + db)
            elif op in ("rms_norm",):
                r = (args[0][0], 1)
            elif op == "accum_rms":
                r = (1, 0)
            else:  # reductions, iterators, accumulators, savers
                r = args[0] if args else (1, 0)
            d.extend([r] * len(node.types))
        return [d[v] for v in g.outputs]

    outs = walk(graph, [(1, 0)] * len(graph.inputs))
    return max((n + m for n, m in outs), default=1), exps


def false_positive_bound(d: int, k: int, q: int, p: int, trials: int) -> float:
    """The chance that two non-equivalent programs agree on `trials` independent random tests.

    Per trial: without exp, Schwartz-Zippel on the rational function (numerator after clearing
    denominators, degree <= d) gives d/p. With k exp ops, the paper's Theorem (Mirage, OSDI 2025)
    gives 8 d k^4 / q + q^(-1/k^2). Random functions (sqrt, silu, ...) are fresh variables of degree 1;
    a collision of two distinct arguments of one random function adds at most n^2/p for n evaluated
    elements, which the bound below does not include (under 1e-9 for tensors below 2^11 elements per
    lane, and it only matters when such ops differ between the programs). The tests are independent
    (fresh inputs, generators, constants and random functions), so the bound is the per-trial bound
    to the power `trials`.
    """
    if k == 0:
        per_trial = d / p
    else:
        per_trial = 8 * d * k**4 / q + q ** (-1.0 / k**2)
    return min(1.0, per_trial) ** trials


# ---------------------------------------------------------------------------------------------
@dataclass
class EquivalenceResult:
    equivalent: bool
    trials: int
    bound: float  # false-positive bound of the finite-field tests (meaningful when equivalent)
    primes: tuple[int, ...] = ()
    degree: int = 0
    exp_ops: int = 0
    first_mismatch: int | None = None  # index of the first output that differs
    reason: str = ""
    float_error: float | None = None  # max relative error of the float check
    float_checked: bool = False
    # "finite-field" (the bound holds), or "float-only": a max's value reaches an output, only the
    # float check decided (no bound; the search never accepts such a result)
    method: str = "finite-field"
    details: dict = field(default_factory=dict)
    cut_short: bool = False  # a deadline stopped it before a verdict
    # (batch, rows): the programs were compared on `rows` of dim 0's `batch` (batch_slice.py)
    batch_rows: tuple[int, int] | None = None

    def __bool__(self) -> bool:
        return self.equivalent

    @property
    def scope(self) -> str:
        """Where the trials ran, when not on the whole program."""
        if self.batch_rows is None:
            return ""
        return f" on {self.batch_rows[1]} of dim 0's {self.batch_rows[0]} rows (chunks computed alike and apart)"

    @property
    def verified(self) -> bool:
        """Equivalent with the finite-field bound behind it (not on a float check alone)."""
        return self.equivalent and self.method == "finite-field"


def _same_interface(a: Graph, b: Graph) -> str:
    if tuple(a.inputs) != tuple(b.inputs):
        return f"inputs differ: {[str(t) for t in a.inputs]} vs {[str(t) for t in b.inputs]}"
    ta = [a.value_types[v] for v in a.outputs]
    tb = [b.value_types[v] for v in b.outputs]
    if [t.shape for t in ta] != [t.shape for t in tb]:
        return f"outputs differ: {[str(t) for t in ta]} vs {[str(t) for t in tb]}"
    return ""


FLOAT_TOLERANCE = {"f16": 2e-2, "bf16": 5e-2, "f32": 1e-3, "f64": 1e-9}


STABILITY_SCALES = (16.0, 256.0)  # input scales at which a program with max must stay finite where its original does


def float_check(original: Graph, candidate: Graph, seed: int = 0) -> tuple[int | None, float]:
    """Runs both in floating point (evaluate.FloatDomain, the reference semantics) on random normal
    inputs; returns (first output beyond tolerance or None, max relative error). When the original
    takes a max (a softmax subtracting it stays finite on large inputs), the candidate must also
    stay finite wherever the original does on inputs scaled by STABILITY_SCALES: the error is then
    inf (a max-free exp(x) / sum(exp(x)) agrees everywhere else)."""
    rng = np.random.default_rng(seed)
    normal = [(rng.standard_normal(t.shape) / math.sqrt(t.shape[-1] or 1)).astype(np.float32)
              for t in original.inputs]

    def run(scale: float):
        # scale 1 as the interpreter's random inputs: sums of exp stay finite in f16
        inputs = [ev.FloatDomain().unary("cast", x * np.float32(scale), {}, t.dtype)
                  for x, t in zip(normal, original.inputs)]
        return ev.evaluate(original, inputs), ev.evaluate(candidate, inputs)

    if uses_max(original):
        with np.errstate(all="ignore"):
            for scale in STABILITY_SCALES:
                for index, (r, g) in enumerate(zip(*run(scale))):
                    if np.any(np.isfinite(np.asarray(r, np.float64)) & ~np.isfinite(np.asarray(g, np.float64))):
                        return index, math.inf
    ref, got = run(1.0)
    worst = 0.0
    for index, (r, g) in enumerate(zip(ref, got)):
        r64, g64 = np.asarray(r, np.float64), np.asarray(g, np.float64)
        scale = max(float(np.max(np.abs(r64))) if r64.size else 0.0, 1e-30)
        if not np.all(np.isfinite(g64) == np.isfinite(r64)):
            return index, math.inf
        finite = np.isfinite(r64)
        err = float(np.max(np.abs(r64[finite] - g64[finite]))) / scale if finite.any() else 0.0
        worst = max(worst, err)
        dtype = original.value_types[original.outputs[index]].dtype
        if err > FLOAT_TOLERANCE.get(dtype, 1e-3):
            return index, err
    return None, worst


def needed_lanes(graph: Graph, lanes: int, table: dict | None = None, out_lanes=None) -> tuple[dict, list]:
    """Which lanes of each node's result some program output's lane 0 depends on: every op is
    lane-wise except exp, whose lane i reads lane i + 1 of its operand, and the max ops, which read
    every lane.
    Returns ({(id(graph), node index): lanes}, per graph input: lanes), for nested block and thread
    graphs too; a node met in several places gets the union, so no lane it needs is ever missing."""
    table = {} if table is None else table
    out_lanes = [{0} for _ in graph.outputs] if out_lanes is None else out_lanes
    need = {v: set() for v in range(len(graph.value_types))}
    for v, s in zip(graph.outputs, out_lanes):
        need[v] |= set(s)
    for index in range(len(graph.nodes) - 1, -1, -1):
        node = graph.nodes[index]
        first = graph.first_result[index]
        results = [need[first + k] for k in range(len(node.types))]
        res = set().union(*results)
        key = (id(graph), index)
        table[key] = table.get(key, set()) | res
        if node.body is not None:
            _, inner = needed_lanes(node.body, lanes, table, results)
            for v, s in zip(node.inputs, inner):
                need[v] |= s
        elif node.op in OPS and OPS[node.op].exps:
            for v in node.inputs:
                need[v] |= {i + 1 for i in res if i + 1 < lanes}
        elif node.op in MAX_OPS and res:
            for v in node.inputs:
                need[v] |= set(range(lanes))  # sigma reads every lane of the elements it orders
        else:
            for v in node.inputs:
                need[v] |= res
    return table, [need[i] for i in range(len(graph.inputs))]


MAX_OPS = ("max", "reduce_max", "accum_max", "accum_rescaled_sum")


def uses_max(graph: Graph) -> bool:
    """Some op of the graph (or of a block or thread graph inside it) takes a max."""
    return any(node.op in MAX_OPS or (node.body is not None and uses_max(node.body)) for node in graph.nodes)


def _trial_outputs(graph: Graph, types, lanes: int, seed: int, trial: int, reverse_max: bool = False):
    """Lane 0 of `graph`'s outputs on finite-field trial `trial` (inputs of `types`, keys and
    constants derived from the trial's seed, so the original and the candidate can be run apart),
    max under the trial's order or its reverse, or the reason the domain cannot model it."""
    domain = FieldDomain(lanes, seed=(seed * 1_000_003 + trial) & 0xFFFFFFFF, reverse_max=reverse_max)
    inputs = [domain.random(t.shape) for t in types]
    domain.use_lanes(needed_lanes(graph, lanes)[0])
    try:
        out = ev.evaluate(graph, inputs, domain)
    except FieldUnsupported as e:
        return f"cannot verify: {e}"
    return [np.ascontiguousarray(np.asarray(o)[..., 0]) for o in out]


_JOB = None  # (original, candidate, lanes, seed) for the forked workers of check_equivalent


def _openblas():
    """(get_num_threads, set_num_threads) of the OpenBLAS NumPy loaded, or None."""
    import ctypes

    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("", ""), ("", "64_"), ("scipy_", "64_"), ("scipy_", "")):
            get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
            put = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                return get, put
    return None


def single_blas_thread() -> None:
    """One BLAS thread in this process. The trials run many small batched matmuls: with OpenBLAS's
    spinning threads on a loaded 2-core machine they ran 6x slower. Best effort: OpenBLAS under its
    usual symbol names."""
    fns = _openblas()
    if fns is not None:
        fns[1](1)


class _OneBlasThread:
    """Context: one BLAS thread inside, the previous count restored after."""

    def __enter__(self):
        self.fns = _openblas()
        self.before = self.fns[0]() if self.fns is not None else None
        if self.fns is not None:
            self.fns[1](1)

    def __exit__(self, *exc):
        if self.fns is not None:
            self.fns[1](self.before)
        return False


def _job(task):
    single_blas_thread()
    return task, _do(task, *_JOB)


def _do(task, original: Graph, candidate: Graph, lanes: int, seed: int):
    if task == "float":
        return float_check(original, candidate, seed)
    which, trial, reverse = task
    return _trial_outputs(original if which == "ref" else candidate, original.inputs, lanes, seed, trial, reverse)


def _max_reaches(variants: list) -> int | None:
    """The first output whose value changes with the order max is taken under (outputs per order)."""
    for index, (a, b) in enumerate(zip(*variants)) if len(variants) == 2 else ():
        if not np.array_equal(a, b):
            return index
    return None


def check_equivalent(original: Graph, candidate: Graph, trials: int = 4, seed: int = 0,
                     float_check_too: bool = True, workers: int = 1,
                     deadline: float | None = None) -> EquivalenceResult:
    """Finite-field random tests of `candidate` against `original` (same inputs, same outputs in
    order), then a floating-point check. Fresh inputs, generators w, constants, random functions and
    max orders on every trial; a program with max also runs under the reversed order, and if its
    outputs change (the value of a max reaches them) the finite fields cannot decide: the result is
    the float check's alone (method "float-only", no bound). With `workers` > 1 the trials (and the
    float check) run in that many forked processes at once; the result is the same. With a
    `deadline` (time.perf_counter()) they run in forked processes even for one worker, stopped
    there: the result is then `cut_short` (not equivalent, nothing decided). Programs proven to
    compute chunks of their batch alike and apart are compared on one chunk (batch_slice.py;
    `batch_rows` says so)."""
    problem = _same_interface(original, candidate)
    if problem:
        return EquivalenceResult(False, 0, 1.0, reason=problem, first_mismatch=0)
    (original, candidate), batch, rows = one_chunk(original, candidate)
    result = _decide(original, candidate, trials, seed, float_check_too, workers, deadline)
    result.batch_rows = (batch, rows) if rows < batch else None
    return result


def _decide(original: Graph, candidate: Graph, trials: int, seed: int, float_check_too: bool, workers: int,
            deadline: float | None) -> EquivalenceResult:
    depth = max(exp_depth(original), exp_depth(candidate))
    lanes = max(2, depth + 1)
    primes = prime_tower(lanes)
    d1, k1 = degree_and_exps(original)
    d2, k2 = degree_and_exps(candidate)
    d, k = max(d1, d2), k1 + k2
    orders = {"ref": (False, True) if uses_max(original) else (False,),
              "cand": (False, True) if uses_max(candidate) else (False,)}
    # tasks: each trial's original and candidate outputs apart (the original's remembered across
    # candidates), then the float check; a trial is decided when all its parts are in
    memo_key = (hash(original), lanes, seed)
    outputs: dict = {}
    tasks = []
    for trial in range(trials):
        for reverse in orders["ref"]:
            if (memo_key, trial, reverse) in _REFERENCE_MEMO:
                outputs[("ref", trial, reverse)] = _REFERENCE_MEMO[(memo_key, trial, reverse)]
            else:
                tasks.append(("ref", trial, reverse))
        tasks += [("cand", trial, reverse) for reverse in orders["cand"]]
    if float_check_too:
        tasks.append("float")
    verdicts: dict = {}  # trial -> None (agree) or (output index or None, reason)
    max_reaches: dict = {}  # "ref" / "cand" -> the first output a max's value reaches
    float_result = None

    def settle(task, result) -> bool:
        """Records a finished task; True when the finite-field trials need not go on (a trial
        failed, or a max's value reaches an output)."""
        nonlocal float_result
        if task == "float":
            float_result = result
            return False
        outputs[task] = result
        which, trial, reverse = task
        if which == "ref" and not isinstance(result, str):
            _remember_reference(memo_key, trial, reverse, result)
        parts = {w: [outputs.get((w, trial, r)) for r in orders[w]] for w in orders}
        for half in parts["ref"] + parts["cand"]:
            if isinstance(half, str):
                verdicts[trial] = (None, half)
                return True
        if any(half is None for half in parts["ref"] + parts["cand"]):
            return False
        for w in orders:
            reached = _max_reaches(parts[w])
            if reached is not None:
                max_reaches[w] = reached
                return True
        verdicts[trial] = None
        for index, (r, g) in enumerate(zip(parts["ref"][0], parts["cand"][0])):
            if not np.array_equal(r, g):
                verdicts[trial] = (index, f"output #{index} differs on finite-field trial {trial}")
                return True
        return False

    try:
        for task, result in _finished(tasks, (original, candidate, lanes, seed), workers, deadline):
            if settle(task, result):
                break
    except mp.TimeoutError:
        return EquivalenceResult(False, 0, 1.0, primes, d, k, reason="cut short by the time budget", cut_short=True)
    if max_reaches:
        return _float_only(original, candidate, max_reaches, float_result, seed, primes, d, k)
    failed = sorted(t for t, v in verdicts.items() if v is not None)
    if failed:
        trial = failed[0]
        index, reason = verdicts[trial]
        if reason.startswith("cannot verify"):
            return EquivalenceResult(False, trial, 1.0, primes, d, k, reason=reason)
        return EquivalenceResult(False, trial + 1, 1.0, primes, d, k, first_mismatch=index, reason=reason)
    bound = false_positive_bound(d, k, int(primes[1]), int(primes[0]), trials)
    if orders["ref"] != (False,) or orders["cand"] != (False,):
        # a program that depends on its max could pass the reversed-order test by chance as a
        # wrong one passes the comparison: the union of the two
        bound = min(1.0, 2 * bound)
    result = EquivalenceResult(True, trials, bound, primes, d, k)
    if float_check_too:
        index, err = float_result
        result.float_checked = True
        result.float_error = err
        if index is not None:
            result.equivalent = False
            result.first_mismatch = index
            if math.isinf(err):
                result.reason = (f"output #{index} agrees over the finite fields but overflows in floating point "
                                 f"where the original stays finite (it subtracts a max; inputs scaled by "
                                 f"{', '.join(f'{c:g}' for c in STABILITY_SCALES)})")
            else:
                result.reason = (f"output #{index} agrees over the finite fields but differs in floating point "
                                 f"(max relative error {err:.3g})")
    return result


def _float_only(original: Graph, candidate: Graph, max_reaches: dict, float_result, seed: int, primes, d: int,
                k: int) -> EquivalenceResult:
    """The verdict when a max's value reaches an output: the float check's, named as such."""
    which, index = next(iter(max_reaches.items()))
    program = "original" if which == "ref" else "candidate"
    if float_result is None:
        float_result = float_check(original, candidate, seed)
    mismatch, err = float_result
    why = (f"the value of a max reaches output #{index} of the {program} (it changes with the order max is "
           f"taken under), which the finite-field test cannot decide")
    result = EquivalenceResult(mismatch is None, 0, 1.0, primes, d, k, first_mismatch=mismatch,
                               float_error=err, float_checked=True, method="float-only", details={"why": why})
    if mismatch is None:
        result.reason = f"checked in floating point only (max relative error {err:.3g}): {why}"
    else:
        result.reason = f"output #{mismatch} differs in floating point (max relative error {err:.3g}); {why}"
    return result


__all__ = ["EquivalenceResult", "FieldDomain", "FieldUnsupported", "check_equivalent", "exp_depth",
           "false_positive_bound", "float_check", "prime_tower", "reference_trial_seconds", "uses_max"]
