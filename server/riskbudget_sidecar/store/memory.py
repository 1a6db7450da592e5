"""The store in memory: the whole Store protocol, kept in this process only.

On its own it is the `memory` backend (nothing survives a restart); it is also
the memory side of SqliteStore, which writes each change through to disk.
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import uuid
from collections import deque
from operator import attrgetter
from typing import Any, Callable, Sequence

from ..engine.book import Book
from ..engine.config import StoreSettings
from ..engine.types import (
    DecisionRecord, Fill, OrderRequest, Override, Position, Recommendation,
    RegimeRecord, RememberedFill, Reservation, TradeDecision, TradingState,
)
from .serialization import to_dict


@dataclasses.dataclass(frozen=True, slots=True)
class RememberedDecision:
    """A decision kept so that a repeated client order id gets the same answer."""

    order: OrderRequest
    decision: TradeDecision
    forget_after: float


class MemoryStore:
    """Single-process state, O(1) or O(book) per call. The changes are coroutines only to
    share the Store protocol with backends that wait on a server; here none waits."""

    shares_limits = False

    def __init__(self, settings: StoreSettings | None = None) -> None:
        self._settings = settings or StoreSettings()
        self.book = Book()
        self._decisions: dict[str, RememberedDecision] = {}
        self._forget_times: list[tuple[float, str]] = []
        """A heap of (forget_after, client order id) for every decision remembered; entries of
        replaced ones are skipped when their time comes (see Book's expiries)."""
        self._book_state = TradingState.ACTIVE
        self._regime_record: RegimeRecord | None = None
        self._budget_versions_reserved = 0
        self._triggers_fired: dict[str, tuple[float, float]] = {}
        self._fills: dict[str, RememberedFill] = {}
        self._fill_forget_times: list[tuple[float, str]] = []
        self._strategy_states: dict[str, TradingState] = {}
        self._overrides: dict[str, Override] = {}
        self._recommendations: list[Recommendation] = []
        """The retained log, oldest first; sequences strictly increase."""
        self.recommendation_log_id = uuid.uuid4().hex
        self._decision_log: deque[DecisionRecord] = deque(maxlen=self._settings.decision_log_queue)

    # -- lifecycle and shared state: nothing is shared --------------------------------------

    async def start(self) -> None:
        """Nothing to connect."""

    @property
    def available(self) -> bool:
        """Whether changes can be made: always, for a local store."""
        return True

    async def stop(self) -> None:
        self.close()

    def watch(self, *, on_change: Callable[[], None], on_availability: Callable[[bool], None],
              on_data_loss: Callable[[str], None] = lambda message: None,
              on_refusal: Callable[[str | None], None] = lambda reason: None) -> None:
        """Nothing shared changes behind this store's back, and memory refuses nothing."""

    # -- book ------------------------------------------------------------------------------

    async def reserve(self, reservation: Reservation) -> None:
        self.book.reserve(reservation)

    async def release(self, client_order_id: str) -> bool:
        return self.book.release(client_order_id)

    async def apply_fill(self, fill: Fill, *, forget_after: float | None = None) -> tuple[Position, float]:
        if (kept := self.remembered_fill(fill.execution_id)) is not None:
            return kept.position, kept.reserved_remaining
        position, remaining = self.book.apply_fill(fill)
        if fill.execution_id and forget_after is not None:
            self._remember_fill(RememberedFill(fill, position, remaining, forget_after))
        return position, remaining

    def remembered_fill(self, execution_id: str) -> RememberedFill | None:
        return self._fills.get(execution_id) if execution_id else None

    def _remember_fill(self, kept: RememberedFill) -> None:
        self._fills[kept.fill.execution_id] = kept
        heapq.heappush(self._fill_forget_times, (kept.forget_after, kept.fill.execution_id))

    def forget_fills_before(self, now: float) -> int:
        return len(self._forget_fills(now))

    def _forget_fills(self, now: float) -> list[str]:
        """Drop and return the execution ids whose forget_after <= now."""
        stale = []
        while self._fill_forget_times and self._fill_forget_times[0][0] <= now:
            _, execution_id = heapq.heappop(self._fill_forget_times)
            if self._fills.pop(execution_id, None) is not None:
                stale.append(execution_id)
        return stale

    async def set_positions(self, positions: Sequence[Position], strategy: str | None) -> int:
        return self.book.set_positions(positions, strategy)

    async def expire(self, now: float, limit: int | None = None) -> list[Reservation]:
        return self.book.expire(now, limit)

    # -- idempotency of CheckTrade ---------------------------------------------------------

    def remembered(self, client_order_id: str) -> RememberedDecision | None:
        return self._decisions.get(client_order_id)

    def remember(self, order: OrderRequest, decision: TradeDecision, forget_after: float) -> None:
        self._decisions[order.client_order_id] = RememberedDecision(order, decision, forget_after)
        heapq.heappush(self._forget_times, (forget_after, order.client_order_id))

    async def record_check(self, order: OrderRequest, decision: TradeDecision,
                           reservation: Reservation | None, forget_after: float, decided_at: float) -> None:
        """What a CheckTrade leaves behind: its reservation, if any, and its decision (made at
        `decided_at`, which a durable store logs with it)."""
        self._keep_check(order, decision, reservation, forget_after)

    def _keep_check(self, order: OrderRequest, decision: TradeDecision,
                    reservation: Reservation | None, forget_after: float) -> None:
        if reservation is not None:
            self.book.reserve(reservation)
        MemoryStore.remember(self, order, decision, forget_after)

    def forget_decisions_before(self, now: float, limit: int | None = None) -> int:
        return len(self._forget_decisions(now, limit))

    def _forget_decisions(self, now: float, limit: int | None = None) -> list[RememberedDecision]:
        """Drop and return the decisions whose forget_after <= now (at most `limit`)."""
        stale = []
        while (self._forget_times and self._forget_times[0][0] <= now
               and (limit is None or len(stale) < limit)):
            forget_after, client_order_id = heapq.heappop(self._forget_times)
            kept = self._decisions.get(client_order_id)
            if kept is not None and kept.forget_after == forget_after:
                del self._decisions[client_order_id]
                stale.append(kept)
        return stale

    # -- trading state ---------------------------------------------------------------------

    def trading_state(self, strategy: str | None = None) -> TradingState:
        """The state in force: the stricter of the book's and the strategy's."""
        if strategy is None:
            return self._book_state
        return self._book_state.stricter(self.own_trading_state(strategy))

    def own_trading_state(self, strategy: str) -> TradingState:
        return self._strategy_states.get(strategy, TradingState.ACTIVE)

    def strategy_states(self) -> dict[str, TradingState]:
        """Each strategy's own state that is not ACTIVE."""
        return {name: state for name, state in self._strategy_states.items() if state is not TradingState.ACTIVE}

    async def set_trading_state(self, state: TradingState, strategy: str | None = None) -> None:
        self._put_trading_state(state, strategy)

    def _put_trading_state(self, state: TradingState, strategy: str | None) -> None:
        if strategy is None:
            self._book_state = state
        else:
            self._strategy_states[strategy] = state

    # -- regime ----------------------------------------------------------------------------

    def regime_record(self) -> RegimeRecord | None:
        return self._regime_record

    def record_regime(self, record: RegimeRecord) -> None:
        self._regime_record = record

    def budget_versions_reserved(self) -> int:
        return self._budget_versions_reserved

    def reserve_budget_versions(self, up_to: int) -> None:
        self._budget_versions_reserved = up_to

    def triggers_fired(self) -> dict[str, tuple[float, float]]:
        return dict(self._triggers_fired)

    def record_triggers_fired(self, fired: dict[str, tuple[float, float]]) -> None:
        self._triggers_fired = dict(fired)

    # -- overrides -------------------------------------------------------------------------

    async def add_override(self, override: Override) -> None:
        """Add it, or replace the override of the same id in its place."""
        self._put_override(override)

    def _put_override(self, override: Override) -> None:
        self._overrides[override.id] = override

    async def remove_override(self, override_id: str) -> Override | None:
        return self._overrides.pop(override_id, None)

    def overrides(self) -> list[Override]:
        """In the order they were first added."""
        return list(self._overrides.values())

    # -- recommendation log ----------------------------------------------------------------

    def append_recommendation(self, recommendation: Recommendation) -> Recommendation:
        """Log it under the next sequence number and return it with that number."""
        newest = self._recommendations[-1].sequence if self._recommendations else 0
        return self._keep_recommendation(dataclasses.replace(recommendation, sequence=newest + 1))

    def _keep_recommendation(self, recommendation: Recommendation) -> Recommendation:
        """Append a numbered recommendation, dropping the oldest beyond the retention."""
        self._recommendations.append(recommendation)
        excess = len(self._recommendations) - self._settings.recommendation_retention
        if excess > 0:
            del self._recommendations[:excess]
        return recommendation

    def recommendations_after(self, sequence: int, limit: int) -> list[Recommendation]:
        """At most `limit` retained recommendations numbered above `sequence`, oldest first."""
        start = bisect.bisect_right(self._recommendations, sequence, key=attrgetter("sequence"))
        return self._recommendations[start:start + max(limit, 0)]

    def recommendation_bounds(self) -> tuple[int, int]:
        """(oldest retained, newest) sequence, or (0, 0) before the first recommendation."""
        if not self._recommendations:
            return 0, 0
        return self._recommendations[0].sequence, self._recommendations[-1].sequence

    # -- decision log ----------------------------------------------------------------------

    def log_decision(self, record: DecisionRecord) -> None:
        """Keep it among the last `decision_log_queue` records."""
        self._decision_log.append(record)

    def decision_log_stats(self) -> tuple[int, int]:
        """(backlog, overflowed): nothing ever waits here."""
        return 0, 0

    def disk_free(self) -> int | None:
        """Nothing is written to disk."""
        return None

    def lost_state_file(self) -> str | None:
        """No file to lose."""
        return None

    def decisions(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` logged decisions as dicts, oldest first."""
        kept = list(self._decision_log)
        return [to_dict(record) for record in kept[max(len(kept) - limit, 0):]]

    def flush(self, timeout: float) -> bool:
        """Whether every logged decision is written: always, here."""
        return True

    def close(self) -> None:
        """Nothing to release."""
