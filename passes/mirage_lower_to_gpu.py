"""`mirage-lower-to-gpu`: every function made of `mirage_kernel` ops becomes a `gpu.module` of
kernels and a host function that launches them.

Each `mirage_kernel.graph_def` becomes one `gpu.func` generated from its block graph (see
mirage_mlir.lowering.blockgen); each predefined kernel op (matmul, elementwise, reductions,
rms_norm) first becomes a block graph of its own (mirage_mlir.lowering.predefined) and then a kernel
the same way. The function `@f(tensors) -> tensors` is replaced by `@f(input memrefs, output
memrefs)` (destination passing; attributes `mirage.num_inputs`, `mirage.num_outputs`) whose body
allocates temporaries with `gpu.alloc` and launches the kernels of `gpu.module @f_kernels` in order
with `gpu.launch_func` (grid from the block graph's grid_dim, 128 threads, dynamic shared memory).

A split reduction followed by its combine kernel (Mirage's partial sums, then a kernel adding them)
becomes one kernel whose last block per output tile combines (mirage_mlir.lowering.fuse_split_k),
unless `fuse-split-k=false`.

Kernels overlap the one before (programmatic dependent launches, `mirage.overlap` on their
`gpu.launch_func`), and a call's first kernel overlaps whatever precedes the call where no later
kernel copies weights early (waiting before it reads anything). `constant-inputs=1,2` declares
arguments that no work before a call writes (weights): the first kernel then copies its first tiles
of those while the work before finishes (`mirage.constant_inputs` on the host function; see
mirage_mlir.lowering.program.lower_graph). A call whose preceding work writes them races.

Functions tagged `mirage.reference_function` (the original programs mirage-superoptimize keeps beside
its result, see mirage_mlir/search/reference.py) are dropped: only the optimized program reaches the
GPU; the `mirage.reference` attributes on the optimized ops are ignored. Functions already lowered (they
carry `mirage.num_inputs`) and declarations are left alone. Any other op in a function body is an
error (run convert-linalg-to-mirage first; what it leaves in linalg cannot run on the GPU yet).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import mlir.ir as ir
from mlir.dialects import func as mlir_func

from mirage_mlir.bridge import BridgeError, graph_from_ops
from mirage_mlir.graph_verify import verify
from mirage_mlir.lowering import LoweringError, lower_graph
from mirage_mlir.search.cost import cost

from .mirage_specialize_dims import specialization
from .registry import OptionError, Pass, PassError, option

# mirage_mlir/search/reference.py's convention: replaced programs live in private functions tagged
# `mirage.reference_function`; a function tagged `mirage.reference` is treated the same way.
REFERENCE_ATTRS = ("mirage.reference_function", "mirage.reference")
LOWERED_ATTR = "mirage.num_inputs"


def _functions(root: ir.Operation) -> list[ir.Operation]:
    out = []
    for op in root.regions[0].blocks[0].operations:
        op = op.operation
        if op.name == "func.func":
            out.append(op)
    return out


def _symbol(op: ir.Operation) -> str:
    return ir.StringAttr(op.attributes["sym_name"]).value


@dataclasses.dataclass
class MirageLowerToGpu(Pass):
    NAME: ClassVar[str] = "mirage-lower-to-gpu"
    SUMMARY: ClassVar[str] = "Lower mirage_kernel programs to gpu.module kernels and a host function launching them"

    keep_references: bool = option(False, "keep the reference functions (mirage.reference_function) instead of dropping them")
    fuse_split_k: bool = option(True, "run a split reduction and its combine kernel as one launch "
                                      "(the last block of each output tile combines)")
    constant_inputs: str = option("", "indices of the arguments no work before a call writes (weights), e.g. "
                                      "'1,2': the first kernel copies their tiles while that work finishes")
    chip: str = option("sm_90", "the GPU the kernels are for (warpgroup MMA on sm_90 only); "
                                "mirage-gpu-to-ptx's chip")

    def __post_init__(self):
        try:
            self.constant = frozenset(int(k) for k in self.constant_inputs.split(",") if k.strip())
        except ValueError:
            raise OptionError(f"option 'constant-inputs' expects argument indices such as '1,2', "
                              f"got '{self.constant_inputs}'") from None

    def run(self, module) -> None:
        root = module.operation if hasattr(module, "operation") else module
        changed = False
        for func in _functions(root):
            if any(attr in func.attributes for attr in REFERENCE_ATTRS):
                if not self.keep_references:
                    func.erase()
                continue
            if LOWERED_ATTR in func.attributes or not len(func.regions[0].blocks):
                continue
            if any(op.operation.name == "mirage.dispatch" for op in func.regions[0].blocks[0].operations):
                self.lower_dispatch(func)
            else:
                self.lower_function(root, func)
            changed = True
        if changed:
            root.attributes["gpu.container_module"] = ir.UnitAttr.get(root.context)

    def lower_dispatch(self, func: ir.Operation) -> None:
        """A function that only dispatches to its static specializations (mirage-specialize-dims)
        becomes a declaration over memrefs, inputs then outputs, whose `mirage.dispatch` attribute
        (sizes, callees) tells the runtime which lowered specialization runs which size."""
        block = func.regions[0].blocks[0]
        ops = [op.operation for op in block.operations]
        if len(ops) != 2 or ops[0].name != "mirage.dispatch" or list(ops[1].operands) != list(ops[0].results) \
                or list(ops[0].operands) != list(block.arguments):
            raise PassError(func, "a function with mirage.dispatch must only dispatch its arguments and return "
                                  "the results (as mirage-specialize-dims writes it)")
        dispatch = ops[0]
        ftype = ir.FunctionType(ir.TypeAttr(func.attributes["function_type"]).value)
        with ir.InsertionPoint(func), func.location:
            memrefs = [ir.MemRefType.get(t.shape, t.element_type) for t in list(ftype.inputs) + list(ftype.results)]
            decl = mlir_func.FuncOp(_symbol(func), (memrefs, []), visibility="private")
            i64 = ir.IntegerType.get_signless(64)
            decl.attributes[LOWERED_ATTR] = ir.IntegerAttr.get(i64, len(ftype.inputs))
            decl.attributes["mirage.num_outputs"] = ir.IntegerAttr.get(i64, len(ftype.results))
            decl.attributes["mirage.dispatch"] = ir.DictAttr.get(
                {"sizes": dispatch.attributes["sizes"], "callees": dispatch.attributes["callees"]})
        func.erase()

    def lower_function(self, root: ir.Operation, func: ir.Operation) -> None:
        blocks = list(func.regions[0].blocks)
        if len(blocks) != 1:
            raise PassError(func, "the GPU lowering needs functions of one block")
        block = blocks[0]
        ops = [op.operation for op in block.operations]
        terminator = ops[-1]
        if terminator.name != "func.return":
            raise PassError(terminator, f"expected func.return, found '{terminator.name}'")
        body = ops[:-1]
        for op in body:
            if not op.name.startswith("mirage_kernel."):
                raise PassError(op, f"'{op.name}' cannot be lowered to the GPU: only mirage_kernel ops are "
                                    "(run convert-linalg-to-mirage first)")
        for arg in block.arguments:
            if not isinstance(arg.type, ir.RankedTensorType):
                raise PassError(func, f"argument of type {arg.type}: the GPU lowering takes ranked tensors")
        try:
            graph, _, _, index = graph_from_ops(body, list(terminator.operands), inputs=list(block.arguments))
        except BridgeError as e:
            raise PassError(e.op, str(e)) from None
        errors = verify(graph)
        if errors:
            first = errors[0]
            raise PassError(index.op_at(first.path, func), f"invalid mu-graph: {first.message}")
        name = _symbol(func)
        masked = [{}, {}]  # a specialization's dynamic dims (mirage-specialize-dims): rows counted at run time
        spec = specialization(func)
        if spec is not None:
            masked = [{k: d for k, d in enumerate(dims) if d >= 0} for dims in (spec.inputs, spec.outputs)]
        try:
            program = lower_graph(graph, name, fuse=self.fuse_split_k, masked_inputs=masked[0],
                                  masked_outputs=masked[1], constant_inputs=self.constant, chip=self.chip)
        except LoweringError as e:
            raise PassError(index.op_at(e.path, func), f"GPU lowering failed: {e}") from None
        kernel_locs = {}
        estimates = cost(graph).kernels
        for launch in program.launches:
            kernel_locs[launch.kernel.name] = str(index.op_at(launch.nodes[:1], func).location)
            launch.estimate_us = sum(estimates[n].us for n in launch.nodes)
        text = program.text(host_loc=str(func.location), kernel_locs=kernel_locs)
        try:
            lowered = ir.Module.parse(text, context=root.context)
        except ir.MLIRError as e:
            detail = "; ".join(d.message for d in e.error_diagnostics)
            raise PassError(func, f"internal error: the generated GPU code does not parse: {detail}") from None
        for op in list(lowered.body.operations):
            op.operation.move_before(func)
        func.erase()
