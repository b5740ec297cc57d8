"""The search driver: best-first branch and bound over kernel graphs, block-graph tasks run on a pool
of worker processes, then verification (finite fields + float) of the best candidates by cost.

Each queue entry carries a lower bound of the final cost (cost so far + the cheapest the next
kernel could be). The queue is popped in bound order; once `keep` complete candidates are known, an
entry whose bound is not below the worst kept cost is dropped. So the first candidates found are
cheap ones and most of the space is never expanded.
"""

from __future__ import annotations

import heapq
import itertools
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass, field

from .. import finite_field
from ..graph_verify import verify as verify_structure
from ..mugraph import Graph, Node, TensorType
from . import absexpr, cache, cost as costmod
from .generator import (BlockSearch, Config, Context, KTensor, Options, UNARY_SEARCH, build_body,
                        enumerate_configs)
from .space import index_classes
from .threads import fuse_thread_graphs


@dataclass(frozen=True)
class KState:
    nodes: tuple
    tensors: tuple  # KTensor per value id
    consumed: frozenset
    cost: float
    finals: tuple  # per program output: value id or -1


@dataclass
class SearchOptions(Options):
    time_budget: float = 45.0
    seed: int = 0
    workers: int = 2
    keep: int = 6  # complete candidates kept by the bound
    max_predefined: int = 2  # predefined kernel ops per candidate
    verify_trials: int = 3
    progress: bool = False
    use_cache: bool = True
    dump: bool = False  # keep every candidate (ranked) in the result


@dataclass
class SearchStats:
    states: int = 0  # block-graph search states + kernel-graph states
    configs: int = 0  # graph_def configurations enumerated
    block_tasks: int = 0
    candidates: int = 0
    verified: int = 0
    rejected: int = 0
    egraph_s: float = 0.0
    egraph_enodes: int = 0
    egraph_saturated: bool = False
    search_s: float = 0.0
    verify_s: float = 0.0
    total_s: float = 0.0
    cached: bool = False


@dataclass
class SearchResult:
    graph: Graph | None  # the best verified candidate (None: nothing verified)
    cost: costmod.Cost | None
    reference_cost: costmod.Cost
    stats: SearchStats
    verification: finite_field.EquivalenceResult | None = None
    ranked: list = field(default_factory=list)  # [(estimated us, Graph, verified or None)]


# ---------------------------------------------------------------------------------------------
_CTX: Context | None = None


def _block_task(payload):
    tensors, cfg, final_ok, more, deadline = payload
    search = BlockSearch(_CTX, tensors, cfg, final_ok, more, deadline)
    results = search.run()
    out = []
    seen = set()
    for tiles, ops, saves in results:
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
        except Exception:
            continue
        outs = [(final, dims, tiles[tile_index].ecls) for tile_index, (omap, final, dims) in saves]
        out.append((body, outs))
    return search.states, out


class Searcher:
    def __init__(self, reference: Graph, options: SearchOptions):
        self.reference = reference
        self.options = options
        self.chip = costmod.chip(options.chip)
        self.stats = SearchStats()
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
        self.heap: list = []
        self.counter = itertools.count()
        self.candidates: dict[Graph, float] = {}
        self.seen_states = set()
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

    def remaining(self, s: KState, reading=()) -> float:
        """A lower bound of what is left after state s (and a kernel reading `reading`): every program
        input not read yet must still be read by some kernel."""
        left = [i for i in range(len(self.reference.inputs))
                if i not in s.consumed and i not in reading and self.needed[i]]
        if not left:
            return 0.0
        return self.chip.launch_us + sum(costmod.nbytes(self.reference.inputs[i]) for i in left) / self.chip.bandwidth * 1e6

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

    def handle_state(self, s: KState) -> None:
        self.stats.states += 1
        if self.complete(s):
            graph = Graph(self.reference.inputs, s.nodes, s.finals)
            if graph not in self.candidates:
                self.candidates[graph] = s.cost
                self.stats.candidates += 1
            return
        if len(s.nodes) >= self.options.max_kernel_ops:
            return
        # the cheapest possible next kernel is a launch
        floor = s.cost + self.chip.launch_us
        if floor >= self.bound():
            return
        self.expand_predefined(s)
        self.expand_graph_defs(s)

    def expand_predefined(self, s: KState) -> None:
        o = self.ctx.target.oracle
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
            if made is not None:
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
        dtype = "f32"
        for j, root in enumerate(self.ctx.target.oracle.roots):
            if e == root and shape == self.out_types[j].shape:
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
        for r in range(1, len(avail) + 1):
            for args in itertools.combinations(avail, r):
                if not unconsumed <= set(args):
                    continue
                read = sum(costmod.nbytes(ts[a].type) for a in args)
                lb = s.cost + self.chip.launch_us + read / self.chip.bandwidth * 1e6 + self.remaining(s, args)
                self.push(lb, "inputs", (s, args))

    def expand_configs(self, s: KState, args) -> None:
        ts = s.tensors
        more = len(s.nodes) + 1 < self.options.max_kernel_ops
        rest = self.remaining(s, args)
        for lb, cfg in enumerate_configs(self.ctx, dict(enumerate(ts)), args):
            self.stats.configs += 1
            total = s.cost + lb + rest
            if total >= self.bound():
                continue
            tensors = [ts[a] for a in args]
            self.push(total, "block", (s, (tensors, cfg, True, more, self.deadline)))

    def handle_block_results(self, s: KState, cfg: Config, results) -> None:
        for body, outs in results:
            node = Node.make("graph_def", cfg.args, [body.value_types[v] for v in body.outputs], body)
            kc = costmod.graph_def_cost(body, self.chip)
            # choose the block size by the cost model (the structure does not depend on it)
            for bd in self.options.block_sizes[1:]:
                alt = Graph(body.inputs, body.nodes, body.outputs, body.grid_dim, (bd, 1, 1), body.forloop_range)
                ka = costmod.graph_def_cost(alt, self.chip)
                if ka.us < kc.us:
                    body, kc = alt, ka
                    node = Node.make("graph_def", cfg.args, [body.value_types[v] for v in body.outputs], body)
            if kc.us == float("inf"):
                continue
            ktensors = [KTensor(body.value_types[v], dims, ecls) for v, (final, dims, ecls) in zip(body.outputs, outs)]
            ns = self.add_node(s, node, ktensors, kc.us)
            self.push(ns.cost + self.remaining(ns), "state", ns)

    # -- main loop -----------------------------------------------------------------------------------
    def run(self) -> None:
        global _CTX
        _CTX = self.ctx
        start = time.perf_counter()
        self.deadline = start + self.options.time_budget
        self.push(0.0, "state", self.initial_state())
        pool = None
        if self.options.workers > 1:
            try:
                pool = mp.get_context("fork").Pool(self.options.workers)
            except (OSError, ValueError):
                pool = None
        progress = Progress(self.options.progress, self.options.time_budget)
        batch_size = 4 * max(1, self.options.workers)
        try:
            while self.heap and time.perf_counter() < self.deadline:
                batch = []
                while self.heap and len(batch) < batch_size:
                    lb, _, kind, payload = self.heap[0]
                    if lb >= self.bound():
                        self.heap.clear()
                        break
                    heapq.heappop(self.heap)
                    if kind == "state":
                        self.handle_state(payload)
                    elif kind == "inputs":
                        self.expand_configs(*payload)
                    else:
                        batch.append(payload)
                if time.perf_counter() >= self.deadline:
                    break
                if not batch:
                    continue
                tasks = [p[1] for p in batch]
                self.stats.block_tasks += len(tasks)
                results = pool.map(_block_task, tasks, chunksize=1) if pool else [_block_task(t) for t in tasks]
                for (s, task), (states, found) in zip(batch, results):
                    self.stats.states += states
                    self.handle_block_results(s, task[1], found)
                progress.update(self.stats, self.deadline)
        finally:
            if pool is not None:
                pool.terminate()
            progress.close()
        self.stats.search_s = time.perf_counter() - start


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
def _verify_one(payload):
    reference, candidate, trials, seed = payload
    return finite_field.check_equivalent(reference, candidate, trials=trials, seed=seed)


def options_key(o: SearchOptions) -> dict:
    return {"max_kernel_ops": o.max_kernel_ops, "max_block_ops": o.max_block_ops, "max_blocks": o.max_blocks,
            "max_open_tiles": o.max_open_tiles, "block_states": o.block_states, "block_sizes": list(o.block_sizes),
            "seed": o.seed, "trials": o.verify_trials, "time_budget": o.time_budget}


def superoptimize(reference: Graph, options: SearchOptions | None = None) -> SearchResult:
    """Searches mu-graphs equivalent to the kernel graph `reference` and returns the best verified one."""
    options = options or SearchOptions()
    start = time.perf_counter()
    ref_cost = costmod.cost(reference, options.chip)
    key = cache.cache_key(reference, options.chip, options_key(options))
    if options.use_cache and not options.dump:
        entry = cache.load(key, reference)
        if entry is not None:
            stats = SearchStats(**{k: v for k, v in entry.get("stats", {}).items() if k in SearchStats.__dataclass_fields__})
            stats.cached = True
            g = entry["graph"]
            return SearchResult(g, costmod.cost(g, options.chip), ref_cost, stats)
    searcher = Searcher(reference, options)
    searcher.run()
    stats = searcher.stats
    ranked = sorted(searcher.candidates.items(), key=lambda kv: (kv[1], len(kv[0].nodes)))
    # verify in cost order; the first that passes is the answer
    t0 = time.perf_counter()
    best, best_check, dump = None, None, []
    progress = Progress(options.progress, 1.0)
    pool = None
    try:
        workers = max(1, options.workers)
        if workers > 1 and len(ranked) > 1:
            pool = mp.get_context("fork").Pool(workers)
        index = 0
        while index < len(ranked) and (best is None or options.dump):
            chunk = ranked[index:index + workers]
            index += len(chunk)
            fused = [fuse_thread_graphs(g) for g, _ in chunk]
            fused = [f if not verify_structure(f) else g for f, (g, _) in zip(fused, chunk)]
            payloads = [(reference, g, options.verify_trials, options.seed) for g in fused]
            checks = pool.map(_verify_one, payloads) if pool else [_verify_one(p) for p in payloads]
            for g, (_, est), check in zip(fused, chunk, checks):
                if check.equivalent:
                    stats.verified += 1
                    if best is None:
                        best, best_check = g, check
                else:
                    stats.rejected += 1
                dump.append((costmod.cost(g, options.chip).total_us, g, check))
            progress.update(stats, time.perf_counter(), force=True)
    finally:
        if pool is not None:
            pool.terminate()
        progress.close()
    stats.verify_s = time.perf_counter() - t0
    stats.total_s = time.perf_counter() - start
    result = SearchResult(best, costmod.cost(best, options.chip) if best is not None else None, ref_cost, stats,
                          best_check, dump if options.dump else [])
    if best is not None and options.use_cache:
        info = {"stats": {k: v for k, v in vars(stats).items()}, "bound": best_check.bound}
        cache.store(key, best, info)
    return result
