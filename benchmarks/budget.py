#!/usr/bin/env python3
"""Whether mirage-superoptimize's time budget bounds the whole pass (issue #10): every benchmark
program (examples/*_f16.mlir) converted and searched on a cold cache with `time-budget=B`, the pass's
wall time against B (target: within 10%), and what each group became (kernels of the verified pick,
or the original kept; "cut short": the budget stopped a verification). Prints a table.

  python benchmarks/budget.py [--budget 20] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=float, default=20.0)
    p.add_argument("--only", nargs="*", default=None)
    args = p.parse_args()
    os.environ["MIRAGE_CACHE_DIR"] = tempfile.mkdtemp()  # cold
    from mirage_mlir.context import make_context, parse_module
    from mirage_mlir.passes import pass_class

    print(f"| program | pass seconds | / budget {args.budget:g} s | groups | result |")
    print("|---|---|---|---|---|")
    worst = 0.0
    for path in sorted((ROOT / "examples").glob("*_f16.mlir")):
        if args.only and not any(path.name.startswith(n) for n in args.only):
            continue
        ctx = make_context()
        with ctx:
            module = parse_module(path.read_text(), ctx)
            pass_class("convert-linalg-to-mirage").from_options("").run(module.operation)
            search = pass_class("mirage-superoptimize").from_options(f"time-budget={args.budget} remarks=false")
            t = time.perf_counter()
            search.run(module.operation)
            seconds = time.perf_counter() - t
        groups = max(1, len(search.results))
        ratio = seconds / (args.budget * groups)
        worst = max(worst, ratio)
        became = ", ".join(("original" if r.graph is None else f"{len(r.graph.nodes)} kernels")
                           + (" (cut short)" if r.stats.cut_short else "") for _, r in search.results)
        print(f"| {path.stem} | {seconds:.1f} | {ratio:.2f} | {groups} | {became} |", flush=True)
    print(f"worst: {worst:.2f} of the budget per group (target <= 1.10)")
    return 0 if worst <= 1.10 else 1


if __name__ == "__main__":
    sys.exit(main())
