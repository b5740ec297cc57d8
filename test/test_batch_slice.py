"""Verification on one chunk of the batch (mirage_mlir/batch_slice.py): cut only where the programs
provably compute chunks of dim 0 alike and apart, and the verdicts unchanged by the cut."""

from __future__ import annotations

import pytest

from mirage_mlir import plans
from mirage_mlir.batch_slice import one_chunk
from mirage_mlir.builder import BlockBuilder, KernelBuilder
from mirage_mlir.finite_field import check_equivalent
from mirage_mlir.graph_verify import verify
from mirage_mlir.mugraph import TensorType

from test_finite_field import ATTENTION, MAX_MUTATIONS, _attention_plan, _attention_reference, _mutated

LINEAR = [TensorType((4, 64), "f32"), TensorType((64, 128), "f32")]


def _linear_reference():
    kb = KernelBuilder(LINEAR)
    return kb.finish([kb.op("matmul", 0, 1)])


def _linear_plan(rows=1):
    """X @ W with X's rows split over grid x (tiles of `rows`) and W's columns over grid y."""
    kb = KernelBuilder(LINEAR)
    bb = BlockBuilder(LINEAR, (4 // rows, 2, 1), 1)
    x = bb.iterator(0, (0, -1, -1), -1)
    w = bb.iterator(1, (-1, 1, -1), -1)
    out = bb.accum("accum_sum", bb.op("matmul", x, w))
    return kb.finish(kb.graph_def(bb.finish([bb.save(out, (0, 1, -1))]), [0, 1]))


def test_attention_is_checked_on_one_row_of_its_batch():
    """Q, K, V's batch split over grid x by both kernels: each batch row alone decides; the cut
    programs are valid and the verdict is the same as at the full batch."""
    reference, plan = _attention_reference(ATTENTION), _attention_plan()
    (cut_reference, cut_plan), batch, rows = one_chunk(reference, plan)
    assert (batch, rows) == (2, 1)
    assert not verify(cut_reference) and not verify(cut_plan)
    assert cut_plan.nodes[0].body.grid_dim[0] == 1 and cut_reference.inputs[0].shape == (1, 64, 16)
    result = check_equivalent(reference, plan, trials=2)
    assert result.verified and result.batch_rows == (2, 1) and "on 1 of dim 0's 2 rows" in result.scope


@pytest.mark.parametrize("mutation", sorted(MAX_MUTATIONS))
def test_a_wrong_plan_is_rejected_on_one_row(mutation):
    kernel, op, change = MAX_MUTATIONS[mutation]
    wrong = _mutated(_attention_plan(), kernel, op, change)
    assert one_chunk(_attention_reference(ATTENTION), wrong)[2] == 1
    assert not check_equivalent(_attention_reference(ATTENTION), wrong, trials=2).verified


def test_the_chunk_is_the_least_common_multiple_of_the_tiles():
    (cut_reference, cut_plan), batch, rows = one_chunk(_linear_reference(), _linear_plan(rows=2))
    assert (batch, rows) == (4, 2) and cut_plan.nodes[0].body.grid_dim == (1, 2, 1)
    assert check_equivalent(_linear_reference(), _linear_plan(rows=2), trials=1).batch_rows == (4, 2)


def _bias_sum(rows: int, weight_imap):
    """X [rows, 16] + the column sums of W [8, 16]: the program, and a block graph over X's rows
    reading W with `weight_imap`."""
    inputs = [TensorType((rows, 16), "f32"), TensorType((8, 16), "f32")]
    kb = KernelBuilder(inputs)
    reference = kb.finish([kb.op("add", 0, kb.op("reduce_sum", 1, dim=0))])
    kb = KernelBuilder(inputs)
    bb = BlockBuilder(inputs, (rows, 1, 1), 1)
    x, w = bb.iterator(0, (0, -1, -1), -1), bb.iterator(1, weight_imap, -1)
    out = bb.accum("accum_sum", bb.op("add", x, bb.op("reduce_sum", w, dim=0)))
    return reference, kb.finish(kb.graph_def(bb.finish([bb.save(out, (0, -1, -1))]), [0, 1]))


def test_a_weight_split_along_the_batch_is_not_cut():
    """Block b adds W's rows 2b, 2b + 1: wrong on 4 rows, right on 1 (where the block reads all of W).
    The weight differs along the batch's grid dim, so no cut, and the program is rejected; W read
    whole by every block, the cut is made and the plan verified."""
    reference, wrong = _bias_sum(4, (0, -1, -1))
    assert not verify(wrong) and one_chunk(reference, wrong)[1:] == (1, 1)
    assert not check_equivalent(reference, wrong, trials=1).equivalent
    assert check_equivalent(*_bias_sum(1, (0, -1, -1)), trials=1).verified  # why the rule is needed
    reference, right = _bias_sum(4, (-1, -1, -1))
    result = check_equivalent(reference, right, trials=1)
    assert result.verified and result.batch_rows == (4, 1)


def test_programs_that_mix_rows_are_not_cut():
    """A reduction over the batch, a matmul contracting it, a block reading the whole batch: as they are."""
    kb = KernelBuilder(LINEAR[:1])
    over_batch = kb.finish([kb.op("reduce_sum", 0, dim=0)])
    assert one_chunk(over_batch)[1:] == (1, 1)
    square = [TensorType((4, 4), "f32")] * 2
    kb = KernelBuilder(square)
    assert one_chunk(kb.finish([kb.op("matmul", 1, 0)]))[1:] == (1, 1)
    rms = plans.rmsnorm_linear([TensorType((4, 64), "f16"), TensorType((64, 128), "f16")])
    assert one_chunk(rms)[1:] == (1, 1)  # each block reads all of X's rows
