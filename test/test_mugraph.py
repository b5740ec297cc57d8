"""The mu-graph core: published plans compute their programs, the graph verifier catches broken maps,
and the MLIR bridge round-trips graphs through text."""

import dataclasses

import mlir.ir as ir
import numpy as np
import pytest
from mlir.dialects import func

from mirage_mlir.bridge import build_graph, graph_from_ops
from mirage_mlir.context import make_context
from mirage_mlir.dialects import KERNEL, emit_irdl, segment_sizes
from mirage_mlir.evaluate import evaluate
from mirage_mlir.graph_verify import verify
from mirage_mlir.mugraph import Node, TensorType
from mirage_mlir.plans import PLANS, SMALL_SHAPES, benchmark_inputs

def rms(x):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6)


def softmax_v(q, k, v):
    e = np.exp(q @ k)
    return (e / e.sum(-1, keepdims=True)) @ v


REFERENCE = {
    "gqa": softmax_v,
    "qknorm_gqa": lambda q, k, v: softmax_v(rms(q), k, v),
    "rmsnorm_linear": lambda x, w: rms(x) @ w,
    "lora": lambda x, w, a, b: x @ w + (x @ a) @ b,
    "gated_mlp": lambda x, w1, w2: (x @ w1) / (1 + np.exp(-(x @ w1))) * (x @ w2),
    "ntrans": lambda h, x, a: rms(h + a * (rms(x) - h)),
}


def random_inputs(shapes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [(rng.standard_normal(s) / np.sqrt(s[-1])).astype(np.float32) for s in shapes]
    return [a.astype(np.float16).astype(np.float32) for a in arrays] if dtype == "f16" else arrays


@pytest.mark.parametrize("dtype,tolerance", [("f32", 1e-5), ("f16", 5e-3)])
@pytest.mark.parametrize("name", sorted(PLANS))
def test_published_plan_computes_its_program(name, dtype, tolerance):
    shapes = SMALL_SHAPES[name]
    graph = PLANS[name]([TensorType(s, dtype) for s in shapes])
    assert verify(graph) == []
    arrays = random_inputs(shapes, dtype)
    (out,) = evaluate(graph, arrays)
    ref = REFERENCE[name](*[a.astype(np.float64) for a in arrays])
    assert np.abs(out - ref).max() <= tolerance * np.abs(ref).max()


@pytest.mark.parametrize("name", sorted(PLANS))
def test_published_plans_verify_at_benchmark_shapes(name):
    for bs in (1, 8):
        assert verify(PLANS[name](benchmark_inputs(name, bs, "f16"))) == []


def rmsnorm_plan():
    return PLANS["rmsnorm_linear"]([TensorType((4, 64), "f32"), TensorType((64, 128), "f32")])


def replace_block_node(graph, index, **changes):
    body = graph.nodes[0].body
    nodes = list(body.nodes)
    nodes[index] = dataclasses.replace(nodes[index], **changes)
    new_body = dataclasses.replace(body, nodes=tuple(nodes))
    return dataclasses.replace(graph, nodes=(dataclasses.replace(graph.nodes[0], body=new_body),))


def with_attrs(node, **attrs):
    merged = dict(node.attrs) | attrs
    return tuple(sorted(merged.items()))


@pytest.mark.parametrize(
    "mutate,message",
    [
        # W's iterator splits a dim the grid does not divide evenly into the declared tile
        (lambda g: replace_block_node(g, 1, attrs=with_attrs(g.nodes[0].body.nodes[1], imap=(0, -1, -1))),
         "does not match the maps"),
        (lambda g: replace_block_node(g, 1, attrs=with_attrs(g.nodes[0].body.nodes[1], imap=(1, 1, -1))),
         "must give distinct dims"),
        (lambda g: replace_block_node(g, 0, attrs=with_attrs(g.nodes[0].body.nodes[0], fmap=5)),
         "fmap 5 is not a dim"),
        (lambda g: dataclasses.replace(g, nodes=(dataclasses.replace(
            g.nodes[0], body=dataclasses.replace(g.nodes[0].body, grid_dim=(3, 1, 1))),)),
         "does not divide"),
        # dropping the matmul's accumulator leaves a per-iteration value flowing past the loop
        (lambda g: replace_block_node(g, 3, op="exp"), "reads a per-iteration value"),
        # value 5 is the matmul accumulator's result: accumulating it again crosses two accumulators
        (lambda g: replace_block_node(g, 4, inputs=(5,)), "computed after the loop"),
    ],
)
def test_verifier_rejects_broken_block_graphs(mutate, message):
    errors = verify(mutate(rmsnorm_plan()))
    assert errors and any(message in e.message for e in errors), errors


def test_verifier_rejects_saver_inside_loop():
    graph = rmsnorm_plan()
    body = graph.nodes[0].body
    x_tile = body.first_result[0]
    saver = Node.make("output_saver", [x_tile], [TensorType((4, 64), "f32")], omap=(-1, -1, -1))
    bad_body = dataclasses.replace(body, nodes=body.nodes + (saver,))
    errors = verify(dataclasses.replace(graph, nodes=(dataclasses.replace(graph.nodes[0], body=bad_body),)))
    messages = [e.message for e in errors]
    assert any("must follow a for-loop accumulator" in m for m in messages)
    assert any("exactly the results of its output savers" in m for m in messages)


def test_segment_sizes_fill_leading_slots():
    graph_def = KERNEL.op("graph_def")
    assert segment_sizes(graph_def.operands, 3) == [1, 1, 1, 0, 0, 0, 0, 0]
    assert segment_sizes(graph_def.operands, 9) is None


def test_irdl_text_loads_into_a_fresh_context():
    text = emit_irdl()
    assert "irdl.dialect @mirage_kernel" in text and "irdl.operation @graph_def" in text
    make_context()  # loading raises on malformed IRDL


@pytest.mark.parametrize("schedule", [{}, dict(max_stages=8), dict(whole_k_warps=True)],
                         ids=["default", "max_stages", "whole_k_warps"])
@pytest.mark.parametrize("name", sorted(PLANS))
def test_bridge_round_trips_through_text(name, schedule):
    """Every plan's graph, its block graphs' schedule (max_stages, whole_k_warps: absent, or set)
    included."""
    graph = PLANS[name]([TensorType(s, "f16") for s in SMALL_SHAPES[name]])
    graph = dataclasses.replace(graph, nodes=tuple(
        dataclasses.replace(n, body=dataclasses.replace(n.body, **schedule)) if n.body else n
        for n in graph.nodes))
    context = make_context()
    with context, ir.Location.unknown():
        module = ir.Module.create()
        with ir.InsertionPoint(module.body):
            ftype = ir.FunctionType.get([ir.Type.parse(str(t)) for t in graph.inputs],
                                        [ir.Type.parse(str(graph.value_types[v])) for v in graph.outputs])
            fn = func.FuncOp("f", ftype)
            entry = fn.add_entry_block()
            with ir.InsertionPoint(entry):
                func.ReturnOp(build_graph(graph, list(entry.arguments)))
        assert module.operation.verify()
        reparsed = ir.Module.parse(str(module))
        body = reparsed.body.operations[0].regions[0].blocks[0]
        read, _, _, _ = graph_from_ops([op.operation for op in body.operations][:-1], inputs=list(body.arguments))
    assert read == graph


def test_verifier_rejects_maxima_wider_than_the_rescaled_value():
    """accum_rescaled_sum(x, m): m rescales x elementwise, so it must broadcast into x's shape (a
    wider m made the evaluator's result wider than the declared type)."""
    from mirage_mlir.plans import stable_attention

    inputs = [TensorType((2, 64, 16), "f16"), TensorType((2, 16, 128), "f16"), TensorType((2, 128, 16), "f16")]
    graph = stable_attention(inputs, q_tile=32, splits=4, loop=2)
    body = graph.nodes[0].body
    index = next(i for i, n in enumerate(body.nodes) if n.op == "accum_rescaled_sum")
    q_tile = body.first_result[0]  # [1, 32, 16]: broadcasts with the [1, 32, 1] sums, but wider
    assert verify(graph) == []
    first = replace_block_node(graph, index, inputs=(body.nodes[index].inputs[0], q_tile)).nodes[0]
    errors = verify(dataclasses.replace(graph, nodes=(first,) + graph.nodes[1:]))
    assert any("do not broadcast into its operand" in e.message for e in errors), errors
