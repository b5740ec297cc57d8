"""benchmarks/calibrate.py, the fit of the cost model's constants to GPU timings (issue #9), on a run
made up by the model itself with known constants: the fit must find constants that rank the plans as
the timings do, and report runs it did not see."""

import json
import os
import sys
from dataclasses import replace

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import calibrate  # noqa: E402

from mirage_mlir.search import cost  # noqa: E402

SWEEPS = {"rmsnorm_linear": [(64, 64, 128), (64, 128, 128), (128, 64, 256), (32, 128, 128), (128, 128, 128)],
          "gated_mlp": [(64, 128, 128), (32, 128, 128), (64, 64, 256), (128, 64, 128), (32, 64, 256)]}
# the chip the made-up timings come from: values on the fit's grids, away from the defaults
TRUTH = {"sm_bandwidth": float(calibrate.GRIDS["sm_bandwidth"][7]),
         "mem_latency_us": float(calibrate.GRIDS["mem_latency_us"][15])}


def made_up_run(path, chip, programs=tuple(SWEEPS)) -> None:
    """A gpu.py --json run whose times are the model's estimates under `chip`."""
    variants = []
    for program in programs:
        sweep = SWEEPS[program]
        for bs in (1, 8):
            for name in ["published"] + [f"c{c}_k{k}_t{t}" for c, k, t in sweep]:
                v = {"dir": f"{program}_bs{bs}_f16_{name}", "program": program, "bs": bs, "dtype": "f16", "variant": name}
                v["us"] = cost.cost(calibrate.variant_graph(v), chip).total_us
                variants.append(v)
    path.write_text(json.dumps({"variants": variants}))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    truth = replace(cost.chip("sm_90"), **TRUTH)
    fitted, holdout = tmp_path_factory.mktemp("runs") / "fitted.json", tmp_path_factory.mktemp("runs") / "holdout.json"
    made_up_run(fitted, truth)
    made_up_run(holdout, truth, ["gated_mlp"])
    return fitted, holdout


def test_the_fit_ranks_the_plans_as_the_timings_do(runs):
    points = calibrate.load_points([str(runs[0])], None)
    assert len(points) == 2 * 2 * 6
    start = cost.chip("sm_90")
    fitted, score = calibrate.fit(points, start, names=tuple(TRUTH))
    assert score == pytest.approx(calibrate.rank_score(points, fitted))
    assert score > calibrate.rank_score(points, start)
    rows = calibrate.ranking(points, fitted)
    assert len(rows) == 4 and all(rho == pytest.approx(1.0) and pick == 1.0 for _, _, rho, pick in rows)
    assert calibrate.loss(points, fitted) < 1e-6  # the timings' own constants, found on the grid
    assert {name: getattr(fitted, name) for name in TRUTH} == pytest.approx(TRUTH)


def test_the_log_objective_fits_absolute_times(runs):
    points = calibrate.load_points([str(runs[0])], None)
    fitted, value = calibrate.fit(points, cost.chip("sm_90"), names=tuple(TRUTH), objective="log")
    assert -value == pytest.approx(calibrate.loss(points, fitted)) and -value < 1e-6


def test_the_command_reports_the_held_out_run(runs, capsys, monkeypatch):
    fitted, holdout = runs
    monkeypatch.setattr(calibrate, "FITTED", tuple(TRUTH))  # two constants: a short fit
    monkeypatch.setattr(sys, "argv", ["calibrate.py", str(fitted), "--holdout", str(holdout)])
    assert calibrate.main() == 0
    out = capsys.readouterr().out
    assert "fitted constants (rank), held-out runs" in out
    held = out.split("fitted constants (rank), held-out runs")[1]
    assert "mean Spearman 1.00; pick within 10% of the fastest in 2 of 2" in held
    assert "| gated_mlp | 8 | f16 | 6 | 1.00 | 1.00 |" in held


def test_each_program_is_ranked_with_constants_fitted_to_the_others(runs, capsys):
    """--by-program: rmsnorm_linear's groups ranked by a fit to gated_mlp's plans and the other way
    round; the made-up timings come from one chip, so either program's fit ranks the other's right."""
    points = calibrate.load_points([str(runs[0])], None)
    calibrate.by_program(points, cost.chip("sm_90"), names=tuple(TRUTH))
    out = capsys.readouterr().out
    assert "each program held out" in out
    assert "| rmsnorm_linear | 8 | f16 | 6 | 1.00 | 1.00 |" in out and "| gated_mlp | 1 | f16 | 6 | 1.00 | 1.00 |" in out
    assert "mean Spearman 1.00; pick within 10% of the fastest in 4 of 4" in out


def test_plans_priced_alike_share_their_rank():
    """Spearman's rho with average ranks for ties: the same plan twice (a published plan the search
    also keeps) is not ordered by where it was listed (run 137's ntrans: 0.5 with ranks by position)."""
    assert list(calibrate.average_ranks([4.2, 4.2, 5.7])) == [0.5, 0.5, 2.0]
    assert calibrate.spearman([4.2, 4.2, 5.7], [1.81, 1.80, 2.31]) == pytest.approx(3 ** 0.5 / 2)
    assert calibrate.spearman([4.2, 4.2, 5.7], [1.80, 1.81, 2.31]) == pytest.approx(3 ** 0.5 / 2)
    assert calibrate.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1)


def test_candidates_only_keeps_the_default_pipelines_plans(tmp_path):
    """--candidates: the plans the model's pick chooses among (searched_c<k>, their mu-graphs from the
    build's candidates.json), not the hand plans beside them nor an experiment's build of the same
    candidates (searched_ch4_c<k>: build_gpu.py --chains)."""
    from mirage_mlir.plans import PLANS, benchmark_inputs
    from mirage_mlir.search.cache import graph_to_json

    graph = PLANS["rmsnorm_linear"](benchmark_inputs("rmsnorm_linear", 1, "f16"), col_tile=32)
    for build in ("searched", "searched_ch4"):
        (tmp_path / f"rmsnorm_linear_bs1_f16_{build}").mkdir()
        (tmp_path / f"rmsnorm_linear_bs1_f16_{build}" / "candidates.json").write_text(
            json.dumps({"main": [{"estimate_us": 1.0, "graph": graph_to_json(graph)}]}))
    common = {"program": "rmsnorm_linear", "bs": 1, "dtype": "f16", "us": 15.0}
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"variants": [
        dict(common, dir="rmsnorm_linear_bs1_f16_searched", variant="searched_c0", candidate=0),
        dict(common, dir="rmsnorm_linear_bs1_f16_searched_ch4", variant="searched_ch4_c0", candidate=0, us=14.0),
        dict(common, dir="rmsnorm_linear_bs1_f16_published", variant="published")]}))
    assert len(calibrate.load_points([f"{run}:{tmp_path}"], None)) == 3
    (point,) = calibrate.load_points([f"{run}:{tmp_path}"], None, candidates_only=True)
    assert point[0] == graph and point[1] == 15.0


def test_detail_prints_each_variant_with_the_models_terms(runs, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["calibrate.py", str(runs[1]), "--detail", "gated_mlp"])
    assert calibrate.main() == 0
    out = capsys.readouterr().out
    assert "gated_mlp 8 f16 published: " in out and "gated_mlp 1 f16 c32_k128_t128: " in out
    assert out.count(" / ") == 1 + 12 and "bandwidth" in out and "fitted" not in out  # the header, 12 variants; no fit
    assert " threads, " in out and " an SM: " in out
