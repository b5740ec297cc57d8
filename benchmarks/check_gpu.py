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

    program = load(os.path.join(programs_dir, entry["dir"]), candidate=entry.get("candidate"))
    dtype = torch_dtype(torch, entry["dtype"])
    errors, nonfinite = [], 0
    for trial in range(trials):
        gen = torch.Generator(device="cuda").manual_seed(seed + 7919 * trial)
        inputs = make_inputs(torch, entry["program"], entry["bs"], dtype, gen)
        # the weights were written just now: a program compiled with them constant must not overlap that
        torch.cuda.synchronize()
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


def runtime_api(torch, programs_dir: str, index: list) -> list[str]:
    """The runtime's other entry points on one program: CuPy arrays, a generic DLPack array, out=,
    and the argument errors. Returns failures."""
    import cupy
    import numpy
    from programs import make_inputs

    from mirage_mlir.runtime import load

    failures = []
    entry = next(e for e in index if e["program"] == "gated_mlp" and e["bs"] == 1 and e["dtype"] == "f16"
                 and e["variant"] == "published")
    program = load(os.path.join(programs_dir, entry["dir"]))
    gen = torch.Generator(device="cuda").manual_seed(1)
    inputs = make_inputs(torch, "gated_mlp", 1, torch.float16, gen)
    expected = program(*inputs)
    torch.cuda.synchronize()

    class DLPackOnly:  # an array known only through the DLPack protocol
        def __init__(self, t):
            self.t, self.shape, self.dtype = t, tuple(t.shape), numpy.dtype("float16")

        def __dlpack__(self, **kw):
            return self.t.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self.t.__dlpack_device__()

    for label, args in (("cupy", [cupy.from_dlpack(x) for x in inputs]), ("dlpack", [DLPackOnly(x) for x in inputs])):
        got = program(*args)
        cupy.cuda.get_current_stream().synchronize()
        got = torch.from_dlpack(got)
        if not torch.equal(got, expected):
            failures.append(f"{label} inputs give a different result")
    out = torch.empty_like(expected).fill_(float("nan"))
    program(*inputs, out=out)
    torch.cuda.synchronize()
    if not torch.equal(out, expected):
        failures.append("out= gives a different result")
    for args, message in (((inputs[0][:, :64].contiguous(), *inputs[1:]), "argument 0 must be (8, 4096) f16"),
                          ((inputs[0].float(), *inputs[1:]), "argument 0 must be (8, 4096) f16"),
                          ((inputs[0].cpu(), *inputs[1:]), "not on a CUDA device"),
                          ((inputs[0].t().contiguous().t(), *inputs[1:]), "C-contiguous")):
        try:
            program(*args)
            failures.append(f"no error: {message}")
        except ValueError as e:
            if message not in str(e):
                failures.append(f"unexpected message {e!r} (expected {message!r})")
    return failures


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
    if any(e["dir"] == "gated_mlp_bs1_f16_published" for e in index):
        api = runtime_api(torch, args.programs, index)
        print("runtime API (CuPy arrays, DLPack, out=, argument errors): " + ("ok" if not api else "; ".join(api)))
        failed += len(api)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
