"""The pre-trade gate allows an order only with a positive, finite quantity
from an approval or a resize."""

import math

import pytest

from riskbudget.v1 import risk_budget_service_pb2 as service_pb2
from riskbudget.v1 import types_pb2
from riskbudget_client import (
    AsyncPreTradeGate,
    AsyncRiskBudgetClient,
    GateResult,
    PreTradeGate,
    RiskBudgetClient,
)


def reply(decision, approved_quantity, *reasons):
    return service_pb2.CheckTradeResponse(
        client_order_id="o-1",
        decision=decision,
        requested_quantity=100.0,
        approved_quantity=approved_quantity,
        reasons=[types_pb2.Reason(code=code, message=message) for code, message in reasons],
    )


def test_an_approval_allows_the_whole_quantity():
    response = reply(types_pb2.DECISION_APPROVED, 100.0)

    result = GateResult.from_response(response)

    assert result == GateResult(
        allowed=True,
        quantity=100.0,
        decision=types_pb2.DECISION_APPROVED,
        reasons=(),
        response=response,
    )


def test_a_resize_allows_the_smaller_quantity_and_says_why():
    response = reply(
        types_pb2.DECISION_RESIZED,
        40.0,
        (types_pb2.REASON_CODE_SYMBOL_POSITION_LIMIT, "AAPL limit is 50,000"),
    )

    result = GateResult.from_response(response)

    assert (result.allowed, result.quantity) == (True, 40.0)
    assert result.reasons == (("REASON_CODE_SYMBOL_POSITION_LIMIT", "AAPL limit is 50,000"),)


def test_a_rejection_allows_nothing():
    response = reply(
        types_pb2.DECISION_REJECTED, 0.0, (types_pb2.REASON_CODE_TRADING_HALTED, "halted")
    )

    result = GateResult.from_response(response)

    assert (result.allowed, result.quantity) == (False, 0.0)
    assert result.decision == types_pb2.DECISION_REJECTED
    assert result.reasons == (("REASON_CODE_TRADING_HALTED", "halted"),)


@pytest.mark.parametrize(
    "decision, quantity",
    [
        (types_pb2.DECISION_APPROVED, 0.0),
        (types_pb2.DECISION_RESIZED, -5.0),
        (types_pb2.DECISION_RESIZED, math.nan),
        (types_pb2.DECISION_APPROVED, math.inf),
        (types_pb2.DECISION_UNSPECIFIED, 100.0),
        (9, 100.0),
    ],
)
def test_anything_but_a_positive_finite_approval_or_resize_allows_nothing(decision, quantity):
    result = GateResult.from_response(reply(decision, quantity))

    assert (result.allowed, result.quantity) == (False, 0.0)


def test_a_reason_code_newer_than_the_client_keeps_a_readable_name():
    result = GateResult.from_response(reply(types_pb2.DECISION_REJECTED, 0.0, (99, "new rule")))

    assert result.reasons == (("REASON_CODE_99", "new rule"),)


def test_the_gate_sends_the_order_and_allows_the_approved_quantity(sidecar, target):
    with RiskBudgetClient(target) as client:
        result = PreTradeGate(client).check(
            "o-1", "momentum", "AAPL", "buy", 100.0, limit_price=187.5
        )

    assert (result.allowed, result.quantity) == (True, 100.0)
    assert sidecar.requests["CheckTrade"].limit_price == 187.5


def test_the_gate_without_a_sidecar_allows_nothing(dead_target):
    with RiskBudgetClient(dead_target) as client:
        result = PreTradeGate(client).check("o-1", "momentum", "AAPL", "buy", 100.0)

    assert (result.allowed, result.quantity) == (False, 0.0)
    assert result.reasons[0][0] == "REASON_CODE_SIDECAR_UNAVAILABLE"


async def test_the_async_gate_allows_a_resize(sidecar, target):
    sidecar.check_trade_reply = reply(types_pb2.DECISION_RESIZED, 40.0)

    async with AsyncRiskBudgetClient(target) as client:
        result = await AsyncPreTradeGate(client).check("o-1", "momentum", "AAPL", "sell", 100.0)

    assert (result.allowed, result.quantity) == (True, 40.0)


async def test_the_async_gate_without_a_sidecar_allows_nothing(dead_target):
    async with AsyncRiskBudgetClient(dead_target) as client:
        result = await AsyncPreTradeGate(client).check("o-1", "momentum", "AAPL", "buy", 100.0)

    assert (result.allowed, result.quantity) == (False, 0.0)
    assert result.reasons[0][0] == "REASON_CODE_SIDECAR_UNAVAILABLE"
