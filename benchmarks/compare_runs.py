#!/usr/bin/env python3
"""Compares two runs of benchmarks/gpu.py (their --json files): per variant both CUDA-graph replay
times and their ratio, then the geometric mean of the ratios per variant kind (no GPU needed).

  python benchmarks/compare_runs.py BEFORE.json AFTER.json [--only searched published ...]
"""

from __future__ import annotations

import argparse
import json
import math


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("--only", nargs="*", default=None, help="variant kinds (searched, published, converted, ...)")
    args = p.parse_args()
    runs = []
    for path in (args.before, args.after):
        with open(path) as fh:
            run = json.load(fh)
        runs.append({(v["program"], v["bs"], v["dtype"], v["variant"], v.get("candidate")): v.get("us")
                     for v in run["variants"]})
    before, after = runs
    print(f"| program | bs | dtype | variant | {args.before} us | {args.after} us | after / before |")
    print("|---|---|---|---|---|---|---|")
    ratios: dict[str, list[float]] = {}
    for key, us in before.items():
        program, bs, dtype, variant, candidate = key
        kind = variant.split("_c")[0] if candidate is not None else variant
        if args.only is not None and kind not in args.only:
            continue
        other = after.get(key)
        if us is None or other is None:
            continue
        ratios.setdefault(kind, []).append(other / us)
        print(f"| {program} | {bs} | {dtype} | {variant} | {us:.2f} | {other:.2f} | {other / us:.3f} |")
    print()
    for kind, values in sorted(ratios.items()):
        geomean = math.exp(sum(math.log(r) for r in values) / len(values))
        print(f"{kind}: geomean after / before {geomean:.3f} over {len(values)} variants")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
