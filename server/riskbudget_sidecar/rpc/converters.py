"""All protobuf <-> domain mapping, with validation of every field that comes in.

Bad input raises InvalidInput naming the field (proto field paths, e.g.
`ticks[2].price`), so that servicers stay a few lines long.
"""

from __future__ import annotations

import math
from typing import Iterable

from google.protobuf.timestamp_pb2 import Timestamp

from riskbudget.v1 import risk_budget_admin_pb2 as admin_pb
from riskbudget.v1 import risk_budget_service_pb2 as service_pb
from riskbudget.v1 import types_pb2 as pb

from ..engine import types as d
from ..service.errors import InvalidInput

MAX_ID_LENGTH = 128
MAX_NAME_LENGTH = 64
MAX_TEXT_LENGTH = 1024
MAX_QUANTITY = 1e12
MAX_PRICE = 1e12
MAX_TICKS_PER_REQUEST = 100_000

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

    def positive(self, field: str, value: float, limit: float) -> float:
        if not math.isfinite(value):
            self.add(field, f"must be a finite number, got {value}")
        elif value <= 0:
            self.add(field, f"must be positive, got {value:g}")
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

    def time(self, field: str, stamp: Timestamp, *, has_value: bool) -> float:
        if not has_value:
            self.add(field, "must be set")
            return 0.0
        if not (0 <= stamp.nanos < 1_000_000_000) or stamp.seconds <= 0:
            self.add(field, "must be a valid time after 1970")
        return stamp.seconds + stamp.nanos / 1e9

    def raise_if_any(self) -> None:
        if self.found:
            raise InvalidInput(self.found)


def check_trade_request(request: service_pb.CheckTradeRequest) -> d.OrderRequest:
    v = _Violations()
    order_id = v.name("client_order_id", request.client_order_id, MAX_ID_LENGTH)
    strategy = v.name("strategy", request.strategy)
    symbol = v.name("symbol", request.symbol)
    side = v.side("side", request.side)
    quantity = v.positive("quantity", request.quantity, MAX_QUANTITY)
    limit_price = request.limit_price
    if limit_price != 0:
        v.positive("limit_price", limit_price, MAX_PRICE)
    v.raise_if_any()
    return d.OrderRequest(order_id, strategy, symbol, side, quantity, limit_price, request.dry_run)


def price_ticks(ticks: Iterable[pb.PriceTick], universe: frozenset[str], field: str = "ticks") -> list[d.PriceTick]:
    v = _Violations()
    result = []
    for index, tick in enumerate(ticks):
        if index >= MAX_TICKS_PER_REQUEST:
            v.add(field, f"must hold at most {MAX_TICKS_PER_REQUEST} ticks")
            break
        where = f"{field}[{index}]"
        symbol = v.name(f"{where}.symbol", tick.symbol)
        if symbol and symbol not in universe:
            v.add(f"{where}.symbol", f"unknown symbol {symbol!r}")
        price = v.positive(f"{where}.price", tick.price, MAX_PRICE)
        time = v.time(f"{where}.time", tick.time, has_value=tick.HasField("time"))
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
    price = v.positive("price", request.price, MAX_PRICE)
    time = v.time("time", request.time, has_value=request.HasField("time"))
    v.raise_if_any()
    return d.Fill(order_id, strategy, symbol, side, quantity, price, time)


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


def trading_state_request(request: admin_pb.SetTradingStateRequest) -> tuple[d.TradingState, str | None]:
    v = _Violations()
    state = TRADING_STATE_FROM_PB.get(request.state)
    if state is None:
        v.add("state", "must be TRADING_STATE_ACTIVE, TRADING_STATE_REDUCING or TRADING_STATE_HALTED")
    strategy = v.name("strategy", request.strategy, required=False) or None
    v.name("reason", request.reason, MAX_TEXT_LENGTH, required=False)
    v.name("set_by", request.set_by, MAX_NAME_LENGTH, required=False)
    v.raise_if_any()
    return state, strategy


# -- domain -> protobuf ----------------------------------------------------------------------

def timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    whole = math.floor(seconds)
    stamp.seconds, stamp.nanos = whole, int(round((seconds - whole) * 1e9)) % 1_000_000_000
    return stamp


def budget_ref(snapshot: d.BudgetSnapshot | None) -> pb.BudgetRef:
    if snapshot is None:
        return pb.BudgetRef(version=0, regime=pb.REGIME_UNSPECIFIED)
    return pb.BudgetRef(version=snapshot.version, regime=REGIME_TO_PB[snapshot.regime],
                        computed_at=timestamp(snapshot.computed_at))


def budget(snapshot: d.BudgetSnapshot, *, book_state: d.TradingState,
           strategy_states: dict[str, d.TradingState], strategy: str | None) -> pb.Budget:
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
            max_position_quantity=b.max_position_quantity, last_price=b.last_price,
            volatility=b.volatility, limit_source=LIMIT_SOURCE_TO_PB[b.limit_source],
        ) for name, b in snapshot.symbols.items() if name in wanted_symbols],
        limit_source=LIMIT_SOURCE_TO_PB[snapshot.limit_source],
        regime_since=timestamp(snapshot.regime_since),
        trading_state=TRADING_STATE_TO_PB[book_state],
        shadow_mode=snapshot.shadow_mode,
    )


def trade_decision(decision: d.TradeDecision) -> service_pb.CheckTradeResponse:
    response = service_pb.CheckTradeResponse(
        client_order_id=decision.client_order_id, decision=DECISION_TO_PB[decision.decision],
        requested_quantity=decision.requested_quantity,
        approved_quantity=decision.approved_quantity,
        reasons=[pb.Reason(code=REASON_TO_PB[r.code], message=r.message, limit=r.limit, value=r.value)
                 for r in decision.reasons],
        budget=pb.BudgetRef(
            version=decision.budget_version,
            regime=REGIME_TO_PB[decision.regime] if decision.regime else pb.REGIME_UNSPECIFIED,
            computed_at=timestamp(decision.budget_computed_at) if decision.budget_version else None),
        reserved=decision.reserved, reduces_exposure=decision.reduces_exposure,
        replayed=decision.replayed, reference_price=decision.reference_price)
    if decision.reservation_expires_at is not None:
        response.reservation_expires_at.CopyFrom(timestamp(decision.reservation_expires_at))
    if decision.shadow_decision is not None:
        response.shadow_decision = DECISION_TO_PB[decision.shadow_decision]
    return response


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
