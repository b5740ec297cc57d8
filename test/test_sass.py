"""benchmarks/sass.py: a kernel's SASS summarized in runs of memory, tensor-core and sync instructions."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

from sass import load_round_trips, summary  # noqa: E402


def test_runs_of_loads_and_their_first_use_show_the_memory_latencies():
    # ntrans's row kernel as ptxas scheduled it: five loads, the first reduction, seven more loads
    instructions = ["ACQBULK", "@!PT LDS RZ, [RZ]"] + ["LDG.E.128 R16, desc[UR8][R2.64]"] * 5 + [
        "HADD2.F32 R55, -RZ, R17.H1_H1", "SHFL.BFLY PT, R2, R3, 0x10, 0x1f"] + [
        "LDG.E.128 R28, desc[UR8][R36.64+0x1800]"] * 7 + [
        "@P0 STS [R11+0xca00], R4", "BAR.SYNC.DEFER_BLOCKING 0x0", "LDGSTS.E.BYPASS.128 [R68+0x80], desc[UR8][R4.64]",
        "LDGDEPBAR", "DEPBAR.LE SB0, 0x0", "LDSM.16.M88.4 R72, [R85]", "HMMA.16816.F32 R12, R72, R80, R12",
        "STG.E.U16 desc[UR4][R2.64], R5"]
    assert summary(instructions) == ("ACQBULK LDG.128x5 SHFL LDG.128x7 STS.32 BAR LDGSTS.128 LDGDEPBAR DEPBAR "
                                     "LDSM HMMA STG.U16")


def test_round_trips_count_loads_issued_after_a_use_of_earlier_loads():
    waited = ["LDG.E.128 R16, desc[UR8][R2.64]", "LDG.E.128 R20, desc[UR8][R2.64+0x800]",
              "HADD2.F32 R55, -RZ, R17.H1_H1",  # reads the first load's data: the warp waits
              "LDG.E.128 R28, desc[UR8][R36.64]", "FADD R1, R28, R29", "@P0 STG.E.128 desc[UR4][R6.64], R20"]
    assert load_round_trips(waited) == 2
    # the same loads all issued first: one latency; loads before the grid wait are not counted
    together = [waited[0], "ACQBULK", waited[1], waited[3], "LDG.E R40, desc[UR8][R20.64]", waited[2], waited[4]]
    assert load_round_trips(together) == 2  # the last load's address is the second load's data
    assert load_round_trips(together[:4] + together[5:]) == 1


def test_round_trips_count_cp_async_copies_issued_after_a_wait_for_earlier_ones():
    copy = "LDGSTS.E.BYPASS.128 [R68+0x80], desc[UR8][R4.64]"
    # a loop of one's copies: weights before the grid wait, X's after it, one wait for both
    assert load_round_trips([copy, "LDGDEPBAR", "ACQBULK", copy, "LDGDEPBAR", "DEPBAR.LE SB0, 0x0", "BAR.SYNC 0x0",
                             "LDSM.16.M88.4 R72, [R85]"]) == 1
    # copies, their wait, then a second batch (a ring's refill in the loop's body) and a register load
    assert load_round_trips([copy, "DEPBAR.LE SB0, 0x0", copy, "LDG.E.128 R16, desc[UR8][R2.64]"]) == 2
    # a ring: its wait leaves two groups in flight, the refill joins the stream
    assert load_round_trips([copy, "LDGDEPBAR", copy, "LDGDEPBAR", copy, "LDGDEPBAR", "DEPBAR.LE SB0, 0x2",
                             "BAR.SYNC 0x0", copy, "LDGDEPBAR"]) == 1


def test_a_cluster_tail_shows_its_barriers_and_peer_loads():
    # the split-K cluster tail: the partial tile stored, a cluster barrier, the peer's tile read
    # through generic loads, the outputs stored, the last cluster barrier
    instructions = ["STS.128 [R6], R12", "MEMBAR.ALL.CTA", "UCGABAR_ARV", "UCGABAR_WAIT", "CCTL.IVALL",
                    "LD.E R8, [R6]", "LD.E.128 R16, [R16]", "LD.E.128 R20, [R20]", "FADD R8, R8, R27",
                    "STG.E.64 desc[UR14][R4.64], R12", "UCGABAR_ARV", "UCGABAR_WAIT", "EXIT"]
    assert summary(instructions) == ("STS.128 UCGABAR_ARV UCGABAR_WAIT CCTL LD.32 LD.128x2 STG.64 UCGABAR_ARV "
                                     "UCGABAR_WAIT")
