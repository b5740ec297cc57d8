#!/usr/bin/env python3
"""Re-estimates the candidates of compiled programs with the current cost.RANKING (mirage-compile's
rank_with_registers: each candidate's estimate and the model's choice in manifest.json), in place, so
that a build made before a refit of the ranking carries the current model's choice (needs no GPU;
the kernels are untouched).

  python benchmarks/rerank.py DIR [DIR ...]   (DIR: one compiled program, or a build with index.json)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mirage_mlir.search.cache import graph_from_json  # noqa: E402
from mirage_mlir.tools.mirage_compile import rank_with_registers  # noqa: E402


def program_dirs(path: str) -> list[str]:
    index = os.path.join(path, "index.json")
    if not os.path.exists(index):
        return [path]
    with open(index) as f:
        return [os.path.join(path, v["dir"]) for v in json.load(f)]


def rerank(directory: str, target: str = "sm_90") -> list[tuple[str, int, int]]:
    """Re-ranks one compiled program; [(function, model's choice before, after)] of its functions
    with candidates."""
    manifest_path, candidates_path = (os.path.join(directory, name) for name in ("manifest.json", "candidates.json"))
    if not os.path.exists(candidates_path):
        return []
    with open(manifest_path) as f:
        manifest = json.load(f)
    with open(candidates_path) as f:
        kept = json.load(f)
    results = [(name, SimpleNamespace(candidates=[(c["estimate_us"], graph_from_json(c["graph"])) for c in kept[name]]))
               for name, entry in manifest["functions"].items() if entry.get("candidates") and name in kept]
    before = {name: manifest["functions"][name]["model_choice"] for name, _ in results}
    rank_with_registers(manifest, results, target)
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=1)
    return [(name, before[name], manifest["functions"][name]["model_choice"]) for name, _ in results]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dirs", nargs="+")
    args = p.parse_args()
    for path in args.dirs:
        for directory in program_dirs(path):
            for name, before, after in rerank(directory):
                print(f"{directory} @{name}: model's choice c{before} -> c{after}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
