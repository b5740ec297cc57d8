#!/usr/bin/env python3
"""GPU timings of the compiled benchmark programs beside PyTorch eager and torch.compile.

For each program and bs (fp16, the benchmark set's type): check ours first (NaN-poisoned outputs,
float64 reference, as check_gpu.py does; a variant that fails is not timed), then time ours, eager and
torch.compile (default mode) in the same run, each as CUDA-graph replays
(triton.testing.do_bench_cudagraph, median). Each replay runs the program on R input sets in turn
(R chosen so that the inputs exceed twice the L2 cache), so no run reads its inputs from L2; times
are per program call. Prints the table last: times in microseconds, speedups (>1: ours faster),
and the bandwidth floor ((input + output bytes) / 2.97 TB/s) as a fraction of our time.

  python benchmarks/gpu.py [--programs .device/programs] [--variants published converted] [--json t.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]

BANDWIDTH = 2.97e12  # bytes/s: the read bandwidth measured on the H100 (../shared/BENCHMARKS.md)


def bench(fn, reps: int) -> float:
    """Median microseconds of one call of fn() (which makes `reps` program calls)."""
    from triton.testing import do_bench_cudagraph

    return do_bench_cudagraph(fn, rep=50, return_mode="median") * 1e3 / reps


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--programs", default=os.path.join(ROOT, ".device", "programs"))
    p.add_argument("--variants", nargs="*", default=["published", "converted", "searched"])
    p.add_argument("--only", nargs="*", default=None, help="program names")
    p.add_argument("--bs", nargs="*", type=int, default=[1, 8])
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    import torch
    from check_gpu import check_entry
    from programs import NAMES, functions, io_bytes, make_inputs

    from mirage_mlir.runtime import load

    with open(os.path.join(args.programs, "index.json")) as f:
        index = {e["dir"]: e for e in json.load(f)}
    props = torch.cuda.get_device_properties(0)
    l2 = getattr(props, "L2_cache_size", 50 * 2**20)
    print(f"device: {torch.cuda.get_device_name()}, L2 {l2 / 2**20:.0f} MiB, torch {torch.__version__}", flush=True)
    fns = functions(torch)
    rows = []
    seed = int(time.time()) % 100000
    for name in args.only or NAMES:
        for bs in args.bs:
            floor_us = io_bytes(name, bs, 2) / BANDWIDTH * 1e6
            in_bytes = io_bytes(name, bs, 2)
            reps = max(1, min(16, math.ceil(2 * l2 / in_bytes)))
            gen = torch.Generator(device="cuda").manual_seed(seed + bs)
            sets = [make_inputs(torch, name, bs, torch.float16, gen) for _ in range(reps)]
            row = {"program": name, "bs": bs, "floor_us": floor_us, "reps": reps}
            f = fns[name]
            row["eager_us"] = bench(lambda: [f(*s) for s in sets], reps)
            if not args.no_compile:
                t0 = time.time()
                cf = torch.compile(f)
                for s in sets:
                    cf(*s)
                torch.cuda.synchronize()
                row["compile_s"] = time.time() - t0
                row["compile_us"] = bench(lambda: [cf(*s) for s in sets], reps)
            for variant in args.variants:
                d = f"{name}_bs{bs}_f16_{variant}"
                if d not in index:
                    continue
                check = check_entry(torch, index[d], args.programs, 1, seed + 13)
                row[f"{variant}_err"] = check["rel_err"]
                if not check["ok"]:
                    print(f"  {d}: FAILED the check (rel err {check['rel_err']:.2e}); not timed", flush=True)
                    continue
                prog = load(os.path.join(args.programs, d))
                outs = [prog(*s) for s in sets]
                torch.cuda.synchronize()
                row[f"{variant}_us"] = bench(lambda: [prog(*s, out=o) for s, o in zip(sets, outs)], reps)
                row[f"{variant}_us_again"] = bench(lambda: [prog(*s, out=o) for s, o in zip(sets, outs)], reps)
            rows.append(row)
            print("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                  flush=True)
            del sets
            torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, fh, indent=1)

    def fmt(x):
        return "-" if x is None else (f"{x:.1f}" if x >= 10 else f"{x:.2f}")

    print()
    head = "| program | bs | floor | eager | torch.compile |"
    sep = "|---|---|---|---|---|"
    for v in args.variants:
        head += f" ours ({v}) | eager/ours | compile/ours | floor/ours |"
        sep += "---|---|---|---|"
    print("Times in microseconds (median of CUDA-graph replays); ratios > 1: ours faster; floor/ours: "
          "fraction of the bandwidth floor reached.")
    print(head)
    print(sep)
    for r in rows:
        line = f"| {r['program']} | {r['bs']} | {fmt(r['floor_us'])} | {fmt(r['eager_us'])} | {fmt(r.get('compile_us'))} |"
        for v in args.variants:
            ours = r.get(f"{v}_us")
            if ours is None:
                line += " fail | - | - | - |"
                continue
            comp = r.get("compile_us")
            line += (f" {fmt(ours)} | {r['eager_us'] / ours:.2f} | "
                     f"{(comp / ours if comp else float('nan')):.2f} | {100 * r['floor_us'] / ours:.0f}% |")
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
