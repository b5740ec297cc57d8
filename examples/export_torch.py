#!/usr/bin/env python3
"""Lower the benchmark programs from PyTorch to linalg-on-tensors MLIR.

Developer script. It regenerates the MLIR input files the project ships:

  examples/<name>_bs<bs>_<dtype>.mlir      full-size benchmark programs
  test/inputs/<name>_small_<dtype>.mlir    the same programs at small shapes, for fast CPU tests

Each program is written the way model code writes it, in plain torch ops, and lowered with

  torch_mlir.fx.export_and_import(module, *args, output_type="linalg-on-tensors")

i.e. exactly what a user of torch-mlir would hand to our converter. The output is written as
printed (no canonicalization, no cleanup) behind one `//` header line; the function is always
`@main` (torch-mlir's name for the exported forward).

torch and torch-mlir are NOT runtime dependencies of mirage-mlir: only this script needs them.
It was run with torch 2.13.0 (CPU) and torch-mlir 20261001:

  pip install torch==2.13.0 torch-mlir==20261001
  python examples/export_torch.py                   # write all files, then parse-check them
  python examples/export_torch.py --check-only      # only parse-check + print the op table
  python examples/export_torch.py --only swiglu_down,layernorm_linear16   # write just these

After writing, every file is parsed with the project's MLIR python bindings (`mlir.ir`,
upstream 22.1.8) and a table of op kinds per file is printed (it is copied into
examples/README.md).

Notes
- All tensors, weights included, are arguments of the forward (no nn.Parameter), so torch-mlir
  materializes no dense constants: the files stay small. The only constants are scalars
  (eps, the softmax scale, 0, 1, -inf, the mean divisor).
- f16: the modules are exported with float16 example inputs. torch.export traces with fake
  tensors, so no f16 CPU kernel ever runs and every op traces in f16 on CPU; nothing special
  was needed. torch-mlir then decides the precision of each op itself (matmuls accumulate in
  f32 and truncate, silu/softmax/layer_norm upcast to f32, sums and means stay f16).
- rms_norm is the brief's formula x * rsqrt(mean(x^2, -1) + 1e-6) with no weight and no upcast
  (torch.nn.functional.rms_norm would lower differently).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EXAMPLES_DIR = HERE
SMALL_DIR = os.path.join(ROOT, "test", "inputs")

MISSING_MSG = """\
examples/export_torch.py needs torch and torch-mlir, which are NOT dependencies of mirage-mlir
(only this developer script uses them). Install them first, e.g.

    pip install torch==2.13.0 torch-mlir==20261001

(error: {err})"""

EPS = 1e-6


def _import_torch():
    try:
        import torch  # noqa: F401
        from torch_mlir import fx  # noqa: F401
    except ImportError as e:  # pragma: no cover - developer script
        sys.exit(MISSING_MSG.format(err=e))
    import torch
    from torch_mlir import fx
    return torch, fx


# ----------------------------------------------------------------------------------------
# The programs. Built lazily so that --check-only works without torch.
# ----------------------------------------------------------------------------------------

def make_programs(torch):
    nn = torch.nn
    F = torch.nn.functional

    def rms_norm(x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS)

    class Gqa(nn.Module):
        def forward(self, q, k, v):
            s = torch.exp(q @ k)
            return (s / s.sum(-1, keepdim=True)) @ v

    class QkNormGqa(nn.Module):
        def forward(self, q, k, v):
            s = torch.exp(rms_norm(q) @ k)
            return (s / s.sum(-1, keepdim=True)) @ v

    class RmsNormLinear(nn.Module):
        def forward(self, x, w):
            return rms_norm(x) @ w

    class Lora(nn.Module):
        def forward(self, x, w, a, b):
            return x @ w + (x @ a) @ b

    class GatedMlp(nn.Module):
        def forward(self, x, w1, w2):
            return F.silu(x @ w1) * (x @ w2)

    class NTrans(nn.Module):
        def forward(self, h, x, alpha):
            return rms_norm(h + alpha * (rms_norm(x) - h))

    class StableAttention(nn.Module):
        def forward(self, q, k, v):
            return torch.softmax(q @ k * 0.125, dim=-1) @ v

    class SwiGlu(nn.Module):
        def forward(self, x, w1, w3, w2):
            return (F.silu(x @ w1) * (x @ w3)) @ w2

    class LayerNormLinear(nn.Module):
        def forward(self, x, w):
            return F.layer_norm(x, (x.shape[-1],)) @ w

    def attn(b, m, d, n):
        return {"Q": [b, m, d], "K": [b, d, n], "V": [b, n, d]}

    # name -> (module class, formula, full-size shapes(bs) or None, small shapes or None, bs list)
    # (small None: no test/inputs file, the program is the same as an earlier one's)
    rms = "rms_norm(x) = x * rsqrt(mean(x^2, -1) + 1e-6)"
    return [
        ("gqa", Gqa,
         "O = (exp(Q@K) / sum(exp(Q@K), -1)) @ V",
         lambda bs: attn(2 * bs, 256, 64, 4096), attn(2, 16, 16, 64), [1, 8]),
        ("qknorm_gqa", QkNormGqa,
         "O = (exp(rms_norm(Q)@K) / sum(exp(rms_norm(Q)@K), -1)) @ V; " + rms,
         lambda bs: attn(2 * bs, 256, 64, 4096), attn(2, 16, 16, 64), [1, 8]),
        ("rmsnorm_linear", RmsNormLinear,
         "O = rms_norm(X) @ W; " + rms,
         lambda bs: {"X": [2 * bs, 4096], "W": [4096, 6144]},
         {"X": [4, 64], "W": [64, 128]}, [1, 8]),
        ("lora", Lora,
         "O = X@W + (X@A)@B",
         lambda bs: {"X": [16, 256], "W": [256, 4096], "A": [256, 16], "B": [16, 4096]},
         {"X": [16, 64], "W": [64, 128], "A": [64, 16], "B": [16, 128]}, [1, 8]),
        ("gated_mlp", GatedMlp,
         "O = silu(X@W1) * (X@W2)",
         lambda bs: {"X": [8 * bs, 4096], "W1": [4096, 4096], "W2": [4096, 4096]},
         {"X": [8, 64], "W1": [64, 128], "W2": [64, 128]}, [1, 8]),
        ("ntrans", NTrans,
         "O = rms_norm(H + alpha * (rms_norm(X) - H)); " + rms,
         lambda bs: {"H": [8 * bs, 4096], "X": [8 * bs, 4096], "alpha": [8 * bs, 4096]},
         {"H": [8, 64], "X": [8, 64], "alpha": [8, 64]}, [1, 8]),
        ("stable_attention", StableAttention,
         "O = softmax(Q@K * 0.125, -1) @ V (torch.softmax: row max subtracted)",
         lambda bs: attn(2 * bs, 256, 64, 4096), attn(2, 16, 16, 64), [1]),
        ("swiglu", SwiGlu,
         "O = (silu(X@W1) * (X@W3)) @ W2",
         lambda bs: {"X": [8 * bs, 4096], "W1": [4096, 4096], "W3": [4096, 4096],
                     "W2": [4096, 4096]},
         {"X": [8, 64], "W1": [64, 128], "W3": [64, 128], "W2": [128, 64]}, [1]),
        ("layernorm_linear", LayerNormLinear,
         "O = layer_norm(X, (last dim,), no affine, eps 1e-5) @ W",
         lambda bs: {"X": [2 * bs, 4096], "W": [4096, 6144]},
         {"X": [2, 64], "W": [64, 128]}, [1]),
        # Larger variants of swiglu and layernorm_linear (small shapes: see those).
        ("swiglu_down", SwiGlu,
         "O = (silu(X@W1) * (X@W3)) @ W2",
         lambda bs: {"X": [8 * bs, 4096], "W1": [4096, 11008], "W3": [4096, 11008],
                     "W2": [11008, 4096]},
         None, [1]),
        ("layernorm_linear16", LayerNormLinear,
         "O = layer_norm(X, (last dim,), no affine, eps 1e-5) @ W",
         lambda bs: {"X": [16 * bs, 4096], "W": [4096, 4096]},
         None, [1]),
    ]


def _shapes_str(shapes):
    return ", ".join(f"{k} [{','.join(map(str, v))}]" for k, v in shapes.items())


def export_one(torch, fx, cls, shapes, dtype):
    args = [torch.zeros(*s, dtype=dtype) for s in shapes.values()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = fx.export_and_import(cls().eval(), *args, output_type="linalg-on-tensors")
    text = module.operation.get_asm(enable_debug_info=False)
    if "dense<" in text or "dense_resource<" in text:
        raise RuntimeError(f"{cls.__name__}: torch-mlir materialized a dense constant")
    return text


def write_all(only=None):
    torch, fx = _import_torch()
    import importlib.metadata as md
    tm_ver = md.version("torch-mlir")
    t_ver = torch.__version__.split("+")[0]
    dtypes = {"f16": torch.float16, "f32": torch.float32}
    os.makedirs(SMALL_DIR, exist_ok=True)
    written = []
    programs = make_programs(torch)
    unknown = (only or set()) - {p[0] for p in programs}
    if unknown:
        sys.exit(f"--only: unknown program(s): {', '.join(sorted(unknown))}")
    for name, cls, formula, full, small, bss in programs:
        if only and name not in only:
            continue
        jobs = [(os.path.join(EXAMPLES_DIR, f"{name}_bs{bs}_{{dt}}.mlir"), full(bs), f"bs {bs}")
                for bs in bss]
        if small is not None:
            jobs.append((os.path.join(SMALL_DIR, f"{name}_small_{{dt}}.mlir"), small, "small"))
        for path_t, shapes, tag in jobs:
            for dt, tdt in dtypes.items():
                path = path_t.format(dt=dt)
                text = export_one(torch, fx, cls, shapes, tdt)
                header = (f"// {name} ({tag}, {dt}): {formula}; shapes {_shapes_str(shapes)}. "
                          f"Generated by examples/export_torch.py with torch-mlir {tm_ver} "
                          f"(torch {t_ver}); do not edit by hand, rerun the script.\n")
                with open(path, "w") as f:
                    f.write(header + text.rstrip("\n") + "\n")
                written.append(path)
                print(f"wrote {os.path.relpath(path, ROOT)}", file=sys.stderr)
    return written


# ----------------------------------------------------------------------------------------
# Check: parse with the project's bindings and count op kinds.
# ----------------------------------------------------------------------------------------

def all_files():
    import glob
    files = sorted(glob.glob(os.path.join(EXAMPLES_DIR, "*_bs*_f*.mlir")))
    files += sorted(glob.glob(os.path.join(SMALL_DIR, "*_small_f*.mlir")))
    return files


def _fmt(counter):
    return ", ".join(f"{k} x{v}" for k, v in sorted(counter.items()))


def check(files):
    import mlir.ir as ir

    rows = []
    with ir.Context() as ctx:
        ctx.allow_unregistered_dialects = False
        for path in files:
            with open(path) as f:
                src = f.read()
            module = ir.Module.parse(src)  # raises ir.MLIRError on failure
            if not module.operation.verify():
                raise RuntimeError(f"{path}: does not verify")
            top, body = Counter(), Counter()

            def visit_block(block, counter, nested):
                for op in block.operations:
                    name = op.operation.name
                    counter[name] += 1
                    # Descend only into linalg.generic payloads; named linalg ops
                    # (matmul, batch_matmul, fill) carry an implicit body that the
                    # printed text does not show.
                    if name == "linalg.generic":
                        for region in op.operation.regions:
                            for b in region.blocks:
                                visit_block(b, body, nested)

            for op in module.body.operations:  # func.func
                for region in op.operation.regions:
                    for b in region.blocks:
                        visit_block(b, top, top)
            rows.append((os.path.relpath(path, ROOT), top, body))

    print("| file | ops in @main (top level) | ops in linalg.generic bodies |")
    print("|---|---|---|")
    for rel, top, body in rows:
        print(f"| {rel} | {_fmt(top)} | {_fmt(body)} |")
    print(f"\nparsed and verified {len(rows)} files with mlir.ir (upstream MLIR bindings)",
          file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check-only", action="store_true",
                    help="do not export; only parse the existing files and print the table")
    ap.add_argument("--only", metavar="NAME[,NAME...]",
                    help="export only these programs (and check only their files)")
    a = ap.parse_args()
    only = set(a.only.split(",")) if a.only else None
    files = None
    if not a.check_only:
        files = write_all(only)
    if files is None or not only:
        files = all_files()
    if not files:
        sys.exit("no .mlir files found; run without --check-only first")
    check(files)


if __name__ == "__main__":
    main()
