#!/usr/bin/env python3
"""One programs directory for gpu.py from builds of two commits: the first build's variants as they
are, each other build's renamed with its suffix (variant sk_c64_t256 -> sk_c64_t256_wp, its directory
likewise), so that one device call times both and `compare_runs.py RUN.json --suffix _wp` sets each
variant beside its twin. Only variants present in every build are kept (--only narrows them).

  python benchmarks/merge_builds.py OUT BEFORE AFTER:_wp [MORE:_x ...] [--only DIR ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil


def merge(out: str, before: str, twins: list[tuple[str, str]], only: list[str] | None = None) -> list[dict]:
    """Copies the builds into `out`; returns its index."""
    def index(build: str) -> dict[str, dict]:
        with open(os.path.join(build, "index.json")) as fh:
            return {e["dir"]: e for e in json.load(fh)}

    base = index(before)
    others = [(index(build), build, suffix) for build, suffix in twins]
    dirs = [d for d in base if all(d in entries for entries, _, _ in others) and (only is None or d in only)]
    os.makedirs(out, exist_ok=True)
    merged = []
    for d in dirs:
        shutil.copytree(os.path.join(before, d), os.path.join(out, d), dirs_exist_ok=True)
        merged.append(base[d])
        for entries, build, suffix in others:
            shutil.copytree(os.path.join(build, d), os.path.join(out, d + suffix), dirs_exist_ok=True)
            merged.append({**entries[d], "dir": d + suffix, "variant": entries[d]["variant"] + suffix})
    with open(os.path.join(out, "index.json"), "w") as fh:
        json.dump(merged, fh, indent=1)
    return merged


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("before")
    p.add_argument("twins", nargs="+", metavar="BUILD:SUFFIX")
    p.add_argument("--only", nargs="*", default=None, help="directories (program_bs_dtype_variant) to keep")
    args = p.parse_args()
    twins = [tuple(t.rsplit(":", 1)) for t in args.twins]
    merged = merge(args.out, args.before, twins, args.only)
    print(f"{len(merged)} variants in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
