"""Domain types shared by the engine, the store and the service.

Times are float seconds since the Unix epoch, always passed in explicitly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

MIN_PRICE = 1e-12
"""The smallest price taken, live or in a backtest: a positive but vanishing price (5e-324)
makes a log return against the last close underflow to -inf, a symbol's position limit in
units infinite, and any order for it approvable."""
MAX_PRICE = 1e12
"""The largest price taken, live or in a backtest."""


class Regime(enum.Enum):
    BULL = "bull"
    BEAR = "bear"
    CRISIS = "crisis"

    @property
    def severity(self) -> int:
        """BULL 0 < BEAR 1 < CRISIS 2 (the order declared)."""
        return list(Regime).index(self)


@dataclass(frozen=True, slots=True)
class RegimeRecord:
    """The regime a sidecar ran in, kept for its next start: the one its detector had
    confirmed and since when, and the one that applied (a FORCE_REGIME override's)."""

    detected: Regime
    detected_since: float
    effective: Regime


class Decision(enum.Enum):
    APPROVED = "approved"
    RESIZED = "resized"
    REJECTED = "rejected"


class Side(enum.Enum):
    BUY = 1
    SELL = -1

    @property
    def sign(self) -> int:
        return self._value_  # the value, without the enum property's lookup: it is on every check and fill


class TradingState(enum.Enum):
    """Ordered from least to most restrictive; the stricter of two states wins."""

    ACTIVE = 0
    REDUCING = 1
    HALTED = 2

    def stricter(self, other: "TradingState") -> "TradingState":
        return self if self.value >= other.value else other


class ReasonCode(enum.Enum):
    """Stable codes, mirrored one to one by the contract's ReasonCode enum."""

    SYMBOL_POSITION_LIMIT = "symbol_position_limit"
    STRATEGY_EXPOSURE_LIMIT = "strategy_exposure_limit"
    TOTAL_LEVERAGE_LIMIT = "total_leverage_limit"
    MAX_ORDER_NOTIONAL = "max_order_notional"
    PRICE_COLLAR = "price_collar"
    RESTRICTED_SYMBOL = "restricted_symbol"
    TRADING_HALTED = "trading_halted"
    TRADING_REDUCING = "trading_reducing"
    STALE_MARKET_DATA = "stale_market_data"
    UNKNOWN_SYMBOL = "unknown_symbol"
    UNKNOWN_STRATEGY = "unknown_strategy"
    NO_BUDGET = "no_budget"
    ORDER_ID_REUSED = "order_id_reused"
    BELOW_MIN_QUANTITY = "below_min_quantity"
    SHADOW_MODE = "shadow_mode"
    STATE_UNAVAILABLE = "state_unavailable"


class LimitSource(enum.Enum):
    DYNAMIC = "dynamic"
    STATIC = "static"
    OVERRIDE = "override"


@dataclass(frozen=True, slots=True)
class Reason:
    """One rule that bound or rejected an order: limit and value share units."""

    code: ReasonCode
    message: str
    limit: float = 0.0
    value: float = 0.0


@dataclass(frozen=True, slots=True)
class StrategySymbolWeight:
    symbol: str
    weight: float
    risk_contribution: float


@dataclass(frozen=True, slots=True)
class StrategyBudget:
    strategy: str
    risk_share: float
    allocated_capital: float
    leverage_limit: float
    forecast_volatility: float
    symbols: tuple[StrategySymbolWeight, ...]
    limit_source: LimitSource

    @property
    def max_gross_exposure(self) -> float:
        return self.allocated_capital * self.leverage_limit


@dataclass(frozen=True, slots=True)
class SymbolBudget:
    symbol: str
    target_weight: float
    risk_contribution: float
    max_position_notional: float
    last_price: float
    volatility: float
    limit_source: LimitSource
    restricted: bool = False
    """Only reducing orders pass (limits.restricted_symbols, a RESTRICT_SYMBOL override)."""


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class BudgetSnapshot:
    """The whole budget at one moment. Immutable: readers never recompute."""

    version: int
    regime: Regime
    computed_at: float
    regime_since: float
    net_asset_value: float
    equity_allocation: float
    vol_target: float
    regime_leverage_limit: float
    total_leverage_limit: float
    forecast_volatility: float
    average_correlation: float
    strategies: Mapping[str, StrategyBudget]
    symbols: Mapping[str, SymbolBudget]
    limit_source: LimitSource
    shadow_mode: bool = False
    overrides: tuple["Override", ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "strategies", _frozen(self.strategies))
        object.__setattr__(self, "symbols", _frozen(self.symbols))

    @property
    def max_total_gross_exposure(self) -> float:
        return self.net_asset_value * self.total_leverage_limit


@dataclass(frozen=True, slots=True)
class OrderRequest:
    client_order_id: str
    strategy: str
    symbol: str
    side: Side
    quantity: float
    limit_price: float = 0.0
    dry_run: bool = False

    @property
    def signed_quantity(self) -> float:
        return self.side.sign * self.quantity

    def same_order_as(self, other: "OrderRequest") -> bool:
        """Whether a repeat of this client order id asks for the same thing."""
        return (self.strategy, self.symbol, self.side, self.quantity, self.limit_price) == (
            other.strategy, other.symbol, other.side, other.quantity, other.limit_price)


@dataclass(frozen=True, slots=True)
class TradeDecision:
    """The answer to a pre-trade check."""

    client_order_id: str
    decision: Decision
    requested_quantity: float
    approved_quantity: float
    reasons: tuple[Reason, ...]
    budget_version: int
    regime: Regime | None
    budget_computed_at: float
    reduces_exposure: bool
    reference_price: float
    reserved: bool = False
    reservation_expires_at: float | None = None
    shadow_decision: Decision | None = None
    replayed: bool = False
    override_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Reservation:
    """Exposure held for an order in flight, until a fill, a release or expiry."""

    client_order_id: str
    strategy: str
    symbol: str
    signed_quantity: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class Position:
    strategy: str
    symbol: str
    quantity: float


@dataclass(frozen=True, slots=True)
class PriceTick:
    symbol: str
    price: float
    time: float


@dataclass(frozen=True, slots=True)
class Fill:
    client_order_id: str
    strategy: str
    symbol: str
    side: Side
    quantity: float
    price: float
    time: float
    execution_id: str = ""
    """The venue's id of the execution: with one, a fill reported again is applied once."""


@dataclass(frozen=True, slots=True)
class RememberedFill:
    """A fill applied under an execution id, and what it left: a retry gets the same answer."""

    fill: Fill
    position: Position
    reserved_remaining: float
    forget_after: float


@dataclass(frozen=True, slots=True)
class SymbolExposure:
    """A strategy's position in a symbol plus its open reservations, by direction."""

    position: float = 0.0
    pending_buy: float = 0.0
    pending_sell: float = 0.0

    def worst_case_abs(self, extra_signed: float = 0.0) -> float:
        """Largest absolute position reachable if every pending order (and extra) fills."""
        buy, sell = self.pending_buy, self.pending_sell
        if extra_signed > 0:
            buy += extra_signed
        else:
            sell -= extra_signed
        return max(abs(self.position + buy), abs(self.position - sell))


@dataclass(frozen=True, slots=True)
class Utilization:
    """How much of one budget is used; fractions are used / limit."""

    gross_exposure: float
    gross_exposure_limit: float
    allocated_capital: float
    leverage: float
    leverage_limit: float
    ex_ante_volatility: float
    volatility_limit: float
    utilization: float
    near_limit: bool
    breached: bool

    @property
    def capital_used(self) -> float:
        return self.gross_exposure / self.leverage_limit if self.leverage_limit > 0 else 0.0


@dataclass(frozen=True, slots=True)
class SymbolUtilization:
    symbol: str
    net_quantity: float
    position_notional: float
    max_position_notional: float
    utilization: float
    near_limit: bool
    breached: bool


@dataclass(frozen=True, slots=True)
class UtilizationReport:
    budget_version: int
    regime: Regime
    budget_computed_at: float
    as_of: float
    near_limit_fraction: float
    total: Utilization
    strategies: Mapping[str, Utilization] = field(default_factory=dict)
    symbols: Mapping[str, SymbolUtilization] = field(default_factory=dict)


class OverrideScope(enum.Enum):
    GLOBAL = "global"
    STRATEGY = "strategy"
    SYMBOL = "symbol"


class OverrideKind(enum.Enum):
    FORCE_REGIME = "force_regime"
    SCALE_LEVERAGE = "scale_leverage"
    CAP_LEVERAGE = "cap_leverage"
    CAP_STRATEGY_CAPITAL = "cap_strategy_capital"
    CAP_SYMBOL_POSITION = "cap_symbol_position"
    RESTRICT_SYMBOL = "restrict_symbol"


@dataclass(frozen=True, slots=True)
class Override:
    """An operator's change to the budget, scoped, attributed and optionally expiring."""

    id: str
    scope: OverrideScope
    target: str
    kind: OverrideKind
    value: float
    regime: Regime | None
    set_by: str
    reason: str
    created_at: float
    expires_at: float | None = None

    def active_at(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at

    def applies_to(self, strategy: str, symbol: str) -> bool:
        """Whether it bears on an order of `strategy` in `symbol`."""
        return (self.scope is OverrideScope.GLOBAL
                or (self.scope is OverrideScope.STRATEGY and self.target == strategy)
                or (self.scope is OverrideScope.SYMBOL and self.target == symbol))


class RecommendationTrigger(enum.Enum):
    DRIFT = "drift"
    REGIME_CHANGE = "regime_change"
    CORRELATION_SPIKE = "correlation_spike"
    VOL_BREACH = "vol_breach"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class SymbolAllocation:
    """A strategy's position in a symbol as a signed weight of NAV, and its notional."""

    strategy: str
    symbol: str
    weight: float
    notional: float


@dataclass(frozen=True, slots=True)
class Recommendation:
    """A budget-driven rebalancing recommendation. sequence is 0 until the log assigns it."""

    sequence: int
    triggers: tuple[RecommendationTrigger, ...]
    reason: str
    budget_version: int
    regime: Regime
    budget_computed_at: float
    target_allocation: tuple[SymbolAllocation, ...]
    current_allocation: tuple[SymbolAllocation, ...]
    requires_rebalancing: bool
    created_at: float


class AlertSeverity(enum.Enum):
    INFO = 1
    WARNING = 2
    CRITICAL = 3


class AlertKind(enum.Enum):
    REGIME_CHANGE = "regime_change"
    LIMIT_NEAR = "limit_near"
    LIMIT_BREACHED = "limit_breached"
    VOL_BREACH = "vol_breach"
    CORRELATION_SPIKE = "correlation_spike"
    STALE_MARKET_DATA = "stale_market_data"
    OVERRIDE_SET = "override_set"
    OVERRIDE_ENDED = "override_ended"
    CONFIG_RELOAD_REFUSED = "config_reload_refused"
    DECISION_LOG_BACKLOG = "decision_log_backlog"
    TRADING_STATE_CHANGED = "trading_state_changed"
    ADMIN_REFUSED = "admin_refused"
    STORE_ERROR = "store_error"
    DISK_SPACE_LOW = "disk_space_low"
    CONFIG_RELOADED = "config_reloaded"
    UNRESERVED_FILL = "unreserved_fill"
    LOG_LINES_DROPPED = "log_lines_dropped"


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    kind: AlertKind
    severity: AlertSeverity
    message: str
    subject: str
    raised_at: float


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One CheckTrade decision with its inputs, for the audit log."""

    time: float
    order: OrderRequest
    decision: TradeDecision


@dataclass(frozen=True, slots=True)
class FirmLimits:
    """What a shared store needs to hold an order to the limits every sidecar shares."""

    reference_price: float
    lot_size: float
    symbol_limit: float
    """The symbol's position limit (notional), across every strategy and sidecar."""
    total_limit: float
    """The book's gross exposure limit (notional), across every sidecar."""
    adds_exposure: bool = True
    """Whether the order adds exposure: the server refuses one that does under a halt."""


@dataclass(frozen=True, slots=True)
class FirmGrant:
    """How much of an order the firm-wide limits allow (all of it where nothing is shared)."""

    quantity: float
    symbol_limited: bool = False
    total_limited: bool = False
    symbol_value: float = 0.0
    """The symbol's firm-wide worst case (notional) at the full request."""
    total_value: float = 0.0
    """The firm's total gross (notional) at the full request."""
