"""Regression tests for what the fuzz tests found, each as a plain deterministic test.

1. A refusal echoed a 10 KB unknown symbol, and a batch of bad ticks listed every problem: the
   status (trailing metadata) outgrew the client's 16 KB limit, and the client got
   RESOURCE_EXHAUSTED naming no field instead of INVALID_ARGUMENT.
2. A price dated in the future (any valid-looking time, even 2**63 - 1 seconds) was applied and
   pinned the symbol: every later, current price looked out of order and was ignored, and the
   pinned price never turned stale, so checks went on approving against it.
3. A positive but vanishing price (5e-324) was applied: its log return against the last close
   underflowed to -inf, the symbol's position limit in units became infinite, and CheckTrade
   approved a billion shares.
"""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import types_pb2 as pb
from riskbudget_sidecar.rpc.converters import MAX_TICK_AHEAD, MIN_PRICE, price_ticks, timestamp
from riskbudget_sidecar.service.errors import MAX_VIOLATION_LENGTH, MAX_VIOLATIONS, InvalidInput

from .conftest import call, field_violations

on_the_module_loop = pytest.mark.asyncio(loop_scope="module")  # the module's one sidecar


@on_the_module_loop
async def test_a_10_kb_unknown_symbol_is_refused_as_invalid_naming_the_field_once(harness):
    request = spb.PublishMarketDataRequest(ticks=[pb.PriceTick(symbol="x" * 10_240, price=1.0,
                                                               time=timestamp(harness.clock.now()))])
    _, error = await call(harness.stub.PublishMarketData, request)

    violations = field_violations(error)
    assert list(violations) == ["ticks[0].symbol"]
    assert "x" * 100 not in error.details()


@on_the_module_loop
async def test_a_batch_of_two_thousand_bad_ticks_names_the_first_problems_and_how_many_more(harness):
    request = spb.PublishMarketDataRequest(ticks=[pb.PriceTick(symbol="", price=-1.0)] * 2_000)
    _, error = await call(harness.stub.PublishMarketData, request)

    assert list(field_violations(error)) == [
        "ticks[0].symbol", "ticks[0].price", "ticks[0].time", "ticks[1].symbol", "ticks[1].price",
        "ticks[1].time", "ticks[2].symbol", "ticks[2].price", "ticks[2].time", "ticks[3].symbol"]
    assert error.details().endswith("and 5990 more")


@on_the_module_loop
async def test_a_price_dated_in_the_future_is_refused_and_does_not_pin_the_symbol(harness):
    now = harness.clock.now()
    last = (await harness.stub.GetBudget(spb.GetBudgetRequest())).budget
    price = {s.symbol: s.last_price for s in last.symbols}["BBB"]
    for ahead in (Timestamp(seconds=int(now + 86_400)), Timestamp(seconds=2**63 - 1),
                  Timestamp(seconds=253_402_300_800), timestamp(now + MAX_TICK_AHEAD + 0.001)):
        _, error = await call(harness.stub.PublishMarketData, spb.PublishMarketDataRequest(
            ticks=[pb.PriceTick(symbol="BBB", price=price / 20, time=ahead)]))
        assert error is not None and list(field_violations(error)) == ["ticks[0].time"], ahead

    await harness.publish({"BBB": price * 1.01})
    budget = (await harness.stub.GetBudget(spb.GetBudgetRequest())).budget
    assert {s.symbol: s.last_price for s in budget.symbols}["BBB"] == price * 1.01


@on_the_module_loop
async def test_a_price_within_the_allowed_clock_skew_is_applied(harness):
    harness.clock.advance(MAX_TICK_AHEAD + 1)  # past the tick the test above published
    now = harness.clock.now()
    reply = await harness.stub.PublishMarketData(spb.PublishMarketDataRequest(
        ticks=[pb.PriceTick(symbol="CCC", price=100.0, time=timestamp(now + MAX_TICK_AHEAD))]))
    assert reply.accepted == 1


@on_the_module_loop
async def test_a_vanishing_price_is_refused_and_orders_stay_bounded(harness):
    now = harness.clock.now()
    for price in (5e-324, 1e-300, MIN_PRICE / 2):
        _, error = await call(harness.stub.PublishMarketData, spb.PublishMarketDataRequest(
            ticks=[pb.PriceTick(symbol="AAA", price=price, time=timestamp(now))]))
        assert error is not None and list(field_violations(error)) == ["ticks[0].price"], price
        for rpc, request, field in (
                (harness.stub.ReportFill, spb.ReportFillRequest(
                    client_order_id="tiny", strategy="trend", symbol="AAA", side=pb.SIDE_BUY, quantity=1,
                    price=price, time=timestamp(now)), "price"),
                (harness.stub.CheckTrade, spb.CheckTradeRequest(
                    client_order_id="tiny", strategy="trend", symbol="AAA", side=pb.SIDE_BUY, quantity=1,
                    limit_price=price), "limit_price")):
            _, error = await call(rpc, request)
            assert error is not None and list(field_violations(error)) == [field], (price, field)

    budget = (await harness.stub.GetBudget(spb.GetBudgetRequest())).budget
    assert all(0 < s.max_position_quantity < float("inf") for s in budget.symbols)
    huge = await harness.check("huge-after-tiny", 1e9, strategy="trend", symbol="AAA", dry_run=True)
    assert huge.decision == pb.DECISION_REJECTED


def test_price_ticks_checks_the_clock_only_when_given_one():
    tick = pb.PriceTick(symbol="AAA", price=1.0, time=timestamp(2_000_000_000.0))
    assert price_ticks([tick], frozenset({"AAA"}))[0].time == 2_000_000_000.0
    with pytest.raises(InvalidInput) as refused:
        price_ticks([tick], frozenset({"AAA"}), now=1_800_000_000.0)
    assert [field for field, _ in refused.value.violations] == ["ticks[0].time"]


def test_invalid_input_keeps_the_first_violations_each_clipped():
    refused = InvalidInput([(f"f{i}", "p" * 1_000) for i in range(25)])

    assert [field for field, _ in refused.violations] == [f"f{i}" for i in range(MAX_VIOLATIONS)]
    assert all(len(problem) == MAX_VIOLATION_LENGTH for _, problem in refused.violations)
    assert str(refused).endswith(f"and {25 - MAX_VIOLATIONS} more")
    assert len(str(refused)) < 2_000


def test_invalid_input_with_few_short_violations_is_unchanged():
    refused = InvalidInput([("quantity", "must be positive, got -1"), ("side", "must be SIDE_BUY or SIDE_SELL")])

    assert refused.violations == [("quantity", "must be positive, got -1"), ("side", "must be SIDE_BUY or SIDE_SELL")]
    assert str(refused) == "quantity: must be positive, got -1; side: must be SIDE_BUY or SIDE_SELL"


@on_the_module_loop
async def test_the_refusals_reach_the_client_as_invalid_argument_not_resource_exhausted(harness):
    """Every kind of oversized input at once, in the message types that carry lists."""
    requests = [
        (harness.stub.SetPositions, spb.SetPositionsRequest(
            positions=[pb.Position(strategy="\x00" * 64, symbol="é" * 64, quantity=float("nan"))] * 200)),
        (harness.stub.PublishMarketData, spb.PublishMarketDataRequest(
            ticks=[pb.PriceTick(symbol="日本" * 32, price=float("inf"))] * 200)),
    ]
    for rpc, request in requests:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await rpc(request, timeout=30)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert len(field_violations(refused.value)) <= MAX_VIOLATIONS
