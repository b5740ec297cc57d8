#!/usr/bin/env python3
"""GPU timings of every compiled benchmark variant beside PyTorch eager and torch.compile.

In one run on one GPU: first the two ceilings, the read bandwidth (torch.sum over 512 MiB of f16)
and one empty kernel's CUDA-graph replay time; then, for each (program, bs, dtype) that
benchmarks/build_gpu.py compiled: eager and torch.compile (default mode), and every variant of it
(published, converted, searched, the tile sweeps), each checked first (NaN-poisoned outputs,
float64 reference, fresh inputs; a variant that fails is not timed). Times are medians of CUDA-graph
replays (triton.testing.do_bench_cudagraph); each replay runs the program on R input sets in turn (R
such that the inputs exceed twice the L2 cache), so no run reads its inputs from L2. The floor is
(input + output bytes) / the measured read bandwidth; "read" is one torch.sum launch over as many
bytes, timed the same way (what a single stream of that size reaches, ramp and tail included).
Prints the tables last; --json keeps it all.

The searched variant (the default pipeline) runs as a user's program does: its first call times the
candidate plans mirage-compile kept and the runtime keeps the fastest (the first call's and a fresh
load's seconds are recorded); each candidate is also checked and timed on its own (searched_c<k>),
and the "Tuning (issue #9)" table sets the runtime's choice beside the fastest candidate and the
cost model's pick.

  python benchmarks/gpu.py [--programs .device/programs] [--only NAME ...] [--json t.json] [--reloads K]
  python benchmarks/gpu.py --from-json benchmarks/results/h200_run8_final.json   # the tables again
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import warnings
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]

MAIN_VARIANTS = ("published", "converted", "searched")
ELEM_BYTES = {"f16": 2, "bf16": 2, "f32": 4}


def bench(fn, reps: int = 1) -> float:
    """Median microseconds of one call of fn() (which makes `reps` program calls)."""
    from triton.testing import do_bench_cudagraph

    return do_bench_cudagraph(fn, rep=50, return_mode="median") * 1e3 / reps


def ceilings(torch) -> dict:
    """Read bandwidth (bytes/s) of a streaming reduction and an empty kernel's replay time (us)."""
    import cupy

    x = torch.randn(256 * 2**20, device="cuda", dtype=torch.float16)  # 512 MiB
    out = torch.empty((), device="cuda", dtype=torch.float32)
    us = bench(lambda: torch.sum(x, 0, dtype=torch.float32, out=out))
    empty = cupy.RawKernel('extern "C" __global__ void empty() {}', "empty")

    def launch():  # on torch's current stream: the one a graph capture records
        with warnings.catch_warnings():  # CuPy 14 deprecates ExternalStream (the runtime's path too)
            warnings.simplefilter("ignore", DeprecationWarning)
            stream = cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream)
        empty((1,), (32,), (), stream=stream)

    launch()
    torch.cuda.synchronize()
    return {"bandwidth": x.numel() * 2 / (us * 1e-6), "empty_us": bench(launch)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--programs", default=os.path.join(ROOT, ".device", "programs"))
    p.add_argument("--only", nargs="*", default=None, help="program names")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    p.add_argument("--json", default=None)
    p.add_argument("--reloads", type=int, default=0, metavar="K",
                   help="also replay each searched candidate from K more fresh loads (the spread between loads)")
    p.add_argument("--from-json", default=None, metavar="RUN.json",
                   help="print the tables of a saved run (no GPU needed)")
    args = p.parse_args()
    if args.from_json:
        with open(args.from_json) as fh:
            run = json.load(fh)
        print_tables(run["rows"], run["variants"], run)
        return 0
    import torch
    from check_gpu import check_entry, torch_dtype
    from programs import functions, io_bytes, make_inputs, matmuls

    from mirage_mlir.runtime import load, overlap_supported
    from mirage_mlir.tuning import consecutive_calls

    with open(os.path.join(args.programs, "index.json")) as f:
        index = json.load(f)
    groups = defaultdict(list)
    for e in index:
        if args.only is None or e["program"] in args.only:
            groups[(e["program"], e["bs"], e["dtype"])] += with_candidates(e, args.programs)
    os.environ["MIRAGE_CACHE_DIR"] = tempfile.mkdtemp()  # a fresh tuning cache: first use tunes
    l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 50 * 2**20)
    ceil = ceilings(torch)
    ceil["overlap"] = overlap_supported(torch.cuda.current_device())
    print(f"device: {torch.cuda.get_device_name()}, L2 {l2 / 2**20:.0f} MiB, torch {torch.__version__}, "
          f"read bandwidth {ceil['bandwidth'] / 1e12:.2f} TB/s, empty kernel {ceil['empty_us']:.2f} us, "
          f"overlapping launches {'on' if ceil['overlap'] else 'off'}", flush=True)
    fns, gemms = functions(torch), matmuls(torch)
    rows, variants = [], []
    seed = int(time.time()) % 100000
    for (name, bs, dtype), entries in groups.items():
        in_bytes = io_bytes(name, bs, ELEM_BYTES[dtype])
        floor_us = in_bytes / ceil["bandwidth"] * 1e6
        reps = consecutive_calls(in_bytes, l2)
        gen = torch.Generator(device="cuda").manual_seed(seed + bs)
        sets = [make_inputs(torch, name, bs, torch_dtype(torch, dtype), gen) for _ in range(reps)]
        row = {"program": name, "bs": bs, "dtype": dtype, "floor_us": floor_us, "reps": reps}
        # one torch.sum launch over as many bytes (rotated as the inputs): what a single stream of this
        # size reaches, its ramp and tail included (the floor uses the long read's bandwidth)
        bufs = [torch.ones(in_bytes // 2, device="cuda", dtype=torch.float16) for _ in range(reps)]
        acc = torch.empty((), device="cuda", dtype=torch.float32)
        row["read_us"] = bench(lambda: [torch.sum(b, 0, dtype=torch.float32, out=acc) for b in bufs], reps)
        del bufs
        f = fns[name]
        row["eager_us"] = bench(lambda: [f(*s) for s in sets], reps)
        if name in gemms:
            row["matmuls_us"] = bench(lambda: [gemms[name](*s) for s in sets], reps)
        if not args.no_compile:
            cf = torch.compile(f)
            for s in sets:
                cf(*s)
            torch.cuda.synchronize()
            row["compile_us"] = bench(lambda: [cf(*s) for s in sets], reps)
        for e in entries:
            v, extra = {**e, "floor_us": floor_us}, []
            if e["variant"] == "searched":  # before anything else loads it: its first use tunes
                v.update(first_use(torch, load, os.path.join(args.programs, e["dir"]), sets[0]))
            try:
                check = check_entry(torch, e, args.programs, 1, seed + 13)
            except Exception as exc:  # noqa: BLE001 - a launch failure is reported, not fatal
                check = {"ok": False, "rel_err": float("nan"), "error": f"{type(exc).__name__}: {exc}"}
            v["rel_err"] = check["rel_err"]
            if check["ok"]:
                prog = load(os.path.join(args.programs, e["dir"]), candidate=e.get("candidate"))
                v["us"] = replay_us(torch, prog, sets, reps)
                if args.reloads and "candidate" in e:  # the same plan, loaded again: its own workspace
                    v["reload_us"] = [replay_us(torch, load(os.path.join(args.programs, e["dir"]),
                                                            candidate=e["candidate"]), sets, reps)
                                      for _ in range(args.reloads)]
                    print(f"  {e['dir']} c{e['candidate']}: {v['us']:.3g} us, reloaded "
                          + " / ".join(f"{t:.3g}" for t in v["reload_us"]), flush=True)
                v["choice"], v["model_choice"] = prog.choice[torch.cuda.current_device()], prog.model_choice
                plan = prog.candidates[v["choice"]]
                v["estimate_us"] = plan.get("estimate_us") or sum(k.get("estimate_us", 0.0) for k in plan["kernels"])
                if e["variant"] == "searched" and prog.constant_inputs:
                    # the same program with each call's first kernel waiting for the call before
                    # (the caller's MIRAGE_OVERLAP set back after: a run with it off stays off)
                    asked = os.environ.get("MIRAGE_OVERLAP")
                    os.environ["MIRAGE_OVERLAP"] = "inner"
                    inner = load(os.path.join(args.programs, e["dir"]))
                    extra.append({**v, "variant": "searched_inner", "us": replay_us(torch, inner, sets, reps)})
                    if asked is None:
                        del os.environ["MIRAGE_OVERLAP"]
                    else:
                        os.environ["MIRAGE_OVERLAP"] = asked
            else:
                print(f"  {e['dir']}: FAILED the check ({check.get('error') or check['rel_err']}); not timed",
                      flush=True)
            variants += [v] + extra
            if e["variant"] in MAIN_VARIANTS:
                row[f"{e['variant']}_us"] = v.get("us")
        rows.append(row)
        print("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
              flush=True)
        del sets
        torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, **ceil,
                       "rows": rows, "variants": variants}, fh, indent=1)
    print_tables(rows, variants, ceil)
    return 0


def replay_us(torch, prog, sets, reps: int) -> float:
    """A program's replay time per call over the input sets (its outputs allocated first)."""
    outs = [prog(*s) for s in sets]
    torch.cuda.synchronize()
    return bench(lambda: [prog(*s, out=o) for s, o in zip(sets, outs)], reps)


def with_candidates(entry: dict, programs: str) -> list[dict]:
    """The entry, then (for a program with candidate plans) one entry per candidate: searched_c<k>."""
    with open(os.path.join(programs, entry["dir"], "manifest.json")) as f:
        spec = json.load(f)["functions"]["main"]
    return [entry] + [{**entry, "variant": f"{entry['variant']}_c{c}", "candidate": c}
                      for c in range(len(spec.get("candidates", [])))]


def first_use(torch, load, directory: str, inputs) -> dict:
    """Seconds of the first call of a fresh load (the run's tuning cache is empty: the candidates are
    timed) and of another fresh load's first call (the choice read from the cache)."""
    seconds, programs = [], []
    for _ in range(2):
        programs.append(load(directory))
        t0 = time.perf_counter()
        programs[-1](*inputs)
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - t0)
    return {"first_call_s": seconds[0], "cached_call_s": seconds[1],
            "tuned_times_us": programs[0].tuning.get(torch.cuda.current_device(), {}).get("times_us")}


def fmt(x) -> str:
    return "-" if x is None else (f"{x:.1f}" if x >= 10 else f"{x:.2f}")


# the programs issues set targets for: (program, bs)
TARGETS = [("rmsnorm_linear", 1), ("rmsnorm_linear", 8), ("gated_mlp", 1), ("gated_mlp", 8), ("lora", 1),
           ("lora", 8), ("ntrans", 1), ("ntrans", 8), ("swiglu_down", 1), ("layernorm_linear16", 1)]
ATTENTION_TARGETS = [("gqa", 1), ("gqa", 8), ("qknorm_gqa", 1), ("qknorm_gqa", 8), ("stable_attention", 1),
                     ("stable_attention", 8)]


def geomean(xs: list) -> float:
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else math.nan


def print_summary(rows: list, variants: list, targets: list, title: str) -> None:
    """The target programs: the default pipeline (searched) and the fastest compiled variant."""
    by_key = {(r["program"], r["bs"], r["dtype"]): r for r in rows}
    best: dict = {}
    for v in variants:
        key = (v["program"], v["bs"], v["dtype"])
        if v.get("us") is not None and v["us"] < best.get(key, (math.inf, ""))[0]:
            best[key] = (v["us"], v["variant"])
    print(f"\n{title}: x = torch.compile / ours (> 1: ours faster); bw = floor / ours; read: one torch.sum "
          "launch over the same bytes, read / default pipeline; matmuls: the program's matrix products alone "
          "in PyTorch (cuBLAS), floor / them")
    print("| program | bs | dtype | floor | read | eager | torch.compile | default pipeline | x | bw | read/ours "
          "| best plan | x | bw | matmuls | bw |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    default_x, best_x = {}, {}  # per dtype
    for name, bs in targets:
        for dtype in ("f16", "bf16"):
            r = by_key.get((name, bs, dtype))
            if r is None or (name, bs, dtype) not in best or not r.get("compile_us"):
                continue
            comp, floor = r["compile_us"], r["floor_us"]
            read = r.get("read_us")
            line = f"| {name} | {bs} | {dtype} | {fmt(floor)} | {fmt(read)} | {fmt(r['eager_us'])} | {fmt(comp)} | "
            searched = r.get("searched_us")
            if searched:
                line += (f"{fmt(searched)} | {comp / searched:.2f} | {100 * floor / searched:.0f}% | "
                         f"{f'{100 * read / searched:.0f}%' if read else '-'} | ")
                default_x.setdefault(dtype, []).append(comp / searched)
            else:
                line += "- | - | - | - | "
            us, variant = best[(name, bs, dtype)]
            line += f"{fmt(us)} ({variant}) | {comp / us:.2f} | {100 * floor / us:.0f}% |"
            gemm = r.get("matmuls_us")
            line += f" {fmt(gemm)} | {100 * floor / gemm:.0f}% |" if gemm else " - | - |"
            best_x.setdefault(dtype, []).append(comp / us)
            print(line)
    for dtype, xs in best_x.items():
        print(f"geomean x over the {dtype} cases: default pipeline {geomean(default_x.get(dtype, [])):.2f}, "
              f"best plan {geomean(xs):.2f}")


def print_tables(rows: list, variants: list, ceil: dict) -> None:
    print(f"\nread bandwidth {ceil['bandwidth'] / 1e12:.2f} TB/s, empty kernel replay {ceil['empty_us']:.2f} us")
    print("\nVariants: estimate (cost model) and measured time, us; best of each program marked *")
    print("| program | bs | dtype | variant | estimate | measured | floor/measured | rel err |")
    print("|---|---|---|---|---|---|---|---|")
    best = {}
    for v in variants:
        key = (v["program"], v["bs"], v["dtype"])
        if v.get("us") is not None and v["us"] < best.get(key, math.inf):
            best[key] = v["us"]
    for v in variants:
        key = (v["program"], v["bs"], v["dtype"])
        us = v.get("us")
        mark = "*" if us is not None and us == best.get(key) else ""
        share = "-" if us is None else f"{100 * v['floor_us'] / us:.0f}%"
        print(f"| {v['program']} | {v['bs']} | {v['dtype']} | {v['variant']} | {fmt(v.get('estimate_us'))} | "
              f"{fmt(us)}{mark} | {share} | {v['rel_err']:.1e} |")
    print("\nTimes in microseconds (median of CUDA-graph replays); x: torch.compile / ours (> 1: ours faster); "
          "floor: bytes / measured read bandwidth")
    head = "| program | bs | dtype | floor | eager | torch.compile |"
    sep = "|---|---|---|---|---|---|"
    for name in MAIN_VARIANTS:
        head += f" {name} | x |"
        sep += "---|---|"
    print(head)
    print(sep)
    for r in rows:
        line = (f"| {r['program']} | {r['bs']} | {r['dtype']} | {fmt(r['floor_us'])} | {fmt(r['eager_us'])} | "
                f"{fmt(r.get('compile_us'))} |")
        for name in MAIN_VARIANTS:
            ours, comp = r.get(f"{name}_us"), r.get("compile_us")
            line += " - | - |" if ours is None else f" {fmt(ours)} | {(comp / ours if comp else math.nan):.2f} |"
        print(line)
    inner = {(v["program"], v["bs"], v["dtype"]): v.get("us") for v in variants if v["variant"] == "searched_inner"}
    if inner:
        print("\nThe default pipeline with its weights declared constant: each call's first kernel waiting for "
              "the call before (MIRAGE_OVERLAP=inner) or overlapping it, us")
        print("| program | bs | dtype | first kernel waits | overlaps | waits / overlaps |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            waits, overlaps = inner.get((r["program"], r["bs"], r["dtype"])), r.get("searched_us")
            if waits and overlaps:
                print(f"| {r['program']} | {r['bs']} | {r['dtype']} | {fmt(waits)} | {fmt(overlaps)} | "
                      f"{waits / overlaps:.2f} |")
    print_tuning(variants)
    print_summary(rows, variants, ATTENTION_TARGETS, "Attention (issue #8)")
    print_summary(rows, variants, TARGETS, "Target programs (issue #7)")


def print_tuning(variants: list) -> None:
    """Per searched program with candidates: each candidate's estimate and replay time, the runtime's
    choice and the model's pick against the fastest."""
    searched = [v for v in variants if v["variant"] == "searched" and v.get("first_call_s") is not None]
    if not searched:
        return
    print("\nTuning (issue #9): candidates of the default pipeline, replay us (estimate); "
          "tuned = the runtime's first-use choice and its program's replay us; ratios to the fastest candidate "
          "(tuned: the tuned program's own replay; c<k>: that candidate loaded on its own)")
    print("| program | bs | dtype | candidates | tuned | tuned us | tuned / fastest | c<tuned> / fastest | model's pick "
          "| model / fastest | first call s | cached call s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for v in searched:
        cands = sorted((c for c in variants if c["dir"] == v["dir"] and "candidate" in c), key=lambda c: c["candidate"])
        times = [c.get("us") for c in cands]
        alive = [t for t in times if t is not None]
        if not alive:
            continue
        fastest = min(alive)
        listed = " / ".join(f"{fmt(t)} ({fmt(c.get('estimate_us'))})" for t, c in zip(times, cands))

        def ratio(k):
            return f"{times[k] / fastest:.2f}" if k is not None and k < len(times) and times[k] else "-"
        tuned = f"{v['us'] / fastest:.2f}" if v.get("us") else "-"
        print(f"| {v['program']} | {v['bs']} | {v['dtype']} | {listed} | c{v['choice']} | {fmt(v.get('us'))} | {tuned} | "
              f"{ratio(v['choice'])} | c{v['model_choice']} | {ratio(v['model_choice'])} | {v['first_call_s']:.2f} | "
              f"{v['cached_call_s']:.3f} |")


if __name__ == "__main__":
    sys.exit(main())
