"""GET /api/status: the gRPC replies' own numbers, and what the dashboard shows beside them."""

from __future__ import annotations

import dataclasses

from google.protobuf.json_format import MessageToDict

from riskbudget.v1 import risk_budget_admin_pb2 as apb
from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import types_pb2 as pb

from riskbudget_sidecar.rpc.converters import timestamp
from tests.rpc.conftest import T0


def as_json(message) -> dict:
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


async def get_status(http) -> dict:
    async with http.get("/api/status") as response:
        assert response.status == 200, await response.text()
        assert response.headers["Cache-Control"] == "no-store"
        return await response.json()


async def test_the_budget_and_utilization_are_exactly_what_grpc_answers(harness, http):
    await harness.publish_last_prices()
    await harness.check("s-1", 100, symbol="BBB")

    status = await get_status(http)
    budget = (await harness.stub.GetBudget(spb.GetBudgetRequest())).budget
    utilization = await harness.stub.GetUtilization(spb.GetUtilizationRequest())

    assert status["budget"] == as_json(budget)
    assert status["utilization"] == as_json(utilization)
    trend = next(s for s in status["budget"]["strategies"] if s["strategy"] == "trend")
    expected = next(s for s in budget.strategies if s.strategy == "trend")
    assert (trend["allocated_capital"], trend["leverage_limit"], trend["max_gross_exposure"]) == (
        expected.allocated_capital, expected.leverage_limit, expected.max_gross_exposure)
    bbb = next(s for s in status["utilization"]["symbols"] if s["symbol"] == "BBB")
    assert bbb["position_notional"] > 0 and {"near_limit", "breached"} <= set(bbb)


async def test_the_status_lists_history_overrides_states_alerts_and_the_success_metrics(harness, http):
    override = (await harness.admin.SetOverride(apb.SetOverrideRequest(override=pb.Override(
        scope=pb.OVERRIDE_SCOPE_STRATEGY, target="carry", kind=pb.OVERRIDE_KIND_SCALE_LEVERAGE, value=0.5,
        set_by="ops", reason="desk review", expires_at=timestamp(T0 + 600))),
        metadata=harness.admin_metadata)).override
    await harness.admin.SetTradingState(apb.SetTradingStateRequest(
        state=pb.TRADING_STATE_REDUCING, strategy="trend", reason="test", set_by="ops"),
        metadata=harness.admin_metadata)

    status = await get_status(http)

    assert status["now"] == "2027-01-15T08:00:00Z"
    assert status["regime_history"] == [
        {"regime": f"REGIME_{regime.name}", "since": timestamp(since).ToJsonString()}
        for regime, since in harness.sidecar.regime_history]
    assert status["overrides"] == [as_json(override)]
    assert set(status["overrides"][0]) >= {"id", "scope", "target", "kind", "value", "regime", "set_by", "reason",
                                           "created_at", "expires_at"}
    assert status["trading_states"] == {
        "book": "TRADING_STATE_ACTIVE",
        "strategies": {"trend": "TRADING_STATE_REDUCING", "carry": "TRADING_STATE_ACTIVE"}}
    kinds = [alert["kind"] for alert in status["alerts"]]
    assert kinds[:2] == ["ALERT_KIND_TRADING_STATE_CHANGED", "ALERT_KIND_OVERRIDE_SET"]  # newest first
    assert status["success"] == dataclasses.asdict(harness.sidecar.success.summary(harness.clock.now()))
    # the override halved carry's targets: recommended at once
    assert status["stream"] == {"subscribers": 0, "max_lag": 0, "oldest_sequence": 1, "last_sequence": 1}
    assert set(status["decision_log"]) == {"backlog", "overflowed"}


async def test_recent_recommendations_are_the_last_twenty_newest_first(harness, http):
    for index in range(25):
        await harness.admin.TriggerRebalance(apb.TriggerRebalanceRequest(reason=f"r{index}", requested_by="ops"),
                                             metadata=harness.admin_metadata)

    status = await get_status(http)

    assert [int(r["sequence"]) for r in status["recommendations"]] == list(range(25, 5, -1))
    assert status["recommendations"][0]["triggers"] == ["RECOMMENDATION_TRIGGER_MANUAL"]
    assert status["recommendations"][0]["reason"].startswith("r24")
    assert status["stream"]["last_sequence"] == 25


async def test_recent_decisions_are_the_decision_logs_records_newest_first(harness, http):
    await harness.publish_last_prices()
    for index in range(3):
        await harness.check(f"d-{index}", 1 + index)
    assert harness.sidecar.store.flush(5.0)

    status = await get_status(http)

    assert [d["order"]["client_order_id"] for d in status["decisions"]] == ["d-2", "d-1", "d-0"]
    assert status["decisions"][0]["decision"]["decision"] == "approved"
    assert status["decisions"][0]["decision"]["approved_quantity"] == 3

