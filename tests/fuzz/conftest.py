"""Shared pieces of the fuzz tests: one real sidecar per test module, hypothesis strategies
for hostile field values, and the checks every reply must pass.

Each module gets its own server (module-scoped fixture on a module-scoped event loop), so
the hypothesis examples of a module run against one sidecar that accumulates whatever the
earlier examples did to it; each module ends by checking that the sidecar is still healthy.
"""

from __future__ import annotations

import math
import string

import grpc
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from riskbudget.v1 import risk_budget_admin_pb2 as apb
from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import types_pb2 as pb
from riskbudget_sidecar.app.serve import stop
from riskbudget_sidecar.rpc.converters import MAX_TICK_AHEAD

from ..rpc.conftest import ADMIN_TOKEN, start_harness

# Deterministic and bounded: the same examples on every run, no example database, no
# per-example deadline (a loaded CI machine must not turn slowness into a failure).
FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FUZZ_MORE = settings(FUZZ, max_examples=250)  # CheckTrade (the call that approves) and raw bytes

STRATEGY_SYMBOLS = {"trend": ("AAA", "BBB"), "carry": ("CCC", "DDD")}
STRATEGIES = tuple(STRATEGY_SYMBOLS)
SYMBOLS = tuple(s for symbols in STRATEGY_SYMBOLS.values() for s in symbols)
MAX_ID, MAX_NAME, MAX_TEXT = 128, 64, 1024
MAX_QUANTITY = MAX_PRICE = 1e12
MIN_PRICE = 1e-12
MAX_VIOLATIONS = 10  # a refusal names the first ten problems (service/errors.py)

# -- hostile values ------------------------------------------------------------------------------

SPECIAL_STRINGS = [
    "", " ", "\x00", "AAA\x00", "\x00AAA", "trend\n", "line\nbreak", "tab\there", "\r\n", "\x1b[31m",
    "\x7f", "\u200b", "\u202e", "\u2028", "\ufeff", "ñandú", "日本語", "😀", "%s%n", "'; DROP TABLE x;--",
    "../../etc/passwd", "A" * 64, "A" * 65, "o" * 128, "o" * 129, "r" * 1024, "r" * 1025,
    "x" * 10_240, "\x00" * 10_240, "é" * 10_240,
]


def names(known: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    """Known names (so that valid requests occur too), special cases and arbitrary text."""
    return st.one_of(st.sampled_from(known) if known else st.nothing(),
                     st.sampled_from(SPECIAL_STRINGS),
                     st.text(max_size=80),
                     st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=20))


SPECIAL_FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-12, 9.99e-13, 1e-300, 5e-324, 1e12, 1e12 + 1e-3, 1.0000001e12,
                  1e13, 1e308, -1e308, 1.7976931348623157e308, math.inf, -math.inf, math.nan, -math.nan]


def numbers(typical: st.SearchStrategy[float] | None = None) -> st.SearchStrategy[float]:
    """Any double, the special ones often, and (if given) values of a typical size."""
    parts = [st.sampled_from(SPECIAL_FLOATS), st.floats(allow_nan=True, allow_infinity=True)]
    if typical is not None:
        parts.insert(0, typical)
    return st.one_of(*parts)


def enum_values(valid: list[int]) -> st.SearchStrategy[int]:
    """Valid values, 0 and unknown ones (proto3 enums are open: any int32 goes on the wire)."""
    return st.one_of(st.sampled_from(valid), st.sampled_from([0, -1, 99, 2**31 - 1, -2**31]),
                     st.integers(-2**31, 2**31 - 1))


TIMESTAMP_SECONDS = st.one_of(
    st.sampled_from([0, -1, 1, 1_800_000_000, 253_402_300_799, 253_402_300_800, 2**62, 2**63 - 1, -2**63]),
    st.integers(-2**63, 2**63 - 1))
TIMESTAMP_NANOS = st.one_of(st.sampled_from([0, 999_999_999, 1_000_000_000, -1]), st.integers(-2**31, 2**31 - 1))


def is_name(value: str, limit: int = MAX_NAME) -> bool:
    """What the contract accepts as a required name or id: non-empty, short, printable."""
    return 0 < len(value) <= limit and value.isprintable()


def is_actor(value: str) -> bool:
    """Who makes a change: a name, and not only spaces."""
    return is_name(value) and bool(value.strip())


def is_optional_name(value: str, limit: int = MAX_NAME) -> bool:
    return value == "" or is_name(value, limit)


def is_positive(value: float, limit: float) -> bool:
    return math.isfinite(value) and 0 < value <= limit


def is_price(value: float) -> bool:
    return math.isfinite(value) and MIN_PRICE <= value <= MAX_PRICE


def bad_fields(request: spb.CheckTradeRequest) -> set[str]:
    """The fields of a CheckTrade request the contract refuses, worked out independently of the server."""
    bad = set()
    if not is_name(request.client_order_id, MAX_ID):
        bad.add("client_order_id")
    if not is_name(request.strategy):
        bad.add("strategy")
    if not is_name(request.symbol):
        bad.add("symbol")
    if request.side not in (pb.SIDE_BUY, pb.SIDE_SELL):
        bad.add("side")
    if not is_positive(request.quantity, MAX_QUANTITY):
        bad.add("quantity")
    if not (request.limit_price == 0 or is_price(request.limit_price)):
        bad.add("limit_price")
    return bad


def assert_decision_is_consistent(request: spb.CheckTradeRequest, reply: spb.CheckTradeResponse) -> None:
    """Invariants of any CheckTrade reply to a well-formed request."""
    assert reply.client_order_id == request.client_order_id
    assert reply.decision in (pb.DECISION_APPROVED, pb.DECISION_RESIZED, pb.DECISION_REJECTED), reply
    assert math.isfinite(reply.approved_quantity) and 0 <= reply.approved_quantity <= request.quantity, reply
    if reply.decision == pb.DECISION_APPROVED:
        assert reply.approved_quantity == request.quantity, reply
    elif reply.decision == pb.DECISION_RESIZED:
        assert 0 < reply.approved_quantity < request.quantity and reply.reasons, reply
    else:
        assert reply.approved_quantity == 0 and reply.reasons and not reply.reserved, reply
    if reply.decision in (pb.DECISION_APPROVED, pb.DECISION_RESIZED):
        # an approval never comes from malformed input, nor from an unknown strategy or symbol
        assert not bad_fields(request), request
        assert request.symbol in STRATEGY_SYMBOLS.get(request.strategy, ()), request
        assert math.isfinite(reply.reference_price) and reply.reference_price > 0, reply


# -- the server -----------------------------------------------------------------------------------

@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def harness(tmp_path_factory):
    running = await start_harness(tmp_path_factory.mktemp("fuzz"))
    running.initial_prices = await running.publish_last_prices()  # what assert_healthy puts back
    yield running
    await running.channel.close()
    await stop(running.sidecar, running.server)


@pytest.fixture(scope="module")
def admin_metadata():
    return (("authorization", f"Bearer {ADMIN_TOKEN}"),)


# -- what every reply must be -------------------------------------------------------------------

def field_violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(error)
    assert status is not None, f"INVALID_ARGUMENT without a google.rpc.Status: {error.details()!r}"
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            assert bad_request.field_violations, "a BadRequest with no field violation"
            return {v.field: v.description for v in bad_request.field_violations}
    raise AssertionError(f"INVALID_ARGUMENT without a BadRequest detail: {error.details()!r}")


async def call(rpc, request, **kwargs):
    """(reply, None) or (None, error); any status but OK and INVALID_ARGUMENT fails the test,
    and an INVALID_ARGUMENT must name at least one field."""
    try:
        return await rpc(request, timeout=30, **kwargs), None
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details(), request)
        field_violations(error)
        return None, error


async def assert_healthy(harness, admin_metadata, reserved_ids=()) -> None:
    """grpc.health.v1 says SERVING, and a well-formed order is approved, after the book, the
    reservations (`reserved_ids`), the trading states, the overrides and the prices are put back
    to a normal state."""
    health = health_pb2_grpc.HealthStub(harness.channel)
    for service in ("", "riskbudget.v1.RiskBudgetService", "riskbudget.v1.RiskBudgetAdminService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=30)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service

    listed = await harness.admin.ListOverrides(apb.ListOverridesRequest(), metadata=admin_metadata, timeout=30)
    for override in listed.overrides:
        await harness.admin.ClearOverride(apb.ClearOverrideRequest(id=override.id, cleared_by="fuzz",
                                                                   reason="reset"),
                                          metadata=admin_metadata, timeout=30)
    for strategy in ("",) + STRATEGIES:
        await harness.admin.SetTradingState(apb.SetTradingStateRequest(
            state=pb.TRADING_STATE_ACTIVE, strategy=strategy, reason="reset", set_by="fuzz"),
            metadata=admin_metadata, timeout=30)
    await harness.stub.SetPositions(spb.SetPositionsRequest(), timeout=30)
    for order_id in reserved_ids:
        await harness.stub.ReleaseOrder(spb.ReleaseOrderRequest(client_order_id=order_id), timeout=30)
    harness.clock.advance(MAX_TICK_AHEAD + 1)  # past any price the fuzzing dated (legitimately) ahead
    await harness.publish(harness.initial_prices)  # held, where far from what the fuzzing left ...
    harness.clock.advance(1)
    published = await harness.publish(harness.initial_prices)  # ... and confirmed
    assert published.accepted == len(harness.initial_prices)
    budget = (await harness.stub.GetBudget(spb.GetBudgetRequest(), timeout=30)).budget
    assert {s.symbol: s.last_price for s in budget.symbols} == harness.initial_prices

    order_id = f"health-{harness.clock.now()}"
    reply = await harness.check(order_id, 1, strategy="trend", symbol="AAA")
    assert reply.decision == pb.DECISION_APPROVED, reply
    assert reply.approved_quantity == 1 and reply.reserved
    again = await harness.check(order_id, 1, strategy="trend", symbol="AAA")
    assert again.replayed and again.decision == pb.DECISION_APPROVED
    released = await harness.stub.ReleaseOrder(spb.ReleaseOrderRequest(client_order_id=order_id), timeout=30)
    assert released.released
