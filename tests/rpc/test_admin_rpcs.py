"""RiskBudgetAdminService against a real server: auth, trading state, and what is not built yet."""

from __future__ import annotations

import grpc
import pytest

from riskbudget.v1 import risk_budget_admin_pb2 as apb
from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import types_pb2 as pb


async def set_state(harness, state, *, strategy="", metadata=None):
    return await harness.admin.SetTradingState(
        apb.SetTradingStateRequest(state=state, strategy=strategy, reason="test", set_by="pytest"),
        metadata=harness.admin_metadata if metadata is None else metadata)


async def test_admin_call_without_a_token_is_unauthenticated(harness):
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await set_state(harness, pb.TRADING_STATE_HALTED, metadata=())

    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert harness.sidecar.trading_state() is harness.sidecar.trading_state().ACTIVE


async def test_admin_call_with_a_wrong_token_is_permission_denied_and_never_echoes_it(harness):
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await set_state(harness, pb.TRADING_STATE_HALTED, metadata=(("authorization", "Bearer guess"),))

    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "guess" not in refused.value.details()


async def test_halting_the_book_rejects_increases_but_lets_reductions_through(harness):
    await harness.publish_last_prices()

    await harness.stub.SetPositions(spb.SetPositionsRequest(
        positions=[pb.Position(strategy="trend", symbol="AAA", quantity=20)]))

    reply = await set_state(harness, pb.TRADING_STATE_HALTED)
    increase = await harness.check("o-inc", 5)
    reduce = await harness.check("o-red", 5, side=pb.SIDE_SELL)
    budget = await harness.stub.GetBudget(spb.GetBudgetRequest())

    assert reply.state == pb.TRADING_STATE_HALTED and reply.strategy == ""
    assert increase.decision == pb.DECISION_REJECTED
    assert [r.code for r in increase.reasons] == [pb.REASON_CODE_TRADING_HALTED]
    assert reduce.decision == pb.DECISION_APPROVED and reduce.reduces_exposure
    assert budget.budget.trading_state == pb.TRADING_STATE_HALTED


async def test_a_strategy_in_reducing_state_rejects_its_increases_only(harness):
    await harness.publish_last_prices()

    await set_state(harness, pb.TRADING_STATE_REDUCING, strategy="trend")
    trend = await harness.check("o-trend", 5)
    carry = await harness.check("o-carry", 5, strategy="carry", symbol="CCC")

    assert [r.code for r in trend.reasons] == [pb.REASON_CODE_TRADING_REDUCING]
    assert carry.decision == pb.DECISION_APPROVED


async def test_set_trading_state_refuses_bad_input_naming_the_field(harness):
    with pytest.raises(grpc.aio.AioRpcError) as unspecified:
        await set_state(harness, pb.TRADING_STATE_UNSPECIFIED)
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await set_state(harness, pb.TRADING_STATE_HALTED, strategy="nope")

    assert unspecified.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "state" in unspecified.value.details()
    assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown strategy" in unknown.value.details()


# -- every change names who made it ----------------------------------------------------------

ACTORLESS = {
    "SetTradingState": ("set_by", lambda harness, override_id: harness.admin.SetTradingState(
        apb.SetTradingStateRequest(state=pb.TRADING_STATE_HALTED, reason="test"), metadata=harness.admin_metadata)),
    "ClearOverride": ("cleared_by", lambda harness, override_id: harness.admin.ClearOverride(
        apb.ClearOverrideRequest(id=override_id, reason="test"), metadata=harness.admin_metadata)),
    "TriggerRebalance": ("requested_by", lambda harness, override_id: harness.admin.TriggerRebalance(
        apb.TriggerRebalanceRequest(reason="test"), metadata=harness.admin_metadata)),
    "ReloadConfig": ("requested_by", lambda harness, override_id: harness.admin.ReloadConfig(
        apb.ReloadConfigRequest(), metadata=harness.admin_metadata)),
}


@pytest.mark.parametrize("method", list(ACTORLESS))
async def test_a_change_without_an_actor_is_invalid_argument_naming_the_field_and_changes_nothing(harness, method):
    from .test_overrides import set_override
    from .test_reload_and_alerts import edit_config
    from .test_service_rpcs import field_violations

    field, make_call = ACTORLESS[method]
    override = await set_override(harness, scope=pb.OVERRIDE_SCOPE_STRATEGY, target="carry",
                                  kind=pb.OVERRIDE_KIND_CAP_STRATEGY_CAPITAL, value=10_000.0)
    config = harness.sidecar.config
    edit_config(harness, lambda data: data["limits"].update(max_order_notional=100_000))  # a reload would take it
    before = await harness.stub.GetStatus(spb.GetStatusRequest())
    audited = ("CONFIG_RELOADED", "CONFIG_RELOAD_REFUSED", "TRADING_STATE_CHANGED")

    def audit_alerts():
        return [(a.kind.name, a.message) for a in harness.sidecar.alerts.recent(1000, None) if a.kind.name in audited]
    alerts_before = audit_alerts()

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await make_call(harness, override.id)

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in refused.value.details()
    assert field_violations(refused.value) == {field: "must not be empty"}
    assert harness.sidecar.trading_state() is harness.sidecar.trading_state().ACTIVE  # state unchanged
    budget = (await harness.stub.GetBudget(spb.GetBudgetRequest())).budget
    assert budget.trading_state == pb.TRADING_STATE_ACTIVE
    assert [o.id for o in budget.overrides] == [override.id]  # the override is still there
    after = await harness.stub.GetStatus(spb.GetStatusRequest())
    assert after.last_recommendation_sequence == before.last_recommendation_sequence  # no recommendation
    assert harness.sidecar.config is config and config.limits.max_order_notional != 100_000  # not reloaded
    assert audit_alerts() == alerts_before  # nothing changed, so nothing audited as a change


@pytest.mark.parametrize("call", ["SetTradingState", "ReloadConfig"])
async def test_an_actor_of_spaces_is_refused_and_changes_nothing(harness, call):
    """Found by a reviewer: a name of spaces names nobody, yet halted the book and reloaded."""
    from .test_service_rpcs import field_violations

    request = (apb.SetTradingStateRequest(state=pb.TRADING_STATE_HALTED, reason="test", set_by="   ")
               if call == "SetTradingState" else apb.ReloadConfigRequest(requested_by="   "))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await getattr(harness.admin, call)(request, metadata=harness.admin_metadata)

    field = "set_by" if call == "SetTradingState" else "requested_by"
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(refused.value) == {field: "must not be empty"}
    assert harness.sidecar.trading_state().name == "ACTIVE"
    assert not [a for a in harness.sidecar.alerts.recent(50, None) if a.kind.name == "CONFIG_RELOADED"]
