"""The search driver: best-first branch and bound over kernel graphs, block-graph tasks run on a pool
of worker processes, then verification (finite fields + float) of the best candidate.

Each queue entry carries a lower bound of the final cost: the cost so far + the cheapest the next
kernel could be (configurations.ConfigTable) + what every remaining input, unconsumed intermediate
and unwritten program output still costs to move. The queue is popped in bound order, so complete
candidates come out cheapest first; the search stops when the queue's best bound is not below the
`keep`-th cheapest candidate (that candidate is then optimal under the cost model, within the
generator's space). Entries are never dropped, so when the best candidate fails verification it is
removed and the same search resumes.

Configurations are enumerated lazily per input signature (a graph_def's inputs with their factor
structure), block-graph results are remembered per (inputs, configuration), and a state whose
tensors equal those of a state popped earlier (so at no lower cost) is not expanded again.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import math
import multiprocessing as mp
import os
import queue
import sys
import time
import traceback
from dataclasses import dataclass, field, replace

from .. import finite_field
from ..graph_verify import verify as verify_structure
from ..mugraph import Graph, Node, TensorType
from . import absexpr, cache, cost as costmod, seeds
from .generator import (BlockSearch, Config, Context, KTensor, Options, UNARY_SEARCH, build_body,
                        config_table)
from ..lowering import CODEGEN_VERSION, plan_figures, warp_tiles
from ..lowering.fuse_split_k import fused_pairs
from .space import index_classes
from .threads import fuse_block, fuse_thread_graphs


MATMUL_MAX_THREADS = 256
SEARCH_VERSION = 29  # raise when the search can find or rank other plans: cached results are searched again


@dataclass(frozen=True)
class KState:
    nodes: tuple
    tensors: tuple  # KTensor per value id
    consumed: frozenset
    cost: float
    finals: tuple  # per program output: value id or -1


@dataclass
class SearchOptions(Options):
    time_budget: float = 45.0  # seconds for all of it: e-graph, seeds, search, verification
    seed: int = 0
    workers: int = 2
    keep: int = 1  # the search stops once this many cheapest candidates are proven
    max_predefined: int = 2  # predefined kernel ops per candidate
    verify_trials: int = 3
    progress: bool = False
    use_cache: bool = True
    dump: bool = False  # keep every candidate (ranked) in the result
    candidates: int = 1  # verified candidates kept for the clock to choose from (distinct plans)
    # False for the seeds' parts only: the cheapest candidate unverified, as their composition is
    # verified whole (a part's verification at full size cost as much as the program's)
    verify: bool = True


@dataclass
class SearchStats:
    states: int = 0  # block-graph search states + kernel-graph states
    configs: int = 0  # graph_def configurations enumerated
    block_tasks: int = 0
    block_s: float = 0.0  # seconds spent in block-graph searches (summed over workers)
    replays: int = 0  # block tasks that replayed another configuration's block graphs
    proven: bool = False  # the result is the cheapest candidate of the space (the search ran out)
    candidates: int = 0
    seeds: int = 0  # candidates made by rule (seeds.py)
    verified: int = 0
    rejected: int = 0
    egraph_s: float = 0.0
    egraph_enodes: int = 0
    egraph_saturated: bool = False
    search_s: float = 0.0
    verify_s: float = 0.0
    total_s: float = 0.0
    cached: bool = False
    cut_short: bool = False  # the budget ended verification before every wanted candidate was checked
    # block graphs whose construction raised (a bug: the search went on without them, and its result
    # is not cached); the first one's error and where it was raised
    build_failures: int = 0
    first_build_failure: str = ""

    def add_build_failures(self, count: int, first: str) -> None:
        if count and not self.build_failures:
            self.first_build_failure = first
        self.build_failures += count


@dataclass
class SearchResult:
    graph: Graph | None  # the best verified candidate (None: nothing verified; unverified with options.verify off)
    cost: costmod.Cost | None
    reference_cost: costmod.Cost
    stats: SearchStats
    verification: finite_field.EquivalenceResult | None = None
    ranked: list = field(default_factory=list)  # [(estimated us, Graph, verified or None)]
    # up to options.candidates verified plans, the model's order: [(estimated us, Graph)]; the first is .graph
    candidates: list = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
_CTX: Context | None = None


def _kernels(ctx: Context, results) -> list:
    """[(block graph, cost in us, output KTensors)] of a block search's results, the block size
    chosen by the cost model (the structure does not depend on it); infeasible ones dropped."""
    chip = costmod.chip(ctx.options.chip)
    out = []
    for body, outs in results:
        # costed as it will be lowered: its elementwise chains fused into thread graphs (in registers)
        # (block sizes change tensor-core efficiency, residency, copies' round trips and each thread's
        # serial work: the cheapest is kept; kernels with matmuls at the sizes the model was fitted on
        # with them, benchmarks/NOTES.md: 512 threads ran a streaming matmul 1.8x slower than 256)
        fused = fuse_block(body)
        has_matmul = any(n.op == "matmul" for n in body.nodes)
        sizes = [bd for bd in ctx.options.block_sizes if not has_matmul or bd <= MATMUL_MAX_THREADS]
        kc, best = min(((costmod.graph_def_cost(replace(fused, block_dim=(bd, 1, 1)), chip), bd)
                        for bd in sizes), key=lambda e: e[0].us)
        body = replace(body, block_dim=(best, 1, 1))
        if kc.us == float("inf"):
            continue
        ktensors = tuple(KTensor(body.value_types[v], dims, ecls) for v, (final, dims, ecls) in zip(body.outputs, outs))
        out.append((body, kc.us, ktensors))
    return out


def _block_task(payload):
    """A block-graph search (or, with templates, a replay of another configuration's block graphs):
    (states, [(block graph, cost in us, output KTensors)], seconds, [(ops, saves)], [failures]), a
    failure being the error of a block graph that could not be built, and where it was raised."""
    start = time.perf_counter()
    tensors, cfg, final_ok, more, deadline, need_more, templates = payload
    search = BlockSearch(_CTX, tensors, cfg, final_ok, more, deadline, need_more)
    results = search.run() if templates is None else search.replay(templates)
    out, failures = [], []
    seen = set()
    for tiles, ops, saves in results:
        if time.perf_counter() > deadline:
            break
        key = (ops, saves)
        if key in seen:
            continue
        seen.add(key)
        dtypes = []
        for tile_index, (omap, final, dims) in saves:
            if final is not None:
                dtypes.append(_CTX.target.graph.value_types[_CTX.target.graph.outputs[final]].dtype)
            else:
                dtypes.append(tiles[tile_index].dtype)
        try:
            body = build_body(_CTX, cfg, [t.type for t in tensors], tiles, ops, saves, dtypes)
        except Exception as e:  # every closed state builds (benchmarks/NOTES.md, session 39): a bug
            frame = traceback.extract_tb(e.__traceback__)[-1]
            failures.append(f"{type(e).__name__}: {e} ({os.path.basename(frame.filename)}:{frame.lineno})")
            continue
        outs = [(final, dims, tiles[tile_index].ecls) for tile_index, (omap, final, dims) in saves]
        out.append((body, outs))
    return (search.states, _kernels(_CTX, out), time.perf_counter() - start,
            [(ops, saves) for _, ops, saves in results], failures)


class Searcher:
    def __init__(self, reference: Graph, options: SearchOptions, stats: SearchStats | None = None):
        self.reference = reference
        self.options = options
        self.chip = costmod.chip(options.chip)
        self.stats = stats or SearchStats()
        t0 = time.perf_counter()
        target = absexpr.Target.of(reference)
        self.stats.egraph_s = time.perf_counter() - t0
        self.stats.egraph_enodes = target.oracle.stats.enodes
        self.stats.egraph_saturated = target.oracle.stats.saturated
        info = index_classes(reference)
        rms_eps = tuple(sorted({v for op, v in target.constants if op == "rms_norm"}))
        scalars = tuple(sorted({(op, v) for op, v in target.constants if op in ("mul_scalar", "add_scalar")}))
        scalars += tuple(("add_scalar", e) for e in rms_eps if ("add_scalar", e) not in scalars)
        self.ctx = Context(target, info, options, rms_eps, scalars)
        self.out_types = [reference.value_types[v] for v in reference.outputs]
        self.deadline = time.perf_counter() + options.time_budget  # superoptimize sets the search's share
        self.started = False
        self.heap: list = []
        self.counter = itertools.count()
        self.candidates: dict[Graph, float] = {}
        self.rejected: set = set()
        self.seen_states: dict = {}  # state signature -> the lowest cost it was expanded at
        self.block_cache: dict = {}  # (input tensors, configuration, mode) -> block results
        self.structures: dict = {}  # configuration structure -> block-graph templates (or waiting tasks)
        self.leaders: dict = {}  # block task key -> the structure it searches for
        used = set()
        for n in reference.nodes:
            used.update(n.inputs)
        self.needed = [i in used or i in reference.outputs for i in range(len(reference.inputs))]

    # -- the queue -------------------------------------------------------------------------------
    def push(self, lb: float, kind: str, payload) -> None:
        heapq.heappush(self.heap, (lb, next(self.counter), kind, payload))

    def bound(self) -> float:
        if len(self.candidates) < self.options.keep:
            return float("inf")
        return sorted(self.candidates.values())[self.options.keep - 1]

    def reject(self, graph: Graph) -> None:
        """A candidate that failed verification: it no longer bounds the search."""
        self.candidates.pop(graph, None)
        self.rejected.add(graph)

    def remaining(self, s: KState, reading=None, with_launch: bool = False):
        """A lower bound of what is left after state s (and, when `reading` is given, a kernel reading
        those values): every program input not read yet and every intermediate not consumed yet must
        still be read by a later kernel (a launch, then its bytes), and every program output not
        written yet must be written (by the kernel reading `reading` or a later one)."""
        reading = () if reading is None else reading
        n_in = len(self.reference.inputs)
        moved = 0
        later = False
        for v, t in enumerate(s.tensors):
            if v in s.consumed or v in reading:
                continue
            if v < n_in:
                if self.needed[v]:
                    moved += costmod.nbytes(t.type)
                    later = True
            elif v not in s.finals:
                moved += costmod.nbytes(t.type)
                later = True
        for j, f in enumerate(s.finals):
            if f == -1:
                moved += costmod.nbytes(self.out_types[j])
                if not reading:
                    later = True
        value = (self.chip.launch_us if later else 0.0) + moved / self.chip.bandwidth * 1e6
        return (value, later) if with_launch else value

    def initial_state(self) -> KState:
        o = self.ctx.target.oracle
        tensors = []
        for i, t in enumerate(self.reference.inputs):
            tensors.append(KTensor(t, self.ctx.info.input_dims[i], o.var(f"x{i}")))
        finals = tuple(-1 for _ in self.out_types)
        return KState((), tuple(tensors), frozenset(), 0.0, finals)

    # -- states ------------------------------------------------------------------------------------
    def complete(self, s: KState) -> bool:
        if any(f == -1 for f in s.finals):
            return False
        n_in = len(self.reference.inputs)
        finals = set(s.finals)
        return all(v in s.consumed or v in finals for v in range(n_in, len(s.tensors)))

    def add_node(self, s: KState, node: Node, outs: list[KTensor], kcost: float) -> KState:
        first = len(s.tensors)
        finals = list(s.finals)
        for r, t in enumerate(outs):
            for j, root in enumerate(self.ctx.target.oracle.roots):
                if (finals[j] == -1 and t.ecls == root and t.type == self.out_types[j] and not t.has_partials()):
                    finals[j] = first + r
        return KState(s.nodes + (node,), s.tensors + tuple(outs), s.consumed | frozenset(node.inputs),
                      s.cost + kcost, tuple(finals))

    @staticmethod
    def signature(s: KState):
        """What decides a state's completions: its tensors (with whether each is consumed and which
        program output it is), not the kernels that made them or the order they were made in."""
        return frozenset((t, v in s.consumed, s.finals.index(v) if v in s.finals else -1)
                         for v, t in enumerate(s.tensors))

    @staticmethod
    def known(s: KState, t: KTensor) -> bool:
        """Whether state s already has tensor t: the same one, or the same expression at the same type
        without partial sums (the same data whatever the factor bookkeeping says)."""
        if t in s.tensors:
            return True
        if t.has_partials():
            return False
        return any(u.ecls == t.ecls and u.type == t.type and not u.has_partials() for u in s.tensors)

    def handle_state(self, s: KState) -> None:
        # a state with the same signature as one expanded before at no higher cost has the same
        # completions at a cost at least as high (dominated); with block searches in flight a
        # cheaper one can come later, and is expanded again
        sig = self.signature(s)
        if self.seen_states.get(sig, float("inf")) <= s.cost:
            return
        self.seen_states[sig] = s.cost
        self.stats.states += 1
        if self.complete(s):
            graph = Graph(self.reference.inputs, s.nodes, s.finals)
            if graph not in self.candidates and graph not in self.rejected:
                self.candidates[graph] = s.cost
                self.stats.candidates += 1
            return
        if len(s.nodes) >= self.options.max_kernel_ops:
            return
        self.expand_predefined(s)
        self.expand_graph_defs(s)

    def expand_predefined(self, s: KState) -> None:
        if sum(1 for n in s.nodes if n.op != "graph_def") >= self.options.max_predefined:
            return
        ts = s.tensors
        avail = [v for v, t in enumerate(ts) if t.ecls is not None]
        props = []
        for v in avail:
            t = ts[v]
            for op in UNARY_SEARCH:
                props.append((op, (v,), {}))
            for kind, value in self.ctx.scalars:
                props.append((kind, (v,), {"scalar": value}))
            for eps in self.ctx.rms_eps:
                props.append(("rms_norm", (v,), {"eps": eps}))
            for d in range(len(t.type.shape)):
                if t.type.shape[d] > 1:
                    props.append(("reduce_sum", (v,), {"dim": d}))
                    props.append(("reduce_mean", (v,), {"dim": d}))
        for a, b in itertools.permutations(avail, 2):
            for op in ("matmul", "sub", "div"):
                props.append((op, (a, b), {}))
            if a < b:
                for op in ("add", "mul"):
                    props.append((op, (a, b), {}))
        for op, args, attrs in props:
            made = self.predefined(s, op, args, attrs)
            if made is not None and not self.known(s, made[1]):
                node, out = made
                kc = costmod.predefined_cost(Graph(self.reference.inputs, s.nodes, (), ), node, self.chip)
                ns = self.add_node(s, node, [out], kc.us)
                self.push(ns.cost + self.remaining(ns), "state", ns)

    def predefined(self, s: KState, op, args, attrs):
        from .. import shapes as sh

        ts = [s.tensors[v] for v in args]
        if any(t.has_partials() for t in ts) and not (op == "reduce_sum" and all(f[0] == "p" for f in ts[0].dims[attrs["dim"]]) and ts[0].dims[attrs["dim"]]):
            return None
        try:
            shape = sh.infer(op, [t.type.shape for t in ts], attrs)
        except (sh.ShapeError, KeyError):
            return None
        # dims: unify factor structure
        if op == "matmul":
            a, b = ts
            if a.dims[-1] != b.dims[-2] or a.dims[:-2] != b.dims[:-2]:
                return None
            dims = a.dims[:-1] + (b.dims[-1],)
        elif op in ("reduce_sum", "reduce_mean"):
            d = attrs["dim"]
            dims = ts[0].dims[:d] + ((),) + ts[0].dims[d + 1:]
        elif len(ts) == 2:
            dims = []
            for da, db, na, nb in zip(ts[0].dims, ts[1].dims, ts[0].type.shape, ts[1].type.shape):
                if na == 1:
                    dims.append(db)
                elif nb == 1 or da == db:
                    dims.append(da)
                else:
                    return None
            dims = tuple(dims)
        else:
            dims = ts[0].dims
        e = absexpr.apply_op(self.ctx.target.oracle, op, [t.ecls for t in ts], attrs, [t.type.shape for t in ts])
        if e is None:
            return None
        # matmul may widen (f16 x f16 -> f32); every other op keeps its operands' one element type
        operand_dtypes = {t.type.dtype for t in ts}
        if op != "matmul" and len(operand_dtypes) > 1:
            return None
        dtype = "f32" if op == "matmul" else operand_dtypes.pop()
        for j, root in enumerate(self.ctx.target.oracle.roots):
            if e == root and shape == self.out_types[j].shape:
                if op != "matmul" and self.out_types[j].dtype != dtype:
                    return None  # the output needs a cast, which a later kernel gives it
                dtype = self.out_types[j].dtype
        attrs = {k: float(v) if k in ("eps", "scalar") else v for k, v in attrs.items()}
        node = Node.make(op, args, [TensorType(shape, dtype)], **attrs)
        return node, KTensor(TensorType(shape, dtype), tuple(dims), e)

    def expand_graph_defs(self, s: KState) -> None:
        """Pushes one entry per input set; its configurations are enumerated when it is popped."""
        ts = s.tensors
        n_in = len(self.reference.inputs)
        avail = [v for v, t in enumerate(ts) if t.ecls is not None]
        unconsumed = {v for v in range(n_in, len(ts)) if v not in s.consumed and v not in s.finals}
        have = {ts[v].ecls for v in avail}
        for r in range(1, len(avail) + 1):
            for args in itertools.combinations(avail, r):
                if not unconsumed <= set(args):
                    continue
                if not self.useful_inputs([ts[a].ecls for a in args], have):
                    continue
                read = sum(costmod.nbytes(ts[a].type) for a in args)
                lb = s.cost + self.chip.launch_us + read / self.chip.bandwidth * 1e6 + self.remaining(s, args)
                self.push(lb, "inputs", (s, args))

    def useful_inputs(self, ecls: list, have: set) -> bool:
        """Whether a kernel reading tensors of e-classes `ecls` can compute something new with every
        one of them: its outputs are e-classes buildable from its inputs (Oracle.closure); one the
        state already has is pruned (`known`), and an input without which the same new classes are
        buildable is read for nothing (the kernel without it is at least as cheap)."""
        o = self.ctx.target.oracle
        if len(set(ecls)) != len(ecls):
            return False  # the same expression twice (in two layouts): one of them is enough
        full = o.closure(ecls)
        new = full - have
        if not new:
            return False
        for i in range(len(ecls)):
            if new <= o.closure(ecls[:i] + ecls[i + 1:]):
                return False
        return True

    def expand_configs(self, s: KState, args) -> None:
        """Starts the streams of configurations of a graph_def on `args`, cheapest bound first: only
        the head is queued; popping it queues the next (configurations are enumerated lazily). Two
        streams: kernels writing program outputs only, and kernels writing intermediates too (whose
        bound includes the launch of the later kernel that must read them)."""
        ts = s.tensors
        sig = tuple((ts[a].type, ts[a].dims) for a in args)
        rest, later = self.remaining(s, args, with_launch=True)
        # partial sums are never program outputs: the final stream has no grid over a reduction class
        self.push_config(s, args, config_table(self.ctx, sig, False), 0, rest, "final")
        if len(s.nodes) + 1 < self.options.max_kernel_ops:
            self.push_config(s, args, config_table(self.ctx, sig, True), 0,
                             rest + (0.0 if later else self.chip.launch_us), "more")

    def push_config(self, s: KState, args, table, index: int, rest: float, mode: str) -> None:
        entry = table.get(index)
        if entry is not None:
            self.push(s.cost + entry[0] + rest, "config", (s, args, table, index, rest, mode))

    def pop_config(self, payload):
        """Handles a popped configuration: from the block cache, or joined to the same block search
        in flight (None), or a new block task (key, payload) registered as in flight."""
        s, args, table, index, rest, mode = payload
        self.push_config(s, args, table, index + 1, rest, mode)
        self.stats.configs += 1
        template = table.get(index)[1]
        cfg = replace(template, args=tuple(args))
        tensors = [s.tensors[a] for a in args]
        key = (tuple(tensors), template, mode)
        found = self.block_cache.get(key)
        if found is not None:
            self.handle_block_results(s, cfg, found)
            return None
        if key in self.inflight:
            self.inflight[key].append((s, cfg))  # the same block search, wanted by another state
            return None
        self.inflight[key] = [(s, cfg)]
        more = mode == "more"
        task = (tensors, cfg, True, more, self.deadline, more, None)
        shape = self.structure(tensors, cfg, mode)
        known = self.structures.get(shape)
        if known is None:
            self.structures[shape] = ("waiting", [])  # searched by this task; others of its structure wait
            self.leaders[key] = shape
            return key, task
        if known[0] == "waiting":
            known[1].append((key, task))
            return None
        return key, task[:-1] + (known[1],)

    @staticmethod
    def structure(tensors, cfg: Config, mode: str):
        """What the block graphs of a configuration depend on besides its split sizes: the inputs,
        which dims each grid axis and the loop split, whether there is a loop, which grid axes and
        which tile dims are 1. Configurations of one structure have the same block graphs (up to
        e-graph lookups at their sizes, which a replay checks again)."""
        units = []
        for t, imap, fmap in zip(tensors, cfg.imaps, cfg.fmaps):
            dims = []
            for d, n in enumerate(t.type.shape):
                for a in range(3):
                    if imap[a] == d:
                        n //= cfg.grid[a]
                if fmap == d:
                    n //= cfg.loop
                dims.append(n == 1)
            units.append(tuple(dims))
        return (mode, tuple(tensors), cfg.imaps, cfg.fmaps, cfg.loop_keys, cfg.loop > 1,
                tuple(g > 1 for g in cfg.grid), tuple(units))

    def handle_block_results(self, s: KState, cfg: Config, kernels) -> None:
        for body, us, ktensors in kernels:
            if any(self.known(s, t) for t in ktensors):
                continue  # recomputes a tensor the state already has: dominated by the kernel without it
            node = Node.make("graph_def", cfg.args, [t.type for t in ktensors], body)
            # a combine the lowering fuses into the split reduction before it costs no launch (the bounds
            # still count one: without it the search drowns in split states, as with a cheap launch)
            if s.nodes and len(s.nodes) - 1 in fused_pairs(Graph(self.reference.inputs, s.nodes + (node,), ())):
                us = costmod.fused_combine_us(us, self.chip)
            ns = self.add_node(s, node, list(ktensors), us)
            self.push(ns.cost + self.remaining(ns), "state", ns)

    # -- main loop -----------------------------------------------------------------------------------
    def run(self) -> None:
        """Searches until the queue's best bound reaches the bound (or the queue is empty, or the
        time budget is spent); may be called again after `reject`. Block-graph searches run on the
        worker pool, a few in flight per worker; the queue is popped while they run."""
        global _CTX
        _CTX = self.ctx
        start = time.perf_counter()
        if not self.started:
            self.push(0.0, "state", self.initial_state())
            self.started = True
        pool = None
        if self.options.workers > 1:
            try:
                pool = mp.get_context("fork").Pool(self.options.workers)
            except (OSError, ValueError):
                pool = None
        progress = Progress(self.options.progress, self.options.time_budget)
        depth = 3 * self.options.workers if pool is not None else 1
        done: queue.SimpleQueue = queue.SimpleQueue()
        self.inflight = {}

        order: collections.deque = collections.deque()  # submitted block tasks, oldest first
        ready: dict = {}

        def submit(key, task):
            self.stats.block_tasks += 1
            order.append(key)
            if task[-1] is not None:
                self.stats.replays += 1
            if pool is None or task[-1] is not None:  # replays are quick: no round trip to a worker
                ready[key] = _block_task(task)
            else:
                pool.apply_async(_block_task, (task,), callback=lambda r, k=key: done.put((k, r)),
                                 error_callback=lambda e, k=key: done.put((k, e)))
        try:
            while time.perf_counter() < self.deadline:
                # replays run here, not on the pool: the deadline is checked between them too
                while (len(self.inflight) < depth and self.heap and self.heap[0][0] < self.bound()
                       and time.perf_counter() < self.deadline):
                    lb, _, kind, payload = heapq.heappop(self.heap)
                    if kind == "state":
                        self.handle_state(payload)
                    elif kind == "inputs":
                        self.expand_configs(*payload)
                    else:
                        task = self.pop_config(payload)
                        if task is None:
                            continue
                        submit(*task)
                if not self.inflight:
                    break
                # results are handled in the order the tasks were submitted, whatever order the
                # workers finish them in: the search is the same on every run
                timed_out = False
                while order[0] not in ready:
                    try:
                        k, r = done.get(timeout=max(0.01, self.deadline - time.perf_counter()))
                    except queue.Empty:
                        timed_out = True
                        break
                    ready[k] = r
                if timed_out:
                    break
                key = order.popleft()
                result = ready.pop(key)
                if isinstance(result, BaseException):
                    raise result
                states, found, seconds, templates, failures = result
                self.stats.states += states
                self.stats.block_s += seconds
                self.stats.add_build_failures(len(failures), failures[0] if failures else "")
                self.block_cache[key] = found
                shape = self.leaders.pop(key, None)
                if shape is not None:  # the other configurations of this structure replay its graphs
                    waiting = self.structures[shape][1]
                    self.structures[shape] = ("found", templates)
                    for k, task in waiting:
                        submit(k, task[:-1] + (templates,))
                for s, cfg in self.inflight.pop(key):
                    self.handle_block_results(s, cfg, found)
                progress.update(self.stats, self.deadline)
        finally:
            if pool is not None:
                pool.terminate()
            self.inflight = {}
            progress.close()
        self.stats.search_s += time.perf_counter() - start

    @property
    def exhausted(self) -> bool:
        """True when the cheapest candidate is proven (nothing left below the bound)."""
        return not self.heap or self.heap[0][0] >= self.bound()


class Progress:
    """A one-line progress bar on stderr: states explored, candidates verified, time left."""

    def __init__(self, enabled: bool, budget: float):
        self.enabled = enabled
        self.last = 0.0
        self.start = time.perf_counter()
        self.budget = budget

    def update(self, stats: SearchStats, deadline: float, force: bool = False) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.25 and not force):
            return
        self.last = now
        done = min(1.0, (now - self.start) / max(self.budget, 1e-9))
        bar = "#" * int(done * 20)
        sys.stderr.write(f"\r[mirage-superoptimize] [{bar:<20}] states {stats.states} | candidates "
                         f"{stats.candidates} | verified {stats.verified} | {max(0.0, deadline - now):5.1f}s left ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


# ---------------------------------------------------------------------------------------------
def _verify_one(reference: Graph, candidate: Graph, options: SearchOptions, deadline: float):
    """The candidate's verification; a float-only verdict (a max's value reaching an output, which the
    finite fields cannot decide) never counts as verified here: the search replaces nothing on a
    float check alone."""
    result = finite_field.check_equivalent(reference, candidate, trials=options.verify_trials, seed=options.seed,
                                           workers=options.workers, deadline=deadline)
    result.equivalent = result.verified
    return result


def _still_equivalent(reference: Graph, graph: Graph, options: SearchOptions) -> bool:
    """One finite-field trial (and the float check) of a cached graph against the program."""
    return finite_field.check_equivalent(reference, graph, trials=1, seed=options.seed + 1, workers=1).verified


def options_key(o: SearchOptions) -> dict:
    return {"max_kernel_ops": o.max_kernel_ops, "max_block_ops": o.max_block_ops, "max_blocks": o.max_blocks,
            "max_open_tiles": o.max_open_tiles, "block_states": o.block_states, "block_sizes": list(o.block_sizes),
            "seed": o.seed, "trials": o.verify_trials, "time_budget": o.time_budget, "candidates": o.candidates,
            # a result ranked by another cost model or for another code generator is not reused
            "cost_model": repr(costmod.chip(o.chip)), "codegen": CODEGEN_VERSION, "search": SEARCH_VERSION}


class Budget:
    """The whole search of a subgraph ends by `deadline` (start + time_budget): the e-graph, the
    seeds' sub-searches, the search and every verification, which is stopped at the deadline. The
    search proper stops at `search_end`, leaving for verification VERIFY_SHARE of the budget or, when
    longer, what the first verification is predicted to take (`reserve`). A verification starts only
    while the longest one so far still fits before the deadline, except while nothing is verified
    yet: then any that starts before the deadline (without one, nothing can be replaced)."""

    VERIFY_SHARE = 0.3

    def __init__(self, seconds: float):
        now = time.perf_counter()
        self.deadline = now + seconds
        self.search_end = now + (1 - self.VERIFY_SHARE) * seconds
        self.longest = 0.0

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.perf_counter())

    def reserve(self, reference: Graph, options: SearchOptions, stats: SearchStats) -> None:
        """Runs the program's first finite-field trial (kept for the verifications when the
        candidate needs no more lanes) and ends the search early enough for a first verification:
        the original's trials and the candidate's (which cost more: block graphs, more lanes) and
        the float check, each about as long as that trial, shared among the workers."""
        seconds = finite_field.reference_trial_seconds(reference, options.seed, self.deadline)
        stats.cut_short = self.remaining() == 0  # the deadline stopped even that trial
        predicted = (2 * options.verify_trials + 1) * seconds / max(1, options.workers)
        self.search_end = min(self.search_end, self.deadline - predicted)

    def verify(self, reference: Graph, candidate: Graph, options: SearchOptions, stats: SearchStats,
               needed: bool = False):
        """The verification of the candidate, or None (and stats.cut_short) when it does not fit."""
        now = time.perf_counter()
        if now + (0.0 if needed else self.longest) > self.deadline:
            stats.cut_short = True
            return None
        result = _verify_one(reference, candidate, options, self.deadline)
        seconds = time.perf_counter() - now
        stats.verify_s += seconds
        self.longest = max(self.longest, seconds)
        if result.cut_short:
            stats.cut_short = True
            return None
        return result


def seed_candidates(reference: Graph, options: SearchOptions, budget: Budget,
                    stats: SearchStats) -> tuple[list[Graph], list[Graph]]:
    """Candidates made by rule (seeds.py): the program as one row-wise kernel at the block size the
    model prefers, attention with a max as online softmax (a warp-rows plan and a shared-memory one),
    LayerNorm + Linear with the normalization folded into the projection, and the program cut before
    a matmul that
    reads a computed tensor, each part searched alone (each with a third of the time left) and the
    cheapest of each composed, and the first part's cheapest one-kernel plan before the second's
    (unverified: the compositions are verified with the search's candidates) and, where the first
    part holds a matmul, before the second part as a split-K weight stream (seeds.split_k_projection),
    and the second part alone with the first part's normalizations moved into its blocks
    (seeds.fuse_norm_prologue). Returns them all, and apart those to verify before the search's own
    (one plan per kernel strategy, for the clock to choose from: the online-softmax ones, the folded
    LayerNorm projection and the one-kernel first part's compositions)."""
    out = []
    fused = [g for g in (seeds.row_fused(reference, threads) for threads in options.block_sizes) if g is not None]
    if fused:
        out.append(min(fused, key=lambda g: costmod.cost(g, options.chip).total_us))
    # online softmax: the cheapest plan of each kernel strategy (values in registers, warp-rows, or
    # in shared-memory stages): the model prices the two apart, the clock chooses (NOTES.md, run 65)
    attention = []
    softmax_plans = seeds.online_softmax_attention(reference)
    for strategy in (True, False):
        same = [g for g in softmax_plans if plan_figures(g.nodes[0].body).in_registers == strategy]
        if same:
            attention.append(min(same, key=lambda g: costmod.cost(g, options.chip).total_us))
    out += attention
    first = list(attention)
    # LayerNorm + Linear with the normalization folded into the projection (no row kernel first): the
    # model's three cheapest tilings verified, the cheapest kept for the clock beside the searched pair,
    # and the cheapest one-kernel tiling (no split-K tail), a strategy of its own
    folded = sorted(seeds.folded_layernorm_projection(reference), key=lambda g: costmod.cost(g, options.chip).total_us)
    if folded:
        out += folded[:3]
        first.append(folded[0])
        one_kernel = next((g for g in folded if len(g.nodes) == 1), None)
        if one_kernel is not None and one_kernel not in first:
            if one_kernel not in out:
                out.append(one_kernel)
            first.append(one_kernel)
    # one level of cuts: a part (searched unverified) is not cut again
    split = seeds.split_before_matmul(reference) if options.verify else None
    if split is not None and budget.remaining() > 0:
        def searched(part: Graph, **changes) -> Graph | None:  # each with a third of the time left
            result = superoptimize(part, replace(options, time_budget=budget.remaining() / 3, progress=False,
                                                 dump=False, candidates=1, verify=False, use_cache=False, **changes))
            stats.add_build_failures(result.stats.build_failures, result.stats.first_build_failure)
            return result.graph

        parts = [searched(part) or part for part in split]
        # the first part also as one kernel (SwiGLU's gate kernel streaming its weights, its epilogue
        # fused: a hand-written plan of that form ran 82.9 us where the searched split form ran 94.1,
        # NOTES.md run 83); the clock chooses
        one_kernel = searched(split[0], max_kernel_ops=1)
        out.append(seeds.compose(*parts))
        if one_kernel not in (None, parts[0]):
            first.append(seeds.compose(one_kernel, parts[1]))
            out.append(first[-1])
        # the second part as a split-K weight stream after the first part's one kernel, where the first
        # part is a projection itself (SwiGLU's gate, then its down projection): a strategy the
        # search's space does not hold. After a normalization (rmsnorm_linear, LayerNorm + Linear) the
        # one-launch plans that normalize in the projection's blocks run faster (H200 run 118)
        projections = (seeds.split_k_projection(split[1]) if any(node.op == "matmul" for node in split[0].nodes)
                       else [])
        if projections:
            cheapest = min(projections, key=lambda g: costmod.cost(g, options.chip).total_us)
            first.append(seeds.compose(one_kernel or parts[0], cheapest))
            out.append(first[-1])
        # a normalization before the cut, computed instead in the searched second part's blocks
        fused = seeds.fuse_norm_prologue(seeds.compose(split[0], parts[1]))
        out += [fused] if fused is not None else []
    return out, first


SPLITS = (2, 4, 8)
REFINEMENTS = (2, 4, 8)
COLUMN_TILES = (64, 128)
LOOP_ONE_THREADS = (256, 512)
BESIDE_THREADS = 128  # lora's 64-block plan: 1.99 / 2.24 / 2.11 us at 128 / 256 / 512 threads (H200 run 146)
MERGED_THREADS = 256
# a second depth of the cp.async ring for the clock: at 8 stages instead of 4 LayerNorm + Linear's folded
# plan ran 14.1 -> 12.6 us and SwiGLU + down's split down projections up to 25% faster, but its fastest
# hand plan 27% slower and 256-thread plans lost resident blocks to registers (H200 run 109)
DEEP_RING = 8


def _split_reductions(reference: Graph, best: Graph, check, options: SearchOptions, stats: SearchStats, dump: list,
                      budget: Budget):
    """The best candidate with one of its for-loops split across blocks (seeds.split_reduction), when
    the model ranks that cheaper and it verifies; else the best as it was."""
    cost = costmod.cost(best, options.chip).total_us
    variants = [g for n in range(len(best.nodes)) for splits in SPLITS
                if (g := seeds.split_reduction(best, n, splits)) is not None and not verify_structure(g)]
    for us, g in sorted(((costmod.cost(g, options.chip).total_us, g) for g in variants), key=lambda e: e[0]):
        if us >= cost:
            break
        result = budget.verify(reference, g, options, stats)
        if result is None:
            break
        dump.append((us, g, result))
        if result.equivalent:
            stats.verified += 1
            return g, result
        stats.rejected += 1
    return best, check


def _emittable(g: Graph) -> Graph | None:
    """The candidate with its thread graphs fused (as it is when fusing fails the verifier), or None
    when even that is not a valid mu-graph."""
    fused = fuse_thread_graphs(g)
    if verify_structure(fused):
        fused = g
    return None if verify_structure(fused) else fused


def plan_signature(graph: Graph, sms: int) -> tuple:
    """What makes two candidates different plans, not tile variants of one: per kernel its op and, for
    a block graph, its ops, block size, how many waves of blocks it launches, whether the generator
    keeps its values in registers (a warp-rows kernel) and, last, the bytes a block loads per loop
    iteration to a factor of 4 (0: no loop) with the tiles its blocks save; a combine the lowering
    fuses into its split kernel is no launch of its own (gated_mlp bs8's split plan with its combine
    fused was left out as a tile variant of the same plan with the combine launched). The saved tiles
    tell one wave of 4 splits x 128 columns from one of 2 splits x 64 (gated_mlp bs8: 25.1 against
    22.3 us on the H200, runs 131-133), alike otherwise; they are not part of a plan's family
    (_family)."""
    sig = []
    combines = {n + 1: pair for n, pair in fused_pairs(graph).items()}
    for n, node in enumerate(graph.nodes):
        if n in combines:  # run by the tile's last block, or shared by its cluster's blocks
            sig.append("fused combine" if combines[n].rank_axis == -1 else "fused combine, a block each")
            continue
        if node.body is None:
            sig.append(node.op)
            continue
        body = node.body
        blocks = body.grid_dim[0] * body.grid_dim[1] * body.grid_dim[2]
        stage = sum(costmod.nbytes(body.value_types[body.first_result[i]]) for i, b in enumerate(body.nodes)
                    if b.op == "input_iterator" and b.attr("fmap") != -1)
        saved = tuple(sorted(body.value_types[b.inputs[0]].shape for b in body.nodes if b.op == "output_saver"))
        sig.append((tuple(sorted(b.op for b in body.nodes)), body.block_dim[0], -(-blocks // sms),
                    plan_figures(body).in_registers,
                    (round(math.log(stage, 4)) if body.forloop_range > 1 and stage else 0, saved)))
    return tuple(sig)


def _retilings(graph: Graph) -> list[Graph]:
    """Each looping kernel of `graph` retiled (seeds.retile): its loop over 2, 4 or 8 times thinner
    tiles, at 128 threads, and with output column tiles of 64 or 128 (the shapes of the split-K plans
    that stream fastest on the H200: 16-32 KB stages, 128 threads, one wave of blocks); each kernel
    with a loop of one at 256 and 512 threads, over its grid and over half as many blocks."""
    out = []
    for n, node in enumerate(graph.nodes):
        body = node.body
        if body is None:
            continue
        if body.forloop_range == 1:
            # a loop of one waits for its copies, then runs its stages: more threads copy fewer chunks
            # each and split the mma chains across more warps (lora's one kernel, H200 run 87: 128 ->
            # 256 threads 3.9 -> 3.2 us); also half as many blocks, each twice the columns
            # (a row kernel runs on the threads its layout needs, whatever its block size)
            thread_counts = (None,) if plan_figures(body).unrolled else LOOP_ONE_THREADS
            for grid in [None] + _halved_grids(body):
                for threads in thread_counts:
                    if (grid, threads) != (None, None) and (g := seeds.retile(graph, n, 1, grid, threads)) is not None:
                        out.append(g)
            continue
        grids = [None]
        for saver in (b for b in body.nodes if b.op == "output_saver"):
            for axis, dim in enumerate(saver.attr("omap")):
                size = saver.types[0].shape[dim] if dim != -1 else 0
                grids += [tuple(size // tile if a == axis else g for a, g in enumerate(body.grid_dim))
                          for tile in COLUMN_TILES if dim != -1 and body.grid_dim[axis] > 1 and size % tile == 0
                          and size // tile != body.grid_dim[axis]]
        for grid in dict.fromkeys(grids):
            for threads in (None, 128):
                for factor in (1,) + REFINEMENTS:
                    if (grid, threads, factor) != (None, None, 1):
                        g = seeds.retile(graph, n, factor, grid, threads)
                        out += [g] if g is not None else []
    return out


def beside_the_call_before(graph: Graph, sms: int) -> Graph | None:
    """`graph` with its first kernel, where it loads everything in one step (a loop of one, its copies
    through shared memory), regridded to at most half the SMs (one saver axis halved until it fits)
    on BESIDE_THREADS threads; None where it has no such kernel or is that already. Launched
    under the call before, such a grid finds free SMs, copies its weights there while that call
    runs, and only reads X after it: lora's 64-block plan ran 1.99 us where its 128- and 256-block
    ones, which wait for SMs to free up, ran 2.2-3.5 (H200 run 146). The model knows nothing of the
    call before and ranks it below them, so the clock gets it as a strategy."""
    body = graph.nodes[0].body if graph.nodes else None
    if body is None or body.forloop_range != 1:
        return None
    figures = plan_figures(body)
    if figures.unrolled or figures.in_registers:
        return None
    grid = body.grid_dim
    while not costmod.fits_half_the_sms(math.prod(grid), sms):
        halved = _halved_grids(replace(body, grid_dim=grid))
        if not halved:
            return None
        grid = halved[0]
    if grid == body.grid_dim and body.block_dim[0] == BESIDE_THREADS:
        return None
    return seeds.retile(graph, 0, 1, grid, BESIDE_THREADS)


def _halved_grids(body: Graph) -> list[tuple]:
    """The grid with one of the savers' output axes split half as many ways."""
    axes = {axis for saver in body.nodes if saver.op == "output_saver"
            for axis, dim in enumerate(saver.attr("omap")) if dim != -1 and body.grid_dim[axis] % 2 == 0}
    return [tuple(g // 2 if a == axis else g for a, g in enumerate(body.grid_dim)) for axis in sorted(axes)]


def deep_ring_twin(graph: Graph) -> Graph | None:
    """`graph` with each looping kernel allowed a DEEP_RING-stage cp.async ring, or None where the
    code generator would deepen no kernel's ring (the shared memory or the trip count stops it)."""
    nodes, deeper = [], False
    for node in graph.nodes:
        body = node.body
        if body is not None and body.forloop_range > 1 and not body.max_stages:
            deep = replace(body, max_stages=DEEP_RING)
            if plan_figures(deep).stages > plan_figures(body).stages:
                node, deeper = replace(node, body=deep), True
        nodes.append(node)
    return replace(graph, nodes=tuple(nodes)) if deeper else None


# dependent mma steps a warp may chain an iteration in a whole-K twin: in run 183 every twin at 32
# (K tiles of 512, one warp tile a warp) ran 7-45% slower than its split form (10 of 10 groups:
# LayerNorm 11.2 -> 16.2 us, rmsnorm_linear bs8 15.7 -> 20.4), twins at 16-24 0.78-1.10x of theirs
LONGEST_WHOLE_K_CHAIN = 24


def whole_k_twin(graph: Graph) -> Graph | None:
    """`graph` with each kernel whose warps split a loop-carried matmul's K walking the whole K in
    each warp instead (Graph.whole_k_warps), or None where no kernel's warps split K (or would chain
    more than LONGEST_WHOLE_K_CHAIN mma steps walking it). Neither is better everywhere: run 163
    timed split plans 3-28% faster so (no warps' sums in the tail, fewer registers), but gated_mlp
    bs8's 2-split plan 3% and LayerNorm's 256-thread plan 7% slower."""
    nodes, changed = [], False
    for node in graph.nodes:
        body = node.body
        if body is not None and body.forloop_range > 1 and not body.whole_k_warps:
            whole = replace(body, whole_k_warps=True)
            if warp_tiles(whole) != warp_tiles(body) and plan_figures(whole).mma_chain <= LONGEST_WHOLE_K_CHAIN:
                node, changed = replace(node, body=whole), True
        nodes.append(node)
    return replace(graph, nodes=tuple(nodes)) if changed else None


def _family(signature: tuple) -> tuple:
    """The signature without its last element per kernel (the stage size and the saved tiles)."""
    return tuple(kernel[:-1] if isinstance(kernel, tuple) else kernel for kernel in signature)


def _alternatives(reference: Graph, searched_best: Graph, best: Graph, best_check, searcher, checked: set,
                  options: SearchOptions, stats: SearchStats, dump: list, budget: Budget,
                  strategies: tuple = ()) -> list:
    """The verified candidates kept for the clock, [(estimate, graph, verification)] cheapest first:
    `best` and up to options.candidates - 1 others of distinct plan signatures: the `strategies` (the
    seeds of one plan per kernel strategy) first, then the others cheapest under the model first
    within a family of plans and across families in turn, from the search's other
    candidates (seeds included) and the searched best's (as found, thread graphs not fused) retilings
    (_retilings) with each for-loop split across blocks or each split reduction over half the splits
    (seeds.merge_splits; also with its combine on the split's tiles where that makes the pair one
    launch, seeds.combine_on_split_tiles). Verification is cut off after 2 attempts per wanted
    candidate or when the budget ends; plans verified already are kept either way. Each plan
    whose ring the generator would deepen comes with that twin (deep_ring_twin: the same mu-graph, so
    verified with it), and each whose warps split a matmul's K with its whole-K twin (whole_k_twin):
    which streams faster is not a question the model answers well."""
    chip = costmod.chip(options.chip)
    chosen = [(costmod.cost(best, options.chip).total_us, best, best_check)]
    if options.candidates <= 1:
        return chosen
    verdicts = {g: r for _, g, r in dump}
    signatures = {plan_signature(best, chip.sms)}
    nodes = range(len(searched_best.nodes))
    bases = [searched_best] + _retilings(searched_best)
    # a combine's short loop over partial sums is not split again (those three-kernel plans never
    # ran fastest on the H200, and they took the clock's places)
    variants = bases + [g for base in bases for n in nodes if seeds.split_axis(base, n - 1) is None
                        for splits in SPLITS if (g := seeds.split_reduction(base, n, splits)) is not None]
    # half the splits, each block streaming stages twice as thick on twice the threads (up to 256:
    # a weight stream's block; attention's 512-thread blocks already hold their rows)
    merged = [g for base in bases for n in nodes if base.nodes[n].body is not None
              and (threads := 2 * base.nodes[n].body.block_dim[0]) <= MERGED_THREADS
              and (g := seeds.merge_splits(base, n, 2, threads)) is not None]
    # each also with its combine on the split's tiles, one launch: gated_mlp bs8's 2-split plan ran
    # 22.3 us so, 24.0 with its combine over other tiles launched (H200 runs 131 and 133)
    variants += merged + [g for base in merged for n in nodes
                          if (g := seeds.combine_on_split_tiles(base, n)) is not None and n in fused_pairs(g)]
    beside = beside_the_call_before(searched_best, chip.sms)
    if beside is not None and (beside := _emittable(beside)) is not None:
        variants.append(beside)
        strategies += (beside,)
    pool = [e for g in list(searcher.candidates) + variants if g not in checked and (e := _emittable(g)) is not None]
    pool += [g for g, r in verdicts.items() if r.equivalent]
    pool = [g for g in dict.fromkeys(pool) if g != best]  # in a fixed order: ties break the same way every run
    # the cheapest plan of each family first (a family: the signature without the stage size), then
    # the second cheapest of each, ...: the clock sees split-K beside one kernel before tile variants
    seen = collections.Counter([_family(plan_signature(best, chip.sms))])
    order = []
    for us, k, g in sorted((costmod.cost(g, options.chip).total_us, k, g) for k, g in enumerate(pool)):
        signature = plan_signature(g, chip.sms)
        order.append((g not in strategies, seen[_family(signature)], us, k, g, signature))
        seen[_family(signature)] += 1
    attempts = 2 * (options.candidates - 1)
    for _, _, us, _, g, signature in sorted(order, key=lambda e: e[:4]):
        if len(chosen) >= options.candidates:
            break
        if signature in signatures:
            continue
        check = verdicts.get(g)
        if check is None:
            if attempts == 0:  # out of attempts or time: only plans verified already from here on
                continue
            attempts -= 1
            check = budget.verify(reference, g, options, stats)
            if check is None:
                attempts = 0
                continue
            dump.append((us, g, check))
            stats.verified += check.equivalent
            stats.rejected += not check.equivalent
        if check.equivalent:
            chosen.append((us, g, check))
            signatures.add(signature)
    chosen += [(costmod.cost(twin, options.chip).total_us, twin, check) for _, g, check in chosen
               for twin in (deep_ring_twin(g), whole_k_twin(g)) if twin is not None]
    return sorted(chosen, key=lambda e: e[0])  # a cheaper alternative (a split not tried before) is the pick


def superoptimize(reference: Graph, options: SearchOptions | None = None) -> SearchResult:
    """Searches mu-graphs equivalent to the kernel graph `reference` and returns the best verified one."""
    options = options or SearchOptions()
    start = time.perf_counter()
    budget = Budget(options.time_budget)
    ref_cost = costmod.cost(reference, options.chip)
    key = cache.cache_key(reference, options.chip, options_key(options))
    if options.use_cache and not options.dump:
        entry = cache.load(key, reference)
        # a well-formed entry may still hold a changed graph: each is tested against the program again
        if entry is not None and all(_still_equivalent(reference, g, options) for g in entry["graphs"]):
            stats = SearchStats(**{k: v for k, v in entry.get("stats", {}).items() if k in SearchStats.__dataclass_fields__})
            stats.cached = True
            graphs = entry["graphs"]
            return SearchResult(graphs[0], costmod.cost(graphs[0], options.chip), ref_cost, stats,
                                candidates=[(costmod.cost(g, options.chip).total_us, g) for g in graphs])
    stats = SearchStats()
    if options.verify:
        budget.reserve(reference, options, stats)
    seeded, first = seed_candidates(reference, options, budget, stats)
    searcher = Searcher(reference, options, stats)
    searcher.deadline = budget.search_end
    for seed in seeded:  # verified and ranked with the search's own (and they bound the search)
        us = costmod.cost(seed, options.chip).total_us
        if us < math.inf:  # a seed no block of the chip can hold (shared memory) is no candidate
            searcher.candidates.setdefault(seed, us)
    stats.seeds = len(seeded)
    # search until the cheapest candidate is proven, verify it; if it fails, resume the search
    best, best_check, searched_best, dump, checked = None, None, None, [], set()
    progress = Progress(options.progress, 1.0)

    def check_candidate(g: Graph) -> bool:
        """Verifies candidate g (cheapest first); False when the budget cannot."""
        nonlocal best, best_check, searched_best
        checked.add(g)
        proven = searcher.exhausted  # nothing cheaper is left in the space: g is optimal if it passes
        fused = _emittable(g)
        if fused is None:  # never emit IR the verifier rejects (e.g. mixed element types)
            stats.rejected += 1
            searcher.reject(g)
            return True
        if not options.verify:
            best, best_check, searched_best = fused, None, g
            return True
        check = budget.verify(reference, fused, options, stats, needed=best is None)
        if check is None:
            return False
        dump.append((costmod.cost(fused, options.chip).total_us, fused, check))
        if check.equivalent:
            stats.verified += 1
            if best is None or searcher.candidates[g] < searcher.candidates[searched_best]:
                best, best_check, searched_best = fused, check, g
                stats.proven = proven
        else:
            stats.rejected += 1
            searcher.reject(g)
        progress.update(stats, time.perf_counter(), force=True)
        return True

    # the seeds of one plan per kernel strategy first: the clock needs them to choose from, and the
    # model ranks them low (SwiGLU's one-kernel gate) or no plan of the search's own space is cheaper
    # (stable attention: 76k states, none found) where one verification takes ~9 s (NOTES.md, run 65)
    for seed in sorted(first, key=lambda g: searcher.candidates.get(g, math.inf)):
        if seed in searcher.candidates and options.verify and not check_candidate(seed):
            break
    while True:
        searcher.run()
        pending = sorted(((c, len(g.nodes), k, g) for k, (g, c) in enumerate(searcher.candidates.items())
                          if g not in checked), key=lambda e: e[:3])
        if not pending or (best is not None and not options.dump
                           and pending[0][0] >= searcher.candidates[searched_best]):
            break
        if not check_candidate(pending[0][3]) or not options.verify:
            break
    progress.close()
    chosen = []
    if best is not None and options.verify:
        best, best_check = _split_reductions(reference, best, best_check, options, stats, dump, budget)
        chosen = _alternatives(reference, searched_best, best, best_check, searcher, checked, options, stats, dump,
                               budget, tuple(e for g in first if (e := _emittable(g)) is not None))
        _, best, best_check = chosen[0]
    stats.total_s = time.perf_counter() - start
    result = SearchResult(best, costmod.cost(best, options.chip) if best is not None else None, ref_cost, stats,
                          best_check, dump if options.dump else [], [(us, g) for us, g, _ in chosen])
    if best is not None and options.use_cache and not stats.build_failures:
        info = {"stats": {k: v for k, v in vars(stats).items()}, "bound": best_check.bound}
        cache.store(key, [g for _, g, _ in chosen], info)
    return result
