#!/usr/bin/env python3
"""Fits the cost model's constants to GPU timings (benchmarks/gpu.py --json) and reports how well
it ranks (needs no GPU).

The fitted variants are those whose mu-graph is known: the published plans, the tile sweeps
(`c<C>_k<K>_t<T>`) and split-K plans of benchmarks/build_gpu.py (rebuilt from their name), and the
default pipeline's candidate plans (`searched_c<k>`, read from the compiled directory's
candidates.json under the run's programs directory). For each, the model's estimate
(mirage_mlir.search.cost with the chip's constants replaced; each kernel's residency held to what its
registers allow, from the ptxas report in the variant's manifest.json) is compared with the measured time.

The search explores with the chip's own constants (search.cost.CHIPS); mirage-compile ranks the
verified candidates it keeps with constants fitted here (search.cost.RANKING), which the report shows
beside the search's. The model exists to rank plans, so by default the constants maximise how well it
ranks: the mean, over
program / batch / dtype groups, of the Spearman rank correlation between estimate and measurement, plus
0.01 for each group whose estimated-fastest plan is within 10% of the measured fastest, less the mean
squared log ratio of estimate to measurement (coordinate ascent over a grid of each constant).
`--objective log` minimises the mean squared log ratio alone (absolute times). Prints, per group, the
Spearman correlation and the model's pick against the fastest, for the search's constants, the
ranking constants and the fitted ones (fitted from the search's constants in the ranking's form), and
the same for `--holdout` runs the fit did not see (`--by-program`: each program ranked with constants
fitted to the others'). Fitted constants go into cost.RANKING: they order the candidates the search
kept, not the search, since a score on past runs does not show which plans they would make the search keep
(a search steered by such fits kept slower plans: benchmarks/NOTES.md, runs 118-119).

  python benchmarks/calibrate.py RUN.json[:PROGRAMS] [...] [--programs DIR] [--holdout RUN.json[:PROGRAMS] ...]
  python benchmarks/calibrate.py RUN.json:PROGRAMS --candidates --detail PROGRAM  (no fit: each variant's
      measured and estimated time, and per kernel the model's terms before it combines them)

A run's PROGRAMS directory (the build it timed) defaults to --programs.
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
from typing import NamedTuple

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]

from mirage_mlir.plans import PLANS, VARIANTS, benchmark_inputs  # noqa: E402
from mirage_mlir.search import cost as costmod  # noqa: E402
from programs import WEIGHTS  # noqa: E402

SWEEP = re.compile(r"c(\d+)_k(\d+)_t(\d+)$")


class Point(NamedTuple):
    """One timed variant: its mu-graph, measured us, group key (program, bs, dtype[, run]), a thread's
    registers per kernel-graph node (ptxas), the inputs build_gpu.py declares constant, its name."""

    graph: object
    us: float
    key: tuple
    registers: dict
    weights: frozenset
    variant: str


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


def average_ranks(x) -> np.ndarray:
    """0-based ranks of x, tied values sharing the mean of their ranks (as Spearman's rho is defined:
    two plans the model prices alike are not ordered by the order they were listed in)."""
    x = np.asarray(x)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    for value in np.unique(x):
        tied = x == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a, b) -> float:
    ra, rb = average_ranks(a), average_ranks(b)
    if len(a) < 3 or np.std(ra) == 0 or np.std(rb) == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def estimates(points, chip) -> np.ndarray:
    return np.array([costmod.cost(p.graph, chip, p.registers, p.weights).total_us for p in points])


def loss(points, chip, est=None) -> float:
    """The mean squared log ratio of estimate to measurement (`est`: the estimates, when computed already)."""
    est = estimates(points, chip) if est is None else est
    measured = np.array([p.us for p in points])
    return float(np.mean(np.log(est / measured) ** 2))


def ranking(points, chip, est=None) -> list[tuple[tuple, int, float, float]]:
    """Per group of 3 or more variants: (key, variants, Spearman, measured time of the model's pick
    over the fastest)."""
    groups = defaultdict(list)
    for p, e in zip(points, estimates(points, chip) if est is None else est):
        groups[p.key].append((e, p.us))
    rows = []
    for key, pairs in sorted(groups.items()):
        if len(pairs) >= 3:
            e, m = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
            rows.append((key, len(pairs), spearman(e, m), m[int(np.argmin(e))] / m.min()))
    return rows


def rank_score(points, chip) -> float:
    """What the default fit maximises: mean Spearman + 0.01 per group whose pick is within 10%, less
    the mean squared log error (a rank-only fit drifts to constants that rank a little better but put
    absolute times 2x off, e.g. 2 us a loop iteration)."""
    est = estimates(points, chip)  # the costly part: once per trial
    rows = ranking(points, chip, est)
    rhos = [rho for _, _, rho, _ in rows if not math.isnan(rho)]
    return float(np.mean(rhos)) + 0.01 * sum(ratio <= 1.10 for *_, ratio in rows) - loss(points, chip, est)


GRIDS = {"mem_latency_us": np.geomspace(0.05, 5, 21), "loop_iter_us": np.geomspace(0.01, 2, 15),
         "mma_step_us": np.geomspace(0.002, 0.2, 15),
         "stream_peak": np.linspace(0.5, 1.0, 11), "row_overhead": np.geomspace(4, 256, 13),
         "sm_bandwidth": np.geomspace(1.5e10, 4e11, 15), "launch_us": np.linspace(0.3, 4, 38),
         "thread_element_us": np.geomspace(0.002, 0.1, 15),
         "stage_us": np.concatenate([[0.0], np.geomspace(0.02, 1.0, 12)]),
         "copy_chunk_us": np.concatenate([[0.0], np.geomspace(0.005, 0.2, 12)]),
         "l2_bandwidth": np.geomspace(2e12, 1.2e13, 12),
         # mma.sync does not reach the tensor cores' wgmma peak (~990 TFLOP/s dense f16 on an H200)
         "tensor_flops": np.geomspace(1e14, 6.6e14, 9)}
FITTED = tuple(GRIDS)


def fit(points, chip, names=FITTED, objective: str = "rank"):
    """Coordinate search over each constant's grid, three rounds; returns (chip, objective value)."""
    value = (lambda ch: rank_score(points, ch)) if objective == "rank" else (lambda ch: -loss(points, ch))
    best = value(chip)
    for _ in range(3):
        for name in names:
            for x in GRIDS[name]:
                trial = replace(chip, **{name: float(x)})
                current = value(trial)
                if current > best + 1e-12:
                    best, chip = current, trial
    return chip, best


def report(points, chip, title: str) -> None:
    est = estimates(points, chip)
    print_ranking(ranking(points, chip, est), f"{title}: mean squared log error {loss(points, chip, est):.3f}")


def by_program(points, chip, names=FITTED, objective: str = "rank") -> None:
    """Each program's groups ranked with constants fitted (from `chip`) to the other programs' plans:
    how the fit ranks a program it never saw."""
    rows = []
    for program in sorted({p.key[0] for p in points}):
        fitted, _ = fit([p for p in points if p.key[0] != program], chip, names, objective)
        rows += ranking([p for p in points if p.key[0] == program], fitted)
    print_ranking(sorted(rows), f"fitted ({objective}) to the other programs, each program held out")


def print_ranking(rows, title: str) -> None:
    print(f"\n{title}")
    runs = any(len(key) > 3 for key, *_ in rows)  # several runs: the run is part of the group
    print("| program | bs | dtype |" + " run |" * runs + " variants | Spearman | model's pick / fastest |")
    print("|---|---|---|" + "---|" * runs + "---|---|---|")
    for key, n, rho, ratio in rows:
        print("| " + " | ".join(map(str, key)) + f" | {n} | {rho:.2f} | {ratio:.2f} |")
    rhos = [rho for _, _, rho, _ in rows if not math.isnan(rho)]
    good = sum(ratio <= 1.10 for *_, ratio in rows)
    print(f"mean Spearman {np.mean(rhos):.2f}; pick within 10% of the fastest in {good} of {len(rows)}")


def detail(points, chip, program: str) -> None:
    """Each variant of `program`: measured and estimated us, and per kernel its grid, loop, threads,
    residency and the model's terms (KernelCost.terms) before they are combined: where a misranked
    plan's price comes from."""
    print(f"\n{program}'s variants (the ranking constants): measured / estimated us; per kernel blocks x loop, "
          "threads, blocks an SM holds, terms in us")
    for p in sorted((p for p in points if p.key[0] == program), key=lambda p: (p.key, p.us)):
        c = costmod.cost(p.graph, chip, p.registers, p.weights)
        print(f"{' '.join(map(str, p.key))} {p.variant}: {p.us:.2f} / {c.total_us:.2f}")
        for k in c.kernels:
            terms = " ".join(f"{name} {t:.2f}" for name, t in k.terms.items())
            print(f"    {k.op} {k.blocks} x {k.loop}, {k.threads} threads, {k.resident} an SM: {k.us:.2f} ({terms})")


def load_points(specs: list[str], programs: str | None, candidates_only: bool = False) -> list[Point]:
    """The Points of every variant with a known mu-graph in the runs
    `RUN.json[:PROGRAMS]` (only the default pipeline's candidates with `candidates_only`: the plans
    the model's pick chooses among); a group is one run's program / batch / dtype (the runs' variants
    are never mixed, since two builds' candidates differ)."""
    points = []
    for spec in specs:
        path, _, directory = spec.partition(":")
        directory = directory or programs
        with open(path) as f:
            run = json.load(f)
        tag = os.path.basename(path).removesuffix(".json") if len(specs) > 1 else None
        for v in run["variants"]:
            if candidates_only and not re.fullmatch(r"searched_c\d+", v["variant"]):
                continue  # an experiment's candidates (e.g. searched_ch4_c<k>) are not the pipeline's
            g = variant_graph(v, directory)
            if g is not None and v.get("us"):
                key = (v["program"], v["bs"], v["dtype"]) + ((tag,) if tag else ())
                weights = frozenset(WEIGHTS.get(v["program"], ()))
                points.append(Point(g, v["us"], key, variant_registers(v, directory), weights, v["variant"]))
    return points


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="JSON files written by benchmarks/gpu.py --json, each RUN.json[:PROGRAMS]")
    p.add_argument("--programs", default=None, help="the compiled programs (for the searched candidates' mu-graphs)")
    p.add_argument("--holdout", nargs="*", default=[], metavar="RUN.json[:PROGRAMS]",
                   help="runs reported with the fitted constants but not fitted to")
    p.add_argument("--objective", choices=("rank", "log"), default="rank")
    p.add_argument("--candidates", action="store_true",
                   help="only the default pipeline's candidates (searched_c<k>), not every compiled variant")
    p.add_argument("--detail", nargs="*", default=[], metavar="PROGRAM",
                   help="only print each variant of these programs with the model's terms (ranking constants), no fit")
    p.add_argument("--by-program", action="store_true",
                   help="also fit once per program to the others' plans and rank the one held out")
    p.add_argument("--fix", nargs="*", default=[], metavar="NAME=VALUE",
                   help="constants held at a value measured otherwise (e.g. sm_bandwidth=31e9, stream_probe.cu)")
    args = p.parse_args()
    points = load_points(args.runs, args.programs, args.candidates)
    holdout = load_points(args.holdout, args.programs, args.candidates)
    chip, ranking = costmod.chip("sm_90"), costmod.ranking_chip("sm_90")
    if args.detail:
        for program in args.detail:
            detail(points, ranking, program)
        return 0
    for title, constants in (("the search's constants", chip), ("the ranking constants (cost.RANKING)", ranking)):
        report(points, constants, title)
        if holdout:
            report(holdout, constants, f"{title}, held-out runs")
    fixed = dict(item.split("=") for item in args.fix)
    # the search's constants in the ranking's form (Chip.serial_under_ring) are where the fit starts
    chip = replace(chip, serial_under_ring=ranking.serial_under_ring, **{k: float(v) for k, v in fixed.items()})
    fitted, _ = fit(points, chip, [n for n in FITTED if n not in fixed], args.objective)
    report(points, fitted, f"fitted constants ({args.objective})")
    if holdout:
        report(holdout, fitted, f"fitted constants ({args.objective}), held-out runs")
    if args.by_program:
        by_program(points, chip, [n for n in FITTED if n not in fixed], args.objective)
    print("\nfitted (cost.RANKING's form): " + ", ".join(f"{n}={getattr(fitted, n):.4g}" for n in FITTED))
    return 0


if __name__ == "__main__":
    sys.exit(main())
