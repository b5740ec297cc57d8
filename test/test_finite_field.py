"""The finite-field verifier: its arithmetic, Mirage's plans accepted, differences and nested exps caught."""

import numpy as np
import pytest

from mirage_mlir import finite_field as ff
from mirage_mlir import plans
from mirage_mlir.builder import BlockBuilder, KernelBuilder
from mirage_mlir.mugraph import TensorType
from mirage_mlir.search import programs


def test_prime_tower():
    for lanes in (2, 3):
        tower = ff.prime_tower(lanes)
        assert len(tower) == lanes and tower[0] < 2**31
        for a, b in zip(tower, tower[1:]):
            assert ff.is_prime(a) and ff.is_prime(b) and (a - 1) % b == 0
    assert ff.prime_tower(2)[1] > 2**28  # far above Mirage's q = 113


def test_exp_is_a_homomorphism_and_matmul_is_exact():
    d = ff.FieldDomain(2, seed=3)
    a, b = d.random((5, 7)), d.random((5, 7))
    lhs = d.unary("exp", d.binary("add", a, b, "f32"), {}, "f32")[..., 0]
    rhs = d.binary("mul", d.unary("exp", a, {}, "f32"), d.unary("exp", b, {}, "f32"), "f32")[..., 0]
    assert np.array_equal(lhs, rhs)
    x, y = d.random((3, 40)), d.random((40, 6))
    got = d.matmul(x, y, "f32")
    for lane, m in enumerate(d.moduli):
        xs, ys = x[..., lane].tolist(), y[..., lane].tolist()
        want = [[sum(xs[i][k] * ys[k][j] for k in range(40)) % int(m) for j in range(6)] for i in range(3)]
        assert got[..., lane].tolist() == want


@pytest.mark.parametrize("name", programs.NAMES)
@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_published_plans_are_accepted(name, dtype):
    inputs = programs.small_inputs(name, dtype)
    result = ff.check_equivalent(programs.reference(name, inputs), plans.PLANS[name](inputs), trials=3)
    assert result.equivalent, result.reason
    assert result.bound < 1e-6 and result.float_checked


def _kernel(inputs, build):
    kb = KernelBuilder(inputs)
    return kb.finish([build(kb)])


def test_rsqrt_and_one_over_sqrt_agree():
    t = [TensorType((4, 8), "f32")]
    a = _kernel(t, lambda kb: kb.op("mul", 0, kb.op("rsqrt", kb.op("add_scalar", 0, scalar=1e-6))))
    b = _kernel(t, lambda kb: kb.op("div", 0, kb.op("sqrt", kb.op("add_scalar", 0, scalar=1e-6))))
    assert ff.check_equivalent(a, b, trials=2, float_check_too=False).equivalent


def test_differences_are_caught():
    t = [TensorType((4, 8), "f32")]
    a = _kernel(t, lambda kb: kb.op("exp", kb.op("mul_scalar", 0, scalar=0.5)))
    b = _kernel(t, lambda kb: kb.op("exp", kb.op("mul_scalar", 0, scalar=0.25)))
    r = ff.check_equivalent(a, b, trials=2)
    assert not r.equivalent and r.first_mismatch == 0


def test_nested_exp_uses_a_third_prime():
    # exp(exp(x)) vs exp(2 exp(x)): Mirage's verifier sees a zero q-residue on both sides and accepts;
    # the prime tower keeps the inner exponent exact and rejects.
    t = [TensorType((3, 5), "f32")]
    a = _kernel(t, lambda kb: kb.op("exp", kb.op("exp", 0)))
    b = _kernel(t, lambda kb: kb.op("exp", kb.op("mul_scalar", kb.op("exp", 0), scalar=2.0)))
    assert ff.exp_depth(a) == 2
    r = ff.check_equivalent(a, b, trials=2, float_check_too=False)
    assert not r.equivalent and len(r.primes) == 3
    assert ff.check_equivalent(a, a, trials=2, float_check_too=False).equivalent


def _softmax(kb, x, stable=True, scale=1.0):
    """softmax over dim 1, subtracting the row's max when `stable`, the result times `scale`."""
    shifted = kb.op("sub", x, kb.op("reduce_max", x, dim=1)) if stable else x
    e = kb.op("exp", shifted)
    return kb.op("mul_scalar", kb.op("div", e, kb.op("reduce_sum", e, dim=1)), scalar=scale)


def _online_softmax(t):
    """Softmax over rows of 64 as one kernel of online partial maxes and rescaled sums (a for-loop
    over four column tiles: accum_max, accum_rescaled_sum), then exp(x - max) / sum."""
    kb = KernelBuilder(t)
    bb = BlockBuilder(t, (t[0].shape[0], 1, 1), 4)
    tile = bb.iterator(0, (0, -1, -1), 1)
    local_max = bb.op("reduce_max", tile, dim=1)
    local_sum = bb.op("reduce_sum", bb.op("exp", bb.op("sub", tile, local_max)), dim=1)
    row_max = bb.accum("accum_max", local_max)
    row_sum = bb.accum("accum_rescaled_sum", local_sum, local_max)
    body = bb.finish([bb.save(row_max, (0, -1, -1)), bb.save(row_sum, (0, -1, -1))])
    m, total = kb.graph_def(body, [0])
    return kb.finish([kb.op("div", kb.op("exp", kb.op("sub", 0, m)), total)])


def test_online_softmax_is_verified_over_the_finite_fields():
    """max only stabilises a softmax: under any order max is taken the outputs agree, so the
    finite fields decide it with a bound, partial maxes and rescaled sums against one max."""
    t = [TensorType((4, 64), "f32")]
    reference = _kernel(t, lambda kb: _softmax(kb, 0))
    assert ff.uses_max(reference)
    r = ff.check_equivalent(reference, _online_softmax(t), trials=3)
    assert r.equivalent and r.method == "finite-field", r.reason
    # the comparison's bound (five exps: the paper's weak q^(-1/k^2) term) doubled for the max test
    q, p = r.primes[1], r.primes[0]
    assert r.bound == pytest.approx(2 * ff.false_positive_bound(r.degree, r.exp_ops, q, p, 3)) and r.bound < 0.1
    wrong = _kernel(t, lambda kb: _softmax(kb, 0, scale=1.5))
    r = ff.check_equivalent(reference, wrong, trials=3)
    assert not r.equivalent and r.method == "finite-field" and "finite-field trial" in r.reason


def test_dropping_the_max_is_caught_as_overflow():
    """exp(x) / sum(exp(x)) is softmax over the fields and on small inputs, but overflows on large
    ones where the original, subtracting the max, stays finite."""
    t = [TensorType((4, 64), "f16")]
    r = ff.check_equivalent(_kernel(t, lambda kb: _softmax(kb, 0)), _kernel(t, lambda kb: _softmax(kb, 0, False)),
                            trials=2)
    assert not r.equivalent and "overflows" in r.reason


def test_a_max_whose_value_is_the_output_is_checked_in_floats_only():
    """relu(x) against max(x, 0): the max's value is the output, which the finite fields cannot
    decide; the float check does, and the result says so and claims no bound."""
    t = [TensorType((4, 8), "f32")]
    relu = _kernel(t, lambda kb: kb.op("relu", 0))
    as_max = _kernel(t, lambda kb: kb.op("max", 0, kb.op("mul_scalar", 0, scalar=0.0)))
    r = ff.check_equivalent(relu, as_max, trials=2)
    assert r.equivalent and not r.verified and r.method == "float-only" and r.bound == 1.0
    assert "floating point only" in r.reason and "output #0 of the candidate" in r.reason
    wrong = _kernel(t, lambda kb: kb.op("max", 0, kb.op("mul_scalar", 0, scalar=0.5)))
    r = ff.check_equivalent(relu, wrong, trials=2)
    assert not r.equivalent and r.method == "float-only" and r.first_mismatch == 0


def test_float_check_catches_precision_only_differences():
    t = [TensorType((4, 8), "f32")]
    a = _kernel(t, lambda kb: kb.op("exp", 0))
    # scaled by 2^16 the values overflow f16; over the field the casts are exact
    b = _kernel(t, lambda kb: kb.op("mul_scalar", kb.op("cast", kb.op("cast", kb.op(
        "mul_scalar", kb.op("exp", 0), scalar=65536.0), dtype="f16"), dtype="f32"), scalar=1 / 65536))
    r = ff.check_equivalent(a, b, trials=1)  # equal over the field (casts are exact there)
    assert not r.equivalent and r.float_checked and "floating point" in r.reason


@pytest.mark.parametrize("k", [1, 64, 65, 4096, 4097, 16384, 16385])
def test_field_matmul_is_exact_at_every_limb_width(k):
    """The worst case (every residue m - 1) for each limb width the K sizes pick, and K past the
    largest exact width (cut into chunks), with either operand the smaller one."""
    for lane, m in enumerate(ff.prime_tower(2)):
        for shape_a, shape_b, shape in (((2, 3, k), (1, k, 2), (2, 3, 2)), ((1, 1, k), (2, k, 5), (2, 1, 5))):
            a = np.full(shape_a, m - 1, dtype=np.int64)
            b = np.full(shape_b, m - 1, dtype=np.int64)
            got = ff._matmul_mod(a, b, int(m))
            assert got.shape == shape and (got == k * (m - 1) * (m - 1) % m).all()


def test_parallel_trials_decide_as_serial_ones():
    inputs = programs.small_inputs("gqa")
    reference, plan = programs.reference("gqa", inputs), plans.PLANS["gqa"](inputs)
    serial = ff.check_equivalent(reference, plan, trials=3, seed=5)
    parallel = ff.check_equivalent(reference, plan, trials=3, seed=5, workers=2)
    assert serial.equivalent and parallel.equivalent and serial.bound == parallel.bound
    assert serial.float_error == parallel.float_error
    t = [TensorType((4, 8), "f32")]
    a = _kernel(t, lambda kb: kb.op("exp", kb.op("mul_scalar", 0, scalar=0.5)))
    b = _kernel(t, lambda kb: kb.op("exp", kb.op("mul_scalar", 0, scalar=0.25)))
    r = ff.check_equivalent(a, b, trials=3, workers=2)
    assert not r.equivalent and r.first_mismatch == 0


def test_random_functions_and_constants_do_not_depend_on_use_order():
    """The original and the candidate of one trial are evaluated apart (maybe in two processes):
    uninterpreted functions and non-fraction constants must be the same whichever is met first."""
    d1, d2 = ff.FieldDomain(2, seed=11), ff.FieldDomain(2, seed=11)
    x = d1.random((4, 4))
    assert np.array_equal(x, d2.random((4, 4)))
    a1 = d1.unary("sqrt", x, {}, "f32")
    c1 = d1.constant(1.0132789611816406e-06)
    c2 = d2.constant(1.0132789611816406e-06)
    a2 = d2.unary("sqrt", x, {}, "f32")
    assert np.array_equal(a1, a2) and np.array_equal(c1, c2)
    assert not np.array_equal(ff.FieldDomain(2, seed=12).constant(1.0132789611816406e-06), c1)


def test_lanes_no_output_reads_are_skipped_without_changing_outputs():
    from mirage_mlir import evaluate as ev

    inputs = programs.small_inputs("gqa")
    reference = programs.reference("gqa", inputs)
    table, _ = ff.needed_lanes(reference, 2)
    matmuls = [i for i, n in enumerate(reference.nodes) if n.op == "matmul"]
    # exp(QK): only the exponent lane of QK is read; the second matmul only feeds lane 0
    assert table[(id(reference), matmuls[0])] == {1} and table[(id(reference), matmuls[1])] == {0}
    for name in programs.NAMES:
        small = programs.small_inputs(name)
        for graph in (programs.reference(name, small), plans.PLANS[name](small)):
            lanes = max(2, ff.exp_depth(graph) + 1)
            full, skipping = ff.FieldDomain(lanes, seed=4), ff.FieldDomain(lanes, seed=4)
            args = [full.random(t.shape) for t in graph.inputs]
            skipping.use_lanes(ff.needed_lanes(graph, lanes)[0])
            for a, b in zip(ev.evaluate(graph, args, full), ev.evaluate(graph, args, skipping)):
                assert np.array_equal(np.asarray(a)[..., 0], np.asarray(b)[..., 0])


def _attention_reference(inputs, scale=0.125):
    """softmax(Q K * scale) V as torch-mlir writes it (f32 product rounded to the input type, scaled
    there, the softmax in f32 with the row max subtracted)."""
    dtype = inputs[0].dtype
    kb = KernelBuilder(inputs)
    product = kb.op("cast", kb.op("matmul", 0, 1, dtype="f32"), dtype=dtype)
    scores = kb.op("cast", kb.op("mul_scalar", product, scalar=scale), dtype="f32")
    e = kb.op("exp", kb.op("sub", scores, kb.op("reduce_max", scores, dim=2)))
    p = kb.op("cast", kb.op("div", e, kb.op("reduce_sum", e, dim=2)), dtype=dtype)
    return kb.finish([kb.op("cast", kb.op("matmul", p, 2, dtype="f32"), dtype=dtype)])


ATTENTION = [TensorType((2, 64, 16), "f16"), TensorType((2, 16, 128), "f16"), TensorType((2, 128, 16), "f16")]


def _attention_plan():
    return plans.stable_attention(ATTENTION, q_tile=32, splits=4, loop=2)


def _mutated(graph, kernel: int, op: str, change):
    """graph with the first `op` node of kernel `kernel`'s block graph replaced by change(node)."""
    from dataclasses import replace

    outer = graph.nodes[kernel]
    body = outer.body
    index = next(i for i, n in enumerate(body.nodes) if n.op == op)
    nodes = list(body.nodes)
    nodes[index] = change(nodes[index])
    outer_nodes = list(graph.nodes)
    outer_nodes[kernel] = replace(outer, body=replace(body, nodes=tuple(nodes)))
    return replace(graph, nodes=tuple(outer_nodes))


def test_online_softmax_attention_plan_is_verified():
    """The two-kernel online-softmax plan against the stable softmax it replaces: over the finite
    fields (f16: the float check within tolerance)."""
    r = ff.check_equivalent(_attention_reference(ATTENTION), _attention_plan(), trials=3)
    assert r.verified, r.reason


def _rescale_dropped(node):
    return type(node)("accum_sum", node.inputs[:1], node.types, node.attrs, node.body)


MAX_MUTATIONS = {
    "max replaced by sum": (0, "reduce_max", lambda n: type(n)("reduce_sum", n.inputs, n.types, n.attrs)),
    "the rescale of the sums dropped": (0, "accum_rescaled_sum", _rescale_dropped),
    "the combine's rescale dropped": (1, "accum_rescaled_sum", _rescale_dropped),
    "the combine rescaled by the sums, not the maxima": (
        1, "accum_rescaled_sum", lambda n: type(n)(n.op, (n.inputs[0], n.inputs[0]), n.types, n.attrs)),
    "the tile's scores not shifted by its max": (
        0, "sub", lambda n: type(n)("mul_scalar", n.inputs[:1], n.types, (("scalar", 1.0),))),
}


@pytest.mark.parametrize("mutation", sorted(MAX_MUTATIONS))
def test_max_mutations_are_rejected(mutation):
    """No mutant of the online-softmax plan is verified: the structure check, the finite fields or
    the float checks reject it, or (a dropped rescale lets the max's value reach the output) the
    finite fields say they cannot decide it, which is no verification."""
    from mirage_mlir.graph_verify import verify

    kernel, op, change = MAX_MUTATIONS[mutation]
    mutant = _mutated(_attention_plan(), kernel, op, change)
    if verify(mutant):
        return  # malformed: the structure check rejects it before any test
    r = ff.check_equivalent(_attention_reference(ATTENTION), mutant, trials=3)
    assert not r.verified, mutation


def test_a_verification_stops_at_its_deadline():
    """Past its deadline a check is cut short (nothing decided, not equivalent); within it, the
    verdict is the same as without one."""
    import time

    inputs = programs.small_inputs("rmsnorm_linear", "f16")
    original, plan = programs.reference("rmsnorm_linear", inputs), plans.PLANS["rmsnorm_linear"](inputs)
    late = ff.check_equivalent(original, plan, trials=2, deadline=time.perf_counter())
    assert late.cut_short and not late.equivalent and "time budget" in late.reason
    timely = ff.check_equivalent(original, plan, trials=2, deadline=time.perf_counter() + 600)
    assert timely.equivalent and not timely.cut_short
    assert timely.bound == ff.check_equivalent(original, plan, trials=2).bound


def test_the_reference_trial_is_timed_and_remembered():
    """What the search's budget reserves for verification comes from the original's first trial,
    which a verification then reuses instead of running it again."""
    inputs = programs.small_inputs("gated_mlp", "f32")
    original = programs.reference("gated_mlp", inputs)  # weights are most of its work: timed uncut
    ff._REFERENCE_MEMO.clear()
    assert ff.reference_trial_seconds(original, seed=5) > 0
    lanes = max(2, ff.exp_depth(original) + 1)
    assert list(ff._REFERENCE_MEMO) == [((hash(original), lanes, 5), 0, False)]
    memo = ff._REFERENCE_MEMO[((hash(original), lanes, 5), 0, False)]
    fresh = ff._trial_outputs(original, original.inputs, lanes, 5, 0)
    assert all(np.array_equal(a, b) for a, b in zip(memo, fresh))
    assert ff.check_equivalent(original, plans.PLANS["gated_mlp"](inputs), trials=2, seed=5).equivalent
