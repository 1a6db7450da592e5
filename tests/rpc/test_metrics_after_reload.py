"""The utilization gauges follow the config: a strategy a reload renames loses its series."""

from __future__ import annotations

from riskbudget.v1 import risk_budget_admin_pb2 as apb

from .test_reload_and_alerts import edit_config, rename_strategy


def utilization_series(harness) -> set[tuple[str, str]]:
    harness.sidecar.refresh_metrics()  # what a scrape does
    return {(sample.labels["scope"], sample.labels["name"])
            for family in harness.sidecar.metrics.registry.collect() for sample in family.samples
            if sample.name == "riskbudget_utilization"}


async def test_a_strategy_renamed_by_a_reload_leaves_no_series_frozen_at_its_last_value(harness):
    """Found by a tester: /metrics kept riskbudget_utilization{scope="strategy",name="trend"}
    at its last value after a reload renamed it, and every rename added another."""
    before = utilization_series(harness)
    edit_config(harness, lambda data: rename_strategy(data, "trend", "trend_v2"))
    reply = await harness.admin.ReloadConfig(apb.ReloadConfigRequest(requested_by="pytest"),
                                             metadata=harness.admin_metadata)
    after = utilization_series(harness)

    assert reply.reloaded, reply.errors
    assert ("strategy", "trend") in before and ("strategy", "trend") not in after
    assert after == before - {("strategy", "trend")} | {("strategy", "trend_v2")}
