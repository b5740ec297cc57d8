"""Candidates built by rule beside the search's, verified and ranked with them (driver.superoptimize).

- `row_fused(graph)`: a program of row-wise ops (elementwise ops, and reductions along the last dim;
  every tensor [rows, n] or [rows, 1], or [1, n] read by every row) as one kernel: a block per row
  (per few rows), the whole row in shared memory, every op a block op. That is what a fusing
  compiler emits for a normalization; the search cannot, its block graphs being bounded
  (max_block_ops 9: torch-mlir's LayerNorm has 13 ops).
- `split_before_matmul(graph)`: the program cut before a matmul that reads a tensor the program
  computes (LayerNorm + Linear: the normalization, then the projection; SwiGLU + down: the gated
  product, then the down projection; QK-norm attention: Q's normalization, then the attention), so
  that each part is searched alone with the search's kernel budget and the best of each composed
  (`compose`). Of the cuts, the one where the fewest bytes cross, and none where more cross than the
  program reads: a cut that writes attention's scores out is what fusing avoids.
- `split_reduction(graph, n, splits)`: kernel n's for-loop split across a new grid axis (Mirage's
  split-K form): its accumulators become partial sums written side by side, and a second kernel
  adds them over a loop of `splits` and runs what came after the loop. When the output tiles alone
  cannot fill the SMs this streams faster, and the lowering runs the pair as one launch
  (fuse_split_k). Applied to the search's result (its own space holds these plans, but they lie
  beyond where the best-first search gets within its budget).
- `retile(graph, n, loop_factor, grid_dim, threads)`: kernel n's block graph over thinner loop tiles,
  another grid or block size (the split-K plans that stream fastest on the H200 load 16 KB stages
  on 128 threads, one wave of blocks; the search's pick 48 KB stages on 256). With split_reduction,
  what the driver offers the runtime's clock beside the model's pick (driver._alternatives).
- `merge_splits(graph, n, factor, threads)`: a split reduction and its combine over fewer splits,
  each block's loop tiles thicker (one block an SM streaming twice the stage on twice the threads).
- `folded_layernorm_projection(graph)`: LayerNorm + Linear as one split-K pair whose blocks accumulate
  x W, W's column sums and X's row sums and squares ((x W - mean(x) 1^T W) * rsqrt(var(x) + eps)): the
  projection no longer waits for a row kernel. An algebraic rewrite the search's block graphs cannot
  reach (it distributes the normalization over the matmul); the verifier proves it.
- `split_k_projection(graph)`: a matmul of an input by a weight input (then unary ops) as the hand
  plans' split-K pair over column strips (SwiGLU + down's down projection as split_before_matmul
  cuts it): a tiling of the split form that the search's space does not hold.
- `online_softmax_attention(graph)`: a program with attention's interface (Q [B, M, D],
  K [B, D, N], V [B, N, Dv]) that takes a max, as the two-kernel online-softmax plan
  (plans.stable_attention: running maxima and rescaled sums over a KV split, then a combine), at a
  few splits and block sizes for the cost model to choose from. The search's block graphs hold
  neither accumulator yet; the verification (max over the finite fields) decides whether the
  program is that attention.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import replace

from .. import plans
from ..builder import BlockBuilder, KernelBuilder
from ..shapes import ShapeError, broadcast
from ..mugraph import Graph, Node, TensorType
from ..opset import ACCUMULATORS, OPS
from .cost import nbytes
from .generator import block_rms_norm

ELEMENTWISE_CATEGORIES = ("unary", "binary")
MAX_ROW_BLOCKS = 264  # two blocks per SM of an H200: rows beyond that share a block


def _row_wise(graph: Graph, rows: int, used: list[int]) -> bool:
    for v, t in enumerate(graph.value_types):
        if v < len(graph.inputs) and v not in used:
            continue
        if len(t.shape) != 2 or t.shape[0] not in (rows, 1) or not t.is_static():
            return False
    for node in graph.nodes:
        category = OPS[node.op].category if node.op in OPS else None
        if category in ("reduce", "norm"):
            along_rows = category == "norm" or node.attr("dim") % 2 == 1  # the last of two dims
            if not along_rows or graph.value_types[node.inputs[0]].shape[0] != rows:
                return False
        elif category not in ELEMENTWISE_CATEGORIES:
            return False
    return all(graph.value_types[v].shape[0] == rows for v in graph.outputs)


def row_fused(graph: Graph, threads: int = 512) -> Graph | None:
    """The program as one row-wise kernel, or None when it is not row-wise."""
    used = sorted({v for node in graph.nodes for v in node.inputs if v < len(graph.inputs)})
    if not graph.nodes or not used or any(v < len(graph.inputs) for v in graph.outputs):
        return None
    inputs = [graph.inputs[k] for k in used]
    rows = max(t.shape[0] for t in inputs + [graph.value_types[v] for v in graph.outputs])
    if not _row_wise(graph, rows, used):
        return None
    blocks = max(d for d in range(1, min(rows, MAX_ROW_BLOCKS) + 1) if rows % d == 0)
    bb = BlockBuilder(inputs, (blocks, 1, 1), 1, (threads, 1, 1))
    value = {}
    for j, (k, t) in enumerate(zip(used, inputs)):
        # the rows into shared memory (the accumulator of a one-step loop: Mirage's block graphs
        # compute and save after the loop)
        tile = bb.iterator(j, (0, -1, -1) if t.shape[0] == rows else (-1, -1, -1), -1)
        value[k] = bb.accum("accum_sum", tile, dtype=t.dtype)
    for n, node in enumerate(graph.nodes):
        args = [value[v] for v in node.inputs]
        dtype = node.types[0].dtype
        if node.op == "rms_norm":
            v = block_rms_norm(bb, args[0], node.attr("eps"))
        else:
            v = bb.op(node.op, *args, dtype=dtype, **dict(node.attrs))
        if bb.types[v].dtype != dtype:
            v = bb.op("cast", v, dtype=dtype)
        value[graph.first_result[n]] = v
    body = bb.finish([bb.save(value[v], (0, -1, -1)) for v in graph.outputs])
    kb = KernelBuilder(list(graph.inputs))
    outs = kb.graph_def(body, used)
    return kb.finish(outs)


def split_before_matmul(graph: Graph) -> tuple[Graph, Graph] | None:
    """(first, second): the nodes before a matmul that reads a computed tensor, and the rest.
    `first` takes the program's inputs and returns the tensors `second` reads from it; `second`
    takes the program's inputs and then those tensors. Of such cuts, the one the fewest bytes cross
    (the latest of equals), where no program output comes before it and no more bytes cross than the
    program's inputs hold; None when there is none."""
    n_in = len(graph.inputs)
    input_bytes = sum(nbytes(t) for t in graph.inputs)
    best = None
    for cut, node in enumerate(graph.nodes):
        if node.op != "matmul" or cut == 0 or all(v < n_in for v in node.inputs):
            continue
        boundary = graph.first_result[cut]  # values below it are inputs or made before the cut
        crossing = sorted({v for later in graph.nodes[cut:] for v in later.inputs if n_in <= v < boundary})
        size = sum(nbytes(graph.value_types[v]) for v in crossing)
        if all(v >= boundary for v in graph.outputs) and size <= input_bytes and (best is None or size <= best[0]):
            best = (size, cut, crossing)
    if best is None:
        return None
    _, cut, crossing = best
    first = Graph(graph.inputs, graph.nodes[:cut], tuple(crossing))
    kb = KernelBuilder(list(graph.inputs) + [graph.value_types[v] for v in crossing])
    remap = {v: v for v in range(n_in)}
    remap.update({v: n_in + k for k, v in enumerate(crossing)})
    _copy_nodes(kb, graph, range(cut, len(graph.nodes)), remap)
    return first, kb.finish([remap[v] for v in graph.outputs])


def _copy_nodes(kb: KernelBuilder, graph: Graph, indices, remap: dict) -> None:
    """Adds `graph`'s nodes `indices` to `kb`, their operands renamed by `remap`, which learns the new
    names of their results."""
    for n in indices:
        node = graph.nodes[n]
        made = kb.add(Node(node.op, tuple(remap[v] for v in node.inputs), node.types, node.attrs, node.body))
        for r, v in enumerate(made):
            remap[graph.first_result[n] + r] = v


def compose(first: Graph, second: Graph) -> Graph:
    """The program `second` after `first` (as split_before_matmul cut it): second's extra inputs
    are first's outputs."""
    n_in = len(first.inputs)
    kb = KernelBuilder(list(first.inputs))
    for node in first.nodes:
        kb.add(node)
    remap = {v: v for v in range(n_in)}
    remap.update({n_in + k: v for k, v in enumerate(first.outputs)})
    _copy_nodes(kb, second, range(len(second.nodes)), remap)
    return kb.finish([remap[v] for v in second.outputs])


SPLITTABLE = ("accum_sum", "accum_mean", "accum_rms")


def split_reduction(graph: Graph, n: int, splits: int) -> Graph | None:
    """Kernel-graph node n (a graph_def with a for-loop) as a split reduction and its combine kernel,
    or None when its block graph does not have that shape (a free grid axis, a loop divisible by
    `splits`, sum/mean/rms accumulators only, one output saver whose tile has a dim no grid axis
    maps, nothing after the loop but what the accumulators feed)."""
    node = graph.nodes[n]
    if node.op != "graph_def":
        return None
    body = node.body
    loop, grid = body.forloop_range, body.grid_dim
    free_axes = [a for a in range(3) if grid[a] == 1]
    savers = [i for i, b in enumerate(body.nodes) if b.op == "output_saver"]
    accs = [i for i, b in enumerate(body.nodes) if b.op in ACCUMULATORS]
    if (loop % splits or not free_axes or len(savers) != 1 or not accs
            or any(body.nodes[i].op not in SPLITTABLE for i in accs)):
        return None
    axis = free_axes[0]
    omap = body.nodes[savers[0]].attr("omap")
    post = body.after_loop
    acc_values = {body.first_result[i] for i in accs}
    for i in post:  # after the loop: only what the accumulators feed (no loop value read again)
        if any(v not in acc_values and body.producers.get(v, (None,))[0] not in post for v in body.nodes[i].inputs):
            return None
    first_tile = body.value_types[body.first_result[accs[0]]]
    partial_dims = [d for d in range(len(first_tile.shape)) if d not in omap]
    if not partial_dims:
        return None
    partial_dim = partial_dims[0]
    for i in accs:
        if len(body.value_types[body.first_result[i]].shape) != len(first_tile.shape):
            return None

    # kernel 1: the loop over K / splits on grid axis `axis`, each accumulator saved as partial sums
    grid_a = tuple(splits if a == axis else g for a, g in enumerate(grid))
    a = BlockBuilder(list(body.inputs), grid_a, loop // splits, body.block_dim)
    value = {}
    saves = []
    for i, b in enumerate(body.nodes):
        if i in post or b.op == "output_saver":
            continue
        args = [value[v] if v in value else v for v in b.inputs]
        if b.op == "input_iterator":
            imap = list(b.attr("imap"))
            fmap = b.attr("fmap")
            if fmap != -1:
                imap[axis] = fmap
            v = a.iterator(b.inputs[0], tuple(imap), fmap)
        elif b.op == "accum_rms":
            dim = b.attr("reduce_dim", -1)
            x = a.op("square", args[0] if a.types[args[0]].dtype == "f32" else a.op("cast", args[0], dtype="f32"))
            v = a.accum("accum_sum", a.op("reduce_sum", x, dim=dim) if dim != -1 else x)
        elif b.op in ACCUMULATORS:
            v = a.accum(b.op, *args, dtype=b.types[0].dtype)
        else:
            v = a.add(Node(b.op, tuple(args), b.types, b.attrs, b.body))[0]
        value[body.first_result[i]] = v
        if b.op in ACCUMULATORS:
            saves.append(a.save(v, tuple(partial_dim if k == axis else omap[k] for k in range(3))))
    kb = KernelBuilder(list(graph.inputs))
    for k in range(n):
        kb.add(graph.nodes[k])
    partials = kb.graph_def(a.finish(saves), list(node.inputs))

    # kernel 2: a loop over the splits adding each partial tile, then what came after the loop
    c = BlockBuilder([kb.types[p] for p in partials], grid, splits, body.block_dim)
    value = {}
    for j, i in enumerate(accs):
        b = body.nodes[i]
        imap = tuple(-1 if k == axis else omap[k] for k in range(3))
        total = c.accum("accum_sum", c.iterator(j, imap, partial_dim))
        if b.op == "accum_mean":
            total = c.op("mul_scalar", total, scalar=1.0 / splits)
        elif b.op == "accum_rms":
            dim = b.attr("reduce_dim", -1)
            count = loop * (body.value_types[b.inputs[0]].shape[dim] if dim != -1 else 1)
            mean = c.op("mul_scalar", total, scalar=1.0 / count)
            total = c.op("sqrt", c.op("add_scalar", mean, scalar=b.attr("eps")))
        value[body.first_result[i]] = total
    out = None
    for i in sorted(post | set(savers)):
        b = body.nodes[i]
        args = [value[v] for v in b.inputs]
        if b.op == "output_saver":
            out = c.save(args[0], omap)
        else:
            value[body.first_result[i]] = c.add(Node(b.op, tuple(args), b.types, b.attrs, b.body))[0]
    results = kb.graph_def(c.finish([out]), list(partials))
    # the rest of the program, reading the combine's output where it read node n's
    remap = {v: v for v in range(graph.first_result[n])}
    remap[graph.first_result[n]] = results[0]
    _copy_nodes(kb, graph, range(n + 1, len(graph.nodes)), remap)
    return kb.finish([remap[v] for v in graph.outputs])


def _rebuilt(body: Graph, inputs: list, grid_dim, loop: int, block_dim) -> Graph | None:
    """`body`'s ops over kernel tensors of types `inputs`, on another grid, for-loop range or block
    size, every tile re-split accordingly; None when that cannot be (an accumulator with other
    attributes, a tile that does not divide). A thread graph keeps its body: it runs on scalars, over
    the broadcast of its operands' tiles."""
    a = BlockBuilder(list(inputs), grid_dim, loop, block_dim)
    value: dict[int, int] = {}
    try:
        for i, b in enumerate(body.nodes):
            args = [value.get(v, v) for v in b.inputs]
            if b.op == "thread_graph":
                tile = functools.reduce(broadcast, (a.types[x].shape for x in args))
                v = a.add(Node(b.op, tuple(args), (TensorType(tile, b.types[0].dtype),), b.attrs, b.body))[0]
            elif b.body is not None:
                return None
            elif b.op == "input_iterator":
                v = a.iterator(args[0], b.attr("imap"), b.attr("fmap"))
            elif b.op in ACCUMULATORS:
                v = a.accum(b.op, *args, dtype=b.types[0].dtype, reduce_dim=b.attr("reduce_dim", -1), eps=b.attr("eps"))
            elif b.op == "output_saver":
                v = a.save(args[0], b.attr("omap"))
            else:
                v = a.op(b.op, *args, dtype=b.types[0].dtype, **dict(b.attrs))
            if a.nodes[-1].attrs != b.attrs:
                return None
            value[body.first_result[i]] = v
    except ShapeError:
        return None
    return a.finish([value[v] for v in body.outputs])


def _with_bodies(graph: Graph, bodies: dict) -> Graph:
    """`graph` with kernel n's block graph replaced by bodies[n] (its result types follow)."""
    nodes = list(graph.nodes)
    for n, body in bodies.items():
        node = nodes[n]
        nodes[n] = Node(node.op, node.inputs, tuple(body.value_types[v] for v in body.outputs), node.attrs, body)
    return replace(graph, nodes=tuple(nodes))


def retile(graph: Graph, n: int, loop_factor: int = 1, grid_dim=None, threads: int | None = None) -> Graph | None:
    """Kernel n's block graph rebuilt with `loop_factor` times the for-loop range (each iterated tile
    that many times thinner along its loop dim), another grid (tiles re-split accordingly) or another
    block size; None when it cannot be rebuilt so (no loop to refine, an accumulator with other
    attributes, a tile that does not divide, other result shapes). Whether the program is
    still computed (a reduction along the loop dim inside the loop would change meaning) is the
    verifier's to say."""
    node = graph.nodes[n]
    if node.op != "graph_def" or (loop_factor > 1 and node.body.forloop_range == 1):
        return None
    body = node.body
    block = body.block_dim if threads is None else (threads, 1, 1)
    rebuilt = _rebuilt(body, body.inputs, grid_dim or body.grid_dim, body.forloop_range * loop_factor, block)
    if rebuilt is None or [rebuilt.value_types[v] for v in rebuilt.outputs] != list(node.types):
        return None
    return _with_bodies(graph, {n: rebuilt})


def split_axis(graph: Graph, n: int) -> int | None:
    """The grid axis along which kernel n splits a reduction that kernel n + 1 combines, or None when
    kernels n, n + 1 are not such a pair: a grid axis of kernel n that cuts the loop dim of each of
    its looping iterators, and partial sums read by kernel n + 1 alone, whose for-loop walks them one
    split a step."""
    if n < 0 or n + 1 >= len(graph.nodes) or graph.nodes[n].op != "graph_def" or graph.nodes[n + 1].op != "graph_def":
        return None
    first, second = graph.nodes[n].body, graph.nodes[n + 1].body
    loops = [b for b in first.nodes if b.op == "input_iterator" and b.attr("fmap") != -1]
    written = set(range(graph.first_result[n], graph.first_result[n] + len(graph.nodes[n].types)))
    if (not loops or written & set(graph.outputs) or set(graph.nodes[n + 1].inputs) != written
            or any(written & set(node.inputs) for node in graph.nodes[n + 2:])):
        return None
    axes = [k for k in range(3) if first.grid_dim[k] == second.forloop_range > 1
            and all(b.attr("imap")[k] == b.attr("fmap") for b in loops)]
    return axes[0] if axes else None


def merge_splits(graph: Graph, n: int, factor: int = 2, threads: int | None = None) -> Graph | None:
    """Kernel n's split reduction (split_axis) over `factor` times fewer splits, each block's for-loop
    over tiles that many times thicker along the loop dim (at `threads` threads a block), and kernel
    n + 1, which adds the partial sums, over that many fewer; None when kernels n, n + 1 are no such
    pair or cannot be rebuilt so. The splits the search finds are what it could cost among its first
    configurations; fewer, wider ones can stream faster (gated_mlp bs8: 2 splits of 256 threads, one
    block an SM, 22.4 us against 4 splits' 24.7, H200 run 117)."""
    axis = split_axis(graph, n)
    if axis is None:
        return None
    first, second = graph.nodes[n].body, graph.nodes[n + 1].body
    if first.grid_dim[axis] % factor:
        return None
    grid = tuple(g // factor if k == axis else g for k, g in enumerate(first.grid_dim))
    block = first.block_dim if threads is None else (threads, 1, 1)
    splits = _rebuilt(first, first.inputs, grid, first.forloop_range, block)
    if splits is None:
        return None
    partials = [splits.value_types[v] for v in splits.outputs]
    inputs = [partials[v - graph.first_result[n]] for v in graph.nodes[n + 1].inputs]
    combine = _rebuilt(second, inputs, second.grid_dim, second.forloop_range // factor, second.block_dim)
    if combine is None or [combine.value_types[v] for v in combine.outputs] != list(graph.nodes[n + 1].types):
        return None
    return _with_bodies(graph, {n: splits, n + 1: combine})


def combine_on_split_tiles(graph: Graph, n: int) -> Graph | None:
    """Kernel n + 1, the combine of kernel n's split reduction (split_axis), over one block per tile of
    kernel n's other grid axis: the shape in which the lowering runs the pair as one launch
    (lowering.fuse_split_k); None when the pair is no such split, kernel n tiles more than one other
    axis, the combine has that shape already or cannot be rebuilt so."""
    axis = split_axis(graph, n)
    if axis is None:
        return None
    first, second = graph.nodes[n].body, graph.nodes[n + 1].body
    tiled = [k for k in range(3) if k != axis and first.grid_dim[k] > 1]
    spread = [k for k in range(3) if second.grid_dim[k] > 1]
    if len(tiled) != 1 or len(spread) != 1 or second.grid_dim[spread[0]] == first.grid_dim[tiled[0]]:
        return None
    return retile(graph, n + 1, 1, tuple(first.grid_dim[tiled[0]] if k == spread[0] else 1 for k in range(3)))


def fuse_norm_prologue(graph: Graph) -> Graph | None:
    """The graph with each rms_norm kernel op whose result only graph_defs read, each as tiles of whole
    rows loaded once per block (iterators with fmap -1 that do not split the last dim), normalised in
    those block graphs instead (block_rms_norm on the tile: one launch and one trip through memory
    fewer; QK-norm attention normalises its Q tile before the KV loop); None when there is no such op.
    The blocks compute the same rows as the kernel op did; the verifier judges the rounding."""
    fused = {}
    for n, node in enumerate(graph.nodes):
        v = graph.first_result[n]
        if node.op != "rms_norm" or v in graph.outputs or node.inputs[0] in fused:
            continue
        readers = [m for m, other in enumerate(graph.nodes) if v in other.inputs]
        if not readers:
            continue
        last = len(graph.value_types[v].shape) - 1
        if all(graph.nodes[m].op == "graph_def" and all(
                b.attr("fmap") == -1 and last not in b.attr("imap")
                for b in graph.nodes[m].body.nodes
                if b.op == "input_iterator" and graph.nodes[m].inputs[b.inputs[0]] == v) for m in readers):
            fused[v] = node
    if not fused:
        return None
    kb = KernelBuilder(list(graph.inputs))
    remap = {v: v for v in range(len(graph.inputs))}
    for n, node in enumerate(graph.nodes):
        if graph.first_result[n] in fused:
            continue
        if node.op == "graph_def" and any(v in fused for v in node.inputs):
            node = Node(node.op, tuple(fused[v].inputs[0] if v in fused else v for v in node.inputs), node.types,
                        node.attrs, _normalized_tiles(node, fused))
        made = kb.add(Node(node.op, tuple(remap[v] for v in node.inputs), node.types, node.attrs, node.body))
        for r, v in enumerate(made):
            remap[graph.first_result[n] + r] = v
    return kb.finish([remap[v] for v in graph.outputs])


def _normalized_tiles(node: Node, fused: dict) -> Graph:
    """node's block graph with the tiles of the inputs in `fused` (value -> its rms_norm node) loaded
    from the norm's input and normalised in the block."""
    body = node.body
    bb = BlockBuilder(list(body.inputs), body.grid_dim, body.forloop_range, body.block_dim)
    value = {}  # the body's values in the rebuilt graph (its inputs keep their indices)
    for i, b in enumerate(body.nodes):
        v = bb.add(Node(b.op, tuple(value.get(x, x) for x in b.inputs), b.types, b.attrs, b.body))[0]
        norm = fused.get(node.inputs[b.inputs[0]]) if b.op == "input_iterator" else None
        if norm is not None:
            v = block_rms_norm(bb, v, norm.attr("eps"))
            if bb.types[v].dtype != b.types[0].dtype:
                v = bb.op("cast", v, dtype=b.types[0].dtype)
        value[body.first_result[i]] = v
    return bb.finish([value[v] for v in body.outputs])


__all__ = ["compose", "fuse_norm_prologue", "retile", "row_fused", "split_before_matmul", "split_k_projection",
           "split_reduction"]


FOLDED_MAX_ROWS = 64


def folded_layernorm_projection(graph: Graph) -> list[Graph]:
    """LayerNorm + Linear with the normalization folded into the projection
    (plans.layernorm_linear_folded: x W - mean(x) 1^T W, times rsqrt(var(x) + eps), every sum
    accumulated by one split-K pair, no row kernel first) at a few tilings, for a program with that
    interface (X [M, K], W [K, N] -> [M, N]) that normalizes rows (a mean, a subtraction, an rsqrt)
    before its one matmul by W; none otherwise. The verifier decides whether it is that program."""
    if len(graph.inputs) != 2 or len(graph.outputs) != 1:
        return []
    (x, w), result = graph.inputs, graph.value_types[graph.outputs[0]]
    if len(x.shape) != 2 or len(w.shape) != 2 or not (x.is_static() and w.is_static()) or x.dtype != w.dtype:
        return []
    (m, k), (k2, n) = x.shape, w.shape
    ops = [node.op for node in graph.nodes]
    matmuls = [node for node in graph.nodes if node.op == "matmul"]
    # a weight-streaming projection only: every block holds all of X's rows (its tiles of X and of
    # ones are [M, K tile]); with more rows the matmul, not W's stream, is the cost
    if (k != k2 or tuple(result.shape) != (m, n) or len(matmuls) != 1 or matmuls[0].inputs[1] != 1 or m > FOLDED_MAX_ROWS
            or not {"reduce_mean", "sub", "rsqrt"} <= set(ops)):
        return []
    tilings = []
    # one split: each block the whole K for 32 columns, no split-K tail; the model prices it above the
    # split pairs, the clock may not (11.3 us against 11.2, 10.7 at 512 threads: H200 runs 183-184).
    # Thicker stages and more warps first: the model ties them
    for k_tile, threads in itertools.product((256, 128), (512, 256)):
        if n % 32 == 0 and k % k_tile == 0:
            tilings.append(plans.layernorm_linear_folded(list(graph.inputs), col_tile=32, splits=1, k_tile=k_tile,
                                                         threads=threads))
    for col, splits in itertools.product((32, 64, 128), (2, 4, 8)):
        if n % col or k % splits:
            continue
        # K tiles of 64 and of 128 (thicker stages stream faster, NOTES.md run 166) within a split
        k_tiles = sorted({min(k_tile, k // splits) for k_tile in (64, 128)})
        # 256 threads beside 128: the model ties them, the clock does not (run 106: 13.5 against 14.2 us)
        for k_tile, threads in itertools.product(k_tiles, (128, 256)):
            if k_tile % 16 == 0 and (k // splits) % k_tile == 0:  # whole mma steps
                tilings.append(plans.layernorm_linear_folded(list(graph.inputs), col_tile=col, splits=splits,
                                                             k_tile=k_tile, threads=threads))
    return tilings


PROJECTION_TILES = tuple(itertools.product((64, 128), (2, 4, 8), (64, 128)))  # columns, splits, K tile


def split_k_projection(graph: Graph) -> list[Graph]:
    """A program that multiplies two of its inputs, A [M, K] by a weight W [K, N] (at most
    FOLDED_MAX_ROWS rows: a weight stream), then runs unary ops on the product (a cast), as the hand
    plans' split-K pair (plans._split_k_partials / _split_k_combine: grid (N / columns, splits), each
    block multiplying A's K slice by W's tile into partial sums; a combine over the splits runs the
    unary ops), at the PROJECTION_TILES that divide it; none otherwise. SwiGLU + down's down
    projection as split_before_matmul cuts it: its hand plan of this form ran 66.6 us where the
    search's candidates, whose down projections split rows and K 8 x 32 ways before a launched
    combine, ran 72.7 at best (H200 run 143); the search's own space does not reach this tiling."""
    if len(graph.outputs) != 1 or not graph.nodes or graph.nodes[0].op != "matmul":
        return []
    a, w = graph.nodes[0].inputs
    if max(a, w) >= len(graph.inputs):
        return []
    a_type, w_type = graph.inputs[a], graph.inputs[w]
    if len(a_type.shape) != 2 or len(w_type.shape) != 2 or not (a_type.is_static() and w_type.is_static()):
        return []
    (m, k), (k2, n) = a_type.shape, w_type.shape
    post, value = [], graph.first_result[0]
    for index, node in enumerate(graph.nodes[1:], 1):
        if node.inputs != (value,) or node.op not in OPS or OPS[node.op].category != "unary":
            return []
        post.append(node)
        value = graph.first_result[index]
    if k != k2 or m > FOLDED_MAX_ROWS or graph.outputs[0] != value:
        return []
    out = []
    for col, splits, k_tile in PROJECTION_TILES:
        if n % col or k % (splits * k_tile):
            continue
        kb, sub = KernelBuilder(list(graph.inputs)), KernelBuilder([a_type, w_type])
        plans._split_k_partials(sub, [a_type, w_type], [1], col, splits, k_tile, threads=128)
        (partial,) = kb.graph_def(sub.nodes[0].body, [a, w])
        bb, (total,) = plans._split_k_combine([kb.types[partial]], splits, col)
        for node in post:
            attrs = {"dtype": node.types[0].dtype} if node.op == "cast" else dict(node.attrs)
            total = bb.op(node.op, total, **attrs)
        out.append(kb.finish(kb.graph_def(bb.finish([bb.save(total, (1, -1, -1))]), [partial])))
    return out


def online_softmax_attention(graph: Graph) -> list[Graph]:
    """The online-softmax attention plan for `graph`'s interface and score scale, at a few KV splits
    and block sizes (the caller ranks them), or none when the graph cannot be attention with a max
    (its inputs, its ops)."""
    if len(graph.inputs) != 3 or len(graph.outputs) != 1:
        return []
    q, k, v = graph.inputs
    if any(len(t.shape) != 3 or not t.is_static() for t in (q, k, v)) or len({q.dtype, k.dtype, v.dtype}) != 1:
        return []
    (batch, seq, head), (kb_, kh, kv_len), (vb, vn, _) = q.shape, k.shape, v.shape
    if not (batch == kb_ == vb and head == kh and kv_len == vn):
        return []
    ops = [node.op for node in graph.nodes]
    scales = [node.attr("scalar") for node in graph.nodes if node.op == "mul_scalar"]
    if "reduce_max" not in ops or ops.count("matmul") != 2 or len(scales) > 1:
        return []
    q_tile = min(64, seq)
    if seq % q_tile:
        return []
    # the most threads first: of plans the model prices alike, the one with the fewest elements per
    # thread in each CUDA-core stage (measured faster: NOTES.md, runs 57-58)
    return [plans.stable_attention(list(graph.inputs), scale=scales[0] if scales else 1.0, q_tile=q_tile,
                                   splits=splits, loop=loop, threads=threads)
            for splits in (1, 2, 4, 8, 16, 32) for loop in (1, 2, 4) for threads in (512, 256, 128)
            if kv_len % (splits * loop) == 0 and (kv_len // (splits * loop)) % 16 == 0]
