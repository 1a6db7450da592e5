"""Replay a price table through the engine exactly as the live sidecar runs it.

The schedule, per row of prices (see prices.py for what a row's time means):

1. **Publish** (the sidecar's PublishMarketData): each symbol's price becomes a tick
   stamped one second before the row's time, applied in column order; the budget is
   recomputed at that moment; then, as the sidecar does after every update, a regime
   change (if the regime moved) is turned into the triggers that fire.
2. **Monitoring tick**, when the row's bar ends before the next row's ticks (always, for
   daily rows): at the bar's end the bar closes, the regime detector sees it, the budget
   is recomputed if that moved anything (see BudgetPipeline.advance_to), and every
   rebalancing trigger is evaluated against the book, with the
   ex-ante volatility of the utilization report the sidecar would compute.
3. **Rebalance** (the rebalancer, from the first row after the warm-up): the dynamic
   portfolio trades each strategy's symbols toward the budget's target notional
   (allocated capital x leverage limit x weight). In mode "bar" it does so at every
   monitoring tick (every day, on daily data); in mode "recommendations" only on a row
   where a recommendation fired (and once at the start). Every order goes through the
   engine's pre-trade check against the current budget and book, sells before buys,
   sliced into child orders while `limits.max_order_notional` is what cuts it; what the
   check approves fills at the last price.

Everything above is engine code: BudgetPipeline (market state, regime, compute_budget;
the sidecar's own numeric path), TriggerMonitor, book_drift (strategy_drift's figures),
ex_ante_volatility (the utilization report's), checks.evaluate, Book. Nothing looks
ahead: a row's decisions read only that row's and earlier prices (the schedule uses the
next row's time, never its prices).

Accounting: the budget is in units of `portfolio.net_asset_value` (NAV), and the book is
kept at that scale: after each row's price move the positions are rescaled by the
portfolio's growth, as an operator keeps the configured NAV equal to the equity. So the
budget's weights of NAV are weights of equity, and the equity curve compounds.
"""

from __future__ import annotations

import enum
import math
import time as walltime
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import numpy as np

from ..engine.book import Book
from ..engine.checks import evaluate
from ..engine.config import MAX_LEVERAGE, Config
from ..engine.pipeline import BudgetPipeline
from ..engine.recommendations import book_drift, target_notionals
from ..engine.triggers import Firing, TriggerMonitor
from ..engine.types import (
    BudgetSnapshot, Decision, Fill, LimitSource, OrderRequest, Position, PriceTick, ReasonCode,
    RecommendationTrigger, Regime, Side, TradingState,
)
from ..engine.utilization import ex_ante_volatility
from .prices import PriceTable

TICK_LEAD = 1.0
"""Seconds before a row's time at which its prices are stamped; its bar closes at the row's time."""
REGIMES = (Regime.BULL, Regime.BEAR, Regime.CRISIS)
REGIME_CODE = {regime: code for code, regime in enumerate(REGIMES)}
_LOT_EPS = 1e-9
MAX_COST_BPS = 10_000.0
"""A cost of the whole notional traded; more is a typo."""
_MAX_CHILD_ORDERS = 64


class Rebalance(enum.Enum):
    BAR = "bar"
    """At every monitoring tick that closes a bar: daily on daily data."""
    RECOMMENDATIONS = "recommendations"
    """Only when a rebalancing recommendation fires (and once at the start)."""


@dataclass(frozen=True)
class ReplaySettings:
    rebalance: Rebalance = Rebalance.BAR
    warmup: int | None = None
    """Rows fed to the engine before any portfolio trades; None: the regime's trend window
    or min_observations + 1, whichever is longer (the budget's inputs are defined by then)."""
    cost_bps: float = 0.0
    """Transaction cost per unit of notional traded, in basis points."""
    risk_free: float = 0.0
    """Annual rate earned on cash (and paid on borrowing above NAV)."""
    static_leverage: float | None = None
    """The static portfolio's constant gross leverage; None: limits.static.total_leverage."""
    start_time: float | None = None
    """When the (simulated) sidecar starts and computes its first budget; None: the first
    tick's time."""

    def __post_init__(self) -> None:
        if self.warmup is not None and self.warmup < 0:
            raise ValueError(f"warmup must be non-negative, got {self.warmup!r}")
        if not (math.isfinite(self.cost_bps) and 0 <= self.cost_bps <= MAX_COST_BPS):
            raise ValueError(f"cost_bps must be between 0 and {MAX_COST_BPS:,} (all of the notional traded), "
                             f"got {self.cost_bps!r}")
        if not (math.isfinite(self.risk_free) and abs(self.risk_free) <= 1):
            raise ValueError(f"risk_free must be an annual rate between -1 and 1, got {self.risk_free!r}")
        if self.static_leverage is not None and not (math.isfinite(self.static_leverage)
                                                      and 0 < self.static_leverage <= MAX_LEVERAGE):
            raise ValueError(f"static_leverage must be above 0 and at most {MAX_LEVERAGE:g} (the config's "
                             f"bound on leverage), got {self.static_leverage!r}")


@dataclass(frozen=True)
class OrderRecord:
    """One (child) order the rebalancer sent, the book it was checked against, and the answer."""

    row: int
    order: OrderRequest
    positions_before: tuple[Position, ...]
    decision: Decision
    approved_quantity: float
    reasons: tuple[str, ...]


@dataclass
class Trace:
    """Step-by-step record for comparing with a live sidecar (tests); off by default."""

    positions_at_publish: list[tuple[Position, ...]] = field(default_factory=list)
    publish_snapshots: list[BudgetSnapshot] = field(default_factory=list)
    monitor_snapshots: list[BudgetSnapshot | None] = field(default_factory=list)
    firings: list[tuple[int, str, tuple[RecommendationTrigger, ...]]] = field(default_factory=list)
    """(row, "publish" or "monitor", triggers) for every recommendation."""
    orders: list[OrderRecord] = field(default_factory=list)
    tick_times: list[float] = field(default_factory=list)
    monitor_times: list[float | None] = field(default_factory=list)


@dataclass
class ReplayResult:
    """Per row arrays (length rows) and what the replay counted."""

    table: PriceTable
    config: Config
    settings: ReplaySettings
    start_row: int
    slots: tuple[tuple[str, str], ...]
    """(strategy, symbol) in config order: the dynamic portfolio's positions."""
    prices: np.ndarray
    """Forward-filled prices (rows, symbols), NaN before a symbol's first price."""
    regime: np.ndarray
    """The budget's regime code after the row (REGIMES index)."""
    version: np.ndarray
    total_leverage_limit: np.ndarray
    forecast_volatility: np.ndarray
    vol_target: np.ndarray
    dynamic_limit: np.ndarray
    """Whether the budget after the row was computed from market data (not the static fallback)."""
    bar_closed: np.ndarray
    """Whether a monitoring tick closed the row's bar (every row, on daily data)."""
    returns: np.ndarray
    """The dynamic portfolio's return from the previous row to this one (0 before the start)."""
    gross: np.ndarray
    """Gross exposure / equity held after the row's rebalance."""
    turnover: np.ndarray
    """Notional traded at the row / equity."""
    utilization: np.ndarray
    """The book's total utilization of the budget after the row's rebalance (NaN before the start)."""
    unit_utilization: np.ndarray
    """The static mix's total utilization per unit of gross leverage (scale by the leverage)."""
    static_weights: np.ndarray
    """Per symbol (table order): the static mix (sums to one over the strategies' symbols)."""
    firings: list[tuple[int, tuple[RecommendationTrigger, ...]]]
    orders: dict[str, int]
    """Child orders by decision: approved, resized, rejected."""
    reasons: dict[str, int]
    """Reason codes on resized or rejected orders."""
    rebalances: int
    seconds: float
    trace: Trace | None = None


Progress = Callable[[int, int, float], None]
"""progress(rows done, rows, seconds so far)."""


def default_warmup(config: Config) -> int:
    return max(config.regime.trend_window, config.market_data.min_observations + 1)


def static_mix(config: Config, symbols: tuple[str, ...]) -> np.ndarray:
    """The config's static allocation: each strategy's risk share spread equally over its
    symbols (the engine's static fallback weights), summed per symbol."""
    index = {s: i for i, s in enumerate(symbols)}
    weights = np.zeros(len(symbols))
    for strategy in config.portfolio.strategies.values():
        for symbol in strategy.symbols:
            weights[index[symbol]] += strategy.risk_share / len(strategy.symbols)
    return weights


class Replay:
    """Feeds a price table to the engine row by row; `run` returns a ReplayResult."""

    def __init__(self, config: Config, table: PriceTable, settings: ReplaySettings = ReplaySettings(), *,
                 trace: bool = False, progress: Progress | None = None) -> None:
        self.config = config
        self.settings = settings
        self.table = table.select(config.universe)
        if self.table.rows < 2:
            raise ValueError("the price table needs at least two rows")
        _require_bar_ends(self.table.times, config.market_data.bar_interval)
        self._progress = progress
        self.trace = Trace() if trace else None
        symbols = self.table.symbols
        self._column = {s: i for i, s in enumerate(symbols)}
        self.slots = tuple((name, sym) for name, strategy in config.portfolio.strategies.items()
                           for sym in strategy.symbols)
        self._slot_column = np.array([self._column[sym] for _, sym in self.slots], dtype=int)
        self._known = {name: frozenset(s.symbols) for name, s in config.portfolio.strategies.items()}
        self._restricted = frozenset(config.limits.restricted_symbols)
        self._lots = tuple(config.portfolio.lot_size(sym) for _, sym in self.slots)
        """Per slot, as Python floats: order quantities, and so the book's sums, stay Python
        floats, whose arithmetic in the check and the book is several times faster than numpy's."""
        self._nav = config.portfolio.net_asset_value
        warmup = default_warmup(config) if settings.warmup is None else settings.warmup
        self.start_row = min(warmup, self.table.rows - 1)
        self.tick_times = self.table.times - TICK_LEAD
        start = self.tick_times[0] if settings.start_time is None else settings.start_time
        self.pipeline = BudgetPipeline(config, start_time=start)
        self.triggers = TriggerMonitor(config.risk_budgeting.rebalancing_triggers)
        self.book = Book()
        self._start_time = start
        self._order_seq = 0

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> ReplayResult:
        began = walltime.perf_counter()
        table, config, settings = self.table, self.config, self.settings
        rows = table.rows
        interval = config.market_data.bar_interval
        rf_per_row = settings.risk_free / config.market_data.periods_per_year
        cost_rate = settings.cost_bps / 1e4
        nav = self._nav

        # Whole-table arrays whose row i reads rows up to i only: no look-ahead.
        ffill = _forward_filled(table.values)
        slot_prices = np.nan_to_num(ffill[:, self._slot_column])  # 0 before a price: nothing held there
        # slot_moves[i - 1]: each slot's price move from row i - 1 to row i
        slot_moves = np.nan_to_num(ffill[1:, self._slot_column] / ffill[:-1, self._slot_column] - 1.0)
        regime = np.zeros(rows, dtype=np.int8)
        version = np.zeros(rows, dtype=np.int64)
        total_limit = np.zeros(rows)
        forecast = np.zeros(rows)
        vol_target = np.zeros(rows)
        dynamic_limit = np.zeros(rows, dtype=bool)
        bar_closed = np.zeros(rows, dtype=bool)
        returns = np.zeros(rows)
        gross = np.zeros(rows)
        turnover = np.zeros(rows)
        utilization = np.full(rows, np.nan)
        unit_utilization = np.full(rows, np.nan)
        mix = static_mix(config, table.symbols)
        firings_by_row: list[tuple[int, tuple[RecommendationTrigger, ...]]] = []
        orders = {d.value: 0 for d in Decision}
        reasons: dict[str, int] = {}
        rebalances = 0

        self.pipeline.recompute(self._start_time)  # the sidecar's first budget, before any price
        self._last_regime = self.pipeline.snapshot.regime
        quantities = np.zeros(len(self.slots))
        pending_cost = 0.0
        wiped_out = False
        report_every = max(1, rows // 50)

        for i in range(rows):
            observed = [(symbol, price) for symbol, price in zip(table.symbols, table.values[i].tolist())
                        if not math.isnan(price)]

            # Yesterday's positions earn today's move; the book is rescaled to NAV.
            if i > self.start_row and not wiped_out:
                held = quantities * slot_prices[i - 1]
                growth = (held @ slot_moves[i - 1]) / nav + rf_per_row * (1.0 - held.sum() / nav)
                returns[i] = growth - pending_cost
                if returns[i] <= -1.0:  # the equity is gone: nothing is held or traded after
                    returns[i], wiped_out, quantities = -1.0, True, np.zeros_like(quantities)
                else:
                    quantities = quantities / (1.0 + returns[i])
                self._set_book(quantities)
            pending_cost = 0.0

            # 1. publish
            stamp = float(self.tick_times[i])
            if self.trace is not None:
                self.trace.positions_at_publish.append(tuple(self.book.positions()))
                self.trace.tick_times.append(stamp)
            for symbol, price in observed:
                self.pipeline.apply_tick(PriceTick(symbol, price, stamp))
            self.pipeline.recompute(stamp)
            for symbol, price in observed:
                self.book.mark(symbol, price)
            fired = self._after_recompute(stamp)
            if fired and self.trace is not None:
                self.trace.firings.append((i, "publish", fired))
            if self.trace is not None:
                self.trace.publish_snapshots.append(self.pipeline.snapshot)
            decided_at = stamp

            # 2. monitoring tick at the bar's end, if it comes before the next row's ticks
            bar_end = (math.floor(stamp / interval) + 1) * interval
            monitored = i == rows - 1 or self.tick_times[i + 1] >= bar_end
            covariance = None
            if monitored:
                self.pipeline.advance_to(bar_end)
                self.pipeline.recompute(bar_end)
                covariance = self.pipeline.market.covariance()
                more = self._after_recompute(bar_end, covariance)
                if more and self.trace is not None:
                    self.trace.firings.append((i, "monitor", more))
                fired = fired + more
                decided_at = bar_end
            if self.trace is not None:
                self.trace.monitor_snapshots.append(self.pipeline.snapshot if monitored else None)
                self.trace.monitor_times.append(bar_end if monitored else None)
            if fired:
                firings_by_row.append((i, fired))
            bar_closed[i] = monitored

            snapshot = self.pipeline.snapshot
            regime[i] = REGIME_CODE[snapshot.regime]
            version[i] = snapshot.version
            total_limit[i] = snapshot.total_leverage_limit
            forecast[i] = snapshot.forecast_volatility
            vol_target[i] = snapshot.vol_target
            dynamic_limit[i] = snapshot.limit_source is not LimitSource.STATIC

            # 3. rebalance
            if i >= self.start_row:
                due = not wiped_out and (monitored if settings.rebalance is Rebalance.BAR
                                         else bool(fired) or i == self.start_row)
                if due:
                    traded = self._rebalance(i, snapshot, slot_prices[i], decided_at, orders, reasons)
                    quantities = self._book_quantities()
                    turnover[i] = traded / nav
                    pending_cost = cost_rate * traded / nav
                    rebalances += 1
                if covariance is None:
                    covariance = self.pipeline.market.covariance()
                known = np.nan_to_num(covariance, nan=0.0)
                held = quantities * slot_prices[i]
                gross[i] = np.abs(held).sum() / nav
                utilization[i] = self._total_utilization(held, snapshot, known)
                unit_utilization[i] = self._unit_utilization(mix, ffill[i], snapshot, known)

            if self._progress is not None and (i % report_every == 0 or i == rows - 1):
                self._progress(i + 1, rows, walltime.perf_counter() - began)

        return ReplayResult(
            table=table, config=config, settings=settings, start_row=self.start_row, slots=self.slots,
            prices=ffill, regime=regime, version=version, total_leverage_limit=total_limit,
            forecast_volatility=forecast, vol_target=vol_target, dynamic_limit=dynamic_limit,
            bar_closed=bar_closed,
            returns=returns, gross=gross, turnover=turnover, utilization=utilization,
            unit_utilization=unit_utilization, static_weights=mix, firings=firings_by_row,
            orders=orders, reasons=reasons, rebalances=rebalances,
            seconds=walltime.perf_counter() - began, trace=self.trace)

    # -- what the sidecar does after a recompute -----------------------------------------------

    def _after_recompute(self, now: float,
                         covariance: np.ndarray | None = None) -> tuple[RecommendationTrigger, ...]:
        """RiskBudgetSidecar._after_recompute: a regime change always, and with the covariance
        (the monitoring tick) every trigger, evaluated against the book. Of the utilization
        report the sidecar computes for them, the triggers read the ex-ante volatility only."""
        snapshot = self.pipeline.snapshot
        changed = snapshot.regime is not self._last_regime
        previous, self._last_regime = self._last_regime, snapshot.regime
        if not changed and covariance is None:
            return ()
        market = self.pipeline.market
        volatility = ex_ante_volatility(
            self.book, market, covariance=market.covariance() if covariance is None else covariance,
            cov_symbols=market.symbols, nav=snapshot.net_asset_value)
        firings: list[Firing] = self.triggers.evaluate(
            now=now, regime_changed=changed, previous_regime=previous, snapshot=snapshot,
            drift=book_drift(snapshot, self.book, market.last_price), book_volatility=volatility)
        return tuple(f.trigger for f in firings)

    # -- the rebalancer ------------------------------------------------------------------------

    def _rebalance(self, row: int, snapshot: BudgetSnapshot, prices: np.ndarray, now: float,
                   orders: dict[str, int], reasons: dict[str, int]) -> float:
        """Trade every slot toward its target, at its price in `prices` (0: none yet), through the
        pre-trade check; the notional traded."""
        targets = {(strategy, symbol): notional for strategy, symbol, notional in target_notionals(snapshot)}
        wanted = []
        for (strategy, symbol), price, lot in zip(self.slots, prices.tolist(), self._lots):
            if not (price > 0):
                continue
            current = self.book.exposure(strategy, symbol).position
            delta = targets.get((strategy, symbol), 0.0) / price - current
            quantity = math.floor(abs(delta) / lot + _LOT_EPS) * lot
            if quantity > 0:
                wanted.append((delta > 0, strategy, symbol, quantity, lot, price))
        traded = 0.0
        for buy, strategy, symbol, quantity, lot, price in sorted(wanted, key=lambda w: w[0]):  # sells first
            side = Side.BUY if buy else Side.SELL
            traded += self._send(row, strategy, symbol, side, quantity, lot, price, snapshot, now,
                                 orders, reasons)
        return traded

    def _send(self, row: int, strategy: str, symbol: str, side: Side, quantity: float, lot: float,
              price: float, snapshot: BudgetSnapshot, now: float, orders: dict[str, int],
              reasons: dict[str, int]) -> float:
        """Child orders until the quantity is done or the check allows no more; notional filled."""
        remaining, filled = quantity, 0.0
        for _ in range(_MAX_CHILD_ORDERS):
            if remaining < lot * (1 - _LOT_EPS):
                break
            self._order_seq += 1
            order = OrderRequest(f"bt-{self._order_seq}", strategy, symbol, side, remaining)
            before = tuple(self.book.positions()) if self.trace is not None else ()
            result = evaluate(
                order, snapshot=snapshot, book=self.book, prices=self.pipeline.market,
                limits=self.config.limits, trading_state=TradingState.ACTIVE, restricted=self._restricted,
                lot_size=lot, known_strategies=self._known, now=now)
            orders[result.decision.value] += 1
            for reason in result.reasons:
                reasons[reason.code.value] = reasons.get(reason.code.value, 0) + 1
            if self.trace is not None:
                self.trace.orders.append(OrderRecord(row, order, before, result.decision,
                                                     result.approved_quantity,
                                                     tuple(r.code.value for r in result.reasons)))
            approved = result.approved_quantity
            if approved <= 0:
                break
            self.book.apply_fill(Fill(order.client_order_id, strategy, symbol, side, approved, price, now))
            remaining -= approved
            filled += approved * price
            if result.decision is Decision.APPROVED or not any(
                    r.code is ReasonCode.MAX_ORDER_NOTIONAL for r in result.reasons):
                break  # done, or cut by a limit that the next child order would meet too
        return filled

    def _book_quantities(self) -> np.ndarray:
        return np.array([self.book.exposure(strategy, symbol).position for strategy, symbol in self.slots])

    def _set_book(self, quantities: np.ndarray) -> None:
        self.book.set_positions([Position(strategy, symbol, float(q))
                                 for (strategy, symbol), q in zip(self.slots, quantities) if q != 0])

    # -- utilization of a book against the budget ----------------------------------------------

    def _total_utilization(self, held: np.ndarray, snapshot: BudgetSnapshot, covariance: np.ndarray) -> float:
        """compute_utilization's total for slot notionals `held` (net per symbol for the risk)."""
        net = np.bincount(self._slot_column, weights=held, minlength=len(self.table.symbols))
        return _total_usage(np.abs(held).sum(), net, snapshot, covariance, self._nav)

    def _unit_utilization(self, mix: np.ndarray, prices: np.ndarray, snapshot: BudgetSnapshot,
                          covariance: np.ndarray) -> float:
        """The static mix at gross leverage one (the unpriced symbols' share in cash)."""
        held = np.where(np.isfinite(prices), mix, 0.0) * self._nav
        return _total_usage(np.abs(held).sum(), held, snapshot, covariance, self._nav)


def _forward_filled(values: np.ndarray) -> np.ndarray:
    """Each column's last price as of each row, that row included (NaN before its first)."""
    rows = np.arange(len(values))[:, None]
    latest = np.maximum.accumulate(np.where(np.isfinite(values), rows, 0), axis=0)
    return np.take_along_axis(values, latest, axis=0)


def _total_usage(gross: float, net: np.ndarray, snapshot: BudgetSnapshot, covariance: np.ndarray,
                 nav: float) -> float:
    """max(gross / (NAV x total leverage limit), ex-ante volatility / vol target), as
    compute_utilization's total: the volatility of the net notionals at the covariance, whose
    NaNs (no returns yet) the caller has made 0, as compute_utilization does."""
    vol = math.sqrt(max(float(net @ covariance @ net), 0.0)) / nav
    limit = snapshot.total_leverage_limit
    used_gross = gross / (nav * limit) if limit > 0 else (math.inf if gross > 0 else 0.0)
    used_vol = vol / snapshot.vol_target
    return max(used_gross, used_vol)


def _require_bar_ends(times: np.ndarray, interval: float) -> None:
    """Every row at the end of a bar: the replay trades at bar ends, where a price stamped in
    between is stale (every order was rejected, and the run still looked like a result)."""
    offset = np.remainder(times, interval)
    off = np.flatnonzero(np.minimum(offset, interval - offset) > 1e-6)
    if off.size:
        when = datetime.fromtimestamp(times[off[0]], tz=timezone.utc).isoformat()
        raise ValueError(f"row {off[0] + 1} of the prices, at {when}, is not at the end of a bar of "
                         f"market_data.bar_interval ({interval:g} s): give dates (each a day's close) "
                         "or times on bar boundaries")

