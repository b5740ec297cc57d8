"""mirage-tune: times the candidate plans of a compiled program on this GPU and stores the choice.

  mirage-tune DIR [--function NAME] [--budget SECONDS] [--device N] [--json FILE]

DIR is what `mirage-compile --candidates K` wrote. For each function (or the one named), the
candidates are timed on random inputs of the manifest's shapes and dtypes (CuPy arrays) exactly as
the runtime does on first use (mirage_mlir/runtime.py), the choice is stored in the per-user tuning
cache (so later loads of DIR on this kind of GPU run it without timing), and a table is printed:
function, candidate, kernels, the model's estimate, the measured time, the choice. Imports no MLIR.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

PROG = "mirage-tune"


def random_input(spec: dict, rng: np.random.Generator):
    """A CuPy array of the spec's shape and dtype: normal values / sqrt(last dim) (bf16 as uint16 bits)."""
    import cupy

    shape, dtype = tuple(spec["shape"]), spec["dtype"]
    if dtype == "i32":
        return cupy.asarray(rng.integers(0, 8, size=shape, dtype=np.int32))
    scale = 1.0 / np.sqrt(shape[-1]) if shape else 1.0
    values = (rng.standard_normal(shape) * scale).astype(np.float32)
    if dtype == "bf16":
        return cupy.asarray((values.view(np.uint32) >> 16).astype(np.uint16))
    return cupy.asarray(values.astype({"f16": np.float16, "f32": np.float32, "f64": np.float64}[dtype]))


def tune_directory(directory: str, function: str | None, budget_s: float, device: int) -> list[dict]:
    from mirage_mlir.runtime import Program, RuntimeError_, load

    functions = Program(directory).manifest["functions"]
    # a dispatching function (dynamic size) has no kernels: its specializations are tuned, each a function
    names = [function] if function else [name for name, spec in functions.items() if "dispatch" not in spec]
    programs = [load(directory, name, tune=True) for name in names]  # bad directories fail before the GPU
    if any(not isinstance(p, Program) for p in programs):
        raise RuntimeError_(f"{function} dispatches to its specializations: tune those "
                            f"({', '.join(programs[0].functions)})")
    import cupy

    rows = []
    rng = np.random.default_rng(0)
    with cupy.cuda.Device(device):
        for program in programs:
            args = [random_input(spec, rng) for spec in program.inputs]
            rows += program.tune(*args, budget_s=budget_s)
    return rows


def format_table(rows: list[dict]) -> str:
    lines = ["| function | candidate | kernels | model estimate us | measured us | chosen |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        estimate = "-" if r["estimate_us"] is None else f"{r['estimate_us']:.2f}"
        measured = "failed" if r["measured_us"] is None else f"{r['measured_us']:.2f}"
        mark = ("yes" if r["chosen"] else "") + (" (model's pick)" if r["model_choice"] else "")
        lines.append(f"| {r['function']} | {r['candidate']} | {r['kernels']} | {estimate} | {measured} | {mark.strip()} |")
    return "\n".join(lines)


def _main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("directory", help="a directory written by mirage-compile")
    p.add_argument("--function", default=None, help="tune only this function (default: all)")
    p.add_argument("--budget", type=float, default=1.5, help="seconds of timing per function (default 1.5)")
    p.add_argument("--device", type=int, default=0, help="CUDA device (default 0)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the table as JSON")
    args = p.parse_args(argv)
    from mirage_mlir.runtime import RuntimeError_

    from .errors import ToolError

    try:
        rows = tune_directory(args.directory, args.function, args.budget, args.device)
    except RuntimeError_ as e:
        raise ToolError(str(e)) from None
    except ImportError as e:
        raise ToolError(f"needs CuPy and a CUDA GPU ({e})") from None
    sys.stdout.write(format_table(rows) + "\n")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    return 0


def main(argv: list[str] | None = None) -> int:
    from .errors import run_main  # imports no MLIR

    return run_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
