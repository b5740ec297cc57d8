#!/usr/bin/env python3
"""Where a kernel's warps wait, from Nsight Compute's source view (needs no GPU, no MLIR): the warp
stall samples of `ncu --set full` summed by stall reason and by SASS opcode, then the 30 hottest
instructions with their top reasons.

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


def main() -> int:
    rows = list(csv.reader(open(sys.argv[1])))
    head_at = next(i for i, r in enumerate(rows) if "Source" in r)
    head, body = rows[head_at], [r for r in rows[head_at + 1:] if len(r) == len(rows[head_at])]
    source = head.index("Source")
    samples = next(i for i, h in enumerate(head) if h.startswith("Warp Stall Sampling (All"))
    reasons = [i for i, h in enumerate(head) if h.startswith("stall_") and "(Not Issued)" not in h]
    print(f"samples {sum(number(r[samples]) for r in body):.0f}")
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
