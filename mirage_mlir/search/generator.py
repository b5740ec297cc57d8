"""The mu-graph generator: kernel graphs op by op (predefined ops and graph_defs), and for a graph_def,
block graphs over a grid, a for-loop, per-input imap/fmap, block ops and per-output omap.

Everything here works on plain Python data. Pruning, all sound with respect to what it keeps:
- abstract expressions: every new tensor's e-class must exist in the saturated target e-graph
  (absexpr.Oracle), looked up bottom-up;
- shape reasoning: grid axes and the for-loop split *index classes* (space.py); a grid axis splits
  the dim of that class in every input that has it; the loop splits reduction classes (or enumerates
  partial sums written by an earlier kernel); tiles combined by an op must be cut the same way
  (equal per-dim descriptors); a tile that is a partial sum (over a grid axis, or over loop
  iterations) may only flow through linear ops until it is summed;
- canonical forms: block ops are added in increasing rank (max operand, op code, operands, attrs),
  commutative operands sorted, a tile equal to an existing one (same e-class, cut, phase, partiality)
  is never added twice, grid axes are assigned to classes in class order, so each mu-graph is
  generated once (candidates are also de-duplicated by a structural hash);
- cost bounds: every task carries a lower bound of its final cost and is explored best-first
  (driver.py), so configurations that cannot beat the kept candidates are never expanded.
"""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass, field, replace

from .. import shapes
from ..builder import BlockBuilder
from ..dtypes import BYTES
from ..mugraph import Graph, Node, TensorType
from ..opset import OPS
from . import absexpr, cost as costmod
from .space import IndexInfo, dim_size, divisors, split_outer

UNARY_SEARCH = tuple(name for name, info in OPS.items() if info.search)  # opset.OpInfo.search
LINEAR_UNARY = ("neg", "mul_scalar", "cast")
OPCODE = {name: i for i, name in enumerate(
    ("matmul",) + UNARY_SEARCH + ("mul_scalar", "add_scalar", "rms_norm", "add", "sub", "mul", "div", "reduce_sum",
                                  "reduce_mean", "accum_sum", "accum_mean", "accum_rms"))}


@dataclass(frozen=True)
class KTensor:
    """A kernel-level tensor of a candidate."""

    type: TensorType
    dims: tuple  # per dim: factor tuple (space.py)
    ecls: int | None

    def has_partials(self) -> bool:
        return any(f[0] == "p" for fs in self.dims for f in fs)


@dataclass(frozen=True)
class Config:
    args: tuple  # kernel value ids read by the graph_def
    grid: tuple  # (x, y, z)
    grid_keys: tuple  # per axis: the factor key it splits, or None
    loop: int
    loop_keys: frozenset
    imaps: tuple
    fmaps: tuple
    block_dim: tuple = (128, 1, 1)


@dataclass(frozen=True)
class Tile:
    shape: tuple
    dtype: str
    desc: tuple  # per dim: (grid axis or -1, split by the loop, remaining factors)
    ecls: int
    post: bool
    varying: bool
    pgrid: tuple  # sorted ((axis, class), ...): a partial sum over these grid axes
    ploop: bool  # a per-iteration partial sum: must be accumulated
    pending: bool  # a dim enumerates partial sums: must be reduced


@dataclass(frozen=True)
class BOp:
    op: str
    args: tuple
    attrs: tuple = ()


@dataclass
class Options:
    max_kernel_ops: int = 2  # kernels per candidate (the issue asks for at most two; each costs a launch)
    max_block_ops: int = 9
    max_blocks: int = 4096
    max_open_tiles: int = 4  # tiles created but not yet consumed (bounds junk in the block search)
    block_states: int = 4000  # per graph_def configuration
    block_sizes: tuple = (128, 256, 512)
    chip: str = "sm_90"


@dataclass
class Context:
    """What workers need: the target, index classes, options."""

    target: absexpr.Target
    info: IndexInfo
    options: Options
    rms_eps: tuple = ()
    scalars: tuple = ()
    config_cache: dict = field(default_factory=dict)  # input signature -> sorted configurations


# ---------------------------------------------------------------------------------------------
# iterator tiles
def iterator_tile(t: KTensor, imap, fmap: int, cfg: Config, oracle) -> Tile | None:
    desc, shape = [], []
    pgrid, ploop, pending = [], False, False
    for d, factors in enumerate(t.dims):
        axis = -1
        for a in range(3):
            if imap[a] == d:
                axis = a
        fs = factors
        if axis >= 0:
            fs = split_outer(fs, cfg.grid[axis])
            if fs is None:
                return None
        looped = False
        if fmap == d:
            if fs and fs[0][0] == "p":
                if fs[0][2] != cfg.loop:
                    return None
                fs = fs[1:]
                ploop = True
            else:
                fs = split_outer(fs, cfg.loop)
                if fs is None:
                    return None
                looped = True
        if any(f[0] == "p" for f in fs):
            if not all(f[0] == "p" for f in fs):
                return None
            pending = True
        desc.append((axis, looped, fs))
        shape.append(dim_size(fs))
    return Tile(tuple(shape), t.type.dtype, tuple(desc), t.ecls, False, fmap != -1 or ploop, (), ploop, pending)


def _reducible(ctx, t: Tile, d: int) -> bool:
    """Summing dim d makes sense only over a class the program reduces, or over partial sums."""
    fs = t.desc[d][2]
    if not fs:
        return True
    return fs[0][0] == "p" or fs[0][1] in ctx.info.reduction_classes


def _as_list(result) -> list:
    return [] if result is None else (result if isinstance(result, list) else [result])


def _partial(t: Tile) -> bool:
    return bool(t.pgrid) or t.ploop or t.pending


def _merge_dtype(a: str, b: str) -> str:
    return a if a == b else "f32"


def _broadcast_desc(a: Tile, b: Tile):
    if len(a.shape) != len(b.shape):
        return None
    shape, desc = [], []
    for x, y, dx, dy in zip(a.shape, b.shape, a.desc, b.desc):
        if x == 1 and y != 1:
            shape.append(y), desc.append(dy)
        elif y == 1 and x != 1:
            shape.append(x), desc.append(dx)
        elif dx == dy:
            shape.append(x), desc.append(dx)
        else:
            return None
    return tuple(shape), tuple(desc)


class BlockSearch:
    """Depth-first enumeration of the block graphs of one graph_def configuration."""

    def __init__(self, ctx: Context, tensors: list[KTensor], cfg: Config, final_ok: bool, more_kernels: bool,
                 deadline: float, need_more: bool = False):
        """`final_ok`: outputs may be program outputs; `more_kernels`: outputs may be intermediates
        (a later kernel reads them); `need_more`: at least one output must be an intermediate.
        With program outputs only, every tile left open must still be able to become one within
        the op budget (Oracle.op_distance), which prunes most of the search."""
        self.ctx, self.cfg = ctx, cfg
        self.oracle = ctx.target.oracle
        self.tensors = tensors
        self.final_ok, self.more_kernels, self.need_more = final_ok, more_kernels, need_more
        self.dist = self.oracle.op_distance() if final_ok and not more_kernels else None
        self.deadline = deadline
        self.memo: dict = {}
        self.unary_ops = [(op, OPCODE.get(op, OPCODE["mul_scalar"]))
                          for op in UNARY_SEARCH + tuple(f"scalar:{i}" for i in range(len(ctx.scalars))) + ("rms_norm",)]
        self.states = 0
        self.results = []
        self.roots = {r: j for j, r in enumerate(ctx.target.oracle.roots) if r is not None}
        self.out_types = [ctx.target.graph.value_types[v] for v in ctx.target.graph.outputs]

    # -- entry ------------------------------------------------------------------------------------
    def _start(self):
        """The iterator tiles (and, with one iteration, the pass-through accumulators) every block
        graph of this configuration starts with: (tiles, ops), or None when an input cannot be cut."""
        cfg = self.cfg
        tiles, ops = [], []
        for i, v in enumerate(cfg.args):
            tile = iterator_tile(self.tensors[i], cfg.imaps[i], cfg.fmaps[i], cfg, self.oracle)
            if tile is None:
                return None
            tiles.append(tile)
            ops.append(BOp("input_iterator", (i,), (("fmap", cfg.fmaps[i]), ("imap", cfg.imaps[i]))))
        n_inputs = len(tiles)
        if cfg.loop == 1:
            # canonical: with one iteration every iterator passes through an accumulator untouched and
            # all work runs after the loop
            for i in range(n_inputs):
                t = tiles[i]
                if t.pending or t.ploop:
                    return None
                tiles.append(replace(t, post=True, varying=False, dtype=t.dtype))
                ops.append(BOp("accum_sum", (i,)))
        return tiles, ops

    def run(self):
        start = self._start()
        if start is None:
            return []
        tiles, ops = start
        n_inputs = len(self.cfg.args)
        users = [0] * len(tiles)
        for op in ops[n_inputs:]:
            users[op.args[0]] += 1
        seen = {self._signature(t) for t in tiles}
        # iterative deepening: small block graphs first, so the state budget is not spent on one
        # deep branch
        self.found = {}
        for limit in range(1, self.ctx.options.max_block_ops + 1):
            self.limit = limit
            self._dfs(tiles, ops, users, seen, (-1,), 0)
            if self.states > self.ctx.options.block_states or time.perf_counter() > self.deadline:
                break
        return list(self.found.values())

    def replay(self, templates) -> list:
        """The block graphs `templates` ((ops, saves) found for another configuration of the same
        structure) re-derived for this configuration: every op is applied again by the same rules
        (shapes, cuts, partial sums, e-graph lookups at this configuration's sizes) and every output
        saved again; a template that fails anywhere is dropped. Stops at the deadline, as the
        search does."""
        start = self._start()
        if start is None:
            return []
        tiles0, ops0 = start
        self.found = {}
        for ops, saves in templates:
            if time.perf_counter() > self.deadline:
                break
            if tuple(ops[:len(ops0)]) != tuple(ops0):
                continue
            tiles = list(tiles0)
            for bop in ops[len(ops0):]:
                tile = self._apply(bop, tiles)
                if tile is None:
                    break
                tiles.append(tile)
            else:
                combo = []
                for index, (omap, final, _) in saves:
                    match = [c for c in self._omaps(tiles[index]) if c[0] == omap and c[1] == final]
                    if not match:
                        break
                    combo.append((index, match[0]))
                else:
                    self.found[(tuple(ops), tuple(combo))] = (tuple(tiles), tuple(ops), tuple(combo))
        return list(self.found.values())

    def _apply(self, bop: BOp, tiles) -> Tile | None:
        """The tile block op `bop` makes from `tiles` by the search's rules, or None."""
        op, args, attrs = bop.op, bop.args, dict(bop.attrs)
        if op in ("matmul",):
            made = self._matmul(tiles[args[0]], tiles[args[1]], *args)
        elif op in ("add", "sub", "mul", "div"):
            made = self._binary(op, tiles[args[0]], tiles[args[1]], *args)
        elif op in ("reduce_sum", "reduce_mean"):
            made = self._reduce(op, tiles[args[0]], args[0], attrs["dim"])
        elif op.startswith("accum_"):
            made = self._accum(op, tiles[args[0]], args[0], attrs.get("reduce_dim", -1))
        elif op in ("mul_scalar", "add_scalar"):
            index = self.ctx.scalars.index((op, attrs["scalar"])) if (op, attrs["scalar"]) in self.ctx.scalars else -1
            made = self._unary(f"scalar:{index}", tiles[args[0]], args[0]) if index >= 0 else None
        else:
            made = self._unary(op, tiles[args[0]], args[0])
        for b, tile in _as_list(made):
            if b == bop:
                return tile
        return None

    @staticmethod
    def _signature(t: Tile):
        return (t.ecls, t.desc, t.post, t.pgrid, t.ploop, t.pending, t.varying)

    # -- the search ---------------------------------------------------------------------------------
    def _dfs(self, tiles, ops, users, seen, last_key, n_ops):
        self.states += 1
        if self.states > self.ctx.options.block_states or time.perf_counter() > self.deadline:
            return
        if self.dist is not None:
            left = self.limit - n_ops
            for i, t in enumerate(tiles):
                if not users[i] and self.dist.get(t.ecls, left + 1) > left:
                    return  # this open tile cannot become a program output in the ops left
        if n_ops == self.limit or self.limit == 1:
            self._try_close(tiles, ops, users)
        if n_ops >= self.limit:
            return
        open_tiles = sum(1 for i, t in enumerate(tiles) if users[i] == 0 and not (i < len(self.cfg.args)))
        for key, bop, tile in self._candidates(tiles, users, last_key):
            sig = self._signature(tile)
            if sig in seen:
                continue
            consumed = sum(1 for a in set(bop.args) if users[a] == 0 and a >= len(self.cfg.args))
            if open_tiles - consumed + 1 > self.ctx.options.max_open_tiles:
                continue
            tiles.append(tile)
            ops.append(bop)
            for a in bop.args:
                users[a] += 1
            users.append(0)
            seen.add(sig)
            self._dfs(tiles, ops, users, seen, key, n_ops + 1)
            seen.discard(sig)
            users.pop()
            for a in bop.args:
                users[a] -= 1
            ops.pop()
            tiles.pop()

    def _candidates(self, tiles, users, last_key):
        """(rank key, op, result tile) for every op whose key exceeds `last_key`."""
        n = len(tiles)
        loop = self.cfg.loop
        lo = max(last_key[0], 0)
        for hi in range(lo, n):
            th = tiles[hi]
            if loop == 1 and not th.post:
                continue  # with one iteration all work runs after the pass-through accumulators
            # unary ops, reductions and accumulators of tile hi
            for code, attr, bop, tile in self._single(th):
                key = (hi, code, (hi,), attr)
                if key > last_key:
                    yield key, BOp(bop.op, (hi,), bop.attrs), tile
            # binary ops and matmul with a partner other <= hi (either order for the ordered ops)
            for other in range(hi + 1):
                to = tiles[other]
                if to.post != th.post:
                    continue
                for code, first, bop, tile in self._pair(to, th, other == hi):
                    args = (other, hi) if first else (hi, other)
                    key = (hi, code, args, "")
                    if key > last_key:
                        yield key, BOp(bop.op, args, bop.attrs), tile

    def _single(self, t: Tile) -> list:
        """[(op code, rank attribute, op, result tile)] of every one-operand op on tile t, remembered
        for the whole search (the same tile objects meet the same ops in every state below the one
        that made them; the memo keeps them alive, so their ids stay theirs)."""
        hit = self.memo.get(id(t))
        if hit is not None and hit[0] is t:
            return hit[1]
        out = []
        for op, code in self.unary_ops:
            for bop, tile in _as_list(self._unary(op, t, 0)):
                out.append((code, op, bop, tile))
        for d in range(len(t.shape)):
            if t.shape[d] > 1:
                for op in ("reduce_sum", "reduce_mean"):
                    for bop, tile in _as_list(self._reduce(op, t, 0, d)):
                        out.append((OPCODE[op], d, bop, tile))
        if not t.post and t.varying and self.cfg.loop > 1:
            for rd in [-1] + [d for d in range(len(t.shape)) if t.shape[d] > 1]:
                for op in ("accum_sum", "accum_mean", "accum_rms"):
                    for bop, tile in _as_list(self._accum(op, t, 0, rd)):
                        out.append((OPCODE[op], rd, bop, tile))
        self.memo[id(t)] = (t, out)
        return out

    def _pair(self, lo: Tile, hi: Tile, same: bool) -> list:
        """[(op code, lo first, op, result tile)] of every two-operand op on tiles lo and hi."""
        key = (id(lo), id(hi))
        hit = self.memo.get(key)
        if hit is not None and hit[0] is lo and hit[1] is hi:
            return hit[2]
        out = []
        orders = [(True, lo, hi)] if same else [(True, lo, hi), (False, hi, lo)]
        for first, a, b in orders:
            for bop, tile in _as_list(self._matmul(a, b, 0, 1)):
                out.append((OPCODE["matmul"], first, bop, tile))
            if not same:
                for op in ("sub", "div"):
                    for bop, tile in _as_list(self._binary(op, a, b, 0, 1)):
                        out.append((OPCODE[op], first, bop, tile))
        if not same:
            for op in ("add", "mul"):
                for bop, tile in _as_list(self._binary(op, lo, hi, 0, 1)):
                    out.append((OPCODE[op], True, bop, tile))
        self.memo[key] = (lo, hi, out)
        return out

    # -- op rules ----------------------------------------------------------------------------------
    def _unary(self, op, t: Tile, i):
        o = self.oracle
        if op == "rms_norm":
            if _partial(t):
                return None
            axis, looped, fs = t.desc[-1]
            if axis >= 0 or looped or t.shape[-1] == 1:
                return None
            out = []
            for eps in self.ctx.rms_eps:
                e = absexpr.apply_op(o, "rms_norm", [t.ecls], {"eps": eps}, [t.shape])
                if e is not None:
                    out.append((BOp("rms_norm", (i,), (("eps", eps),)), replace(t, ecls=e)))
            return out
        attrs = {}
        if op.startswith("scalar:"):
            kind, value = self.ctx.scalars[int(op[7:])]
            op, attrs = kind, {"scalar": value}
        if op not in LINEAR_UNARY and _partial(t):
            return None
        e = absexpr.apply_op(o, op, [t.ecls], attrs, [t.shape])
        if e is None:
            return None
        return BOp(op, (i,), tuple(sorted(attrs.items()))), replace(t, ecls=e)

    def _binary(self, op, a: Tile, b: Tile, i, j):
        if a.pending or b.pending:
            return None
        pa, pb = _partial(a), _partial(b)
        if op in ("add", "sub"):
            if (a.pgrid, a.ploop) != (b.pgrid, b.ploop):
                return None
        elif op == "mul":
            if pa and pb:
                return None
        elif op == "div":
            if pb:
                return None
        bd = _broadcast_desc(a, b)
        if bd is None:
            return None
        e = absexpr.apply_op(self.oracle, op, [a.ecls, b.ecls], {}, [a.shape, b.shape])
        if e is None:
            return None
        shape, desc = bd
        pgrid = tuple(sorted(set(a.pgrid) | set(b.pgrid)))
        tile = Tile(shape, _merge_dtype(a.dtype, b.dtype), desc, e, a.post, a.varying or b.varying, pgrid,
                    a.ploop or b.ploop, False)
        return BOp(op, (i, j)), tile

    def _matmul(self, a: Tile, b: Tile, i, j):
        if len(a.shape) < 2 or len(a.shape) != len(b.shape) or a.pending or b.pending:
            return None
        if _partial(a) and _partial(b):
            return None
        if a.desc[:-2] != b.desc[:-2] or a.desc[-1] != b.desc[-2] or a.shape[-1] == 1:
            return None
        if a.shape[:-2] != b.shape[:-2]:
            return None
        axis, looped, fs = a.desc[-1]
        e = absexpr.apply_op(self.oracle, "matmul", [a.ecls, b.ecls], {}, [a.shape, b.shape])
        if e is None:
            return None
        pgrid = set(a.pgrid) | set(b.pgrid)
        if axis >= 0:
            pgrid.add((axis, self.cfg.grid_keys[axis][1]))
        shape = a.shape[:-1] + (b.shape[-1],)
        desc = a.desc[:-1] + (b.desc[-1],)
        tile = Tile(shape, "f32", desc, e, a.post, a.varying or b.varying, tuple(sorted(pgrid)),
                    a.ploop or b.ploop or looped, False)
        return BOp("matmul", (i, j)), tile

    def _reduce(self, op, t: Tile, i, d):
        if not _reducible(self.ctx, t, d):
            return None
        axis, looped, fs = t.desc[d]
        if op == "reduce_mean" and (axis >= 0 or looped or fs and fs[0][0] == "p" or _partial(t)):
            return None
        e = absexpr.apply_op(self.oracle, op, [t.ecls], {"dim": d}, [t.shape])
        if e is None:
            return None
        pgrid = set(t.pgrid)
        if axis >= 0:
            pgrid.add((axis, self.cfg.grid_keys[axis][1]))
        pending = any(f[0] == "p" for k, dd in enumerate(t.desc) if k != d for f in dd[2])
        desc = t.desc[:d] + ((-1, False, ()),) + t.desc[d + 1:]
        shape = t.shape[:d] + (1,) + t.shape[d + 1:]
        return BOp(op, (i,), (("dim", d),)), replace(t, shape=shape, desc=desc, ecls=e, pgrid=tuple(sorted(pgrid)),
                                                     ploop=t.ploop or looped, pending=pending)

    def _accum(self, op, t: Tile, i, rd):
        o = self.oracle
        loop = self.cfg.loop
        looped = [d for d, (a, lp, fs) in enumerate(t.desc) if lp]
        if rd != -1 and not _reducible(self.ctx, t, rd):
            return None
        if any(d != rd for d in looped):
            return None
        if t.pending and not (rd != -1 and all(f[0] == "p" for f in t.desc[rd][2]) and t.desc[rd][2]):
            return None
        size = t.shape[rd] if rd != -1 else 1
        n = loop * size
        pgrid = set(t.pgrid)
        if rd != -1 and t.desc[rd][0] >= 0:
            axis, _, fs = t.desc[rd]
            pgrid.add((axis, self.cfg.grid_keys[axis][1]))
        attrs = ()
        if op == "accum_sum":
            e = o.sum(n, t.ecls)
            if e is None and rd != -1:
                e = o.sum(loop, o.sum(size, t.ecls))
        elif op == "accum_mean":
            if _partial(t) or rd == -1 or t.desc[rd][0] >= 0:
                return None
            e = absexpr.mean_expr(o, t.ecls, n)
        else:  # accum_rms
            if _partial(t) or rd == -1 or t.desc[rd][0] >= 0:
                return None
            out = []
            for eps in self.ctx.rms_eps:
                e = absexpr.rms_expr(o, t.ecls, n, eps)
                if e is not None:
                    out.append(self._accum_tile(op, t, i, rd, e, pgrid, (("eps", eps),)))
            return out
        if e is None:
            return None
        return self._accum_tile(op, t, i, rd, e, pgrid, attrs)

    def _accum_tile(self, op, t, i, rd, e, pgrid, attrs):
        desc = tuple((a, False, fs) for a, lp, fs in t.desc)
        shape = t.shape
        if rd != -1:
            desc = desc[:rd] + ((-1, False, ()),) + desc[rd + 1:]
            shape = shape[:rd] + (1,) + shape[rd + 1:]
        attrs = attrs + ((("reduce_dim", rd),) if rd != -1 else ())
        tile = Tile(shape, "f32", desc, e, True, False, tuple(sorted(pgrid)), False, False)
        return BOp(op, (i,), tuple(sorted(attrs))), tile

    # -- closing a block graph ------------------------------------------------------------------------
    def _try_close(self, tiles, ops, users):
        n_args = len(self.cfg.args)
        sinks = []
        for i, t in enumerate(tiles):
            if users[i]:
                continue
            if i < n_args or not t.post or t.ploop or t.pending:
                return
            sinks.append(i)
        if not sinks:
            return
        grid = self.cfg.grid
        options = []
        for i in sinks:
            t = tiles[i]
            choices = self._omaps(t)
            if not choices:
                return
            options.append(choices)
        for combo in itertools.product(*options):
            if self.need_more and all(final is not None for _, final, _ in combo):
                continue
            key = (tuple(ops), tuple(zip(sinks, combo)))
            if key not in self.found:
                self.found[key] = (tuple(tiles), tuple(ops), tuple(zip(sinks, combo)))

    def _omaps(self, t: Tile):
        """[(omap, final output index or None, kernel tensor dims)] for saving tile t."""
        grid = self.cfg.grid
        omap = [-1, -1, -1]
        for d, (axis, lp, fs) in enumerate(t.desc):
            if axis >= 0:
                omap[axis] = d
        partial_axes = dict(t.pgrid)
        for a in range(3):
            if grid[a] > 1 and omap[a] == -1 and a not in partial_axes:
                return []  # every block along a would write the same tile
        free = [d for d in range(len(t.shape)) if d not in omap]
        results = []
        if not partial_axes:
            dims = self._saved_dims(t, tuple(omap), {})
            shape = tuple(dim_size(f) for f in dims)
            final = self.roots.get(t.ecls)
            if final is not None and self.final_ok and shape == self.out_types[final].shape:
                results.append((tuple(omap), final, dims))
            elif self.more_kernels:
                results.append((tuple(omap), None, dims))
            return results
        if not self.more_kernels:
            return []
        axes = sorted(partial_axes)
        for targets in itertools.permutations(free, len(axes)):
            om = list(omap)
            for a, d in zip(axes, targets):
                om[a] = d
            dims = self._saved_dims(t, tuple(om), {a: partial_axes[a] for a in axes})
            results.append((tuple(om), None, dims))
            break  # canonical: partial sums go to the first free dims
        return results

    def _saved_dims(self, t: Tile, omap, partial_axes):
        grid = self.cfg.grid
        dims = []
        for d, (axis, lp, fs) in enumerate(t.desc):
            fs = tuple(fs)
            for a in range(3):
                if omap[a] != d or grid[a] == 1:
                    continue
                if a in partial_axes:
                    fs = (("p", partial_axes[a], grid[a]),) + fs
                else:
                    # the grid axis splits the class of its key: merge it back into the outer
                    # factor, or restore the factor when the split consumed all of it
                    kind, c = self.cfg.grid_keys[a]
                    if fs and fs[0][0] == kind and fs[0][1] == c:
                        fs = ((kind, c, fs[0][2] * grid[a]),) + fs[1:]
                    else:
                        fs = ((kind, c, grid[a]),) + fs
            dims.append(fs)
        return tuple(dims)


# ---------------------------------------------------------------------------------------------
# materialising block graphs
def build_body(ctx: Context, cfg: Config, arg_types: list[TensorType], tiles, ops, saves, out_dtypes) -> Graph:
    """The block Graph of a closed search state; `out_dtypes[k]` is the dtype of the k-th saver.

    Block matmuls accumulate in f32. A value that a matmul multiplies by an f16/bf16 tile (attention's
    exp(Q K) by V) is made in that type: rounded once where it is computed, and every consumer (the
    softmax's row sums too) reads the rounded value, as the program holds it (torch's matmul takes
    both operands in one type; the float check judges the rounding). The matmul then runs on tensor
    cores, and the f32 value needs no buffer of its own."""
    narrowed: dict[int, str] = {}
    while True:
        body, wanted = _materialize(cfg, arg_types, ops, saves, out_dtypes, narrowed)
        new = {k: dtype for k, dtype in wanted.items() if k not in narrowed}
        if not new:  # (a value two matmuls want in two types is rounded at each of them)
            return body
        narrowed |= new


def _materialize(cfg: Config, arg_types: list[TensorType], ops, saves, out_dtypes,
                 narrowed: dict[int, str]) -> tuple[Graph, dict[int, str]]:
    """build_body's graph with op k's value rounded to narrowed[k]; and the ops whose f32 values a
    matmul takes beside a narrow tile (rounded at the matmul in this graph)."""
    bb = BlockBuilder(list(arg_types), cfg.grid, cfg.loop, cfg.block_dim)
    vid, wanted = {}, {}
    for index, bop in enumerate(ops):
        a = [vid[x] for x in bop.args] if bop.op != "input_iterator" else list(bop.args)
        attrs = dict(bop.attrs)
        if bop.op == "input_iterator":
            v = bb.iterator(a[0], attrs["imap"], attrs["fmap"])
        elif bop.op.startswith("accum_"):
            x = a[0]
            v = bb.accum(bop.op, x, dtype="f32" if cfg.loop > 1 else bb.types[x].dtype,
                         reduce_dim=attrs.get("reduce_dim", -1), eps=attrs.get("eps"))
        elif bop.op == "rms_norm":
            v = block_rms_norm(bb, a[0], attrs["eps"])
        elif bop.op == "matmul":
            dtypes = [bb.types[x].dtype for x in a]
            narrow = set(dtypes) - {"f32"}
            if len(narrow) == 1 and "f32" in dtypes:
                (dtype,) = narrow
                wanted |= {arg: dtype for arg, t in zip(bop.args, dtypes) if t == "f32"}
                a = [bb.op("cast", x, dtype=dtype) if t == "f32" else x for x, t in zip(a, dtypes)]
            v = bb.op("matmul", a[0], a[1], dtype="f32")
        elif len(a) == 2:
            x, y = a
            if bb.types[x].dtype != bb.types[y].dtype:
                x, y = _as_f32(bb, x), _as_f32(bb, y)
            v = bb.op(bop.op, x, y, **attrs)
        else:
            v = bb.op(bop.op, a[0], **attrs)
        if index in narrowed and bb.types[v].dtype == "f32":
            v = bb.op("cast", v, dtype=narrowed[index])
        vid[index] = v
    outs = []
    for (tile_index, (omap, final, dims)), dtype in zip(saves, out_dtypes):
        v = vid[tile_index]
        if bb.types[v].dtype != dtype:
            v = bb.op("cast", v, dtype=dtype)
        outs.append(bb.save(v, omap))
    return bb.finish(outs), wanted


def _as_f32(bb: BlockBuilder, v: int) -> int:
    return v if bb.types[v].dtype == "f32" else bb.op("cast", v, dtype="f32")


def block_rms_norm(bb: BlockBuilder, x: int, eps: float) -> int:
    """rms_norm over the last dim from block ops (block graphs have no rms_norm), in f32."""
    x = _as_f32(bb, x)
    mean = bb.op("reduce_mean", bb.op("square", x), dim=len(bb.types[x].shape) - 1)
    return bb.op("div", x, bb.op("sqrt", bb.op("add_scalar", mean, scalar=eps)))


# ---------------------------------------------------------------------------------------------
# configurations of a graph_def
def enumerate_configs(ctx: Context, tensors: dict[int, KTensor], args: tuple,
                      partial_ok: bool = True) -> list[tuple[float, Config]]:
    """(lower bound of the kernel's cost, config) for every grid/loop/map choice on inputs `args`,
    cheapest first (materialises the whole lazy table: for tests and tools)."""
    table = config_table(ctx, tuple((tensors[a].type, tensors[a].dims) for a in args), partial_ok)
    out, index = [], 0
    while (entry := table.get(index)) is not None:
        out.append((entry[0], replace(entry[1], args=tuple(args))))
        index += 1
    return out


def config_table(ctx: Context, sig: tuple, partial_ok: bool = True) -> "ConfigTable":
    """The configurations of a graph_def reading tensors of signature `sig` ((type, dims) per input),
    as a lazy table sorted by cost lower bound; without `partial_ok`, only those whose grid splits no
    reduction class (a kernel writing program outputs cannot write partial sums). Remembered per
    signature: the kernel-level search meets the same input signatures in many states."""
    table = ctx.config_cache.get((sig, partial_ok))
    if table is None:
        table = ctx.config_cache[(sig, partial_ok)] = ConfigTable(ctx, sig, partial_ok)
    return table


class ConfigTable:
    """Configurations of one input signature, produced lazily in increasing lower-bound order.

    The grid choices (up to three index classes, any divisors, at most `max_blocks` blocks) are
    enumerated up front with the part of the bound that does not depend on the loop (launch + bytes
    read at the grid's SM fill: every input is read once per block that does not split it, whatever
    the loop); a grid's loop choices (each adding its per-iteration overhead) are expanded only when
    the grid reaches the front. `get(i)` is the i-th cheapest configuration (its `args` empty: the
    caller fills them in), or None past the end. Without `partial_ok`, no grid axis splits a reduction
    class (such a kernel writes partial sums, which only a later kernel can add up)."""

    def __init__(self, ctx: Context, sig: tuple, partial_ok: bool = True):
        self.ctx, self.sig, self.partial_ok = ctx, sig, partial_ok
        self.c = costmod.chip(ctx.options.chip)
        self.prefix: list[tuple[float, Config]] = []
        self.heap: list = []
        self.counter = itertools.count()
        self._grids()

    def get(self, index: int):
        while len(self.prefix) <= index:
            if not self.heap:
                return None
            lb, _, kind, payload = heapq.heappop(self.heap)
            if kind == "grid":
                for entry in self._loops(*payload):
                    heapq.heappush(self.heap, (entry[0], next(self.counter), "cfg", entry))
            else:
                self.prefix.append(payload)
        return self.prefix[index]

    def __len__(self) -> int:  # configurations materialised so far
        return len(self.prefix)

    def _grids(self) -> None:
        ctx, c, sig = self.ctx, self.c, self.sig
        all_dims = [d for _, d in sig]
        self.nbytes = [t.numel() * BYTES[t.dtype] for t, _ in sig]
        outer: dict = {}
        bad = set()
        for dims in all_dims:
            seen_here = set()
            for fs in dims:
                if not fs:
                    continue
                key = (fs[0][0], fs[0][1])
                if key in seen_here or outer.get(key, fs[0][2]) != fs[0][2]:
                    bad.add(key)
                seen_here.add(key)
                outer[key] = fs[0][2]
        grid_keys = sorted((k for k in outer if k[0] == "i" and k not in bad
                            and (self.partial_ok or k[1] not in ctx.info.reduction_classes)), key=repr)
        # where each grid key sits in each input (dim index or -1)
        key_dim = {k: [next((d for d, fs in enumerate(dims) if fs and (fs[0][0], fs[0][1]) == k), -1)
                       for dims in all_dims] for k in grid_keys}
        grid_choices = [((), ())]
        for r in (1, 2, 3):
            for keys in itertools.combinations(grid_keys, r):
                for gs in itertools.product(*[divisors(outer[k]) for k in keys]):
                    blocks = 1
                    for g in gs:
                        blocks *= g
                    if blocks <= ctx.options.max_blocks:
                        grid_choices.append((keys, gs))
        for keys, gs in grid_choices:
            blocks = 1
            for g in gs:
                blocks *= g
            splits = []
            for i in range(len(all_dims)):
                n = 1
                for a, k in enumerate(keys):
                    if key_dim[k][i] >= 0:
                        n *= gs[a]
                splits.append(n)
            # bytes loaded: each input once per block that does not split it (independent of the
            # loop), from DRAM once (cost.py: replicas come from L2)
            read = sum(nb * blocks // n for nb, n in zip(self.nbytes, splits))
            base = costmod.config_lower_bound(c, blocks, read, sum(self.nbytes), 1)
            heapq.heappush(self.heap, (base, next(self.counter), "grid", (keys, gs, read, splits, key_dim)))

    def _loops(self, keys, gs, read, splits, key_dim) -> list[tuple[float, Config]]:
        ctx, c = self.ctx, self.c
        reduction = ctx.info.reduction_classes
        grid = tuple(gs) + (1,) * (3 - len(gs))
        gkeys = tuple(keys) + (None,) * (3 - len(keys))
        blocks = grid[0] * grid[1] * grid[2]
        imaps, post_grid = [], []
        for i, (_, dims) in enumerate(self.sig):
            imap = [-1, -1, -1]
            dl = list(dims)
            for a, k in enumerate(keys):
                d = key_dim[k][i]
                if d >= 0:
                    imap[a] = d
                    dl[d] = split_outer(dims[d], gs[a])
            imaps.append(tuple(imap))
            post_grid.append(dl)
        imaps = tuple(imaps)
        tiles = [nb // n for nb, n in zip(self.nbytes, splits)]
        # loop keys: reduction classes and partial sums, outermost after the grid split
        lkeys: dict = {}
        for dl in post_grid:
            for fs in dl:
                if fs and (fs[0][0] == "p" or fs[0][1] in reduction):
                    key = (fs[0][0], fs[0][1])
                    if lkeys.get(key, fs[0][2]) != fs[0][2]:
                        lkeys[key] = -1
                    else:
                        lkeys[key] = fs[0][2]
        lkeys = {k: n for k, n in lkeys.items() if n > 1}
        names = sorted(lkeys, key=repr)
        block_dim = (ctx.options.block_sizes[0], 1, 1)
        results = []
        subsets = [frozenset()] + [frozenset(sub) for r in range(1, len(names) + 1)
                                   for sub in itertools.combinations(names, r)]
        for lset in subsets:
            fmaps = []
            for dl in post_grid:
                fm = [d for d, fs in enumerate(dl) if fs and (fs[0][0], fs[0][1]) in lset]
                if len(fm) > 1:
                    break
                fmaps.append(fm[0] if fm else -1)
            else:
                if not lset:
                    loops = [1]
                else:
                    if all(f == -1 for f in fmaps):
                        continue
                    common = None
                    for k in lset:
                        ds = {lkeys[k]} if k[0] == "p" else set(divisors(lkeys[k]))
                        common = ds if common is None else common & ds
                    loops = sorted(common or ())
                fixed = sum(t for t, f in zip(tiles, fmaps) if f == -1)
                looped = sum(t for t, f in zip(tiles, fmaps) if f != -1)
                fmaps = tuple(fmaps)
                for L in loops:
                    if fixed + looped // L > c.smem_per_block:
                        continue
                    lb = costmod.config_lower_bound(c, blocks, read, sum(self.nbytes), L)
                    results.append((lb, Config((), grid, gkeys, L, lset, imaps, fmaps, block_dim)))
        return results
