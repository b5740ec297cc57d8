"""`mirage-gpu-to-ptx{chip=sm_90}`: every `gpu.module` becomes a `gpu.binary` holding PTX.

The upstream path (../shared/PLATFORM.md): nvvm-attach-target, then inside the gpu.module
canonicalize/cse, convert-scf-to-cf and convert-gpu-to-nvvm with bare-pointer memref arguments,
reconcile-unrealized-casts, and gpu-module-to-binary{format=isa}. It runs in a context of its own
(see mirage_mlir.lowering.ptx for why); the host functions keep their gpu.launch_func ops, which now
name kernels of the gpu.binary. sm_80 works as well (PTX ISA 8.0 covers both); it has no
programmatic dependent launch, so for it the kernels' griddepcontrol ops and the launches'
`mirage.overlap` are dropped.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import mlir.ir as ir

from mirage_mlir.linalg_import import nested_ops
from mirage_mlir.lowering.ptx import DEFAULT_CHIP, DEFAULT_FEATURES, PTXError, compile_gpu_module, has_grid_dependencies

from .registry import Pass, PassError, option


@dataclasses.dataclass
class MirageGpuToPtx(Pass):
    NAME: ClassVar[str] = "mirage-gpu-to-ptx"
    SUMMARY: ClassVar[str] = "Compile every gpu.module to PTX (a gpu.binary) with the upstream NVPTX path"

    chip: str = option(DEFAULT_CHIP, "target GPU, e.g. sm_90 (H100) or sm_80 (A100)")
    features: str = option(DEFAULT_FEATURES, "PTX features, e.g. +ptx80")
    opt_level: int = option(3, "LLVM optimization level (0-3)")

    def run(self, module) -> None:
        root = module.operation if hasattr(module, "operation") else module
        if not self.chip.startswith("sm_"):
            raise PassError(root, f"chip '{self.chip}' is not an NVIDIA target (expected sm_XX)")
        for op in list(root.regions[0].blocks[0].operations):
            op = op.operation
            if op.name != "gpu.module":
                continue
            try:
                binary = compile_gpu_module(str(op), self.chip, self.features, self.opt_level)
            except PTXError as e:
                raise PassError(op, str(e)) from None
            parsed = ir.Module.parse(binary.binary_text, context=root.context)
            for new in list(parsed.body.operations):
                new.operation.move_before(op)
            op.erase()
        if not has_grid_dependencies(self.chip):
            _plain_launches(root)


def _plain_launches(op: ir.Operation) -> None:
    """Drops `mirage.overlap` from every gpu.launch_func: kernels compiled without their grid-dependency
    waits must be launched plainly."""
    for inner in nested_ops(op):
        if inner.name == "gpu.launch_func" and "mirage.overlap" in inner.attributes:
            del inner.attributes["mirage.overlap"]
