"""The engine benchmark (bench/engine_bench.py) in its smallest run: checked for the shape
and sense of what it reports, never for speed. skfolio and Riskfolio-Lib are optional:
whichever is absent is reported so, and the checks cover the solvers that ran."""

from __future__ import annotations

import json

import pytest

from bench import engine_bench

QUICK = engine_bench.QUICK


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("engine_bench") / "engine.json"
    engine_bench.main(["--quick", "--out", str(out)])
    return json.loads(out.read_text())


def test_the_quick_run_writes_every_section_and_names_the_machine(results):
    assert {"machine", "libraries", "settings", "erc", "warm_start", "recompute", "table"} <= set(results)
    assert results["machine"]["cpu_model"] and results["machine"]["numpy"]
    assert set(results["libraries"]) == set(engine_bench.LIBRARIES)
    assert len(results["table"]) == len(results["erc"]) + len(results["warm_start"]) + len(results["recompute"])


def test_our_solver_converges_within_its_tolerance_at_every_quick_size(results):
    ours = [r for r in results["erc"] if r["solver"] == engine_bench.OURS]

    assert {(r["covariance"], r["symbols"]) for r in ours} == {
        (model, n) for model in engine_bench.COVARIANCE_MODELS for n in QUICK.erc_sizes}
    for record in ours:
        assert record["status"] == "converged"
        assert record["max_abs_rc_error"] <= engine_bench.TOLERANCE


def test_every_installed_library_solves_each_quick_case_close_to_equal_risk(results):
    installed = {name for name, version in results["libraries"].items() if version[0].isdigit()}
    library_records = [r for r in results["erc"] if r["solver"] != engine_bench.OURS]

    assert {r["solver"] for r in library_records} == installed
    for record in library_records:
        assert record["status"] == "solved", record
        assert record["max_rel_rc_error"] < 1e-3


def test_the_warm_start_converges_or_says_the_perturbed_matrix_has_no_solution(results):
    for record in results["warm_start"]:
        if record["status"] == "no solution for the perturbed matrix":
            assert record["perturbed_min_eigenvalue"] < 0
        else:
            assert record["status"] == "converged"
            assert record["max_abs_rc_error"] <= engine_bench.TOLERANCE


def test_every_quick_recompute_comes_out_dynamic_from_enough_bars(results):
    sizes = [(n, 1) for n in QUICK.recompute_sizes] + [
        (n, QUICK.strategies_in_multi) for n in QUICK.multi_strategy_sizes]

    assert [(r["symbols"], r["strategies"]) for r in results["recompute"]] == sizes
    for record in results["recompute"]:
        assert record["dynamic"] and record["limit_sources"] == ["dynamic"]
        assert record["bars"] - 1 >= 20  # returns, as min_observations in default.yaml asks
        assert record["cold_seconds"] > 0 and record["warm_seconds"] > 0
