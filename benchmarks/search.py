"""Search benchmark: for each program of ../shared/BENCHMARKS.md at bs 1 and 8 (f16), starting from
torch-mlir's linalg (examples/<name>_bs<bs>_f16.mlir; stable attention at bs 8 derived from its bs-1
export by build_gpu.source), `convert-linalg-to-mirage` and then `mirage-superoptimize` with a cold
cache; reports the time of the whole search (e-graph, search, verification), states explored,
candidates verified / found, kernels in the result, the cost-model estimate and the same estimate
for Mirage's published plan written by hand (mirage_mlir/plans.py), and checks that the interpreter
(what `mirage-run` runs) gives the same outputs for the original and the optimized module on the
same seeded inputs.

    python benchmarks/search.py [--only gqa,lora] [--bs 1,8] [--budget 45] [--no-run] [--plans]

One program at a time (the search uses --workers processes); the last lines are a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from mirage_mlir import interpreter, plans  # noqa: E402
from mirage_mlir.bridge import tensor_type  # noqa: E402
from mirage_mlir.context import make_context, parse_module  # noqa: E402
from mirage_mlir.finite_field import FLOAT_TOLERANCE  # noqa: E402
from mirage_mlir.search import cost  # noqa: E402
from mirage_mlir.search.reference import functions  # noqa: E402
from mirage_mlir.passes import pass_class  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from build_gpu import source  # noqa: E402

NAMES = ["gqa", "qknorm_gqa", "rmsnorm_linear", "lora", "gated_mlp", "ntrans", "stable_attention"]


def describe(graph) -> str:
    """One line per kernel: grid, loop and maps of a graph_def, or the predefined op."""
    parts = []
    for node in graph.nodes:
        if node.op != "graph_def":
            parts.append(node.op)
            continue
        b = node.body
        its = [f"{n.attr('imap')}/{n.attr('fmap')}" for n in b.nodes if n.op == "input_iterator"]
        omaps = [str(n.attr("omap")) for n in b.nodes if n.op == "output_saver"]
        ops = [n.op for n in b.nodes if n.op not in ("input_iterator", "output_saver")]
        parts.append(f"grid {b.grid_dim} loop {b.forloop_range}: in imap/fmap {' '.join(its)}; "
                     f"{' '.join(ops)}; out omap {' '.join(omaps)}")
    return " || ".join(parts)


def run_interpreter(module, seed: int = 0) -> list[np.ndarray]:
    return [np.asarray(o) for o in interpreter.interpret(module, entry="main", seed=seed)]


def max_rel_error(ref: list, got: list) -> float:
    worst = 0.0
    for r, g in zip(ref, got):
        r64, g64 = np.asarray(r, np.float64), np.asarray(g, np.float64)
        scale = max(float(np.max(np.abs(r64))), 1e-30)
        worst = max(worst, float(np.max(np.abs(r64 - g64))) / scale)
    return worst


def bench(name: str, bs: int, args) -> dict:
    path = Path(source(name, bs, "f16", tempfile.mkdtemp(prefix="mirage-bench-src-")))  # stable attention bs8: derived
    ctx = make_context()
    with ctx:
        module = parse_module(path.read_text(), ctx)
        original = run_interpreter(module) if args.run else None
        pass_class("convert-linalg-to-mirage")().run(module.operation)
        sup = pass_class("mirage-superoptimize").from_options(
            f"time-budget={args.budget} workers={args.workers}")
        t0 = time.perf_counter()
        sup.run(module.operation)
        wall = time.perf_counter() - t0
        (_, result), = sup.results  # one group per benchmark program
        arguments = next(functions(module.operation)).regions[0].blocks[0].arguments
        types = [tensor_type(a.type) for a in arguments]
        err = float("nan")
        if args.run:
            t1 = time.perf_counter()
            err = max_rel_error(original, run_interpreter(module))
            run_s = time.perf_counter() - t1
        else:
            run_s = 0.0
    plan_us = cost.cost(plans.PLANS[name](types)).total_us if name in plans.PLANS else float("nan")
    return {"name": name, "bs": bs, "wall": wall, "stats": result.stats, "result": result,
            "plan_us": plan_us, "err": err, "run_s": run_s}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--budget", type=float, default=45.0, help="cap on search seconds per program")
    p.add_argument("--only", default=",".join(NAMES))
    p.add_argument("--bs", default="1,8")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-run", dest="run", action="store_false",
                   help="skip the interpreter comparison of the original and optimized modules")
    p.add_argument("--plans", action="store_true", help="also print each found plan in one line")
    args = p.parse_args()
    os.environ["MIRAGE_CACHE_DIR"] = tempfile.mkdtemp(prefix="mirage-bench-")  # cold cache
    rows = []
    for name in args.only.split(","):
        for bs in [int(b) for b in args.bs.split(",")]:
            os.environ["MIRAGE_CACHE_DIR"] = tempfile.mkdtemp(prefix="mirage-bench-")
            r = bench(name, bs, args)
            res, s = r["result"], r["stats"]
            ours = res.cost.total_us if res.cost else float("nan")
            kernels = len(res.graph.nodes) if res.graph is not None else 0
            r.update(ours=ours, kernels=kernels)
            rows.append(r)
            tol = FLOAT_TOLERANCE["f16"]
            ok = "ok" if r["err"] <= tol else ("-" if r["err"] != r["err"] else "DIFFERS")
            print(f"{name} bs={bs}: {r['wall']:.1f}s (search {s.search_s:.1f}s, verify {s.verify_s:.1f}s), "
                  f"{kernels} kernels, {ours:.2f}us (plan {r['plan_us']:.2f}us), mirage-run {ok} "
                  f"({r['err']:.1e}, {r['run_s']:.1f}s)", file=sys.stderr, flush=True)
            if args.plans and res.graph is not None:
                print(f"  {describe(res.graph)}", file=sys.stderr, flush=True)
    print("| program | bs | search s (cold) | of which verify s | states | block searches (replays) | "
          "verified / candidates | proven | kernels | ours (us) | Mirage plan (us) | unoptimized (us) | FP bound | "
          "mirage-run max rel err |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        s, res = r["stats"], r["result"]
        bound = res.verification.bound if res.verification else float("nan")
        print(f"| {r['name']} | {r['bs']} | {r['wall']:.1f} | {s.verify_s:.1f} | {s.states} | "
              f"{s.block_tasks} ({s.replays}) | {s.verified} / {s.candidates} | {'yes' if s.proven else 'no'} | "
              f"{r['kernels']} | {r['ours']:.2f} | {r['plan_us']:.2f} | {res.reference_cost.total_us:.2f} | "
              f"{bound:.1e} | {r['err']:.1e} |")


if __name__ == "__main__":
    main()
