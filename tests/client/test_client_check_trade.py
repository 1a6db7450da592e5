"""CheckTrade fails closed: no answer, a failed call or a malformed reply is a
rejection made by the client. Every test runs against both clients."""

import asyncio
import math
from decimal import Decimal

import grpc
import numpy as np
import pytest

from riskbudget.v1 import risk_budget_service_pb2 as service_pb2
from riskbudget.v1 import types_pb2
from riskbudget_client import AsyncRiskBudgetClient, RiskBudgetClient

SIDECAR_UNAVAILABLE = types_pb2.REASON_CODE_SIDECAR_UNAVAILABLE


def order_reply(decision, approved_quantity, client_order_id="o-1", requested_quantity=100.0):
    return service_pb2.CheckTradeResponse(
        client_order_id=client_order_id,
        decision=decision,
        requested_quantity=requested_quantity,
        approved_quantity=approved_quantity,
    )


def assert_rejected_by_the_client(response, message_start, code=SIDECAR_UNAVAILABLE):
    assert response.decision == types_pb2.DECISION_REJECTED
    assert response.approved_quantity == 0.0
    assert [reason.code for reason in response.reasons] == [code]
    assert response.reasons[0].message.startswith(message_start)


def test_check_trade_without_a_sidecar_rejects_as_unavailable(connect, dead_target):
    client = connect(dead_target, check_trade_timeout=0.25)

    response = client.check_trade("o-1", "momentum", "AAPL", "buy", 100.0)

    # Refused at once on loopback; past the deadline only on a starved machine.
    assert_rejected_by_the_client(response, "sidecar call failed: ")
    assert response.reasons[0].message.split(": ")[1] in ("UNAVAILABLE", "DEADLINE_EXCEEDED")
    assert response.client_order_id == "o-1"
    assert response.requested_quantity == 100.0


def test_check_trade_past_the_deadline_rejects_as_unavailable(connect, sidecar, target):
    sidecar.hang = True
    client = connect(target)

    response = client.check_trade("o-1", "momentum", "AAPL", "buy", 100.0)

    assert_rejected_by_the_client(response, "sidecar call failed: DEADLINE_EXCEEDED: ")


async def test_check_trade_on_a_closed_client_rejects_instead_of_raising(sidecar, target):
    blocking = RiskBudgetClient(target)
    blocking.close()
    asynchronous = AsyncRiskBudgetClient(target)
    await asynchronous.close()

    assert_rejected_by_the_client(blocking.check_trade("o-1", "momentum", "AAPL", "buy", 1.0), "sidecar call failed: ")
    assert_rejected_by_the_client(await asynchronous.check_trade("o-1", "momentum", "AAPL", "buy", 1.0),
                                  "sidecar call failed: ")


async def test_an_asyncio_check_in_flight_when_its_client_closes_is_rejected_and_a_cancelled_task_still_cancels(
    sidecar, target
):
    sidecar.hang = True
    client = AsyncRiskBudgetClient(target, check_trade_timeout=30)
    in_flight = asyncio.create_task(client.check_trade("o-1", "momentum", "AAPL", "buy", 100.0))
    cancelled = asyncio.create_task(client.check_trade("o-2", "momentum", "AAPL", "buy", 100.0))
    await asyncio.sleep(0.2)
    cancelled.cancel()
    await client.close()

    assert_rejected_by_the_client(await in_flight, "sidecar call failed: ")
    with pytest.raises(asyncio.CancelledError):
        await cancelled


def test_check_trade_on_invalid_argument_rejects_as_an_invalid_request_naming_the_status(
    connect, sidecar, target
):
    sidecar.failure = (grpc.StatusCode.INVALID_ARGUMENT, "quantity must be positive")
    client = connect(target)

    response = client.check_trade("o-1", "momentum", "AAPL", "buy", 100.0)

    assert_rejected_by_the_client(
        response,
        "sidecar call failed: INVALID_ARGUMENT: quantity must be positive",
        types_pb2.REASON_CODE_INVALID_REQUEST,
    )


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.INTERNAL, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAVAILABLE]
)
def test_check_trade_on_any_other_failure_rejects_as_unavailable(connect, sidecar, target, code):
    sidecar.failure = (code, "it failed")
    client = connect(target)

    response = client.check_trade("o-1", "momentum", "AAPL", "buy", 100.0)

    assert_rejected_by_the_client(response, f"sidecar call failed: {code.name}: it failed")


def test_check_trade_passes_an_approval_through(connect, sidecar, target):
    client = connect(target)

    response = client.check_trade("o-1", "momentum", "AAPL", "buy", 100.0)

    assert response == order_reply(types_pb2.DECISION_APPROVED, 100.0)


def test_check_trade_passes_a_resize_through(connect, sidecar, target):
    sidecar.check_trade_reply = order_reply(types_pb2.DECISION_RESIZED, 40.0)
    client = connect(target)

    response = client.check_trade("o-1", "momentum", "AAPL", "buy", 100.0)

    assert response == sidecar.check_trade_reply


def test_check_trade_passes_the_sidecars_rejection_through(connect, sidecar, target):
    reply = order_reply(types_pb2.DECISION_REJECTED, 0.0)
    reply.reasons.add(code=types_pb2.REASON_CODE_TRADING_HALTED, message="trading is halted")
    sidecar.check_trade_reply = reply
    client = connect(target)

    response = client.check_trade("o-1", "momentum", "AAPL", "buy", 100.0)

    assert response == reply


@pytest.mark.parametrize(
    "reply",
    [
        order_reply(types_pb2.DECISION_APPROVED, 150.0),
        order_reply(types_pb2.DECISION_UNSPECIFIED, 100.0),
        order_reply(7, 100.0),
        order_reply(types_pb2.DECISION_RESIZED, math.nan),
        order_reply(types_pb2.DECISION_APPROVED, math.inf),
        order_reply(types_pb2.DECISION_RESIZED, -1.0),
        order_reply(types_pb2.DECISION_REJECTED, 50.0),
        order_reply(types_pb2.DECISION_APPROVED, 100.0, client_order_id="o-2"),
    ],
    ids=[
        "more than requested",
        "decision unspecified",
        "unknown decision",
        "nan quantity",
        "infinite quantity",
        "negative quantity",
        "rejection with a quantity",
        "another order's reply",
    ],
)
def test_check_trade_rejects_a_malformed_reply(connect, sidecar, target, reply):
    sidecar.check_trade_reply = reply
    client = connect(target)

    response = client.check_trade("o-1", "momentum", "AAPL", "buy", 100.0)

    assert_rejected_by_the_client(response, "sidecar reply refused: ")


def test_check_trade_sends_the_order_as_given(connect, sidecar, target):
    client = connect(target)

    client.check_trade("o-1", "momentum", "AAPL", "sell", 100.0, limit_price=187.5, dry_run=True)

    assert sidecar.requests["CheckTrade"] == service_pb2.CheckTradeRequest(
        client_order_id="o-1",
        strategy="momentum",
        symbol="AAPL",
        side=types_pb2.SIDE_SELL,
        quantity=100.0,
        limit_price=187.5,
        dry_run=True,
    )


@pytest.mark.parametrize("side", ["BUY", "side_buy", types_pb2.SIDE_BUY])
def test_check_trade_takes_the_side_by_name_or_enum_value(connect, sidecar, target, side):
    client = connect(target)

    client.check_trade("o-1", "momentum", "AAPL", side, 100.0)

    assert sidecar.requests["CheckTrade"].side == types_pb2.SIDE_BUY


@pytest.mark.parametrize("side", ["long", "unspecified", types_pb2.SIDE_UNSPECIFIED, 9, True])
def test_check_trade_with_an_unknown_side_raises_before_sending(connect, sidecar, target, side):
    client = connect(target)

    with pytest.raises(ValueError, match="side must be one of 'buy', 'sell'"):
        client.check_trade("o-1", "momentum", "AAPL", side, 100.0)

    assert "CheckTrade" not in sidecar.requests


@pytest.mark.parametrize("field", ["quantity", "limit_price"])
@pytest.mark.parametrize("value", [True, False, np.bool_(True), "100", None])
def test_check_trade_with_a_quantity_or_price_that_is_not_a_number_raises_before_sending(
    connect, sidecar, target, field, value
):
    client = connect(target)
    order = {"quantity": 100.0, "limit_price": 0.0, field: value}

    with pytest.raises(TypeError, match=f"{field} must be a number, got {value!r}"):
        client.check_trade("o-1", "momentum", "AAPL", "buy", order["quantity"], limit_price=order["limit_price"])

    assert "CheckTrade" not in sidecar.requests


@pytest.mark.parametrize("dry_run", [None, 2, "false"])
def test_check_trade_with_a_dry_run_that_is_not_a_bool_raises_before_sending(connect, sidecar, target, dry_run):
    client = connect(target)

    with pytest.raises(TypeError, match="dry_run must be True or False"):
        client.check_trade("o-1", "momentum", "AAPL", "buy", 100.0, dry_run=dry_run)

    assert "CheckTrade" not in sidecar.requests


def test_check_trade_takes_a_numpy_bool_as_dry_run(connect, sidecar, target):
    client = connect(target)

    client.check_trade("o-1", "momentum", "AAPL", "buy", 100.0, dry_run=np.bool_(True))

    assert sidecar.requests["CheckTrade"].dry_run is True


@pytest.mark.parametrize("value", [True, "1.5", None])
def test_set_override_with_a_value_that_is_not_a_number_raises_before_sending(connect, sidecar, target, value):
    client = connect(target)

    with pytest.raises(TypeError, match="value must be a number"):
        client.set_override("strategy", "cap_leverage", target="momentum", value=value, reason="r")

    assert "SetOverride" not in sidecar.requests


@pytest.mark.parametrize("quantity", [np.int64(100), np.float32(100.0), Decimal("100")])
def test_check_trade_takes_numpy_and_decimal_quantities(connect, sidecar, target, quantity):
    client = connect(target)

    client.check_trade("o-1", "momentum", "AAPL", "buy", quantity)

    assert sidecar.requests["CheckTrade"].quantity == 100.0
