"""A small writer of MLIR text in SSA form, used by the GPU code generator.

Index arithmetic is folded in Python: an index operand is either a Python int (a constant) or the
name of an SSA value of type `index`, so tile offsets known at generation time never reach the IR.
Constants are hoisted to the top of the function (the entry block dominates every use).
"""

from __future__ import annotations

import struct
from contextlib import contextmanager

Index = int | str  # a constant or an SSA value name of type index

STORAGE_TYPES = ("f16", "bf16", "f32", "f64")
BYTES = {"f16": 2, "bf16": 2, "f32": 4, "f64": 8}


ROWS_ARG = "%rows"  # a kernel's run-time row count, where it has masked dims (blockgen.RowMask)


SMEM_TYPE = "memref<?xi8, #gpu.address_space<workgroup>>"  # gpu.dynamic_shared_memory


class Emitter:
    """`ctype`: the type arithmetic runs in (f32; f64 in kernels that hold f64 values)."""

    def __init__(self, indent: int = 2, ctype: str = "f32"):
        self.ctype = ctype
        self.lines: list[str] = []
        self.constants: dict[tuple, str] = {}
        self.constant_lines: list[str] = []
        self.counter = 0
        self.depth = indent
        self.base_depth = indent

    # -- names and raw text ------------------------------------------------------------------
    def fresh(self, hint: str = "v") -> str:
        self.counter += 1
        return f"%{hint}{self.counter}"

    def emit(self, line: str) -> None:
        self.lines.append("  " * self.depth + line)

    def fence_async_proxy(self) -> None:
        """Orders this thread's shared-memory writes before the async proxy's reads (wgmma's)."""
        self.emit("nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}")

    def op(self, rhs: str, hint: str = "v") -> str:
        name = self.fresh(hint)
        self.emit(f"{name} = {rhs}")
        return name

    def shared_view(self, offset: Index, type_: str, smem: str | None = None, hint: str = "view") -> str:
        """A view of the dynamic shared memory (`smem`: its value, where the kernel holds one) from byte
        `offset` on, as memref type `type_`."""
        smem = smem or self.op(f"gpu.dynamic_shared_memory : {SMEM_TYPE}", "smem")
        return self.op(f"memref.view {smem}[{self.idx(offset)}][] : {SMEM_TYPE} to {type_}", hint)

    def cluster_load(self, byte: Index, rank: Index, type_: str, align: int) -> str:
        """A load of `type_` at byte `byte` of the dynamic shared memory of this block's cluster's
        block `rank`: distributed shared memory, sm_90."""
        smem = self.op(f"gpu.dynamic_shared_memory : {SMEM_TYPE}", "smem")
        base = self.op(f"memref.extract_aligned_pointer_as_index {smem} : {SMEM_TYPE} -> index", "sbase")
        address = self.op(f"arith.index_cast {self.idx(self.add(base, byte))} : index to i32", "saddr")
        local = self.op(f"llvm.inttoptr {address} : i32 to !llvm.ptr<3>", "sptr")
        peer = self.op(f"nvvm.mapa {local}, {self.op(f'arith.index_cast {self.idx(rank)} : index to i32', 'rank')} "
                       f": !llvm.ptr<3> -> !llvm.ptr<7>", "peer")
        return self.op(f"llvm.load {peer} {{alignment = {align} : i64}} : !llvm.ptr<7> -> {type_}", "dsm")

    @contextmanager
    def region(self, header: str, footer: str = "}"):
        if header:  # none: the region continues the line before (an else)
            self.emit(header)
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            self.emit(footer)

    @contextmanager
    def guarded(self, conditions: list[str]):
        """A region that runs where every i1 of `conditions` holds (no region for none)."""
        if not conditions:
            yield
            return
        inside = conditions[0]
        for cond in conditions[1:]:
            inside = self.op(f"arith.andi {inside}, {cond} : i1", "p")
        with self.region(f"scf.if {inside} {{"):
            yield

    def text(self) -> str:
        pad = "  " * self.base_depth
        return "\n".join([pad + c for c in self.constant_lines] + self.lines)

    # -- constants ---------------------------------------------------------------------------
    def _constant(self, key: tuple, name: str, literal: str) -> str:
        if key not in self.constants:
            self.constants[key] = name
            self.constant_lines.append(f"{name} = arith.constant {literal}")
        return self.constants[key]

    def idx(self, value: Index) -> str:
        """An index operand as an SSA name (materializing constants)."""
        if isinstance(value, str):
            return value
        name = f"%c{value}" if value >= 0 else f"%c_m{-value}"
        return self._constant(("index", value), name, f"{value} : index")

    def i32(self, value: int) -> str:
        name = f"%c{value}_i32" if value >= 0 else f"%c_m{-value}_i32"
        return self._constant(("i32", value), name, f"{value} : i32")

    def i64(self, value: int) -> str:
        return self._constant(("i64", value), f"%c{value}_i64", f"{value} : i64")

    def vconst_zero(self, vtype: str) -> str:
        """A zero constant of type `vtype`: a vector (e.g. vector<2x2xf32>) or a float scalar."""
        if not vtype.startswith("vector<"):
            return self._constant(("zero", vtype), f"%zero_{vtype}", f"0.0 : {vtype}")
        name = "%zero_" + vtype[len("vector<"):-1].replace("x", "_")
        return self._constant(("vzero", vtype), name, f"dense<0.0> : {vtype}")

    def if_value(self, cond: str, vtype: str, then, otherwise: str) -> str:
        """`scf.if cond` yielding then() (emitted inside) or `otherwise`."""
        value = self.fresh("if")
        with self.region(f"{value} = scf.if {cond} -> ({vtype}) {{", "} else {"):
            self.emit(f"scf.yield {then()} : {vtype}")
        with self.region("", "}"):
            self.emit(f"scf.yield {otherwise} : {vtype}")
        return value

    def fconst(self, value: float) -> str:
        """A floating-point constant of the compute type."""
        if self.ctype == "f64":
            bits = struct.unpack(">Q", struct.pack(">d", float(value)))[0]
            return self._constant(("f64", bits), f"%cstd_{bits:016x}", f"0x{bits:016X} : f64")
        bits = struct.unpack(">I", struct.pack(">f", float(value)))[0]
        return self._constant(("f32", bits), f"%cst_{bits:08x}", f"0x{bits:08X} : f32")

    # -- folded index arithmetic -------------------------------------------------------------
    def add(self, a: Index, b: Index) -> Index:
        if isinstance(a, int) and isinstance(b, int):
            return a + b
        if a == 0:
            return b
        if b == 0:
            return a
        return self.op(f"arith.addi {self.idx(a)}, {self.idx(b)} : index", "i")

    def mul(self, a: Index, b: Index) -> Index:
        if isinstance(a, int) and isinstance(b, int):
            return a * b
        if a == 0 or b == 0:
            return 0
        if a == 1:
            return b
        if b == 1:
            return a
        return self.op(f"arith.muli {self.idx(a)}, {self.idx(b)} : index", "i")

    def div(self, a: Index, b: int) -> Index:
        if isinstance(a, int):
            return a // b
        if b == 1:
            return a
        return self.op(f"arith.divui {a}, {self.idx(b)} : index", "i")

    def rem(self, a: Index, b: int) -> Index:
        if isinstance(a, int):
            return a % b
        if b == 1:
            return 0
        return self.op(f"arith.remui {a}, {self.idx(b)} : index", "i")

    def xor(self, a: Index, b: Index) -> Index:
        if isinstance(a, int) and isinstance(b, int):
            return a ^ b
        if b == 0:
            return a
        if a == 0:
            return b
        return self.op(f"arith.xori {self.idx(a)}, {self.idx(b)} : index", "i")

    def unflatten(self, linear: Index, shape: tuple[int, ...]) -> list[Index]:
        """Row-major multi-index of `linear` in `shape` (dims of size 1 give constant 0)."""
        out: list[Index] = []
        rest = linear
        for i, d in enumerate(reversed(shape)):
            last = i == len(shape) - 1
            if d == 1:
                out.append(0)
                continue
            out.append(rest if last else self.rem(rest, d))
            rest = self.div(rest, d) if not last else rest
        return list(reversed(out))

    def linearize(self, index: list[Index], shape: tuple[int, ...]) -> Index:
        total: Index = 0
        stride = 1
        for i, d in reversed(list(zip(index, shape))):
            total = self.add(total, self.mul(i, stride))
            stride *= d
        return total

    def cmp_lt(self, a: Index, b: Index) -> str:
        return self.op(f"arith.cmpi ult, {self.idx(a)}, {self.idx(b)} : index", "p")

    def cmp_eq(self, a: Index, b: Index) -> str:
        return self.op(f"arith.cmpi eq, {self.idx(a)}, {self.idx(b)} : index", "p")

    # -- floating point (in the compute type) --------------------------------------------------------
    def fbin(self, op: str, a: str, b: str) -> str:
        return self.op(f"arith.{op} {a}, {b} : {self.ctype}", "f")

    def fdiv(self, a: str, b: str) -> str:
        """a / b in the compute type. In f32 as div.approx (afn: within 2 ulp), where the IEEE quotient
        wraps every division in a range check and a branch to a slow path (gated_mlp bs8's combine:
        16 a thread, a third of its tail's instructions, ncu run 206)."""
        if self.ctype == "f32":
            return self.op(f"arith.divf {a}, {b} fastmath<afn> : f32", "f")
        return self.fbin("divf", a, b)

    def fma(self, a: str, b: str, c: str) -> str:
        return self.op(f"math.fma {a}, {b}, {c} : {self.ctype}", "f")

    def fun(self, op: str, a: str) -> str:
        return self.op(f"{op} {a} : {self.ctype}", "f")

    def exp(self, a: str) -> str:
        """e^a. In f32 as ex2.approx of a * log2(e) (afn: two instructions; the accurate expansion took
        eight, a third of an attention iteration's: NOTES.md, run 64), within a few ulp."""
        if self.ctype == "f32":
            return self.op(f"math.exp {a} fastmath<afn> : f32", "f")
        return self.fun("math.exp", a)

    def extend(self, value: str, dtype: str) -> str:
        """A loaded scalar of storage type `dtype` in the compute type."""
        if dtype == self.ctype:
            return value
        return self.op(f"arith.extf {value} : {dtype} to {self.ctype}", "f")

    def truncate(self, value: str, dtype: str) -> str:
        """A compute-type value in storage type `dtype`."""
        if dtype == self.ctype:
            return value
        return self.op(f"arith.truncf {value} : {self.ctype} to {dtype}", "h")

    def round(self, value: str, dtype: str) -> str:
        """Rounds a value to the precision of `dtype`, keeping it in the compute type (the evaluator's
        rule: every op result is rounded to its element type)."""
        if dtype == self.ctype:
            return value
        return self.extend(self.truncate(value, dtype), dtype)

    def round_all(self, values: list[str], dtype: str) -> list[str]:
        """round() of values a thread holds in pairs (an mma fragment's column pairs): f32 to bf16 two
        at a time as one cvt.rn.bf16x2.f32 on the ALU (F2FP). LLVM converts such values one by one
        with cvt.rn.bf16.f32, on the conversion unit (F2F) at a quarter of the rate: gqa bs8's
        attention kernel took 28.3 us in bf16 against 23.7 in f16 (NOTES.md, runs 71-73). Converting
        values alone through the packed form slowed kernels whose pairs LLVM merges itself (run 73):
        pairs only."""
        if dtype != "bf16" or self.ctype != "f32":
            return [self.round(v, dtype) for v in values]
        out = []
        for lo, hi in zip(values[0::2], values[1::2]):
            # the intrinsic: LLVM would narrow a vector truncf read back lane by lane to scalars
            pair = self.op(f"nvvm.convert.f32x2.to.bf16x2 {hi}, {lo} {{rnd = #nvvm.fp_rnd_mode<rn>}} "
                           f": vector<2xbf16>", "h")
            out += [self.extend(self.op(f"vector.extract {pair}[{k}] : bf16 from vector<2xbf16>", "h"), dtype)
                    for k in range(2)]
        return out + [self.round(v, dtype) for v in values[len(out):]]


def memref_type(shape: tuple[int, ...], dtype: str, space: str | None = None) -> str:
    dims = "x".join(str(d) for d in shape)
    suffix = f", #gpu.address_space<{space}>" if space else ""
    return f"memref<{dims}x{dtype}{suffix}>"


def indices(em: Emitter, index: list[Index]) -> str:
    return ", ".join(em.idx(i) for i in index)
