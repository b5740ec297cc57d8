"""A kernel graph as GPU code: a `gpu.module` with one kernel per kernel-graph node and a host
function that launches them in order (`gpu.launch_func`), in MLIR text.

The host function takes the program's inputs and then its outputs as memrefs (destination passing);
kernel-graph tensors that are not outputs are temporaries (`gpu.alloc` / `gpu.dealloc`). Its
attributes `mirage.num_inputs` / `mirage.num_outputs` say where the outputs start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..mugraph import Graph, TensorType
from .blockgen import KernelCode, generate_kernel
from .fuse_split_k import fused_pairs, generate_fused
from .emitter import STORAGE_TYPES, memref_type
from .plan import LoweringError
from .predefined import predefined_block_graph


@dataclass
class Launch:
    kernel: KernelCode
    args: list[tuple[str, int]]  # ("input" | "output" | "temp", index), kernel inputs then outputs
    source: str  # "graph_def" or the predefined op's name
    nodes: tuple[int, ...] = ()  # the kernel-graph nodes it runs (two: a split reduction fused, fuse_split_k)
    estimate_us: float | None = None  # the cost model's time for this kernel (mirage.estimate_us)


@dataclass
class LoweredProgram:
    name: str
    inputs: list[TensorType]
    outputs: list[TensorType]
    temps: list[TensorType] = field(default_factory=list)
    launches: list[Launch] = field(default_factory=list)
    zeroed: set[int] = field(default_factory=set)  # temps zeroed once, kept zero by their kernels (counters)

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
            shared = const(kc.shared_bytes, "i32")
            operands = []
            for kind, index in launch.args:
                name = {"input": "%arg", "output": "%out", "temp": "%tmp"}[kind] + str(index)
                t = {"input": self.inputs, "output": self.outputs, "temp": self.temps}[kind][index]
                operands.append(f"{name} : {mtype(t)}")
            body.append(f"  gpu.launch_func @{self.module_name}::@{kc.name} blocks in ({grid}) threads in ({block}) "
                        f"dynamic_shared_memory_size {shared} args({', '.join(operands)})"
                        + ("" if launch.estimate_us is None else f" {{mirage.estimate_us = {launch.estimate_us:.6g} : f64}}"))
        for k, t in enumerate(self.temps):
            body.append(f"  gpu.dealloc %tmp{k} : {mtype(t)}")
        body.append("  return")
        attrs = (f"mirage.num_inputs = {len(self.inputs)} : i64, mirage.num_outputs = {len(self.outputs)} : i64")
        return (f"func.func @{self.name}({', '.join(params)}) attributes {{{attrs}}} {{\n"
                + "\n".join(lines + body) + "\n}" + (f" {loc}" if loc else ""))

    def text(self, host_loc: str | None = None, kernel_locs: dict[str, str] | None = None) -> str:
        """A complete module: the kernels and the host function (with optional printed locations)."""
        return ("module attributes {gpu.container_module} {\n" + _indent(self.gpu_module_text(kernel_locs), 1)
                + "\n" + _indent(self.host_func_text(host_loc), 1) + "\n}\n")


def _indent(text: str, levels: int) -> str:
    pad = "  " * levels
    return "\n".join(pad + line if line else line for line in text.split("\n"))


def lower_graph(graph: Graph, name: str = "main", fuse: bool = True) -> LoweredProgram:
    """Lowers a kernel graph (static shapes, f16/bf16/f32/f64) to kernels and launches; `fuse`: a
    split reduction and its combine kernel become one launch (fuse_split_k)."""
    outputs = list(graph.outputs)
    if len(set(outputs)) != len(outputs):
        raise LoweringError("the program returns the same tensor twice; not supported by the GPU lowering")
    for v in outputs:
        if v < len(graph.inputs):
            raise LoweringError("the program returns one of its inputs; not supported by the GPU lowering")
    for t in graph.inputs:
        if not t.is_static():
            raise LoweringError(f"argument of type {t}: the GPU lowering needs static shapes")
    program = LoweredProgram(name, list(graph.inputs), [graph.value_types[v] for v in outputs])
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
    n = 0
    while n < len(graph.nodes):
        if n in pairs:
            pair = pairs[n]
            kernel, values = generate_fused(graph, n, pair, f"{name}_k{n}", (n,))
            program.zeroed.add(len(program.temps))
            args = [where[v] for v in values[:-1]] + [("temp", len(program.temps))]
            program.temps.append(TensorType((pair.tiles,), "i32"))
            program.launches.append(Launch(kernel, args, "graph_def", (n, n + 1)))
            n += 2
            continue
        node = graph.nodes[n]
        first = graph.first_result[n]
        if node.op == "graph_def":
            body, source = node.body, "graph_def"
        else:
            try:
                body = predefined_block_graph(node, [graph.value_types[v] for v in node.inputs])
            except LoweringError as e:
                raise LoweringError(str(e), (n,)) from None
            source = node.op
        kernel = generate_kernel(body, f"{name}_k{n}", (n,))
        args = [where[v] for v in node.inputs] + [where[first + r] for r in range(len(node.types))]
        program.launches.append(Launch(kernel, args, source, (n,)))
        n += 1
    return program
