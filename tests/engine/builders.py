"""Builders for engine tests: budgets, orders, fills, a price feed and a trading desk."""

from __future__ import annotations

from dataclasses import dataclass, field

from riskbudget_sidecar.engine.book import Book
from riskbudget_sidecar.engine.checks import Evaluation, evaluate, max_quantity
from riskbudget_sidecar.engine.config import Limits
from riskbudget_sidecar.engine.types import (
    BudgetSnapshot, Fill, LimitSource, OrderRequest, Position, Regime, Reservation, Side,
    StrategyBudget, StrategySymbolWeight, SymbolBudget, TradingState,
)

NOW = 1_000.0
UNLIMITED = 1e12


class FakePrices:
    """A PriceView over a dict: each price seen at `time`."""

    def __init__(self, prices: dict[str, float], time: float = NOW) -> None:
        self._prices = dict(prices)
        self._times = {symbol: time for symbol in prices}

    def set(self, symbol: str, price: float, time: float = NOW) -> None:
        self._prices[symbol] = price
        self._times[symbol] = time

    def last_price(self, symbol: str) -> float | None:
        return self._prices.get(symbol)

    def live_time(self, symbol: str) -> float | None:
        return self._times.get(symbol)


def strategy_budget(name: str, *, capital: float, leverage: float = 1.0,
                    symbols: tuple[str, ...] = ()) -> StrategyBudget:
    weights = tuple(StrategySymbolWeight(s, 1 / len(symbols), 1 / len(symbols)) for s in symbols)
    return StrategyBudget(name, 0.5, capital, leverage, 0.1, weights, LimitSource.DYNAMIC)


def symbol_budget(name: str, *, max_notional: float, price: float = 100.0) -> SymbolBudget:
    return SymbolBudget(name, 0.0, 0.0, max_notional, price, 0.2, LimitSource.DYNAMIC)


def make_snapshot(strategies: list[StrategyBudget], symbols: list[SymbolBudget], *,
                  nav: float = 1_000_000.0, total_leverage_limit: float = 1.0,
                  vol_target: float = 0.10, version: int = 1) -> BudgetSnapshot:
    return BudgetSnapshot(
        version=version, regime=Regime.BULL, computed_at=NOW - 10, regime_since=0.0,
        net_asset_value=nav, equity_allocation=0.8, vol_target=vol_target,
        regime_leverage_limit=1.5, total_leverage_limit=total_leverage_limit,
        forecast_volatility=0.12, average_correlation=0.3,
        strategies={s.strategy: s for s in strategies}, symbols={s.symbol: s for s in symbols},
        limit_source=LimitSource.DYNAMIC)


def order(side: Side = Side.BUY, quantity: float = 100.0, *, strategy: str = "alpha",
          symbol: str = "AAA", limit_price: float = 0.0, client_order_id: str = "o-1") -> OrderRequest:
    return OrderRequest(client_order_id, strategy, symbol, side, quantity, limit_price)


def fill(side: Side = Side.BUY, quantity: float = 100.0, *, strategy: str = "alpha",
         symbol: str = "AAA", client_order_id: str = "o-1", price: float = 100.0) -> Fill:
    return Fill(client_order_id, strategy, symbol, side, quantity, price, NOW)


def reservation(signed_quantity: float, *, client_order_id: str = "o-1", strategy: str = "alpha",
                symbol: str = "AAA", expires_at: float = NOW + 60) -> Reservation:
    return Reservation(client_order_id, strategy, symbol, signed_quantity, expires_at)


@dataclass
class Desk:
    """Everything `evaluate` reads, with one limit tightened per test.

    Strategy alpha trades AAA and BBB, beta trades AAA and CCC; prices are
    AAA 100, BBB 50, CCC 20, and the book is marked at them; every limit is out
    of reach unless set.
    """

    snapshot: BudgetSnapshot | None
    book: Book = field(default_factory=Book)
    prices: FakePrices = field(
        default_factory=lambda: FakePrices({"AAA": 100.0, "BBB": 50.0, "CCC": 20.0}))
    limits: Limits = field(default_factory=lambda: Limits(max_order_notional=UNLIMITED))
    trading_state: TradingState = TradingState.ACTIVE
    restricted: frozenset[str] = frozenset()
    lot_size: float = 1.0
    known_strategies: dict[str, frozenset[str]] = field(default_factory=lambda: {
        "alpha": frozenset({"AAA", "BBB"}), "beta": frozenset({"AAA", "CCC"})})
    now: float = NOW

    def __post_init__(self) -> None:
        for symbol in ("AAA", "BBB", "CCC"):
            price = self.prices.last_price(symbol)
            if price:
                self.book.mark(symbol, price)

    def set_price(self, symbol: str, price: float, time: float = NOW) -> None:
        """A new tick: the feed and the book's mark move together, as in the service."""
        self.prices.set(symbol, price, time)
        self.book.mark(symbol, price)

    def check(self, request: OrderRequest) -> Evaluation:
        return evaluate(request, **self._context())

    def max_quantity(self, side: Side, *, strategy: str = "alpha", symbol: str = "AAA",
                     limit_price: float = 0.0) -> float:
        return max_quantity(strategy, symbol, side, limit_price=limit_price, **self._context())

    def hold(self, strategy: str, symbol: str, quantity: float) -> None:
        """Set one position, leaving the rest of the book alone."""
        others = [p for p in self.book.positions() if p.strategy == strategy and p.symbol != symbol]
        self.book.set_positions([*others, Position(strategy, symbol, quantity)], strategy)

    def check_and_reserve(self, request: OrderRequest) -> Evaluation:
        """Check, then reserve what was approved, as the service does."""
        result = self.check(request)
        if result.approved_quantity > 0:
            self.book.reserve(Reservation(
                request.client_order_id, request.strategy, request.symbol,
                request.side.sign * result.approved_quantity, self.now + self.limits.reservation_ttl))
        return result

    def _context(self) -> dict:
        return dict(snapshot=self.snapshot, book=self.book, prices=self.prices, limits=self.limits,
                    trading_state=self.trading_state, restricted=self.restricted,
                    lot_size=self.lot_size, known_strategies=self.known_strategies, now=self.now)


def desk(*, symbol_limit: float = UNLIMITED, alpha_limit: float = UNLIMITED,
         beta_limit: float = UNLIMITED, total_limit: float = UNLIMITED,
         max_order_notional: float = UNLIMITED, **overrides) -> Desk:
    """A Desk whose notional limits are the given ones (strategy limit = capital x 1)."""
    nav = 1_000_000.0
    snapshot = make_snapshot(
        [strategy_budget("alpha", capital=alpha_limit, symbols=("AAA", "BBB")),
         strategy_budget("beta", capital=beta_limit, symbols=("AAA", "CCC"))],
        [symbol_budget(s, max_notional=symbol_limit) for s in ("AAA", "BBB", "CCC")],
        nav=nav, total_leverage_limit=total_limit / nav)
    overrides.setdefault("limits", Limits(max_order_notional=max_order_notional))
    return Desk(snapshot, **overrides)
