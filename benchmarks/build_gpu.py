#!/usr/bin/env python3
"""Compiles every benchmark program for the GPU scripts (needs the MLIR bindings; no GPU).

For each program of ../shared/BENCHMARKS.md, bs 1 and 8, writes with mirage-compile:
  DIR/<program>_bs<bs>_<dtype>_published/   Mirage's published plan (--plan published), from the
                                           torch-mlir file examples/<program>_bs<bs>_<dtype>.mlir
  DIR/<program>_bs<bs>_<dtype>_converted/  convert-linalg-to-mirage and lowering without the search
                                           (--no-search): one kernel per kernel op
  DIR/<program>_bs<bs>_f16_searched/       the default pipeline, with mirage-superoptimize
                                           (--search-options, default 'workers=2': the pass's 45 s budget)
  DIR/<program>_bs<bs>_f16_c<C>_k<K>_t<T>/ with --sweep: the weight-streaming plans (rmsnorm_linear,
                                           gated_mlp) at column tile C, K tile K, T threads, to
                                           check the cost model's ranking against the clock
  DIR/<program>_bs<bs>_f16_sk_.../         with --split-k (or --sweep): plans.VARIANTS, K split
                                           across blocks then combined, SwiGLU + down
for dtype f16 and f32 (from the examples), and bf16: no bf16 torch-mlir files exist, so the bf16
program is the f16 example with every f16 type written bf16 (DIR/sources/), compiled by the default
pipeline (searched) and, where Mirage published one, its plan; then DIR/index.json for
benchmarks/check_gpu.py and benchmarks/gpu.py. Every variant of a program with weights
(programs.WEIGHTS) is compiled with them declared constant (--constant-inputs).

  python benchmarks/build_gpu.py [-o .device/programs] [--chip sm_90] [--no-searched] [--sweep] [--split-k]
                                [--plans NAME:key=value,... ...] [--stages N ...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]

from programs import BATCHES, NAMES, WEIGHTS, shapes  # noqa: E402

from mirage_mlir.plans import PLANS  # noqa: E402


# (column tile, K tile, threads) of the weight-streaming plans' sweeps
SWEEPS = {name: [(c, k, t) for c in (16, 32, 64, 128) for k in (64, 128, 256) for t in (128, 256)
                 if c * k <= 128 * 128]
          for name in ("rmsnorm_linear", "gated_mlp")}


# Plans beyond the published ones (plans.VARIANTS): K split across blocks, then a combine kernel
SPLIT_K = {
    # the normalization folded into the projection (no row kernel first)
    "layernorm_linear16": [f"layernorm_linear_folded:col_tile={c},splits={sp},k_tile={k},threads={t}"
                           for c, sp, k, t in ((64, 4, 64, 128), (64, 8, 64, 128), (64, 4, 64, 256), (64, 4, 128, 256),
                                               (64, 2, 128, 256), (128, 4, 128, 256), (64, 4, 128, 128))],
    # wider column tiles over thinner k tiles: fewer blocks re-read X's K slice (session 6)
    "rmsnorm_linear": [f"rmsnorm_linear_split_k:col_tile={c},splits={sp},k_tile={k},threads={t}"
                       for c, sp, k, t in ((64, 2, 128, 256), (64, 4, 128, 256), (64, 8, 128, 256),
                                           (128, 4, 128, 256), (128, 8, 128, 256), (64, 4, 128, 128),
                                           (128, 4, 128, 128), (128, 8, 64, 128), (128, 4, 64, 128),
                                           (256, 8, 64, 256), (256, 16, 32, 256))],
    "gated_mlp": [f"gated_mlp_split_k:col_tile={c},splits={sp},k_tile={k},threads={t}"
                  for c, sp, k, t in ((64, 2, 128, 256), (64, 4, 128, 256), (128, 4, 128, 256), (128, 8, 128, 256),
                                      (64, 4, 128, 128), (128, 4, 64, 128), (128, 8, 64, 128),
                                      # twice the warps an SM for the mma chains (one block an SM: minctasm)
                                      (64, 2, 128, 512))],
    # (16, 512, 1, 64): the CUDA-core stages plan (its 256-column KV tile holds too many registers for
    # warp rows); the rest warp-rows kernels (plan.WarpRows: threads follow the Q tile's rows)
    "stable_attention": [f"stable_attention:splits={sp},threads={t},loop={lp},q_tile={q}"
                         for sp, t, lp, q in ((16, 512, 1, 64), (16, 128, 4, 64), (16, 128, 2, 64), (32, 128, 2, 64),
                                              (8, 128, 4, 64), (8, 128, 8, 64), (16, 128, 4, 32), (16, 128, 4, 16),
                                              (8, 128, 8, 16), (32, 128, 2, 16), (16, 128, 4, 128),
                                              (16, 128, 2, 128), (8, 128, 4, 128))],
    # the search's one-kernel form (a loop of one) at other strip widths and block sizes
    "lora": [f"lora_fused:col_tile={c},threads={t}" for c in (16, 32, 64) for t in (128, 256, 512)],
    "swiglu_down": [f"swiglu_down:col_tile={c},down_col_tile={dc},splits={sp},down_k_tile={dk},threads={t}"
                    for c, dc, sp, dk, t in ((64, 64, 4, 64, 128), (64, 64, 8, 32, 128), (64, 128, 8, 32, 256),
                                             (32, 64, 4, 64, 256), (64, 64, 4, 64, 256))],
}


def variant_name(spec: str) -> str:
    """A directory-friendly name for a plan spec NAME:key=value,...: sk_c64_s4_k128_t256."""
    name, _, params = spec.partition(":")
    short = {"col_tile": "c", "splits": "s", "k_tile": "k", "threads": "t", "down_col_tile": "dc",
             "down_k_tile": "dk", "q_tile": "q", "loop": "l"}
    return "sk_" + "_".join(short[k] + v for k, v in (p.split("=") for p in params.split(",")))


def source(name: str, bs: int, dtype: str, directory: str) -> str:
    """The torch-mlir example of the program, or one derived from it: bf16 is the f16 file with its
    f16 types (and constants) written bf16; a batch size without an export of its own (stable
    attention at bs 8, programs.BATCHES) is the bs-1 file with its leading (batch) dim scaled."""
    exported = os.path.join(ROOT, "examples", f"{name}_bs{bs}_{dtype}.mlir")
    if os.path.exists(exported):
        return exported
    base_dtype = "f16" if dtype == "bf16" else dtype
    base = os.path.join(ROOT, "examples", f"{name}_bs{bs}_{base_dtype}.mlir")
    scaled = not os.path.exists(base)
    with open(os.path.join(ROOT, "examples", f"{name}_bs1_{base_dtype}.mlir") if scaled else base) as f:
        text = f.read()
    if dtype == "bf16":
        text = re.sub(r"\bf16\b", "bf16", text).replace("xf16>", "xbf16>")
    if scaled:
        batch = shapes(name, 1)[0][0]
        text = re.sub(rf"(tensor<){batch}x", rf"\g<1>{batch * bs}x", text)
        text = text.replace(f"output_shape [{batch}, ", f"output_shape [{batch * bs}, ")
    text = f"// derived by benchmarks/build_gpu.py (source): {name} at bs {bs}, {dtype}\n" + text
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{name}_bs{bs}_{dtype}.mlir")
    with open(path, "w") as f:
        f.write(text)
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-o", dest="out", default=os.path.join(ROOT, ".device", "programs"))
    p.add_argument("--chip", default="sm_90")
    p.add_argument("--only", nargs="*", help="program names")
    p.add_argument("--no-searched", action="store_true", help="skip the variants that run the search")
    p.add_argument("--search-options", default="workers=2", help="mirage-superoptimize's options (default: its own, time-budget=45)")
    p.add_argument("--dtypes", nargs="*", default=["f16", "f32", "bf16"])
    p.add_argument("--sweep", action="store_true", help="add the tile sweeps of the weight-streaming plans")
    p.add_argument("--split-k", action="store_true", help="add the split-K plans (plans.VARIANTS)")
    p.add_argument("--tiles", nargs="*", default=None, help="only these sweep variants (c<C>_k<K>_t<T>)")
    p.add_argument("--stages", nargs="*", type=int, default=[],
                   help="sweeps also at these cp.async ring depths (MIRAGE_MAX_STAGES), named ..._s<N>; "
                        "--plans at them, named ..._r<N>")
    p.add_argument("--chains", nargs="*", type=int, default=[],
                   help="the searched program (f16) and --plans also with each warp's mma K steps dealt to N "
                        "accumulator chains (MIRAGE_MMA_CHAINS), named ..._ch<N>")
    p.add_argument("--plans", nargs="*", default=[], metavar="NAME:key=value,...",
                   help="hand plans (plans.VARIANTS) to compile for every program built (f16), e.g. "
                        "rmsnorm_linear_split_k:col_tile=64,splits=4,k_tile=64,threads=128 with --only rmsnorm_linear")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    jobs = []
    for name in args.only or NAMES:
        published = name in PLANS
        for bs in (1, 8) if published else BATCHES.get(name, (1,)):
            for dtype in args.dtypes:
                src = source(name, bs, dtype, os.path.join(args.out, "sources"))
                variants = {"published": ["--plan", "published"]} if published else {}
                experiment = {}  # variant -> the environment its compile adds (plan's experiment knobs)
                if dtype == "bf16":
                    if not args.no_searched:
                        variants["searched"] = ["--search-options", args.search_options]
                else:
                    variants["converted"] = ["--no-search"]

                    def with_knobs(variant: str, plan: list[str], stages=(), suffix: str = "", chains=()) -> None:
                        """The variant, and the same plan at each of `stages` ring depths (variant + suffix + N)
                        and with each of `chains` accumulator chains (variant + _ch + N)."""
                        variants[variant] = plan
                        for knob, values, named in (("MIRAGE_MAX_STAGES", stages, suffix),
                                                     ("MIRAGE_MMA_CHAINS", chains, "_ch")):
                            for value in values:
                                variants[f"{variant}{named}{value}"] = plan
                                experiment[f"{variant}{named}{value}"] = {knob: str(value)}
                    if dtype == "f16" and not args.no_searched:
                        # the search's candidates come from its cache, so searched_ch<N> lowers the same plans
                        with_knobs("searched", ["--search-options", args.search_options], chains=args.chains)
                    if dtype == "f16" and (args.sweep or args.split_k):
                        for k, spec in enumerate(SPLIT_K.get(name, [])):
                            variants[variant_name(spec)] = ["--plan", spec]
                            if k == 0 and "splits=" in spec:  # the same plan as two launches, for comparison
                                variants[variant_name(spec) + "_unfused"] = ["--plan", spec, "--lower-options",
                                                                             "fuse-split-k=false"]
                    for spec in args.plans if dtype == "f16" else ():
                        with_knobs(variant_name(spec), ["--plan", spec], args.stages, "_r", args.chains)
                    if dtype == "f16" and args.sweep and name == "ntrans":
                        for threads in (256, 512, 1024):  # latency-bound rows: fewer elements per thread
                            variants[f"t{threads}"] = ["--plan", f"published:threads={threads}"]
                    if dtype == "f16" and args.sweep and name in SWEEPS:
                        for col, k, threads in SWEEPS[name]:
                            if args.tiles is not None and f"c{col}_k{k}_t{threads}" not in args.tiles:
                                continue
                            with_knobs(f"c{col}_k{k}_t{threads}",
                                       ["--plan", f"published:col_tile={col},k_tile={k},threads={threads}"], args.stages, "_s")
                weights = ["--constant-inputs", ",".join(map(str, WEIGHTS[name]))] if name in WEIGHTS else []
                for variant, extra in variants.items():
                    d = f"{name}_bs{bs}_{dtype}_{variant}"
                    cmd = [sys.executable, "-m", "mirage_mlir.tools.mirage_compile", src, "-o",
                           os.path.join(args.out, d), "--chip", args.chip, "-q"] + weights + extra
                    env = dict(os.environ, **experiment.get(variant, {}))
                    jobs.append(({"dir": d, "program": name, "bs": bs, "dtype": dtype, "variant": variant}, cmd, env))

    def run(job):
        entry, cmd, env = job
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        return entry, proc

    index, failed = [], 0
    # the searches one at a time (each runs several processes), a chained form after its plain one (its cache)
    quick = [j for j in jobs if not j[0]["variant"].startswith("searched")]
    searched = [j for j in jobs if j[0]["variant"].startswith("searched")]

    def collect(results):
        nonlocal failed
        for entry, proc in results:
            if proc.returncode:
                failed += 1
                print(f"FAILED {entry['dir']}:\n{proc.stderr}", file=sys.stderr)
            else:
                index.append(entry)
                print(f"  {entry['dir']}", flush=True)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 4) as pool:
        collect(pool.map(run, quick))
    collect(map(run, searched))  # the search uses several processes itself
    with open(os.path.join(args.out, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
    print(f"compiled {len(index)} programs into {args.out} ({failed} failed)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
