#!/usr/bin/env python3
"""Fits the cost model's constants to GPU timings (benchmarks/gpu.py --json) and reports how well
it ranks (needs no GPU).

The fitted variants are those whose mu-graph is known: the published plans, the tile sweeps
(`c<C>_k<K>_t<T>`) and split-K plans of benchmarks/build_gpu.py (rebuilt from their name), and the
default pipeline's candidate plans (`searched_c<k>`, read from the compiled directory's
candidates.json under --programs). For each, the model's estimate
(mirage_mlir.search.cost with the chip's constants replaced; each kernel's residency held to what its
registers allow, from the ptxas report in the variant's manifest.json) is compared with the measured time; the
constants minimise the mean squared log ratio (coordinate descent over a grid). Prints, per program and
batch, the Spearman rank correlation of estimate and measurement, and whether the model's pick is within
10% of the fastest, for the current constants and the fitted ones.

  python benchmarks/calibrate.py benchmarks/results/h200_run2.json [...more runs] [--programs .device/programs]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections import defaultdict
from dataclasses import replace

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]

from mirage_mlir.plans import PLANS, VARIANTS, benchmark_inputs  # noqa: E402
from mirage_mlir.search import cost as costmod  # noqa: E402

FITTED = ("mem_latency_us", "loop_iter_us", "mma_step_us", "sm_bandwidth", "launch_us", "stream_peak",
          "row_overhead", "thread_element_us", "stage_us", "copy_chunk_us")
SWEEP = re.compile(r"c(\d+)_k(\d+)_t(\d+)$")


def variant_graph(v: dict, programs: str | None = None):
    """The mu-graph of a published, sweep, split-K or searched candidate variant, or None."""
    if "candidate" in v:
        path = os.path.join(programs or "", v["dir"], "candidates.json")
        if programs is None or not os.path.exists(path):
            return None
        from mirage_mlir.search.cache import graph_from_json

        with open(path) as f:
            return graph_from_json(json.load(f)["main"][v["candidate"]]["graph"])
    if v["variant"].startswith("sk_"):
        from build_gpu import SPLIT_K, variant_name
        from programs import shapes

        from mirage_mlir.mugraph import TensorType

        for spec in SPLIT_K.get(v["program"], []):
            if variant_name(spec) == v["variant"]:
                name, _, params = spec.partition(":")
                kwargs = {k: int(x) for k, x in (p.split("=") for p in params.split(","))}
                inputs = [TensorType(s, v["dtype"]) for s in shapes(v["program"], v["bs"])]
                return VARIANTS[name](inputs, **kwargs)
        return None
    if v["program"] not in PLANS:
        return None
    inputs = benchmark_inputs(v["program"], v["bs"], v["dtype"])
    if v["variant"] == "published":
        return PLANS[v["program"]](inputs)
    m = SWEEP.match(v["variant"])
    if m:
        col, k, threads = map(int, m.groups())
        return PLANS[v["program"]](inputs, col_tile=col, k_tile=k, threads=threads)
    return None


def variant_registers(v: dict, programs: str | None) -> dict[int, int]:
    """The registers a thread (ptxas -v, in the manifest) per kernel-graph node of the variant's
    compiled program under --programs, or {} where it is missing or was not assembled."""
    from mirage_mlir.lowering.manifest import kernel_registers

    path = os.path.join(programs or "", v["dir"], "manifest.json")
    if programs is None or not os.path.exists(path):
        return {}
    with open(path) as f:
        manifest = json.load(f)
    main = manifest["functions"]["main"]
    return kernel_registers(manifest, main["candidates"][v["candidate"]]["kernels"] if "candidate" in v
                            else main["kernels"])


def spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    if len(a) < 3 or np.std(ra) == 0 or np.std(rb) == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def estimates(points, chip) -> np.ndarray:
    return np.array([costmod.cost(g, chip, registers).total_us for g, _, _, registers in points])


def loss(points, chip) -> float:
    est = estimates(points, chip)
    measured = np.array([us for _, us, _, _ in points])
    return float(np.mean(np.log(est / measured) ** 2))


def fit(points, chip, names=FITTED):
    grids = {"mem_latency_us": np.geomspace(0.05, 5, 21), "loop_iter_us": np.geomspace(0.01, 2, 15),
             "mma_step_us": np.geomspace(0.002, 0.2, 15),
             "stream_peak": np.linspace(0.5, 1.0, 11), "row_overhead": np.geomspace(4, 256, 13),
             "sm_bandwidth": np.geomspace(2e10, 4e11, 15), "launch_us": np.linspace(0.5, 4, 8),
             "thread_element_us": np.geomspace(0.002, 0.05, 15),
             "stage_us": np.concatenate([[0.0], np.geomspace(0.02, 1.0, 12)]),
             "copy_chunk_us": np.concatenate([[0.0], np.geomspace(0.005, 0.2, 12)])}
    best = loss(points, chip)
    for _ in range(3):
        for name in names:
            for value in grids[name]:
                trial = replace(chip, **{name: float(value)})
                current = loss(points, trial)
                if current < best:
                    best, chip = current, trial
    return chip, best


def report(points, chip, title: str) -> None:
    est = estimates(points, chip)
    groups = defaultdict(list)
    for (g, us, key, _), e in zip(points, est):
        groups[key].append((e, us))
    print(f"\n{title}: mean squared log error {loss(points, chip):.3f}")
    print("| program | bs | dtype | variants | Spearman | model's pick / fastest |")
    print("|---|---|---|---|---|---|")
    rhos, good, shown = [], 0, 0
    for key, rows in sorted(groups.items()):
        if len(rows) < 3:
            continue
        shown += 1
        e, m = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
        rho = spearman(e, m)
        ratio = m[int(np.argmin(e))] / m.min()
        good += ratio <= 1.10
        if not math.isnan(rho):
            rhos.append(rho)
        print(f"| {key[0]} | {key[1]} | {key[2]} | {len(rows)} | {rho:.2f} | {ratio:.2f} |")
    print(f"mean Spearman {np.mean(rhos):.2f}; pick within 10% of the fastest in {good} of {shown}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="JSON files written by benchmarks/gpu.py --json")
    p.add_argument("--programs", default=None, help="the compiled programs (for the searched candidates' mu-graphs)")
    p.add_argument("--fix", nargs="*", default=[], metavar="NAME=VALUE",
                   help="constants held at a value measured otherwise (e.g. sm_bandwidth=31e9, stream_probe.cu)")
    args = p.parse_args()
    points = []
    for path in args.runs:
        with open(path) as f:
            run = json.load(f)
        for v in run["variants"]:
            g = variant_graph(v, args.programs)
            if g is not None and v.get("us"):
                points.append((g, v["us"], (v["program"], v["bs"], v["dtype"]), variant_registers(v, args.programs)))
    chip = costmod.chip("sm_90")
    report(points, chip, "current constants")
    fixed = dict(item.split("=") for item in args.fix)
    chip = replace(chip, **{k: float(v) for k, v in fixed.items()})
    fitted, _ = fit(points, chip, [n for n in FITTED if n not in fixed])
    report(points, fitted, "fitted constants")
    print("\nfitted: " + ", ".join(f"{n} = {getattr(fitted, n):.4g}" for n in FITTED))
    return 0


if __name__ == "__main__":
    sys.exit(main())
