"""The shared store: a sidecar's own state in SQLite, the firm's in Redis or Valkey.

Several sidecars (one per trading process) point at one Redis/Valkey server. What
they share lives there, behind `RedisLedger`: every strategy's positions and every
open reservation, summed per symbol and for the firm, so that the firm-wide limits
are enforced atomically by one Lua script per order; and the operator state
(overrides, trading states), announced on a channel so that a change made through
any sidecar reaches all of them.

What is a sidecar's own stays in its SQLite file, as with the embedded store: its
remembered decisions, recommendation log and decision log, and a mirror of its
book and of the operator state, from which the hot path reads.

Each change goes to Redis first, then to the local mirror: if Redis cannot be
reached within its timeout, the change is refused (LedgerUnavailable, a
StoreError) and nothing local moves, so a check fails closed. The store then tells
the sidecar it is unavailable, probes the server, and when it answers again
reconciles: it re-asserts this sidecar's open reservations and positions (each
strategy is traded through exactly one sidecar, whose book is the truth for it),
re-reads the operator state, and tells the sidecar it is back.

A server that lost its data (restarted without persistence) must not be taken at its
word: its empty operator state would lift every halt and override. Each sidecar keeps a
marker on the server (`RedisLedger.asserted`), set once it has re-asserted what it holds;
before it takes the operator state from the server (at every change announced, and when
the change channel reconnects, even if this sidecar made no call during the outage), and
every second besides (a flush breaks no connection), it checks its marker. Missing, the server lost its data: the sidecar re-asserts its book and
the overrides and trading states it holds (every sidecar holds a copy of all of them),
then marks. Present, the server's word stands, so that a change made through another
sidecar (an override cleared) reaches this one.

Until every sidecar has put its book back, the ledger undercounts what the firm holds: the
first sidecar to find its marker gone (one that had marked before: a new sidecar cannot
tell a loss from a first start) opens a window of `shared.resync_window` seconds in which
the server refuses new grants (`RedisLedger.begin_resync`), and says so in an alert.

The reservations this sidecar makes on the server are held by its instance id, kept in
its state file so that a restart keeps them its own.

Clocks: another sidecar frees this one's reservations by the server's clock, trusting this
one's to run at most MAX_CLOCK_LAG_MS behind it; so the store measures the lag (when it
reconciles and at every monitoring tick) and refuses firm-wide grants past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..engine.config import SharedSettings, StoreSettings
from ..engine.types import (
    FirmGrant, FirmLimits, Fill, OrderRequest, Override, Position, Reservation, Side, TradingState,
)
from .errors import StoreError
from .redis_ledger import (
    CHANGE_TRADING_STATE, MAX_CLOCK_LAG_MS, MAX_SAFE, Grant, GrantsPaused, LedgerUnavailable, OrderIdReused,
    RedisLedger, StrategiesClaimed, TradingStopped, cover_lots, limit_cents, lot_cents, raise_if_cancelled,
)
from .serialization import from_dict, to_json
from .sqlite import SqliteStore

_log = logging.getLogger(__name__)
_BOOK = ""
PROBE_INTERVAL = 0.25
"""Seconds between two pings of an unavailable server."""
MARKER_CHECK_INTERVAL = 1.0
"""Seconds between two checks that the server still holds this sidecar's marker: a server
flushed (or failed over) without a restart breaks no connection, and a sidecar that makes no
call to it (idle, or at its limits) would never put its book back."""


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


class RedisStore(SqliteStore):
    shares_limits = True

    def __init__(self, settings: StoreSettings, shared: SharedSettings, *,
                 lot_size_of: Callable[[str], float], price_of: Callable[[str], float | None],
                 live_price_of: Callable[[str], float | None],
                 strategies: Sequence[str], now: Callable[[], float], lot_sizes: str = "",
                 fallback_log: Callable[[dict[str, Any]], None] | None = None,
                 busy_timeout: float = 5.0) -> None:
        super().__init__(settings, fallback_log=fallback_log, busy_timeout=busy_timeout)
        self.ledger = RedisLedger(shared.url, prefix=shared.prefix, timeout=shared.timeout,
                                  instance=self._instance_id())
        self._lot_size_of = lot_size_of
        self._price_of = price_of
        self._live_price_of = live_price_of
        """Values put on the server: live prices; `price_of`'s estimate only where the server has
        none either (a restart before live prices would otherwise revalue the firm's book at a
        warm-up's synthetic prices)."""
        self._strategies = tuple(strategies)
        self._lot_sizes = lot_sizes
        """The config's lot sizes as text: every sidecar sharing the server must count in the same."""
        self._now = now
        self._on_change: Callable[[], None] = lambda: None
        self._on_availability: Callable[[bool], None] = lambda available: None
        self._on_data_loss: Callable[[str], None] = lambda message: None
        self._on_refusal: Callable[[str | None], None] = lambda reason: None
        self._resync_window_ms = _ms(shared.resync_window)
        self._grants_paused_until: float | None = None
        """Until when (the event loop's clock) the server grants nothing after a loss of its data;
        None while it grants."""
        self._available = False
        self._unavailable_because = "not connected yet"
        self._marked: bool | None = None
        """Whether this sidecar ever marked a server (see `_marked_before`); None until read."""
        self._last_failure = ""
        """The last failure of a background step logged (see `_failed_once`)."""
        self._refused_strategies: set[str] = set()
        """The strategies another sidecar held at this one's last claim (see `_claim`)."""
        self._tasks: list[asyncio.Task] = []
        self._probe: asyncio.Task | None = None
        self._marks_due: dict[str, int] = {}
        """Marks (lot_cents) not yet sent to the server, the latest per symbol."""
        self._marking: asyncio.Task | None = None
        self._reconciling = asyncio.Lock()
        self._clock_lag_ms = 0
        """How far this sidecar's clock ran behind the server's when last measured."""

    def _instance_id(self) -> str:
        """This sidecar's id on the server, made once and kept in its state file."""
        with self._change() as db:
            db.execute("CREATE TABLE IF NOT EXISTS shared_instance (id TEXT NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS shared_marked (marked INTEGER NOT NULL)")
            if db.execute("SELECT 1 FROM shared_instance").fetchone() is not None:
                # an id made before markers were remembered: it has marked a server since
                db.execute("INSERT INTO shared_marked SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM shared_marked)")
            db.execute("INSERT INTO shared_instance SELECT ? "
                       "WHERE NOT EXISTS (SELECT 1 FROM shared_instance)", (uuid.uuid4().hex,))
            [(instance,)] = db.execute("SELECT id FROM shared_instance").fetchall()
        return instance

    def _marked_before(self) -> bool:
        """Whether this sidecar ever marked a server: then a missing marker means a lost one.
        Read once, and remembered: found by a reviewer, a state file lost under the sidecar
        refused this read, and no book was put back on a server that lost its data."""
        if self._marked is None:
            with self._change() as db:
                self._marked = db.execute("SELECT 1 FROM shared_marked").fetchone() is not None
        return self._marked

    def _remember_marked(self) -> None:
        if not self._marked_before():
            with self._change() as db:
                db.execute("INSERT INTO shared_marked SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM shared_marked)")
            self._marked = True

    # -- lifecycle -------------------------------------------------------------------------

    def watch(self, *, on_change: Callable[[], None], on_availability: Callable[[bool], None],
              on_data_loss: Callable[[str], None] = lambda message: None,
              on_refusal: Callable[[str | None], None] = lambda reason: None) -> None:
        super().watch(on_change=on_change, on_availability=on_availability, on_data_loss=on_data_loss,
                      on_refusal=on_refusal)
        self._on_refusal = on_refusal
        self._on_change = on_change
        self._on_availability = on_availability
        self._on_data_loss = on_data_loss

    @property
    def available(self) -> bool:
        """The shared server answers and grants, and the local state file takes changes."""
        return self._available and super().available and self._grants_paused_until is None

    def _grants_paused(self, paused: GrantsPaused) -> None:
        """Found by a tester: while the server grants nothing after a loss of its data, every
        check fails closed, yet health said SERVING. Told (as a refusal) until the window closes."""
        loop = asyncio.get_running_loop()
        left = (paused.until_ms - _ms(self._now()) - self._clock_lag_ms) / 1000  # the server's clock
        until = loop.time() + left
        if left <= 0 or until <= (self._grants_paused_until or 0.0):
            return
        self._grants_paused_until = until
        self._on_refusal(str(paused))
        loop.call_later(left, self._grants_resumed, until)

    def _grants_resumed(self, until: float) -> None:
        if self._grants_paused_until == until:  # not moved on by a later window
            self._grants_paused_until = None
            if self._journal.refused is None:  # else its own recovery tells
                self._on_refusal(None)

    async def start(self) -> None:
        """Connect, reconcile, listen for changes. An unreachable server is probed until it answers."""
        try:
            await self.ledger.connect()
            await self._reconcile()
            self._available = True
        except LedgerUnavailable as error:
            self._lost(error)
        self._tasks.append(asyncio.create_task(self.ledger.listen(self._changed), name="ledger-listen"))
        self._tasks.append(asyncio.create_task(self._watch_marker(), name="ledger-marker"))

    async def stop(self) -> None:
        for task in [*self._tasks, *([self._probe] if self._probe else [])]:
            task.cancel()
        await asyncio.gather(*self._tasks, *([self._probe] if self._probe else []), return_exceptions=True)
        with contextlib.suppress(LedgerUnavailable):  # its strategies, free for the sidecar that takes them over
            await self.ledger.claim_strategies(())
        await self.ledger.close()
        self.close()

    def _changed(self, kind: str) -> None:
        """Another sidecar changed operator state (or the channel reconnected): re-read it."""
        self._tasks.append(asyncio.create_task(self._refresh_operator_state()))
        self._tasks = [task for task in self._tasks if not task.done()]

    async def _refresh_operator_state(self, *, reconciled: bool = False) -> None:
        """Make the local mirror of the operator state equal to the server's, once the server
        holds this sidecar's marker (see the module's docstring); tell the sidecar if it changed."""
        try:
            if not reconciled:
                await self._reconcile(only_if_lost=True)
            states = await self.ledger.trading_states()
            overrides = await self.ledger.overrides()
        except LedgerUnavailable as error:
            raise_if_cancelled()  # redis-py turned the cancellation into its error
            self._lost(error)
            return
        changed = False
        wanted = {strategy or None: TradingState[name] for strategy, name in states.items()}
        for strategy in {None, *self._strategy_states, *wanted}:
            state = wanted.get(strategy, TradingState.ACTIVE)
            held = self.trading_state() if strategy is None else self.own_trading_state(strategy)
            if held is not state:
                await SqliteStore.set_trading_state(self, state, strategy)
                changed = True
        shared = [from_dict(Override, json.loads(text)) for text in overrides.values()]
        for override in self.overrides():
            if override not in shared:
                await SqliteStore.remove_override(self, override.id)
                changed = True
        for override in shared:
            if override not in self.overrides():
                await SqliteStore.add_override(self, override)
                changed = True
        if changed:
            self._on_change()

    async def _watch_marker(self) -> None:
        """Re-assert this sidecar's book as soon as the server lost it, calls or no calls; and
        read the operator state again, so that an override set through another sidecar reaches
        this one within a second even while the change channel is down (found by a tester: with
        it down, a restriction and a cap set elsewhere never arrived, and their orders were
        approved)."""
        while True:
            raise_if_cancelled()  # found in a CI run: a cancellation redis-py turned into its error was
            await asyncio.sleep(MARKER_CHECK_INTERVAL)  # caught below, and a stopping sidecar hung
            if not self._available:  # the probe reconciles
                continue
            try:
                await self._reconcile(only_if_lost=True)
                await self._refresh_operator_state(reconciled=True)
            except LedgerUnavailable as error:
                raise_if_cancelled()  # redis-py turned the cancellation into its error
                self._lost(error)
            except Exception as error:  # found by reviewers: a state file refusing a change ended this watch
                self._failed_once("the shared server's state could not be taken in", error)

    def _lost(self, error: LedgerUnavailable) -> None:
        """The server went away: say so once, and probe until it is back."""
        self._unavailable_because = str(error)
        if self._available or self._probe is None:
            _log.warning("shared state unavailable: %s", error)
        was_available, self._available = self._available, False
        if was_available:
            self._on_availability(False)
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._probe_until_back(), name="ledger-probe")

    def _failed_once(self, what: str, error: Exception) -> None:
        """Log a failure of a background step once, not at each of its retries."""
        message = f"{what} ({error}); trying again"
        if message != self._last_failure:
            self._last_failure = message
            _log.error("%s", message)

    async def _probe_until_back(self) -> None:
        while True:
            raise_if_cancelled()  # redis-py may have turned a cancellation into its error, caught below
            await asyncio.sleep(PROBE_INTERVAL)
            if not await self.ledger.ping():
                continue
            try:
                await self._reconcile()
            except LedgerUnavailable as error:
                self._unavailable_because = str(error)
                continue
            except Exception as error:  # a state file refusing the marker, say: tried again
                self._failed_once("this sidecar's book could not be put back on the shared server", error)
                continue
            self._available = True
            _log.warning("shared state available again")
            self._on_availability(True)
            await self._refresh_operator_state()
            if self._available:  # found by a reviewer: lost again meanwhile, no other probe was started
                return

    async def _reconcile(self, *, only_if_lost: bool = False) -> bool:
        """Re-assert this sidecar's book and, if the server lost this sidecar's marker, the
        operator state it holds; then mark. `only_if_lost`: nothing unless the marker is gone.
        Whether it was gone."""
        async with self._reconciling:
            lost = not await self.ledger.asserted()
            if only_if_lost and not lost:
                return False
            await self._claim()  # before any book of ours goes there, and before a loss is announced
            if lost and self._marked_before():
                await self._pause_grants()
            await self._measure_clock()
            await self._reassert_book()
            if lost:
                await self._reassert_operator_state()
            await self.ledger.mark_asserted()
            self._remember_marked()
            return lost

    async def _claim(self) -> None:
        """Own this sidecar's strategies on the server (see claim.lua). Refused once, it takes
        them over only from an owner that released them as it stopped, not where the server has
        no record of them: found by reviewers, when the server lost its data (flushed, or back
        empty from an outage) the refused sidecar claimed them first and put its own book for
        them there, the owner's positions gone. Restarted, it no longer waits."""
        if self._refused_strategies and (unclaimed := await self.ledger.unclaimed(sorted(self._refused_strategies))):
            raise StrategiesClaimed(self._refused_strategies, (
                f"shared.owned_strategies: the shared server has no record of who owns {', '.join(map(repr, unclaimed))} "
                f"(it lost its data), which another sidecar did: this one waits for that one to claim them again, "
                f"or for HSET {self.ledger.owners_key} <strategy> \"\" once it is known to be gone for good"))
        try:
            taken_over = await self.ledger.claim_strategies(self._strategies, self._lot_sizes)
        except StrategiesClaimed as refused:
            self._refused_strategies = set(refused.held)
            raise
        self._refused_strategies = set()
        await self._adopt_positions(taken_over)

    async def _adopt_positions(self, strategies: Sequence[str]) -> None:
        """Take in the positions on the server of strategies taken over from a sidecar that
        stopped, where this book holds none: found by a reviewer, put back empty, they were
        wiped there, and the firm undercounted until the trading process sent a snapshot."""
        mine = {position.strategy for position in self.book.positions()}
        wanted = [strategy for strategy in strategies if strategy not in mine]
        if not wanted:
            return
        held = await self.ledger.positions()
        for strategy in wanted:
            positions = [Position(p.strategy, p.symbol, p.lots * self._lot_size_of(p.symbol))
                         for p in held if p.strategy == strategy]
            if positions:
                await SqliteStore.set_positions(self, positions, strategy)
                _log.warning("took over strategy %s with its positions on the shared server: %s", strategy,
                             ", ".join(f"{p.symbol} {p.quantity:g}" for p in positions))

    async def _pause_grants(self) -> None:
        """The server lost its data: no new grant anywhere until every sidecar put its book back."""
        until_ms = await self.ledger.begin_resync(self._resync_window_ms)
        if until_ms is not None:
            self._grants_paused(GrantsPaused(until_ms))
        message = (str(GrantsPaused(until_ms)) if until_ms is not None else
                   "the shared server lost its data, and this sidecar found it only after the window "
                   "without grants had closed: its positions and reservations were missing there until now")
        _log.warning("%s", message)
        self._on_data_loss(message)

    async def _reassert_book(self) -> None:
        """Make the server agree with this sidecar's book: its positions, its reservations."""
        now_ms = _ms(self._now())
        await self.ledger.reclaim_expired(now_ms)
        held = {r.client_order_id for r in await self.ledger.reservations()}
        for reservation in self.book.reservations():
            if reservation.client_order_id in held or _ms(reservation.expires_at) <= now_ms:
                continue
            try:
                await self._hold(reservation.client_order_id, reservation.strategy, reservation.symbol,
                                 abs(reservation.signed_quantity), reservation.signed_quantity,
                                 _ms(reservation.expires_at))
            except (OrderIdReused, ValueError) as error:  # still granted there, or no price to value it
                _log.warning("reservation %s not re-asserted: %s", reservation.client_order_id, error)
        for strategy in self._strategies:
            try:
                await self._push_positions([p for p in self.book.positions() if p.strategy == strategy],
                                           strategy)
            except ValueError as error:
                _log.warning("positions of %s not re-asserted: %s", strategy, error)

    async def _reassert_operator_state(self) -> None:
        """Put the overrides and trading states this sidecar holds back on a server that lost
        them. ACTIVE is the absence of a state: one another sidecar put back stays."""
        states = [(None, self.trading_state()), *self._strategy_states.items()]
        for strategy, state in states:
            if state is not TradingState.ACTIVE:
                await self.ledger.set_trading_state(strategy or _BOOK, state.name)
        for override in self.overrides():
            await self.ledger.put_override(override.id, to_json(override))

    async def _measure_clock(self) -> None:
        """How far this sidecar's clock runs behind the server's, read after the server's: a
        slow answer never makes it look further behind than it is."""
        server_ms = await self.ledger.server_time_ms()
        self._clock_lag_ms = server_ms - _ms(self._now())

    async def _hold(self, client_order_id: str, strategy: str, symbol: str, quantity: float,
                    signed: float, expires_at_ms: int, limits: tuple[int, int] | None = None,
                    price: float | None = None, adds: bool = False, dry_run: bool = False) -> Grant:
        """Ask the server for a reservation within `limits` (symbol, total), or with none put
        back one granted before."""
        lot_size = self._lot_size_of(symbol)
        mark = price or self._live_price_of(symbol) or self._price_of(symbol) or 0.0
        symbol_limit, total_limit = limits or (MAX_SAFE, MAX_SAFE)
        return await self.ledger.check_and_reserve(
            client_order_id=client_order_id, strategy=strategy, symbol=symbol,
            side=Side.BUY if signed > 0 else Side.SELL, lots=cover_lots(quantity, lot_size),
            lot_cents=lot_cents(mark, lot_size), symbol_limit_cents=symbol_limit,
            total_limit_cents=total_limit, expires_at_ms=expires_at_ms, reassert=limits is None, adds=adds,
            dry_run=dry_run)

    async def _push_positions(self, positions: Sequence[Position], strategy: str | None) -> int:
        """`strategy`'s positions on the server. The symbols it held before are valued too: found
        by a tester, flattening one whose other holders' positions net to zero (the server had
        dropped its value) was refused for want of a mark."""
        rows = [(p.strategy, p.symbol, cover_lots(p.quantity, self._lot_size_of(p.symbol))) for p in positions]
        symbols = {p.symbol for p in positions} | {p.symbol for p in self.book.positions() if p.strategy == strategy}
        marks = self._marks(symbols, self._live_price_of)
        unpriced = symbols - marks.keys()
        if unpriced:  # the estimate only where the server has no value either (it lost its data)
            marks |= self._marks(unpriced - await self.ledger.valued(unpriced), self._price_of)
        return await self.ledger.set_positions(rows, strategy, marks)

    def _marks(self, symbols: Iterable[str], price_of: Callable[[str], float | None]) -> dict[str, int]:
        return {symbol: lot_cents(price, self._lot_size_of(symbol)) for symbol in symbols if (price := price_of(symbol))}

    async def _shared(self, call):
        """Run a call on the server; a lost server is noticed here and refuses the change."""
        try:
            return await call
        except LedgerUnavailable as error:
            self._lost(error)
            raise

    # -- the firm-wide check ---------------------------------------------------------------

    async def hold_firm_wide(self, order: OrderRequest, quantity: float, firm: FirmLimits,
                             expires_at: float, *, dry_run: bool = False) -> FirmGrant:
        self._require_reconciled("firm-wide grants fail closed")
        if self._clock_lag_ms > MAX_CLOCK_LAG_MS:
            raise StoreError(f"this sidecar's clock runs {self._clock_lag_ms / 1000:.3f} s behind the "
                             f"shared server's, more than the {MAX_CLOCK_LAG_MS / 1000:g} s allowed: "
                             f"firm-wide grants fail closed until it is set right")
        try:
            grant = await self._shared(self._hold(
                order.client_order_id, order.strategy, order.symbol, quantity, order.side.sign * quantity,
                _ms(expires_at), limits=(limit_cents(firm.symbol_limit), limit_cents(firm.total_limit)),
                price=firm.reference_price, adds=firm.adds_exposure, dry_run=dry_run))
        except GrantsPaused as paused:
            self._grants_paused(paused)
            raise
        except TradingStopped:  # its announcement has not reached this sidecar yet: read it now
            self._changed(CHANGE_TRADING_STATE)
            raise
        return FirmGrant(min(quantity, grant.granted_lots * firm.lot_size), grant.symbol_limited,
                         grant.total_limited, grant.symbol_value_cents / 100, grant.total_value_cents / 100)

    def _require_reconciled(self, what: str) -> None:
        """StoreError until the probe has reconciled: the server may not hold this sidecar's book,
        or another sidecar owns one of its strategies there (found by a tester: that one's
        snapshot then erased the other's positions on the server)."""
        self._refuse_if_lost()  # found by a reviewer: else the server took a fill each retry the file refused
        if not self._available:
            raise StoreError(f"the shared state is unavailable ({self._unavailable_because}): {what} "
                             "until this sidecar has put its book back")

    async def release_firm_wide(self, client_order_id: str) -> None:
        self._refuse_if_lost()  # the reservation stays here: freed there, the firm would undercount
        await self._shared(self.ledger.release(client_order_id))

    def mark_firm_wide(self, prices: Mapping[str, float]) -> None:
        """Sent in the background, one call at a time with what came meanwhile: found by a reviewer,
        awaited, every publish waited for the server (2 a second while it was slow). Skipped while
        the server is away: reconciling puts back the book at live prices."""
        if not self._available:
            return
        self._marks_due.update((symbol, lot_cents(price, self._lot_size_of(symbol))) for symbol, price in prices.items())
        if self._marking is None or self._marking.done():
            self._marking = asyncio.create_task(self._send_marks(), name="ledger-marks")
            self._tasks = [task for task in self._tasks if not task.done()] + [self._marking]

    async def _send_marks(self) -> None:
        while self._marks_due:
            marks, self._marks_due = self._marks_due, {}
            try:
                await self._shared(self.ledger.mark(marks))
            except LedgerUnavailable:  # noted as a loss of the server: grants fail closed
                self._marks_due.clear()
                return
            except ValueError as error:  # a value past 2^53: nothing written
                _log.warning("firm-wide marks not recorded: %s", error)

    # -- book: the server first, then the local mirror -------------------------------------

    async def reserve(self, reservation: Reservation) -> None:
        """Hold a reservation granted elsewhere (no limits apply: it was already checked)."""
        await self._shared(self._hold(
            reservation.client_order_id, reservation.strategy, reservation.symbol,
            abs(reservation.signed_quantity), reservation.signed_quantity, _ms(reservation.expires_at)))
        await super().reserve(reservation)

    async def release(self, client_order_id: str) -> bool:
        self._refuse_if_lost()
        await self._shared(self.ledger.release(client_order_id))
        return await super().release(client_order_id)

    async def apply_fill(self, fill: Fill, *, forget_after: float | None = None) -> tuple[Position, float]:
        """Not while reconciling: a fill on the server but not yet in the local book would be
        overwritten by the book's positions re-asserted meanwhile (and so for set_positions).
        A fill whose execution id is remembered reaches neither (a retry waits its turn here)."""
        lot_size = self._lot_size_of(fill.symbol)
        async with self._reconciling:
            if (kept := self.remembered_fill(fill.execution_id)) is not None:
                return kept.position, kept.reserved_remaining
            self._require_reconciled("fills are refused")
            position = self.book.exposure(fill.strategy, fill.symbol).position
            held = self.book.reservation(fill.client_order_id)
            reserved = 0.0 if held is None else abs(held.signed_quantity)
            # The server counts the lots that cover each quantity: the fill moves those by the
            # change of this book's own, exact, position and reservation.
            moved = (cover_lots(position + fill.side.sign * fill.quantity, lot_size)
                     - cover_lots(position, lot_size))
            settled = cover_lots(reserved, lot_size) - cover_lots(max(reserved - fill.quantity, 0.0), lot_size)
            # Valued at the market, as checks value it: found by a reviewer, a fill of one share at
            # 0.0001 revalued the firm's whole position in the symbol at that price. Without a live
            # price, the server's value stands; the fill's price only values a symbol it has none for.
            live = self._live_price_of(fill.symbol)
            await self._shared(self.ledger.apply_fill(
                client_order_id=fill.client_order_id, strategy=fill.strategy, symbol=fill.symbol, side=fill.side,
                lots=abs(moved), settle_lots=settled, lot_cents=lot_cents(live or fill.price, lot_size),
                keep_mark=live is None))
            return await super().apply_fill(fill, forget_after=forget_after)

    async def set_positions(self, positions: Sequence[Position], strategy: str | None) -> int:
        """One strategy's positions, or (strategy None) those of every strategy this sidecar
        trades: other sidecars' strategies are theirs to report."""
        async with self._reconciling:
            self._require_reconciled("positions are refused")
            for owner in ([strategy] if strategy is not None else self._strategies):
                await self._shared(self._push_positions([p for p in positions if p.strategy == owner], owner))
            return await super().set_positions(positions, strategy)

    async def expire(self, now: float, limit: int | None = None) -> list[Reservation]:
        await self._shared(self.ledger.reclaim_expired(_ms(now)))
        await self._shared(self._measure_clock())
        return await super().expire(now, limit)

    # -- operator state: the server first, announced to every sidecar ----------------------

    async def set_trading_state(self, state: TradingState, strategy: str | None = None) -> None:
        self._refuse_if_lost()  # refused here after, the change would be in force everywhere else
        await self._shared(self.ledger.set_trading_state(strategy or _BOOK, state.name))
        await super().set_trading_state(state, strategy)

    async def add_override(self, override: Override) -> None:
        self._refuse_if_lost()  # refused here after, the change would be in force everywhere else
        await self._shared(self.ledger.put_override(override.id, to_json(override)))
        await super().add_override(override)

    async def remove_override(self, override_id: str) -> Override | None:
        self._refuse_if_lost()  # refused here after, the change would be in force everywhere else
        await self._shared(self.ledger.delete_override(override_id))
        return await super().remove_override(override_id)
