"""The runtime's choice among candidate plans (mirage_mlir/tuning.py, runtime.Program's choosing),
without a GPU: the cache of choices (damaged and foreign entries), the median rule, the artifact
key, and when the runtime times, reads the cache, or runs the model's pick (CuPy faked, the timing
replaced by a table)."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

from mirage_mlir import runtime, tuning


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MIRAGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MIRAGE_TUNE", raising=False)


KEY = tuning.cache_key("a" * 64, "main", "NVIDIA H200", 13000)


def test_choices_round_trip_and_bad_entries_are_ignored():
    assert tuning.load(KEY, 3) is None
    tuning.store(KEY, 2, [5.0, None, 4.0])
    assert tuning.load(KEY, 3)["choice"] == 2
    assert tuning.load(KEY, 2) is None  # the artifact has another number of candidates
    for key in (dict(KEY, device="NVIDIA A100"), dict(KEY, driver=12080), dict(KEY, artifact="b" * 64)):
        assert tuning.load(key, 3) is None  # another GPU, driver or artifact: not this entry
    path = next(tuning.cache_dir().glob("*.json"))
    entry = json.loads(path.read_text())
    for damage in ("{not json", json.dumps(dict(entry, choice=7)), json.dumps(dict(entry, choice=1)),
                   json.dumps(dict(entry, key=dict(KEY, function="other"))), json.dumps(dict(entry, version=0)),
                   json.dumps([1, 2])):
        path.write_text(damage)
        assert tuning.load(KEY, 3) is None, damage


def test_the_fastest_median_wins_and_failed_candidates_never():
    choice, times = tuning.fastest([[3.0, 9.0, 3.1], [], [3.2, 3.0, 3.05]])
    assert choice == 2 and times == [3.1, None, 3.05]
    with pytest.raises(ValueError):
        tuning.fastest([[], []])


def test_consecutive_calls_read_past_the_l2():
    l2 = 60 << 20
    assert tuning.consecutive_calls(51 << 20, l2) == 3  # rmsnorm_linear: 153 MB > 120 MB
    assert tuning.consecutive_calls(270 << 20, l2) == 1  # SwiGLU + down reads past L2 alone
    assert tuning.consecutive_calls(2 << 20, l2) == 16  # lora: as many as allowed
    assert tuning.consecutive_calls(0, l2, most=4) == 4


def test_a_sample_takes_the_input_sets_in_turn_for_at_least_the_calls_asked():
    assert tuning.call_order(1, 4) == [0, 0, 0, 0]  # SwiGLU + down: one set, still consecutive calls
    assert tuning.call_order(3, 7) == [0, 1, 2, 0, 1, 2, 0]
    assert tuning.call_order(16, 16) == list(range(16))  # small programs: one call a set


def test_a_candidate_whose_outputs_differ_from_anothers_is_named():
    import numpy as np

    pick = [np.array([1.0, 2.0, np.inf], np.float32)]
    assert tuning.disagreement([pick[0] * (1 + 1e-3)], pick, ["f16"]) is None  # rounding
    assert "non-finite" in tuning.disagreement([np.array([1.0, np.nan, np.inf], np.float32)], pick, ["f16"])
    assert "differs from the reference's by" in tuning.disagreement([pick[0] * 1.1], pick, ["f16"])
    assert tuning.disagreement([pick[0] * (1 + 1e-3)], pick, ["f32"]) is not None  # f32 is held to 1e-4


def test_the_candidates_that_disagree_with_the_most_agreeing_one_are_dropped():
    """A wrong model's pick (listed first) among three or more is dropped, not the right candidates
    that differ from it; with two that disagree nothing tells which is right, and the pick stays."""
    import numpy as np

    right = [np.linspace(1.0, 2.0, 8, dtype=np.float32)]
    wrong = [right[0][::-1].copy()]
    close = [right[0] * (1 + 1e-3)]
    dropped = tuning.consensus({3: wrong, 0: right, 1: close, 2: right}, ["f16"])
    assert list(dropped) == [3] and "the reference: candidate plan 0" in dropped[3]
    assert list(tuning.consensus({0: right, 1: wrong}, ["f16"])) == [1]
    assert list(tuning.consensus({1: wrong, 0: right}, ["f16"])) == [0]
    assert tuning.consensus({0: right, 1: close, 2: right}, ["f16"]) == {}
    assert tuning.consensus({0: right}, ["f16"]) == {}
    nan = [np.full(8, np.nan, np.float32)]  # a candidate that never wrote its output
    assert list(tuning.consensus({0: right, 1: nan, 2: close}, ["f16"])) == [1]
    assert "non-finite values where the reference has none" in tuning.consensus({0: nan, 1: right, 2: right}, ["f16"])[0]
    holey = [np.where(np.arange(8) == 0, np.nan, right[0]).astype(np.float32)]  # agreed by two: the reference
    assert "finite where the reference's are not" in tuning.consensus({0: right, 1: holey, 2: holey}, ["f16"])[0]


def _artifact(tmp_path, candidates: int = 3):
    """A compiled-program directory whose function has `candidates` plans (PTX contents are fake:
    nothing is launched here)."""
    d = tmp_path / "prog"
    d.mkdir()
    kernels = lambda c: [{"name": "main_k0", "ptx": f"c{c}_main.ptx", "grid": [1, 1, 1], "block": [32, 1, 1],
                          "shared_bytes": 0, "args": [["input", 0], ["output", 0]]}]
    for c in range(candidates):
        (d / f"c{c}_main.ptx").write_text(f"// candidate {c}\n")
    spec = {"inputs": [{"shape": [4], "dtype": "f32"}], "outputs": [{"shape": [4], "dtype": "f32"}],
            "temporaries": [], "kernels": kernels(0), "model_choice": 0,
            "candidates": [{"estimate_us": 1.0 + c, "kernels": kernels(c), "temporaries": []} for c in range(candidates)]}
    manifest = {"format": "mirage-gpu", "version": 1, "chip": "sm_90", "entry": "main", "functions": {"main": spec}}
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d


def test_the_cubin_loads_on_its_chip_the_ptx_elsewhere(tmp_path, monkeypatch):
    """mirage-compile's cubins (ptxas's machine code for the manifest's chip) are what a GPU of that
    chip loads: no JIT compilation in the first call's tuning; another GPU, or a missing cubin, loads
    the PTX. The tuning key covers the cubins too."""
    d = _artifact(tmp_path)
    manifest = json.loads((d / "manifest.json").read_text())
    before = tuning.artifact_digest(str(d), manifest)
    manifest["cubins"] = {"c0_main.ptx": "c0_main.cubin", "c1_main.ptx": "c1_main.cubin"}
    (d / "manifest.json").write_text(json.dumps(manifest))
    (d / "c0_main.cubin").write_bytes(b"\x7fELF")
    assert tuning.artifact_digest(str(d), manifest) != before
    capability = {"now": "90"}
    device = lambda k: types.SimpleNamespace(compute_capability=capability["now"])
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(cuda=types.SimpleNamespace(Device=device)))
    program = runtime.load(str(d))
    assert program._module_file("c0_main.ptx", 0) == "c0_main.cubin"
    assert program._module_file("c1_main.ptx", 0) == "c1_main.ptx"  # its cubin is missing
    assert program._module_file("c2_main.ptx", 0) == "c2_main.ptx"  # none was written
    capability["now"] = "80"
    assert program._module_file("c0_main.ptx", 0) == "c0_main.ptx"


def test_artifact_key_follows_the_ptx(tmp_path):
    d = _artifact(tmp_path)
    manifest = json.loads((d / "manifest.json").read_text())
    before = tuning.artifact_digest(str(d), manifest)
    (d / "c2_main.ptx").write_text("// recompiled\n")
    assert tuning.artifact_digest(str(d), manifest) != before


@pytest.fixture
def fake_gpu(monkeypatch):
    """A CuPy with one device and a stream that may be capturing; Program._measure replaced by a
    table of times (recording each call)."""
    capturing = {"now": False}
    stream = types.SimpleNamespace(is_capturing=lambda: capturing["now"])
    cuda = types.SimpleNamespace(
        get_current_stream=lambda: stream,
        runtime=types.SimpleNamespace(getDeviceProperties=lambda d: {"name": b"Fake GPU"},
                                      driverGetVersion=lambda: 13000))
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(cuda=cuda))
    measured = []

    def measure(self, device, like_torch, pointers, outs, budget_s=runtime.TUNE_BUDGET_S):
        measured.append(self.name)
        times = [3.0, 2.0, None]  # candidate 1 fastest, candidate 2 failed to launch
        self.choice[device] = 1
        self.tuning[device] = {"source": "measured", "times_us": times, "choice": 1}

    monkeypatch.setattr(runtime.Program, "_measure", measure)
    return types.SimpleNamespace(measured=measured, capturing=capturing)


def _choose(program) -> int:
    program._choose(0, False, [0], [])
    return program.choice[0]


def test_first_use_times_then_the_cache_answers(tmp_path, fake_gpu):
    d = str(_artifact(tmp_path))
    assert _choose(runtime.load(d)) == 1 and len(fake_gpu.measured) == 1
    again = runtime.load(d)
    assert _choose(again) == 1 and len(fake_gpu.measured) == 1 and again.tuning[0]["source"] == "cache"
    for f in tuning.cache_dir().glob("*.json"):
        f.write_text("damaged")
    assert _choose(runtime.load(d)) == 1 and len(fake_gpu.measured) == 2  # timed again


def test_the_model_pick_runs_untuned(tmp_path, fake_gpu, monkeypatch):
    d = str(_artifact(tmp_path))
    assert _choose(runtime.load(d, tune=False)) == 0
    assert _choose(runtime.load(d, candidate=2)) == 2
    monkeypatch.setenv("MIRAGE_TUNE", "0")
    assert _choose(runtime.load(d)) == 0
    monkeypatch.delenv("MIRAGE_TUNE")
    fake_gpu.capturing["now"] = True  # nothing can be timed inside a CUDA-graph capture
    with pytest.warns(UserWarning, match="during CUDA-graph capture"):
        assert _choose(runtime.load(d)) == 0
    assert not fake_gpu.measured
    with pytest.raises(runtime.RuntimeError_, match="not a candidate 3"):
        runtime.load(d, candidate=3)
    (tmp_path / "one").mkdir()
    single = _artifact(tmp_path / "one", candidates=1)
    assert _choose(runtime.load(str(single))) == 0 and not fake_gpu.measured


def test_mirage_tune_reports_errors_in_one_line(tmp_path):
    def tune(*args):
        return subprocess.run([sys.executable, "-m", "mirage_mlir.tools.mirage_tune", *args],
                              capture_output=True, text=True)

    proc = tune(str(tmp_path / "missing"))
    assert proc.returncode == 1 and "mirage-tune: error: cannot read" in proc.stderr and "Traceback" not in proc.stderr
    proc = tune(str(_artifact(tmp_path)), "--function", "nope")
    assert proc.returncode == 1 and "no function 'nope'" in proc.stderr


def test_mirage_tune_table():
    from mirage_mlir.tools.mirage_tune import format_table

    rows = [{"function": "main", "candidate": 0, "kernels": 1, "estimate_us": 19.2, "measured_us": 22.7,
             "chosen": False, "model_choice": True},
            {"function": "main", "candidate": 1, "kernels": 1, "estimate_us": 21.2, "measured_us": 18.0,
             "chosen": True, "model_choice": False},
            {"function": "main", "candidate": 2, "kernels": 2, "estimate_us": 22.9, "measured_us": None,
             "chosen": False, "model_choice": False}]
    table = format_table(rows).splitlines()
    assert table[2] == "| main | 0 | 1 | 19.20 | 22.70 | (model's pick) |"
    assert table[3] == "| main | 1 | 1 | 21.20 | 18.00 | yes |"
    assert table[4] == "| main | 2 | 2 | 22.90 | failed |  |"


def test_kernel_registers_read_the_ptxas_report():
    """A candidate's kernels find their registers under their file's c<k>: prefix, by kernel-graph
    node (<function>_k<n>); kernels ptxas did not see are left out."""
    from mirage_mlir.lowering.manifest import kernel_registers

    manifest = {"ptxas": {"main_k0": {"registers": 90, "spill_bytes": 0},
                          "c2:main_k0": {"registers": 64, "spill_bytes": 0},
                          "c2:main_k2": {"registers": 40, "spill_bytes": 0}}}
    own = [{"name": "main_k0", "ptx": "main_kernels.ptx"}]
    second = [{"name": "main_k0", "ptx": "c2_main_kernels.ptx"}, {"name": "main_k2", "ptx": "c2_main_kernels.ptx"},
              {"name": "main_k3", "ptx": "c2_main_kernels.ptx"}]
    assert kernel_registers(manifest, own) == {0: 90}
    assert kernel_registers(manifest, second) == {0: 64, 2: 40}
    assert kernel_registers({}, own) == {}


def test_first_kernel_overlaps_unless_inner(tmp_path, monkeypatch):
    """A program compiled with constant inputs marks its first kernel "overlap": launched as a
    programmatic dependent of the work before the call, unless MIRAGE_OVERLAP=inner (or 0)."""
    import contextlib

    d = _artifact(tmp_path, candidates=1)
    manifest = json.loads((d / "manifest.json").read_text())
    second = dict(manifest["functions"]["main"]["kernels"][0], name="main_k1", overlap=True)
    manifest["functions"]["main"]["kernels"][0]["overlap"] = True
    manifest["functions"]["main"]["kernels"].append(second)
    manifest["functions"]["main"].pop("candidates")
    (d / "manifest.json").write_text(json.dumps(manifest))
    module = types.SimpleNamespace(get_function=lambda name: types.SimpleNamespace(name=name))
    cuda = types.SimpleNamespace(Device=lambda device: contextlib.nullcontext())
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(cuda=cuda, RawModule=lambda path: module))
    monkeypatch.setattr(runtime, "overlap_supported", lambda device: True)
    overlaps = lambda: [k.overlap for k in runtime.load(str(d), tune=False)._load(0, 0)]
    assert overlaps() == [True, True]
    monkeypatch.setenv("MIRAGE_OVERLAP", "inner")
    assert overlaps() == [False, True]
