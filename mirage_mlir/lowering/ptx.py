"""gpu.module -> PTX with the upstream NVPTX path, in-process, and a ptxas check.

The upstream passes run in a fresh MLIR context on the printed gpu.module: a PassManager cannot be
run from inside a pass of another one (MLIR asserts while the outer one is executing), and the
mirage passes are such Python passes. Between conversion and serialization, the dynamic shared
memory symbol is made external: MLIR declares it `internal`, and NVPTX then "demotes" it to a
one-byte static `.shared` variable (ptxas warns of out-of-bound accesses); external, it becomes
`.extern .shared .align 16 .b8 __dynamic_shmem__0[]`, as CUDA's `extern __shared__` does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import mlir.ir as ir
from mlir.passmanager import PassManager

from ..linalg_import import nested_ops

DEFAULT_CHIP = "sm_90"
DEFAULT_FEATURES = "+ptx80"
# the PTX version a module needs beyond DEFAULT_FEATURES', by the op that needs it (drivers of CUDA 12.8
# on read PTX 8.6: only the modules that use it ask for it)
NEWER_PTX = {"nvvm.fence.sync_restrict": "+ptx86"}


class PTXError(Exception):
    pass


def conversion_pipeline(chip: str = DEFAULT_CHIP, features: str = DEFAULT_FEATURES, opt_level: int = 3) -> str:
    return (f"builtin.module(nvvm-attach-target{{chip={chip} features={features} O={opt_level}}},"
            "gpu.module(canonicalize,cse,convert-scf-to-cf,convert-nvgpu-to-nvvm,"
            "convert-gpu-to-nvvm{use-bare-ptr-memref-call-conv=true},convert-nvvm-to-llvm,canonicalize,cse),"
            "reconcile-unrealized-casts)")


def _external_dynamic_shared(op: ir.Operation, alignment: int | None = None) -> None:
    for region in op.regions:
        for block in region.blocks:
            for inner in block.operations:
                inner = inner.operation
                if inner.name == "llvm.mlir.global" and "addr_space" in inner.attributes:
                    if ir.IntegerAttr(inner.attributes["addr_space"]).value == 3 and \
                            str(inner.attributes["sym_name"]).strip('"').startswith("__dynamic_shmem__"):
                        inner.attributes["linkage"] = ir.Attribute.parse("#llvm.linkage<external>")
                        if alignment:
                            inner.attributes["alignment"] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), alignment)
                _external_dynamic_shared(inner, alignment)


@dataclass
class Binary:
    name: str  # the gpu.module's symbol
    ptx: bytes
    binary_text: str  # the `gpu.binary` op, printed


def has_grid_dependencies(chip: str) -> bool:
    """Programmatic dependent launch (griddepcontrol) exists from sm_90 on."""
    digits = "".join(c for c in chip.removeprefix("sm_") if c.isdigit())
    return int(digits or 0) >= 90


def _drop_grid_dependencies(op: ir.Operation) -> None:
    """Erases the griddepcontrol ops (blockgen.GridDependency) for a chip without them, and the L2
    prefetches before the waits (emit_copies.l2_prefetch; NVPTX selects them for sm_90): a kernel
    then needs a plain launch, which the host function's launches say (mirage-gpu-to-ptx drops their
    mirage.overlap)."""
    for inner in [o for o in nested_ops(op) if o.name in ("nvvm.griddepcontrol", "nvvm.prefetch")]:
        inner.erase()


def compile_gpu_module(gpu_module_text: str, chip: str = DEFAULT_CHIP, features: str = DEFAULT_FEATURES,
                       opt_level: int = 3) -> Binary:
    """PTX for the printed `gpu.module` op (upstream dialects only); one with warpgroup MMA for
    sm_90's architecture-specific target sm_90a (wgmma exists there only)."""
    wgmma = "nvvm.wgmma" in gpu_module_text
    chip = chip + "a" if wgmma and chip == "sm_90" else chip
    if features == DEFAULT_FEATURES:
        features = max((v for op, v in NEWER_PTX.items() if op in gpu_module_text), default=features)
    with ir.Context() as ctx, ir.Location.unknown():
        ctx.allow_unregistered_dialects = True  # discardable mirage.* attributes only
        try:
            module = ir.Module.parse("module attributes {gpu.container_module} {\n" + gpu_module_text + "\n}")
            if not has_grid_dependencies(chip):
                _drop_grid_dependencies(module.operation)
            PassManager.parse(conversion_pipeline(chip, features, opt_level)).run(module.operation)
            # a 128-byte-swizzled wgmma operand's swizzle repeats every 1024 bytes
            _external_dynamic_shared(module.operation, 1024 if wgmma else None)
            PassManager.parse("builtin.module(gpu-module-to-binary{format=isa})").run(module.operation)
        except ir.MLIRError as e:
            detail = "; ".join(str(d.message) for d in e.error_diagnostics) or str(e)
            raise PTXError(f"GPU-to-PTX conversion failed: {detail}") from None
        for op in module.body.operations:
            op = op.operation
            if op.name == "gpu.binary":
                from mlir.dialects import gpu

                name = ir.StringAttr(op.attributes["sym_name"]).value
                ptx = gpu.ObjectAttr(ir.ArrayAttr(op.attributes["objects"])[0]).object
                return Binary(name, bytes(ptx), str(op))
    raise PTXError("gpu-module-to-binary produced no gpu.binary")


def find_ptxas() -> str | None:
    for candidate in (shutil.which("ptxas"), "/usr/local/cuda/bin/ptxas", "/usr/local/bin/ptxas"):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


@dataclass
class PtxasResult:
    ok: bool
    log: str
    registers: dict[str, int]
    spills: dict[str, int]
    cubin: bytes | None = None  # the machine code for the chip (when ok)


def run_ptxas(ptx: bytes, chip: str = DEFAULT_CHIP, ptxas: str | None = None) -> PtxasResult:
    """Assembles PTX with ptxas -v (no GPU needed); reports registers and spill bytes per kernel and
    returns the cubin (for the PTX's own sm_90a target where it names one)."""
    if chip == "sm_90" and b".target sm_90a" in ptx:
        chip = "sm_90a"
    ptxas = ptxas or find_ptxas()
    if ptxas is None:
        raise PTXError("ptxas not found (PATH, /usr/local/cuda/bin)")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "k.ptx")
        with open(src, "wb") as f:
            f.write(ptx)
        out = os.path.join(tmp, "k.cubin")
        proc = subprocess.run([ptxas, "-v", "--gpu-name", chip, src, "-o", out], capture_output=True, text=True)
        cubin = None
        if os.path.exists(out):  # returned only where the assembly is clean (ok below)
            with open(out, "rb") as f:
                cubin = f.read()
    log = proc.stdout + proc.stderr
    registers, spills, current = {}, {}, None
    for line in log.splitlines():
        if "Compiling entry function" in line:
            current = line.split("'")[1]
        elif current and "Used" in line and "registers" in line:
            registers[current] = int(line.split("Used")[1].split("registers")[0])
        elif current and "spill stores" in line:
            spills[current] = int(line.split("bytes spill stores")[0].split(",")[-1])
    ok = proc.returncode == 0 and "warning" not in log.lower()
    return PtxasResult(ok, log, registers, spills, cubin if ok else None)
