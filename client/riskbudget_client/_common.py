"""What the sync and asyncio clients share: settings, request building, errors,
and the fail-closed handling of CheckTrade replies."""

from __future__ import annotations

import decimal
import math
import numbers
import time
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, cast

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from riskbudget.v1 import risk_budget_admin_pb2 as admin_pb2
from riskbudget.v1 import risk_budget_service_pb2 as service_pb2
from riskbudget.v1 import types_pb2

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

DEFAULT_CHECK_TRADE_TIMEOUT = 0.25
"""Seconds CheckTrade may take before the client rejects the order itself."""

DEFAULT_TIMEOUT = 5.0
"""Seconds every other unary call may take."""

CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    # The sidecar is on this host: never route to it through an HTTP proxy.
    ("grpc.enable_http_proxy", 0),
    # Reconnect within a second of a sidecar restart rather than after gRPC's
    # default backoff of up to two minutes, during which every order would be
    # rejected as unavailable.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)

Metadata = tuple[tuple[str, str], ...]
Tick = tuple[str, float, "datetime | float"]
PositionRow = tuple[str, str, float]

_ACCEPTED_DECISIONS = frozenset(
    {types_pb2.DECISION_APPROVED, types_pb2.DECISION_RESIZED, types_pb2.DECISION_REJECTED}
)


class RiskBudgetError(Exception):
    """A call to the sidecar failed with a gRPC status other than OK."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{method} failed: {code.name}: {details}")
        self.method = method
        self.code = code
        self.details = details

    @classmethod
    def from_rpc_error(cls, method: str, error: grpc.RpcError) -> RiskBudgetError:
        return cls(method, *status_of(error))


def status_of(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    """The status of a failed call; sync and aio call errors both carry it."""
    call = cast(grpc.Call, error)
    return call.code(), call.details() or ""


def positive_seconds(value: float, argument: str) -> float:
    if not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
        raise ValueError(f"{argument} must be a positive number of seconds, got {value!r}")
    return float(value)


def channel_options(
    credentials: grpc.ChannelCredentials | None, tls_server_name: str | None
) -> tuple[tuple[str, int | str], ...]:
    """CHANNEL_OPTIONS, and with `tls_server_name` the name that the sidecar's
    certificate is checked against instead of the target's host."""
    if tls_server_name is None:
        return CHANNEL_OPTIONS
    if credentials is None:
        raise ValueError(
            "tls_server_name needs credentials: it is the name on the sidecar's TLS certificate"
        )
    name = tls_server_name
    is_host_name = isinstance(name, str) and name.isprintable() and name.split() == [name]
    if not is_host_name:
        raise ValueError(f"tls_server_name must be a host name, got {name!r}")
    return (*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", name))


def _bearer(token: str, argument: str) -> Metadata:
    """The authorization header of `token`, refused up front unless it is printable ASCII with no
    spaces: anything else (a newline read from a file or an environment variable) is not a
    valid header value, and gRPC would fail every call with a bare INTERNAL error."""
    if not (isinstance(token, str) and token and token.isascii() and token.isprintable()
            and " " not in token):
        raise ValueError(f"{argument} must be printable ASCII without spaces or line breaks "
                         "(strip the newline a file or a variable may end with)")
    return (("authorization", f"Bearer {token}"),)


def admin_metadata(admin_token: str | None) -> Metadata:
    return () if admin_token is None else _bearer(admin_token, "admin_token")


def client_metadata(client_token: str | None) -> Metadata | None:
    """What the trading and read calls carry: the client token, if the sidecar wants one."""
    return None if client_token is None else _bearer(client_token, "client_token")


def enum_key(enum: EnumTypeWrapper, value: str | int, argument: str) -> str:
    """The full name of a value of `enum`, given the value or its name in full
    or without the prefix, in any case (`SIDE_BUY`, `"SIDE_BUY"`, `"buy"`).
    UNSPECIFIED is refused: it is never a valid choice."""
    prefix = enum.Name(0).removesuffix("UNSPECIFIED")
    key = enum.Name(0)
    if isinstance(value, str):
        name = value.upper()
        key = name if name.startswith(prefix) else prefix + name
    elif isinstance(value, int) and not isinstance(value, bool) and value in enum.values():
        key = enum.Name(value)
    if key not in enum.keys()[1:]:
        names = ", ".join(repr(name.removeprefix(prefix).lower()) for name in enum.keys()[1:])
        raise ValueError(
            f"{argument} must be one of {names} or a {enum.DESCRIPTOR.name} value, got {value!r}"
        )
    return key


def enum_name(enum: EnumTypeWrapper, number: int) -> str:
    """The name of a value, also for values newer than these stubs."""
    try:
        return enum.Name(number)
    except ValueError:
        return f"{enum.Name(0).removesuffix('UNSPECIFIED')}{number}"


def timestamp(value: datetime | float, argument: str) -> Timestamp:
    """A protobuf timestamp from a timezone-aware datetime or epoch seconds."""
    result = Timestamp()
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{argument} must be timezone-aware, got the naive {value!r}")
        result.FromDatetime(value)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value):
        # Today's epoch in nanoseconds is past 2**53, where a float is no longer
        # exact: split off the whole seconds first.
        seconds = math.floor(value)
        result.FromNanoseconds(seconds * 1_000_000_000 + round((value - seconds) * 1_000_000_000))
    else:
        raise ValueError(f"{argument} must be a datetime or epoch seconds, got {value!r}")
    return result


def number(value: float, argument: str) -> float:
    """A quantity or a price as given (any real number: int, float, numpy's, Decimal); a bool
    (which protobuf would send as 1 or 0) or a non-number raises TypeError before anything
    is sent."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, decimal.Decimal)):
        raise TypeError(f"{argument} must be a number, got {value!r}")
    return value


NUMPY_BOOLS = {("numpy", "bool"), ("numpy", "bool_")}
"""numpy's bool type, as numpy 2 and 1 name it: known without importing numpy."""


def flag(value: bool, argument: str) -> bool:
    """True or False (numpy's too), refused otherwise: `dry_run=None` would go out as a real order."""
    if not (isinstance(value, bool) or (type(value).__module__, type(value).__name__) in NUMPY_BOOLS):
        raise TypeError(f"{argument} must be True or False, got {value!r}")
    return bool(value)


def check_trade_request(
    client_order_id: str,
    strategy: str,
    symbol: str,
    side: str | int,
    quantity: float,
    limit_price: float,
    dry_run: bool,
) -> service_pb2.CheckTradeRequest:
    return service_pb2.CheckTradeRequest(
        client_order_id=client_order_id,
        strategy=strategy,
        symbol=symbol,
        side=enum_key(types_pb2.Side, side, "side"),
        quantity=number(quantity, "quantity"),
        limit_price=number(limit_price, "limit_price"),
        dry_run=flag(dry_run, "dry_run"),
    )


def publish_market_data_request(ticks: Iterable[Tick]) -> service_pb2.PublishMarketDataRequest:
    return service_pb2.PublishMarketDataRequest(
        ticks=[
            types_pb2.PriceTick(symbol=symbol, price=number(price, "tick price"), time=timestamp(time, "tick time"))
            for symbol, price, time in ticks
        ]
    )


def report_fill_request(
    client_order_id: str,
    strategy: str,
    symbol: str,
    side: str | int,
    quantity: float,
    price: float,
    time: datetime | float,
    execution_id: str,
) -> service_pb2.ReportFillRequest:
    return service_pb2.ReportFillRequest(
        execution_id=execution_id,
        client_order_id=client_order_id,
        strategy=strategy,
        symbol=symbol,
        side=enum_key(types_pb2.Side, side, "side"),
        quantity=number(quantity, "quantity"),
        price=number(price, "price"),
        time=timestamp(time, "time"),
    )


def set_positions_request(
    positions: Iterable[PositionRow], strategy: str
) -> service_pb2.SetPositionsRequest:
    return service_pb2.SetPositionsRequest(
        strategy=strategy,
        positions=[
            types_pb2.Position(strategy=owner, symbol=symbol, quantity=number(quantity, "position quantity"))
            for owner, symbol, quantity in positions
        ],
    )


def set_trading_state_request(
    state: str | int, strategy: str, reason: str, set_by: str
) -> admin_pb2.SetTradingStateRequest:
    return admin_pb2.SetTradingStateRequest(
        state=enum_key(types_pb2.TradingState, state, "state"),
        strategy=strategy,
        reason=reason,
        set_by=set_by,
    )


def set_override_request(
    scope: str | int,
    kind: str | int,
    target: str,
    value: float,
    regime: str | int | None,
    set_by: str,
    reason: str,
    expires_at: datetime | float | None,
) -> admin_pb2.SetOverrideRequest:
    override = types_pb2.Override(
        scope=enum_key(types_pb2.OverrideScope, scope, "scope"),
        target=target,
        kind=enum_key(types_pb2.OverrideKind, kind, "kind"),
        value=number(value, "value"),
        regime=None if regime is None else enum_key(types_pb2.Regime, regime, "regime"),
        set_by=set_by,
        reason=reason,
        expires_at=None if expires_at is None else timestamp(expires_at, "expires_at"),
    )
    return admin_pb2.SetOverrideRequest(override=override)


def list_alerts_request(
    limit: int, min_severity: str | int | None
) -> service_pb2.ListAlertsRequest:
    if not (isinstance(limit, int) and not isinstance(limit, bool) and 0 <= limit < 2**32):
        raise ValueError(f"limit must be a whole number, 0 (the default) or more, got {limit!r}")
    severity = (
        types_pb2.ALERT_SEVERITY_UNSPECIFIED
        if min_severity is None
        else enum_key(types_pb2.AlertSeverity, min_severity, "min_severity")
    )
    return service_pb2.ListAlertsRequest(limit=limit, min_severity=severity)


def stream_recommendations_request(
    after_sequence: int, from_latest: bool, log_id: str = ""
) -> service_pb2.StreamRecommendationsRequest:
    if not (
        isinstance(after_sequence, int)
        and not isinstance(after_sequence, bool)
        and 0 <= after_sequence < 2**64
    ):
        raise ValueError(
            f"after_sequence must be a sequence number, 0 or more, got {after_sequence!r}"
        )
    if not isinstance(log_id, str):
        raise ValueError(f"log_id must be the log id string of a stream, got {log_id!r}")
    return service_pb2.StreamRecommendationsRequest(
        after_sequence=after_sequence, from_latest=from_latest, log_id=log_id
    )


def rejection(
    request: service_pb2.CheckTradeRequest,
    message: str,
    code: int = types_pb2.REASON_CODE_SIDECAR_UNAVAILABLE,
) -> service_pb2.CheckTradeResponse:
    """The client's own rejection of an order: the sidecar gave no usable answer."""
    return service_pb2.CheckTradeResponse(
        client_order_id=request.client_order_id,
        decision=types_pb2.DECISION_REJECTED,
        requested_quantity=request.quantity,
        approved_quantity=0.0,
        reasons=[types_pb2.Reason(code=code, message=message)],
    )


def failed_call_rejection(
    request: service_pb2.CheckTradeRequest, error: grpc.RpcError
) -> service_pb2.CheckTradeResponse:
    """SIDECAR_UNAVAILABLE, or INVALID_REQUEST when the sidecar refused the order as malformed:
    a fault of the order, to be fixed by its sender, not of the sidecar."""
    code, details = status_of(error)
    reason = (types_pb2.REASON_CODE_INVALID_REQUEST if code is grpc.StatusCode.INVALID_ARGUMENT
              else types_pb2.REASON_CODE_SIDECAR_UNAVAILABLE)
    return rejection(request, f"sidecar call failed: {code.name}: {details}", reason)


def vetted(
    request: service_pb2.CheckTradeRequest, reply: service_pb2.CheckTradeResponse
) -> service_pb2.CheckTradeResponse:
    """The reply if it is well formed, else a rejection saying what is wrong with it."""
    problem = _malformation(request, reply)
    return reply if problem is None else rejection(request, f"sidecar reply refused: {problem}")


def vetted_in_time(
    request: service_pb2.CheckTradeRequest,
    reply: service_pb2.CheckTradeResponse,
    started: float,
    timeout: float,
) -> service_pb2.CheckTradeResponse:
    """`vetted(request, reply)` if the reply came within `timeout` seconds of `started`
    (time.monotonic), else a rejection: gRPC keeps deadlines to the millisecond and may hand
    over a reply that came after a shorter one, and an order the client stopped waiting for
    is never sent."""
    elapsed = time.monotonic() - started
    if elapsed > timeout:
        return rejection(
            request,
            f"sidecar reply came after the deadline: DEADLINE_EXCEEDED "
            f"({elapsed * 1e3:.3f} ms > {timeout * 1e3:.3f} ms)",
        )
    return vetted(request, reply)


def _malformation(
    request: service_pb2.CheckTradeRequest, reply: service_pb2.CheckTradeResponse
) -> str | None:
    approved = reply.approved_quantity
    if reply.decision not in _ACCEPTED_DECISIONS:
        return f"decision {enum_name(types_pb2.Decision, reply.decision)}"
    # Written so that NaN and infinities fail the comparison too.
    if not 0.0 <= approved <= request.quantity:
        return f"approved_quantity {approved!r} is outside 0 to the requested {request.quantity!r}"
    if reply.decision == types_pb2.DECISION_REJECTED and approved != 0.0:
        return f"a rejection with approved_quantity {approved!r}"
    if reply.client_order_id != request.client_order_id:
        return f"the reply is for order {reply.client_order_id!r}"
    return None
