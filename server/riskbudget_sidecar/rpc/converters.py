"""All protobuf <-> domain mapping, with validation of every field that comes in.

Bad input raises InvalidInput naming the field (proto field paths, e.g.
`ticks[2].price`), so that servicers stay a few lines long.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from typing import Callable, Iterable, Iterator

from google.protobuf.timestamp_pb2 import Timestamp

from riskbudget.v1 import risk_budget_admin_pb2 as admin_pb
from riskbudget.v1 import risk_budget_service_pb2 as service_pb
from riskbudget.v1 import types_pb2 as pb

from ..engine import types as d
from ..engine.types import MAX_PRICE, MIN_PRICE
from ..service.errors import InvalidInput

MAX_ID_LENGTH = 128
MAX_NAME_LENGTH = 64
MAX_TEXT_LENGTH = 1024
MAX_QUANTITY = 1e12
MAX_TICKS_PER_REQUEST = 100_000
MAX_ALERTS = 1000
"""The most alerts one ListAlerts returns."""
MAX_EXPIRES_IN = 10 * 366 * 86_400.0
"""The longest expiry given as seconds from now (the HTTP controls' `expires_in`, the CLI's
--expires-in): ten years."""
MAX_TIMESTAMP_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z, the last valid google.protobuf.Timestamp
MAX_TICK_AHEAD = 60.0
"""How far (seconds) a price may be dated ahead of the sidecar's clock: clock skew between the
feed and the sidecar, no more. Such a price counts as of the sidecar's now (one kept at its own
time would pin the symbol until then); one from further ahead is a feed fault, refused."""

REGIME_TO_PB = {d.Regime.BULL: pb.REGIME_BULL, d.Regime.BEAR: pb.REGIME_BEAR,
                d.Regime.CRISIS: pb.REGIME_CRISIS}
DECISION_TO_PB = {d.Decision.APPROVED: pb.DECISION_APPROVED, d.Decision.RESIZED: pb.DECISION_RESIZED,
                  d.Decision.REJECTED: pb.DECISION_REJECTED}
SIDE_FROM_PB = {pb.SIDE_BUY: d.Side.BUY, pb.SIDE_SELL: d.Side.SELL}
TRADING_STATE_TO_PB = {d.TradingState.ACTIVE: pb.TRADING_STATE_ACTIVE,
                       d.TradingState.REDUCING: pb.TRADING_STATE_REDUCING,
                       d.TradingState.HALTED: pb.TRADING_STATE_HALTED}
TRADING_STATE_FROM_PB = {value: key for key, value in TRADING_STATE_TO_PB.items()}
LIMIT_SOURCE_TO_PB = {d.LimitSource.DYNAMIC: pb.LIMIT_SOURCE_DYNAMIC,
                      d.LimitSource.STATIC: pb.LIMIT_SOURCE_STATIC,
                      d.LimitSource.OVERRIDE: pb.LIMIT_SOURCE_OVERRIDE}
REASON_TO_PB = {code: pb.ReasonCode.Value(f"REASON_CODE_{code.name}") for code in d.ReasonCode}
TRIGGER_TO_PB = {t: pb.RecommendationTrigger.Value(f"RECOMMENDATION_TRIGGER_{t.name}")
                 for t in d.RecommendationTrigger}
SCOPE_TO_PB = {s: pb.OverrideScope.Value(f"OVERRIDE_SCOPE_{s.name}") for s in d.OverrideScope}
SCOPE_FROM_PB = {value: key for key, value in SCOPE_TO_PB.items()}
KIND_TO_PB = {k: pb.OverrideKind.Value(f"OVERRIDE_KIND_{k.name}") for k in d.OverrideKind}
KIND_FROM_PB = {value: key for key, value in KIND_TO_PB.items()}
REGIME_FROM_PB = {value: key for key, value in REGIME_TO_PB.items()}
ALERT_KIND_TO_PB = {k: pb.AlertKind.Value(f"ALERT_KIND_{k.name}") for k in d.AlertKind}
SEVERITY_TO_PB = {s: pb.AlertSeverity.Value(f"ALERT_SEVERITY_{s.name}") for s in d.AlertSeverity}
SEVERITY_FROM_PB = {value: key for key, value in SEVERITY_TO_PB.items()}


class _Violations:
    """Collects every problem in a request, then raises them together."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def add(self, field: str, problem: str) -> None:
        self.found.append((field, problem))

    def name(self, field: str, value: str, limit: int = MAX_NAME_LENGTH, *, required: bool = True) -> str:
        if not value:
            if required:
                self.add(field, "must not be empty")
        elif len(value) > limit:
            self.add(field, f"must be at most {limit} characters, got {len(value)}")
        elif not value.isprintable():
            self.add(field, "must not contain control characters")
        return value

    def actor(self, field: str, value: str) -> str:
        """Who makes a change: a name, and not only spaces (found by a reviewer: "   " halted the
        book, recorded as done by nobody)."""
        if value and not value.strip():
            self.add(field, "must not be empty")
            return value
        return self.name(field, value)

    def positive(self, field: str, value: float, limit: float, minimum: float = 0.0) -> float:
        if not math.isfinite(value):
            self.add(field, f"must be a finite number, got {value}")
        elif value <= 0:
            self.add(field, f"must be positive, got {value:g}")
        elif value < minimum:
            self.add(field, f"must be at least {minimum:g}, got {value:g}")
        elif value > limit:
            self.add(field, f"must be at most {limit:g}, got {value:g}")
        return value

    def finite(self, field: str, value: float, limit: float) -> float:
        if not math.isfinite(value):
            self.add(field, f"must be a finite number, got {value}")
        elif abs(value) > limit:
            self.add(field, f"must be at most {limit:g} in absolute value, got {value:g}")
        return value

    def side(self, field: str, value: int) -> d.Side | None:
        side = SIDE_FROM_PB.get(value)
        if side is None:
            self.add(field, "must be SIDE_BUY or SIDE_SELL")
        return side

    def time(self, field: str, stamp: Timestamp, *, has_value: bool, now: float | None = None) -> float:
        """The time in seconds; with `now`, at most MAX_TICK_AHEAD after it."""
        if not has_value:
            self.add(field, "must be set")
            return 0.0
        if not (0 <= stamp.nanos < 1_000_000_000) or not (0 < stamp.seconds <= MAX_TIMESTAMP_SECONDS):
            self.add(field, "must be a valid time after 1970 and before year 10000, in seconds and "
                            "nanoseconds below 1e9 (not milliseconds)")
            return 0.0
        value = stamp.seconds + stamp.nanos / 1e9
        if now is not None and value > now + MAX_TICK_AHEAD:
            self.add(field, f"must not be more than {MAX_TICK_AHEAD:g} s ahead of the sidecar's clock, "
                            f"is {value - now:.6g} s ahead")
        return value

    def raise_if_any(self) -> None:
        if self.found:
            raise InvalidInput(self.found)


def check_trade_request(request: service_pb.CheckTradeRequest) -> d.OrderRequest:
    """The order asked for. A well-formed order (nearly every one) is accepted by plain
    comparisons; only one that fails them goes through _Violations, to name every problem."""
    order_id, strategy, symbol = request.client_order_id, request.strategy, request.symbol
    side, quantity, limit_price = SIDE_FROM_PB.get(request.side), request.quantity, request.limit_price
    # NaN fails every comparison, so a NaN quantity or limit price is not well formed either
    well_formed = (_is_name(order_id, MAX_ID_LENGTH) and _is_name(strategy, MAX_NAME_LENGTH)
                   and _is_name(symbol, MAX_NAME_LENGTH) and side is not None
                   and 0 < quantity <= MAX_QUANTITY and (limit_price == 0 or MIN_PRICE <= limit_price <= MAX_PRICE))
    if not well_formed:
        _refuse_check_trade_request(request)
    return d.OrderRequest(order_id, strategy, symbol, side, quantity, limit_price, request.dry_run)


def _is_name(value: str, limit: int) -> bool:
    """Whether _Violations.name accepts this required name."""
    return 0 < len(value) <= limit and value.isprintable()


def _refuse_check_trade_request(request: service_pb.CheckTradeRequest) -> None:
    """Raise InvalidInput naming every field of the request that is wrong."""
    v = _Violations()
    v.name("client_order_id", request.client_order_id, MAX_ID_LENGTH)
    v.name("strategy", request.strategy)
    v.name("symbol", request.symbol)
    v.side("side", request.side)
    v.positive("quantity", request.quantity, MAX_QUANTITY)
    if request.limit_price != 0:
        v.positive("limit_price", request.limit_price, MAX_PRICE, MIN_PRICE)
    v.raise_if_any()


def price_ticks(ticks: Iterable[pb.PriceTick], universe: frozenset[str], field: str = "ticks", *,
                now: float | None = None) -> list[d.PriceTick]:
    """The ticks, each for a symbol of `universe` and (given `now`) dated at most MAX_TICK_AHEAD after it."""
    v = _Violations()
    result = []
    for index, tick in enumerate(ticks):
        if index >= MAX_TICKS_PER_REQUEST:
            v.add(field, f"must hold at most {MAX_TICKS_PER_REQUEST} ticks")
            break
        where = f"{field}[{index}]"
        symbol = v.name(f"{where}.symbol", tick.symbol)
        if _is_name(symbol, MAX_NAME_LENGTH) and symbol not in universe:  # a bad name is not echoed
            v.add(f"{where}.symbol", f"unknown symbol {symbol!r}")
        price = v.positive(f"{where}.price", tick.price, MAX_PRICE, MIN_PRICE)
        time = v.time(f"{where}.time", tick.time, has_value=tick.HasField("time"), now=now)
        result.append(d.PriceTick(symbol, price, time))
    v.raise_if_any()
    return result


def fill(request: service_pb.ReportFillRequest) -> d.Fill:
    v = _Violations()
    order_id = v.name("client_order_id", request.client_order_id, MAX_ID_LENGTH)
    strategy = v.name("strategy", request.strategy)
    symbol = v.name("symbol", request.symbol)
    side = v.side("side", request.side)
    quantity = v.positive("quantity", request.quantity, MAX_QUANTITY)
    price = v.positive("price", request.price, MAX_PRICE, MIN_PRICE)
    time = v.time("time", request.time, has_value=request.HasField("time"))
    execution_id = v.name("execution_id", request.execution_id, MAX_ID_LENGTH, required=False)
    v.raise_if_any()
    return d.Fill(order_id, strategy, symbol, side, quantity, price, time, execution_id or "")


def positions(request: service_pb.SetPositionsRequest) -> tuple[list[d.Position], str | None]:
    v = _Violations()
    strategy = v.name("strategy", request.strategy, required=False) or None
    result = []
    for index, position in enumerate(request.positions):
        where = f"positions[{index}]"
        result.append(d.Position(
            v.name(f"{where}.strategy", position.strategy),
            v.name(f"{where}.symbol", position.symbol),
            v.finite(f"{where}.quantity", position.quantity, MAX_QUANTITY)))
    keys = [(p.strategy, p.symbol) for p in result]
    if len(set(keys)) != len(keys):
        v.add("positions", "must not list the same strategy and symbol twice")
    v.raise_if_any()
    return result, strategy


def log_id(value: str) -> str:
    """A stream's resume log id: empty (not checked) or a printable id of at most MAX_ID_LENGTH."""
    v = _Violations()
    v.name("log_id", value, MAX_ID_LENGTH, required=False)
    v.raise_if_any()
    return value


def order_id(value: str) -> str:
    v = _Violations()
    v.name("client_order_id", value, MAX_ID_LENGTH)
    v.raise_if_any()
    return value


def optional_strategy(value: str) -> str | None:
    v = _Violations()
    v.name("strategy", value, required=False)
    v.raise_if_any()
    return value or None


def override_request(request: admin_pb.SetOverrideRequest) -> d.Override:
    """The override as asked, before the sidecar checks it against the config and assigns an id."""
    v = _Violations()
    given = request.override
    scope = SCOPE_FROM_PB.get(given.scope)
    if scope is None:
        v.add("override.scope", "must be GLOBAL, STRATEGY or SYMBOL")
    kind = KIND_FROM_PB.get(given.kind)
    if kind is None:
        v.add("override.kind", "must be one of " + ", ".join(k.name for k in d.OverrideKind))
    regime = None
    if given.regime != pb.REGIME_UNSPECIFIED:
        regime = REGIME_FROM_PB.get(given.regime)
        if regime is None:
            v.add("override.regime", "must be BULL, BEAR or CRISIS")
    target = v.name("override.target", given.target, required=False)
    value = v.finite("override.value", given.value, MAX_PRICE * MAX_QUANTITY)
    set_by = v.actor("override.set_by", given.set_by)
    reason = v.name("override.reason", given.reason, MAX_TEXT_LENGTH)
    expires_at = None
    if given.HasField("expires_at"):
        expires_at = v.time("override.expires_at", given.expires_at, has_value=True)
    v.raise_if_any()
    return d.Override(id="", scope=scope, target=target, kind=kind, value=value, regime=regime,
                      set_by=set_by, reason=reason, created_at=0.0, expires_at=expires_at)


def override_id(request: admin_pb.ClearOverrideRequest) -> str:
    v = _Violations()
    v.name("id", request.id, MAX_ID_LENGTH)
    v.actor("cleared_by", request.cleared_by)  # every change names who made it: the audit needs it
    v.name("reason", request.reason, MAX_TEXT_LENGTH, required=False)
    v.raise_if_any()
    return request.id


def rebalance_request(request: admin_pb.TriggerRebalanceRequest) -> tuple[str, str]:
    v = _Violations()
    reason = v.name("reason", request.reason, MAX_TEXT_LENGTH)
    requested_by = v.actor("requested_by", request.requested_by)
    v.raise_if_any()
    return reason, requested_by


def reload_request(request: admin_pb.ReloadConfigRequest) -> str:
    """Who asks for the reload."""
    v = _Violations()
    requested_by = v.actor("requested_by", request.requested_by)
    v.raise_if_any()
    return requested_by


def alerts_request(request: service_pb.ListAlertsRequest) -> tuple[int, d.AlertSeverity | None]:
    v = _Violations()
    severity = None
    if request.min_severity != pb.ALERT_SEVERITY_UNSPECIFIED:
        severity = SEVERITY_FROM_PB.get(request.min_severity)
        if severity is None:
            v.add("min_severity", "must be INFO, WARNING or CRITICAL")
    if request.limit > MAX_ALERTS:
        v.add("limit", f"must be at most {MAX_ALERTS}, got {request.limit}")
    v.raise_if_any()
    return request.limit or 100, severity


def trading_state_request(request: admin_pb.SetTradingStateRequest) -> tuple[d.TradingState, str | None]:
    v = _Violations()
    state = TRADING_STATE_FROM_PB.get(request.state)
    if state is None:
        v.add("state", "must be TRADING_STATE_ACTIVE, TRADING_STATE_REDUCING or TRADING_STATE_HALTED")
    strategy = v.name("strategy", request.strategy, required=False) or None
    v.name("reason", request.reason, MAX_TEXT_LENGTH, required=False)
    v.actor("set_by", request.set_by)
    v.raise_if_any()
    return state, strategy


# -- domain -> protobuf ----------------------------------------------------------------------

def timestamp(seconds: float) -> Timestamp:
    return _set_time(Timestamp(), seconds)


def _set_time(stamp: Timestamp, seconds: float) -> Timestamp:
    """Write `seconds` into `stamp`, which may be a field of a message (set in place, no copy)."""
    whole = math.floor(seconds)
    stamp.seconds, stamp.nanos = whole, int(round((seconds - whole) * 1e9)) % 1_000_000_000
    return stamp


def budget_ref(snapshot: d.BudgetSnapshot | None) -> pb.BudgetRef:
    if snapshot is None:
        return pb.BudgetRef(version=0, regime=pb.REGIME_UNSPECIFIED)
    return pb.BudgetRef(version=snapshot.version, regime=REGIME_TO_PB[snapshot.regime],
                        computed_at=timestamp(snapshot.computed_at))


def budget(snapshot: d.BudgetSnapshot, *, book_state: d.TradingState,
           strategy_states: dict[str, d.TradingState], strategy: str | None,
           checked_price: Callable[[str], float | None]) -> pb.Budget:
    """`checked_price(symbol)`: the price checks value the symbol at now, which sizes its
    `max_position_quantity` and is its `checked_price` (a tick the price screen holds back can
    make it stricter than `last_price`, the market's): sizing from the budget asks for no more
    than a check approves, and republishing `last_price` confirms no bad print (found by a
    reviewer, when `last_price` was the held tick's)."""
    strategies = [s for name, s in snapshot.strategies.items() if strategy in (None, name)]
    wanted_symbols = {w.symbol for s in strategies for w in s.symbols}
    return pb.Budget(
        ref=budget_ref(snapshot), net_asset_value=snapshot.net_asset_value,
        equity_allocation=snapshot.equity_allocation, vol_target=snapshot.vol_target,
        regime_leverage_limit=snapshot.regime_leverage_limit,
        total_leverage_limit=snapshot.total_leverage_limit,
        forecast_volatility=snapshot.forecast_volatility,
        average_correlation=snapshot.average_correlation,
        strategies=[pb.StrategyBudget(
            strategy=s.strategy, risk_share=s.risk_share, allocated_capital=s.allocated_capital,
            leverage_limit=s.leverage_limit, max_gross_exposure=s.max_gross_exposure,
            forecast_volatility=s.forecast_volatility,
            symbols=[pb.StrategySymbolWeight(symbol=w.symbol, weight=w.weight,
                                             risk_contribution=w.risk_contribution) for w in s.symbols],
            limit_source=LIMIT_SOURCE_TO_PB[s.limit_source],
            trading_state=TRADING_STATE_TO_PB[strategy_states[s.strategy]],
        ) for s in strategies],
        symbols=[pb.SymbolBudget(
            symbol=b.symbol, target_weight=b.target_weight, risk_contribution=b.risk_contribution,
            max_position_notional=b.max_position_notional,
            max_position_quantity=_quantity(b.max_position_notional, checked_price(b.symbol) or b.last_price),
            last_price=b.last_price, checked_price=checked_price(b.symbol) or b.last_price,
            volatility=b.volatility, limit_source=LIMIT_SOURCE_TO_PB[b.limit_source],
            restricted=b.restricted,
        ) for name, b in snapshot.symbols.items() if name in wanted_symbols],
        limit_source=LIMIT_SOURCE_TO_PB[snapshot.limit_source],
        regime_since=timestamp(snapshot.regime_since),
        trading_state=TRADING_STATE_TO_PB[book_state],
        shadow_mode=snapshot.shadow_mode,
        overrides=[override(o) for o in snapshot.overrides],
    )


def _quantity(notional: float, price: float) -> float:
    return notional / price if price > 0 else 0.0


def trade_decision(decision: d.TradeDecision) -> service_pb.CheckTradeResponse:
    """Nested fields are filled in place: upb's keyword constructor would build each as a
    message of its own and copy it in, twice the cost of the whole response."""
    response = service_pb.CheckTradeResponse(
        client_order_id=decision.client_order_id, decision=DECISION_TO_PB[decision.decision],
        requested_quantity=decision.requested_quantity,
        approved_quantity=decision.approved_quantity,
        reserved=decision.reserved, reduces_exposure=decision.reduces_exposure,
        replayed=decision.replayed, reference_price=decision.reference_price)
    response.budget.CopyFrom(_decision_budget_ref(
        decision.budget_version, decision.regime, decision.budget_computed_at))
    for reason in decision.reasons:
        response.reasons.add(code=REASON_TO_PB[reason.code], message=reason.message,
                             limit=reason.limit, value=reason.value)
    if decision.override_ids:
        response.override_ids.extend(decision.override_ids)
    if decision.reservation_expires_at is not None:
        _set_time(response.reservation_expires_at, decision.reservation_expires_at)
    if decision.shadow_decision is not None:
        response.shadow_decision = DECISION_TO_PB[decision.shadow_decision]
    return response


@functools.lru_cache(maxsize=16)
def _decision_budget_ref(version: int, regime: d.Regime | None, computed_at: float) -> pb.BudgetRef:
    """The budget a decision was made against, built once per budget (every check against it
    carries the same). Shared: only ever copied from, never handed out."""
    return pb.BudgetRef(version=version, regime=REGIME_TO_PB[regime] if regime else pb.REGIME_UNSPECIFIED,
                        computed_at=timestamp(computed_at) if version else None)


def _usage(usage: d.Utilization) -> pb.Usage:
    return pb.Usage(
        gross_exposure=usage.gross_exposure, gross_exposure_limit=usage.gross_exposure_limit,
        capital_used=usage.capital_used, allocated_capital=usage.allocated_capital,
        leverage=usage.leverage, leverage_limit=usage.leverage_limit,
        ex_ante_volatility=usage.ex_ante_volatility, volatility_limit=usage.volatility_limit,
        utilization=usage.utilization, near_limit=usage.near_limit, breached=usage.breached)


def utilization(report: d.UtilizationReport, snapshot: d.BudgetSnapshot) -> service_pb.GetUtilizationResponse:
    return service_pb.GetUtilizationResponse(
        budget=budget_ref(snapshot), total=_usage(report.total),
        strategies=[pb.StrategyUtilization(strategy=name, usage=_usage(usage))
                    for name, usage in report.strategies.items()],
        symbols=[pb.SymbolUtilization(
            symbol=s.symbol, net_quantity=s.net_quantity, position_notional=s.position_notional,
            max_position_notional=s.max_position_notional, utilization=s.utilization,
            near_limit=s.near_limit, breached=s.breached) for s in report.symbols.values()],
        near_limit_fraction=report.near_limit_fraction, as_of=timestamp(report.as_of))


def position(value: d.Position) -> pb.Position:
    return pb.Position(strategy=value.strategy, symbol=value.symbol, quantity=value.quantity)


def override(value: d.Override) -> pb.Override:
    message = pb.Override(
        id=value.id, scope=SCOPE_TO_PB[value.scope], target=value.target, kind=KIND_TO_PB[value.kind],
        value=value.value, regime=REGIME_TO_PB[value.regime] if value.regime else pb.REGIME_UNSPECIFIED,
        set_by=value.set_by, reason=value.reason, created_at=timestamp(value.created_at))
    if value.expires_at is not None:
        message.expires_at.CopyFrom(timestamp(value.expires_at))
    return message


def recommendation(value: d.Recommendation) -> pb.Recommendation:
    return pb.Recommendation(
        sequence=value.sequence, triggers=[TRIGGER_TO_PB[t] for t in value.triggers], reason=value.reason,
        budget=pb.BudgetRef(version=value.budget_version, regime=REGIME_TO_PB[value.regime],
                            computed_at=timestamp(value.budget_computed_at)),
        target_allocation=_allocations(value.target_allocation),
        current_allocation=_allocations(value.current_allocation),
        requires_rebalancing=value.requires_rebalancing, created_at=timestamp(value.created_at))


class ConvertedRecommendations:
    """Each recommendation converted once, however many streams carry it: converting a
    500-symbol recommendation takes about half a millisecond of the event loop, which
    50 subscribers would otherwise pay 50 times. Keeps the newest `capacity`."""

    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._by_sequence: OrderedDict[int, pb.Recommendation] = OrderedDict()

    def __call__(self, value: d.Recommendation) -> pb.Recommendation:
        converted = self._by_sequence.get(value.sequence)
        if converted is None:
            converted = self._by_sequence[value.sequence] = recommendation(value)
            if len(self._by_sequence) > self._capacity:
                self._by_sequence.popitem(last=False)
        return converted


def recommendation_messages(batch: Iterable[d.Recommendation], max_bytes: int,
                            convert: Callable[[d.Recommendation], pb.Recommendation] = recommendation,
                            ) -> Iterator[service_pb.StreamRecommendationsResponse]:
    """Stream messages holding the batch in order, each under max_bytes (one per message at least)."""
    message, size = service_pb.StreamRecommendationsResponse(), 0
    for value in batch:
        converted = convert(value)
        added = converted.ByteSize() + 8  # field tag and length prefix
        if message.recommendations and size + added > max_bytes:
            yield message
            message, size = service_pb.StreamRecommendationsResponse(), 0
        message.recommendations.append(converted)
        size += added
    if message.recommendations:
        yield message


def _allocations(values: Iterable[d.SymbolAllocation]) -> list[pb.SymbolAllocation]:
    return [pb.SymbolAllocation(strategy=a.strategy, symbol=a.symbol, weight=a.weight, notional=a.notional)
            for a in values]


def alert(value: d.Alert) -> pb.Alert:
    return pb.Alert(id=value.id, kind=ALERT_KIND_TO_PB[value.kind], severity=SEVERITY_TO_PB[value.severity],
                    message=value.message, subject=value.subject, raised_at=timestamp(value.raised_at))


def regime_period(regime: d.Regime, since: float) -> service_pb.RegimePeriod:
    return service_pb.RegimePeriod(regime=REGIME_TO_PB[regime], since=timestamp(since))
