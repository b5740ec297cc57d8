"""The superoptimizer at small shapes: abstract expressions, canonical forms, thread fusion, cache,
cost model, and end-to-end searches that must beat or match Mirage's published plans."""

import json
import time

import pytest

from mirage_mlir import plans
from mirage_mlir.finite_field import check_equivalent
from mirage_mlir.search import SearchOptions, absexpr, cache, cost, programs, superoptimize
from mirage_mlir.search.threads import fuse_thread_graphs


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MIRAGE_CACHE_DIR", str(tmp_path / "cache"))


def test_oracle_accepts_plan_expressions_and_rejects_others():
    inputs = programs.full_inputs("rmsnorm_linear", 1)
    target = absexpr.Target.of(programs.reference("rmsnorm_linear", inputs))
    o = target.oracle
    x, w = o.var("x0"), o.var("x1")
    partial = o.sum(64, o.mul(x, w))  # a K tile of the matmul
    assert partial is not None and o.sum(64, partial) is not None
    rms = absexpr.rms_expr(o, x, 4096, 1e-6)
    assert o.div(o.sum(4096, o.mul(x, w)), rms) == o.roots[0]
    assert o.exp(x) is None and o.sum(4, x) is None  # not subexpressions


def test_thread_fusion_keeps_semantics():
    inputs = programs.small_inputs("ntrans")
    plan = plans.PLANS["ntrans"](inputs)
    fused = fuse_thread_graphs(plan)
    assert any(n.op == "thread_graph" for n in fused.nodes[0].body.nodes)
    assert len(fused.nodes[0].body.nodes) < len(plan.nodes[0].body.nodes)
    assert check_equivalent(plan, fused, trials=2).equivalent


def test_cost_model_prefers_full_sms_and_rejects_oversized_tiles():
    c = cost.chip("sm_90")
    assert cost.sm_fill(132, c) == 1 and cost.sm_fill(133, c) < 0.6 and cost.sm_fill(66, c) == 0.5
    inputs = programs.full_inputs("gated_mlp", 8)
    from mirage_mlir.builder import BlockBuilder, KernelBuilder

    kb = KernelBuilder(inputs)
    bb = BlockBuilder(inputs, (1, 1, 1), 1)
    x, w = bb.iterator(0, (-1, -1, -1), -1), bb.iterator(1, (-1, -1, -1), -1)
    out = bb.op("cast", bb.accum("accum_sum", bb.op("matmul", x, w, dtype="f32")), dtype="f16")
    kb.graph_def(bb.finish([bb.save(out, (-1, -1, -1))]), [0, 1])
    assert cost.cost(kb.finish([3])).total_us == float("inf")  # a 32 MiB tile in shared memory


@pytest.mark.parametrize("name", ["rmsnorm_linear", "lora", "gated_mlp", "gqa"])
def test_search_finds_verified_plans_at_least_as_good_as_mirage(name):
    inputs = programs.small_inputs(name)
    reference = programs.reference(name, inputs)
    result = superoptimize(reference, SearchOptions(time_budget=20, workers=2))
    assert result.graph is not None and result.verification.equivalent
    assert result.verification.bound < 1e-6
    assert len(result.graph.nodes) <= 2
    plan_cost = cost.cost(plans.PLANS[name](inputs)).total_us
    assert result.cost.total_us <= plan_cost + 1e-9
    assert check_equivalent(reference, result.graph, trials=2, seed=7).equivalent


def test_cache_is_instant_and_survives_damage(tmp_path):
    inputs = programs.small_inputs("lora")
    reference = programs.reference("lora", inputs)
    first = superoptimize(reference, SearchOptions(time_budget=10))
    assert not first.stats.cached
    t = time.perf_counter()
    second = superoptimize(reference, SearchOptions(time_budget=10))
    assert second.stats.cached and time.perf_counter() - t < 1.0 and second.graph == first.graph
    for f in cache.cache_dir().glob("*.json"):
        f.write_text(f.read_text()[:50])  # damaged
    third = superoptimize(reference, SearchOptions(time_budget=10))
    assert not third.stats.cached and third.graph is not None
    entry = next(cache.cache_dir().glob("*.json"))
    assert json.loads(entry.read_text())["schema"] == cache.SCHEMA
