"""The soak and overload harness (bench/soak.py) in its smallest run, end to end: checked for
the shape and sense of what it reports, never for speed, flatness or error counts (those
depend on the machine: the harness reports them, `make soak` is where they are read)."""

from __future__ import annotations

import json

import pytest

from bench import soak
from tests.bench.percentiles import assert_ordered_percentiles

QUICK = soak.QUICK
OVERLOAD_LIMIT = 4
"""--max-concurrent-rpcs of the smoke run (the default is QUICK.max_concurrent_rpcs)."""
PHASES = ("baseline", "overload", "recovery", "burst", "recovery_after_burst")


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("soak") / "soak.json"
    soak.main(["--quick", "--max-concurrent-rpcs", str(OVERLOAD_LIMIT), "--out", str(out)])
    return json.loads(out.read_text())


def assert_ordered(summary: dict) -> None:
    """Ordered percentiles when there were calls of that kind."""
    if summary["p50_ms"] is not None:
        assert_ordered_percentiles(summary, ("p50_ms", "p99_ms", "max_ms"))


def assert_accounted(phase: dict) -> None:
    """Every call has one outcome; errors and turned-away calls are among them."""
    assert phase["calls"] > 0
    assert sum(phase["outcomes"].values()) == phase["calls"]
    errors = sum(n for name, n in phase["outcomes"].items() if not name.startswith("DECISION_"))
    assert phase["errors"] == errors >= phase["refused"]
    assert sum(e["calls"] for e in phase["errors_by_code"].values()) == errors - phase["outcomes"].get(
        "corrupt reply", 0)
    for summary in ("all", "admitted", "admitted_service", "refused_latency", "send_lag"):
        assert_ordered(phase[summary])


def test_capacity_is_the_paced_ramp_from_the_best_closed_loop_round(results):
    capacity = results["capacity"]

    assert set(capacity["rounds"]) == {str(clients) for clients in QUICK.capacity_clients}
    best = capacity["rounds"][str(capacity["clients"])]
    assert capacity["closed_loop_per_s"] == best["throughput_per_s"] > 0
    assert best["outcomes"] == {"DECISION_APPROVED": best["calls"]}
    ramp = capacity["ramp"]
    assert [step["target_rate_per_s"] for step in ramp] == pytest.approx(
        [fraction * capacity["closed_loop_per_s"] for fraction in QUICK.ramp_fractions[:len(ramp)]], abs=0.1)
    for step in ramp:
        assert step["calls"] > 0 and sum(step["outcomes"].values()) == step["calls"]
        assert step["shortfalls"] == soak.shortfalls(step, ramp[0])
    # the ramp runs until its first step not sustained, and no further
    assert all(not step["shortfalls"] for step in ramp[:-1])
    assert ramp[-1]["shortfalls"] or len(ramp) == len(QUICK.ramp_fractions)
    assert capacity["sustained"] == (soak.sustained_rate(ramp) is not None)
    assert capacity["throughput_per_s"] == (soak.sustained_rate(ramp) or ramp[0]["target_rate_per_s"])


def test_the_soak_runs_at_the_load_fraction_and_samples_memory_and_descriptors(results):
    run = results["soak"]

    assert run["target_rate_per_s"] == pytest.approx(QUICK.load_fraction * results["capacity"]["throughput_per_s"],
                                                     abs=0.1)
    assert_accounted(run)
    assert set(run["outcomes"]) <= {"DECISION_APPROVED", "error CANCELLED", "error RESOURCE_EXHAUSTED",
                                    "error DEADLINE_EXCEEDED"}
    assert len(run["thirds"]) == 3 and sum(t["calls"] for t in run["thirds"]) == run["calls"]
    assert len(run["samples"]) >= 3
    for sample in run["samples"]:
        assert sample["rss_mb"] > 0 and sample["fds"] > 0 and sample["cpu_s"] >= 0
    for key in ("rss_mb", "fds"):
        flat = run[key]
        assert flat["min"] <= flat["first_third_max"] <= flat["max"]
        assert flat["min"] <= flat["last_third_max"] <= flat["max"]
        assert isinstance(flat["flat"], bool)


def test_every_overload_phase_is_reported_and_every_approval_is_accounted_for(results):
    overload = results["overload"]

    assert overload["max_concurrent_rpcs"] == OVERLOAD_LIMIT != QUICK.max_concurrent_rpcs
    for name in PHASES:
        assert_accounted(overload[name])
    assert overload["burst"]["in_flight"] == QUICK.overload_factor * OVERLOAD_LIMIT
    assert overload["overload"]["target_rate_per_s"] == pytest.approx(
        QUICK.overload_factor * results["capacity"]["throughput_per_s"], abs=0.1)
    integrity = overload["integrity"]
    # correctness, not speed: nothing approved is lost, nothing corrupt, turned-away calls unrecorded
    assert integrity["none_lost"] and integrity["none_made_up"]
    assert integrity["corrupt_replies"] == 0
    replayed, sampled = integrity["approved_replayed"].split("/")
    assert replayed == sampled and int(sampled) > 0
    unrecorded, sampled = integrity["refused_not_recorded"].split("/")
    assert unrecorded == sampled


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_a_limit_below_one_is_refused_before_anything_runs(limit, capsys):
    with pytest.raises(SystemExit) as refused:
        soak.main(["--quick", "--max-concurrent-rpcs", limit])

    assert refused.value.code == 2
    assert "--max-concurrent-rpcs must be 1 or more" in capsys.readouterr().err


def test_the_report_names_the_machine_and_gives_every_row_a_verdict(results):
    assert {"platform", "cpu_model", "cores", "python", "grpcio"} <= set(results["machine"])
    assert len(results["loadavg_before"]) == 3
    assert results["table"]
    for row in results["table"]:
        assert list(row) == ["metric", "value", "target", "verdict"]
        assert row["verdict"] in {"pass", "FAIL", "-"}
        assert (row["verdict"] == "-") == (row["target"] == "")
