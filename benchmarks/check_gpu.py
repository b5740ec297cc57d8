#!/usr/bin/env python3
"""Correctness of the compiled benchmark programs on the GPU (imports no MLIR).

For every program that benchmarks/build_gpu.py compiled (index.json), and for `--trials` fresh
random inputs each: poison the outputs and temporaries with NaN, run the kernels through
mirage_mlir.runtime on PyTorch CUDA tensors, and compare with the program evaluated in float64
(benchmarks/programs.py, on the same inputs) by ||out - ref|| / ||ref||. Passes when every element
is finite and the error is within 1e-2 (f16, bf16) or 1e-4 (f32). Prints a table; --json writes it.

  python benchmarks/check_gpu.py [--programs .device/programs] [--trials 2] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]

TOLERANCE = {"f16": 1e-2, "bf16": 1e-2, "f32": 1e-4}


def torch_dtype(torch, name: str):
    return {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32}[name]


def check_entry(torch, entry: dict, programs_dir: str, trials: int, seed: int) -> dict:
    from programs import make_inputs, reference

    from mirage_mlir.runtime import load

    program = load(os.path.join(programs_dir, entry["dir"]))
    dtype = torch_dtype(torch, entry["dtype"])
    errors, nonfinite = [], 0
    for trial in range(trials):
        gen = torch.Generator(device="cuda").manual_seed(seed + 7919 * trial)
        inputs = make_inputs(torch, entry["program"], entry["bs"], dtype, gen)
        out = program(*inputs, poison=True)
        torch.cuda.synchronize()
        ref = reference(torch, entry["program"], inputs)
        out64 = out.to(torch.float64)
        bad = int((~torch.isfinite(out64)).sum())
        nonfinite += bad
        err = float(torch.linalg.vector_norm(out64 - ref) / torch.linalg.vector_norm(ref))
        errors.append(err if bad == 0 else float("inf"))
    tol = TOLERANCE[entry["dtype"]]
    return {**entry, "kernels": len(program.kernel_specs), "rel_err": max(errors), "errors": errors,
            "nonfinite": nonfinite, "tolerance": tol, "ok": nonfinite == 0 and max(errors) <= tol}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--programs", default=os.path.join(ROOT, ".device", "programs"))
    p.add_argument("--trials", type=int, default=2)
    p.add_argument("--seed", type=int, default=None, help="default: from the clock (fresh inputs every run)")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    import torch

    seed = args.seed if args.seed is not None else int(time.time() * 1000) % (2**31)
    with open(os.path.join(args.programs, "index.json")) as f:
        index = json.load(f)
    print(f"device: {torch.cuda.get_device_name()}  seed: {seed}  programs: {len(index)}", flush=True)
    results = []
    for entry in index:
        try:
            r = check_entry(torch, entry, args.programs, args.trials, seed)
        except Exception as e:  # noqa: BLE001 - report and go on
            traceback.print_exc()
            r = {**entry, "ok": False, "error": f"{type(e).__name__}: {e}", "rel_err": float("nan"),
                 "nonfinite": -1, "kernels": -1, "tolerance": TOLERANCE[entry["dtype"]]}
        results.append(r)
        status = "ok" if r["ok"] else "FAIL"
        print(f"  {r['dir']:<36} kernels {r['kernels']:>2}  rel err {r['rel_err']:.2e}  "
              f"nonfinite {r['nonfinite']}  {status}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "seed": seed, "results": results}, f, indent=1)
    print()
    print("| program | bs | dtype | variant | kernels | max rel err | tol | result |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['program']} | {r['bs']} | {r['dtype']} | {r['variant']} | {r['kernels']} | "
              f"{r['rel_err']:.1e} | {r['tolerance']:.0e} | {'pass' if r['ok'] else 'FAIL'} |")
    failed = sum(not r["ok"] for r in results)
    print(f"\n{len(results) - failed}/{len(results)} passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
