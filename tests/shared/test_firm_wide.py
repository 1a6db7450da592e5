"""Several sidecars sharing firm-wide limits through a real Valkey server."""

from __future__ import annotations

import asyncio

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from riskbudget.v1 import risk_budget_admin_pb2 as apb
from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import types_pb2 as pb
from riskbudget_sidecar.app.serve import stop
from tests.rpc.conftest import start_harness
from tests.store.valkey import ValkeyProcess


@pytest.fixture
def valkey(tmp_path):
    server = ValkeyProcess(tmp_path / "valkey").start()
    yield server
    server.stop()


async def sidecar(tmp_path, name: str, valkey: ValkeyProcess, **overrides):
    directory = tmp_path / name
    directory.mkdir()
    return await start_harness(directory, shared__url=valkey.url, shared__timeout=0.2, **overrides)


@pytest.fixture
async def pair(tmp_path, valkey):
    first = await sidecar(tmp_path, "first", valkey, shared__owned_strategies=["trend"])
    second = await sidecar(tmp_path, "second", valkey, shared__owned_strategies=["carry"])
    yield first, second
    for running in (first, second):
        await running.channel.close()
        await stop(running.sidecar, running.server)


async def eventually(condition, timeout: float = 5.0) -> None:
    """Wait for a change that travels through the server's channel."""
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.02)


async def test_two_sidecars_never_jointly_pass_a_symbols_limit(pair):
    first, second = pair
    prices = await first.publish_last_prices()
    await second.publish(prices)
    limit = first.sidecar.snapshot.symbols["AAA"].max_position_notional
    most = int(limit / prices["AAA"])

    one = await first.check("o-first", round(most * 0.7))
    other = await second.check("o-second", round(most * 0.7))

    assert one.decision == pb.DECISION_APPROVED
    assert other.decision == pb.DECISION_RESIZED
    assert (one.approved_quantity + other.approved_quantity) * prices["AAA"] <= limit
    firm_wide = [r for r in other.reasons if "firm-wide" in r.message]
    assert [r.code for r in firm_wide] == [pb.REASON_CODE_SYMBOL_POSITION_LIMIT]


async def test_a_halt_set_through_one_sidecar_reaches_the_other(pair):
    first, second = pair
    await second.publish_last_prices()

    await first.admin.SetTradingState(apb.SetTradingStateRequest(state=pb.TRADING_STATE_HALTED),
                                      metadata=first.admin_metadata)

    async def halted() -> bool:
        return (await second.check(f"o-{asyncio.get_running_loop().time()}", 1)).decision == pb.DECISION_REJECTED
    await eventually(halted)
    decision = await second.check("o-halted", 1)
    assert [r.code for r in decision.reasons] == [pb.REASON_CODE_TRADING_HALTED]


async def test_an_override_set_through_one_sidecar_applies_in_the_other_and_names_itself(pair):
    first, second = pair
    await second.publish_last_prices()

    reply = await first.admin.SetOverride(apb.SetOverrideRequest(override=pb.Override(
        scope=pb.OVERRIDE_SCOPE_SYMBOL, target="CCC", kind=pb.OVERRIDE_KIND_RESTRICT_SYMBOL,
        set_by="ops", reason="test")), metadata=first.admin_metadata)

    async def restricted() -> bool:
        budget = (await second.stub.GetBudget(spb.GetBudgetRequest())).budget
        return [o.id for o in budget.overrides] == [reply.override.id]
    await eventually(restricted)
    decision = await second.check("o-restricted", 1, strategy="carry", symbol="CCC")
    assert decision.decision == pb.DECISION_REJECTED
    assert list(decision.override_ids) == [reply.override.id]


async def test_without_the_server_checks_fail_closed_health_drops_and_all_recovers(pair, valkey):
    first, second = pair
    await first.publish_last_prices()
    held = await first.check("o-before", 10)
    health = health_pb2_grpc.HealthStub(first.channel)

    valkey.stop()
    refused = await first.check("o-during", 10)

    async def not_serving() -> bool:
        reply = await health.Check(health_pb2.HealthCheckRequest())
        return reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    await eventually(not_serving)
    valkey.start()

    async def serving() -> bool:
        reply = await health.Check(health_pb2.HealthCheckRequest())
        return reply.status == health_pb2.HealthCheckResponse.SERVING
    await eventually(serving)
    after = await first.check("o-after", 10)
    reserved = {r.client_order_id for r in await first.sidecar.store.ledger.reservations()}
    alerts = await first.stub.ListAlerts(spb.ListAlertsRequest())

    assert held.decision == pb.DECISION_APPROVED
    assert refused.decision == pb.DECISION_REJECTED
    assert [r.code for r in refused.reasons] == [pb.REASON_CODE_STATE_UNAVAILABLE]
    assert after.decision == pb.DECISION_APPROVED
    assert {"o-before", "o-after"} <= reserved  # the server came back empty: reconciled
    assert any("unavailable" in a.message for a in alerts.alerts)


async def test_a_positions_snapshot_is_refused_for_a_strategy_of_another_sidecar(pair):
    first, _ = pair

    with pytest.raises(Exception) as refused:
        await first.stub.SetPositions(spb.SetPositionsRequest(positions=[
            pb.Position(strategy="carry", symbol="CCC", quantity=5)]))

    assert "traded through another sidecar" in str(refused.value)
