"""The sidecar application: market data in, budget snapshots out, checks against them.

Threads: all numeric work (applying prices, regime detection, the budget solve)
runs on one worker thread, in order. The event loop only reads the published
snapshot (an immutable object swapped in one assignment) and the last prices,
and owns the book, so a pre-trade check never waits for a recompute.
"""

from __future__ import annotations

import asyncio
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

import structlog

from ..engine.allocation import compute_budget
from ..engine.checks import evaluate
from ..engine.config import Config
from ..engine.market_state import ClosedBar, MarketState
from ..engine.regime import RegimeDetector
from ..engine.types import (
    BudgetSnapshot, Decision, Fill, OrderRequest, Position, PriceTick, Reason, ReasonCode,
    Reservation, TradeDecision, TradingState, UtilizationReport,
)
from ..engine.utilization import compute_utilization
from ..store.memory import MemoryStore
from .clock import Clock
from .errors import InvalidInput, NotReady
from .warmup import warmup_ticks

T = TypeVar("T")
log = structlog.get_logger("riskbudget.sidecar")


class RiskBudgetSidecar:
    def __init__(self, config: Config, *, clock: Clock, store: MemoryStore | None = None) -> None:
        self.config = config
        self._clock = clock
        self._store = store or MemoryStore()
        self._market = MarketState(config.universe, config.market_data)
        self._regime = RegimeDetector(
            config.regime, periods_per_year=config.market_data.periods_per_year,
            ewma_lambda=config.market_data.ewma_lambda, start_time=clock.now())
        self._strategy_symbols = {
            name: frozenset(strategy.symbols) for name, strategy in config.portfolio.strategies.items()}
        self._restricted = frozenset(config.limits.restricted_symbols)
        self._snapshot: BudgetSnapshot | None = None
        self._version = 0
        self._needs_recompute = True
        self._numeric = ThreadPoolExecutor(max_workers=1, thread_name_prefix="riskbudget-numeric")
        self._monitor_task: asyncio.Task | None = None
        self._budget_listeners: list[Callable[[BudgetSnapshot], None]] = []
        self._warming_up = False
        self._warmup_regime_changes = 0
        self._started_at = clock.now()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Warm up, publish the first budget, start the monitoring loop."""
        await self._in_numeric(self._warm_up)
        self._mark_book(self._market.symbols)
        self._monitor_task = asyncio.create_task(self._monitor(), name="riskbudget-monitor")

    async def stop(self) -> None:
        if self._monitor_task is not None:
            self._monitor_task.cancel()
            try:
                await self._monitor_task
            except asyncio.CancelledError:
                pass
        self._numeric.shutdown(wait=True, cancel_futures=True)

    def on_budget(self, listener: Callable[[BudgetSnapshot], None]) -> None:
        """Call `listener` (on the numeric thread) with every new budget snapshot."""
        self._budget_listeners.append(listener)

    async def _in_numeric(self, work: Callable[..., T], *args) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._numeric, work, *args)

    async def _monitor(self) -> None:
        interval = self.config.risk_budgeting.monitoring_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self.monitor_once()
            except Exception:  # the loop must outlive any one bad tick
                log.exception("monitoring_tick_failed")

    async def monitor_once(self) -> None:
        """One monitoring tick: close bars by time, recompute, expire stale state."""
        now = self._clock.now()
        await self._in_numeric(self._advance_and_recompute, now)
        expired = self._store.book.expire(now)
        for reservation in expired:
            log.info("reservation_expired", client_order_id=reservation.client_order_id,
                     strategy=reservation.strategy, symbol=reservation.symbol)
        self._store.forget_decisions_before(now)

    # -- numeric thread --------------------------------------------------------------------

    def _warm_up(self) -> None:
        now = self._clock.now()
        count = 0
        self._warming_up = True
        for tick in warmup_ticks(self.config, now=now):
            self._apply_tick(tick)
            count += 1
        self._advance_and_recompute(now)
        self._warming_up = False
        log.info("warmed_up", ticks=count, regime=self._regime.regime.value,
                 regime_changes=self._warmup_regime_changes, budget_version=self._version)

    def _apply_tick(self, tick: PriceTick) -> None:
        for bar in self._market.apply_tick(tick):
            self._on_bar(bar)
        self._needs_recompute = True

    def _on_bar(self, bar: ClosedBar) -> None:
        benchmark = self.config.regime.benchmark
        close = float(bar.closes[self._market.index(benchmark)])
        correlation = self._market.average_correlation(
            sorted(self.config.portfolio.symbols), provisional=False)
        change = self._regime.on_bar(bar.time, close, correlation)
        if change is not None and self._warming_up:
            self._warmup_regime_changes += 1
        elif change is not None:
            log.warning("regime_changed", previous=change.previous.value,
                        current=change.current.value, bar_time=change.time)

    def _advance_and_recompute(self, now: float) -> None:
        for bar in self._market.advance_to(now):
            self._on_bar(bar)
            self._needs_recompute = True
        self._recompute(now)

    def _apply_ticks_and_recompute(self, ticks: list[PriceTick]) -> int:
        for tick in ticks:
            self._apply_tick(tick)
        self._recompute(self._clock.now())
        return len(ticks)

    def _recompute(self, now: float) -> None:
        if not self._needs_recompute and self._snapshot is not None:
            return
        regime, since = self._regime.regime, self._regime.since
        if not self.config.risk_budgeting.enabled:  # the dynamic budget is off: no regime moves
            regime, since = self.config.regime.initial, self._started_at
        snapshot = compute_budget(
            self.config, self._market, regime, regime_since=since,
            version=self._version + 1, now=now, previous=self._snapshot)
        self._version = snapshot.version
        self._snapshot = snapshot
        self._needs_recompute = False
        for listener in self._budget_listeners:
            listener(snapshot)

    # -- reads -----------------------------------------------------------------------------

    def now(self) -> float:
        return self._clock.now()

    @property
    def snapshot(self) -> BudgetSnapshot | None:
        return self._snapshot

    def require_snapshot(self) -> BudgetSnapshot:
        snapshot = self._snapshot
        if snapshot is None:
            raise NotReady("no budget has been computed yet")
        return snapshot

    def trading_state(self, strategy: str | None = None) -> TradingState:
        return self._store.trading_state(strategy)

    def strategy_trading_state(self, strategy: str) -> TradingState:
        return self._store.own_trading_state(strategy)

    @property
    def universe(self) -> frozenset[str]:
        return frozenset(self.config.universe)

    def require_strategy(self, strategy: str, field: str = "strategy") -> None:
        if strategy not in self._strategy_symbols:
            raise InvalidInput([(field, f"unknown strategy {strategy!r}")])

    def utilization(self, strategy: str | None = None) -> UtilizationReport:
        snapshot = self.require_snapshot()
        if strategy is not None:
            self.require_strategy(strategy)
        return compute_utilization(
            snapshot, self._store.book, self._market,
            covariance=self._market.covariance(), cov_symbols=self._market.symbols,
            near_limit_fraction=self.config.limits.near_limit_fraction,
            now=self._clock.now(), strategy=strategy)

    # -- inputs ----------------------------------------------------------------------------

    async def publish_prices(self, ticks: Iterable[PriceTick]) -> tuple[int, BudgetSnapshot]:
        ticks = list(ticks)
        accepted = await self._in_numeric(self._apply_ticks_and_recompute, ticks)
        self._mark_book({tick.symbol for tick in ticks})
        return accepted, self.require_snapshot()

    def _mark_book(self, symbols: Iterable[str]) -> None:
        """Revalue the book's cached gross exposures at the last prices (event-loop thread)."""
        for symbol in symbols:
            price = self._market.last_price(symbol)
            if price is not None:
                self._store.book.mark(symbol, price)

    def report_fill(self, fill: Fill) -> tuple[Position, float]:
        self._check_strategy_symbol(fill.strategy, fill.symbol)
        position, remaining = self._store.book.apply_fill(fill)
        log.info("fill", client_order_id=fill.client_order_id, strategy=fill.strategy,
                 symbol=fill.symbol, quantity=fill.quantity * fill.side.sign, price=fill.price)
        return position, remaining

    def set_positions(self, positions: list[Position], strategy: str | None) -> int:
        if strategy is not None:
            self.require_strategy(strategy)
        for index, position in enumerate(positions):
            if strategy is not None and position.strategy != strategy:
                raise InvalidInput([(f"positions[{index}].strategy",
                                     f"must be {strategy!r} when the request names a strategy")])
            self._check_strategy_symbol(position.strategy, position.symbol, f"positions[{index}].")
        self._store.book.set_positions(positions, strategy)
        return sum(1 for p in self._store.book.positions()
                   if p.quantity != 0 and (strategy is None or p.strategy == strategy))

    def release_order(self, client_order_id: str) -> bool:
        return self._store.book.release(client_order_id)

    def set_trading_state(self, state: TradingState, strategy: str | None) -> TradingState:
        if strategy is not None:
            self.require_strategy(strategy)
        self._store.set_trading_state(state, strategy)
        log.warning("trading_state_set", state=state.name, strategy=strategy or "(book)")
        return state

    def _check_strategy_symbol(self, strategy: str, symbol: str, prefix: str = "") -> None:
        self.require_strategy(strategy, f"{prefix}strategy")
        if symbol not in self._strategy_symbols[strategy]:
            raise InvalidInput([(f"{prefix}symbol",
                                 f"symbol {symbol!r} is not in strategy {strategy!r}")])

    # -- the hot path ----------------------------------------------------------------------

    def check_trade(self, order: OrderRequest) -> TradeDecision:
        """Approve, resize or reject; reserve what was approved unless dry_run."""
        now = self._clock.now()
        kept = self._store.remembered(order.client_order_id)
        if kept is not None:
            if kept.order.same_order_as(order):
                return dataclasses.replace(kept.decision, replayed=True)
            return self._id_reused(order, kept.decision)
        snapshot = self._snapshot
        known = order.strategy in self._strategy_symbols
        evaluation = evaluate(
            order, snapshot=snapshot, book=self._store.book, prices=self._market,
            limits=self.config.limits,
            trading_state=self._store.trading_state(order.strategy if known else None),
            restricted=self._restricted, lot_size=self.config.portfolio.lot_size(order.symbol),
            known_strategies=self._strategy_symbols, now=now)
        decision, approved, reasons = evaluation.decision, evaluation.approved_quantity, evaluation.reasons
        shadow_decision = None
        if self.config.sidecar.shadow_mode and decision is not Decision.APPROVED:
            shadow_decision = decision
            reasons = reasons + (Reason(ReasonCode.SHADOW_MODE,
                                        f"shadow mode: would have been {decision.value}"),)
            decision, approved = Decision.APPROVED, order.quantity
        ttl = self.config.limits.reservation_ttl
        reserve = approved > 0 and not order.dry_run
        result = TradeDecision(
            client_order_id=order.client_order_id, decision=decision,
            requested_quantity=order.quantity, approved_quantity=approved, reasons=reasons,
            budget_version=snapshot.version if snapshot else 0,
            regime=snapshot.regime if snapshot else None,
            budget_computed_at=snapshot.computed_at if snapshot else 0.0,
            reduces_exposure=evaluation.reduces_exposure,
            reference_price=evaluation.reference_price, reserved=reserve,
            reservation_expires_at=now + ttl if reserve else None,
            shadow_decision=shadow_decision)
        if not order.dry_run:
            if reserve:
                self._store.book.reserve(Reservation(
                    order.client_order_id, order.strategy, order.symbol,
                    order.side.sign * approved, now + ttl))
            self._store.remember(order, result, forget_after=now + 2 * ttl)
        log.debug("check_trade", client_order_id=order.client_order_id, strategy=order.strategy,
                 symbol=order.symbol, side=order.side.name, quantity=order.quantity,
                 decision=decision.value, approved_quantity=approved,
                 reasons=[reason.code.value for reason in reasons],
                 budget_version=result.budget_version, dry_run=order.dry_run)
        return result

    def _id_reused(self, order: OrderRequest, earlier: TradeDecision) -> TradeDecision:
        return dataclasses.replace(
            earlier, decision=Decision.REJECTED, requested_quantity=order.quantity,
            approved_quantity=0.0, reserved=False, reservation_expires_at=None,
            shadow_decision=None, replayed=False,
            reasons=(Reason(ReasonCode.ORDER_ID_REUSED,
                            f"client_order_id {order.client_order_id!r} was used for a different order"),))
