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


def test_target_table_sets_the_library_matmuls_beside_ours(capsys):
    # gated_mlp bs8: ours 21.5 us, cuBLAS's two products alone 19.0, floor 16.6
    row = {"program": "gated_mlp", "bs": 8, "dtype": "f16", "floor_us": 16.6, "read_us": 17.0, "eager_us": 26.6,
           "compile_us": 25.0, "searched_us": 21.5, "matmuls_us": 19.0}
    variants = [{"program": "gated_mlp", "bs": 8, "dtype": "f16", "variant": "searched", "us": 21.5}]
    gpu.print_summary([row], variants, [("gated_mlp", 8)], "Target programs")
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("| gated_mlp")]
    assert line == ["| gated_mlp | 8 | f16 | 16.6 | 17.0 | 26.6 | 25.0 | 21.5 | 1.16 | 77% | 79% | 21.5 (searched) "
                    "| 1.16 | 77% | 19.0 | 87% |"]
