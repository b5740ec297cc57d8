"""Search benchmark: for each program of ../shared/BENCHMARKS.md at bs 1 and 8 (f16), the search time with
a cold cache, states explored, candidates verified, kernels in the result, the cost-model estimate,
and the same estimate for Mirage's published plan written by hand (mirage_mlir/plans.py).

    python benchmarks/search.py [--budget 40] [--only gqa,lora] [--bs 1,8] [--small]

Inputs are the kernel graphs convert-linalg-to-mirage produces (mirage_mlir/search/programs.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from mirage_mlir import plans  # noqa: E402
from mirage_mlir.search import SearchOptions, cost, programs, superoptimize  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--budget", type=float, default=40.0, help="search seconds per program (verification after)")
    p.add_argument("--only", default=",".join(programs.NAMES))
    p.add_argument("--bs", default="1,8")
    p.add_argument("--small", action="store_true", help="the small test shapes instead")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    os.environ["MIRAGE_CACHE_DIR"] = tempfile.mkdtemp(prefix="mirage-bench-")  # cold cache
    rows = []
    sizes = ["small"] if args.small else [int(b) for b in args.bs.split(",")]
    for name in args.only.split(","):
        for bs in sizes:
            inputs = programs.small_inputs(name, "f16") if bs == "small" else programs.full_inputs(name, bs, "f16")
            reference = programs.reference(name, inputs)
            t0 = time.perf_counter()
            result = superoptimize(reference, SearchOptions(time_budget=args.budget, workers=args.workers))
            wall = time.perf_counter() - t0
            plan_us = cost.cost(plans.PLANS[name](inputs)).total_us
            s = result.stats
            ours = result.cost.total_us if result.cost else float("nan")
            kernels = len(result.graph.nodes) if result.graph is not None else 0
            rows.append((name, bs, wall, s.search_s, s.verify_s, s.states, s.verified, s.candidates, kernels, ours,
                         plan_us, result.reference_cost.total_us,
                         result.verification.bound if result.verification else float("nan")))
            print(f"{name} bs={bs}: {wall:.1f}s, {kernels} kernels, {ours:.2f}us (plan {plan_us:.2f}us)",
                  file=sys.stderr, flush=True)
    print("| program | bs | search+verify s | search s | verify s | states | verified/candidates | kernels | "
          "ours (us) | Mirage plan (us) | unoptimized (us) | FP bound |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.1f} | {r[4]:.1f} | {r[5]} | {r[6]}/{r[7]} | {r[8]} | "
              f"{r[9]:.2f} | {r[10]:.2f} | {r[11]:.2f} | {r[12]:.1e} |")


if __name__ == "__main__":
    main()
