#!/usr/bin/env python3
"""The runtime drops a candidate plan that computes wrong, even when it is the model's pick (on the
GPU machine; imports no MLIR). Adds a one-kernel program's kernel to a searched artifact of the same
program as its last candidate, makes it the model's pick, then runs the artifact untuned (the pick
runs) and tuned (`tuning.consensus` compares the candidates' outputs), each against the float64
reference. H200 run 160 (NOTES.md, session 26), with the gated_mlp plan ptxas -O3 miscompiles:

  python benchmarks/build_gpu.py -o DIR --only gated_mlp --dtypes f16 --sweep --tiles c32_k256_t128
  python benchmarks/consensus_demo.py DIR/gated_mlp_bs8_f16_searched DIR/gated_mlp_bs8_f16_c32_k256_t128
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]


def with_extra_pick(searched: str, extra: str, out: str) -> None:
    """`searched` copied to `out` with `extra`'s kernel as its last candidate and the model's pick."""
    shutil.copytree(searched, out, ignore=shutil.ignore_patterns("*gpu.mlir"))
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    with open(os.path.join(extra, "manifest.json")) as f:
        (kernel,) = json.load(f)["functions"]["main"]["kernels"]
    function = manifest["functions"]["main"]
    c = len(function["candidates"])
    for suffix in ("ptx", "cubin"):
        shutil.copy(os.path.join(extra, f"main_kernels.{suffix}"), os.path.join(out, f"c{c}_main_kernels.{suffix}"))
    function["candidates"].append({"estimate_us": 0.0, "kernels": [dict(kernel, ptx=f"c{c}_main_kernels.ptx")],
                                   "temporaries": []})
    function["model_choice"] = c
    manifest["cubins"][f"c{c}_main_kernels.ptx"] = f"c{c}_main_kernels.cubin"
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


def main() -> int:
    searched, extra = sys.argv[1:3]
    os.environ["MIRAGE_CACHE_DIR"] = tempfile.mkdtemp()  # no cached choice
    import torch
    from check_gpu import torch_dtype
    from programs import make_inputs, of_directory, reference

    from mirage_mlir.runtime import load

    base = os.path.basename(searched.rstrip("/"))
    name, bs, dtype = of_directory(searched)
    artifact = os.path.join(tempfile.mkdtemp(), base)
    with_extra_pick(searched, extra, artifact)
    inputs = make_inputs(torch, name, bs, torch_dtype(torch, dtype), torch.Generator(device="cuda").manual_seed(3))
    ref = reference(torch, name, inputs)
    for tune in (False, True):
        program = load(artifact, tune=tune)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = program(*inputs, poison=True)
            torch.cuda.synchronize()
        err = float(torch.linalg.vector_norm(out.double() - ref) / torch.linalg.vector_norm(ref))
        print(f"tuned {tune}: ran candidate {program.choice[torch.cuda.current_device()]} "
              f"(the model's pick: {program.model_choice}), rel err {err:.2e}")
        for w in caught:
            print(f"  warning: {w.message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
