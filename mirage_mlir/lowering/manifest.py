"""The compiled-program directory that mirage_mlir.runtime loads: manifest.json and PTX files.

`read_program(module)` reads a module after mirage-lower-to-gpu and mirage-gpu-to-ptx: the PTX of
every gpu.binary and, for every host function (it carries `mirage.num_inputs`), its arguments,
temporaries and launches (kernel, grid, block, dynamic shared memory, arguments) in order.

manifest.json (format "mirage-gpu", version 1):
  {"format": "mirage-gpu", "version": 1, "chip": "sm_90", "entry": "main",
   "functions": {"main": {
       "inputs":      [{"shape": [2, 4096], "dtype": "f16"}, ...],
       "outputs":     [{"shape": [2, 6144], "dtype": "f16"}],
       "temporaries": [{"shape": [...], "dtype": "f32"}, {"shape": [96], "dtype": "i32", "zero": true}],
       "kernels": [{"name": "main_k0", "ptx": "main_kernels.ptx", "grid": [96, 1, 1],
                    "block": [128, 1, 1], "shared_bytes": 8976,
                    "args": [["input", 0], ["input", 1], ["output", 0]]}]}}}
A function compiled for a dynamic size (mirage-specialize-dims) has -1 for each dynamic dim and,
instead of kernels, "dispatch": {"sizes": [1, 8, ...], "functions": ["main__n1", ...], "rule": "..."}:
the runtime runs the function of the smallest size >= the call's (mirage_mlir/dispatch.py). Each
such specialization has "rows": {"inputs": [0, -1], "outputs": [0]} (per argument its dim that may
hold fewer rows than its static size, or -1): its kernels that touch those take the row count, the
argument ["rows", 0], last (an index: int64).
Kernel arguments are raw device pointers (bare-pointer ABI), in the order of "args". A temporary
marked "zero" (the counters of a fused split reduction) is zeroed once when allocated; the kernels
leave it zero. A kernel marked "overlap": true may be launched as a programmatic dependent of the
kernel before it (sm_90: its blocks start while that one finishes; its code waits for it before
touching what it wrote); launched plainly it runs the same. A function compiled with constant
inputs (mirage-lower-to-gpu constant-inputs=...) lists them under "constant_inputs": its first
kernel too is marked "overlap" (it overlaps whatever runs before the call, copying tiles of only
those inputs before it waits), so the caller must not let that work write them.
mirage-compile adds, where it assembled the PTX, "ptxas": {kernel: {"registers", "spill_bytes"}}, its
kernels named "<name>" for the functions' own PTX and "c<k>:<name>" for candidate k's files, and
"cubins": {PTX file: cubin file}, the machine code ptxas made for "chip" (the runtime loads it on a
GPU of that chip instead of compiling the PTX).
"""

from __future__ import annotations

import json
import os
import re

import mlir.ir as ir

from ..dispatch import RULE

FORMAT = "mirage-gpu"
VERSION = 1


class ManifestError(Exception):
    pass


def _memref(t: ir.Type) -> dict:
    mt = ir.MemRefType(t)
    return {"shape": [-1 if mt.is_dynamic_dim(i) else mt.get_dim_size(i) for i in range(mt.rank)],
            "dtype": str(mt.element_type)}


def _dispatch(op: ir.Operation, n_in: int) -> dict:
    """The entry of a function that dispatches to its specializations (mirage.dispatch attribute)."""
    table = ir.DictAttr(op.attributes["mirage.dispatch"])
    ftype = ir.FunctionType(ir.TypeAttr(op.attributes["function_type"]).value)
    args = [_memref(t) for t in ftype.inputs]
    sizes = list(ir.DenseI64ArrayAttr(table["sizes"]))
    return {"inputs": args[:n_in], "outputs": args[n_in:],
            "dispatch": {"sizes": sizes, "functions": [ir.FlatSymbolRefAttr(c).value for c in ir.ArrayAttr(table["callees"])],
                         "rule": RULE.format(largest=sizes[-1])}}


def _int(value: ir.Value, what: str) -> int:
    owner = value.owner
    owner = owner.operation if hasattr(owner, "operation") else owner
    if not isinstance(owner, ir.Operation) or owner.name != "arith.constant":
        raise ManifestError(f"the {what} of a launch is not a constant")
    return ir.IntegerAttr(owner.attributes["value"]).value


def read_program(module: ir.Module | ir.Operation, chip: str) -> tuple[dict, dict[str, bytes]]:
    """(manifest dict, {file name: PTX bytes}) of a lowered, PTX-compiled module."""
    from mlir.dialects import gpu

    root = module.operation if hasattr(module, "operation") else module
    files: dict[str, bytes] = {}
    ptx_of: dict[str, str] = {}
    functions: dict[str, dict] = {}
    for op in root.regions[0].blocks[0].operations:
        op = op.operation
        if op.name == "gpu.binary":
            name = ir.StringAttr(op.attributes["sym_name"]).value
            objects = ir.ArrayAttr(op.attributes["objects"])
            ptx = gpu.ObjectAttr(objects[0]).object
            files[f"{name}.ptx"] = bytes(ptx)
            ptx_of[name] = f"{name}.ptx"
        elif op.name == "gpu.module":
            raise ManifestError("the module still has a gpu.module: run mirage-gpu-to-ptx first")
    for op in root.regions[0].blocks[0].operations:
        op = op.operation
        if op.name != "func.func" or "mirage.num_inputs" not in op.attributes:
            continue
        fname = ir.StringAttr(op.attributes["sym_name"]).value
        n_in = ir.IntegerAttr(op.attributes["mirage.num_inputs"]).value
        if "mirage.dispatch" in op.attributes:
            functions[fname] = _dispatch(op, n_in)
            continue
        block = op.regions[0].blocks[0]
        where: dict = {}
        inputs, outputs, temps, kernels = [], [], [], []
        for k, arg in enumerate(block.arguments):
            if isinstance(arg.type, ir.IndexType):  # the row count of a specialization (mirage.rows)
                where[arg] = ["rows", 0]
            elif k < n_in:
                where[arg] = ["input", len(inputs)]
                inputs.append(_memref(arg.type))
            else:
                where[arg] = ["output", len(outputs)]
                outputs.append(_memref(arg.type))
        for inner in block.operations:
            inner = inner.operation
            if inner.name == "gpu.alloc":
                where[inner.results[0]] = ["temp", len(temps)]
                temps.append(_memref(inner.results[0].type))
            elif inner.name == "gpu.memset":
                target = where.get(inner.operands[0])
                if target is None or target[0] != "temp" or _int(inner.operands[1], "memset value") != 0:
                    raise ManifestError("only temporaries are set by gpu.memset, and only to zero")
                temps[target[1]]["zero"] = True
            elif inner.name == "gpu.launch_func":
                module_name, kernel = str(inner.attributes["kernel"]).split("::")
                module_name, kernel = module_name.lstrip("@"), kernel.lstrip("@")
                if module_name not in ptx_of:
                    raise ManifestError(f"no gpu.binary @{module_name} for kernel @{kernel}")
                operands = list(inner.operands)
                if len(operands) < 7 or str(operands[6].type) != "i32":
                    raise ManifestError("expected launches with a dynamic_shared_memory_size (as mirage-lower-to-gpu writes)")
                args = []
                for v in operands[7:]:
                    if v not in where:
                        raise ManifestError(f"kernel @{kernel} takes an argument that is not a buffer of the function")
                    args.append(where[v])
                kernels.append({
                    "name": kernel,
                    "ptx": ptx_of[module_name],
                    "grid": [_int(v, "grid") for v in operands[0:3]],
                    "block": [_int(v, "block") for v in operands[3:6]],
                    "shared_bytes": _int(operands[6], "dynamic shared memory size"),
                    "args": args,
                })
                if "mirage.estimate_us" in inner.attributes:
                    kernels[-1]["estimate_us"] = ir.FloatAttr(inner.attributes["mirage.estimate_us"]).value
                if "mirage.overlap" in inner.attributes:
                    kernels[-1]["overlap"] = True
            elif inner.name not in ("arith.constant", "gpu.dealloc", "func.return"):
                raise ManifestError(f"unexpected '{inner.name}' in host function @{fname}")
        functions[fname] = {"inputs": inputs, "outputs": outputs, "temporaries": temps, "kernels": kernels}
        if "mirage.rows" in op.attributes:
            rows = ir.DictAttr(op.attributes["mirage.rows"])
            functions[fname]["rows"] = {key: list(ir.DenseI64ArrayAttr(rows[key])) for key in ("inputs", "outputs")}
        if "mirage.constant_inputs" in op.attributes:
            functions[fname]["constant_inputs"] = list(ir.DenseI64ArrayAttr(op.attributes["mirage.constant_inputs"]))
    if not functions:
        raise ManifestError("no lowered host function in the module (run mirage-lower-to-gpu)")
    entry = "main" if "main" in functions else next(iter(functions))
    manifest = {"format": FORMAT, "version": VERSION, "chip": chip, "entry": entry, "functions": functions}
    return manifest, files


def candidate_index(kernels: list[dict]) -> int:
    """The search's candidate a manifest candidate's kernels come from: mirage-compile names candidate
    k's PTX files c<k>_<name> (k > 0), the search's pick's plainly."""
    match = re.match(r"c(\d+)_", kernels[0]["ptx"]) if kernels else None
    return int(match.group(1)) if match else 0


def kernel_registers(manifest: dict, kernels: list[dict]) -> dict[int, int]:
    """The registers a thread (the manifest's "ptxas" report) of one candidate's kernels, by the
    kernel-graph node each runs (a kernel is named <function>_k<n>); {} where not assembled."""
    report = manifest.get("ptxas", {})
    registers = {}
    candidate = candidate_index(kernels)
    prefix = f"c{candidate}:" if candidate else ""
    for kernel in kernels:
        entry = report.get(prefix + kernel["name"])
        node = re.search(r"_k(\d+)$", kernel["name"])
        if entry and node:
            registers[int(node.group(1))] = entry["registers"]
    return registers


def write_program(directory: str, manifest: dict, files: dict[str, bytes], extra: dict[str, str] | None = None) -> None:
    os.makedirs(directory, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)
    for name, text in (extra or {}).items():
        with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
            f.write(text)
    with open(os.path.join(directory, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
