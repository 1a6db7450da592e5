"""CheckTrade fuzzed against a real sidecar: malformed orders are refused with INVALID_ARGUMENT
naming each bad field, an approval only ever comes from a well-formed order for a known
strategy and symbol, and a client order id answers a replay the same way and a different
order with ORDER_ID_REUSED."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import types_pb2 as pb

from .conftest import (
    FUZZ, FUZZ_MORE, STRATEGIES, STRATEGY_SYMBOLS, SYMBOLS, assert_decision_is_consistent, assert_healthy,
    bad_fields, call, enum_values, field_violations, names, numbers,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

SAFE_NAMES = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=20)
order_numbers = itertools.count()
FRESH_IDS = st.builds(lambda: f"order-{next(order_numbers)}")
# A well-formed value of each field (known names most of the time), and a hostile one.
WELL_FORMED = {
    "client_order_id": st.one_of(FRESH_IDS, FRESH_IDS, FRESH_IDS, st.sampled_from(["dup-1", "dup-2"])),
    "strategy": st.one_of(st.sampled_from(STRATEGIES), st.sampled_from(STRATEGIES), SAFE_NAMES),
    "symbol": st.one_of(st.sampled_from(SYMBOLS), SAFE_NAMES),  # replaced by one of the strategy's mostly
    "side": st.sampled_from([pb.SIDE_BUY, pb.SIDE_SELL]),
    "quantity": st.one_of(st.integers(1, 500).map(float), st.floats(1e-3, 1e4)),
    "limit_price": st.one_of(st.just(0.0), st.just(0.0), st.floats(1.0, 1_000.0)),
}
HOSTILE = {
    "client_order_id": names(), "strategy": names(STRATEGIES), "symbol": names(SYMBOLS),
    "side": enum_values([pb.SIDE_BUY, pb.SIDE_SELL]),
    "quantity": numbers(WELL_FORMED["quantity"]), "limit_price": numbers(WELL_FORMED["limit_price"]),
}


@st.composite
def check_trade_requests(draw) -> spb.CheckTradeRequest:
    """About half well-formed orders, half with one or more fields drawn from hostile values."""
    corrupt = draw(st.one_of(st.just(frozenset()), st.sets(st.sampled_from(sorted(HOSTILE)), min_size=1)))
    fields = {name: draw(HOSTILE[name] if name in corrupt else WELL_FORMED[name]) for name in WELL_FORMED}
    if "symbol" not in corrupt and fields["strategy"] in STRATEGY_SYMBOLS and draw(st.integers(0, 3)):
        fields["symbol"] = draw(st.sampled_from(STRATEGY_SYMBOLS[fields["strategy"]]))
    return spb.CheckTradeRequest(**fields, dry_run=draw(st.booleans()))


@dataclass(frozen=True)
class Remembered:
    order: tuple
    decision: int
    approved_quantity: float


def order_key(request: spb.CheckTradeRequest) -> tuple:
    return (request.strategy, request.symbol, request.side, request.quantity, request.limit_price)


# What the sidecar should remember, per client order id (checks that were not dry runs).
remembered: dict[str, Remembered] = {}
reserved_ids: set[str] = set()
reuse_numbers = itertools.count()


@FUZZ_MORE
@given(request=check_trade_requests(), release=st.integers(0, 3))
async def test_check_trade_refuses_malformed_orders_and_approves_only_well_formed_ones(harness, request, release):
    reply, error = await call(harness.stub.CheckTrade, request)
    expected_bad = bad_fields(request)
    event("refused" if error else pb.Decision.Name(reply.decision))
    if expected_bad:
        assert error is not None, (request, reply)
        assert set(field_violations(error)) == expected_bad, (request, field_violations(error))
        return
    assert error is None, (request, field_violations(error))
    assert_decision_is_consistent(request, reply)

    earlier = remembered.get(request.client_order_id)
    codes = [r.code for r in reply.reasons]
    if earlier is not None and earlier.order == order_key(request):
        assert reply.replayed and reply.decision == earlier.decision, (request, reply, earlier)
        assert reply.approved_quantity == earlier.approved_quantity
    elif earlier is not None:
        assert reply.decision == pb.DECISION_REJECTED and codes == [pb.REASON_CODE_ORDER_ID_REUSED], reply
        assert not reply.replayed and not reply.reserved
    else:
        assert not reply.replayed
        if request.strategy not in STRATEGY_SYMBOLS:
            assert reply.decision == pb.DECISION_REJECTED and pb.REASON_CODE_UNKNOWN_STRATEGY in codes, reply
        elif request.symbol not in STRATEGY_SYMBOLS[request.strategy]:
            assert reply.decision == pb.DECISION_REJECTED and pb.REASON_CODE_UNKNOWN_SYMBOL in codes, reply
        assert reply.reserved == (reply.approved_quantity > 0 and not request.dry_run), reply
        if not request.dry_run:
            remembered[request.client_order_id] = Remembered(order_key(request), reply.decision,
                                                             reply.approved_quantity)
    if reply.reserved and not reply.replayed and release:  # most: leave room in the budget
        released = await harness.stub.ReleaseOrder(spb.ReleaseOrderRequest(
            client_order_id=request.client_order_id), timeout=30)
        assert released.released
    elif reply.reserved:
        reserved_ids.add(request.client_order_id)


WELL_FORMED_ORDERS = st.builds(
    lambda strategy, index, side, quantity, limit: spb.CheckTradeRequest(
        strategy=strategy, symbol=STRATEGY_SYMBOLS[strategy][index], side=side, quantity=quantity,
        limit_price=limit),
    st.sampled_from(STRATEGIES), st.integers(0, 1), st.sampled_from([pb.SIDE_BUY, pb.SIDE_SELL]),
    st.integers(1, 200).map(float), st.sampled_from([0.0]))


@FUZZ
@given(first=WELL_FORMED_ORDERS, second=WELL_FORMED_ORDERS)
async def test_a_reused_client_order_id_replays_the_same_order_and_rejects_a_different_one(
        harness, first, second):
    order_id = f"reuse-{next(reuse_numbers)}"
    first.client_order_id = second.client_order_id = order_id

    original = await harness.stub.CheckTrade(first, timeout=30)
    replay = await harness.stub.CheckTrade(first, timeout=30)
    other = await harness.stub.CheckTrade(second, timeout=30)

    assert not original.replayed
    assert replay.replayed and replay.decision == original.decision
    assert replay.approved_quantity == original.approved_quantity
    if order_key(first) == order_key(second):
        assert other.replayed and other.decision == original.decision
    else:
        assert other.decision == pb.DECISION_REJECTED, other
        assert [r.code for r in other.reasons] == [pb.REASON_CODE_ORDER_ID_REUSED]
        assert other.approved_quantity == 0 and not other.reserved and not other.replayed
    if original.reserved:
        reserved_ids.add(order_id)


async def test_check_trade_named_hostile_orders_are_refused(harness):
    """The cases the issue names, each once, whatever hypothesis happens to draw."""
    good = dict(client_order_id="hostile", strategy="trend", symbol="AAA", side=pb.SIDE_BUY, quantity=1.0)
    cases = [
        ({"quantity": math.nan}, "quantity"), ({"quantity": math.inf}, "quantity"),
        ({"quantity": -math.inf}, "quantity"), ({"quantity": 0.0}, "quantity"), ({"quantity": -5.0}, "quantity"),
        ({"quantity": 1e308}, "quantity"), ({"limit_price": math.nan}, "limit_price"),
        ({"limit_price": -1.0}, "limit_price"), ({"limit_price": 1e308}, "limit_price"),
        ({"limit_price": 5e-324}, "limit_price"),
        ({"side": 99}, "side"), ({"side": pb.SIDE_UNSPECIFIED}, "side"), ({"side": -1}, "side"),
        ({"client_order_id": ""}, "client_order_id"), ({"client_order_id": "x" * 10_240}, "client_order_id"),
        ({"client_order_id": "a\x00b"}, "client_order_id"), ({"client_order_id": "a\nb"}, "client_order_id"),
        ({"strategy": "trend\x00"}, "strategy"), ({"symbol": "AAA\n"}, "symbol"), ({"symbol": "S" * 10_240}, "symbol"),
    ]
    for change, field in cases:
        _, error = await call(harness.stub.CheckTrade, spb.CheckTradeRequest(**{**good, **change}))
        assert error is not None and field in field_violations(error), (change, error)

    for strategy, symbol, code in (("nosuch", "AAA", pb.REASON_CODE_UNKNOWN_STRATEGY),
                                   ("trend", "ZZZ", pb.REASON_CODE_UNKNOWN_SYMBOL),
                                   ("trend", "CCC", pb.REASON_CODE_UNKNOWN_SYMBOL)):
        reply = await harness.check(f"unknown-{strategy}-{symbol}", 1, strategy=strategy, symbol=symbol)
        assert reply.decision == pb.DECISION_REJECTED and code in [r.code for r in reply.reasons], reply


async def test_sidecar_is_healthy_after_check_trade_fuzzing(harness, admin_metadata):
    await assert_healthy(harness, admin_metadata, reserved_ids)
