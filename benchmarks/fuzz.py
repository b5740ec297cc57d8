#!/usr/bin/env python3
"""Long fuzzing runs of the tools (issue #10): N mutated inputs (hypothesis, mirage_mlir/fuzzing.py)
through mirage-opt (parse, convert, convert + superoptimize, specialize + convert) and mirage-run; prints the count of each
outcome class per tool and keeps a reproducer of every defect (the input, the tool, its stderr) in
--out. test/test_fuzz.py runs a fixed sample of the same in CI.

  python benchmarks/fuzz.py [-n 10000] [--out fuzz-defects] [--seed 1]
  python benchmarks/fuzz.py --differential 1000   # random linalg programs: convert + superoptimize
                                                  # must keep their outputs (mirage_mlir/fuzzing.py)
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = Path(HERE).parent
sys.path[:0] = [str(ROOT)]


def main() -> int:
    from hypothesis import HealthCheck, given, seed, settings
    from hypothesis import strategies as st

    from mirage_mlir.fuzzing import DEFECTS, PIPELINES, classify, mutate, run

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=10000, help="mutated inputs (default 10000)")
    p.add_argument("--out", default="fuzz-defects", help="where reproducers of defects go")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds before a run counts as a hang")
    p.add_argument("--differential", type=int, default=0, metavar="N",
                   help="instead: N random programs, each converted and superoptimized, outputs compared")
    args = p.parse_args()
    if args.differential:
        return differential_run(args)
    seeds = sorted([*(ROOT / "test" / "inputs").glob("*_small_*.mlir"), *(ROOT / "test" / "fuzz").glob("*.mlir"),
                    *(ROOT / "test" / "inputs" / "dynamic").glob("*.mlir"),
                    *(ROOT / "examples").glob("*_bs1_f16.mlir")])
    counts: dict = collections.defaultdict(collections.Counter)
    out = Path(args.out)
    start = time.perf_counter()

    @seed(args.seed)
    @settings(max_examples=args.n, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def one(data):
        source = data.draw(st.sampled_from(seeds))
        text = mutate(source.read_text(), data.draw, st)
        tool = data.draw(st.sampled_from(sorted(PIPELINES)))
        outcome = run(tool, text, timeout_s=args.timeout)
        kind = classify(outcome)
        counts[tool][kind] += 1
        if kind in DEFECTS:
            out.mkdir(parents=True, exist_ok=True)
            n = sum(counts[t][k] for t in counts for k in DEFECTS)
            (out / f"{n:05d}.mlir").write_text(text, errors="surrogateescape")
            (out / f"{n:05d}.json").write_text(json.dumps({"tool": tool, "kind": kind, "seed": source.name,
                                                           "stderr": outcome.stderr[-4000:]}, indent=1))
        total = sum(sum(c.values()) for c in counts.values())
        if total % 200 == 0:
            print(f"  {total} inputs, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)

    try:
        one()
    except KeyboardInterrupt:  # a long run stopped by hand still reports what it saw
        print("interrupted", file=sys.stderr)
    kinds = ["ok", "refused", *DEFECTS]
    print(f"\n{sum(sum(c.values()) for c in counts.values())} mutated inputs in {time.perf_counter() - start:.0f} s")
    print("| tool | " + " | ".join(kinds) + " |")
    print("|---|" + "---|" * len(kinds))
    for tool in sorted(counts):
        print(f"| {tool} | " + " | ".join(str(counts[tool][k]) for k in kinds) + " |")
    defects = sum(counts[t][k] for t in counts for k in DEFECTS)
    print(f"defects: {defects}" + (f" (reproducers in {out}/)" if defects else ""))
    return 1 if defects else 0


def differential_run(args) -> int:
    from hypothesis import HealthCheck, given, seed, settings
    from hypothesis import strategies as st

    from mirage_mlir.fuzzing import differential, random_program

    counts = collections.Counter()
    out = Path(args.out)
    start = time.perf_counter()

    @seed(args.seed)
    @settings(max_examples=args.differential, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def one(data):
        text = random_program(data.draw, st)
        try:
            ok, why, replaced = differential(text, seed=counts.total(), budget=1.0)
        except Exception as e:  # noqa: BLE001 - counted and kept, not fatal
            ok, why, replaced = False, f"{type(e).__name__}: {e}", 0
        counts["same outputs" if ok else "wrong replacement"] += 1
        counts["searched (graph_def in the result)"] += bool(replaced)
        if not ok:
            out.mkdir(parents=True, exist_ok=True)
            (out / f"differential_{counts['wrong replacement']:04d}.mlir").write_text(f"// {why}\n{text}")

    one()
    print(f"\n{args.differential} random programs in {time.perf_counter() - start:.0f} s")
    for kind, n in counts.items():
        print(f"  {kind}: {n}")
    return 1 if counts["wrong replacement"] else 0


if __name__ == "__main__":
    sys.exit(main())
