"""Every other RiskBudgetService RPC fuzzed against a real sidecar: each reply is OK, or
INVALID_ARGUMENT with a BadRequest naming the bad fields; never a crash, a hang or an error
from our own code; and the sidecar is healthy afterwards."""

from __future__ import annotations

import asyncio
import math

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import types_pb2 as pb
from riskbudget_sidecar.rpc.converters import MAX_TICK_AHEAD, timestamp

from ..rpc.conftest import T0

MAX_TIMESTAMP_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z: the last valid google.protobuf.Timestamp
from .conftest import (
    FUZZ, MAX_ID, MAX_VIOLATIONS, MAX_QUANTITY, STRATEGIES, STRATEGY_SYMBOLS, SYMBOLS, TIMESTAMP_NANOS,
    TIMESTAMP_SECONDS, assert_healthy, call, enum_values, field_violations, is_name, is_optional_name,
    is_positive, is_price, names, numbers,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

PRICES = numbers(st.floats(1.0, 1_000.0))
QUANTITIES = numbers(st.one_of(st.integers(1, 1_000).map(float), st.floats(-1e4, 1e4)))
SIDES = enum_values([pb.SIDE_BUY, pb.SIDE_SELL])


@st.composite
def timestamps(draw):
    """None (unset), a time near the sidecar's clock, or any seconds and nanos at all."""
    kind = draw(st.sampled_from(["unset", "near", "any"]))
    if kind == "unset":
        return None
    if kind == "near":  # up to two minutes ahead: at most MAX_TICK_AHEAD is allowed for a price
        return timestamp(T0 + draw(st.one_of(st.floats(-86_400.0, 120.0), st.sampled_from([60.0, 60.001]))))
    return Timestamp(seconds=draw(TIMESTAMP_SECONDS),
                                                               nanos=draw(TIMESTAMP_NANOS))


def is_time(stamp, not_after: float | None = None) -> bool:
    """A valid google.protobuf.Timestamp after 1970 (and, if given, not after `not_after`)."""
    if stamp is None or not (0 < stamp.seconds <= MAX_TIMESTAMP_SECONDS and 0 <= stamp.nanos < 1_000_000_000):
        return False
    return not_after is None or stamp.seconds + stamp.nanos / 1e9 <= not_after


@st.composite
def price_ticks(draw):
    return pb.PriceTick(symbol=draw(names(SYMBOLS)), price=draw(PRICES), time=draw(timestamps()))


def bad_tick_fields(ticks, now: float, field: str = "ticks") -> list[str]:
    """Fields of a batch of ticks the contract refuses, in order; a price may be dated at most
    MAX_TICK_AHEAD seconds after the sidecar's clock (`now`)."""
    bad = []
    for index, tick in enumerate(ticks):
        where = f"{field}[{index}]"
        if not (is_name(tick.symbol) and tick.symbol in SYMBOLS):
            bad.append(f"{where}.symbol")
        if not is_price(tick.price):
            bad.append(f"{where}.price")
        if not is_time(tick.time if tick.HasField("time") else None, now + MAX_TICK_AHEAD):
            bad.append(f"{where}.time")
    return bad


async def test_get_budget_and_utilization_name_a_bad_or_unknown_strategy(harness):
    """Deterministic cases first; the property below covers arbitrary strings."""
    for strategy in ("nosuch", "x" * 10_240, "trend\x00", "\n"):
        for rpc, request in ((harness.stub.GetBudget, spb.GetBudgetRequest(strategy=strategy)),
                             (harness.stub.GetUtilization, spb.GetUtilizationRequest(strategy=strategy))):
            _, error = await call(rpc, request)
            assert error is not None and set(field_violations(error)) == {"strategy"}


@FUZZ
@given(strategy=names(STRATEGIES))
async def test_get_budget_and_utilization_with_any_strategy(harness, strategy):
    known = strategy == "" or strategy in STRATEGIES
    for rpc, request in ((harness.stub.GetBudget, spb.GetBudgetRequest(strategy=strategy)),
                         (harness.stub.GetUtilization, spb.GetUtilizationRequest(strategy=strategy))):
        reply, error = await call(rpc, request)
        if known:
            assert error is None
        else:
            assert error is not None and set(field_violations(error)) == {"strategy"}


@FUZZ
@given(ticks=st.lists(price_ticks(), max_size=5))
async def test_publish_market_data_takes_a_valid_batch_and_refuses_a_bad_one_whole(harness, ticks):
    """Which of a valid batch's ticks are applied (not older than the last, not held back by the
    price screen) is tested in tests/rpc and tests/engine/test_price_screen.py."""
    reply, error = await call(harness.stub.PublishMarketData, spb.PublishMarketDataRequest(ticks=ticks))
    expected = bad_tick_fields(ticks, harness.clock.now())
    if expected:
        assert error is not None and list(field_violations(error)) == expected[:MAX_VIOLATIONS], (ticks, error)
    else:
        assert error is None and 0 <= reply.accepted <= len(ticks), ticks


@FUZZ
@given(batches=st.lists(st.lists(price_ticks(), max_size=3), max_size=3))
async def test_stream_market_data_refuses_a_bad_batch_naming_its_fields(harness, batches):
    async def requests():
        for ticks in batches:
            yield spb.StreamMarketDataRequest(ticks=ticks)

    reply, error = await call(harness.stub.StreamMarketData, requests())
    now = harness.clock.now()
    first_bad = next((bad_tick_fields(ticks, now) for ticks in batches if bad_tick_fields(ticks, now)), None)
    if first_bad:
        assert error is not None and list(field_violations(error)) == first_bad[:MAX_VIOLATIONS], (batches, error)
    else:
        assert error is None and 0 <= reply.accepted <= sum(len(ticks) for ticks in batches)


@st.composite
def fills(draw):
    strategy = draw(names(STRATEGIES))
    return spb.ReportFillRequest(
        client_order_id=draw(st.one_of(st.sampled_from(["fill-1", "order-1"]), names())), strategy=strategy,
        symbol=draw(st.one_of(st.sampled_from(STRATEGY_SYMBOLS.get(strategy, SYMBOLS)), names(SYMBOLS))),
        side=draw(SIDES), quantity=draw(QUANTITIES), price=draw(PRICES), time=draw(timestamps()))


@FUZZ
@given(request=fills())
async def test_report_fill_refuses_malformed_or_unknown_fills_naming_the_field(harness, request):
    reply, error = await call(harness.stub.ReportFill, request)
    bad = {name for name, ok in (
        ("client_order_id", is_name(request.client_order_id, MAX_ID)), ("strategy", is_name(request.strategy)),
        ("symbol", is_name(request.symbol)), ("side", request.side in (pb.SIDE_BUY, pb.SIDE_SELL)),
        ("quantity", is_positive(request.quantity, MAX_QUANTITY)), ("price", is_price(request.price)),
        ("time", is_time(request.time if request.HasField("time") else None))) if not ok}
    if not bad and request.strategy not in STRATEGY_SYMBOLS:
        bad = {"strategy"}
    elif not bad and request.symbol not in STRATEGY_SYMBOLS[request.strategy]:
        bad = {"symbol"}
    if bad:
        assert error is not None and set(field_violations(error)) == bad, (request, error)
    else:
        assert error is None and reply.position.strategy == request.strategy, request
        assert reply.position.symbol == request.symbol


@st.composite
def positions_requests(draw):
    def position():
        strategy = draw(names(STRATEGIES))
        symbol = draw(st.one_of(st.sampled_from(STRATEGY_SYMBOLS.get(strategy, SYMBOLS)), names(SYMBOLS)))
        return pb.Position(strategy=strategy, symbol=symbol, quantity=draw(QUANTITIES))
    return spb.SetPositionsRequest(strategy=draw(st.one_of(st.just(""), names(STRATEGIES))),
                                   positions=[position() for _ in range(draw(st.integers(0, 4)))])


@FUZZ
@given(request=positions_requests())
async def test_set_positions_refuses_malformed_or_unknown_positions_naming_the_field(harness, request):
    reply, error = await call(harness.stub.SetPositions, request)
    bad = set() if is_optional_name(request.strategy) else {"strategy"}
    for index, p in enumerate(request.positions):
        where = f"positions[{index}]"
        bad |= {f"{where}.{name}" for name, ok in (
            ("strategy", is_name(p.strategy)), ("symbol", is_name(p.symbol)),
            ("quantity", math.isfinite(p.quantity) and abs(p.quantity) <= MAX_QUANTITY)) if not ok}
    keys = [(p.strategy, p.symbol) for p in request.positions]
    if len(set(keys)) != len(keys):
        bad.add("positions")
    if bad:
        assert error is not None and set(field_violations(error)) == bad, (request, error)
        return
    # well formed: the sidecar names the first strategy or symbol it does not know, if any
    unknown = set()
    if request.strategy and request.strategy not in STRATEGY_SYMBOLS:
        unknown.add("strategy")
    for index, p in enumerate(request.positions):
        if (request.strategy and p.strategy != request.strategy) or p.strategy not in STRATEGY_SYMBOLS:
            unknown.add(f"positions[{index}].strategy")
        elif p.symbol not in STRATEGY_SYMBOLS[p.strategy]:
            unknown.add(f"positions[{index}].symbol")
    if unknown:
        assert error is not None and set(field_violations(error)) <= unknown, (request, error)
    else:
        assert error is None and reply.positions == sum(1 for p in request.positions if p.quantity != 0)


@FUZZ
@given(order_id=st.one_of(st.sampled_from(["order-1", "fill-1"]), names()))
async def test_release_order_refuses_a_malformed_id_and_releases_nothing_unknown(harness, order_id):
    reply, error = await call(harness.stub.ReleaseOrder, spb.ReleaseOrderRequest(client_order_id=order_id))
    if is_name(order_id, MAX_ID):
        assert error is None and not reply.released
    else:
        assert error is not None and set(field_violations(error)) == {"client_order_id"}


@FUZZ
@given(limit=st.one_of(st.sampled_from([0, 1, 1000, 1001, 2**32 - 1]), st.integers(0, 2**32 - 1)),
       severity=enum_values([pb.ALERT_SEVERITY_UNSPECIFIED, pb.ALERT_SEVERITY_INFO, pb.ALERT_SEVERITY_WARNING,
                             pb.ALERT_SEVERITY_CRITICAL]))
async def test_list_alerts_refuses_an_unknown_severity_or_a_huge_limit(harness, limit, severity):
    reply, error = await call(harness.stub.ListAlerts, spb.ListAlertsRequest(limit=limit, min_severity=severity))
    bad = ({"limit"} if limit > 1000 else set()) | ({"min_severity"} if not 0 <= severity <= 3 else set())
    if bad:
        assert error is not None and set(field_violations(error)) == bad
    else:
        assert error is None and len(reply.alerts) <= (limit or 100)
        assert all(a.severity >= severity for a in reply.alerts)


@settings(FUZZ, max_examples=40)
@given(after=st.one_of(st.sampled_from([0, 1, 2, 2**63 - 1, 2**63, 2**64 - 1]), st.integers(0, 2**64 - 1)),
       from_latest=st.booleans())
async def test_stream_recommendations_with_any_resume_point(harness, after, from_latest):
    """Recommendations after the resume point, OUT_OF_RANGE, or (nothing to send yet) a wait
    that the client ends; never another error."""
    stream = harness.stub.StreamRecommendations(
        spb.StreamRecommendationsRequest(after_sequence=after, from_latest=from_latest), timeout=30)
    try:
        message = await asyncio.wait_for(stream.read(), 0.1)
    except TimeoutError:
        return  # waiting for a live recommendation
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.OUT_OF_RANGE, (error.code(), error.details())
        return
    finally:
        stream.cancel()
    assert message is not grpc.aio.EOF and message.recommendations
    if not from_latest:
        assert message.recommendations[0].sequence == after + 1


async def test_sidecar_is_healthy_after_service_rpc_fuzzing(harness, admin_metadata):
    status = await harness.stub.GetStatus(spb.GetStatusRequest(), timeout=30)
    for _ in range(100):  # cancelled streams detach on the server a moment later
        if status.subscribers == 0:
            break
        await asyncio.sleep(0.02)
        status = await harness.stub.GetStatus(spb.GetStatusRequest(), timeout=30)
    assert status.subscribers == 0
    await assert_healthy(harness, admin_metadata)
