"""The sidecar application: market data in, budget snapshots out, checks against them.

Threads: all numeric work (applying prices, regime detection, the budget solve)
runs on one worker thread, in order. The event loop only reads the published
snapshot (an immutable object swapped in one assignment) and the last prices,
and owns the store, so a pre-trade check never waits for a recompute.

What follows a recompute (a regime change becoming a recommendation, alerts)
runs back on the event loop, in the same call that brought the market data:
the update that changes the regime produces its recommendation at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
import uuid
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Callable, Iterable, Iterator, Mapping, NamedTuple, TypeVar

import structlog

from ..engine.checks import evaluate, firm_wide_decision, only_reduces
from ..engine.config import Config
from ..engine.overrides import active_overrides, override_ids_for, restricted_symbols, validate_override
from ..engine.pipeline import BudgetPipeline
from ..engine.price_screen import PriceScreen
from ..engine.recommendations import book_drift, build_recommendation, target_changes
from ..engine.success import SuccessMetrics
from ..engine.triggers import Firing, TriggerMonitor
from ..engine.types import (
    AlertKind, AlertSeverity, BudgetSnapshot, Decision, DecisionRecord, Fill, FirmLimits, OrderRequest,
    Override, OverrideScope, Position, PriceTick, Reason, ReasonCode, Recommendation, RecommendationTrigger, Regime, RegimeRecord,
    Reservation, TradeDecision, TradingState, UtilizationReport,
)
from ..engine.utilization import compute_utilization
from ..store import open_store
from ..store.base import Store
from ..store.errors import StoreError
from ..store.redis_ledger import GrantSpent, OrderIdReused, TradingStopped
from .alerts import AlertBook, ConditionAlerts, ThrottledAlerts
from .checked_prices import CheckedPrices, Entry
from .clock import Clock
from .config_file import ConfigError
from .errors import (
    MAX_PROBLEM_LINE_LENGTH, ConfigRefused, HoldingsOutsideConfig, InvalidInput, NotReady, ShuttingDown,
    StateUnavailable, StreamEnded, capped,
)
from .hub import RecommendationHub
from .metrics import SidecarMetrics
from .reload import (
    OneAtATime, changed_keys, holdings_outside, read_new_config, stranded_at_start, stranded_by_reload,
)
from .warmup import warmup_ticks

T = TypeVar("T")
log = structlog.get_logger("riskbudget.sidecar")
decision_fallback_log = structlog.get_logger("riskbudget.decisions")

HISTORY_LENGTH = 100
HOUSEKEEPING_CHUNK = 1_000
"""Reservations expired, or decisions forgotten, between two turns of the event loop at a
monitoring tick (a few milliseconds' work)."""
TRIGGER_ALERTS = {
    RecommendationTrigger.VOL_BREACH: AlertKind.VOL_BREACH,
    RecommendationTrigger.CORRELATION_SPIKE: AlertKind.CORRELATION_SPIKE,
}


FILL_ID_RETENTION = 86_400.0
"""Seconds a fill's execution id is remembered: a retry comes within seconds; a day also covers
a trading process that replays its fills after a restart."""
FAILED_CHECK_ALERT_INTERVAL = 60.0
"""Seconds before checks failing closed for the same cause raise another alert."""
HELD_TICK_ALERT_INTERVAL = 60.0
"""Seconds before another tick of the same symbol held back raises another alert."""
HELD_TICK_ALERTS_A_BATCH = 5
"""Symbols a batch raises an alert each for; the rest of its held ticks share one."""
BREACH_ALERT_INTERVAL = 60.0
"""Seconds before a limit breached again (after its usage came back within it) raises another alert."""
BREACH_WORSENING = 1.1
"""A breach this many times the usage last announced is announced whenever it comes."""
BUDGET_VERSION_BLOCK = 1_000
"""Budget versions reserved ahead in the state file: a restart numbers its budgets after them."""
OVERRIDE_EXPIRY_RETRY = 1.0
"""Seconds before an expiry the store refused to record is tried again."""
UNBOOKABLE = frozenset({ReasonCode.UNKNOWN_STRATEGY, ReasonCode.UNKNOWN_SYMBOL})
"""Refusals of an order the book has no place for: shadow mode approves it without a reservation."""


class Breach(NamedTuple):
    """The last breach alert of a limit's usage."""

    utilization: float
    announced_at: float
    ongoing: bool
    """Whether the usage is still past the limit."""


class AppliedTicks(NamedTuple):
    """What the numeric thread made of a batch of ticks."""

    accepted: int
    """Ticks applied (one that confirms a held tick counts once)."""
    prices: dict[str, Entry]
    """The batch's symbols as checks are to see them, read when the batch was applied."""
    live: dict[str, float]
    """The batch's symbols' live prices as applied (no tick held back counts: a bad print
    marked on the shared server would stay there)."""
    held: list[tuple[PriceTick, float | None]]
    """Ticks newly held back by the price screen, each with the last price it moved from (None:
    a first price, with no warm-up to compare it with)."""


def _as_of_now(tick: PriceTick, now: float) -> PriceTick:
    """A tick dated ahead of `now` (a feed's clock skew), dated now."""
    return dataclasses.replace(tick, time=now) if tick.time > now else tick


def _refusing_unexpected(what: str, work: Callable[[], T]) -> T:
    """`work()` for a reload, any failure turned into a ConfigError that refuses it, with its alert
    (found by a reviewer: a ValueError ended a SIGHUP's reload with no alert and no log line)."""
    try:
        return work()
    except ConfigError:
        raise
    except Exception as error:  # any failure refuses the reload, and is reported, never lost
        log.exception("reload_failed", step=what)
        raise ConfigError([f"the reload could not {what}: {type(error).__name__}: {error}"]) from None


def _because(reason: str) -> str:
    """": reason" for an operator's change, nothing without one (found by a tester: "by ops: ")."""
    return f": {reason}" if reason else ""


def restart_only_changes(old: Config, new: Config) -> list[str]:
    """What a reload cannot change in a running sidecar."""
    problems = []
    for section in ("store", "market_data", "regime", "stream", "shared", "http"):
        if getattr(old, section) != getattr(new, section):
            problems.append(f"{section}: changes need a restart")
    for key in ("listen", "allow_non_loopback", "admin_token_env", "admin_token_file", "client_token_env",
                "client_token_file", "read_token_env", "read_token_file", "tls", "max_message_bytes",
                "max_concurrent_rpcs", "log_level"):  # the logger is configured once, at start
        if getattr(old.sidecar, key) != getattr(new.sidecar, key):
            problems.append(f"sidecar.{key}: changes need a restart")
    if old.universe != new.universe:
        problems.append("portfolio: the set of symbols can only change with a restart")
    for key in ("lot_sizes", "default_lot_size"):
        if new.shared is not None and getattr(old.portfolio, key) != getattr(new.portfolio, key):
            # Found by a tester: the shared server counts in lots of the size the store started with;
            # a reload's new size turned a grant of 50 lots of 1 into an approval of 50 lots of 100.
            problems.append(f"portfolio.{key}: with a shared store, changes need a restart of every "
                            "sidecar sharing it (the server counts in lots)")
    return problems


class RiskBudgetSidecar:
    def __init__(self, config: Config, *, clock: Clock, store: Store | None = None,
                 config_path: str | None = None) -> None:
        self.config = config
        self._config_path = config_path
        self._clock = clock
        self._started_at = clock.now()
        self._pipeline = BudgetPipeline(config, start_time=self._started_at)
        """The numeric path (market state, regime, budget), the same code the backtest replays."""
        self._market = self._pipeline.market
        self._checked_prices = CheckedPrices()
        """The market's prices as checks see them: taken when the book is marked with them."""
        self._price_screen = PriceScreen(config.limits.max_price_move)
        self._held_tick_alerts: dict[str, float] = {}
        """When the last alert for a tick held back was raised, per symbol."""
        self._breaches: dict[str, Breach] = {}
        """Per subject whose usage breached its limit and is not yet back below the near level."""
        self._store = store or open_store(
            config.store, shared=config.shared, fallback_log=self._log_decision_fallback,
            lot_size_of=config.portfolio.lot_size, price_of=self._market.last_price,
            live_price_of=self._checked_prices.live_price,
            strategies=config.owned_strategies, now=clock.now, lot_sizes=config.portfolio.lot_sizes_text())
        self._alerts = AlertBook()
        self._state_file_lost = False
        """Whether the alert of a state file no longer at its path was raised."""
        self._failed_check_alert: tuple[str, float] | None = None
        """The last alert for a check that failed closed, and when it was raised."""
        self._reloads = OneAtATime()
        self._reload_steps: list[tuple[Callable[[Config], Any], Callable[[Any], str | None]]] = []
        self._one_shared_check = asyncio.Lock()
        self.metrics = SidecarMetrics()
        self.success = SuccessMetrics(start=self._started_at, net_asset_value=config.portfolio.net_asset_value)
        self._conditions = ConditionAlerts(self._alerts)
        self._unreserved_fills = ThrottledAlerts(self._alerts, AlertKind.UNRESERVED_FILL, AlertSeverity.WARNING,
                                                 "unreserved fills")
        # Fills of rejected orders (rarer, and graver) keep a quota of their own, with the other alerts,
        # where the routine ones' flood cannot push them out (found by reviewers).
        self._rejected_fills = ThrottledAlerts(self._alerts, AlertKind.UNRESERVED_FILL, AlertSeverity.WARNING,
                                               "fills of rejected orders", apart=False)
        self._hub = RecommendationHub(read_after=self._store.recommendations_after,
                                      bounds=self._store.recommendation_bounds,
                                      log_id=self._store.recommendation_log_id,
                                      queue_size=config.stream.subscriber_queue)
        self._triggers = TriggerMonitor(config.risk_budgeting.rebalancing_triggers)
        self._triggers.restore(self._store.triggers_fired())  # cooldowns outlive a restart
        self._live_symbols: set[str] = set()
        """Symbols with a published price: the book's gain counts from each one's first, not
        from the warm-up's last (a synthetic or historical price, not a market move)."""
        self._apply_config(config)
        self._overrides: tuple[Override, ...] = ()
        self._targets_before_change: BudgetSnapshot | None = None
        """The budget before operator changes not yet recommended (see _recommend_moved_targets)."""
        self._changes_not_recommended: list[str] = []
        self._change_to_measure: int | None = None
        """The pipeline's `changes_made` after the last of them, until their move is measured."""
        self._refresh_overrides(clock.now())
        self._numeric = ThreadPoolExecutor(max_workers=1, thread_name_prefix="riskbudget-numeric")
        self._monitor_task: asyncio.Task | None = None
        self._monitoring_interval_changed = asyncio.Event()
        self._override_timer: asyncio.TimerHandle | None = None
        self._warming_up = False
        self._warmup_regime_changes = 0
        self._availability_listeners: list[Callable[[bool], None]] = []
        self._last_regime: Regime | None = None
        self.regime_history: deque[tuple[Regime, float]] = deque(maxlen=HISTORY_LENGTH)
        self.regime_response_seconds: deque[float] = deque(maxlen=HISTORY_LENGTH)

    def _apply_config(self, config: Config) -> None:
        """Everything derived from the config, swapped in one go (start and reload)."""
        self.config = config
        self._strategy_symbols = {
            name: frozenset(strategy.symbols) for name, strategy in config.portfolio.strategies.items()}
        self._traded_elsewhere = frozenset(config.portfolio.strategies) - set(config.owned_strategies)
        self._triggers.reconfigure(config.risk_budgeting.rebalancing_triggers)
        self._pipeline.reconfigure(config)
        self._price_screen.reconfigure(config.limits.max_price_move)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Warm up, connect what is shared, publish the first budget, start the monitoring loop."""
        self._refuse_holdings_outside_config()
        self._pipeline.continue_versions_after(self._store.budget_versions_reserved())
        self._reserve_budget_versions()
        await self._in_numeric(self._warm_up)  # the book is marked by live prices only: see engine/checks
        self._checked_prices.update(self._prices_to_check(self._market.symbols))
        self._store.watch(on_change=self._shared_state_changed, on_availability=self._shared_availability,
                          on_data_loss=self._shared_data_lost, on_refusal=self._state_refusal)
        await self._store.start()
        self._resume_regime()
        self._observe_success(self.utilization(), self._clock.now())
        self._schedule_override_expiry()
        self._monitor_task = asyncio.create_task(self._monitor(), name="riskbudget-monitor")

    def _resume_regime(self) -> None:
        """Take up the regime of before the restart (carried over at warm-up): one other than
        the one last applied (a FORCE_REGIME that ended meanwhile, a milder one recorded) is
        recommended, as any change."""
        received = time.monotonic()
        record = self._store.regime_record()
        snapshot = self.require_snapshot()
        if record is None or record.effective is snapshot.regime:
            self._last_regime = snapshot.regime
            self.regime_history.append((snapshot.regime, snapshot.regime_since))
            self._record_regime()
        else:
            self._last_regime = record.effective
            self._after_recompute(received)

    def _record_regime(self) -> None:
        """Keep the regime this sidecar runs in, and when each trigger last fired, for its next
        start (a write only on a change)."""
        detector = self._pipeline.regime
        record = RegimeRecord(detector.regime, detector.since, self._last_regime)
        fired = self._triggers.fired()
        try:
            if record != self._store.regime_record():
                self._store.record_regime(record)
            if fired != self._store.triggers_fired():
                self._store.record_triggers_fired(fired)
        except StoreError as error:  # the next change tries again; the budget is unaffected
            log.warning("restart_state_not_recorded", error=str(error))

    def end_streams(self, why: type[StreamEnded] = ShuttingDown) -> None:
        """Every subscriber's stream ends with its resume point (shutdown's first step, and a
        token rotation's: a stream opened with a token no longer valid must not go on)."""
        self._hub.end_streams(why)

    async def stop(self) -> None:
        if self._override_timer is not None:
            self._override_timer.cancel()
        if self._monitor_task is not None:
            self._monitor_task.cancel()
            try:
                await self._monitor_task
            except asyncio.CancelledError:
                pass
        self._numeric.shutdown(wait=True, cancel_futures=True)
        await self._store.stop()

    @property
    def available(self) -> bool:
        """Whether checks can be answered: a budget exists and the store can record changes."""
        return self._pipeline.snapshot is not None and self._store.available

    def on_availability(self, listener: Callable[[bool], None]) -> None:
        """Tell `listener` when the sidecar can (True) or cannot (False) serve checks."""
        self._availability_listeners.append(listener)

    def _shared_availability(self, available: bool) -> None:
        self._alerts.raise_alert(
            AlertKind.STORE_ERROR, AlertSeverity.INFO if available else AlertSeverity.CRITICAL,
            "shared state is available again; reservations reconciled" if available
            else "shared state unavailable: checks fail closed until it is back", now=self._clock.now())
        self._tell_availability()

    def _state_refusal(self, reason: str | None) -> None:
        self._alerts.raise_alert(
            AlertKind.STORE_ERROR, AlertSeverity.INFO if reason is None else AlertSeverity.CRITICAL,
            "the state store takes changes again" if reason is None
            else f"the state store refuses changes ({reason}): checks fail closed and health "
                 "is NOT_SERVING until it takes them", now=self._clock.now())
        self._tell_availability()

    def _tell_availability(self) -> None:
        for listener in self._availability_listeners:
            listener(self.available)

    def _shared_data_lost(self, message: str) -> None:
        self._alerts.raise_alert(AlertKind.STORE_ERROR, AlertSeverity.CRITICAL, message, now=self._clock.now())

    def _shared_state_changed(self) -> None:
        """Another sidecar changed the operator state: apply it here too."""
        asyncio.ensure_future(self._overrides_changed(self._clock.now(), "another sidecar's operator change"))

    async def _in_numeric(self, work: Callable[..., T], *args) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._numeric, work, *args)

    async def _monitor(self) -> None:
        while True:
            await self._sleep_one_interval()
            try:
                await self.monitor_once()
            except Exception:  # the loop must outlive any one bad tick
                log.exception("monitoring_tick_failed")

    async def _sleep_one_interval(self) -> None:
        """Sleep one monitoring interval; a reload that changes the interval starts it over."""
        changed = self._monitoring_interval_changed
        while True:
            try:
                await asyncio.wait_for(changed.wait(), self.config.risk_budgeting.monitoring_interval)
            except asyncio.TimeoutError:
                return
            changed.clear()

    async def monitor_once(self) -> None:
        """One monitoring tick: close bars by time, recompute, expire, check triggers and limits."""
        received = time.monotonic()
        now = self._clock.now()
        self._check_state_file(now)  # first: found by a reviewer, a later step refused by it ended the tick
        for throttle in (self._unreserved_fills, self._rejected_fills):
            throttle.flush(now)
        await self._expire_overrides(now)
        await self._in_numeric(self._advance_and_recompute, now)
        try:
            with self._store_errors():
                expired = await self._expire_and_forget(now)
        except StateUnavailable:  # alerted; the limits, stale prices and metrics are still checked
            expired = []
        self._log_expiries(expired)
        report = self.utilization()
        self._after_recompute(received, report)
        self._check_conditions(report, now)
        self.refresh_metrics(report)

    async def _expire_and_forget(self, now: float) -> list[Reservation]:
        """Expire the reservations and forget the decisions due by `now`, a chunk at a time
        with the event loop free in between: a busy book has tens of thousands due at a
        tick, and all at once they held CheckTrade up for half a second."""
        expired: list[Reservation] = []
        while len(chunk := await self._store.expire(now, limit=HOUSEKEEPING_CHUNK)) == HOUSEKEEPING_CHUNK:
            expired += chunk
            await asyncio.sleep(0)
        expired += chunk
        while self._store.forget_decisions_before(now, limit=HOUSEKEEPING_CHUNK) == HOUSEKEEPING_CHUNK:
            await asyncio.sleep(0)
        self._store.forget_fills_before(now)
        return expired

    @staticmethod
    def _log_expiries(expired: list[Reservation]) -> None:
        """One line a tick at info (a busy book expires thousands a minute); each order at debug."""
        if not expired:
            return
        log.info("reservations_expired", count=len(expired),
                 strategies=dict(Counter(reservation.strategy for reservation in expired)))
        if not log.is_enabled_for(logging.DEBUG):  # tens of thousands of calls cost even when filtered
            return
        for reservation in expired:
            log.debug("reservation_expired", client_order_id=reservation.client_order_id,
                      strategy=reservation.strategy, symbol=reservation.symbol)

    def _observe_success(self, report: UtilizationReport, now: float) -> None:
        self.success.observe(
            now, utilization=report.total.utilization, ex_ante_volatility=report.total.ex_ante_volatility,
            net_positions={s: u.net_quantity for s, u in report.symbols.items()},
            prices={s: p for s in self._live_symbols if (p := self._market.last_price(s)) is not None})

    # -- numeric thread --------------------------------------------------------------------

    def _warm_up(self) -> None:
        now = self._clock.now()
        count = 0
        self._warming_up = True
        for tick in warmup_ticks(self.config, now=now):
            self._apply_tick(tick)
            count += 1
        self._advance(now)
        self._market.end_history()  # however recent, a warm-up price is no live one
        self._carry_regime_over()  # before the first budget: none is ever shown in the warm-up's
        self._recompute(now)
        self._warming_up = False
        log.info("warmed_up", ticks=count, regime=self._pipeline.regime.regime.value,
                 regime_changes=self._warmup_regime_changes, budget_version=self._pipeline.version)

    def _apply_tick(self, tick: PriceTick) -> None:
        changes = self._pipeline.apply_tick(tick)
        if self._warming_up:
            self._warmup_regime_changes += len(changes)

    def _advance_and_recompute(self, now: float) -> None:
        self._advance(now)
        self._recompute(now)

    def _advance(self, now: float) -> None:
        changes = self._pipeline.advance_to(now)
        if self._warming_up:
            self._warmup_regime_changes += len(changes)

    def _carry_regime_over(self) -> None:
        """Carry the regime over a restart: the warm-up's prices cannot know that the market was
        in crisis before it, so a more severe regime recorded stays until the bars from here
        confirm a way out."""
        record = self._store.regime_record()
        detector = self._pipeline.regime
        if record is not None and record.detected.severity > detector.regime.severity:
            detector.carry_over(record.detected, record.detected_since)
            log.warning("regime_carried_over", regime=record.detected.value, since=record.detected_since)

    def _apply_ticks_and_recompute(self, ticks: list[PriceTick]) -> AppliedTicks:
        """Apply the ticks in order, but those older than their symbol's last price and those
        the price screen holds back. A tick dated ahead of the sidecar's clock (a feed's clock
        skew, up to MAX_TICK_AHEAD) counts as of now: kept at its own time, it would make every
        later price until then look out of order, and pin the symbol at it. The screen sees the
        tick's own time: found by a reviewer, a bad print dated ahead and sent again was
        "later" once each was dated now, and confirmed itself."""
        now = self._clock.now()
        applied, held = 0, []
        for tick in ticks:
            if not self._market.is_in_order(_as_of_now(tick, now)):
                continue
            # Before a live price, the warm-up's (found by a reviewer: a first print taken as it came
            # approved 1e6 times a limit); a synthetic one's, far from the market, and none at all
            # make each symbol's first price wait for a second.
            last = self._market.last_price(tick.symbol)
            holding = self._price_screen.held(tick.symbol) is not None
            passed = self._price_screen.screen(tick, last)
            for tick_passed in passed:
                tick_passed = _as_of_now(tick_passed, now)
                if self._market.is_in_order(tick_passed):
                    self._apply_tick(tick_passed)
            if passed:
                applied += 1
            elif not holding:
                held.append((tick, last))
        self._recompute(now)
        symbols = {tick.symbol for tick in ticks}
        live = {symbol: price for symbol in symbols if (price := self._market.live_price(symbol)) is not None}
        return AppliedTicks(applied, self._prices_to_check(symbols), live, held)

    def checked_price(self, symbol: str) -> float | None:
        """The price checks value `symbol` at now (None before it has one)."""
        return self._checked_prices.last_price(symbol)

    def _prices_to_check(self, symbols: Iterable[str]) -> dict[str, Entry]:
        """What checks are to see of the symbols' prices: the market's, but a symbol with a tick
        held back at the larger of its last price and the held one (the stricter value)."""
        market, screen = self._market, self._price_screen
        prices = {}
        for symbol in symbols:
            price, held = market.last_price(symbol), screen.held(symbol)
            if price is not None and held is not None:
                price = max(price, held.price)
            prices[symbol] = (price, market.live_time(symbol))
        return prices

    def _recompute(self, now: float) -> None:
        began = time.perf_counter()
        snapshot = self._pipeline.recompute(now)
        if snapshot is None:  # nothing changed since the last budget
            return
        self.metrics.recompute_seconds.observe(time.perf_counter() - began)
        self.metrics.regime.state(snapshot.regime.value)
        self.metrics.budget_version.set(snapshot.version)

    async def _recompute_now(self) -> None:
        self._pipeline.invalidate()
        await self._in_numeric(self._recompute, self._clock.now())

    # -- after a recompute (event loop) ----------------------------------------------------

    def _after_recompute(self, received: float, report: UtilizationReport | None = None) -> None:
        """Turn a regime change, or (with a utilization report) any trigger, into a recommendation.
        Nothing before start() has taken up the regime of before the restart (prices published
        while it starts): it compares the regime then. A recommendation the store refuses (alerted)
        is made again at the next recompute: the prices or the tick that led to it still count."""
        if self._last_regime is None:
            return
        self._reserve_budget_versions()
        snapshot = self.require_snapshot()
        changed = snapshot.regime is not self._last_regime
        previous, self._last_regime = self._last_regime, snapshot.regime
        if not changed and report is None:
            self._record_regime()
            self._recommend_moved_targets(recommended=False)
            return
        report = report or self.utilization()
        latches = self._triggers.fired()
        firings = self._triggers.evaluate(
            now=self._clock.now(), regime_changed=changed, previous_regime=previous,
            snapshot=snapshot, drift=self._drift(snapshot),
            # unknown (NaN: neither fires nor re-arms) while a symbol held has no live price yet
            book_volatility=math.nan if self._store.book.unmarked() else report.total.ex_ante_volatility)
        if firings:
            try:
                self._recommend(firings)
            except StateUnavailable as error:  # recommended again next time, cooldowns or not
                self._last_regime = previous
                self._triggers.restore(latches)
                log.warning("recommendation_not_recorded", error=str(error))
                return
        self._record_regime()  # only once recommended: else a restart would take it as known
        self._recommend_moved_targets(recommended=bool(firings))
        if changed:
            self.regime_history.append((snapshot.regime, snapshot.regime_since))
            self._alerts.raise_alert(
                AlertKind.REGIME_CHANGE, AlertSeverity.INFO,
                f"regime changed from {previous.value} to {snapshot.regime.value}",
                now=self._clock.now())
            seconds = time.monotonic() - received
            self.regime_response_seconds.append(seconds)
            self.metrics.regime_response.observe(seconds)
            self.success.record_regime_response(seconds)
            log.info("regime_response", seconds=seconds, regime=snapshot.regime.value)

    def _reserve_budget_versions(self) -> None:
        """Keep a block of budget versions ahead reserved in the state file, which the next run
        numbers after: versions never go back (a write every BUDGET_VERSION_BLOCK / 2 budgets)."""
        version = self._pipeline.version
        if version + BUDGET_VERSION_BLOCK // 2 <= self._store.budget_versions_reserved():
            return
        try:
            self._store.reserve_budget_versions(version + BUDGET_VERSION_BLOCK)
        except StoreError as error:  # tried again at the next budget, half a block of margin left
            log.warning("budget_versions_not_reserved", error=str(error))

    def _drift(self, snapshot: BudgetSnapshot) -> dict[str, float]:
        """Per strategy; none for a strategy holding a symbol with no live price yet (the book's
        unmarked ones): after a restart, the warm-up's prices made a drift out of nothing."""
        book = self._store.book
        drift = book_drift(snapshot, book, self._market.last_price)
        for symbol in book.unmarked():
            for strategy, _ in book.symbol_exposures(symbol):
                drift.pop(strategy, None)
        return drift

    def _recommend(self, firings: list[Firing]) -> Recommendation:
        snapshot = self.require_snapshot()
        now = self._clock.now()
        draft = build_recommendation(
            triggers=tuple(f.trigger for f in firings), reason="; ".join(f.reason for f in firings),
            snapshot=snapshot, book=self._store.book, price_of=self._market.last_price, now=now)
        with self._store_errors():
            recommendation = self._store.append_recommendation(draft)
        self._hub.publish(recommendation)
        for trigger in recommendation.triggers:
            self.metrics.recommendations.labels(trigger.value).inc()
        for firing in firings:
            if firing.trigger in TRIGGER_ALERTS:
                self._alerts.raise_alert(TRIGGER_ALERTS[firing.trigger], AlertSeverity.WARNING,
                                         firing.reason, now=now)
        log.info("recommendation", sequence=recommendation.sequence,
                 triggers=[t.value for t in recommendation.triggers], reason=recommendation.reason)
        return recommendation

    def _check_conditions(self, report: UtilizationReport, now: float) -> None:
        """Level alerts: raised when a condition starts, again only after it cleared."""
        scopes = [("(total)", report.total), *report.strategies.items()]
        for name, usage in scopes:
            self._limit_alert(name, usage.utilization, usage.near_limit, usage.breached, now)
        for symbol, usage in report.symbols.items():
            self._limit_alert(symbol, usage.utilization, usage.near_limit, usage.breached, now)
        stale = [s for s in self._market.symbols
                 if self._market.is_stale(s, now, self.config.limits.max_staleness)]
        self._conditions.update(
            AlertKind.STALE_MARKET_DATA, "", bool(stale), AlertSeverity.WARNING,
            f"{len(stale)} symbols have stale or no prices: {', '.join(stale[:10])}", now=now)
        backlog, overflowed = self._store.decision_log_stats()
        self._conditions.update(
            AlertKind.DECISION_LOG_BACKLOG, "", overflowed > 0, AlertSeverity.CRITICAL,
            f"{overflowed} decisions went to the fallback log (the JSON log), as the decision log "
            f"could not keep up or its database refused them (the log says which)",
            now=now)
        self._check_disk_space(now)

    def _check_state_file(self, now: float) -> None:
        """A critical alert, and health NOT_SERVING, once the state file is no longer at its path."""
        if (lost := self._store.lost_state_file()) is not None and not self._state_file_lost:
            self._state_file_lost = True
            self._alerts.raise_alert(
                AlertKind.STORE_ERROR, AlertSeverity.CRITICAL,
                f"{lost}: checks fail closed and health is NOT_SERVING until the sidecar is restarted "
                "(what it recorded since is in a file without a name, lost when it stops)", now=now)
            self._tell_availability()

    def _disk_free(self) -> int | None:
        """Bytes free for the state store; None if it writes nowhere or they cannot be read."""
        try:
            return self._store.disk_free()
        except OSError as error:  # the store's own writes say more, through STORE_ERROR
            log.warning("disk_space_unknown", error=str(error))
            return None

    def _check_disk_space(self, now: float) -> None:
        minimum_mib = self.config.store.min_free_disk_mib
        free = self._disk_free()
        if free is None:
            return
        free_mib = free / 2**20
        self._conditions.update(
            AlertKind.DISK_SPACE_LOW, "", free_mib < minimum_mib, AlertSeverity.WARNING,
            f"{free_mib:,.0f} MiB free for the state store, below store.min_free_disk_mib "
            f"({minimum_mib:,.0f}): checks fail closed once the disk is full", now=now)

    def _limit_alert(self, subject: str, utilization: float, near: bool, breached: bool, now: float) -> None:
        """One alert as a usage comes near its limit (lasting until it is back below the near
        level), and one as it breaches it; another breach alert only for a usage 10% worse than
        the last announced, or for a breach again a minute or more after it. Found by a tester:
        a usage moving between 90% and 105% raised an alert at every crossing (300 in 5 minutes
        of a crash day), which would push every other alert out of the book."""
        # Rounded down to 0.1%: a usage of 99.996% read "uses 100%", as a breach (found by a tester).
        # A limit of 0 (a cap to flatten a symbol) with exposure is an infinite usage: said so.
        message = (f"{subject} uses {math.floor(utilization * 1000 + 1e-9) / 10:.1f}% of its limit"
                   if math.isfinite(utilization) else f"{subject} holds exposure against a limit of 0")
        self._conditions.update(AlertKind.LIMIT_NEAR, subject, near, AlertSeverity.WARNING, message, now=now,
                                announce=not breached)
        last = self._breaches.get(subject)
        if not breached:
            if not near:
                self._breaches.pop(subject, None)
            elif last is not None:
                self._breaches[subject] = last._replace(ongoing=False)
            return
        if (last is None or utilization > BREACH_WORSENING * last.utilization
                or (not last.ongoing and now - last.announced_at >= BREACH_ALERT_INTERVAL)):
            self._alerts.raise_alert(AlertKind.LIMIT_BREACHED, AlertSeverity.CRITICAL, message,
                                     subject=subject, now=now)
            last = Breach(utilization, now, ongoing=True)
        self._breaches[subject] = last._replace(ongoing=True)

    # -- reads -----------------------------------------------------------------------------

    def now(self) -> float:
        return self._clock.now()

    @property
    def snapshot(self) -> BudgetSnapshot | None:
        return self._pipeline.snapshot

    def require_snapshot(self) -> BudgetSnapshot:
        snapshot = self._pipeline.snapshot
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

    @property
    def overrides(self) -> tuple[Override, ...]:
        return self._overrides

    @property
    def hub(self) -> RecommendationHub:
        return self._hub

    @property
    def alerts(self) -> AlertBook:
        return self._alerts

    @property
    def store(self) -> Store:
        return self._store

    def require_strategy(self, strategy: str, field: str = "strategy") -> None:
        if strategy not in self._strategy_symbols:
            raise InvalidInput([(field, f"unknown strategy {strategy!r}")])

    def utilization(self, strategy: str | None = None) -> UtilizationReport:
        snapshot = self.require_snapshot()
        if strategy is not None:
            self.require_strategy(strategy)
        return compute_utilization(  # valued as checks value the book
            snapshot, self._store.book, self._checked_prices,
            covariance=self._market.covariance(), cov_symbols=self._market.symbols,
            near_limit_fraction=self.config.limits.near_limit_fraction,
            now=self._clock.now(), strategy=strategy)

    def subscribe(self, after_sequence: int, *, from_latest: bool = False,
                  log_id: str = "") -> AsyncIterator[list[Recommendation]]:
        return self._hub.subscribe(after_sequence, from_latest=from_latest, log_id=log_id)

    @property
    def recommendation_log_id(self) -> str:
        return self._hub.log_id

    # -- inputs ----------------------------------------------------------------------------

    async def publish_prices(self, ticks: Iterable[PriceTick]) -> tuple[int, BudgetSnapshot]:
        received = time.monotonic()
        ticks = list(ticks)
        applied = await self._in_numeric(self._apply_ticks_and_recompute, ticks)
        self._live_symbols |= {tick.symbol for tick in ticks}
        self._mark_book(applied.prices)
        if self._store.shares_limits:  # found by a reviewer: the server kept each symbol at its
            # last order's price, and a rally in what the firm held went uncounted (1.8x a limit)
            self._store.mark_firm_wide(applied.live)
        self._alert_held_ticks(applied.held)
        self._after_recompute(received)
        return applied.accepted, self.require_snapshot()

    def _alert_held_ticks(self, held: list[tuple[PriceTick, float | None]]) -> None:
        """An alert for each tick held back, of a symbol not alerted of in the last minute, the
        first five of a batch each on its own and the rest in one: a feed alternating between two
        far prices would otherwise push every other alert out of the book, and a start after a
        synthetic warm-up would raise one a symbol."""
        if not held:
            return
        now = self._clock.now()
        log.info("ticks_held", count=len(held), first=[(t.symbol, t.price, last) for t, last in held[:5]])
        news = [(tick, last) for tick, last in held
                if now - self._held_tick_alerts.get(tick.symbol, -math.inf) >= HELD_TICK_ALERT_INTERVAL]
        if not news:
            return
        self._held_tick_alerts.update((tick.symbol, now) for tick, _ in news)
        limit = self.config.limits.max_price_move
        for tick, last in news[:HELD_TICK_ALERTS_A_BATCH]:
            self._alerts.raise_alert(
                AlertKind.STALE_MARKET_DATA, AlertSeverity.WARNING,
                f"price {tick.price:g} of {tick.symbol} is its first, with no warm-up price to compare it with: "
                f"held until a later price within limits.max_price_move ({limit:g}) of it confirms it; "
                f"orders in {tick.symbol} are rejected as stale meanwhile" if last is None else
                f"price {tick.price:g} of {tick.symbol} is more than limits.max_price_move ({limit:g}) from its "
                f"last, {last:g}: held until a later price confirms it; valued meanwhile at the larger of the two",
                subject=tick.symbol, now=now)
        if rest := news[HELD_TICK_ALERTS_A_BATCH:]:
            self._alerts.raise_alert(
                AlertKind.STALE_MARKET_DATA, AlertSeverity.WARNING,
                f"prices of {len(rest)} more symbols held back until a later price confirms them (more than "
                f"limits.max_price_move from their last, or a first with no warm-up price): {', '.join(tick.symbol for tick, _ in rest[:20])}{' ...' if len(rest) > 20 else ''}",
                now=now)

    def _mark_book(self, prices: Mapping[str, Entry]) -> None:
        """Revalue the book's cached gross exposures at these prices, and let checks see them, in
        one step of the event loop: never at a warm-up's price, which may be far from the market."""
        self._checked_prices.update(prices)
        for symbol, (price, live_time) in prices.items():
            if price is not None and live_time is not None:
                self._store.book.mark(symbol, price)

    async def report_fill(self, fill: Fill) -> tuple[Position, float, bool]:
        """Apply a fill: the position after it, the quantity still reserved for its order, and
        whether it was a repeat of an execution id applied before (then nothing changed)."""
        if (kept := self._store.remembered_fill(fill.execution_id)) is not None:
            if kept.fill != fill:
                raise InvalidInput([("execution_id", f"{fill.execution_id!r} was reported for a different fill")])
            return kept.position, kept.reserved_remaining, True
        self._check_fill_matches_order(fill)  # first: a fill of another strategy's order names the strategy
        self._check_strategy_symbol(fill.strategy, fill.symbol)
        self._check_owned(fill.strategy, "strategy")
        checked = self._store.remembered(fill.client_order_id)
        reservation = self._store.book.reservation(fill.client_order_id)
        with self._store_errors():
            position, remaining = await self._store.apply_fill(
                fill, forget_after=self._clock.now() + FILL_ID_RETENTION)
        log.info("fill", client_order_id=fill.client_order_id, strategy=fill.strategy, symbol=fill.symbol,
                 quantity=fill.quantity * fill.side.sign, price=fill.price, execution_id=fill.execution_id)
        if checked is not None:
            self._alert_unreserved_fill(fill, checked.decision, reservation)
        return position, remaining, False

    def _alert_unreserved_fill(self, fill: Fill, decision: TradeDecision, reservation: Reservation | None) -> None:
        """Warn of a fill under a checked order beyond what the order still had reserved: the
        position moved past what its check held room for (found by a tester: an order approved
        for 100 filled 250, silently). A fill under an id the sidecar never checked is an order
        sent around it, and moves the position only."""
        held = abs(reservation.signed_quantity) if reservation is not None else 0.0
        beyond = fill.quantity - held
        if beyond <= self.config.portfolio.lot_size(fill.symbol) * 1e-9:
            return
        order = f"order {fill.client_order_id!r} ({fill.strategy}, {fill.symbol})"
        if decision.decision is Decision.REJECTED:
            what = f"{order} was rejected, and filled {fill.quantity:g}"
        elif reservation is None:
            what = f"{order} filled {fill.quantity:g} with nothing left reserved (filled already, released or expired)"
        else:
            what = f"{order} filled {fill.quantity:g}, {beyond:g} beyond the {held:g} it still had reserved"
        # Each in the log; alerts at most one an order a minute, ten a minute in all (found by a
        # reviewer: 1,000 fills of one expired order pushed every other alert out of the list).
        log.warning("unreserved_fill", client_order_id=fill.client_order_id, strategy=fill.strategy,
                    symbol=fill.symbol, quantity=fill.quantity, reserved=held,
                    rejected=decision.decision is Decision.REJECTED)
        throttle = self._rejected_fills if decision.decision is Decision.REJECTED else self._unreserved_fills
        throttle.raise_alert(fill.client_order_id, f"{what}: the position moved past what its check held room for",
                             now=self._clock.now())

    async def set_positions(self, positions: list[Position], strategy: str | None) -> int:
        if strategy is not None:
            self.require_strategy(strategy)
        for index, position in enumerate(positions):
            if strategy is not None and position.strategy != strategy:
                raise InvalidInput([(f"positions[{index}].strategy",
                                     f"must be {strategy!r} when the request names a strategy")])
            self._check_strategy_symbol(position.strategy, position.symbol, f"positions[{index}].")
            self._check_owned(position.strategy, f"positions[{index}].strategy")
        with self._store_errors():
            try:
                return await self._store.set_positions(positions, strategy)
            except ValueError as error:  # a shared store cannot value a symbol with no price yet
                raise InvalidInput([("positions", str(error))]) from None

    async def release_order(self, client_order_id: str) -> bool:
        with self._store_errors():
            return await self._store.release(client_order_id)

    def _check_fill_matches_order(self, fill: Fill) -> None:
        """A fill under the id of an order this sidecar checked must be for that order's strategy,
        symbol and side: settling its reservation with another order's fill would free budget
        still in use. (A fill under an id it never checked moves the position, nothing else.)"""
        kept = self._store.remembered(fill.client_order_id)
        if kept is None:
            return
        order = kept.order
        problems = [(field, f"must be {expected!r}, as in order {fill.client_order_id!r}, got {given!r}")
                    for field, expected, given in (("strategy", order.strategy, fill.strategy),
                                                   ("symbol", order.symbol, fill.symbol),
                                                   ("side", order.side.name, fill.side.name))
                    if expected != given]
        if problems:
            raise InvalidInput(problems)

    def _check_owned(self, strategy: str, field: str) -> None:
        """Positions and fills of a strategy go through the one sidecar that trades it: another
        would change the shared server's book behind it, and remember no execution id there."""
        if strategy not in self.config.owned_strategies:
            raise InvalidInput([(field, f"strategy {strategy!r} is traded through another sidecar")])

    def _check_strategy_symbol(self, strategy: str, symbol: str, prefix: str = "") -> None:
        self.require_strategy(strategy, f"{prefix}strategy")
        if symbol not in self._strategy_symbols[strategy]:
            raise InvalidInput([(f"{prefix}symbol",
                                 f"symbol {symbol!r} is not in strategy {strategy!r}")])

    @contextlib.contextmanager
    def _store_errors(self) -> Iterator[None]:
        """A store that cannot record a change refuses it: StateUnavailable, and an alert."""
        try:
            yield
        except StoreError as exc:
            self.metrics.store_errors.inc()
            self._alerts.raise_alert(AlertKind.STORE_ERROR, AlertSeverity.CRITICAL, str(exc),
                                     now=self._clock.now())
            raise StateUnavailable(f"the state store cannot record the change: {exc}") from None

    # -- operator controls -----------------------------------------------------------------

    async def set_trading_state(self, state: TradingState, strategy: str | None, *, set_by: str = "",
                          reason: str = "") -> TradingState:
        if strategy is not None:
            self.require_strategy(strategy)
        with self._store_errors():
            await self._store.set_trading_state(state, strategy)
        self._alerts.raise_alert(
            AlertKind.TRADING_STATE_CHANGED,
            AlertSeverity.WARNING if state is not TradingState.ACTIVE else AlertSeverity.INFO,
            f"trading state of {strategy or 'the book'} set to {state.name} by {set_by or '?'}{_because(reason)}",
            subject=strategy or "", now=self._clock.now())
        return state

    async def set_override(self, draft: Override) -> Override:
        """Validate, store durably, apply. `draft.id` and `created_at` are assigned here."""
        now = self._clock.now()
        violations = validate_override(draft, strategies=set(self._strategy_symbols),
                                       symbols=set(self.config.portfolio.symbols), now=now)
        if violations:
            raise InvalidInput(violations)
        override = dataclasses.replace(draft, id=f"ovr-{uuid.uuid4().hex[:12]}", created_at=now)
        with self._store_errors():
            await self._store.add_override(override)
        self.success.record_override()
        self._alerts.raise_alert(
            AlertKind.OVERRIDE_SET, AlertSeverity.INFO,
            f"override {override.id} ({override.kind.value} on "
            f"{' '.join(filter(None, (override.scope.value, override.target)))}) "
            f"set by {override.set_by or '?'}{_because(override.reason)}",
            subject=override.id, now=now)
        await self._overrides_changed(now, f"override {override.id} set")
        return override

    async def clear_override(self, override_id: str, *, cleared_by: str = "", reason: str = "") -> bool:
        now = self._clock.now()
        with self._store_errors():
            removed = await self._store.remove_override(override_id)
        if removed is None:
            return False
        self._alerts.raise_alert(AlertKind.OVERRIDE_ENDED, AlertSeverity.INFO,
                                 f"override {override_id} cleared by {cleared_by or '?'}{_because(reason)}",
                                 subject=override_id, now=now)
        await self._overrides_changed(now, f"override {override_id} cleared")
        return True

    async def _overrides_changed(self, now: float, cause: str) -> None:
        received = time.monotonic()
        self._refresh_overrides(now, cause)
        await self._recompute_now()
        self._after_recompute(received)
        self._schedule_override_expiry()

    def _refresh_overrides(self, now: float, cause: str | None = None) -> None:
        """The overrides in force now; `cause`, the operator's change that may have moved them."""
        if cause is not None:
            if self._targets_before_change is None:
                self._targets_before_change = self._pipeline.snapshot
            self._changes_not_recommended.append(cause)
        self._overrides = active_overrides(self._store.overrides(), now)
        self._restricted = frozenset(self.config.limits.restricted_symbols) | restricted_symbols(self._overrides)
        self._pipeline.set_overrides(self._overrides)
        if cause is not None:
            self._change_to_measure = self._pipeline.changes_made

    async def _expire_overrides(self, now: float) -> bool:
        """Remove overrides whose expiry has passed; True if any did. One past its expiry is out of
        force at once, even while the store refuses to remove it (StateUnavailable)."""
        expired = [o for o in self._store.overrides() if not o.active_at(now)]
        try:
            for override in expired:
                with self._store_errors():
                    await self._store.remove_override(override.id)
                self._alerts.raise_alert(AlertKind.OVERRIDE_ENDED, AlertSeverity.INFO,
                                         f"override {override.id} expired", subject=override.id, now=now)
        finally:
            if expired:
                self._refresh_overrides(now, "an override's expiry")
        return bool(expired)

    async def expire_overrides(self) -> None:
        """Apply expiries now (the timer calls this at the earliest expiry), then wait for the next
        one: also when none was due yet, as when the wall clock stepped back after the timer was
        set (the timer runs on the monotonic clock), or a store error left one in place."""
        now = self._clock.now()
        try:
            if await self._expire_overrides(now):
                await self._overrides_changed(now, "an override's expiry")
        except StateUnavailable:  # alerted; tried again a second later, not at once in a loop
            self._schedule_override_expiry(at_least=OVERRIDE_EXPIRY_RETRY)
            return
        self._schedule_override_expiry()

    def _schedule_override_expiry(self, at_least: float = 0.0) -> None:
        """At the next expiry of an override the store holds: also one past its expiry that the
        store refused to remove (out of force already, and removed at the next try)."""
        if self._override_timer is not None:
            self._override_timer.cancel()
            self._override_timer = None
        expiries = [o.expires_at for o in self._store.overrides() if o.expires_at is not None]
        if expiries:
            delay = max(min(expiries) - self._clock.now(), at_least)
            self._override_timer = asyncio.get_running_loop().call_later(
                delay, lambda: asyncio.ensure_future(self.expire_overrides()))

    def trigger_rebalance(self, reason: str, requested_by: str) -> Recommendation:
        return self._recommend([self._triggers.manual(f"{reason} (requested by {requested_by or '?'})")])

    def on_reload(self, prepare: Callable[[Config], T], apply: Callable[[T], str | None]) -> None:
        """At each reload, `prepare(new config)` before the swap, in a worker thread (a ConfigError
        refuses the reload), and `apply(what it returned)` at the swap, on the event loop; `apply`
        returns what it changed, if anything, to be named among the changes."""
        self._reload_steps.append((prepare, apply))

    async def reload_config(self, requested_by: str) -> BudgetSnapshot:
        """Re-read the config file; swap it in if valid and hot-swappable, else keep the old one.

        All or nothing, and always recorded: a reload runs to its end as a task of its own, one at
        a time, whether or not its caller still waits (a client's deadline ends the call, never a
        reload half-way, its config in force but unlogged)."""
        return await self._reloads.run(lambda: self._reload(requested_by))

    async def _reload(self, requested_by: str) -> BudgetSnapshot:
        try:
            if self._config_path is None:
                raise ConfigError(["this sidecar was not started from a config file"])
            # In a worker thread: parsed on the event loop, a 2 MB file held every check up for 19 s.
            new = await asyncio.to_thread(_refusing_unexpected, "read the file",
                                          lambda: read_new_config(self._config_path, self.config))
            # So are the reload's own steps, which read files (the tokens, and who may change them: a
            # reviewer saw a slow user database hold a check up for a second). Before the checks,
            # which see the state the swap then changes, with no await between.
            values = await asyncio.to_thread(self._prepare_steps, new)
            problems = (restart_only_changes(self.config, new) + self._holdings_stranded_by(new)
                        + self._controls_stranded_by(new))
            if problems:
                raise ConfigError(problems)
            if isinstance(values, ConfigError):
                raise values
            prepared = [(apply, value) for (_, apply), value in zip(self._reload_steps, values)]
            # The reload's own steps (the tokens) before the swap: one that fails refuses the reload.
            try:
                steps = [what for apply, value in prepared if (what := apply(value))]
            except ValueError as error:
                raise ConfigError([f"the reload could not be applied: {error}"]) from None
        except ConfigError as refused:
            refusal = ConfigRefused(refused.errors)
            self._alerts.raise_alert(AlertKind.CONFIG_RELOAD_REFUSED, AlertSeverity.WARNING,
                                     f"config reload of {self._config_path} asked by {requested_by} refused: "
                                     + "; ".join(refusal.errors),
                                     now=self._clock.now())
            raise refusal from None
        return await self._swap_in(new, steps, requested_by)  # checked and swapped with no await between

    def _prepare_steps(self, new: Config) -> list[Any] | ConfigError:
        """What each reload step prepares for `new`, or the refusal of the first that refuses it (or
        fails otherwise)."""
        try:
            return _refusing_unexpected("be prepared", lambda: [prepare(new) for prepare, _ in self._reload_steps])
        except ConfigError as refused:
            return refused

    async def _swap_in(self, new: Config, steps: list[str], requested_by: str) -> BudgetSnapshot:
        """`steps`: what the reload's own steps changed (named among the changes)."""
        received = time.monotonic()
        keys = changed_keys(self.config, new)
        changed = keys + steps
        interval = self.config.risk_budgeting.monitoring_interval
        self._apply_config(new)
        if new.risk_budgeting.monitoring_interval != interval:
            self._monitoring_interval_changed.set()
        # Only one that changed the config may have moved targets (a tester saw a reload that changed
        # nothing, or only rotated a token, named among an override's causes).
        self._refresh_overrides(self._clock.now(), "a config reload" if keys else None)
        if not changed:  # found by a tester: a reloader's SIGHUP at every sync raised an alert each, which
            log.info("config_reloaded", path=self._config_path, changed=[], requested_by=requested_by)
            return self.require_snapshot()  # pushed every other alert out, and a new budget version each
        try:
            await self._recompute_now()
            self._after_recompute(received)
        finally:  # the new config is in force from the swap on: recorded even if the recompute failed
            self._record_reload(changed, requested_by)
        return self.require_snapshot()

    def _recommend_moved_targets(self, recommended: bool) -> None:
        """Operator changes (overrides set, cleared or expired, reloads) that moved a strategy's
        targets by more than drift_threshold since the budget before the first of them are
        recommended as MANUAL: drift compares mixes only, and would not tell a rebalancer of a
        change of size. Measured once the budget is computed with the last of them (a budget
        computed for a price meanwhile may not have it); kept until recommended, so that small
        changes add up, and a refusal of the store is tried again at the next recompute. A
        recommendation just `recommended` (a regime change, say) carries the new targets."""
        before = self._targets_before_change
        if before is None:
            return
        measurable = (self._change_to_measure is not None
                      and self._pipeline.changes_in_snapshot >= self._change_to_measure)
        after = self.require_snapshot()
        if recommended and not measurable:  # the rebalancer has these targets; the change is to come
            self._targets_before_change = after
            return
        if not recommended:
            if not measurable:
                return
            threshold = self.config.risk_budgeting.rebalancing_triggers.drift_threshold
            moved = sorted(((change, strategy) for strategy, change in target_changes(before, after).items()
                            if change > threshold), reverse=True)
            if not moved:  # measured from the same budget again at the next change
                self._change_to_measure = None
                return
            causes = "; ".join(dict.fromkeys(self._changes_not_recommended))
            try:
                self._recommend([self._triggers.manual(f"{causes} moved the targets: " + ", ".join(
                    f"{strategy} by {change:.0%} of its target" for change, strategy in moved))])
            except StateUnavailable as error:  # alerted; tried again at the next recompute
                log.warning("recommendation_not_recorded", error=str(error))
                return
        self._targets_before_change, self._changes_not_recommended, self._change_to_measure = None, [], None

    def _record_reload(self, changed: list[str], requested_by: str) -> None:
        """An alert and a log line naming the keys the reload changed and who asked: the audit of a reload."""
        shown = capped(changed, MAX_PROBLEM_LINE_LENGTH)
        self._alerts.raise_alert(AlertKind.CONFIG_RELOADED, AlertSeverity.WARNING,
                                 f"config reloaded from {self._config_path} by {requested_by}: "
                                 f"changed {', '.join(shown)}", now=self._clock.now())
        log.warning("config_reloaded", path=self._config_path, budget_version=self._pipeline.version,
                    changed=shown, requested_by=requested_by)

    def _holdings_stranded_by(self, new: Config) -> list[str]:
        """What the book holds that the new config has no place for (a strategy dropped or
        renamed, a symbol moved to another strategy): a reload to it is refused."""
        return [stranded_by_reload(holding, new)
                for holding in holdings_outside(self._store.book, new, self._clock.now())]

    def _controls_stranded_by(self, new: Config) -> list[str]:
        """A halt or an override on a strategy the new config drops (or renames): in force for no
        order, impossible to clear, and back in force with the name. (The symbols cannot change.)"""
        strategies = set(new.portfolio.strategies)
        problems = [f"portfolio.strategies: {name!r} is {state.name}; set it ACTIVE before removing the strategy"
                    for name, state in self._store.strategy_states().items() if name not in strategies]
        problems += [f"override {o.id} is on strategy {o.target!r}; clear it before removing the strategy"
                     for o in self._store.overrides() if o.active_at(self._clock.now())
                     and o.scope is OverrideScope.STRATEGY and o.target not in strategies]
        return problems

    def _refuse_holdings_outside_config(self) -> None:
        """At start: a state holding positions or reservations the config has no place for (its
        strategy or symbol changed while the sidecar was down) stops the start, naming them."""
        stranded = holdings_outside(self._store.book, self.config, self._clock.now())
        if stranded:
            raise HoldingsOutsideConfig(stranded_at_start(stranded, self.config))

    # -- the hot path ----------------------------------------------------------------------

    async def check_trade(self, order: OrderRequest) -> TradeDecision:
        """Approve, resize or reject; reserve what was approved unless dry_run."""
        if self._store.shares_limits and not order.dry_run:  # the firm-wide hold awaits the server between
            async with self._one_shared_check:  # the decision and the reservation: checks meanwhile would not see it
                return await self._check_trade(order)
        return await self._check_trade(order)

    async def _check_trade(self, order: OrderRequest) -> TradeDecision:
        now = self._clock.now()
        began = time.perf_counter()
        kept = self._store.remembered(order.client_order_id)
        replay = False
        if kept is not None:
            result, replay = self._repeated(order, kept.decision, kept.order, now)
            if replay and result.reserved and self._store.shares_limits and not self._store.available:
                # Found by a tester: a halt set through another sidecar meanwhile may not have
                # reached this one, which then sent the approval again through it.
                result, replay = self._state_unavailable(result, StoreError(
                    "the shared state is unavailable: a halt set through another sidecar cannot be "
                    "ruled out")), False
            elif replay and result.reserved and (
                    blocked := self._blocked(order, result.approved_quantity, reserved_here=True)) is not None:
                result, replay = await self._withdrawn(order, result, *blocked), False
        else:
            result = self._decide(order, now)
            if not order.dry_run:
                result = await self._reserve(order, result, now)
            elif self._store.shares_limits and result.approved_quantity > 0 and result.shadow_decision is None:
                result = await self._dry_run_firm_wide(order, result, now)
        if replay:
            self.metrics.replays.inc()  # the first answer again: not a new decision
        else:
            self.metrics.observe_check(result, time.perf_counter() - began)
        self._store.log_decision(DecisionRecord(now, order, result))
        return result

    def _repeated(self, order: OrderRequest, earlier: TradeDecision, earlier_order: OrderRequest,
                  now: float) -> tuple[TradeDecision, bool]:
        """A client order id seen before: the first answer again (a replay: True), or a refusal."""
        if not earlier_order.same_order_as(order):
            return self._id_reused(order, earlier), False
        if earlier.reserved and not self._still_reserved(order.client_order_id, earlier.approved_quantity, now):
            return self._reservation_ended(order, earlier), False
        return dataclasses.replace(earlier, replayed=True), True

    def _blocked(self, order: OrderRequest, quantity: float, *, reserved_here: bool) -> tuple[ReasonCode, str] | None:
        """Why an order of `quantity`, approved, may not go out now, if it may not: its strategy
        (or the book) halted or set to reducing, or its symbol restricted, since it was decided,
        and it does not only reduce the position (`reserved_here`: its own reservation is in the
        book, set aside). The kill switch wins over an approval: a client retrying after a lost
        reply, or a check awaiting the shared server as the halt lands, would otherwise send the
        order through it."""
        state, scope = self._state_in_force(order.strategy)
        if state is TradingState.HALTED:
            why = ReasonCode.TRADING_HALTED, f"trading of {scope} is halted"
        elif state is TradingState.REDUCING:
            why = ReasonCode.TRADING_REDUCING, f"trading of {scope} is reducing-only"
        elif order.symbol in self._restricted:
            why = ReasonCode.RESTRICTED_SYMBOL, f"{order.symbol} is restricted"
        else:
            return None
        exposure = self._store.book.exposure(order.strategy, order.symbol)
        if reserved_here:
            exposure = (dataclasses.replace(exposure, pending_buy=exposure.pending_buy - quantity) if order.side.sign > 0
                        else dataclasses.replace(exposure, pending_sell=exposure.pending_sell - quantity))
        if only_reduces(exposure, order.side.sign, quantity, self.config.portfolio.lot_size(order.symbol)):
            return None
        return why

    def _state_in_force(self, strategy: str | None) -> tuple[TradingState, str]:
        """The trading state an order of `strategy` is under, and whose it is: "the book" when the
        book's state binds (a tester read a book's halt as the strategy's), else the strategy's."""
        state = self._store.trading_state(strategy)
        return state, "the book" if strategy is None or self._store.trading_state() is state else strategy

    async def _withdrawn(self, order: OrderRequest, earlier: TradeDecision, code: ReasonCode,
                         why: str) -> TradeDecision:
        """The answer to a replay `_blocked` stops: rejected, its reservation released (not by a
        dry run, which changes nothing: found by a reviewer, one freed a working order's budget)."""
        released = False
        if not order.dry_run:
            with contextlib.suppress(StateUnavailable):  # left to expire; rejected all the same
                released = await self.release_order(order.client_order_id)
        held = "its reservation is released" if released else "its reservation is left as it is, to expire"
        return self._no_longer(order, earlier, code, f"{why} since order {order.client_order_id!r} was approved: "
                               f"it may not go out, and {held} (a reducing order passes, under a new "
                               "client_order_id)")

    async def _reserve(self, order: OrderRequest, result: TradeDecision, now: float) -> TradeDecision:
        """Hold what was approved against the firm-wide limits, then record the check durably."""
        ttl = self.config.limits.reservation_ttl
        held_elsewhere = False
        try:
            if result.reserved and self._store.shares_limits:
                firm = self._firm_limits(order, result)
                grant = await self._store.hold_firm_wide(order, result.approved_quantity, firm,
                                                         expires_at=now + ttl)
                held_elsewhere = True
                if order.symbol not in self._strategy_symbols.get(order.strategy, ()):
                    raise StoreError(f"a config reload took {order.symbol!r} out of strategy "
                                     f"{order.strategy!r} while the order was held firm-wide")
                blocked = self._blocked(order, result.approved_quantity, reserved_here=False)
                if blocked is not None:  # halted or restricted while the shared server was asked
                    await self._store.release_firm_wide(order.client_order_id)
                    held_elsewhere = False
                    code, why = blocked
                    result = self._no_longer(order, result, code, f"{why} since order {order.client_order_id!r} "
                                             "was checked: it may not go out")
                else:
                    result = firm_wide_decision(result, grant, firm, shadow=self.config.sidecar.shadow_mode)
            reservation = None
            if result.reserved:
                reservation = Reservation(order.client_order_id, order.strategy, order.symbol,
                                          order.side.sign * result.approved_quantity, now + ttl)
            await self._store.record_check(order, result, reservation, forget_after=now + 2 * ttl, decided_at=now)
        except OrderIdReused:  # another sidecar holds this id for a different order
            return self._id_reused(order, result)
        except GrantSpent:  # granted before this sidecar forgot the id, and used since
            return self._reservation_ended(order, result)
        except TradingStopped as stopped:  # set through another sidecar, not yet heard of here
            return self._stopped_elsewhere(order, result, stopped)
        except StoreError as exc:
            if held_elsewhere:
                with contextlib.suppress(StoreError):
                    await self._store.release_firm_wide(order.client_order_id)
            return self._state_unavailable(result, exc)
        return result

    async def _dry_run_firm_wide(self, order: OrderRequest, result: TradeDecision, now: float) -> TradeDecision:
        """A dry run's answer cut to what the firm-wide limits would grant now: found by a tester,
        a dry run approved 5,000 where the same order, checked, was resized to the 50 the firm had
        room for. Nothing is held or remembered on the shared server."""
        firm = self._firm_limits(order, result)
        try:
            grant = await self._store.hold_firm_wide(order, result.approved_quantity, firm,
                                                     expires_at=now + self.config.limits.reservation_ttl, dry_run=True)
        except TradingStopped as stopped:
            return self._stopped_elsewhere(order, result, stopped)
        except StoreError as exc:
            return self._state_unavailable(result, exc)
        return firm_wide_decision(result, grant, firm, shadow=self.config.sidecar.shadow_mode)

    def _firm_limits(self, order: OrderRequest, result: TradeDecision) -> FirmLimits:
        snapshot = self.require_snapshot()
        return FirmLimits(reference_price=result.reference_price,
                          lot_size=self.config.portfolio.lot_size(order.symbol),
                          symbol_limit=snapshot.symbols[order.symbol].max_position_notional,
                          total_limit=snapshot.max_total_gross_exposure,
                          adds_exposure=not result.reduces_exposure)

    def _stopped_elsewhere(self, order: OrderRequest, result: TradeDecision, stopped: TradingStopped) -> TradeDecision:
        """The answer when the shared server holds a halt or reducing state not heard of here yet."""
        code = ReasonCode.TRADING_HALTED if stopped.state == TradingState.HALTED.name else ReasonCode.TRADING_REDUCING
        return self._no_longer(order, result, code, f"{stopped}: order {order.client_order_id!r} adds "
                               "exposure and may not go out (a reducing order passes)")

    @property
    def subscriber_count(self) -> int:
        """Recommendation streams attached now."""
        return self._hub.subscriber_count

    def refresh_metrics(self, report: UtilizationReport | None = None) -> None:
        """Bring the gauges and the success metrics up to date (each scrape, status read and
        monitoring tick)."""
        report = report or self.utilization()
        self._observe_success(report, self._clock.now())
        metrics = self.metrics
        metrics.set_utilization({("total", "book"): report.total.utilization,
                                 **{("strategy", name): usage.utilization for name, usage in report.strategies.items()},
                                 **{("symbol", name): usage.utilization for name, usage in report.symbols.items()}})
        metrics.subscribers.set(self.subscriber_count)
        metrics.subscriber_lag.set(max(self._hub.lags(), default=0))
        backlog, overflowed = self._store.decision_log_stats()
        metrics.decision_log_backlog.set(backlog)
        metrics.decision_log_overflowed.set(overflowed)
        if (free := self._disk_free()) is not None:
            metrics.disk_free.labels(self.config.store.path).set(free)
        metrics.overrides.set(len(self._overrides))
        summary = self.success.summary(self._clock.now())
        for name in ("budget_utilization", "regime_response_p50", "regime_response_max",
                     "overrides_per_day", "capital_efficiency", "return_since_start"):
            metrics.success.labels(name).set(getattr(summary, name))

    def _decide(self, order: OrderRequest, now: float) -> TradeDecision:
        snapshot = self._pipeline.snapshot
        known = order.strategy in self._strategy_symbols
        state, scope = self._state_in_force(order.strategy if known else None)
        evaluation = evaluate(
            order, snapshot=snapshot, book=self._store.book, prices=self._checked_prices,
            limits=self.config.limits, trading_state=state, trading_scope=scope,
            restricted=self._restricted, lot_size=self.config.portfolio.lot_size(order.symbol),
            known_strategies=self._strategy_symbols, traded_elsewhere=self._traded_elsewhere, now=now)
        decision, approved, reasons = evaluation.decision, evaluation.approved_quantity, evaluation.reasons
        shadow_decision, bookable = None, True
        if self.config.sidecar.shadow_mode and decision is not Decision.APPROVED:
            # An order for a strategy or symbol the config does not have is approved too, but not
            # reserved: the book has no place for it, and every later check would fail on it.
            bookable = not any(reason.code in UNBOOKABLE for reason in reasons)
            shadow_decision = decision
            reasons = reasons + (Reason(ReasonCode.SHADOW_MODE, f"shadow mode: would have been {decision.value}"
                                        + ("" if bookable else "; not reserved: not in the config")),)
            decision, approved = Decision.APPROVED, order.quantity
        reserve = approved > 0 and not order.dry_run and bookable
        return TradeDecision(
            client_order_id=order.client_order_id, decision=decision,
            requested_quantity=order.quantity, approved_quantity=approved, reasons=reasons,
            budget_version=snapshot.version if snapshot else 0,
            regime=snapshot.regime if snapshot else None,
            budget_computed_at=snapshot.computed_at if snapshot else 0.0,
            reduces_exposure=evaluation.reduces_exposure,
            reference_price=evaluation.reference_price, reserved=reserve,
            reservation_expires_at=now + self.config.limits.reservation_ttl if reserve else None,
            shadow_decision=shadow_decision,
            override_ids=override_ids_for(self._overrides, order.strategy, order.symbol) if self._overrides else ())

    def _state_unavailable(self, decision: TradeDecision, error: StoreError) -> TradeDecision:
        self.metrics.store_errors.inc()
        self._alert_failed_check(f"a reservation could not be recorded: {error}")
        return dataclasses.replace(
            decision, decision=Decision.REJECTED, approved_quantity=0.0, reserved=False,
            reservation_expires_at=None, shadow_decision=None, replayed=False,
            reasons=(Reason(ReasonCode.STATE_UNAVAILABLE,
                            f"the reservation could not be recorded ({error}): rejected (fail closed)"),))

    def _alert_failed_check(self, message: str) -> None:
        """One alert per cause and minute: every check fails alike while a store is away, and
        one alert each would push every other alert out of the book (the metric counts them)."""
        now = self._clock.now()
        if self._failed_check_alert is not None:
            last_message, raised_at = self._failed_check_alert
            if message == last_message and now - raised_at < FAILED_CHECK_ALERT_INTERVAL:
                return
        self._failed_check_alert = (message, now)
        self._alerts.raise_alert(AlertKind.STORE_ERROR, AlertSeverity.CRITICAL, message, now=now)

    def _still_reserved(self, client_order_id: str, approved: float, now: float) -> bool:
        """Whether the order's reservation still holds all it approved: found by a reviewer, a repeat
        after a part fill got the whole approval back (the shared server refuses it)."""
        reservation = self._store.book.reservation(client_order_id)
        return (reservation is not None and reservation.expires_at > now
                and abs(reservation.signed_quantity) >= approved)

    def _id_reused(self, order: OrderRequest, earlier: TradeDecision) -> TradeDecision:
        return self._no_longer(order, earlier, ReasonCode.ORDER_ID_REUSED,
                               f"client_order_id {order.client_order_id!r} was used for a different order")

    def _reservation_ended(self, order: OrderRequest, earlier: TradeDecision) -> TradeDecision:
        """The same order again once its reservation was filled, released or expired: its
        approval no longer holds any budget, so sending it now would spend budget unchecked."""
        return self._no_longer(order, earlier, ReasonCode.ORDER_ID_REUSED,
                               f"order {order.client_order_id!r} was approved, but its reservation has ended "
                               "(filled, released or expired): check it again under a new client_order_id")

    @staticmethod
    def _no_longer(order: OrderRequest, earlier: TradeDecision, code: ReasonCode, why: str) -> TradeDecision:
        """A rejection where `earlier` answered this client_order_id: a new answer, not a replay."""
        return dataclasses.replace(
            earlier, decision=Decision.REJECTED, requested_quantity=order.quantity,
            approved_quantity=0.0, reserved=False, reservation_expires_at=None,
            shadow_decision=None, replayed=False, reasons=(Reason(code, why),))

    @staticmethod
    def _log_decision_fallback(record: dict) -> None:
        """Where decisions go when the decision log's queue is full: not lost, logged."""
        decision_fallback_log.warning("decision_log_overflow", **record)
