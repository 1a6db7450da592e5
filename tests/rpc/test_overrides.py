"""Operator overrides through RiskBudgetAdminService: scope, expiry, and their effect on decisions."""

from __future__ import annotations

import asyncio
import threading

import grpc
import pytest

from riskbudget.v1 import risk_budget_admin_pb2 as apb
from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import types_pb2 as pb
from riskbudget_sidecar.rpc.converters import timestamp
from riskbudget_sidecar.store.errors import StoreError

from .conftest import T0


async def set_override(harness, **fields) -> pb.Override:
    override = pb.Override(set_by="pytest", reason="test", **fields)
    reply = await harness.admin.SetOverride(apb.SetOverrideRequest(override=override),
                                            metadata=harness.admin_metadata)
    return reply.override


async def budget(harness) -> pb.Budget:
    return (await harness.stub.GetBudget(spb.GetBudgetRequest())).budget


async def test_capping_a_symbols_position_changes_its_limit_and_the_decisions_it_affects(harness):
    prices = await harness.publish_last_prices()

    override = await set_override(harness, scope=pb.OVERRIDE_SCOPE_SYMBOL, target="AAA",
                                  kind=pb.OVERRIDE_KIND_CAP_SYMBOL_POSITION, value=1_000.0)
    after = await budget(harness)
    decision = await harness.check("o-capped", 100)
    other = await harness.check("o-other", 1, symbol="BBB")

    aaa = {s.symbol: s for s in after.symbols}["AAA"]
    assert override.id and override.created_at.seconds == int(T0)
    assert aaa.max_position_notional == pytest.approx(1_000.0)
    assert aaa.limit_source == pb.LIMIT_SOURCE_OVERRIDE
    assert [o.id for o in after.overrides] == [override.id]
    assert decision.approved_quantity <= 1_000.0 / prices["AAA"]
    assert pb.REASON_CODE_SYMBOL_POSITION_LIMIT in [r.code for r in decision.reasons]
    assert list(decision.override_ids) == [override.id]
    assert list(other.override_ids) == []


async def test_an_override_set_while_a_budget_is_being_computed_is_in_the_budget_it_returns_with(
        harness, monkeypatch):
    """Found by a reviewer: the recompute in flight (from a price) cleared the pipeline's flag the
    override had just set, so the recompute the override queued did nothing; SetOverride returned
    OK, the budget had no cap, and a buy past it was approved until the next price."""
    prices = await harness.publish_last_prices()
    pipeline = harness.sidecar._pipeline
    computing, override_arrived = threading.Event(), threading.Event()
    set_overrides, compute = pipeline.set_overrides, pipeline._compute

    def noting_arrival(overrides):
        set_overrides(overrides)
        override_arrived.set()

    def computing_until_the_override_arrives(*args):
        computing.set()
        snapshot = compute(*args)
        override_arrived.wait(timeout=10)
        return snapshot

    monkeypatch.setattr(pipeline, "set_overrides", noting_arrival)
    monkeypatch.setattr(pipeline, "_compute", computing_until_the_override_arrives)
    publishing = asyncio.create_task(harness.publish({s: p * 1.001 for s, p in prices.items()}))
    assert await asyncio.to_thread(computing.wait, 10)  # the price's budget is being computed

    override = await set_override(harness, scope=pb.OVERRIDE_SCOPE_SYMBOL, target="AAA",
                                  kind=pb.OVERRIDE_KIND_CAP_SYMBOL_POSITION, value=0.0)
    await publishing
    after = await budget(harness)
    decision = await harness.check("o-past-the-cap", 100)

    assert override_arrived.is_set()
    assert [o.id for o in after.overrides] == [override.id]
    assert {s.symbol: s for s in after.symbols}["AAA"].max_position_notional == 0.0
    assert decision.decision == pb.DECISION_REJECTED


async def test_restricting_a_symbol_rejects_increases_and_names_the_override(harness):
    await harness.publish_last_prices()

    override = await set_override(harness, scope=pb.OVERRIDE_SCOPE_SYMBOL, target="BBB",
                                  kind=pb.OVERRIDE_KIND_RESTRICT_SYMBOL)
    decision = await harness.check("o-restricted", 5, symbol="BBB")
    shown = {s.symbol: s.restricted for s in (await budget(harness)).symbols}

    assert decision.decision == pb.DECISION_REJECTED
    assert [r.code for r in decision.reasons] == [pb.REASON_CODE_RESTRICTED_SYMBOL]
    assert list(decision.override_ids) == [override.id]
    assert shown == {"AAA": False, "BBB": True, "CCC": False, "DDD": False}  # in the budget too


async def test_scaling_leverage_for_a_strategy_shrinks_its_budget_only(harness):
    before = {s.strategy: s for s in (await budget(harness)).strategies}

    await set_override(harness, scope=pb.OVERRIDE_SCOPE_STRATEGY, target="trend",
                       kind=pb.OVERRIDE_KIND_SCALE_LEVERAGE, value=0.5)
    after = {s.strategy: s for s in (await budget(harness)).strategies}

    assert after["trend"].leverage_limit == pytest.approx(before["trend"].leverage_limit * 0.5)
    assert after["trend"].limit_source == pb.LIMIT_SOURCE_OVERRIDE
    assert after["carry"].leverage_limit == pytest.approx(before["carry"].leverage_limit)


async def test_forcing_the_regime_moves_the_budget_and_streams_a_regime_change(harness):
    call = harness.stub.StreamRecommendations(spb.StreamRecommendationsRequest())

    await set_override(harness, scope=pb.OVERRIDE_SCOPE_GLOBAL, kind=pb.OVERRIDE_KIND_FORCE_REGIME,
                       regime=pb.REGIME_CRISIS)
    forced = await budget(harness)
    message = await call.read()
    call.cancel()

    assert forced.ref.regime == pb.REGIME_CRISIS
    assert forced.equity_allocation == 0.2
    assert pb.RECOMMENDATION_TRIGGER_REGIME_CHANGE in message.recommendations[0].triggers


async def test_an_override_expires_on_time_and_the_budget_returns(harness):
    before = await budget(harness)
    await set_override(harness, scope=pb.OVERRIDE_SCOPE_GLOBAL, kind=pb.OVERRIDE_KIND_CAP_LEVERAGE,
                       value=0.1, expires_at=timestamp(T0 + 60))
    capped = await budget(harness)

    harness.clock.advance(61)
    await harness.sidecar.expire_overrides()
    after = await budget(harness)
    listed = await harness.admin.ListOverrides(apb.ListOverridesRequest(), metadata=harness.admin_metadata)
    alerts = await harness.stub.ListAlerts(spb.ListAlertsRequest())

    assert capped.total_leverage_limit == pytest.approx(min(0.1, before.total_leverage_limit))
    assert after.total_leverage_limit == pytest.approx(before.total_leverage_limit, rel=1e-6)
    assert list(listed.overrides) == []
    assert any(a.kind == pb.ALERT_KIND_OVERRIDE_ENDED and "expired" in a.message for a in alerts.alerts)


async def test_an_expiry_timer_that_fires_before_the_wall_clock_reaches_it_waits_again(harness):
    await set_override(harness, scope=pb.OVERRIDE_SCOPE_SYMBOL, target="AAA", kind=pb.OVERRIDE_KIND_RESTRICT_SYMBOL,
                       expires_at=timestamp(T0 + 0.2))  # the timer: 0.2 s on the monotonic clock

    await asyncio.sleep(0.4)  # it fired, but the wall clock stood still (as if stepped back): not yet due
    still = [s.restricted for s in (await budget(harness)).symbols if s.symbol == "AAA"]
    harness.clock.advance(1)  # the wall clock passes the expiry
    await asyncio.sleep(0.4)
    after = [s.restricted for s in (await budget(harness)).symbols if s.symbol == "AAA"]

    assert still == [True]
    assert after == [False]


async def test_an_expiry_the_store_refuses_is_tried_again_a_second_later_not_in_a_loop(harness, monkeypatch):
    await set_override(harness, scope=pb.OVERRIDE_SCOPE_SYMBOL, target="AAA", kind=pb.OVERRIDE_KIND_RESTRICT_SYMBOL,
                       expires_at=timestamp(T0 + 0.1))
    remove = harness.sidecar.store.remove_override
    attempts = 0

    async def refused(override_id):
        nonlocal attempts
        attempts += 1
        raise StoreError("the disk is full")
    monkeypatch.setattr(harness.sidecar.store, "remove_override", refused)
    harness.clock.advance(1)  # due
    await asyncio.sleep(0.6)
    refused_attempts = attempts
    monkeypatch.setattr(harness.sidecar.store, "remove_override", remove)
    await asyncio.sleep(1.2)  # the retry, a second after the refusal
    after = [s.restricted for s in (await budget(harness)).symbols if s.symbol == "AAA"]

    assert refused_attempts == 1
    assert after == [False]


async def test_an_expired_override_is_out_of_force_while_the_store_refuses_to_remove_it(harness, monkeypatch):
    await set_override(harness, scope=pb.OVERRIDE_SCOPE_GLOBAL, kind=pb.OVERRIDE_KIND_SCALE_LEVERAGE, value=3.0,
                       expires_at=timestamp(T0 + 0.1))  # loosens the limits: it must not outlive its expiry

    async def refused(override_id):
        raise StoreError("the disk is full")
    monkeypatch.setattr(harness.sidecar.store, "remove_override", refused)
    harness.clock.advance(1)
    await asyncio.sleep(0.3)

    assert list(harness.sidecar.overrides) == []  # out of force
    assert len(harness.sidecar.store.overrides()) == 1  # though still stored, for the retry to remove


async def test_an_override_set_while_an_expiry_waits_for_its_retry_does_not_drop_the_retry(harness, monkeypatch):
    expiring = await set_override(harness, scope=pb.OVERRIDE_SCOPE_SYMBOL, target="AAA",
                                  kind=pb.OVERRIDE_KIND_RESTRICT_SYMBOL, expires_at=timestamp(T0 + 0.1))
    remove = harness.sidecar.store.remove_override

    async def refused(override_id):
        raise StoreError("the disk is full")
    monkeypatch.setattr(harness.sidecar.store, "remove_override", refused)
    harness.clock.advance(1)
    await asyncio.sleep(0.3)  # refused once; the retry is a second away
    monkeypatch.setattr(harness.sidecar.store, "remove_override", remove)
    await set_override(harness, scope=pb.OVERRIDE_SCOPE_SYMBOL, target="BBB", kind=pb.OVERRIDE_KIND_RESTRICT_SYMBOL)
    await asyncio.sleep(0.3)

    assert expiring.id not in [o.id for o in harness.sidecar.store.overrides()]


async def test_clearing_an_override_removes_it_once(harness):
    override = await set_override(harness, scope=pb.OVERRIDE_SCOPE_STRATEGY, target="carry",
                                  kind=pb.OVERRIDE_KIND_CAP_STRATEGY_CAPITAL, value=10_000.0)

    first = await harness.admin.ClearOverride(apb.ClearOverrideRequest(id=override.id, cleared_by="pytest"),
                                              metadata=harness.admin_metadata)
    second = await harness.admin.ClearOverride(apb.ClearOverrideRequest(id=override.id, cleared_by="pytest"),
                                               metadata=harness.admin_metadata)

    assert (first.cleared, second.cleared) == (True, False)
    assert list((await budget(harness)).overrides) == []


@pytest.mark.parametrize("fields, field", [
    ({"scope": pb.OVERRIDE_SCOPE_SYMBOL, "target": "AAA", "kind": pb.OVERRIDE_KIND_CAP_LEVERAGE,
      "value": 0.5}, "override.scope"),
    ({"scope": pb.OVERRIDE_SCOPE_SYMBOL, "target": "ZZZ", "kind": pb.OVERRIDE_KIND_RESTRICT_SYMBOL},
     "override.target"),
    ({"scope": pb.OVERRIDE_SCOPE_GLOBAL, "kind": pb.OVERRIDE_KIND_FORCE_REGIME}, "override.regime"),
    ({"scope": pb.OVERRIDE_SCOPE_GLOBAL, "kind": pb.OVERRIDE_KIND_CAP_LEVERAGE, "value": float("nan")},
     "override.value"),
    ({"scope": pb.OVERRIDE_SCOPE_GLOBAL, "kind": pb.OVERRIDE_KIND_CAP_LEVERAGE, "value": 0.5,
      "expires_at": timestamp(T0 - 1)}, "override.expires_at"),
    ({"scope": pb.OVERRIDE_SCOPE_UNSPECIFIED, "kind": pb.OVERRIDE_KIND_CAP_LEVERAGE, "value": 0.5},
     "override.scope"),
    ({"scope": pb.OVERRIDE_SCOPE_GLOBAL, "kind": 99, "value": 0.5}, "override.kind"),
])
async def test_a_bad_override_is_refused_naming_the_field(harness, fields, field):
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await set_override(harness, **fields)

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in refused.value.details()
    assert list((await budget(harness)).overrides) == []


async def test_listing_overrides_needs_the_admin_token(harness):
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await harness.admin.ListOverrides(apb.ListOverridesRequest())

    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
