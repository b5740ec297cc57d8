"""benchmarks/ncu_stalls.py: a kernel's warp stall samples from ncu's source view, split at its main loop."""

import os
import subprocess
import sys

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCHMARKS)

from ncu_stalls import main_loop  # noqa: E402

HEAD = ["Address", "Source", "Warp Stall Sampling (All Samples)", "stall_barrier", "stall_long_sb"]


def row(address: int, source: str, barrier: int, long_sb: int) -> list[str]:
    return [hex(address), source, str(barrier + long_sb), str(barrier), str(long_sb)]


# a prologue, a K loop with an inner copy loop (a short backward branch), and a split-K tail
BODY = [row(0x00, "LDC R1, c[0x0][0x28]", 0, 2),
        row(0x10, "LDGSTS.E.BYPASS.128 [R39], desc[UR12][R8.64]", 0, 2),
        row(0x20, "BAR.SYNC.DEFER_BLOCKING 0x0", 10, 0),
        row(0x30, "IADD3 R2, R2, 0x1, RZ", 0, 0),
        row(0x40, "@!P1 BRA 0x30", 0, 0),
        row(0x50, "DEPBAR.LE SB0, 0x3", 0, 40),
        row(0x60, "@P6 BRA 0x20", 8, 0),
        row(0x70, "MEMBAR.ALL.GPU", 0, 0),
        row(0x80, "ERRBAR", 30, 0),
        row(0x90, "EXIT", 0, 0)]


def test_the_main_loop_is_the_widest_backward_branch():
    assert main_loop(BODY, 0, 1) == (2, 6)  # not the inner loop (3-4)
    assert main_loop(BODY[:4], 0, 1) is None


def test_samples_are_split_before_in_and_after_the_loop(tmp_path):
    csv = tmp_path / "prof.csv"
    lines = ['"Kernel Name","main_k0",', ",".join(f'"{h}"' for h in HEAD)]
    lines += [",".join(f'"{v}"' for v in r) for r in BODY]
    csv.write_text("\n".join(lines) + "\n")
    out = subprocess.run([sys.executable, os.path.join(BENCHMARKS, "ncu_stalls.py"), str(csv)],
                         capture_output=True, text=True, check=True).stdout
    # 92 samples: 4 before the loop, 58 in it, 30 after it
    assert "samples 92" in out
    assert "by phase: before the loop 4%, the loop 63%, after the loop 33% (the loop: rows 2-6)" in out
    assert "by reason: barrier 48, long_sb 44" in out
