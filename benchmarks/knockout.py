#!/usr/bin/env python3
"""Knockouts: a compiled program whose kernels skip reading some inputs, timed beside the original,
to see what those inputs' loads cost a kernel (session 23 did this by editing PTX by hand).

`make` copies a compiled program directory and, in every kernel of every candidate, gives the
cp.async copies (`nvgpu.device_async_copy`) whose source is one of the chosen program inputs a
source size of 0: the instruction still issues and lands its group, but reads no byte (zero fill).
With --no-mma every tensor-core MMA (wgmma, f16 mma.sync) passes its accumulator through instead (no
tensor work; wgmma's fences, commits and waits stay; mma.sync's ldmatrix loads go with it, since
nothing reads them then). With --trips N every block graph's for-loop ends after N iterations (its
prologue and tail whole: a for-loop's share of a kernel is T(all) - T(N), N = 1 the fixed part's
T - (per iteration)). Everything else (loop, barriers, copies, epilogue) stays. The
kernels' outputs are wrong by design, so `time` replays them without the correctness check, as
gpu.py times them otherwise (CUDA-graph replays over input sets that exceed twice the L2).

  python benchmarks/knockout.py make SRC DST --inputs 0            # here (MLIR bindings, ptxas)
  python benchmarks/knockout.py make SRC DST --no-mma
  python benchmarks/knockout.py make SRC DST --inputs 1 --trips 1
  python benchmarks/knockout.py time DIR[:CANDIDATE] ...           # on the GPU (no MLIR)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]

ZERO = "%knockout_zero"
FUNC = re.compile(r"^\s*gpu\.func @(\w+)\((.*)\).*\{\s*$")
COPY = re.compile(r"nvgpu\.device_async_copy %arg(\d+)\[.*\], (\d+)(, %[\w#.]+)?( \{[^}]*\})? :")
WGMMA = re.compile(r"^(\s*)(%[\w#.]+) = nvvm\.wgmma\.mma_async %[\w#.]+, %[\w#.]+, (%[\w#.]+), .* : (.*) -> .*$")
MMA_SYNC = re.compile(r"^(\s*)(%[\w#.]+) = nvgpu\.mma\.sync\(%[\w#.]+, %[\w#.]+, (%[\w#.]+)\) .* -> (.*)$")
TRUE = "%knockout_true"


def knock_out(text: str, knocked: dict[str, set[int]], mma: bool = True,
              trips: int | None = None) -> tuple[str, dict[str, int]]:
    """gpu.mlir text with the copies from kernel arguments `knocked[kernel]` reading 0 elements and,
    without `mma`, every wgmma's and f16 mma.sync's result its accumulator, and with `trips` every
    block graph's for-loop (`{mirage.forloop}`) ending after that many iterations; also how many ops
    each kernel had changed."""
    text, changed = shorten_loops(text, trips) if trips is not None else (text, {})
    out, kernel = [], None
    for line in text.splitlines():
        m = FUNC.match(line)
        if m:
            kernel = m.group(1)
            out.append(line)
            if knocked.get(kernel):
                out.append(f"      {ZERO} = arith.constant 0 : index")
            if not mma:
                out.append(f"      {TRUE} = arith.constant true")
            continue
        m = None if mma else WGMMA.match(line) or MMA_SYNC.match(line)
        if m:
            indent, result, acc, result_type = m.groups()
            select = "llvm.select" if result_type.startswith("!llvm") else "arith.select"
            out.append(f"{indent}{result} = {select} {TRUE}, {acc}, {acc} : i1, {result_type}")
            changed[kernel] = changed.get(kernel, 0) + 1
            continue
        m = COPY.search(line)
        if m and kernel and int(m.group(1)) in knocked.get(kernel, ()):
            # the source size (after dstElements) becomes 0; a masked copy's own source size is replaced
            at, end = m.end(2), m.end(3) if m.group(3) else m.end(2)
            line = line[:at] + f", {ZERO}" + line[end:]
            changed[kernel] = changed.get(kernel, 0) + 1
        out.append(line)
    return "\n".join(out) + "\n", changed


def shorten_loops(text: str, trips: int) -> tuple[str, dict[str, int]]:
    """Every `{mirage.forloop}` scf.for of gpu.mlir text running `trips` iterations (its upper bound
    a new constant; the ring's refills past the new end stay, as past the old one: empty groups);
    also how many loops each kernel had shortened."""
    lines, changed, kernel = text.splitlines(), {}, None
    opened = []  # indices of the lines that opened the regions still open
    for n, line in enumerate(lines):
        m = FUNC.match(line)
        kernel = m.group(1) if m else kernel
        closes = line.strip().startswith("}")
        if closes and opened:
            start = opened.pop()
            if line.strip().startswith("} {mirage.forloop}"):
                indent = lines[start][:len(lines[start]) - len(lines[start].lstrip())]
                bound = f"%knockout_trips{start}"
                lines[start] = re.sub(r"(scf\.for %\S+ = \S+ to )(%\S+)", rf"\g<1>{bound}", lines[start], count=1)
                lines[start] = f"{indent}{bound} = arith.constant {trips} : index\n" + lines[start]
                changed[kernel] = changed.get(kernel, 0) + 1
        if line.rstrip().endswith("{"):
            opened.append(n)
    return "\n".join(lines) + "\n", changed


def kernel_plans(spec: dict) -> list[dict]:
    """Every candidate plan of a manifest function (the plain function when it has none)."""
    return spec.get("candidates") or [spec]


def make(src: str, dst: str, inputs: set[int], mma: bool = True, trips: int | None = None) -> int:
    import mlir.ir as ir

    from mirage_mlir.lowering.ptx import compile_gpu_module, run_ptxas

    shutil.copytree(src, dst)
    with open(os.path.join(dst, "manifest.json")) as f:
        manifest = json.load(f)
    spec = manifest["functions"][manifest["entry"]]
    what = (f"no cp.async copy reads inputs {sorted(inputs)}" + ("" if mma else " and no tensor-core MMA")
            + ("" if trips is None else f" and for-loops of {trips} iterations"))
    by_ptx: dict[str, dict[str, set[int]]] = {}  # PTX file: {kernel: its arguments to knock out}
    for plan in kernel_plans(spec):
        for k in plan["kernels"]:
            args = {i for i, (kind, n) in enumerate(k["args"]) if kind == "input" and n in inputs}
            by_ptx.setdefault(k["ptx"], {})[k["name"]] = args
    report = {}
    for ptx_name, knocked in by_ptx.items():
        mlir_name = ptx_name.split("main_kernels.ptx")[0] + "gpu.mlir"
        with open(os.path.join(src, mlir_name)) as f:
            text, changed = knock_out(f.read(), knocked, mma, trips)
        if not changed:  # e.g. a plan whose first kernel reads the input with plain loads
            print(f"{dst}: {ptx_name}: {what}; left as it was")
            continue
        with ir.Context() as ctx:
            ctx.allow_unregistered_dialects = True
            module = ir.Module.parse(text)
            gpu_module = next(op.operation for op in module.body.operations if op.operation.name == "gpu.module")
            ptx = compile_gpu_module(str(gpu_module), manifest["chip"]).ptx
        with open(os.path.join(dst, mlir_name), "w") as f:
            f.write(text)
        with open(os.path.join(dst, ptx_name), "wb") as f:
            f.write(ptx)
        report[ptx_name] = {"changed": changed}
        cubin = manifest.get("cubins", {}).get(ptx_name)
        if cubin:  # the source's machine code would run in place of the new PTX: assemble it again
            assembled = run_ptxas(ptx, manifest["chip"])
            if not assembled.ok:
                print(f"{dst}: ptxas rejected the knocked-out {ptx_name}:\n{assembled.log}", file=sys.stderr)
                return 1
            with open(os.path.join(dst, cubin), "wb") as f:
                f.write(assembled.cubin)
            report[ptx_name].update(registers=assembled.registers, spills=assembled.spills)
        print(f"{dst}: {ptx_name}: {changed} ops changed (copies reading nothing, MMAs passing their accumulators)")
    if not report:
        print(f"{src}: {what}", file=sys.stderr)
        return 1
    manifest["knockout"] = {"inputs": sorted(inputs), "mma": mma, "trips": trips, "ptx": report}
    with open(os.path.join(dst, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return 0


def time_all(targets: list[str]) -> int:
    import torch
    from check_gpu import torch_dtype
    from gpu import ELEM_BYTES, replay_us
    from programs import io_bytes, make_inputs, of_directory

    from mirage_mlir.runtime import load
    from mirage_mlir.tuning import consecutive_calls

    l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 50 * 2**20)
    rows = []
    for target in targets:
        directory, _, candidate = target.partition(":")
        base = os.path.basename(directory.rstrip("/"))
        name, bs, dtype = of_directory(directory)
        with open(os.path.join(directory, "manifest.json")) as f:
            manifest = json.load(f)
        spec = manifest["functions"][manifest["entry"]]
        plan = kernel_plans(spec)[int(candidate)] if candidate else spec
        knockout = manifest.get("knockout", {"inputs": [], "ptx": {}})
        knocked = ([str(i) for i in knockout["inputs"]] + ([] if knockout.get("mma", True) else ["mma"])
                   + ([] if knockout.get("trips") is None else [f"trips={knockout['trips']}"]))
        if not any(k["ptx"] in knockout["ptx"] for k in plan["kernels"]):  # this candidate's kernels as built
            knocked = []
        reps = consecutive_calls(io_bytes(name, bs, ELEM_BYTES[dtype]), l2)
        gen = torch.Generator(device="cuda").manual_seed(len(rows))
        sets = [make_inputs(torch, name, bs, torch_dtype(torch, dtype), gen) for _ in range(reps)]
        program = load(directory, tune=False, candidate=int(candidate) if candidate else None)
        us = replay_us(torch, program, sets, reps)
        rows.append((base, candidate or "-", ",".join(knocked) or "none", us))
        print(f"  {target}: {us:.2f} us", flush=True)
    print("\n| program | candidate | inputs not read (mma: no tensor work) | us |\n|---|---|---|---|")
    for base, candidate, knocked, us in rows:
        print(f"| {base} | {candidate} | {knocked} | {us:.2f} |")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make", help="copy SRC to DST with the chosen inputs' copies reading nothing")
    m.add_argument("src")
    m.add_argument("dst")
    m.add_argument("--inputs", nargs="+", type=int, default=[], help="program input indices")
    m.add_argument("--no-mma", action="store_true", help="every wgmma and f16 mma.sync passes its accumulator through")
    m.add_argument("--trips", type=int, help="every block graph's for-loop ends after this many iterations")
    t = sub.add_parser("time", help="replay times of compiled programs, unchecked")
    t.add_argument("targets", nargs="+", metavar="DIR[:CANDIDATE]")
    args = p.parse_args()
    if args.command == "make":
        if not args.inputs and not args.no_mma and args.trips is None:
            p.error("make needs --inputs, --no-mma or --trips")
        return make(args.src, args.dst, set(args.inputs), not args.no_mma, args.trips)
    return time_all(args.targets)


if __name__ == "__main__":
    sys.exit(main())
