"""GPU lowering: mu-graphs to gpu-dialect MLIR (one kernel per kernel-graph node), PTX, manifests.

- `lower_graph(graph, name)` -> LoweredProgram: the gpu.module text, the host function text and
  the launch plan (mirage_mlir.lowering.program), from block-graph code generation: `plan` takes
  the decisions, `blockgen` and the `emit_*` modules write the kernel text.
- `ptx` turns a gpu.module into PTX in-process and runs ptxas; `manifest` reads a lowered module's
  host functions into the JSON manifest that mirage_mlir.runtime loads; `simt` runs lowered
  kernels on the CPU (NumPy, lockstep threads, race checks) so that tests need no GPU.
"""

from .blockgen import KernelCode, generate_kernel, plan_figures, warp_tiles
from .plan import CODEGEN_VERSION, MAX_SHARED_BYTES, LoweringError, PlanFigures
from .program import Launch, LoweredProgram, lower_graph

__all__ = ["CODEGEN_VERSION", "MAX_SHARED_BYTES", "KernelCode", "Launch", "LoweredProgram", "LoweringError", "PlanFigures", "generate_kernel",
           "lower_graph", "plan_figures", "warp_tiles"]
