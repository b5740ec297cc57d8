"""Mirage's published plans for the benchmark programs, written by hand as mu-graphs.

Each plan takes the kernel-level input types in the argument order of the torch-mlir programs in
examples/ (and test/inputs/ at small sizes) and returns a kernel Graph. They are the yardstick of
the search (its result must rank at least as well under the cost model), the first inputs of the
GPU lowering, and the seeds of the verifier's mutation tests. Tile sizes follow the published
plans and shrink to fit small shapes. Accumulation is in f32; f16 results are cast at the end.
"""

from __future__ import annotations

from .builder import BlockBuilder, KernelBuilder
from .mugraph import Graph, TensorType

EPS = 1e-6
LN_EPS = 1e-5  # F.layer_norm's
NO_MAP = (-1, -1, -1)


def _finish_dtype(bb: BlockBuilder, value: int, dtype: str) -> int:
    return value if bb.types[value].dtype == dtype else bb.op("cast", value, dtype=dtype)


def _rms_norm(bb: BlockBuilder, x: int, dim: int) -> int:
    """x * rsqrt(mean(x^2) + eps) from block ops (block graphs have no rms_norm op)."""
    mean = bb.op("reduce_mean", bb.op("square", x), dim=dim)
    return bb.op("mul", x, bb.op("rsqrt", bb.op("add_scalar", mean, scalar=EPS)))


def rmsnorm_linear(inputs: list[TensorType], col_tile: int = 64, k_tile: int = 64, threads: int = 128) -> Graph:
    """One kernel: grid over W's columns, for-loop over K, an rms accumulator beside the matmul's."""
    x_type, w_type = inputs
    (_, k), (_, n) = x_type.shape, w_type.shape
    col_tile, k_tile = min(col_tile, n), min(k_tile, k)
    kb = KernelBuilder(inputs)
    bb = BlockBuilder(inputs, (n // col_tile, 1, 1), k // k_tile, (threads, 1, 1))
    x = bb.iterator(0, NO_MAP, 1)
    w = bb.iterator(1, (1, -1, -1), 0)
    acc = bb.accum("accum_sum", bb.op("matmul", x, w, dtype="f32"))
    rms = bb.accum("accum_rms", x, reduce_dim=1, eps=EPS)
    out = _finish_dtype(bb, bb.op("div", acc, rms), x_type.dtype)
    body = bb.finish([bb.save(out, (1, -1, -1))])
    return kb.finish(kb.graph_def(body, [0, 1]))


def gated_mlp(inputs: list[TensorType], col_tile: int = 64, k_tile: int = 128, threads: int = 128) -> Graph:
    """One kernel: grid over the columns, for-loop over K, two matmul accumulators, silu(a) * b after."""
    x_type, w1_type, _ = inputs
    (_, k), (_, n) = x_type.shape, w1_type.shape
    col_tile, k_tile = min(col_tile, n), min(k_tile, k)
    kb = KernelBuilder(inputs)
    bb = BlockBuilder(inputs, (n // col_tile, 1, 1), k // k_tile, (threads, 1, 1))
    x = bb.iterator(0, NO_MAP, 1)
    w1 = bb.iterator(1, (1, -1, -1), 0)
    w2 = bb.iterator(2, (1, -1, -1), 0)
    a = bb.accum("accum_sum", bb.op("matmul", x, w1, dtype="f32"))
    b = bb.accum("accum_sum", bb.op("matmul", x, w2, dtype="f32"))
    out = _finish_dtype(bb, bb.op("mul", bb.op("silu", a), b), x_type.dtype)
    body = bb.finish([bb.save(out, (1, -1, -1))])
    return kb.finish(kb.graph_def(body, [0, 1, 2]))


def _split_k_partials(kb: KernelBuilder, inputs, weights: list[int], col_tile: int, splits: int, k_tile: int,
                      threads: int, row_squares: bool = False) -> list[int]:
    """Kernel 1 of a split-K plan: grid (N / col_tile, splits); block (x, y) multiplies X's K slice y
    by each weight's tile (K slice y, columns x) and writes its partial sums as rows y*M .. y*M+M-1
    of a [splits * M, N] f32 tensor per weight (Mirage's partial outputs, side by side). With
    `row_squares`, also the partial sums of squares of X's rows over slice y, as column x of a
    [splits * M, N / col_tile] tensor (every column the same: each block writes its own)."""
    (_, k), (_, n) = inputs[0].shape, inputs[weights[0]].shape
    bb = BlockBuilder(inputs, (n // col_tile, splits, 1), k // splits // k_tile, (threads, 1, 1))
    x = bb.iterator(0, (-1, 1, -1), 1)
    saves = []
    for w in weights:
        tile = bb.iterator(w, (1, 0, -1), 0)
        saves.append(bb.save(bb.accum("accum_sum", bb.op("matmul", x, tile, dtype="f32")), (1, 0, -1)))
    if row_squares:
        squares = bb.op("reduce_sum", bb.op("square", bb.op("cast", x, dtype="f32")), dim=1)
        saves.append(bb.save(bb.accum("accum_sum", squares), (1, 0, -1)))
    return kb.graph_def(bb.finish(saves), [0] + weights)


def _split_k_combine(partial_types: list[TensorType], splits: int, col_tile: int):
    """Kernel 2 of a split-K plan, up to its output: grid over N, a for-loop over the splits adding
    each partial tile. With the partials' column tile, the GPU lowering runs both kernels as one
    launch (fuse_split_k)."""
    n = partial_types[0].shape[1]
    bb = BlockBuilder(partial_types, (n // col_tile, 1, 1), splits)
    sums = [bb.accum("accum_sum", bb.iterator(i, (1, -1, -1), 0)) for i in range(len(partial_types))]
    return bb, sums


def rmsnorm_linear_split_k(inputs: list[TensorType], col_tile: int = 64, splits: int = 3, k_tile: int = 128,
                           threads: int = 128) -> Graph:
    """Two kernels: the matmul split over K across blocks (partial sums, and the partial sums of
    squares of X's rows), then a combine kernel that adds both and divides by the rms. Splitting K
    lets wide weight tiles (rows of 128 bytes) keep every SM streaming."""
    x_type, _ = inputs
    k = x_type.shape[1]
    kb = KernelBuilder(inputs)
    partial, squares = _split_k_partials(kb, inputs, [1], col_tile, splits, k_tile, threads, row_squares=True)
    bb, (acc, total) = _split_k_combine([kb.types[partial], kb.types[squares]], splits, col_tile)
    rms = bb.op("sqrt", bb.op("add_scalar", bb.op("mul_scalar", total, scalar=1.0 / k), scalar=EPS))
    out = _finish_dtype(bb, bb.op("div", acc, rms), x_type.dtype)
    return kb.finish(kb.graph_def(bb.finish([bb.save(out, (1, -1, -1))]), [partial, squares]))


def _layernorm_folded_output(bb: BlockBuilder, acc: int, colsum: int, row_sum: int, row_squares: int, k: int,
                             dtype: str) -> int:
    """(x W - mean(x) 1^T W) * rsqrt(var(x) + eps) from the four sums over K (var = mean(x^2) - mean(x)^2)."""
    mean = bb.op("mul_scalar", row_sum, scalar=1.0 / k)
    var = bb.op("sub", bb.op("mul_scalar", row_squares, scalar=1.0 / k), bb.op("square", mean))
    rstd = bb.op("rsqrt", bb.op("add_scalar", var, scalar=LN_EPS))
    return _finish_dtype(bb, bb.op("mul", bb.op("sub", acc, bb.op("mul", mean, colsum)), rstd), dtype)


def layernorm_linear_folded(inputs: list[TensorType], col_tile: int = 64, splits: int = 4, threads: int = 128,
                            k_tile: int = 64) -> Graph:
    """LayerNorm over X's rows (no affine) then X W, with the normalization folded into the
    projection: (X W - mean(x) 1^T W) * rsqrt(var(x) + eps), var = mean(x^2) - mean(x)^2. Each block
    accumulates X W, W's column sums and X's row sums and sums of squares from the tiles it streams
    anyway, so no row kernel runs before the projection (equal as polynomials to torch-mlir's
    LayerNorm + Linear; the finite-field verifier proves it). With `splits` > 1 one split-K pair
    (partial sums, then a combine); with one split each block walks the whole K and finishes its
    output tile itself: no partials and no split-K tail.

    W's column sums are a matmul by a tile of ones on the tensor cores (a CUDA-core reduction of
    every W tile ran at half the stream's speed, NOTES.md run 104), ones made from the iteration's
    tile of X (x * 0 + 1), which the lowering takes for the constant 1 (plan.constant_operands) and
    computes as W^T times ones, one mma per 16 columns; a row of X that is not finite spoils its own
    output row only (its mean and variance), as LayerNorm's."""
    x_type, w_type = inputs
    (_, k), (_, n) = x_type.shape, w_type.shape
    if k_tile < 1 or k % (splits * k_tile) or n % col_tile:
        raise ValueError(f"its K tile ({k_tile}) must split K = {k} {splits} ways, and {col_tile} columns N = {n}")
    kb = KernelBuilder(inputs)
    bb = BlockBuilder(inputs, (n // col_tile, splits, 1), k // splits // k_tile, (threads, 1, 1))
    x, w = bb.iterator(0, (-1, 1, -1), 1), bb.iterator(1, (1, 0, -1), 0)
    ones = bb.op("add_scalar", bb.op("mul_scalar", x, scalar=0.0), scalar=1.0)
    sums = [bb.accum("accum_sum", v) for v in (
        bb.op("matmul", x, w, dtype="f32"), bb.op("matmul", ones, w, dtype="f32"),
        # a cast per reduction: one shared cast would be a buffer both read, an extra loop a tile
        bb.op("reduce_sum", bb.op("cast", x, dtype="f32"), dim=1),
        bb.op("reduce_sum", bb.op("square", bb.op("cast", x, dtype="f32")), dim=1))]
    if splits == 1:
        out = _layernorm_folded_output(bb, *sums, k, x_type.dtype)
        return kb.finish(kb.graph_def(bb.finish([bb.save(out, (1, 0, -1))]), [0, 1]))
    partials = kb.graph_def(bb.finish([bb.save(v, (1, 0, -1)) for v in sums]), [0, 1])
    cb, totals = _split_k_combine([kb.types[p] for p in partials], splits, col_tile)
    out = _layernorm_folded_output(cb, *totals, k, x_type.dtype)
    return kb.finish(kb.graph_def(cb.finish([cb.save(out, (1, -1, -1))]), list(partials)))


def gated_mlp_split_k(inputs: list[TensorType], col_tile: int = 64, splits: int = 4, k_tile: int = 128,
                      threads: int = 128) -> Graph:
    """Two kernels: both matmuls split over K across blocks, then silu(sum) * sum of the partials."""
    x_type = inputs[0]
    kb = KernelBuilder(inputs)
    partials = _split_k_partials(kb, inputs, [1, 2], col_tile, splits, k_tile, threads)
    bb, (a, b) = _split_k_combine([kb.types[p] for p in partials], splits, col_tile)
    out = _finish_dtype(bb, bb.op("mul", bb.op("silu", a), b), x_type.dtype)
    return kb.finish(kb.graph_def(bb.finish([bb.save(out, (1, -1, -1))]), list(partials)))


def swiglu_down(inputs: list[TensorType], col_tile: int = 64, k_tile: int = 128, threads: int = 128,
                down_col_tile: int = 64, splits: int = 4, down_k_tile: int = 86) -> Graph:
    """(silu(X W1) * (X W3)) W2 in three kernels: the gated product (grid over W1/W3's columns, a
    for-loop over K), then the down projection split over its K across blocks and combined."""
    x_type, w1_type, w3_type, w2_type = inputs
    gate = gated_mlp([x_type, w1_type, w3_type], col_tile, k_tile, threads)
    kb = KernelBuilder(inputs)
    (h,) = kb.graph_def(gate.nodes[0].body, [0, 1, 2])
    down_inputs = [kb.types[h], w2_type]
    sub = KernelBuilder(down_inputs)
    (partial,) = _split_k_partials(sub, down_inputs, [1], down_col_tile, splits, down_k_tile, threads)
    bb, (acc,) = _split_k_combine([sub.types[partial]], splits, down_col_tile)
    out = _finish_dtype(bb, acc, x_type.dtype)
    (p,) = kb.graph_def(sub.nodes[0].body, [h, 3])
    return kb.finish(kb.graph_def(bb.finish([bb.save(out, (1, -1, -1))]), [p]))


def stable_attention(inputs: list[TensorType], scale: float = 0.125, q_tile: int = 64, splits: int = 16,
                     loop: int = 4, threads: int = 128, combine_rows: int = 4) -> Graph:
    """softmax(Q K * scale) V with the row max subtracted, as online softmax (FlashDecoding with the
    max, which Mirage cannot express): kernel 1 splits the KV length over grid y and a for-loop; each
    block keeps its rows' running max (accum_max) and their exp-sums and outputs rescaled to it
    (accum_rescaled_sum: sum_i x_i exp(m_i - max_j m_j)), and writes the three per split, side by
    side; kernel 2 loops over the splits rescaling each one's sums and outputs to the global max,
    then divides. The scores are rounded as torch-mlir's program rounds them (f32 product, scaled in
    the input type, softmax in f32); P is rounded to the input type before its row sums."""
    q_type, k_type, _ = inputs
    batch, seq, _ = q_type.shape
    kv_len, dtype = k_type.shape[2], q_type.dtype
    q_tile = min(q_tile, seq)
    kb = KernelBuilder(inputs)
    bb = BlockBuilder(inputs, (batch, splits, seq // q_tile), loop, (threads, 1, 1))
    q = bb.iterator(0, (0, -1, 1), -1)
    k = bb.iterator(1, (0, 2, -1), 2)
    v = bb.iterator(2, (0, 1, -1), 1)
    product = bb.op("cast", bb.op("matmul", q, k, dtype="f32"), dtype=dtype)
    scores = bb.op("cast", bb.op("mul_scalar", product, scalar=scale), dtype="f32")
    tile_max = bb.op("reduce_max", scores, dim=2)
    # P made once in the input type (the matmul's operand, on tensor cores); the row sums add those
    # values in f32: one stage and one f32 buffer fewer per iteration (NOTES.md, run 54)
    p = bb.op("cast", bb.op("exp", bb.op("sub", scores, tile_max)), dtype=dtype)
    tile_sum = bb.op("reduce_sum", bb.op("cast", p, dtype="f32"), dim=2)
    tile_out = bb.op("matmul", p, v, dtype="f32")
    row_max = bb.accum("accum_max", tile_max)
    row_sum = bb.accum("accum_rescaled_sum", tile_sum, tile_max)
    row_out = bb.accum("accum_rescaled_sum", tile_out, tile_max)
    body1 = bb.finish([bb.save(row_max, (0, 2, 1)), bb.save(row_sum, (0, 2, 1)), bb.save(row_out, (0, 2, 1))])
    assert kv_len % (splits * loop) == 0, "the KV length must split into splits x loop tiles"
    partials = kb.graph_def(body1, [0, 1, 2])

    # the combine's blocks: rows of 4 (a few warps each, all of a thread's loads over the splits in
    # flight at once): 16-row tiles left 32 blocks waiting on memory (NOTES.md, run 27)
    rows = min(combine_rows, seq)
    cb = BlockBuilder([kb.types[p] for p in partials], (batch, seq // rows, 1), splits, (threads, 1, 1))
    split_max, split_sum, split_out = (cb.iterator(i, (0, 1, -1), 2) for i in range(3))
    total = cb.accum("accum_rescaled_sum", split_sum, split_max)
    out = cb.accum("accum_rescaled_sum", split_out, split_max)
    body2 = cb.finish([cb.save(_finish_dtype(cb, cb.op("div", out, total), dtype), (0, 1, -1))])
    return kb.finish(kb.graph_def(body2, list(partials)))


# Plans beyond Mirage's published ones (mirage-compile --plan NAME[:params]), for the benchmarks
def lora_fused(inputs: list[TensorType], col_tile: int = 16, threads: int = 128) -> Graph:
    """The search's form: one kernel, a loop of one, a block per col_tile columns; each block computes
    X A itself (rounded to X's type, as the unfused program does), then X W + (X A) B."""
    x_type, w_type, _, _ = inputs
    kb = KernelBuilder(inputs)
    bb = BlockBuilder(inputs, (w_type.shape[1] // col_tile, 1, 1), 1, (threads, 1, 1))
    x, w, a, b = (bb.accum("accum_sum", bb.iterator(i, imap, -1), dtype=inputs[i].dtype)
                  for i, imap in enumerate((NO_MAP, (1, -1, -1), NO_MAP, (1, -1, -1))))
    xa = bb.op("cast", bb.op("matmul", x, a, dtype="f32"), dtype=x_type.dtype)
    both = bb.op("add", bb.op("matmul", x, w, dtype="f32"), bb.op("matmul", xa, b, dtype="f32"))
    body = bb.finish([bb.save(_finish_dtype(bb, both, x_type.dtype), (1, -1, -1))])
    return kb.finish(kb.graph_def(body, [0, 1, 2, 3]))


VARIANTS = {
    "rmsnorm_linear_split_k": rmsnorm_linear_split_k,
    "gated_mlp_split_k": gated_mlp_split_k,
    "layernorm_linear_folded": layernorm_linear_folded,
    "swiglu_down": swiglu_down,
    "stable_attention": stable_attention,
    "lora_fused": lora_fused,
}


def _attention(inputs: list[TensorType], qk_norm: bool) -> Graph:
    """FlashDecoding-like: kernel 1 splits the KV length over grid y and a for-loop, writing partial
    outputs and partial exp-sums side by side; kernel 2 sums the splits and divides."""
    q_type, k_type, _ = inputs
    batch, seq, head = q_type.shape
    kv_len = k_type.shape[2]
    q_tile = min(64, seq)
    splits = min(16, kv_len // 4)
    loop = 4
    kb = KernelBuilder(inputs)
    bb = BlockBuilder(inputs, (batch, splits, seq // q_tile), loop)
    q = bb.iterator(0, (0, -1, 1), -1)
    k = bb.iterator(1, (0, 2, -1), 2)
    v = bb.iterator(2, (0, 1, -1), 1)
    if qk_norm:
        q = _rms_norm(bb, q, 2)
    scores = bb.op("exp", bb.op("matmul", q, k, dtype="f32"))
    partial = bb.accum("accum_sum", bb.op("matmul", scores, v, dtype="f32"))
    row_sum = bb.accum("accum_sum", scores, reduce_dim=2)
    body1 = bb.finish([bb.save(partial, (0, 2, 1)), bb.save(row_sum, (0, 2, 1))])
    partial_out, sums = kb.graph_def(body1, [0, 1, 2])

    rows = min(16, seq)
    cb = BlockBuilder([kb.types[partial_out], kb.types[sums]], (batch, seq // rows, 1), splits)
    o = cb.accum("accum_sum", cb.iterator(0, (0, 1, -1), 2))
    s = cb.accum("accum_sum", cb.iterator(1, (0, 1, -1), 2))
    out = _finish_dtype(cb, cb.op("div", o, s), q_type.dtype)
    body2 = cb.finish([cb.save(out, (0, 1, -1))])
    return kb.finish(kb.graph_def(body2, [partial_out, sums]))


def gqa(inputs: list[TensorType]) -> Graph:
    return _attention(inputs, qk_norm=False)


def qknorm_gqa(inputs: list[TensorType]) -> Graph:
    return _attention(inputs, qk_norm=True)


def lora(inputs: list[TensorType]) -> Graph:
    """X A as a predefined matmul, then one kernel looping over the rank: each iteration adds a K/r
    slice of X W and a rank-1 slice of (X A) B into one matmul accumulator."""
    x_type, w_type, a_type, _ = inputs
    (_, k), (_, n), (_, rank) = x_type.shape, w_type.shape, a_type.shape
    kb = KernelBuilder(inputs)
    xa = kb.op("matmul", 0, 2)
    col_tile = min(64, n)
    args = [0, 1, xa, 3]
    bb = BlockBuilder([kb.types[a] for a in args], (n // col_tile, 1, 1), rank)
    x = bb.iterator(0, NO_MAP, 1)
    w = bb.iterator(1, (1, -1, -1), 0)
    xa_t = bb.iterator(2, NO_MAP, 1)
    b = bb.iterator(3, (1, -1, -1), 0)
    both = bb.op("add", bb.op("matmul", x, w, dtype="f32"), bb.op("matmul", xa_t, b, dtype="f32"))
    out = _finish_dtype(bb, bb.accum("accum_sum", both), x_type.dtype)
    body = bb.finish([bb.save(out, (1, -1, -1))])
    assert k % rank == 0, "the plan loops over the rank: K must be a multiple of it"
    return kb.finish(kb.graph_def(body, args))


def ntrans(inputs: list[TensorType], threads: int = 128) -> Graph:
    """One kernel, a block per row: both rms_norms and the update run after a one-step loop."""
    h_type = inputs[0]
    rows = h_type.shape[0]
    kb = KernelBuilder(inputs)
    bb = BlockBuilder(inputs, (rows, 1, 1), 1, (threads, 1, 1))
    h, x, alpha = (bb.accum("accum_sum", bb.iterator(i, (0, -1, -1), -1), dtype=h_type.dtype) for i in range(3))
    update = bb.op("add", h, bb.op("mul", alpha, bb.op("sub", _rms_norm(bb, x, 1), h)))
    body = bb.finish([bb.save(_rms_norm(bb, update, 1), (0, -1, -1))])
    return kb.finish(kb.graph_def(body, [0, 1, 2]))


PLANS = {
    "gqa": gqa,
    "qknorm_gqa": qknorm_gqa,
    "rmsnorm_linear": rmsnorm_linear,
    "lora": lora,
    "gated_mlp": gated_mlp,
    "ntrans": ntrans,
}


def benchmark_shapes(name: str, bs: int) -> list[tuple[int, ...]]:
    """The argument shapes of a benchmark program at ../shared/BENCHMARKS.md's sizes."""
    return {
        "gqa": [(2 * bs, 256, 64), (2 * bs, 64, 4096), (2 * bs, 4096, 64)],
        "qknorm_gqa": [(2 * bs, 256, 64), (2 * bs, 64, 4096), (2 * bs, 4096, 64)],
        "rmsnorm_linear": [(2 * bs, 4096), (4096, 6144)],
        "lora": [(16, 256), (256, 4096), (256, 16), (16, 4096)],
        "gated_mlp": [(8 * bs, 4096), (4096, 4096), (4096, 4096)],
        "ntrans": [(8 * bs, 4096)] * 3,
    }[name]


# The shapes of the programs in test/inputs/*_small_*.mlir.
SMALL_SHAPES = {
    "gqa": [(2, 16, 16), (2, 16, 64), (2, 64, 16)],
    "qknorm_gqa": [(2, 16, 16), (2, 16, 64), (2, 64, 16)],
    "rmsnorm_linear": [(4, 64), (64, 128)],
    "lora": [(16, 64), (64, 128), (64, 16), (16, 128)],
    "gated_mlp": [(8, 64), (64, 128), (64, 128)],
    "ntrans": [(8, 64)] * 3,
}


def benchmark_inputs(name: str, bs: int, dtype: str) -> list[TensorType]:
    return [TensorType(s, dtype) for s in benchmark_shapes(name, bs)]


def small_inputs(name: str, dtype: str = "f32") -> list[TensorType]:
    return [TensorType(s, dtype) for s in SMALL_SHAPES[name]]
