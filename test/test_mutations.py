"""Mutation tests: Mirage's published plans and the online-softmax attention plan (verified) broken one
way at a time (a swapped map, a changed reduction dim, a max taken over another dim, a dropped or
changed accumulator, a rescale by another value, a changed loop range); the verifier rejects every
mutant and accepts every plan, in Python and through the mirage-verify pass."""

from __future__ import annotations

import itertools

import mlir.ir as ir
import pytest

from mirage_mlir import plans, shapes
from mirage_mlir.bridge import build_graph
from mirage_mlir.builder import BlockBuilder
from mirage_mlir.context import make_context
from mirage_mlir.finite_field import check_equivalent
from mirage_mlir.graph_verify import verify
from mirage_mlir.mugraph import Graph, Node
from mirage_mlir.opset import ACCUMULATORS
from mirage_mlir.passes import PassError
from mirage_mlir.search import programs
from mirage_mlir.search.reference import REFERENCE_ATTR, REFERENCE_FUNCTION_ATTR


def replay(body: Graph, edit=None, forloop=None) -> Graph | None:
    """Rebuilds a block graph node by node (types re-inferred); `edit(index, node)` returns a
    replacement node, None to drop the node (its users read its first operand instead)."""
    bb = BlockBuilder(list(body.inputs), body.grid_dim, forloop or body.forloop_range, body.block_dim)
    ids = {i: i for i in range(len(body.inputs))}
    try:
        for index, node in enumerate(body.nodes):
            node = edit(index, node) if edit else node
            first = body.first_result[index]
            if node is None:
                ids[first] = ids[body.nodes[index].inputs[0]]
                continue
            args = [ids[v] for v in node.inputs]
            attrs = dict(node.attrs)
            if node.op == "input_iterator":
                v = bb.iterator(args[0], attrs["imap"], attrs["fmap"])
            elif node.op == "output_saver":
                v = bb.save(args[0], attrs["omap"])
            elif node.op in ACCUMULATORS:
                v = bb.accum(node.op, *args, dtype=node.types[0].dtype, reduce_dim=attrs.get("reduce_dim", -1),
                             eps=attrs.get("eps"))
            else:
                v = bb.op(node.op, *args, dtype=node.types[0].dtype, **attrs)
            ids[first] = v
        return bb.finish([ids[v] for v in body.outputs])
    except (shapes.ShapeError, KeyError, IndexError):
        return None


def _with_node(node: Node, **changes) -> Node:
    attrs = dict(node.attrs)
    op = changes.pop("op", node.op)
    attrs.update(changes)
    return Node.make(op, node.inputs, node.types, node.body, **attrs)


def body_mutants(body: Graph):
    """(description, mutated block graph or None) for each way of breaking `body`."""
    rank = lambda v: len(body.value_types[v].shape)  # noqa: E731
    for i, node in enumerate(body.nodes):
        if node.op in ("input_iterator", "output_saver"):
            key = "imap" if node.op == "input_iterator" else "omap"
            m = node.attr(key)
            for a, b in itertools.combinations(range(3), 2):
                if m[a] != m[b] and (body.grid_dim[a] > 1 or body.grid_dim[b] > 1):
                    swapped = list(m)
                    swapped[a], swapped[b] = swapped[b], swapped[a]
                    yield f"swap {key}[{a}],[{b}] of node {i}", replay(body, lambda k, n, i=i, s=swapped: _with_node(n, **{key: tuple(s)}) if k == i else n)
        if node.op == "input_iterator" and body.forloop_range > 1:  # with one iteration fmap is moot
            for f in range(-1, rank(node.inputs[0])):
                if f != node.attr("fmap"):
                    yield f"fmap {f} of node {i}", replay(body, lambda k, n, i=i, f=f: _with_node(n, fmap=f) if k == i else n)
        if node.op in ("reduce_sum", "reduce_mean", "reduce_max") or (node.op in ACCUMULATORS and node.attr("reduce_dim", -1) != -1):
            key = "dim" if node.op.startswith("reduce") else "reduce_dim"
            shape = body.value_types[node.inputs[0]].shape
            for d in range(rank(node.inputs[0])):
                if d != node.attr(key) and shape[d] > 1:  # summing a dim of size 1 changes nothing
                    yield f"{key} {d} of node {i}", replay(body, lambda k, n, i=i, d=d: _with_node(n, **{key: d}) if k == i else n)
        if node.op in ACCUMULATORS:
            yield f"drop accumulator {i}", replay(body, lambda k, n, i=i: None if k == i else n)
            other = {"accum_sum": "accum_mean", "accum_mean": "accum_sum", "accum_rms": "accum_mean",
                     "accum_max": "accum_sum", "accum_rescaled_sum": "accum_sum"}[node.op]
            if other != "accum_mean" or node.attr("reduce_dim", -1) != -1 or body.forloop_range > 1:
                # accum_rescaled_sum -> accum_sum: the rescale to the running max dropped
                yield f"{node.op} -> {other} at {i}", replay(
                    body, lambda k, n, i=i, o=other: Node.make(o, n.inputs[:1], n.types, **dict(n.attrs)) if k == i else n)
        if node.op == "accum_rescaled_sum":
            # rescaled by another value than its maxima (the sums, or a tile the block also holds)
            for v in range(len(body.inputs), len(body.value_types)):
                if v != node.inputs[1] and v < body.first_result[i] and rank(v) == rank(node.inputs[1]):
                    yield f"rescale {i} by value {v}", replay(
                        body, lambda k, n, i=i, v=v: Node(n.op, (n.inputs[0], v), n.types, n.attrs) if k == i else n)
    for r in (2, 4, 8):
        if r != body.forloop_range:
            # the tiles keep their shapes: the loop covers a different part of the data
            yield f"forloop {r}", Graph(body.inputs, body.nodes, body.outputs, body.grid_dim, body.block_dim, r)


def plan_mutants(graph: Graph):
    for k, node in enumerate(graph.nodes):
        if node.op != "graph_def":
            continue
        for what, body in body_mutants(node.body):
            if body is None:
                continue
            types = tuple(body.value_types[v] for v in body.outputs)
            new = Node(node.op, node.inputs, types, node.attrs, body)
            yield f"kernel {k}: {what}", Graph(graph.inputs, graph.nodes[:k] + (new,) + graph.nodes[k + 1:], graph.outputs)


def accepted(reference: Graph, candidate: Graph) -> bool:
    """What mirage-verify decides: structurally valid, then finite fields and float (a max whose value
    reaches an output, which only the float check could decide, is refused)."""
    if verify(candidate):
        return False
    if [candidate.value_types[v] for v in candidate.outputs] != [reference.value_types[v] for v in reference.outputs]:
        return False
    return check_equivalent(reference, candidate, trials=2).verified  # a float-only verdict is refused


CASES = [(name, dtype) for name in programs.NAMES for dtype in ("f32",)] + [("stable_attention", "f16")]


def _case(name: str, dtype: str) -> tuple[Graph, Graph]:
    """(program, plan): a published plan, or softmax(Q K * 0.125) V (the max subtracted) and its
    online-softmax plan (a KV split of 4 with 2 steps each, then the combine)."""
    if name == "stable_attention":
        from test_finite_field import ATTENTION, _attention_reference

        return _attention_reference(ATTENTION), plans.stable_attention(ATTENTION, q_tile=32, splits=4, loop=2)
    inputs = programs.small_inputs(name, dtype)
    return programs.reference(name, inputs), plans.PLANS[name](inputs)


@pytest.mark.parametrize("name,dtype", CASES)
def test_plans_accepted_and_mutants_rejected(name, dtype):
    reference, plan = _case(name, dtype)
    assert accepted(reference, plan)
    mutants = list(plan_mutants(plan))
    assert len(mutants) >= 5
    semantic = 0
    for what, mutant in mutants:
        assert not accepted(reference, mutant), f"{name}: mutant '{what}' was accepted"
        if not verify(mutant):
            semantic += 1  # structurally valid: rejected by the random tests themselves
    # plans with loops at these sizes have structurally valid mutants, which only the random tests catch
    if any(n.op == "graph_def" and n.body.forloop_range > 1 for n in plan.nodes):
        assert semantic >= 1, f"{name}: no mutant was structurally valid"


# -- through the pass ---------------------------------------------------------------------------
def _module(reference: Graph, candidate: Graph) -> tuple[ir.Context, ir.Module]:
    ctx = make_context()
    with ctx, ir.Location.unknown():
        module = ir.Module.create()
        from mlir.dialects import func

        from mirage_mlir.bridge import mlir_type

        ins = [mlir_type(t) for t in reference.inputs]
        outs = [mlir_type(reference.value_types[v]) for v in reference.outputs]
        with ir.InsertionPoint(module.body):
            main = func.FuncOp("main", (ins, outs))
            entry = main.add_entry_block()
            with ir.InsertionPoint(entry):
                results = build_graph(candidate, list(entry.arguments))
                func.ReturnOp(results)
            for op in entry.operations:
                if op.operation.name.startswith("mirage_kernel."):
                    op.operation.attributes[REFERENCE_ATTR] = ir.FlatSymbolRefAttr.get("main__mirage_ref0")
            ref = func.FuncOp("main__mirage_ref0", (ins, outs), visibility="private")
            ref.attributes[REFERENCE_FUNCTION_ATTR] = ir.UnitAttr.get()
            rentry = ref.add_entry_block()
            with ir.InsertionPoint(rentry):
                func.ReturnOp(build_graph(reference, list(rentry.arguments)))
    return ctx, module


@pytest.mark.parametrize("name", ["rmsnorm_linear", "gqa"])
def test_mirage_verify_pass(name):
    from mirage_mlir.passes.mirage_verify import MirageVerify

    inputs = programs.small_inputs(name)
    reference = programs.reference(name, inputs)
    plan = plans.PLANS[name](inputs)
    ctx, module = _module(reference, plan)
    with ctx:
        MirageVerify(trials=2).run(module.operation)  # accepted: no error
    valid = [m for _, m in plan_mutants(plan) if not verify(m)]
    assert valid
    for mutant in valid[:3]:
        ctx, module = _module(reference, mutant)
        with ctx, pytest.raises(PassError, match="differs from the reference"):
            MirageVerify(trials=2).run(module.operation)
