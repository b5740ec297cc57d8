#!/usr/bin/env python3
"""Runs one compiled benchmark variant a few times on fresh inputs, for a profiler to watch
(imports no MLIR). Its directory name says the program, batch and type: <program>_bs<bs>_<dtype>_...

  ncu --clock-control none --section SpeedOfLight -k regex:_k -c 1 python3 benchmarks/profile_one.py DIR [CANDIDATE]

CANDIDATE: an index into the manifest's candidates (default: the model's pick, untuned).
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]


def main() -> int:
    import torch
    from check_gpu import torch_dtype
    from programs import make_inputs, of_directory

    from mirage_mlir.runtime import load

    directory = sys.argv[1]
    name, bs, dtype = of_directory(directory)
    candidate = int(sys.argv[2]) if len(sys.argv) > 2 else None
    program = load(directory, tune=False, candidate=candidate)
    gen = torch.Generator(device="cuda").manual_seed(0)
    inputs = make_inputs(torch, name, bs, torch_dtype(torch, dtype), gen)
    for _ in range(3):
        program(*inputs)
    torch.cuda.synchronize()
    return 0


if __name__ == "__main__":
    sys.exit(main())
