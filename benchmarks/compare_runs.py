#!/usr/bin/env python3
"""Compares two runs of benchmarks/gpu.py (their --json files): per variant both CUDA-graph replay
times and their ratio, then the geometric mean of the ratios per variant kind (no GPU needed).

  python benchmarks/compare_runs.py BEFORE.json AFTER.json [--only searched published ...]
  python benchmarks/compare_runs.py RUN.json --suffix _ch4   (within one run: each variant against its
      experiment form, e.g. sk_c64_t128 against sk_c64_t128_ch4, searched_c3 against searched_ch4_c3)
"""

from __future__ import annotations

import argparse
import json
import math


def variant_without(variant: str, candidate: int | None, suffix: str) -> str:
    """searched_ch4_c3 -> searched_c3 and sk_c64_t128_ch4 -> sk_c64_t128 for the suffix _ch4."""
    return variant.replace(suffix + "_c", "_c", 1) if candidate is not None else variant.removesuffix(suffix)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("before")
    p.add_argument("after", nargs="?", help="(without --suffix)")
    p.add_argument("--suffix", help="compare within BEFORE each variant with the one named with this suffix")
    p.add_argument("--only", nargs="*", default=None, help="variant kinds (searched, published, converted, ...)")
    args = p.parse_args()
    if (args.after is None) == (args.suffix is None):
        p.error("give AFTER.json or --suffix")
    runs = []
    for path in (args.before, args.after or args.before):
        with open(path) as fh:
            run = json.load(fh)
        runs.append({(v["program"], v["bs"], v["dtype"], v["variant"], v.get("candidate")): v.get("us")
                     for v in run["variants"]})
    before, after = runs
    if args.suffix:  # the experiment's forms, keyed as the variants they are forms of
        after = {(*key[:3], variant_without(key[3], key[4], args.suffix), key[4]): us for key, us in after.items()
                 if args.suffix in key[3]}
        before = {key: us for key, us in before.items() if args.suffix not in key[3]}
    print(f"| program | bs | dtype | variant | {args.before} us | {args.after or args.suffix} us | after / before |")
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
