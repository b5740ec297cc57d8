"""`convert-linalg-to-mirage`: rewrites the linalg-on-tensors parts of every `func.func` that the Mirage
opset can express (named matmuls with zero or other inits, elementwise and reduction
`linalg.generic`s with arith/math bodies, broadcasts of keepdim tensors, element-type casts, scalar
constants, and the rms_norm / silu / reduce_mean idioms) into `mirage_kernel` ops, one convex
subgraph at a time, each built from a plain mu-graph with the location of the linalg op it came from
(fused locations for idioms); the matching lives in `mirage_mlir.linalg_import` and
`mirage_mlir.idioms`. It leaves alone, untouched and still correct, every op it cannot express
(transposed matmuls, `linalg.index`/`cmpf`/`select` bodies, reshapes other than the one that restores
a reduction's kept dim, integer or other non-opset element types, unknown ops): their converted
producers feed them through the subgraph's results and their results enter the subgraphs as inputs.
Functions with nothing to convert are not changed; `tensor.empty`, `linalg.fill` and `arith.constant`
ops that only served converted ops are erased. It reports no errors on valid input: what it cannot
express is not malformed, only left alone.
"""

from __future__ import annotations

import dataclasses
import heapq
from typing import ClassVar

import mlir.ir as ir

from mirage_mlir.bridge import build_graph
from mirage_mlir.linalg_import import STRUCTURAL, Plan, analyze_block, plan_block

from .registry import Pass, PassError

# Ops that are erased once they only served converted ops (they have no effects).
ERASABLE = STRUCTURAL + ("tensor.dim",)


@dataclasses.dataclass
class ConvertLinalgToMirage(Pass):
    NAME: ClassVar[str] = "convert-linalg-to-mirage"
    SUMMARY: ClassVar[str] = "Convert supported linalg-on-tensors subgraphs into mirage_kernel ops"

    def run(self, module) -> None:
        """Converts every function of `module` (an ir.Module or its operation) in place."""
        root = module.operation if hasattr(module, "operation") else module
        for func in _functions(root):
            for block in func.regions[0].blocks:
                convert_block(block)


def _functions(op: ir.Operation):
    for region in op.regions:
        for block in region.blocks:
            for inner in block.operations:
                inner = inner.operation
                if inner.name == "func.func":
                    # a reference function keeps the program as it was given (mirage.reference_function)
                    if len(inner.regions[0].blocks) and "mirage.reference_function" not in inner.attributes:
                        yield inner
                elif inner.name == "builtin.module":
                    yield from _functions(inner)


def convert_block(block: ir.Block) -> Plan:
    """Converts what it can in `block` (whose last op is its terminator). Returns the plan it applied:
    its subgraphs (none: the block is unchanged) and the compute ops it left alone, with reasons."""
    imported = analyze_block(block)
    info, ops, values = imported.info, imported.ops, imported.values
    try:
        plan = plan_block(info)
    except AssertionError as e:  # an internal inconsistency: never build an invalid graph
        raise PassError(ops[0], f"convert-linalg-to-mirage: internal error: {e}") from None
    if not plan.subgraphs:
        return plan
    converted = {i: k for k, sub in enumerate(plan.subgraphs) for i in sub.ops}
    terminator = ops[-1]

    # Order: every op that stays, and each subgraph as one item, topologically by what they read,
    # in block order where possible (a subgraph sits where its last op was).
    def item_of(op_index):
        return ("g", converted[op_index]) if op_index in converted else ("o", op_index)

    deps: dict = {}
    for op in info.ops[:-1]:
        if op.index not in converted:
            deps[("o", op.index)] = {item_of(info.producers[v]) for v in op.uses if info.producers[v] is not None}
    for k, sub in enumerate(plan.subgraphs):
        deps[("g", k)] = {item_of(info.producers[v]) for v in sub.inputs if info.producers[v] is not None}
    priority = {item: item[1] if item[0] == "o" else max(plan.subgraphs[item[1]].ops) for item in deps}
    order = _topological(deps, priority)

    context = block.owner.context
    current = {}  # value id -> the mirage value that replaced it (read by later subgraphs)
    with context:
        for item in order:
            if item[0] == "o":
                ops[item[1]].move_before(terminator)
                continue
            sub = plan.subgraphs[item[1]]
            locations = [_location([ops[i] for i in origin]) for origin in sub.origins]
            with ir.InsertionPoint(terminator), _location([ops[i] for i in sub.ops]):
                inputs = [current.get(v, values[v]) for v in sub.inputs]
                outputs = build_graph(sub.graph, inputs, locations=locations)
            for vid, out_index in sub.results:
                values[vid].replace_all_uses_with(outputs[out_index])
                current[vid] = outputs[out_index]
        for i in sorted(converted, reverse=True):
            ops[i].erase()
        _erase_dead_structural(info, ops, set(converted))
    return plan


def _topological(deps: dict, priority: dict) -> list:
    users: dict = {item: [] for item in deps}
    missing = {item: 0 for item in deps}
    for item, needs in deps.items():
        for need in needs:
            if need != item and need in deps:
                users[need].append(item)
                missing[item] += 1
    ready = [(priority[item], item) for item, n in missing.items() if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, item = heapq.heappop(ready)
        order.append(item)
        for user in users[item]:
            missing[user] -= 1
            if missing[user] == 0:
                heapq.heappush(ready, (priority[user], user))
    if len(order) != len(deps):  # cannot happen for convex subgraphs
        raise AssertionError("the converted subgraphs and the remaining ops form a cycle")
    return order


def _erase_dead_structural(info, ops, converted: set) -> None:
    """Erases the constants, empties, fills and dims that only served the converted ops."""
    served = set()
    frontier = list(converted)
    while frontier:
        i = frontier.pop()
        for v in info.ops[i].uses:
            p = info.producers[v]
            if p is not None and p not in served and info.ops[p].name in ERASABLE:
                served.add(p)
                frontier.append(p)
    changed = True
    while changed:
        changed = False
        for i in sorted(served, reverse=True):
            op = ops[i]
            if all(_unused(r) for r in op.results):
                op.erase()
                served.discard(i)
                changed = True


def _unused(value: ir.Value) -> bool:
    for _ in value.uses:
        return False
    return True


def _location(ops: list) -> ir.Location:
    locations = list(dict.fromkeys(op.location for op in ops))
    if len(locations) == 1:
        return locations[0]
    return ir.Location.fused(locations)
