"""benchmarks/compare_runs.py: two runs side by side, or one run's variants against their experiment
forms (--suffix)."""

import json
import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "compare_runs.py")


def variant(name, us, candidate=None):
    v = {"program": "lora", "bs": 1, "dtype": "f16", "variant": name, "us": us}
    return v if candidate is None else dict(v, candidate=candidate)


def compare(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)


def test_each_variant_against_its_experiment_form(tmp_path):
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"variants": [
        variant("sk_c64_t128", 2.0), variant("sk_c64_t128_ch4", 1.5), variant("sk_c64_t256", 2.2),
        variant("searched_c3", 4.0, 3), variant("searched_ch4_c3", 5.0, 3)]}))
    proc = compare(str(run), "--suffix", "_ch4")
    assert proc.returncode == 0, proc.stderr
    assert "| lora | 1 | f16 | sk_c64_t128 | 2.00 | 1.50 | 0.750 |" in proc.stdout
    assert "| lora | 1 | f16 | searched_c3 | 4.00 | 5.00 | 1.250 |" in proc.stdout
    assert "sk_c64_t256 |" not in proc.stdout  # no experiment form: nothing to compare


def test_two_runs_side_by_side(tmp_path):
    before, after = tmp_path / "a.json", tmp_path / "b.json"
    before.write_text(json.dumps({"variants": [variant("searched", 2.0)]}))
    after.write_text(json.dumps({"variants": [variant("searched", 1.0)]}))
    proc = compare(str(before), str(after))
    assert "| lora | 1 | f16 | searched | 2.00 | 1.00 | 0.500 |" in proc.stdout
    assert "searched: geomean after / before 0.500 over 1 variants" in proc.stdout
    assert compare(str(before)).returncode == 2  # neither AFTER.json nor --suffix
