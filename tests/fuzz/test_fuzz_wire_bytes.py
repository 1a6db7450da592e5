"""Arbitrary bytes as the request body of every method of both services, sent on a raw
channel (no serializer) to a real sidecar: each call ends with OK, INVALID_ARGUMENT naming a
field (or, for a body that does not parse, the request body and its message type), or
(streams) OUT_OF_RANGE or a wait the client ends; an approval only ever answers bytes that
decode to a well-formed order; and the sidecar is healthy afterwards."""

from __future__ import annotations

import asyncio
import math

import grpc
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from riskbudget.v1 import risk_budget_admin_pb2 as apb
from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import types_pb2 as pb

from .conftest import FUZZ_MORE, MAX_ID, MAX_QUANTITY, assert_healthy, field_violations, is_name, is_price

pytestmark = pytest.mark.asyncio(loop_scope="module")

SERVICES = (spb.DESCRIPTOR.services_by_name["RiskBudgetService"],
            apb.DESCRIPTOR.services_by_name["RiskBudgetAdminService"])
METHODS = {f"/{service.full_name}/{method.name}": method for service in SERVICES for method in service.methods}
ADMIN_PREFIX = "/riskbudget.v1.RiskBudgetAdminService/"

# What a valid request looks like on the wire, per method: the bodies below start from these
# and mutate them, so that many decode (and reach our code) rather than fail in the parser.
SAMPLES = {
    "CheckTrade": spb.CheckTradeRequest(client_order_id="wire-1", strategy="trend", symbol="AAA",
                                        side=pb.SIDE_BUY, quantity=5, dry_run=True),
    "PublishMarketData": spb.PublishMarketDataRequest(ticks=[pb.PriceTick(symbol="AAA", price=100.0)]),
    "StreamMarketData": spb.StreamMarketDataRequest(ticks=[pb.PriceTick(symbol="BBB", price=50.0)]),
    "ReportFill": spb.ReportFillRequest(client_order_id="wire-1", strategy="trend", symbol="AAA",
                                        side=pb.SIDE_BUY, quantity=1, price=100.0),
    "SetPositions": spb.SetPositionsRequest(positions=[pb.Position(strategy="trend", symbol="AAA", quantity=1)]),
    "ReleaseOrder": spb.ReleaseOrderRequest(client_order_id="wire-1"),
    "ListAlerts": spb.ListAlertsRequest(limit=5, min_severity=pb.ALERT_SEVERITY_INFO),
    "StreamRecommendations": spb.StreamRecommendationsRequest(after_sequence=1),
    "GetBudget": spb.GetBudgetRequest(strategy="trend"),
    "GetUtilization": spb.GetUtilizationRequest(strategy="carry"),
    "SetTradingState": apb.SetTradingStateRequest(state=pb.TRADING_STATE_REDUCING, strategy="carry"),
    "SetOverride": apb.SetOverrideRequest(override=pb.Override(
        scope=pb.OVERRIDE_SCOPE_SYMBOL, target="AAA", kind=pb.OVERRIDE_KIND_RESTRICT_SYMBOL, set_by="w",
        reason="w")),
    "ClearOverride": apb.ClearOverrideRequest(id="ovr-1"),
    "TriggerRebalance": apb.TriggerRebalanceRequest(reason="wire"),
}


def mutated(sample: bytes) -> st.SearchStrategy[bytes]:
    """The sample with bytes flipped, inserted, dropped or appended."""
    @st.composite
    def mutate(draw):
        body = bytearray(sample)
        for _ in range(draw(st.integers(1, 2))):
            where = draw(st.integers(0, len(body)))
            action = draw(st.sampled_from(["flip", "insert", "drop", "append"]))
            if action == "flip" and where < len(body):
                body[where] = draw(st.integers(0, 255))
            elif action == "insert":
                body[where:where] = draw(st.binary(min_size=1, max_size=8))
            elif action == "drop" and where < len(body):
                del body[where]
            else:
                body += draw(st.binary(max_size=16))
        return bytes(body)
    return mutate()


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


@st.composite
def framed_fields(draw) -> bytes:
    """Well-framed protobuf fields with arbitrary numbers, wire types and payloads: they parse
    (as known fields with odd values, NaN doubles, huge varints, or unknown fields) unless a
    string is not UTF-8 or a nested message is corrupt."""
    body = bytearray()
    for _ in range(draw(st.integers(0, 6))):
        number = draw(st.one_of(st.integers(1, 12), st.integers(1, 2**29 - 1)))
        wire_type = draw(st.sampled_from([0, 1, 2, 5]))
        body += varint(number << 3 | wire_type)
        if wire_type == 0:
            body += varint(draw(st.one_of(st.integers(0, 4), st.integers(0, 2**64 - 1))))
        elif wire_type == 1:
            body += draw(st.one_of(st.binary(min_size=8, max_size=8),
                                   st.sampled_from([b"\x00\x00\x00\x00\x00\x00\xf8\x7f",  # NaN
                                                    b"\x00\x00\x00\x00\x00\x00\xf0\x7f",  # +inf
                                                    b"\x00\x00\x00\x00\x00\x00\xf0\xff"])))  # -inf
        elif wire_type == 5:
            body += draw(st.binary(min_size=4, max_size=4))
        else:
            payload = draw(st.one_of(st.text(max_size=40).map(str.encode), st.binary(max_size=40),
                                     st.just(b"x" * 10_240)))
            body += varint(len(payload)) + payload
    return bytes(body)


@st.composite
def bodies(draw):
    path = draw(st.sampled_from(sorted(METHODS)))
    sample = SAMPLES.get(METHODS[path].name)
    options = [st.binary(max_size=300), framed_fields(),
               st.sampled_from([b"", b"\x00", b"\xff" * 64, b"\x0a\xff\xff\xff\xff\x0f"])]
    if sample is not None:
        encoded = sample.SerializeToString()
        options += [mutated(encoded), framed_fields().map(lambda extra: encoded + extra)]
    return path, draw(st.one_of(*options))


def decodes_to_a_well_formed_order(body: bytes) -> bool:
    request = spb.CheckTradeRequest.FromString(body)
    return (is_name(request.client_order_id, MAX_ID) and is_name(request.strategy) and is_name(request.symbol)
            and request.side in (pb.SIDE_BUY, pb.SIDE_SELL) and 0 < request.quantity <= MAX_QUANTITY
            and (request.limit_price == 0 or is_price(request.limit_price)))


async def send(harness, admin_metadata, path: str, body: bytes):
    """(response bytes or None, error or None, outcome label)."""
    method = METHODS[path]
    metadata = admin_metadata if path.startswith(ADMIN_PREFIX) else ()
    channel = harness.channel
    try:
        if method.server_streaming:
            stream = channel.unary_stream(path, request_serializer=None, response_deserializer=None)(
                body, metadata=metadata, timeout=30)
            try:
                await asyncio.wait_for(stream.read(), 0.1)
            except TimeoutError:
                return None, None, "waiting"
            finally:
                stream.cancel()
            return None, None, "OK"
        if method.client_streaming:
            pieces = [body[i:i + 50] for i in range(0, len(body), 50)] or [b""]

            async def requests():
                for piece in pieces:
                    yield piece

            reply = await channel.stream_unary(path, request_serializer=None, response_deserializer=None)(
                requests(), metadata=metadata, timeout=30)
            return reply, None, "OK"
        reply = await channel.unary_unary(path, request_serializer=None, response_deserializer=None)(
            body, metadata=metadata, timeout=30)
        return reply, None, "OK"
    except grpc.aio.AioRpcError as error:
        return None, error, error.code().name


@FUZZ_MORE
@given(path_and_body=bodies())
async def test_any_bytes_on_the_wire_get_a_clean_answer(harness, admin_metadata, path_and_body):
    path, body = path_and_body
    reply, error, outcome = await send(harness, admin_metadata, path, body)
    event(f"{METHODS[path].name}: {outcome}")
    if error is not None:
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            assert field_violations(error), path
        else:
            assert error.code() == grpc.StatusCode.OUT_OF_RANGE, (path, body, error.code(), error.details())
            assert METHODS[path].name == "StreamRecommendations", (path, error.details())
    if reply is not None and METHODS[path].name == "CheckTrade":
        decision = spb.CheckTradeResponse.FromString(reply)
        if decision.decision in (pb.DECISION_APPROVED, pb.DECISION_RESIZED):
            assert decodes_to_a_well_formed_order(body), (body, decision)
            assert math.isfinite(decision.approved_quantity) and decision.approved_quantity > 0


UNPARSABLE = b"\x0a\xff\xff\xff\xff\x0f"  # field 1, a string 2**32 - 1 bytes long, then nothing


@pytest.mark.parametrize("path", [
    "/riskbudget.v1.RiskBudgetService/CheckTrade",
    "/riskbudget.v1.RiskBudgetService/StreamMarketData",
    "/riskbudget.v1.RiskBudgetService/StreamRecommendations",
    "/riskbudget.v1.RiskBudgetAdminService/SetOverride",
])
async def test_a_body_that_does_not_parse_is_invalid_argument_naming_its_message_type(
        harness, admin_metadata, path):
    _, error, _ = await send(harness, admin_metadata, path, UNPARSABLE)

    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    [(field, problem)] = field_violations(error).items()
    assert field == "(request body)"
    assert problem.startswith(f"is not a valid {METHODS[path].input_type.full_name}: ")


async def test_a_body_above_the_message_limit_is_refused_and_the_sidecar_goes_on(harness):
    call = harness.channel.unary_unary("/riskbudget.v1.RiskBudgetService/PublishMarketData",
                                       request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call(b"\x0a\x00" * 40_000, timeout=30)  # 80 KB of empty ticks; the limit is 64 KB
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_sidecar_is_healthy_after_wire_fuzzing(harness, admin_metadata):
    await assert_healthy(harness, admin_metadata)
