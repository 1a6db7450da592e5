"""GET /metrics: the sidecar's own registry in Prometheus text, brought up to date on each scrape."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from riskbudget.v1 import risk_budget_admin_pb2 as apb

from .conftest import ADMIN_HEADERS


async def scrape(http) -> dict[str, list]:
    """Samples by metric family name."""
    async with http.get("/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def labels_of(samples, name: str) -> list[dict]:
    return [sample.labels for sample in samples if sample.name == name]


def value_of(samples, name: str, **labels) -> float:
    (value,) = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return value


async def test_metrics_after_checks_and_a_rebalance_name_every_figure_of_the_sidecar(harness, http):
    await harness.publish_last_prices()
    await harness.check("m-1", 1)
    await harness.check("m-2", 1e6)  # resized by the order-notional and position limits
    await harness.admin.TriggerRebalance(apb.TriggerRebalanceRequest(reason="metrics", requested_by="pytest"),
                                         metadata=harness.admin_metadata)

    families = await scrape(http)

    checks = families["riskbudget_check_trade_seconds"]
    assert value_of(checks, "riskbudget_check_trade_seconds_count", decision="approved") == 1
    assert value_of(checks, "riskbudget_check_trade_seconds_count", decision="resized") == 1
    decisions = families["riskbudget_decisions"]
    assert value_of(decisions, "riskbudget_decisions_total", decision="approved", reason="none") == 1
    assert {"max_order_notional"} <= {labels["reason"] for labels in labels_of(decisions, "riskbudget_decisions_total")
                                      if labels["decision"] == "resized"}
    regime = harness.sidecar.snapshot.regime.value
    assert value_of(families["riskbudget_regime"], "riskbudget_regime", riskbudget_regime=regime) == 1
    utilization = {(labels["scope"], labels["name"])
                   for labels in labels_of(families["riskbudget_utilization"], "riskbudget_utilization")}
    assert {("total", "book"), ("strategy", "trend"), ("strategy", "carry"),
            ("symbol", "AAA"), ("symbol", "DDD")} <= utilization
    assert value_of(families["riskbudget_recommendations"], "riskbudget_recommendations_total",
                    trigger="manual") == 1
    assert value_of(families["riskbudget_store_errors"], "riskbudget_store_errors_total") == 0
    assert "riskbudget_decision_log_backlog" in families
    assert "riskbudget_decision_log_overflowed" in families
    assert value_of(families["riskbudget_overrides_active"], "riskbudget_overrides_active") == 0
    assert value_of(families["riskbudget_budget_version"], "riskbudget_budget_version") \
        == harness.sidecar.snapshot.version
    success = {labels["metric"] for labels in labels_of(families["riskbudget_success"], "riskbudget_success")}
    assert {"budget_utilization", "regime_response_p50", "regime_response_max", "overrides_per_day",
            "capital_efficiency", "return_since_start"} == success


async def test_a_scrape_refreshes_the_gauges_an_override_set_over_http_counts_at_once(harness, http):
    async with http.post("/api/overrides", headers=ADMIN_HEADERS, json={"override": {
            "scope": "OVERRIDE_SCOPE_SYMBOL", "target": "AAA", "kind": "OVERRIDE_KIND_RESTRICT_SYMBOL",
            "set_by": "ops", "reason": "metrics"}}) as response:
        assert response.status == 200

    families = await scrape(http)

    assert value_of(families["riskbudget_overrides_active"], "riskbudget_overrides_active") == 1
    per_day = value_of(families["riskbudget_success"], "riskbudget_success", metric="overrides_per_day")
    assert per_day == harness.sidecar.success.summary(harness.clock.now()).overrides_per_day
