"""The gRPC benchmark harness (bench/rpc_load.py) in its smallest run, end to end: checked for
the shape and sense of what it reports, never for speed."""

from __future__ import annotations

import json
import math

import pytest

from bench import rpc_load
from tests.bench.percentiles import assert_ordered_percentiles

QUICK = rpc_load.QUICK
DECISIONS = {"DECISION_APPROVED", "DECISION_RESIZED", "DECISION_REJECTED"}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("rpc_load") / "results.json"
    rpc_load.main(["--quick", "--out", str(out)])
    return json.loads(out.read_text())


def calls_per_cell(samples: int, rounds: int, clients: int) -> int:
    return math.ceil(samples / rounds / clients) * clients * rounds


def assert_sensible_latencies(summary: dict, calls: int) -> None:
    assert summary["calls"] == calls
    assert summary["errors"] == 0
    assert sum(summary["outcomes"].values()) == calls
    assert_ordered_percentiles(summary, ("p50_ms", "p99_ms", "p999_ms", "max_ms"))
    assert summary["throughput_per_s"] > 0


def test_the_quick_run_compares_check_trade_with_the_no_op_on_every_transport(results):
    floor = results["transport_floor"]

    assert set(floor) == set(QUICK.transports)
    for by_clients in floor.values():
        assert set(by_clients) == {str(clients) for clients in QUICK.client_counts}
        for clients, cell in by_clients.items():
            calls = calls_per_cell(QUICK.samples, QUICK.rounds, int(clients))
            assert_sensible_latencies(cell["check_trade"], calls)
            assert_sensible_latencies(cell["no_op"], calls)
            assert cell["check_trade"]["outcomes"] == {"DECISION_APPROVED": calls}
            assert cell["no_op"]["outcomes"] == {"SERVING": calls}
            assert all(ratio > 0 for ratio in cell["ratios"].values())


def test_the_quick_run_reads_the_sidecars_cpu_per_call_of_each_kind(results):
    for by_clients in results["transport_floor"].values():
        for cell in by_clients.values():
            for kind in ("check_trade", "no_op"):
                cpu = cell[kind]["sidecar_cpu_us_per_call"]
                assert cpu["event_loop"] > 0  # every call runs on the event loop
                assert cpu["other_threads"] >= 0


def test_the_quick_run_measures_check_trade_idle_and_loaded(results):
    load = results["under_load"]
    calls = calls_per_cell(QUICK.load_samples, QUICK.load_rounds, QUICK.load_clients)

    for condition in ("idle", "loaded"):
        assert_sensible_latencies(load[condition], calls)
        assert set(load[condition]["outcomes"]) <= DECISIONS
    assert (load["symbols"], load["subscribers"]) == (QUICK.load_symbols, QUICK.load_subscribers)
    assert load["stream_failures"] == []
    assert load["ratios"]["p99"] > 0


def test_the_quick_run_times_every_regime_change_it_causes(results):
    regime = results["regime_response"]

    assert regime["changes"] == regime["measured"] == QUICK.regime_changes
    assert regime["missed"] == 0
    assert sum(regime["transitions"].values()) == regime["changes"]
    assert_ordered_percentiles(regime, ("p50_ms", "p99_ms", "max_ms"))
    assert regime["server_p50_ms"] > 0


def test_the_quick_run_reads_the_sidecars_memory_for_each_symbol_count(results):
    memory = results["memory"]

    assert list(memory) == [str(count) for count in QUICK.memory_symbols]
    for figures in memory.values():
        assert 0 < figures["vm_rss_mb"] <= figures["vm_hwm_mb"]
        assert figures["startup_s"] > 0


def test_the_report_names_the_machine_and_gives_every_row_a_verdict(results):
    assert {"platform", "cpu_model", "cores", "python", "grpcio"} <= set(results["machine"])
    assert results["table"]
    for row in results["table"]:
        assert list(row) == ["metric", "value", "target", "verdict"]
        assert row["verdict"] in {"pass", "FAIL", "-"}
        assert (row["verdict"] == "-") == (row["target"] == "")
