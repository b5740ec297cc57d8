#!/usr/bin/env python3
"""Dynamic batch on the GPU (issue #11): one artifact per program (examples/dynamic/*_dyn_f16.mlir,
specialized at mirage-compile's default sizes) against the static-shape compile of each batch.

  python benchmarks/dynamic.py build [-o .device/dynamic] [--search-options 'time-budget=20'] [--force]  # CPU
  python benchmarks/dynamic.py run [-o .device/dynamic] [--json FILE]                          # GPU, no MLIR
  python benchmarks/dynamic.py candidates --program rmsnorm_linear   # every candidate of every specialization
                                                                     # at the row counts it serves (GPU)

`build` compiles each dynamic program once, and for every batch in STATIC_BATCHES the static program
of that batch (the dynamic one specialized at that size alone, as a static export would be) with the
same search options: at 1, 8, 16, 64 the dynamic artifact runs the same plans; at 3 and 17 it runs
the 8- and 32-row specializations on padded inputs, against plans searched for those sizes. `run` checks the dynamic artifact at every batch in CHECK_BATCHES on fresh inputs
(NaN-poisoned outputs, float64 reference, 1e-2), then times it and the static compile at the static
batches with CUDA-graph replays (inputs rotated past L2), torch.compile beside them, and prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]

PROGRAMS = ["rmsnorm_linear", "gated_mlp", "ntrans"]
STATIC_BATCHES = [1, 3, 8, 16, 17, 64]  # 3 and 17: what padding to the next specialization costs
CHECK_BATCHES = [1, 3, 8, 17, 64]
TOLERANCE = 1e-2


def build(out: str, search_options: str, force: bool) -> int:
    from mirage_mlir.context import make_context, parse_module
    from mirage_mlir.passes import pass_class

    os.makedirs(out, exist_ok=True)
    for name in PROGRAMS:
        source = os.path.join(ROOT, "examples", "dynamic", f"{name}_dyn_f16.mlir")
        jobs = [(source, os.path.join(out, f"{name}_dyn"))]
        for n in STATIC_BATCHES:
            with make_context() as ctx:
                module = parse_module(open(source).read(), ctx)
                pass_class("mirage-specialize-dims").from_options(f"sizes={n}").run(module.operation)
                static = _only_specialization(module, n)
            path = os.path.join(tempfile.mkdtemp(), f"{name}_n{n}_f16.mlir")
            with open(path, "w") as f:
                f.write(static)
            jobs.append((path, os.path.join(out, f"{name}_n{n}")))
        for src, directory in jobs:
            if os.path.exists(os.path.join(directory, "manifest.json")) and not force:
                continue  # built before (--force rebuilds)
            cmd = [sys.executable, "-m", "mirage_mlir.tools.mirage_compile", src, "-o", directory, "-q",
                   "--search-options", search_options]
            print("+", " ".join(cmd[2:]), flush=True)
            if subprocess.run(cmd).returncode:
                return 1
    return 0


def _only_specialization(module, n: int) -> str:
    """The module's specialization at n as a static program: @main over static shapes."""
    import mlir.ir as ir

    for op in list(module.body.operations):
        op = op.operation
        name = ir.StringAttr(op.attributes["sym_name"]).value
        if name == "main":
            op.erase()
        elif name == f"main__n{n}":
            op.attributes["sym_name"] = ir.StringAttr.get("main")
            del op.attributes["sym_visibility"]
    return str(module)


def run(out: str, json_path: str | None) -> int:
    import torch
    from gpu import bench, ceilings
    from programs import functions

    from mirage_mlir.runtime import load

    os.environ["MIRAGE_CACHE_DIR"] = tempfile.mkdtemp()
    ceil = ceilings(torch)
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    fns = functions(torch)
    print(f"device: {torch.cuda.get_device_name()}, read bandwidth {ceil['bandwidth'] / 1e12:.2f} TB/s, "
          f"empty kernel {ceil['empty_us']:.2f} us", flush=True)
    rows = []
    for name in PROGRAMS:
        dynamic = load(os.path.join(out, f"{name}_dyn"))

        def inputs(n, gen):
            return batch_inputs(torch, name, dynamic, n, gen)

        for n in sorted(set(CHECK_BATCHES) | set(STATIC_BATCHES)):
            gen = torch.Generator(device="cuda").manual_seed(1000 + n)
            row = {"program": name, "batch": n}
            args = inputs(n, gen)
            got = dynamic(*args, poison=True).to(torch.float64)
            ref = fns[name](*[a.to(torch.float64) for a in args])
            finite = bool(torch.isfinite(got).all())
            row["rel_err"] = float(torch.linalg.vector_norm(got - ref) / torch.linalg.vector_norm(ref)) if finite \
                else float("inf")
            row["ok"] = row["rel_err"] <= TOLERANCE
            if n in STATIC_BATCHES and row["ok"]:
                in_bytes = sum(a.numel() * 2 for a in args)
                reps = max(1, min(16, math.ceil(2 * l2 / in_bytes)))
                sets = [inputs(n, gen) for _ in range(reps)]
                static = load(os.path.join(out, f"{name}_n{n}"))
                for label, prog in (("dynamic_us", dynamic), ("static_us", static)):
                    outs = [prog(*s) for s in sets]
                    torch.cuda.synchronize()
                    row[label] = bench(lambda: [prog(*s, out=o) for s, o in zip(sets, outs)], reps)
                compiled = torch.compile(fns[name])
                for s in sets:
                    compiled(*s)
                torch.cuda.synchronize()
                row["compile_us"] = bench(lambda: [compiled(*s) for s in sets], reps)
            rows.append(row)
            print("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                  flush=True)
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), **ceil, "rows": rows}, f, indent=1)
    print_table(rows)
    return 0 if all(r["ok"] for r in rows) else 1


def batch_inputs(torch, name: str, dynamic, n: int, gen) -> list:
    """Fresh f16 inputs of program `name` (programs.py's scales) with n rows in each dynamic argument
    of the Dispatcher `dynamic`."""
    from programs import SCALES, shapes

    made = []
    for shape, scale, spec in zip(shapes(name, 1), SCALES[name], dynamic.inputs):
        shape = (n,) + tuple(shape[1:]) if spec["shape"][0] == -1 else tuple(shape)
        x = (torch.rand(shape, generator=gen, device="cuda") * 0.98 + 0.01 if scale is None
             else torch.randn(shape, generator=gen, device="cuda") * scale)
        made.append(x.to(torch.float16))
    return made


def candidates(out: str, name: str) -> int:
    """Each candidate plan of each specialization of `name`, timed at the row counts it serves."""
    import torch
    from gpu import bench
    from programs import functions

    from mirage_mlir.runtime import Program, load

    dynamic = load(os.path.join(out, f"{name}_dyn"))
    gen = torch.Generator(device="cuda").manual_seed(7)
    ref = functions(torch)[name]
    print("| specialization | candidate | rows | us | rel. error |\n|---|---|---|---|---|")
    lower = 0
    for size, function in zip(dynamic.sizes, dynamic.functions):
        count = len(Program(os.path.join(out, f"{name}_dyn"), function).candidates)
        for n in sorted({lower + 1, (lower + 1 + size) // 2, size}):
            sets = [batch_inputs(torch, name, dynamic, n, gen) for _ in range(3)]  # 3 weight sets exceed the L2
            want = ref(*[a.double() for a in sets[0]])
            for c in range(count):
                prog = load(os.path.join(out, f"{name}_dyn"), function, candidate=c)
                got = prog(*sets[0], poison=True).double()
                err = float(torch.linalg.vector_norm(got - want) / torch.linalg.vector_norm(want))
                outs = [prog(*a) for a in sets]
                us = bench(lambda: [prog(*a, out=o) for a, o in zip(sets, outs)], len(sets))
                print(f"| {function} | {c} | {n} | {us:.1f} | {err:.1e} |", flush=True)
        lower = size
    return 0


def print_table(rows: list) -> None:
    print("\n| program | batch | rel. error (f16, float64 ref.) | dynamic us | static us | dynamic / static | "
          "torch.compile us |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        t = [f"{r[k]:.1f}" if k in r else "-" for k in ("dynamic_us", "static_us", "compile_us")]
        ratio = f"{r['dynamic_us'] / r['static_us']:.2f}" if "static_us" in r else "-"
        print(f"| {r['program']} | {r['batch']} | {r['rel_err']:.1e}{'' if r['ok'] else ' FAIL'} | {t[0]} | {t[1]} | "
              f"{ratio} | {t[2]} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["build", "run", "table", "candidates"])
    p.add_argument("--program", default="rmsnorm_linear", help="candidates: the program")
    p.add_argument("-o", dest="out", default=os.path.join(ROOT, ".device", "dynamic"))
    p.add_argument("--search-options", default="time-budget=20")
    p.add_argument("--force", action="store_true", help="build: recompile what exists")
    p.add_argument("--json", default=None, help="run: write the rows; table: print the rows of this file")
    args = p.parse_args()
    if args.mode == "build":
        return build(args.out, args.search_options, args.force)
    if args.mode == "candidates":
        return candidates(args.out, args.program)
    if args.mode == "table":
        with open(args.json) as f:
            print_table(json.load(f)["rows"])
        return 0
    return run(args.out, args.json)


if __name__ == "__main__":
    sys.exit(main())
