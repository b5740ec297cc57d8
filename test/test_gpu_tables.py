"""benchmarks/gpu.py's tables, from a run's JSON (no GPU): the tuning table of issue #9."""

import importlib.util
import os

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "gpu.py")
spec = importlib.util.spec_from_file_location("gpu_tables", SCRIPT)
gpu = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu)


def test_tuning_table_sets_the_tuned_program_beside_its_candidate_loaded_alone(capsys):
    # the tuned program ran c1 in 7.65 us; c1 loaded on its own replayed in 8.21, c0 in 7.65
    common = {"program": "qknorm_gqa", "bs": 1, "dtype": "f16", "dir": "q", "model_choice": 0}
    variants = [
        {**common, "variant": "searched", "us": 7.65, "choice": 1, "first_call_s": 0.11, "cached_call_s": 0.003},
        {**common, "variant": "searched_c0", "candidate": 0, "us": 7.65, "choice": 0, "estimate_us": 6.9},
        {**common, "variant": "searched_c1", "candidate": 1, "us": 8.21, "choice": 1, "estimate_us": 6.9},
    ]
    gpu.print_tuning(variants)
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| qknorm_gqa")]
    assert row == ["| qknorm_gqa | 1 | f16 | 7.65 (6.90) / 8.21 (6.90) | c1 | 7.65 | 1.00 | 1.07 | c0 | 1.00 | 0.11 | 0.003 |"]
