"""The runtime's choice among a compiled function's candidate plans, and the per-user cache of choices.

`mirage-compile --candidates K` keeps up to K verified plans per function (manifest "candidates", the
model's pick first). On first use on a GPU the runtime times them (mirage_mlir/runtime.py) and runs
the fastest; the choice is stored here, keyed by the artifact's content (manifest and PTX files), the
function, the device name and the driver version, so a later load of the same artifact on the same
kind of GPU skips the timing. An entry that does not parse, has another format, was written for
another key, or names a candidate the function does not have is ignored (and the timing redone).

Location: $MIRAGE_CACHE_DIR/tuning, else ~/.cache/mirage-mlir/tuning. No MLIR, no GPU needed here.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import statistics
import tempfile
from pathlib import Path

FORMAT = "mirage-tuning"
VERSION = 2  # 2: candidates timed as consecutive calls (choices timed one call at a time are redone)


def switched_on(variable: str) -> bool:
    """An environment switch: on unless set to 0/false/off/no."""
    return os.environ.get(variable, "1").strip().lower() not in ("0", "false", "off", "no")


def enabled() -> bool:
    """Tuning is on unless MIRAGE_TUNE is 0/false/off (then the model's pick runs)."""
    return switched_on("MIRAGE_TUNE")


def cache_dir() -> Path:
    return Path(os.environ.get("MIRAGE_CACHE_DIR") or Path.home() / ".cache" / "mirage-mlir") / "tuning"


def artifact_digest(directory: str, manifest: dict) -> str:
    """sha256 over the manifest and every PTX and cubin file it names (a recompiled artifact is a new
    key)."""
    h = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode())
    files = sorted({k["ptx"] for entry in manifest["functions"].values()
                    for spec in [entry] + entry.get("candidates", []) for k in spec.get("kernels", [])}
                   | set(manifest.get("cubins", {}).values()))
    for name in files:
        h.update(name.encode())
        path = os.path.join(directory, name)
        if os.path.exists(path):  # a cubin may be left out: the runtime then loads the PTX
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def cache_key(artifact: str, function: str, device: str, driver: int) -> dict:
    return {"artifact": artifact, "function": function, "device": device, "driver": int(driver)}


def _path(key: dict) -> Path:
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return cache_dir() / f"{name}.json"


def load(key: dict, candidates: int) -> dict | None:
    """The stored choice for `key` ({"choice", "times_us"}), or None when absent, damaged or foreign."""
    try:
        with open(_path(key), encoding="utf-8") as f:
            entry = json.load(f)
        if entry.get("format") != FORMAT or entry.get("version") != VERSION or entry.get("key") != key:
            return None
        choice, times = entry["choice"], entry["times_us"]
        if not isinstance(choice, int) or not 0 <= choice < candidates or len(times) != candidates:
            return None
        if times[choice] is None:  # a candidate that failed is never the choice
            return None
        return entry
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def store(key: dict, choice: int, times_us: list) -> None:
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        entry = {"format": FORMAT, "version": VERSION, "key": key, "choice": choice, "times_us": times_us}
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(entry, f)
        os.replace(tmp, _path(key))
    except OSError:
        pass  # a read-only cache is not an error: the next load times again


TOLERANCE = {"f16": 1e-2, "bf16": 1e-2, "f32": 1e-4, "f64": 1e-8, "i32": 0.0}


def disagreement(got: list, expected: list, dtypes: list[str]) -> str | None:
    """Why one candidate's outputs (float host arrays) are not another's on the same inputs, or None:
    non-finite values where the other has none, or a relative difference ||got - expected|| /
    ||expected|| beyond the dtype's tolerance."""
    import numpy as np

    for k, (g, e, dtype) in enumerate(zip(got, expected, dtypes)):
        finite = np.isfinite(e)
        if not np.isfinite(g[finite]).all():
            return f"output {k} has non-finite values where the reference has none"
        diff = float(np.linalg.norm(g[finite] - e[finite]))  # (g - e) would subtract inf from inf
        scale = float(np.linalg.norm(e[finite]))
        if diff > TOLERANCE[dtype] * max(scale, 1e-30):
            return f"output {k} differs from the reference's by {diff / max(scale, 1e-30):.1e} (relative)"
    return None


def consensus(outputs: dict, dtypes: list[str]) -> dict:
    """Which candidates to drop, and why ({candidate: reason}), from their outputs on the same inputs
    (`outputs`: {candidate: float host arrays}, the model's pick first). Every candidate is verified
    as a mu-graph, so all should agree; one that does not was lowered or assembled wrong (ptxas -O3
    miscompiled a gated_mlp plan that the SIMT emulator ran right: NOTES.md, session 26). The
    reference is the candidate that agrees with the most others (the first such in order: the
    model's pick where it ties), so a wrong model's pick among three or more is dropped, not the
    right ones that differ from it."""
    order = list(outputs)
    agreeing = {frozenset(pair) for pair in itertools.combinations(order, 2)
                if disagreement(outputs[pair[0]], outputs[pair[1]], dtypes) is None
                and disagreement(outputs[pair[1]], outputs[pair[0]], dtypes) is None}
    reference = max(order, key=lambda c: sum(c in pair for pair in agreeing))  # max keeps the first of equals
    why = lambda c: (disagreement(outputs[c], outputs[reference], dtypes)
                     or "its outputs are finite where the reference's are not")
    return {c: f"{why(c)} (the reference: candidate plan {reference})" for c in order
            if c != reference and frozenset((c, reference)) not in agreeing}


def consecutive_calls(input_bytes: int, l2_bytes: int, most: int = 16) -> int:
    """How many consecutive calls a timing runs over rotated copies of the inputs: enough that they
    read more than twice the L2 cache in all (so none reads its inputs from L2), at most `most`."""
    return max(1, min(most, -(-2 * l2_bytes // max(input_bytes, 1))))


def call_order(sets: int, calls: int = 16) -> list[int]:
    """The input set each of a timing sample's consecutive calls reads: the sets in turn, at least
    `calls` calls. A sample of only a few calls (a weight-sized program has 1-3 sets) times mostly its
    first call, which follows the L2 flush and overlaps nothing, where a model's next layer overlaps
    the one before (gated_mlp bs8's fused 2-split plan: 24.6 us in 2-call samples, 22.8 in gpu.py's
    long replays, H200 run 140)."""
    return [k % sets for k in range(max(sets, calls))]


def fastest(samples: list) -> tuple[int, list]:
    """(index of the fastest candidate, median time of each) from per-candidate lists of sampled times;
    a candidate with no samples (it failed) has time None and is never chosen."""
    times = [statistics.median(s) if s else None for s in samples]
    alive = [k for k, t in enumerate(times) if t is not None]
    if not alive:
        raise ValueError("no candidate ran")
    return min(alive, key=lambda k: (times[k], k)), times


__all__ = ["artifact_digest", "cache_key", "call_order", "consecutive_calls", "consensus", "disagreement", "enabled",
           "fastest", "load", "store"]
