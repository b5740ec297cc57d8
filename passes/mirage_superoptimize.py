"""`mirage-superoptimize`: replaces each group of predefined `mirage_kernel` ops (as
convert-linalg-to-mirage produces them) by the best verified mu-graph the search finds:
predefined ops and `mirage_kernel.graph_def` ops holding block graphs (thread graphs fused by rule).

The original ops are kept in a private reference function and the new ops name it
(`mirage.reference = @<func>__mirage_ref<N>`, see mirage_mlir/search/reference.py), so
`mirage-verify` can check the replacement later. A group with no verified candidate is left as it is.
Groups that already hold a graph_def are left alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import ClassVar

import mlir.ir as ir
from mlir.dialects import func

from mirage_mlir.bridge import build_graph
from mirage_mlir.diagnostics import remark
from mirage_mlir.linalg_import import nested_ops
from mirage_mlir.search import SearchOptions, superoptimize
from mirage_mlir.search.cache import graph_to_json
from mirage_mlir.search.reference import (REFERENCE_ATTR, REFERENCE_FUNCTION_ATTR, find_function, functions,
                                          group_graph)

from .mirage_specialize_dims import specialization
from .registry import Pass, PassError, option


@dataclasses.dataclass
class MirageSuperoptimize(Pass):
    NAME: ClassVar[str] = "mirage-superoptimize"
    SUMMARY: ClassVar[str] = "Search mu-graphs for each mirage_kernel subgraph and keep the best verified one"

    time_budget: float = option(45.0, "seconds of search per subgraph (verification comes after)")
    max_kernel_ops: int = option(2, "most kernel-graph ops (kernels) in a candidate")
    max_block_ops: int = option(9, "most block-graph ops (besides iterators and savers) per graph_def")
    seed: int = option(0, "seed of the random verification tests")
    target: str = option("sm_90", "the chip the cost model ranks for")
    workers: int = option(2, "worker processes of the search")
    trials: int = option(3, "finite-field tests per candidate")
    progress: bool = option(False, "a progress bar on stderr")
    cache: bool = option(True, "read and write the disk cache ($MIRAGE_CACHE_DIR or ~/.cache/mirage-mlir)")
    dump: str = option("", "write the ranked candidates (JSON) to this file")
    remarks: bool = option(True, "a remark per group: what it became (or why nothing), whether from the cache")
    candidates: int = option(1, "verified plans kept per subgraph (distinct plans, model's order); "
                                "mirage-compile lowers them all for the runtime to time")

    def search_options(self) -> SearchOptions:
        return SearchOptions(time_budget=self.time_budget, max_kernel_ops=self.max_kernel_ops,
                             max_block_ops=self.max_block_ops, seed=self.seed, chip=self.target,
                             workers=self.workers, verify_trials=self.trials, progress=self.progress,
                             use_cache=self.cache, dump=bool(self.dump), candidates=self.candidates)

    def run(self, module) -> None:
        root = module.operation if hasattr(module, "operation") else module
        self.results = []  # (function name, SearchResult) per group searched, for tools and benchmarks
        try:
            self.search_options()  # validates the target chip name early
            from mirage_mlir.search.cost import chip

            chip(self.target)
        except ValueError as e:
            raise PassError(root, f"mirage-superoptimize: {e}") from None
        if self.candidates < 1:
            raise PassError(root, "mirage-superoptimize: candidates must be at least 1")
        dumps = [self.optimize_group(root, fn, block, group) for fn, block, group in searchable_groups(root)]
        if self.dump:
            with open(self.dump, "w") as f:
                json.dump([d for d in dumps if d], f, indent=1)

    def optimize_group(self, root, fn, block, group):
        graph = group_graph(group, block)[0]
        reason = unsearchable(graph)
        if reason:
            if self.remarks:
                remark(group[-1].location, f"mirage-superoptimize: not searched: {reason}; kept the original")
            return None
        result = superoptimize(graph, self.search_options())
        self.results.append((ir.StringAttr(fn.attributes["sym_name"]).value, result))
        record = None
        if self.dump:
            record = {"function": ir.StringAttr(fn.attributes["sym_name"]).value,
                      "reference_us": result.reference_cost.total_us,
                      "candidates": [{"estimated_us": us, "verified": bool(check.equivalent) if check else None,
                                      "bound": check.bound if check else None, "graph": graph_to_json(g)}
                                     for us, g, check in result.ranked]}
        if self.remarks:
            remark(group[-1].location, f"mirage-superoptimize: {_specialized(fn)}{describe(result, len(group), self.time_budget)}")
        if result.stats.build_failures:
            remark(group[-1].location, f"mirage-superoptimize: {result.stats.build_failures} block graphs of the "
                   f"search failed to build and were left out (first: {result.stats.first_build_failure}); the "
                   "result was not cached; please report this", severity="warning")
        if result.graph is not None:
            replace_group(root, fn, block, group, result.graph)
        return record


def _specialized(fn) -> str:
    """For a specialization of a dynamic function (mirage-specialize-dims), which one: the remarks of
    all of them point at the same source line."""
    spec = specialization(fn)
    return "" if spec is None else f"@{spec.of} at size {spec.size}: "


def unsearchable(graph) -> str | None:
    """Why the search cannot take this group, or None: dynamic dims (the search and its cost model
    need sizes), or a constant that is not finite (an exact field value cannot stand for it)."""
    if any(not t.is_static() for t in graph.value_types):
        return "a tensor has a dynamic dim (mirage-specialize-dims compiles it at static sizes)"
    for node in graph.nodes:
        for name, value in node.attrs:
            if isinstance(value, float) and not math.isfinite(value):
                return f"'{node.op}' has the non-finite constant {name} = {value}"
    return None


def describe(result, ops: int, budget: float) -> str:
    """What a group became, in one line (the pass's remark)."""
    stats = result.stats
    before = f"{ops} op{'s' if ops > 1 else ''}"
    if result.graph is None:
        why = (f"the time budget ({budget:g} s) ended before a candidate was verified" if stats.cut_short else
               f"no verified candidate ({stats.candidates} found, {stats.rejected} rejected, {stats.states} states)")
        return f"{why}: kept the original {before} (estimate {result.reference_cost.total_us:.1f} us)"
    kernels = len(result.graph.nodes)
    text = (f"{before} -> {kernels} kernel{'s' if kernels > 1 else ''}, estimate "
            f"{result.reference_cost.total_us:.1f} -> {result.cost.total_us:.1f} us")
    if stats.cached:
        text += ", from the cache (re-tested over a finite field)"
    else:
        bound = result.verification.bound if result.verification is not None else None
        text += ", verified over finite fields" + (f" (bound {bound:.1e})" if bound is not None else "")
        text += result.verification.scope if result.verification is not None else ""
        text += f", {stats.total_s:.1f} s"
    if len(result.candidates) > 1:
        text += f"; {len(result.candidates)} candidate plans kept"
    if stats.cut_short:
        text += "; the time budget cut verification short"
    return text


def searchable_groups(root: ir.Operation):
    """(function, block, ops) of every group of predefined mirage_kernel ops the pass searches, in
    order. A group is a run of a block's mirage_kernel ops that no other op depends on in between:
    an op that reads a value of the group ends it (its replacement, inserted after its last op,
    would not dominate that reader), and the next mirage_kernel op starts another. A run holding a
    graph_def or a replacement already is left alone."""
    for fn in list(functions(root)):
        for block in fn.regions[0].blocks:
            group, produced = [], set()
            for op in list(block.operations) + [None]:
                op = op.operation if op is not None else None
                if op is not None and op.name.startswith("mirage_kernel."):
                    group.append(op)
                    produced.update(op.results)
                    continue
                if group and (op is None or _reads(op, produced)):
                    if not any(g.name == "mirage_kernel.graph_def" or REFERENCE_ATTR in g.attributes for g in group):
                        yield fn, block, group
                    group, produced = [], set()


def _reads(op: ir.Operation, values: set) -> bool:
    """Whether op, or an op nested in its regions, has an operand among `values`."""
    return any(v in values for o in (op, *nested_ops(op)) for v in o.operands)


def replace_group(root: ir.Operation, fn, block, group, new_graph) -> None:
    """Replaces the ops of `group` by `new_graph`, keeping the original ops in a private reference
    function that the new ops name."""
    graph, inputs, outputs, _ = group_graph(group, block)
    fname = ir.StringAttr(fn.attributes["sym_name"]).value
    ref_name = _fresh_name(root, f"{fname}__mirage_ref")
    # the reference: the original ops, over the group's inputs, returning its outputs
    with ir.InsertionPoint(_parent_block(fn)), group[0].location:
        ref = func.FuncOp(ref_name, ([v.type for v in inputs], [v.type for v in outputs]), visibility="private")
        ref.attributes[REFERENCE_FUNCTION_ATTR] = ir.UnitAttr.get()
        entry = ref.add_entry_block()
        with ir.InsertionPoint(entry):
            rets = build_graph(graph, list(entry.arguments))
            func.ReturnOp(rets)
    # the replacement, right after the last op of the group
    positions = list(block.operations)
    index = next(i for i, op in enumerate(positions) if op.operation == group[-1])
    after = positions[index + 1].operation
    before = {op.operation for op in block.operations}
    with ir.InsertionPoint(after), group[-1].location:
        new_outputs = build_graph(new_graph, list(inputs))
    symbol = ir.FlatSymbolRefAttr.get(ref_name)
    for op in block.operations:
        op = op.operation
        if op not in before:
            op.attributes[REFERENCE_ATTR] = symbol
    for old, new in zip(outputs, new_outputs):
        old.replace_all_uses_with(new)
    for op in reversed(group):
        op.erase()


def _parent_block(fn: ir.Operation) -> ir.Block:
    parent = fn.parent
    return parent.regions[0].blocks[0]


def _fresh_name(root: ir.Operation, base: str) -> str:
    k = 0
    while find_function(root, f"{base}{k}") is not None:
        k += 1
    return f"{base}{k}"
