#!/usr/bin/env python3
"""Where a kernel's warps wait, from Nsight Compute's source view (needs no GPU, no MLIR): the warp
stall samples of `ncu --set full` summed by stall reason and by SASS opcode, split at the kernel's
main loop (its widest backward branch: before, in, after it; the split that showed gated_mlp bs8's
split-K tail, H200 run 198), then the 30 hottest instructions with their top reasons.

  ncu --clock-control none --set full --import-source no -k regex:^main_k0$ -c 1 -o prof \\
      python3 benchmarks/profile_one.py DIR [CANDIDATE]
  ncu --import prof.ncu-rep --page source --csv --print-source sass > prof.csv
  python3 benchmarks/ncu_stalls.py prof.csv
"""

from __future__ import annotations

import csv
import sys


def number(text: str) -> float:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return 0.0


def main_loop(body: list[list[str]], address: int, source: int) -> tuple[int, int] | None:
    """(first, last) row of the widest backward branch's span: the kernel's main loop; None if none."""
    rows = {int(r[address], 16): k for k, r in enumerate(body)}
    spans = []
    for k, r in enumerate(body):
        words = r[source].replace(",", " ").split()
        if "BRA" in (w.split(".")[0] for w in words):
            target = next((int(w.rstrip(";"), 16) for w in words if w.startswith("0x")), None)
            if target in rows and rows[target] < k:
                spans.append((rows[target], k))
    return max(spans, key=lambda span: span[1] - span[0], default=None)


def main() -> int:
    rows = list(csv.reader(open(sys.argv[1])))
    head_at = next(i for i, r in enumerate(rows) if "Source" in r)
    head, body = rows[head_at], [r for r in rows[head_at + 1:] if len(r) == len(rows[head_at])]
    source = head.index("Source")
    samples = next(i for i, h in enumerate(head) if h.startswith("Warp Stall Sampling (All"))
    reasons = [i for i, h in enumerate(head) if h.startswith("stall_") and "(Not Issued)" not in h]
    total = sum(number(r[samples]) for r in body)
    print(f"samples {total:.0f}")
    loop = main_loop(body, head.index("Address"), source)
    if loop is not None and total:
        first, last = loop
        parts = [body[:first], body[first:last + 1], body[last + 1:]]
        print("by phase: " + ", ".join(f"{name} {sum(number(r[samples]) for r in part) / total:.0%}" for name, part
                                         in zip(("before the loop", "the loop", "after the loop"), parts))
              + f" (the loop: rows {first}-{last})")
    by_reason = {head[i]: sum(number(r[i]) for r in body) for i in reasons}
    print("by reason:", ", ".join(f"{k[len('stall_'):]} {v:.0f}" for k, v in
                                  sorted(by_reason.items(), key=lambda e: -e[1]) if v))
    by_opcode: dict[str, float] = {}
    for r in body:
        words = [w for w in r[source].split() if not w.startswith("@")]
        opcode = words[0].split(".")[0] if words else "?"
        by_opcode[opcode] = by_opcode.get(opcode, 0.0) + number(r[samples])
    print("by opcode:", ", ".join(f"{k} {v:.0f}" for k, v in sorted(by_opcode.items(), key=lambda e: -e[1])[:16] if v))
    hottest = sorted(range(len(body)), key=lambda i: -number(body[i][samples]))[:30]
    for i in sorted(hottest):
        r = body[i]
        top = sorted(((number(r[j]), head[j][len("stall_"):]) for j in reasons), reverse=True)[:3]
        print(f"{i:5d} {number(r[samples]):6.0f}  {r[source][:70]:70s} " + ", ".join(f"{k} {v:.0f}" for v, k in top if v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
