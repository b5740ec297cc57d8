#!/usr/bin/env python3
"""What a compiled program's kernels run, from their SASS (cuobjdump on the cubins mirage-compile
wrote; no GPU): per kernel its registers and spills, then its memory, tensor-core and
synchronization instructions in order, runs of one kind counted:

  ACQBULK (griddepcontrol.wait), LDG / STG (global loads and stores, with their width), LDGSTS
  (cp.async), LDGDEPBAR / DEPBAR (cp.async commit / wait), LDS / STS, LDSM (ldmatrix), HMMA (mma),
  HGMMA / WARPGROUP (wgmma and its arrive / wait),
  SHFL, BAR, UCGABAR_ARV / UCGABAR_WAIT (a cluster barrier's arrive and wait), LD (generic loads: a
  cluster peer's shared memory), RED / ATOM, CCTL (L2 prefetch)

A warp issues in order, so a run of loads that ends where an instruction uses their data is one
memory latency; `LDG.128x5 ... SHFL ... LDG.128x7` is two (counted in each kernel's first line, in
the straight-line text: a loop's body once). `--full` prints every instruction.

  pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm
  python benchmarks/sass.py DIR [--candidate K] [--full]
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

KINDS = ("ACQBULK", "LDGSTS", "LDGDEPBAR", "DEPBAR", "LDG", "STG", "LDSM", "LDS", "STS", "LD", "HMMA", "HGMMA", "WARPGROUP",
         "SHFL", "BAR", "UCGABAR_ARV", "UCGABAR_WAIT", "RED", "ATOM", "CCTL")
INSTRUCTION = re.compile(r"^\s+/\*[0-9a-f]{4}\*/\s+(.*?)\s*;")


def cuobjdump() -> str | None:
    """cuobjdump on PATH, else the one pip's nvidia-cuda-cuobjdump wheel installs."""
    found = shutil.which("cuobjdump")
    spec = importlib.util.find_spec("nvidia")
    for root in ([] if found or spec is None else list(spec.submodule_search_locations)):
        found = next(iter(glob.glob(os.path.join(root, "cu*", "bin", "cuobjdump"))), None)
        if found:
            break
    return found


def kernels(cubin: str, tool: str) -> dict[str, list[str]]:
    """{kernel: its instructions}, from cuobjdump -sass (its nvdisasm beside it on PATH)."""
    env = dict(os.environ, PATH=os.path.dirname(tool) + os.pathsep + os.environ.get("PATH", ""))
    text = subprocess.run([tool, "-sass", cubin], capture_output=True, text=True, check=True, env=env).stdout
    out: dict[str, list[str]] = {}
    name = None
    for line in text.splitlines():
        if "Function :" in line:
            name = line.split(":", 1)[1].strip()
            out[name] = []
        elif name and (m := INSTRUCTION.match(line)):
            out[name].append(m.group(1))
    return out


def kind(instruction: str) -> str | None:
    """The instruction's kind as summarized (a global access with its width: LDG.128), or None."""
    words = instruction.split()
    if not words or (words[0].startswith("@!PT")):
        return None
    opcode = words[1] if words[0].startswith("@") else words[0]
    base = opcode.split(".")[0]
    if base not in KINDS:
        return None
    if base in ("LDG", "STG", "LDGSTS", "LDS", "STS", "LD"):
        width = next((p for p in opcode.split(".")[1:] if p in ("64", "128", "U16", "U8")), "32")
        return f"{base}.{width}"
    return base


STORES = ("STG", "STS", "ST", "STL", "RED", "STSM")
REGISTER = re.compile(r"\bR(\d+)(\.64)?")


def _registers(operand: str, count: int = 0) -> set[int]:
    """The registers an operand names (`count` from its first: a load's destination vector)."""
    out = set()
    for number, pair in REGISTER.findall(operand):
        n = int(number)
        out.update(range(n, n + (count or (2 if pair else 1))))
    return out


def load_round_trips(instructions: list[str]) -> int:
    """Memory round trips after the grid-dependency wait (from the start without one) in the
    straight-line text (a loop's body counted once): a warp issues in order, so loads issued after
    an instruction that reads an earlier load's destination, or cp.async copies issued after a wait
    for all earlier ones (DEPBAR to 0; a ring's waits leave groups in flight), wait for those first."""
    start = max((k + 1 for k, ins in enumerate(instructions) if kind(ins) == "ACQBULK"), default=0)
    rounds, pending, copying = 0, set(), False
    for ins in instructions[start:]:
        words = ins.split(None, 2 if ins.startswith("@") else 1)
        if ins.startswith("@"):
            words = words[1:]
        if not words or ins.startswith("@!PT"):
            continue
        opcode, operands = words[0], (words[1] if len(words) > 1 else "").split(",")
        base = opcode.split(".")[0]
        reads = operands if base in STORES else operands[1:]
        if pending & set().union(*map(_registers, reads)):
            pending = set()  # the warp waits here for the round's data
        # a wait for every copy group (a ring's waits leave its younger groups in flight)
        copying = copying and not (base == "DEPBAR" and operands[-1].strip() in ("0x0", "0"))
        if base in ("LDG", "LDGSTS"):
            rounds += not (pending or copying)
            if base == "LDGSTS":
                copying = True
            else:
                width = next((int(p) // 32 for p in opcode.split(".")[1:] if p in ("64", "128")), 1)
                pending |= _registers(operands[0], width)
    return rounds


def summary(instructions: list[str]) -> str:
    runs: list[list] = []
    for k in filter(None, map(kind, instructions)):
        if runs and runs[-1][0] == k:
            runs[-1][1] += 1
        else:
            runs.append([k, 1])
    return " ".join(k if n == 1 else f"{k}x{n}" for k, n in runs)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("directory")
    p.add_argument("--candidate", type=int, default=None, help="only this candidate's kernels")
    p.add_argument("--full", action="store_true", help="every instruction, not the summary")
    args = p.parse_args()
    tool = cuobjdump()
    if tool is None:
        print("sass.py: cuobjdump not found (pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm)",
              file=sys.stderr)
        return 1
    with open(os.path.join(args.directory, "manifest.json")) as f:
        manifest = json.load(f)
    ptxas = manifest.get("ptxas", {})
    for ptx, cubin in manifest.get("cubins", {}).items():
        prefix = m.group(1) if (m := re.match(r"(c\d+)_", ptx)) else ""  # candidate c's files: c<c>_*.ptx
        if args.candidate is not None and prefix != ("" if args.candidate == 0 else f"c{args.candidate}"):
            continue
        for name, instructions in kernels(os.path.join(args.directory, cubin), tool).items():
            figures = ptxas.get(f"{prefix}:{name}" if prefix else name, {})
            print(f"{ptx} {name}: {figures.get('registers', '?')} registers, {figures.get('spill_bytes', '?')} "
                  f"bytes spilled, {load_round_trips(instructions)} memory round trips after the grid wait")
            print("\n".join(instructions) if args.full else "  " + summary(instructions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
