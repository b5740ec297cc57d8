"""Runs lowered GPU code on the CPU: the subset of gpu/arith/math/memref/scf/vector ops that the
code generator emits, executed by every thread of every block in lockstep over NumPy arrays.

This is how tests check, on machines without a GPU, that the kernels we generate compute what the
mu-graph means. Beyond values, it checks what a GPU would not report:
- out-of-bounds indices on every load and store (global and shared);
- shared-memory races: a read of an element written by another thread of the block, a write of an
  element read or written by another thread, with no `gpu.barrier` between (per 2-byte slot);
- global races: two threads of one launch writing the same element, or reading one another's
  writes (no grid-wide synchronisation exists);
- a barrier or a shuffle reached by part of a block or a warp;
- outputs and temporaries start as NaN, so an element no thread writes fails the comparison;
- asynchronous copies (`nvgpu.device_async_copy`, cp.async) land in shared memory only when a
  `device_async_wait` completes their group, so a read before the wait sees stale data and a read by
  another thread before the following barrier is a race;
- a kernel launched as a programmatic dependent (`{mirage.overlap}`) that touches a buffer other
  than the program's inputs (its constant inputs, where it declares them) before its
  `nvvm.griddepcontrol wait` (an L2 prefetch touches nothing a thread sees: it may come before);
- an `nvvm.prefetch` of an address outside the kernel's buffers;
- warpgroup matmuls (`nvvm.wgmma.mma_async`, sm_90a) reached by part of a warpgroup, or with a
  descriptor not the same across it, or reading outside the dynamic shared memory; a read of their
  accumulators, or a store or cp.async into the shared memory they read, before their
  `wgmma.wait_group`.

Values are arrays over all threads (shape [T], vectors [T, n]). Divergent loops (`scf.for` from a
thread id) and `scf.if` run with an activity mask. Floats follow the kernel's types: f32 in
float32, f16 in float16, bf16 as float32 values rounded to bf16 (stored as their 16-bit patterns).
"""

from __future__ import annotations

import mlir.ir as ir
import numpy as np

from ..dtypes import round_to
from ..opset import OPS


class SimtError(Exception):
    pass


NP_STORAGE = {"f16": np.float16, "bf16": np.uint16, "f32": np.float32, "f64": np.float64, "i32": np.int32}
ATOMIC_ADDI = 1  # arith::AtomicRMWKind::addi
ACQUIRING = (4, 6, 7)  # LLVM's AtomicOrdering acquire, acq_rel, seq_cst
INT_POISON = -0x2BAD  # what an uninitialised i32 buffer holds
ADDRESS_BITS = 40  # a global address: buffer number << ADDRESS_BITS | byte offset
CLUSTER_TAG = 1 << 62  # a shared::cluster address: CLUSTER_TAG | block << CLUSTER_BLOCK_SHIFT | byte
CLUSTER_BLOCK_SHIFT = 24
SLOT = 2  # bytes per race-detection slot in shared memory


def to_storage(array: np.ndarray, dtype: str) -> np.ndarray:
    """Host values (any float array) in the storage representation of `dtype`."""
    if dtype == "bf16":
        bits = round_to(np.asarray(array, np.float32), "bf16").view(np.uint32)
        return (bits >> 16).astype(np.uint16)
    return np.asarray(array, NP_STORAGE[dtype])


def from_storage(array: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bf16":
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _elem(type_str: str) -> str:
    """Element type of a memref/vector/scalar type string."""
    s = type_str
    if s.startswith("memref<") or s.startswith("vector<"):
        s = s[s.index("<") + 1:].split(",")[0].rstrip(">")
        s = s.split("x")[-1]
    return s


def _vector_width(type_str: str) -> int:
    """Elements of a 1-D vector type string (1 for a scalar)."""
    return int(type_str[len("vector<"):].split("x")[0]) if type_str.startswith("vector<") else 1


def _memref_shape(type_str: str) -> tuple[int, ...]:
    inner = type_str[len("memref<"):].split(",")[0].rstrip(">")
    parts = inner.split("x")[:-1]
    return tuple(int(p) for p in parts)


class MemRef:
    def __init__(self, kind: str, data: np.ndarray, shape, dtype: str, byte_offset: int = 0, shadow=None,
                 unwritten: bool = False):
        self.kind = kind  # "global" | "shared" | "smem" (the raw dynamic shared memory)
        self.data = data
        self.shape = tuple(shape)
        self.dtype = dtype
        self.byte_offset = byte_offset
        self.shadow = shadow
        self.strides = [int(np.prod(self.shape[i + 1:])) for i in range(len(self.shape))]
        self.size = int(np.prod(self.shape)) if self.shape else 1
        # per element, whether anything wrote it, where the buffer starts `unwritten` (the host
        # function's outputs and temporaries), whose reads of never-written elements are refused
        self.written = np.zeros(self.size, bool) if unwritten else None
        if kind == "shared":
            esize = np.dtype(NP_STORAGE[dtype]).itemsize
            self.typed = data[:, byte_offset:byte_offset + self.size * esize].view(NP_STORAGE[dtype])
            self.esize = esize


class Shadow:
    """Race-detection state for one memory (shared: per block and 2-byte slot; global: per element)."""

    def __init__(self, shape):
        self.w_tid = np.full(shape, -1, np.int64)
        self.w_epoch = np.full(shape, -1, np.int64)
        self.r_tid = np.full(shape, -1, np.int64)
        self.r_epoch = np.full(shape, -1, np.int64)


class Kernel:
    """A gpu.func compiled into nested Python instruction lists."""

    def __init__(self, func: ir.Operation):
        self.func = func
        self.slots: dict = {}
        self.args = [self.slot(a) for a in func.regions[0].blocks[0].arguments]
        self.body = self.compile_block(func.regions[0].blocks[0])

    def slot(self, value) -> int:
        if value not in self.slots:
            self.slots[value] = len(self.slots)
        return self.slots[value]

    def compile_block(self, block) -> list:
        out = []
        for op in block.operations:
            op = op.operation
            info = {"name": op.name, "op": op}
            regions = []
            for region in op.regions:
                blocks = list(region.blocks)
                if not blocks:
                    regions.append(None)
                    continue
                b = blocks[0]
                regions.append(([self.slot(a) for a in b.arguments], self.compile_block(b)))
            out.append((op.name, [self.slot(v) for v in op.operands], [self.slot(r) for r in op.results],
                        [str(r.type) for r in op.results], [str(v.type) for v in op.operands], regions, op))
        return out


def _attr_int(op, name: str) -> int:
    return ir.IntegerAttr(op.attributes[name]).value


# the ops that may take a wgmma accumulator before its wait: the chain itself and the struct / vector
# views of its registers (renames in PTX; any other use reads the registers)
IN_FLIGHT_RENAMES = frozenset({"nvvm.wgmma.mma_async", "llvm.extractvalue", "vector.from_elements"})


class Machine:
    def __init__(self, kernel: Kernel, grid, block, args: list, shared_bytes: int, check_races: bool = True,
                 gated: frozenset = frozenset()):
        self.kernel = kernel
        # a kernel launched as a programmatic dependent: the global buffers (by id) a thread may touch
        # only after its griddepcontrol.wait (what the kernels before it write)
        self.gated = gated
        self.grid = tuple(grid)
        self.nthreads = int(np.prod(block))
        if block[1] != 1 or block[2] != 1:
            raise SimtError("only 1-D blocks are emulated")
        self.nblocks = int(np.prod(grid))
        self.T = self.nblocks * self.nthreads
        t = np.arange(self.T, dtype=np.int64)
        self.blk = t // self.nthreads
        self.tid = t % self.nthreads
        gx, gy, _ = self.grid
        self.bid = {"x": self.blk % gx, "y": (self.blk // gx) % gy, "z": self.blk // (gx * gy)}
        # a thread-block cluster (nvvm.cluster_dim): the first block of each block's cluster
        dims = kernel.func.attributes["nvvm.cluster_dim"] if "nvvm.cluster_dim" in kernel.func.attributes else None
        self.cluster = tuple(ir.DenseI32ArrayAttr(dims)) if dims is not None else (1, 1, 1)
        if any(g % c for g, c in zip(self.grid, self.cluster)):
            raise SimtError(f"grid {self.grid} is not a whole number of clusters {self.cluster}")
        pos = [self.bid[a] % c for a, c in zip("xyz", self.cluster)]
        self.cluster_origin = self.blk - (pos[0] + gx * (pos[1] + gy * pos[2]))
        self.cluster_mark = -1  # the epoch of the last releasing cluster arrive a cluster wait completed
        self.arrive_mark = -1
        self.shared_writes = 0  # shared-memory stores so far (a release fence sees none after it)
        self.release_fence = None  # (epoch, shared_writes) at the last release fence
        self.peer_reads_open = False  # a block's shared memory read by a peer since the last cluster barrier
        self.shared_bytes = shared_bytes
        self.smem = np.zeros((self.nblocks, max(shared_bytes, 16)), np.uint8)
        self.smem_shadow = Shadow((self.nblocks, max(shared_bytes, 16) // SLOT + 1))
        self.check = check_races
        self.epoch = 0
        self.async_pending: list = []  # cp.async copies issued since the last commit
        self.async_groups: list[list] = []  # committed, not yet completed groups, oldest first
        self.in_flight: set[int] = set()  # the slots of wgmma accumulators issued and not yet waited for
        # per block, the shared-memory bytes that wgmma issued and not yet waited for read (None: none);
        # this emulator's wgmma reads at issue, the hardware's any time before the wait
        self.wgmma_reads: np.ndarray | None = None
        self.env: list = [None] * len(kernel.slots)
        self.waited = np.zeros(self.T, bool)
        self.addressed: dict[int, tuple[int, MemRef]] = {}  # id(global buffer): (its number, it)
        for s, a in zip(kernel.args, args):
            self.env[s] = a

    # -- race bookkeeping --------------------------------------------------------------------
    def _shared_access(self, mem: MemRef, lin: np.ndarray, mask: np.ndarray, width: int, write: bool):
        if not self.check:
            return
        byte = mem.byte_offset + lin[mask] * mem.esize
        nslots = max(1, width * mem.esize // SLOT)
        slots = (byte // SLOT)[:, None] + np.arange(nslots)[None, :]
        blk = np.repeat(self.blk[mask][:, None], nslots, axis=1).ravel()
        tid = np.repeat(self.tid[mask][:, None], nslots, axis=1).ravel()
        self._record(self.smem_shadow, (blk, slots.ravel()), tid, write, "shared memory")

    def _gate(self, mem: MemRef, mask: np.ndarray, write: bool) -> None:
        if id(mem) in self.gated and np.any(mask & ~self.waited):
            t = int(np.nonzero(mask & ~self.waited)[0][0])
            raise SimtError(f"block {int(self.blk[t])}, thread {int(self.tid[t])} {'writes' if write else 'reads'} "
                            f"{mem.shape}x{mem.dtype}, which the kernel before it may write, before its "
                            f"griddepcontrol.wait")

    def _global_access(self, mem: MemRef, lin: np.ndarray, mask: np.ndarray, width: int, write: bool):
        self._gate(mem, mask, write)
        tracked = self.check and mem.shadow is not None
        if mem.written is None and not tracked:
            return
        elems = (lin[mask][:, None] + np.arange(width)[None, :]).ravel()
        if mem.written is not None:
            if write:
                mem.written[elems] = True
            elif not mem.written[elems].all():
                raise SimtError(f"a read of an element of {mem.shape}x{mem.dtype} (an output or temporary of "
                                f"the host function) that nothing has written")
        if not tracked:
            return
        gtid = np.repeat((self.blk * self.nthreads + self.tid)[mask], width)
        sh = mem.shadow
        if write:
            prev = sh.w_tid[elems]
            if np.any((prev != -1) & (prev != gtid)):
                raise SimtError("global race: two threads of one launch write the same output element")
            order = np.argsort(elems, kind="stable")
            e_sorted, t_sorted = elems[order], gtid[order]
            dup = (e_sorted[1:] == e_sorted[:-1]) & (t_sorted[1:] != t_sorted[:-1])
            if np.any(dup):
                raise SimtError("global race: two threads of one launch write the same output element")
            sh.w_tid[elems] = gtid
        else:
            prev = sh.w_tid[elems]
            if np.any((prev != -1) & (prev != gtid)):
                raise SimtError("global race: a thread reads an element another thread of the launch wrote")

    def _record(self, sh: Shadow, where, tid: np.ndarray, write: bool, what: str):
        epoch = self.epoch
        w_tid, w_ep = sh.w_tid[where], sh.w_epoch[where]
        r_tid, r_ep = sh.r_tid[where], sh.r_epoch[where]
        key = where[0] * sh.w_tid.shape[1] + where[1]
        # several threads touching one slot within this op
        order = np.argsort(key, kind="stable")
        k_sorted, t_sorted = key[order], tid[order]
        same = k_sorted[1:] == k_sorted[:-1]
        multi = same & (t_sorted[1:] != t_sorted[:-1])
        if write:
            if np.any((w_ep == epoch) & (w_tid != tid)):
                raise SimtError(f"{what} race: write after another thread's write with no barrier between")
            if np.any((r_ep == epoch) & (r_tid != -1) & (r_tid != tid)):
                raise SimtError(f"{what} race: write of an element another thread read with no barrier between")
            if np.any(multi):
                raise SimtError(f"{what} race: two threads write one element in the same step")
            sh.w_tid[where] = tid
            sh.w_epoch[where] = epoch
            self.shared_writes += sh is self.smem_shadow
        else:
            if np.any((w_ep == epoch) & (w_tid != tid)):
                raise SimtError(f"{what} race: read of an element another thread wrote with no barrier between")
            new = np.where((r_ep == epoch) & (r_tid != -1) & (r_tid != tid), -2, tid)
            sh.r_tid[where] = new
            sh.r_epoch[where] = epoch
            if np.any(multi):
                many = np.zeros(len(key), bool)
                idx = np.nonzero(multi)[0]
                many[order[idx]] = True
                many[order[idx + 1]] = True
                sh.r_tid[(where[0][many], where[1][many])] = -2

    # -- memory ------------------------------------------------------------------------------
    def _linear(self, mem: MemRef, idx: list, mask: np.ndarray, width: int = 1) -> np.ndarray:
        lin = np.zeros(self.T, np.int64)
        for i, (v, d) in enumerate(zip(idx, mem.shape)):
            v = np.broadcast_to(np.asarray(v, np.int64), (self.T,))
            bad = mask & ((v < 0) | (v >= d) | ((i == len(mem.shape) - 1) & (v + width > d)))
            if np.any(bad):
                t = int(np.nonzero(bad)[0][0])
                raise SimtError(f"out-of-bounds index {int(v[t])} for dim {i} of size {d} "
                                f"({mem.kind} memref {mem.shape}x{mem.dtype}, block {int(self.blk[t])}, thread {int(self.tid[t])})")
            lin = lin + v * mem.strides[i]
        return np.where(mask, lin, 0)

    def load(self, mem: MemRef, idx, mask, width: int = 1):
        lin = self._linear(mem, idx, mask, width)
        offs = lin[:, None] + np.arange(width)[None, :]
        if mem.kind == "shared":
            self._shared_access(mem, lin, mask, width, False)
            raw = mem.typed[self.blk[:, None], offs]
        else:
            self._global_access(mem, lin, mask, width, False)
            raw = mem.data[offs]
        val = from_storage(raw, mem.dtype)
        return val[:, 0] if width == 1 else val

    def _check_wgmma_operands(self, mem: MemRef, lin: np.ndarray, mask: np.ndarray, width: int, what: str):
        """Refuses a write (or a cp.async issued) into shared memory that a wgmma in flight reads."""
        if self.wgmma_reads is None or mem.kind != "shared":
            return
        byte = mem.byte_offset + lin[mask][:, None] * mem.esize + np.arange(width * mem.esize)[None, :]
        hit = self.wgmma_reads[self.blk[mask][:, None], byte].any(axis=1)
        if hit.any():
            t = int(np.nonzero(mask)[0][np.argmax(hit)])
            raise SimtError(f"block {int(self.blk[t])}, thread {int(self.tid[t])}: {what} shared memory that a "
                            f"wgmma reads before its wgmma.wait_group")

    def store(self, mem: MemRef, idx, value, mask, width: int = 1):
        lin = self._linear(mem, idx, mask, width)
        self._check_wgmma_operands(mem, lin, mask, width, "a store into")
        value = np.asarray(value)
        value = np.broadcast_to(value, (self.T,) if width == 1 else (self.T, width))
        if mem.dtype == "bf16":
            raw = to_storage(value, "bf16")
        else:
            raw = value.astype(NP_STORAGE[mem.dtype])
        if width == 1:
            raw = raw[:, None]
        offs = lin[:, None] + np.arange(width)[None, :]
        if mem.kind == "shared":
            self._shared_access(mem, lin, mask, width, True)
            mem.typed[self.blk[mask][:, None], offs[mask]] = raw[mask]
        else:
            self._global_access(mem, lin, mask, width, True)
            mem.data[offs[mask]] = raw[mask]

    # -- execution ---------------------------------------------------------------------------
    def run(self) -> None:
        with np.errstate(all="ignore"):
            self.exec_block(self.kernel.body, np.ones(self.T, bool))
        if self.peer_reads_open:
            raise SimtError("a block may exit while a peer of its cluster still reads its shared memory "
                            "(no cluster barrier after the reads)")

    def exec_block(self, ops: list, mask: np.ndarray):
        env = self.env
        for name, ins, outs, out_types, in_types, regions, op in ops:
            a = [env[s] for s in ins]
            if name == "nvvm.wgmma.mma_async" or (self.in_flight and not self.in_flight.isdisjoint(ins)):
                if name not in IN_FLIGHT_RENAMES:
                    raise SimtError(f"'{name}' reads a wgmma accumulator before the wgmma.wait_group that "
                                    "waits for it (undefined in PTX)")
                self.in_flight.update(outs)
            if name == "scf.yield":
                return a
            if name == "gpu.return":
                return []
            handler = getattr(self, "op_" + name.replace(".", "_"), None)
            if handler is None:
                raise SimtError(f"the CPU emulator does not support '{name}'")
            results = handler(a, mask, out_types, in_types, regions, op)
            for s, r in zip(outs, results):
                env[s] = r
        return []

    # arith
    def op_arith_constant(self, a, mask, ot, it, regions, op):
        attr = op.attributes["value"]
        t = ot[0]
        if t.startswith("vector<"):
            dims = tuple(int(d) for d in t[len("vector<"):-1].split("x")[:-1])
            dense = ir.DenseElementsAttr(attr)
            if not dense.is_splat:
                raise SimtError("non-splat vector constants are not emulated")
            value = ir.FloatAttr(dense.get_splat_value()).value
            dtype = np.float16 if _elem(t) == "f16" else np.float32
            return [np.full((self.T,) + dims, value, dtype)]
        if t in ("f32", "f16", "bf16", "f64"):
            v = ir.FloatAttr(attr).value
            return [{"f16": np.float16, "f64": np.float64}.get(t, np.float32)(v)]
        return [np.int64(ir.IntegerAttr(attr).value)]

    def op_arith_addi(self, a, *r):
        return [np.asarray(a[0], np.int64) + a[1]]

    def op_arith_subi(self, a, *r):
        return [np.asarray(a[0], np.int64) - a[1]]

    def op_arith_muli(self, a, *r):
        return [np.asarray(a[0], np.int64) * a[1]]

    def op_arith_divui(self, a, *r):
        return [np.asarray(a[0], np.int64) // a[1]]

    def op_arith_remui(self, a, *r):
        return [np.asarray(a[0], np.int64) % a[1]]

    def op_arith_minui(self, a, *r):
        return [np.minimum(np.asarray(a[0], np.int64), a[1])]

    def op_arith_xori(self, a, *r):
        return [np.asarray(a[0], np.int64) ^ a[1]]

    def op_arith_ori(self, a, *r):
        return [np.asarray(a[0], np.int64) | a[1]]

    def op_arith_shli(self, a, *r):
        return [np.asarray(a[0], np.int64) << a[1]]

    def op_arith_shrui(self, a, *r):
        return [np.asarray(a[0], np.int64) >> a[1]]

    def op_arith_extui(self, a, *r):
        return [np.asarray(a[0], np.int64)]

    def op_arith_index_cast(self, a, *r):
        return [np.asarray(a[0], np.int64)]

    def op_arith_cmpi(self, a, mask, ot, it, regions, op):
        pred = _attr_int(op, "predicate")
        x, y = np.asarray(a[0], np.int64), np.asarray(a[1], np.int64)
        fn = {0: np.equal, 1: np.not_equal, 2: np.less, 3: np.less_equal, 4: np.greater, 5: np.greater_equal,
              6: np.less, 7: np.less_equal, 8: np.greater, 9: np.greater_equal}[pred]
        return [fn(x, y)]

    def op_arith_andi(self, a, *r):
        return [np.logical_and(a[0], a[1]) if np.asarray(a[0]).dtype == bool else np.asarray(a[0], np.int64) & a[1]]

    def op_arith_select(self, a, *r):
        return [np.where(a[0], a[1], a[2])]

    def op_llvm_select(self, a, *r):
        """Of structs too (a wgmma accumulator, [threads, fields]): the condition per thread."""
        cond = np.asarray(a[0], bool)
        return [np.where(cond.reshape(cond.shape + (1,) * (np.ndim(a[1]) - cond.ndim)), a[1], a[2])]

    def _f(self, value, t):
        return np.asarray(value, {"f16": np.float16, "f64": np.float64}.get(t, np.float32))

    def op_arith_addf(self, a, mask, ot, *r):
        return [self._f(a[0] + a[1], ot[0])]

    def op_arith_subf(self, a, mask, ot, *r):
        return [self._f(a[0] - a[1], ot[0])]

    def op_arith_mulf(self, a, mask, ot, *r):
        return [self._f(a[0] * a[1], ot[0])]

    def op_arith_divf(self, a, mask, ot, *r):
        return [self._f(np.divide(a[0], a[1]), ot[0])]

    def op_arith_maximumf(self, a, mask, ot, *r):
        return [self._f(np.maximum(a[0], a[1]), ot[0])]

    def op_arith_minimumf(self, a, mask, ot, *r):
        return [self._f(np.minimum(a[0], a[1]), ot[0])]

    def op_arith_negf(self, a, mask, ot, *r):
        return [self._f(-np.asarray(a[0]), ot[0])]

    def op_arith_extf(self, a, mask, ot, it, *r):
        return [self._f(a[0], ot[0])]

    def op_nvvm_convert_f32x2_to_bf16x2(self, a, mask, ot, it, regions, op):
        """cvt.rn.bf16x2.f32 d, hi, lo: lane 0 of the pair is the second operand (the low half)."""
        if "rn" not in str(op.attributes["rnd"]) or len(a) != 2:
            raise SimtError("only round-to-nearest f32x2 -> bf16x2 conversions are emulated")
        pair = np.stack([np.broadcast_to(np.asarray(x, np.float64), (self.T,)) for x in (a[1], a[0])], axis=1)
        return [round_to(pair, "bf16")]

    def op_arith_truncf(self, a, mask, ot, *r):
        if ot[0] == "f16":  # from f32, or from f64 rounded once (not through f32)
            return [round_to(np.asarray(a[0], np.float64), "f16").astype(np.float16)]
        if ot[0] == "bf16":
            return [round_to(np.asarray(a[0], np.float64), "bf16")]
        if ot[0] == "f32":
            return [np.asarray(a[0], np.float32)]
        raise SimtError(f"truncf to {ot[0]}")

    # math
    def op_math_exp(self, a, mask, ot, *r):
        return [self._f(np.exp(a[0]), ot[0])]

    def op_math_sqrt(self, a, mask, ot, *r):
        return [self._f(np.sqrt(a[0]), ot[0])]

    def op_math_rsqrt(self, a, mask, ot, *r):
        return [self._f(1 / np.sqrt(self._f(a[0], ot[0])), ot[0])]

    def op_math_tanh(self, a, mask, ot, *r):
        return [self._f(np.tanh(a[0]), ot[0])]

    def op_math_erf(self, a, mask, ot, *r):
        return [self._f(OPS["erf"].numpy(np.asarray(a[0], np.float64)), ot[0])]

    def op_math_powf(self, a, mask, ot, *r):
        return [self._f(np.power(a[0], a[1]), ot[0])]

    def op_math_fma(self, a, mask, ot, *r):
        x, y, z = (np.asarray(v, np.float64) for v in a)
        return [self._f(x * y + z, ot[0])]

    # gpu
    def op_gpu_thread_id(self, a, mask, ot, it, regions, op):
        dim = str(op.attributes["dimension"])
        if "x" in dim:
            return [self.tid]
        return [np.zeros(self.T, np.int64)]

    def op_gpu_block_id(self, a, mask, ot, it, regions, op):
        dim = str(op.attributes["dimension"])
        return [self.bid[dim.split()[-1].rstrip(">")]]

    def op_gpu_barrier(self, a, mask, *r):
        per_block = mask.reshape(self.nblocks, self.nthreads)
        if np.any(per_block.any(axis=1) & ~per_block.all(axis=1)):
            raise SimtError("gpu.barrier reached by part of a block (divergent barrier)")
        self.epoch += 1
        return []

    def op_gpu_shuffle(self, a, mask, ot, it, regions, op):
        mode = str(op.attributes["mode"])
        if "xor" not in mode and "idx" not in mode:
            raise SimtError(f"shuffle mode {mode}")
        value, offset, width = a
        if int(width) != 32:
            raise SimtError("shuffle width other than 32")
        warp_active = mask.reshape(-1, 32)
        if np.any(warp_active.any(axis=1) & ~warp_active.all(axis=1)):
            raise SimtError("gpu.shuffle reached by part of a warp")
        value = np.broadcast_to(np.asarray(value), (self.T,))
        offset = np.asarray(offset).astype(np.int64) & 31  # a lane's own source lane (idx) or mask (xor)
        lanes = offset if "idx" in mode else (np.arange(self.T) & 31) ^ offset
        src = (np.arange(self.T) & ~31) | lanes
        return [value[src], np.ones(self.T, bool)]

    def op_gpu_dynamic_shared_memory(self, a, mask, ot, *r):
        return [MemRef("smem", self.smem, (self.smem.shape[1],), "i8")]

    # memref / vector
    def op_memref_view(self, a, mask, ot, it, regions, op):
        src, shift = a[0], a[1]
        shift = np.asarray(shift)
        if shift.ndim and not np.all(shift == shift.flat[0]):
            raise SimtError("memref.view with a thread-dependent offset")
        shift = int(shift.flat[0]) if shift.ndim else int(shift)
        shape, dtype = _memref_shape(ot[0]), _elem(ot[0])
        mem = MemRef("shared", self.smem, shape, dtype, shift)
        if shift + mem.size * mem.esize > self.shared_bytes:
            raise SimtError(f"memref.view at byte {shift} of {mem.size * mem.esize} bytes exceeds the "
                            f"{self.shared_bytes} bytes of dynamic shared memory")
        return [mem]

    def op_memref_atomic_rmw(self, a, mask, ot, it, regions, op):
        """Atomic add, in thread order: each thread gets the sum of its address's earlier values.
        Atomics never race, so they are not recorded for race detection."""
        if _attr_int(op, "kind") != ATOMIC_ADDI:
            raise SimtError("only memref.atomic_rmw addi is emulated")
        mem = a[1]
        self._gate(mem, mask, True)
        lin = self._linear(mem, a[2:], mask)
        value = np.broadcast_to(np.asarray(a[0], np.int64), (self.T,))
        old = np.zeros(self.T, np.int64)
        for t in np.nonzero(mask)[0]:
            old[t] = mem.data[lin[t]]
            mem.data[lin[t]] += value[t]
        return [old]

    def op_nvvm_griddepcontrol(self, a, mask, ot, it, regions, op):
        """wait: the kernel before has completed (lockstep: it ran first), so from here the thread may
        touch what it wrote; launch_dependents changes nothing here."""
        if "wait" in str(op.attributes["kind"]):
            self.waited |= mask
        return []

    # global addresses: a global buffer's base is (its number + 1) << ADDRESS_BITS, so an address
    # names its buffer and a byte in it
    def op_memref_extract_aligned_pointer_as_index(self, a, mask, ot, it, regions, op):
        """A shared view's address is its byte offset in the dynamic shared memory (what a wgmma
        descriptor encodes)."""
        mem = a[0]
        if mem.kind in ("shared", "smem"):
            return [np.int64(mem.byte_offset)]
        if mem.kind != "global":
            raise SimtError("an address is taken of global and shared buffers only")
        if id(mem) not in self.addressed:
            self.addressed[id(mem)] = (len(self.addressed) + 1, mem)
        return [np.int64(self.addressed[id(mem)][0] << ADDRESS_BITS)]

    def op_llvm_inttoptr(self, a, *r):
        return [np.asarray(a[0], np.int64)]

    # thread-block clusters: lockstep runs every block of a cluster together
    def _cluster_barrier_step(self, mask: np.ndarray, what: str) -> None:
        per_block = mask.reshape(self.nblocks, self.nthreads)
        if not per_block.all():
            raise SimtError(f"{what} reached by part of a cluster")

    def op_nvvm_cluster_arrive_relaxed(self, a, mask, ot, it, regions, op):
        """Releasing where a release fence of this block's shared memory came right before it (no
        shared-memory write between them)."""
        self._cluster_barrier_step(mask, "nvvm.cluster.arrive.relaxed")
        if self.release_fence == (self.epoch, self.shared_writes):
            self.arrive_mark = self.epoch
        self.release_fence = None
        return []

    def op_nvvm_fence_sync_restrict(self, a, mask, ot, it, regions, op):
        """fence.release.sync_restrict::shared::cta.cluster: this block's shared-memory writes so far,
        ordered before its next cluster arrive."""
        if "release" not in str(op.attributes["order"]):
            raise SimtError("nvvm.fence.sync_restrict is emulated with release order only")
        self.release_fence = (self.epoch, self.shared_writes)
        return []

    def op_nvvm_cluster_wait(self, a, mask, ot, it, regions, op):
        self._cluster_barrier_step(mask, "nvvm.cluster.wait")
        self.epoch += 1
        self.cluster_mark, self.arrive_mark = self.arrive_mark, -1
        self.peer_reads_open = False
        return []

    def op_nvvm_mapa(self, a, mask, ot, it, regions, op):
        """A shared::cluster address: the cluster block of the rank | CLUSTER_TAG, beside the byte."""
        byte = np.broadcast_to(np.asarray(a[0], np.int64), (self.T,))
        rank = np.broadcast_to(np.asarray(a[1], np.int64), (self.T,))
        if np.any(mask & ((rank < 0) | (rank >= int(np.prod(self.cluster))))):
            raise SimtError("nvvm.mapa of a rank outside the cluster")
        cx, cy, _ = self.cluster
        gx, gy, _ = self.grid
        peer = self.cluster_origin + rank % cx + gx * ((rank // cx) % cy + gy * (rank // (cx * cy)))
        return [CLUSTER_TAG | (peer << CLUSTER_BLOCK_SHIFT) | byte]

    def op_llvm_load(self, a, mask, ot, it, regions, op):
        """A load from a peer's shared memory (an nvvm.mapa address) of what that block wrote before a
        releasing cluster arrive whose wait this thread has passed; or from a global buffer."""
        address = np.broadcast_to(np.asarray(a[0], np.int64), (self.T,))
        if not np.any(mask & ((address & CLUSTER_TAG) != 0)):
            return [self._global_pointer_load(address, mask, ot[0])]
        if np.any(mask & ((address & CLUSTER_TAG) == 0)):
            raise SimtError("an llvm.load mixes shared::cluster and global addresses")
        peer = (address & ~CLUSTER_TAG) >> CLUSTER_BLOCK_SHIFT
        byte = address & ((1 << CLUSTER_BLOCK_SHIFT) - 1)
        width = _vector_width(ot[0])
        dtype = _elem(ot[0])
        esize = np.dtype(NP_STORAGE[dtype]).itemsize
        if np.any(mask & ((byte % (width * esize) != 0) | (byte + width * esize > self.shared_bytes))):
            raise SimtError("a shared::cluster load outside the shared memory or misaligned")
        offs = byte[:, None] + np.arange(width * esize)[None, :]
        if self.check:
            slots = (offs[mask] // SLOT)
            written = self.smem_shadow.w_epoch[np.repeat(peer[mask], slots.shape[1]), slots.ravel()]
            if np.any((written < 0) | (written > self.cluster_mark)):
                raise SimtError("a shared::cluster load of what its block wrote after the last releasing "
                                "cluster barrier (or never)")
            self.peer_reads_open = True
        raw = self.smem[np.where(mask, peer, 0)[:, None], np.where(mask[:, None], offs, 0)]
        val = from_storage(np.ascontiguousarray(raw).view(NP_STORAGE[dtype]), dtype)
        return [val[:, 0] if width == 1 else val]

    def _numbered_buffer(self, number: int) -> MemRef | None:
        """The global buffer whose addresses carry `number` (op_memref_extract_aligned_pointer_as_index)."""
        return next((mem for n, mem in self.addressed.values() if n == number), None)

    def _global_pointer_load(self, address: np.ndarray, mask: np.ndarray, type_: str):
        """A load of `type_` at each thread's global address (a buffer the kernel was given, its
        element type, aligned to the load's size), checked as a memref load is."""
        width, dtype = _vector_width(type_), _elem(type_)
        numbers = np.unique((address >> ADDRESS_BITS)[mask])
        if len(numbers) == 0:
            return np.zeros((self.T, width) if width > 1 else self.T, NP_STORAGE[dtype])
        mem = self._numbered_buffer(int(numbers[0]))
        if len(numbers) > 1 or mem is None:
            raise SimtError("an llvm.load from global addresses of several buffers, or of none the kernel was given")
        esize = np.dtype(NP_STORAGE[mem.dtype]).itemsize
        byte = np.where(mask, address & ((1 << ADDRESS_BITS) - 1), 0)
        if mem.dtype != dtype or np.any(byte % (width * esize) != 0):
            raise SimtError(f"an llvm.load of {type_} from a {mem.dtype} buffer, or misaligned")
        if np.any(mask & (byte // esize + width > mem.size)):
            raise SimtError(f"an llvm.load past the end of a global buffer {mem.shape}x{mem.dtype}")
        index = np.unravel_index(np.minimum(byte // esize, mem.size - 1), mem.shape)
        return self.load(mem, list(index), mask, width)

    def op_nvvm_prefetch(self, a, mask, ot, it, regions, op):
        """A prefetch reads nothing a thread sees (so it may come before griddepcontrol.wait); its
        address must lie in a buffer the kernel was given."""
        address = np.broadcast_to(np.asarray(a[0], np.int64), (self.T,))[mask]
        for number in np.unique(address >> ADDRESS_BITS):
            mem = self._numbered_buffer(int(number))
            byte = address[(address >> ADDRESS_BITS) == number] & ((1 << ADDRESS_BITS) - 1)
            if mem is None or np.any(byte >= mem.size * np.dtype(NP_STORAGE[mem.dtype]).itemsize):
                raise SimtError("nvvm.prefetch of an address outside the kernel's buffers")
        return []

    def op_llvm_fence(self, a, mask, ot, it, regions, op):
        """An acquire fence after the release fences and the atomic of every other block (lockstep
        runs them all first): what they wrote may now be read, so those writes stop being races."""
        if _attr_int(op, "ordering") in ACQUIRING:
            for s in self.kernel.args:
                mem = self.env[s]
                if isinstance(mem, MemRef) and mem.shadow is not None:
                    mem.shadow.w_tid[:] = -1
        return []

    def op_memref_load(self, a, mask, *r):
        return [self.load(a[0], a[1:], mask)]

    def op_memref_store(self, a, mask, *r):
        self.store(a[1], a[2:], a[0], mask)
        return []

    def op_vector_load(self, a, mask, ot, it, regions, op):
        width = _vector_width(ot[0])
        self._check_alignment(a[0], a[1:], width, op, mask)
        return [self.load(a[0], a[1:], mask, width)]

    def op_vector_store(self, a, mask, ot, it, regions, op):
        width = _vector_width(it[0])
        self._check_alignment(a[1], a[2:], width, op, mask)
        self.store(a[1], a[2:], a[0], mask, width)
        return []

    def _check_alignment(self, mem: MemRef, idx, width: int, op, mask, align: int | None = None):
        if align is None:
            if "alignment" not in op.attributes:
                return
            align = _attr_int(op, "alignment")
        lin = self._linear(mem, idx, mask, width)
        esize = np.dtype(NP_STORAGE[mem.dtype]).itemsize
        byte = lin * esize + (mem.byte_offset if mem.kind == "shared" else 0)
        if np.any(mask & (byte % align != 0)):
            raise SimtError(f"a vector access declared {align}-byte aligned is not")

    def op_vector_extract(self, a, mask, ot, it, regions, op):
        pos = list(ir.DenseI64ArrayAttr(op.attributes["static_position"]))
        return [a[0][(slice(None),) + tuple(pos)]]

    def op_vector_from_elements(self, a, mask, ot, *r):
        dims = tuple(int(d) for d in ot[0][len("vector<"):-1].split("x")[:-1])
        cols = [np.broadcast_to(np.asarray(v), (self.T,)) for v in a]
        return [np.stack(cols, axis=1).reshape((self.T,) + dims)]

    def op_nvgpu_ldmatrix(self, a, mask, ot, it, regions, op):
        """ldmatrix.m8n8.x{1,2,4}[.trans].b16: lane l addresses row l % 8 of matrix l // 8; thread
        (group g, t) receives elements (g, 2t), (g, 2t+1) of each matrix (of its transpose with .trans)."""
        tiles = _attr_int(op, "numTiles")
        trans = ir.BoolAttr(op.attributes["transpose"]).value
        mem = a[0]
        if mem.kind != "shared":
            raise SimtError("ldmatrix reads shared memory")
        warp_active = mask.reshape(-1, 32)
        if np.any(warp_active.any(axis=1) & ~warp_active.all(axis=1)):
            raise SimtError("nvgpu.ldmatrix reached by part of a warp")
        lane = np.arange(self.T) % 32
        used = mask & (lane < 8 * tiles)
        rows = self.load(mem, a[1:], used, 8)  # [T, 8]: each addressing lane's 8 halves
        rows = np.asarray(rows, np.float32).reshape(-1, 32, 8)
        g, t = np.arange(32) // 4, np.arange(32) % 4
        out = np.zeros((rows.shape[0], 32, tiles, 2), np.float32)
        for j in range(tiles):
            matrix = rows[:, 8 * j:8 * j + 8, :]  # [warps, row, col]
            if trans:
                matrix = matrix.transpose(0, 2, 1)
            for h in range(2):
                out[:, :, j, h] = matrix[:, g, 2 * t + h]
        dtype = np.float16 if _elem(ot[0]) == "f16" else np.float32
        return [out.reshape(self.T, tiles, 2).astype(dtype)]

    def op_nvgpu_mma_sync(self, a, mask, ot, it, regions, op):
        """mma.sync m16n8k16 (f16 x f16 + f32), the PTX fragment layouts, one 16x8 tile per warp."""
        shape = list(ir.ArrayAttr(op.attributes["mmaShape"]))
        if [ir.IntegerAttr(x).value for x in shape] != [16, 8, 16]:
            raise SimtError("only mma.sync m16n8k16 is emulated")
        return [_mma_m16n8k16(mask, a[0], a[1], a[2], "nvgpu.mma.sync")]

    def op_nvvm_mma_sync(self, a, mask, ot, it, regions, op):
        """nvvm.mma.sync m16n8k16 with bf16 (or f16) pairs packed in i32 registers: 4 A, 2 B, 4 f32 C."""
        if "m = 16, n = 8, k = 16" not in str(op.attributes["shape"]) or len(a) != 10:
            raise SimtError("only nvvm.mma.sync m16n8k16 with f32 accumulators is emulated")
        fa = np.stack([np.asarray(x) for x in a[0:4]], axis=1)  # [T, 4, 2]
        fb = np.stack([np.asarray(x) for x in a[4:6]], axis=1)  # [T, 2, 2]
        fc = np.stack([np.broadcast_to(np.asarray(x, np.float32), (self.T,)) for x in a[6:10]], axis=1)
        return [_mma_m16n8k16(mask, fa, fb, fc.reshape(self.T, 2, 2), "nvvm.mma.sync").reshape(self.T, 4)]

    def op_llvm_extractvalue(self, a, mask, ot, it, regions, op):
        (pos,) = list(ir.DenseI64ArrayAttr(op.attributes["position"]))
        return [a[0][:, pos]]

    def op_vector_bitcast(self, a, mask, ot, it, regions, op):
        """Two 16-bit floats as one i32 (the mma register form): kept as the pair of values."""
        if it[0] not in ("vector<2xbf16>", "vector<2xf16>") or ot[0] != "vector<1xi32>":
            raise SimtError(f"vector.bitcast {it[0]} to {ot[0]} is not emulated")
        return [np.asarray(a[0]).reshape(self.T, 1, 2)]

    # wgmma: warpgroup matmuls reading shared memory through descriptors (sm_90a)
    def op_llvm_mlir_undef(self, a, mask, ot, it, regions, op):
        """A struct of f32 (a wgmma accumulator being assembled): NaN, so an unset field shows."""
        if not ot[0].startswith("!llvm.struct<(") or ot[0].count("f32") != ot[0].count(",") + 1:
            raise SimtError(f"llvm.mlir.undef of {ot[0]} is not emulated")
        return [np.full((self.T, ot[0].count("f32")), np.nan, np.float32)]

    def op_llvm_insertvalue(self, a, mask, ot, it, regions, op):
        """Operands: the struct, then the value (printed the other way round)."""
        (pos,) = list(ir.DenseI64ArrayAttr(op.attributes["position"]))
        out = np.array(np.broadcast_to(a[0], (self.T,) + np.shape(a[0])[1:]), np.float32)
        out[:, pos] = np.broadcast_to(np.asarray(a[1], np.float32), (self.T,))
        return [out]

    def op_nvvm_fence_proxy(self, a, mask, ot, it, regions, op):
        """The threads' shared-memory writes ordered before the async proxy's reads (wgmma's): this
        emulator's wgmma reads at issue, after the barrier the kernel puts between."""
        return []

    def op_nvvm_wgmma_fence_aligned(self, a, mask, ot, it, regions, op):
        return []

    def op_nvvm_wgmma_commit_group_sync_aligned(self, a, mask, ot, it, regions, op):
        return []

    def op_nvvm_wgmma_wait_group_sync_aligned(self, a, mask, ot, it, regions, op):
        if ir.IntegerAttr(op.attributes["group"]).value != 0:
            raise SimtError("only wgmma.wait_group 0 is emulated")
        self.in_flight.clear()
        self.wgmma_reads = None
        return []

    def op_nvvm_wgmma_mma_async(self, a, mask, ot, it, regions, op):
        """D[64, N] = A[64, 16] B[16, N] + D per warpgroup (128 consecutive threads), A and B read
        from this block's shared memory through their descriptors (128-byte swizzle only), in the
        PTX accumulator layout: thread (warp w of the group, lane 4 g + t) holds D[16 w + g + 8 h,
        8 j + 2 t + c] as register 4 j + 2 h + c."""
        shape = str(op.attributes["shape"])
        m, n, k = (int(shape.split(f"{d} = ")[1].split(",")[0].rstrip(">")) for d in "mnk")
        types = {str(op.attributes[t]).split("<")[1].rstrip(">") for t in ("typeA", "typeB")}
        if (m, k) != (64, 16) or len(types) != 1 or not types <= {"f16", "bf16"}:
            raise SimtError(f"only wgmma m64nNk16 of f16 or bf16 is emulated ({shape}, {types})")
        if any("<one>" not in str(op.attributes[s]) for s in ("scaleA", "scaleB", "scaleD")):
            raise SimtError("wgmma with scales other than one is not emulated")
        dtype = types.pop()
        a_k_major = "row" in str(op.attributes["layoutA"])  # A col: M-major (imm-trans-a)
        b_k_major = "col" in str(op.attributes["layoutB"])  # B row: N-major (imm-trans-b)
        groups = mask.reshape(-1, 128)
        if np.any(groups.any(axis=1) & ~groups.all(axis=1)):
            raise SimtError("nvvm.wgmma.mma_async reached by part of a warpgroup")
        # operands: the accumulator, then the descriptors (printed the other way round)
        acc = np.array(np.broadcast_to(np.asarray(a[0], np.float32), (self.T, n // 2)))
        desc_a = np.broadcast_to(np.asarray(a[1], np.int64), (self.T,)).reshape(-1, 128)
        desc_b = np.broadcast_to(np.asarray(a[2], np.int64), (self.T,)).reshape(-1, 128)
        lane = np.arange(128)
        warp, g, t = lane // 32, (lane % 32) // 4, lane % 4
        for group in np.nonzero(groups.all(axis=1))[0]:
            for d in (desc_a, desc_b):
                if np.any(d[group] != d[group][0]):
                    raise SimtError("a wgmma descriptor that differs across its warpgroup")
            block = group * 128 // self.nthreads
            A = self._wgmma_operand(block, int(desc_a[group][0]), 64, 16, a_k_major, dtype)
            B = self._wgmma_operand(block, int(desc_b[group][0]), n, 16, b_k_major, dtype).T
            D = A.astype(np.float64) @ B.astype(np.float64)
            rows = slice(group * 128, group * 128 + 128)
            for r in range(n // 2):
                j, h, c = r // 4, (r // 2) % 2, r % 2
                acc[rows, r] = (acc[rows, r] + D[16 * warp + g + 8 * h, 8 * j + 2 * t + c]).astype(np.float32)
        return [acc]

    def _wgmma_operand(self, block: int, desc: int, rows: int, k: int, k_major: bool, dtype: str) -> np.ndarray:
        """The [rows, k] operand (A as [M, K], B as [N, K]) a descriptor describes, read from `block`'s
        shared memory: 128-byte swizzle (bits 62-63 = 1), 16-byte chunk q of each 128-byte line L held
        at chunk q ^ (L % 8). K-major: row r's K values contiguous, rows 128 bytes apart, 8-row groups
        SBO apart; MN-major: a K row's 64 MN values contiguous (128 bytes), K rows 128 bytes apart,
        8-K-row groups SBO apart, 64-value MN blocks LBO apart."""
        if desc >> 62 != 1:
            raise SimtError("only wgmma descriptors of the 128-byte swizzle are emulated")
        start = (desc & 0x3FFF) << 4
        lbo, sbo = ((desc >> 16) & 0x3FFF) << 4, ((desc >> 32) & 0x3FFF) << 4
        r, q = np.meshgrid(np.arange(rows), np.arange(k), indexing="ij")
        if k_major:
            address = start + (r // 8) * sbo + (r % 8) * 128 + q * 2
        else:
            address = start + (r // 64) * lbo + (q // 8) * sbo + (q % 8) * 128 + (r % 64) * 2
        address = address ^ (((address >> 7) & 7) << 4)
        if address.min() < 0 or address.max() + 2 > self.shared_bytes:
            raise SimtError(f"a wgmma operand outside the {self.shared_bytes} bytes of dynamic shared memory")
        if self.wgmma_reads is None:
            self.wgmma_reads = np.zeros(self.smem.shape, bool)
        self.wgmma_reads[block, address] = self.wgmma_reads[block, address + 1] = True
        raw = self.smem[block]
        bits = raw[address].astype(np.uint16) | (raw[address + 1].astype(np.uint16) << 8)
        return bits.view(np.float16).astype(np.float32) if dtype == "f16" else from_storage(bits, "bf16")

    # cp.async: global -> shared copies that complete at a wait
    def op_nvgpu_device_async_copy(self, a, mask, ot, it, regions, op):
        # operands: dst, its indices, src, its indices (the printed form lists src first)
        dst = a[0]
        dst_idx = a[1:1 + len(dst.shape)]
        src = a[1 + len(dst.shape)]
        src_idx = a[2 + len(dst.shape):2 + len(dst.shape) + len(src.shape)]
        width = _attr_int(op, "dstElements")
        extra = a[2 + len(dst.shape) + len(src.shape):]  # srcElements: copy that many, zero-fill the rest
        src_elements = np.broadcast_to(np.asarray(extra[0] if extra else width, np.int64), (self.T,))
        if np.any(mask & (src_elements != width) & (src_elements != 0)):
            raise SimtError("a partial cp.async (0 < srcElements < dstElements) is not emulated")
        reads = mask & (src_elements == width)
        if src.kind != "global" or dst.kind != "shared":
            raise SimtError("device_async_copy copies global to shared memory")
        if width * dst.esize not in (4, 8, 16):
            raise SimtError("cp.async copies 4, 8 or 16 bytes")
        self._check_alignment(src, src_idx, width, None, mask, width * dst.esize)
        self._check_alignment(dst, dst_idx, width, None, mask, width * dst.esize)
        if self.wgmma_reads is not None:  # (its landing, at the wait, is checked as a store)
            self._check_wgmma_operands(dst, self._linear(dst, dst_idx, mask, width), mask, width, "a cp.async into")
        values = self.load(src, src_idx, reads, width)  # inputs are read-only: reading now is exact
        values = np.where(reads.reshape((-1,) + (1,) * (np.ndim(values) - 1)), values, 0)
        self.async_pending.append((dst, [np.array(i, copy=True) for i in dst_idx], values, mask.copy(), width))
        return [None]

    def op_ub_poison(self, a, mask, *r):
        return [None]

    def op_nvgpu_device_async_create_group(self, a, mask, *r):
        self.async_groups.append(self.async_pending)
        self.async_pending = []
        return [None]

    def op_nvgpu_device_async_wait(self, a, mask, ot, it, regions, op):
        keep = _attr_int(op, "numGroups") if "numGroups" in op.attributes else 0
        while len(self.async_groups) > keep:
            for dst, idx, values, copy_mask, width in self.async_groups.pop(0):
                self.store(dst, idx, values, copy_mask, width)
        return []

    # scf
    def op_scf_for(self, a, mask, ot, it, regions, op):
        lb, ub, step = (np.broadcast_to(np.asarray(v, np.int64), (self.T,)) for v in a[:3])
        carried = [np.broadcast_to(np.asarray(v), (self.T,) + np.shape(v)[1:]).copy()
                   if np.ndim(v) else np.broadcast_to(np.asarray(v), (self.T,)).copy() for v in a[3:]]
        (arg_slots, body) = regions[0]
        k = 0
        while True:
            iv = lb + k * step
            active = mask & (iv < ub)
            if not active.any():
                break
            self.env[arg_slots[0]] = iv
            for s, v in zip(arg_slots[1:], carried):
                self.env[s] = v
            yielded = self.exec_block(body, active)
            new = []
            for old, y in zip(carried, yielded):
                y = np.broadcast_to(np.asarray(y), old.shape)
                m = active.reshape((-1,) + (1,) * (old.ndim - 1))
                new.append(np.where(m, y, old).astype(old.dtype))
            carried = new
            k += 1
        return carried

    def op_scf_if(self, a, mask, ot, it, regions, op):
        cond = np.broadcast_to(np.asarray(a[0], bool), (self.T,))
        then_vals = self.exec_block(regions[0][1], mask & cond) if (mask & cond).any() or ot else []
        else_vals = []
        if regions[1] is not None and ((mask & ~cond).any() or ot):
            else_vals = self.exec_block(regions[1][1], mask & ~cond)
        if not ot:
            return []
        # a value per thread, a vector per thread: the condition broadcast over the vector
        return [np.where(cond.reshape((-1,) + (1,) * (np.ndim(t) - 1)), t, e) for t, e in zip(then_vals, else_vals)]


def _mma_m16n8k16(mask, fa, fb, fc, name: str):
    """One m16n8k16 product per warp in the PTX fragment layouts (f32 accumulation)."""
    warp_active = mask.reshape(-1, 32)
    if np.any(warp_active.any(axis=1) & ~warp_active.all(axis=1)):
        raise SimtError(f"{name} reached by part of a warp")
    fa = np.asarray(fa, np.float32).reshape(-1, 32, 4, 2)
    fb = np.asarray(fb, np.float32).reshape(-1, 32, 2, 2)
    fc = np.asarray(fc, np.float32).reshape(-1, 32, 2, 2)
    nw = fa.shape[0]
    lane = np.arange(32)
    g, t = lane // 4, lane % 4
    A = np.zeros((nw, 16, 16), np.float32)
    B = np.zeros((nw, 16, 8), np.float32)
    C = np.zeros((nw, 16, 8), np.float32)
    for reg in range(4):
        for h in range(2):
            A[:, g + 8 * (reg % 2), 2 * t + h + 8 * (reg // 2)] = fa[:, :, reg, h]
    for reg in range(2):
        for h in range(2):
            B[:, 2 * t + h + 8 * reg, g] = fb[:, :, reg, h]
            C[:, g + 8 * reg, 2 * t + h] = fc[:, :, reg, h]
    D = (np.matmul(A.astype(np.float64), B.astype(np.float64)) + C).astype(np.float32)
    out = np.zeros((nw, 32, 2, 2), np.float32)
    for reg in range(2):
        for h in range(2):
            out[:, :, reg, h] = D[:, g + 8 * reg, 2 * t + h]
    return out.reshape(-1, 2, 2)


def _symbol(attr) -> tuple[str, str]:
    text = str(attr)  # @module::@kernel
    module, kernel = text.split("::")
    return module.lstrip("@"), kernel.lstrip("@")


def find_kernel(module: ir.Module, module_name: str, kernel_name: str) -> ir.Operation:
    for op in module.body.operations:
        op = op.operation
        if op.name == "gpu.module" and ir.StringAttr(op.attributes["sym_name"]).value == module_name:
            for inner in op.regions[0].blocks[0].operations:
                inner = inner.operation
                if inner.name == "gpu.func" and ir.StringAttr(inner.attributes["sym_name"]).value == kernel_name:
                    return inner
    raise SimtError(f"kernel @{module_name}::@{kernel_name} not found (already converted to a gpu.binary?)")


def host_function(module: ir.Module, name: str | None = None) -> ir.Operation:
    for op in module.body.operations:
        op = op.operation
        if op.name == "func.func" and "mirage.num_inputs" in op.attributes:
            if name is None or ir.StringAttr(op.attributes["sym_name"]).value == name:
                return op
    raise SimtError(f"no lowered host function{' @' + name if name else ''} in the module")


def run_lowered(module: ir.Module, inputs: list[np.ndarray], name: str | None = None,
                check_races: bool = True, rows: int | None = None) -> list[np.ndarray]:
    """Runs a lowered program's host function on the CPU; returns its outputs as float32 arrays.
    `rows`: the row count of a specialization's masked leading dims (its `mirage.rows`): those
    inputs and outputs hold that many rows, and any access past them is out of bounds."""
    func = host_function(module, name)
    n_in = _attr_int(func, "mirage.num_inputs")
    block = func.regions[0].blocks[0]
    args = list(block.arguments)
    if len(inputs) != n_in:
        raise SimtError(f"expected {n_in} inputs, got {len(inputs)}")
    masked = [-1] * len(args)
    if "mirage.rows" in func.attributes:
        spec = ir.DictAttr(func.attributes["mirage.rows"])
        masked = list(ir.DenseI64ArrayAttr(spec["inputs"])) + list(ir.DenseI64ArrayAttr(spec["outputs"])) + [-1]
        if rows is None:
            raise SimtError("the function takes a row count (mirage.rows): pass rows=")
    env: dict = {}
    outputs = []
    for k, arg in enumerate(args):
        if isinstance(arg.type, ir.IndexType):
            env[arg] = rows
            continue
        t = str(arg.type)
        shape, dtype = _memref_shape(t), _elem(t)
        if masked[k] == 0:
            shape = (rows,) + shape[1:]
        if k < n_in:
            data = np.asarray(inputs[k], np.float32)
            if tuple(data.shape) != shape:
                raise SimtError(f"input {k}: shape {data.shape}, expected {shape}")
            env[arg] = MemRef("global", to_storage(data, dtype).reshape(-1).copy(), shape, dtype)
        else:
            mem = MemRef("global", to_storage(np.full(shape, np.nan, np.float32), dtype).reshape(-1), shape, dtype,
                         unwritten=True)
            env[arg] = mem
            outputs.append(mem)
    kernels: dict = {}
    zeroed: list = []
    # what an overlapping kernel may touch before its wait: the inputs the function declares constant,
    # else (its first kernel then launches plainly) every input, which no kernel of it writes
    constant = (list(ir.DenseI64ArrayAttr(func.attributes["mirage.constant_inputs"]))
                if "mirage.constant_inputs" in func.attributes else range(n_in))
    program_inputs = {id(env[args[k]]) for k in constant}
    for op in block.operations:
        op = op.operation
        if op.name == "arith.constant":
            env[op.results[0]] = ir.IntegerAttr(op.attributes["value"]).value
        elif op.name == "gpu.alloc":
            t = str(op.results[0].type)
            shape, dtype = _memref_shape(t), _elem(t)
            fill = np.full(shape, INT_POISON, np.int32) if dtype == "i32" else np.full(shape, np.nan, np.float32)
            env[op.results[0]] = MemRef("global", to_storage(fill, dtype).reshape(-1), shape, dtype, unwritten=True)
        elif op.name == "gpu.memset":
            mem, value = env[op.operands[0]], env[op.operands[1]]
            mem.data[:] = value
            mem.written[:] = True
            zeroed.append((mem, value))
        elif op.name == "gpu.launch_func":
            module_name, kernel_name = _symbol(op.attributes["kernel"])
            key = (module_name, kernel_name)
            if key not in kernels:
                kernels[key] = Kernel(find_kernel(module, module_name, kernel_name))
            # as the lowering writes it: grid (3), block (3), dynamic shared memory size (i32), arguments
            ops = list(op.operands)
            if len(ops) < 7 or str(ops[6].type) != "i32":
                raise SimtError("gpu.launch_func without a dynamic_shared_memory_size is not emulated")
            grid = [env[v] for v in ops[0:3]]
            blk = [env[v] for v in ops[3:6]]
            shared = env[ops[6]]
            kargs = [env[v] for v in ops[7:]]
            memories = [m for m in kargs if isinstance(m, MemRef)]  # the rest: a row count (index)
            for m in memories:
                m.shadow = Shadow((m.size,))
            gated = frozenset(id(m) for m in memories if id(m) not in program_inputs) \
                if "mirage.overlap" in op.attributes else frozenset()
            machine = Machine(kernels[key], grid, blk, kargs, int(shared), check_races, gated)
            machine.run()
            if machine.async_pending or machine.async_groups:
                raise SimtError(f"kernel @{kernel_name} returns with asynchronous copies never waited for")
            for m in memories:
                m.shadow = None
        elif op.name == "gpu.dealloc":
            continue
        elif op.name == "func.return":
            # the runtime sets such a buffer once and reuses it: the kernels must leave it as they found it
            for mem, value in zeroed:
                if np.any(mem.data != value):
                    raise SimtError(f"a buffer set by gpu.memset to {value} holds other values when the function returns")
        else:
            raise SimtError(f"the CPU emulator does not support '{op.name}' in a host function")
    return [from_storage(m.data, m.dtype).astype(np.float32).reshape(m.shape) for m in outputs]


__all__ = ["Kernel", "Machine", "SimtError", "from_storage", "run_lowered", "to_storage"]
