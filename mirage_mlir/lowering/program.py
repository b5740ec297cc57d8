"""A kernel graph as GPU code: a `gpu.module` with one kernel per kernel-graph node and a host
function that launches them in order (`gpu.launch_func`), in MLIR text.

The host function takes the program's inputs and then its outputs as memrefs (destination passing);
kernel-graph tensors that are not outputs are temporaries (`gpu.alloc` / `gpu.dealloc`). Its
attributes `mirage.num_inputs` / `mirage.num_outputs` say where the outputs start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..mugraph import Graph, TensorType
from .blockgen import EARLY_COPY_WAVES, GridDependency, KernelCode, RowMask, early_copies, generate_kernel, one_block_an_sm
from .fuse_split_k import fused_pairs, generate_fused
from .emitter import ROWS_ARG, STORAGE_TYPES, memref_type
from .plan import SMS, BlockPlan, LoweringError, resident_blocks, spread_shared_bytes, target
from .predefined import predefined_block_graph


@dataclass
class Launch:
    kernel: KernelCode
    # ("input" | "output" | "temp", index), kernel inputs then outputs; ("rows", 0) last where the
    # kernel has masked dims (blockgen.RowMask)
    args: list[tuple[str, int]]
    source: str  # "graph_def" or the predefined op's name
    nodes: tuple[int, ...] = ()  # the kernel-graph nodes it runs (two: a split reduction fused, fuse_split_k)
    estimate_us: float | None = None  # the cost model's time for this kernel (mirage.estimate_us)
    # launched as a programmatic dependent of the kernel before it (its code waits for that one:
    # blockgen.GridDependency); the host function marks it {mirage.overlap}
    overlap: bool = False
    shared_bytes: int | None = None  # its dynamic shared memory, where more than the kernel's (spread_shared_bytes)


@dataclass
class LoweredProgram:
    name: str
    inputs: list[TensorType]
    outputs: list[TensorType]
    temps: list[TensorType] = field(default_factory=list)
    launches: list[Launch] = field(default_factory=list)
    zeroed: set[int] = field(default_factory=set)  # temps zeroed once, kept zero by their kernels (counters)
    # dims of inputs / outputs that run along a run-time row count up to their static size
    # (a specialization of mirage-specialize-dims): {index: dim}; the host function takes %rows last
    masked_inputs: dict[int, int] = field(default_factory=dict)
    masked_outputs: dict[int, int] = field(default_factory=dict)
    # inputs the caller declares constant (weights): no work before a call writes them, so the first
    # kernel may copy their tiles while the work before it finishes ({mirage.constant_inputs})
    constant_inputs: frozenset = frozenset()

    @property
    def module_name(self) -> str:
        return f"{self.name}_kernels"

    def gpu_module_text(self, kernel_locs: dict[str, str] | None = None) -> str:
        """The gpu.module; `kernel_locs` gives a printed location (`loc(...)`) per kernel name."""
        kernel_locs = kernel_locs or {}
        kernels = "\n".join(_indent(launch.kernel.text + (" " + kernel_locs[launch.kernel.name]
                                                          if launch.kernel.name in kernel_locs else ""), 1)
                             for launch in self.launches)
        return f"gpu.module @{self.module_name} {{\n{kernels}\n}}"

    def host_func_text(self, loc: str | None = None) -> str:
        def mtype(t: TensorType) -> str:
            return memref_type(t.shape, t.dtype)

        params = [f"%arg{k}: {mtype(t)}" for k, t in enumerate(self.inputs)]
        params += [f"%out{k}: {mtype(t)}" for k, t in enumerate(self.outputs)]
        masked = bool(self.masked_inputs or self.masked_outputs)
        params += [f"{ROWS_ARG}: index"] if masked else []
        lines = []
        consts: dict[tuple, str] = {}

        def const(value: int, kind: str = "index") -> str:
            key = (value, kind)
            if key not in consts:
                name = f"%c{value}" if kind == "index" else f"%c{value}_{kind}"
                consts[key] = name
                lines.append(f"  {name} = arith.constant {value} : {kind}")
            return consts[key]

        body = []
        for k, t in enumerate(self.temps):
            body.append(f"  %tmp{k} = gpu.alloc () : {mtype(t)}")
            if k in self.zeroed:
                body.append(f"  gpu.memset %tmp{k}, {const(0, t.dtype)} : {mtype(t)}, {t.dtype}")
        for launch in self.launches:
            kc = launch.kernel
            grid = ", ".join(const(d) for d in kc.grid)
            block = ", ".join(const(d) for d in kc.block)
            shared = const(launch.shared_bytes or kc.shared_bytes, "i32")
            operands = []
            for kind, index in launch.args:
                if kind == "rows":
                    operands.append(f"{ROWS_ARG} : index")
                    continue
                name = {"input": "%arg", "output": "%out", "temp": "%tmp"}[kind] + str(index)
                t = {"input": self.inputs, "output": self.outputs, "temp": self.temps}[kind][index]
                operands.append(f"{name} : {mtype(t)}")
            body.append(f"  gpu.launch_func @{self.module_name}::@{kc.name} blocks in ({grid}) threads in ({block}) "
                        f"dynamic_shared_memory_size {shared} args({', '.join(operands)})"
                        + _attr_dict(launch))
        for k, t in enumerate(self.temps):
            body.append(f"  gpu.dealloc %tmp{k} : {mtype(t)}")
        body.append("  return")
        attrs = (f"mirage.num_inputs = {len(self.inputs)} : i64, mirage.num_outputs = {len(self.outputs)} : i64")
        if masked:
            dims = [[self.masked_inputs.get(k, -1) for k in range(len(self.inputs))],
                     [self.masked_outputs.get(k, -1) for k in range(len(self.outputs))]]
            arrays = [f"array<i64{': ' if d else ''}{', '.join(map(str, d))}>" for d in dims]
            attrs += f", mirage.rows = {{inputs = {arrays[0]}, outputs = {arrays[1]}}}"
        if self.constant_inputs:
            attrs += f", mirage.constant_inputs = array<i64: {', '.join(map(str, sorted(self.constant_inputs)))}>"
        return (f"func.func @{self.name}({', '.join(params)}) attributes {{{attrs}}} {{\n"
                + "\n".join(lines + body) + "\n}" + (f" {loc}" if loc else ""))

    def text(self, host_loc: str | None = None, kernel_locs: dict[str, str] | None = None) -> str:
        """A complete module: the kernels and the host function (with optional printed locations)."""
        return ("module attributes {gpu.container_module} {\n" + _indent(self.gpu_module_text(kernel_locs), 1)
                + "\n" + _indent(self.host_func_text(host_loc), 1) + "\n}\n")


def fills_half_the_slots(plan: BlockPlan, sms: int = SMS) -> bool:
    """Whether a grid, launched spread (spread_shared_bytes: an SM holds at most the blocks the grid
    needs of it), fills at least half of the block slots the SMs have for it. Where a later kernel
    of the plan copies early, a call's first kernel overlaps the call before only then, as a weight
    stream that fills the GPU (lower_graph): lora's published plan, a one-block kernel before one
    that copies W, ran 2.4-3.6x slower overlapping (H200 run 96)."""
    blocks = math.prod(plan.g.grid_dim)
    shared = spread_shared_bytes(plan.shared_bytes, plan.threads, blocks, sms)
    return 2 * blocks >= resident_blocks(shared, plan.threads) * sms


def _block_graph(graph: Graph, n: int) -> Graph:
    """Kernel-graph node n's block graph (a predefined kernel op's, from predefined.py)."""
    node = graph.nodes[n]
    if node.op == "graph_def":
        return node.body
    try:
        return predefined_block_graph(node, [graph.value_types[v] for v in node.inputs])
    except LoweringError as e:
        raise LoweringError(str(e), (n,)) from None


def _attr_dict(launch: Launch) -> str:
    # exponent form: an estimate of a whole number of us printed as "16" would not parse as an f64
    attrs = ([] if launch.estimate_us is None else [f"mirage.estimate_us = {launch.estimate_us:.6e} : f64"])
    attrs += ["mirage.overlap"] if launch.overlap else []
    return f" {{{', '.join(attrs)}}}" if attrs else ""


def _indent(text: str, levels: int) -> str:
    pad = "  " * levels
    return "\n".join(pad + line if line else line for line in text.split("\n"))


@dataclass
class Arrangement:
    """How lower_graph launches a kernel graph: a kernel per start node (a split reduction and its
    fused combine are one), with its block graph and plan; per kernel, the block-graph inputs it may
    copy before its grid-dependency wait (`early`) and whether it copies any (`copies`); whether the
    first kernel overlaps the call before; and which kernels launch spread (spread_shared_bytes)."""
    starts: list[int]
    bodies: list[Graph]
    plans: list[BlockPlan]
    early: list[frozenset]
    copies: list[bool]
    first_overlaps: bool
    spread: list[bool]
    sms: int

    def launch_shared_bytes(self, j: int) -> int:
        """Kernel j's plan's shared memory as launched."""
        plan = self.plans[j]
        if not self.spread[j]:
            return plan.shared_bytes
        return spread_shared_bytes(plan.shared_bytes, plan.threads, math.prod(plan.g.grid_dim), self.sms)


def arrange_launches(graph: Graph, constant_inputs: frozenset = frozenset(), sms: int = SMS,
                     pairs: dict | None = None) -> Arrangement:
    """The launches of `graph` (lower_graph's rule; `pairs`: its fused split reductions)."""
    pairs = fused_pairs(graph) if pairs is None else pairs
    starts = [n for n in range(len(graph.nodes)) if n - 1 not in pairs]  # one launch each
    bodies = [_block_graph(graph, n) for n in starts]
    plans = [BlockPlan(body) for body in bodies]

    def early_inputs(readable) -> list[frozenset]:
        """Per kernel, its block-graph inputs that are program inputs in `readable`."""
        return [frozenset(k for k, v in enumerate(graph.nodes[n].inputs) if v in readable) for n in starts]

    early = early_inputs(constant_inputs or range(len(graph.inputs)))  # what a kernel may copy before it waits
    copies = [any(early_copies(p, early[j])) for j, p in enumerate(plans)]
    # the first kernel overlaps the call before where no later kernel copies early: such a copy, let
    # launch by the first kernel's start, would run beside the call before, unspread (session 24)
    first_overlaps = not any(copies[1:]) or (bool(constant_inputs) and copies[0]
                                             and fills_half_the_slots(plans[0], sms))
    if first_overlaps:  # then nothing but the weights is copied before a wait
        early = early_inputs(constant_inputs)
    spread = [first_overlaps] + [not c for c in copies[1:]]  # a kernel that only waits launches spread
    return Arrangement(starts, bodies, plans, early, copies, first_overlaps, spread, sms)


def lower_graph(graph: Graph, name: str = "main", fuse: bool = True, masked_inputs: dict | None = None,
                masked_outputs: dict | None = None, constant_inputs: frozenset = frozenset(),
                sms: int = SMS, chip: str = "sm_90") -> LoweredProgram:
    """Lowers a kernel graph (static shapes, f16/bf16/f32/f64) to kernels and launches; `fuse`: a
    split reduction and its combine kernel become one launch (fuse_split_k). `masked_inputs` /
    `masked_outputs` ({index: dim}): those dims may hold fewer rows at run time (blockgen.RowMask;
    rows must be computed independently along them, as mirage-specialize-dims proves).
    `constant_inputs`: program inputs no work before a call writes (weights). Every kernel after the
    first overlaps the one before (blockgen.GridDependency), copying program inputs before it waits
    where it has tiles of them to copy, else launched spread (spread_shared_bytes) and waiting first.
    The first kernel overlaps the work before the call too where no later kernel copies early
    (waiting first, or copying only constant inputs before its wait; every kernel then copies only
    constant inputs early, since a kernel's early copies may run before the first one has waited for
    whatever writes the other inputs), or, where one does, where it has constant inputs to copy and
    a grid that fills half of the block slots of the target's `sms` SMs (fills_half_the_slots); it is
    launched spread, and the last kernel lets the next call's first launch."""
    with target(chip):  # its plans use what the chip has (warpgroup MMA on sm_90)
        return lower_kernels(graph, name, fuse, masked_inputs, masked_outputs, constant_inputs, sms)


def lower_kernels(graph: Graph, name: str, fuse: bool, masked_inputs: dict | None, masked_outputs: dict | None,
                  constant_inputs: frozenset, sms: int) -> LoweredProgram:
    """lower_graph's work, for the chip of the plan.target around it."""
    outputs = list(graph.outputs)
    if len(set(outputs)) != len(outputs):
        raise LoweringError("the program returns the same tensor twice; not supported by the GPU lowering")
    for v in outputs:
        if v < len(graph.inputs):
            raise LoweringError("the program returns one of its inputs; not supported by the GPU lowering")
    for t in graph.inputs:
        if not t.is_static():
            raise LoweringError(f"argument of type {t}: the GPU lowering needs static shapes")
    if any(not 0 <= k < len(graph.inputs) for k in constant_inputs):
        raise LoweringError(f"constant inputs {sorted(constant_inputs)}: the program has {len(graph.inputs)} inputs")
    program = LoweredProgram(name, list(graph.inputs), [graph.value_types[v] for v in outputs],
                             masked_inputs=dict(masked_inputs or {}), masked_outputs=dict(masked_outputs or {}),
                             constant_inputs=frozenset(constant_inputs))
    for types, dims in ((program.inputs, program.masked_inputs), (program.outputs, program.masked_outputs)):
        for k, dim in dims.items():
            if dim != 0 or len(types[k].shape) < 2:  # the rows' stride is the static one only there
                raise LoweringError(f"a run-time row count along dim {dim} of {types[k]} (only the leading dim of "
                                    f"a tensor of two or more dims can have one)")
    masked = dict(program.masked_inputs)
    masked.update({outputs[k]: d for k, d in program.masked_outputs.items()})
    where: dict[int, tuple[str, int]] = {k: ("input", k) for k in range(len(graph.inputs))}
    for n, node in enumerate(graph.nodes):
        first = graph.first_result[n]
        for r, t in enumerate(node.types):
            v = first + r
            if v in outputs:
                where[v] = ("output", outputs.index(v))
            else:
                where[v] = ("temp", len(program.temps))
                program.temps.append(t)
        for t in [graph.value_types[v] for v in node.inputs] + list(node.types):
            if t.dtype not in STORAGE_TYPES:
                raise LoweringError(f"'{node.op}' on {t}: {t.dtype} tensors have no GPU lowering "
                                    f"(f16, bf16, f32 and f64 do)", (n,))
    pairs = fused_pairs(graph) if fuse else {}
    arrangement = arrange_launches(graph, constant_inputs, sms, pairs)
    starts, bodies, plans = arrangement.starts, arrangement.bodies, arrangement.plans
    early, spread = arrangement.early, arrangement.spread
    overlaps = [arrangement.first_overlaps] + [True] * (len(plans) - 1)

    def launch_shared(j: int, kernel: KernelCode) -> int | None:
        if not spread[j]:
            return None
        return spread_shared_bytes(kernel.shared_bytes, kernel.block[0], math.prod(kernel.grid), sms)

    def launched(j: int, kernel: KernelCode) -> tuple[KernelCode, int | None]:
        """The kernel as launch j runs it, and the launch's shared memory. ptxas is told where an SM
        holds one block: a kernel of 512 threads or more whose launch holds one an SM (unmarked,
        ptxas assumes two, 64 / 32 registers, and spills), and a kernel without a cp.async ring whose
        grid fits the SMs. Unmarked, ptxas holds lora's to 40 registers by interleaving its copies'
        loads and stores (about four memory latencies before its wait, one when marked), and stable
        attention's split combine to fewer loads in flight: marked, lora 2-4% and stable attention
        bs1 12% faster, the rest within 3% (H200 runs 186-187). (Marked, ring kernels of 128-256
        threads get other allocations, e.g. gated_mlp's 128 -> 164 registers: mixed, not marked.)"""
        shared = launch_shared(j, kernel)
        if ((kernel.block[0] >= 512 and resident_blocks(shared or kernel.shared_bytes, kernel.block[0]) == 1)
                or (not plans[j].ring and math.prod(kernel.grid) <= sms)):
            kernel = one_block_an_sm(kernel)
        return kernel, shared
    blocks = [math.prod(p.g.grid_dim) for p in plans]
    for j, (n, body) in enumerate(zip(starts, bodies)):
        triggers = overlaps[(j + 1) % len(starts)]
        # the launch before: for the first kernel, the last one (back-to-back calls)
        beside = blocks[j] + blocks[j - 1] <= sms
        waves = EARLY_COPY_WAVES if overlaps[j] and beside else (1,)
        # this grid and the next two launches (the next calls' where the program ends) fit at once
        small = sum(blocks[(j + d) % len(blocks)] for d in range(3)) <= sms
        dependency = (GridDependency(triggers, overlaps[j], early[j], waves, trigger_at_entry=small)
                      if triggers or overlaps[j] else None)
        if n in pairs:
            pair = pairs[n]
            kernel, values = generate_fused(graph, n, pair, f"{name}_k{n}", (n,), masked, dependency)
            program.zeroed.add(len(program.temps))
            rows = [("rows", 0)] if values[-1] == "rows" else []
            values = values[:-1] if rows else values
            args = [where[v] for v in values[:-1]] + [("temp", len(program.temps))] + rows
            program.temps.append(TensorType((pair.tiles,), "i32"))
            kernel, shared = launched(j, kernel)
            program.launches.append(Launch(kernel, args, "graph_def", (n, n + 1), overlap=overlaps[j],
                                           shared_bytes=shared))
            continue
        node = graph.nodes[n]
        results = [graph.first_result[n] + r for r in range(len(node.types))]
        mask = RowMask.of(masked, node.inputs, results)
        kernel = generate_kernel(body, f"{name}_k{n}", (n,), rows=mask, dependency=dependency)
        args = [where[v] for v in node.inputs] + [where[v] for v in results] + ([("rows", 0)] if mask else [])
        source = "graph_def" if node.op == "graph_def" else node.op
        kernel, shared = launched(j, kernel)
        program.launches.append(Launch(kernel, args, source, (n,), overlap=overlaps[j], shared_bytes=shared))
    return program
