"""The benchmark programs of ../shared/BENCHMARKS.md in plain PyTorch (no MLIR), for the GPU scripts.

The same forms as examples/export_torch.py (what torch-mlir lowered to the example files): eager and
torch.compile run these, and `reference` runs them in float64 as the correctness oracle.
Input scales keep exp(Q K) (no max subtraction, as in Mirage) and the matmuls in range for fp16.
"""

from __future__ import annotations

import os

from mirage_mlir.plans import benchmark_shapes

EPS = 1e-6


# Beyond Mirage's set (BENCHMARKS.md), at one size each (bs 1)
EXTRA_SHAPES = {
    "swiglu_down": [(8, 4096), (4096, 11008), (4096, 11008), (11008, 4096)],
    "layernorm_linear16": [(16, 4096), (4096, 4096)],
}
EXTRA_OUTPUTS = {"swiglu_down": (8, 4096), "layernorm_linear16": (16, 4096)}
# at bs 1 and 8 with another program's shapes (stable attention: gqa's; its bs-8 source is the bs-1
# export with the batch dim rewritten, build_gpu.batch_source)
SHAPES_OF = {"stable_attention": "gqa"}
BATCHES = {name: (1, 8) for name in SHAPES_OF}


def shapes(name: str, bs: int) -> list[tuple[int, ...]]:
    if name in EXTRA_SHAPES:
        return EXTRA_SHAPES[name]
    return benchmark_shapes(SHAPES_OF.get(name, name), bs)


# Per-argument scale of the standard normal inputs (ntrans' alpha is uniform in (0, 1)).
SCALES = {
    "gqa": [0.35, 0.35, 1.0],
    "qknorm_gqa": [1.0, 0.125, 1.0],
    "rmsnorm_linear": [1.0, 0.02],
    "lora": [1.0, 0.05, 0.05, 0.05],
    "gated_mlp": [1.0, 0.02, 0.02],
    "ntrans": [1.0, 1.0, None],
    "swiglu_down": [1.0, 0.02, 0.02, 0.02],
    "layernorm_linear16": [1.0, 0.02],
    "stable_attention": [1.0, 1.0, 1.0],
}

NAMES = list(SCALES)


def of_directory(directory: str) -> tuple[str, int, str]:
    """(program, batch size, dtype) of a compiled variant: from its directory's name,
    <program>_bs<bs>_<dtype>_..., else (a copy named otherwise, as knockout.py's) from the source
    file its manifest names, <program>_bs<bs>_<dtype>.mlir."""
    import json
    import re

    def parse(base: str) -> tuple[str, int, str] | None:
        name = next((n for n in sorted(NAMES, key=len, reverse=True) if base.startswith(n + "_")), None)
        m = name and re.match(rf"{name}_bs(\d+)_([a-z0-9]+?)(_|\.mlir$)", base)
        return (name, int(m.group(1)), m.group(2)) if m else None

    found = parse(os.path.basename(directory.rstrip("/")))
    if found is None:
        with open(os.path.join(directory, "manifest.json")) as f:
            found = parse(json.load(f).get("source", ""))
    if found is None:
        raise ValueError(f"{directory}: neither its name nor its manifest's source names a benchmark program")
    return found

# The arguments that are weights: build_gpu.py declares them constant (mirage-compile
# --constant-inputs), as a model's parameters are, so each call's first kernel starts copying them
# while the call before it finishes. ntrans's alpha is nGPT's eigen learning rate, a learned parameter.
WEIGHTS = {"rmsnorm_linear": [1], "lora": [1, 2, 3], "gated_mlp": [1, 2], "swiglu_down": [1, 2, 3],
           "layernorm_linear16": [1], "ntrans": [2]}


def functions(torch):
    F = torch.nn.functional

    def rms_norm(x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS)

    def gqa(q, k, v):
        s = torch.exp(q @ k)
        return (s / s.sum(-1, keepdim=True)) @ v

    def qknorm_gqa(q, k, v):
        s = torch.exp(rms_norm(q) @ k)
        return (s / s.sum(-1, keepdim=True)) @ v

    def rmsnorm_linear(x, w):
        return rms_norm(x) @ w

    def lora(x, w, a, b):
        return x @ w + (x @ a) @ b

    def gated_mlp(x, w1, w2):
        return F.silu(x @ w1) * (x @ w2)

    def ntrans(h, x, alpha):
        return rms_norm(h + alpha * (rms_norm(x) - h))

    def swiglu_down(x, w1, w3, w2):
        return (F.silu(x @ w1) * (x @ w3)) @ w2

    def layernorm_linear16(x, w):
        return F.layer_norm(x, (x.shape[-1],), eps=1e-5) @ w

    def stable_attention(q, k, v):
        return torch.softmax(q @ k * 0.125, -1) @ v

    return {"gqa": gqa, "qknorm_gqa": qknorm_gqa, "rmsnorm_linear": rmsnorm_linear, "lora": lora,
            "gated_mlp": gated_mlp, "ntrans": ntrans, "swiglu_down": swiglu_down,
            "layernorm_linear16": layernorm_linear16, "stable_attention": stable_attention}


def matmuls(torch):
    """The weight programs' matrix products alone, as PyTorch runs them (cuBLAS's Hopper GEMMs: TMA
    copies, wgmma): what the vendor library reaches streaming the same weights, without the norms,
    activations and epilogues around them (SwiGLU's down projection takes X W1 as its input)."""
    return {"rmsnorm_linear": lambda x, w: x @ w,
            "gated_mlp": lambda x, w1, w2: (x @ w1, x @ w2),
            "swiglu_down": lambda x, w1, w3, w2: ((x @ w1) @ w2, x @ w3),
            "layernorm_linear16": lambda x, w: x @ w}


def make_inputs(torch, name: str, bs: int, dtype, generator, device="cuda"):
    out = []
    for shape, scale in zip(shapes(name, bs), SCALES[name]):
        if scale is None:
            x = torch.rand(shape, generator=generator, device=device, dtype=torch.float32) * 0.98 + 0.01
        else:
            x = torch.randn(shape, generator=generator, device=device, dtype=torch.float32) * scale
        out.append(x.to(dtype))
    return out


def reference(torch, name: str, inputs):
    """The program in float64 on the inputs as given (already rounded to their dtype)."""
    return functions(torch)[name](*[x.to(torch.float64) for x in inputs])


def io_bytes(name: str, bs: int, elem_bytes: int) -> int:
    """Bytes of inputs + outputs: the bandwidth floor's numerator."""
    import math

    shp = shapes(name, bs)
    if name in EXTRA_OUTPUTS:
        return elem_bytes * (sum(math.prod(s) for s in shp) + math.prod(EXTRA_OUTPUTS[name]))
    out = {"gqa": (2 * bs, 256, 64), "qknorm_gqa": (2 * bs, 256, 64), "rmsnorm_linear": (2 * bs, 6144),
           "lora": (16, 4096), "gated_mlp": (8 * bs, 4096), "ntrans": (8 * bs, 4096)}[SHAPES_OF.get(name, name)]
    return elem_bytes * (sum(math.prod(s) for s in shp) + math.prod(out))
