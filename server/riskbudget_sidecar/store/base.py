"""The store protocol: what the sidecar keeps, behind one interface.

Every backend keeps the book in memory (`book`) for the hot path and makes each
change durable *before* the method returns, so that what a caller acknowledges
survives a crash of the process. The changes that a shared backend must make on
its server are coroutines; reads come from memory and stay synchronous. All
methods run on the event-loop thread, except that `log_decision` only enqueues
and never blocks.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol, Sequence

from ..engine.book import Book
from ..engine.types import (
    DecisionRecord, FirmGrant, FirmLimits, Fill, OrderRequest, Override, Position, Recommendation,
    RegimeRecord, RememberedFill, Reservation, TradeDecision, TradingState,
)


class RememberedDecisionView(Protocol):
    order: OrderRequest
    decision: TradeDecision
    forget_after: float


class Store(Protocol):
    book: Book
    """Positions and reservations, read on the hot path. Change it only through the methods below."""

    # -- lifecycle and shared state ----------------------------------------------------------
    async def start(self) -> None:
        """Connect what the backend shares with other sidecars (nothing, for a local one)."""
    async def stop(self) -> None:
        """Flush and close."""
    @property
    def available(self) -> bool:
        """Whether changes can be made now (a shared server may be away)."""
    def watch(self, *, on_change: Callable[[], None], on_availability: Callable[[bool], None],
              on_data_loss: Callable[[str], None] = lambda message: None,
              on_refusal: Callable[[str | None], None] = lambda reason: None) -> None:
        """Be told when another sidecar changed shared operator state (re-read overrides and
        trading states), when the shared server goes away or comes back, when it lost its
        data (with what that means for grants), and when the local state file starts refusing
        changes (why) or takes them again (None)."""
    shares_limits: bool
    """Whether other sidecars share this store's limits. Only then does CheckTrade hold its
    order firm-wide: a local backend's own checks are firm-wide already."""
    async def hold_firm_wide(self, order: OrderRequest, quantity: float, firm: FirmLimits,
                             expires_at: float, *, dry_run: bool = False) -> FirmGrant:
        """Reserve up to `quantity` of the order against the firm-wide limits, atomically across
        sidecars (a store that shares_limits); a `dry_run` only says how much would be."""
    async def release_firm_wide(self, client_order_id: str) -> None:
        """Undo hold_firm_wide when the local record of the check could not be made."""
    def mark_firm_wide(self, prices: Mapping[str, float]) -> None:
        """Mark the firm's exposure in these symbols at these live prices (a store that
        shares_limits), in the background: the firm's total is held to its limit at the market."""

    # -- book (durable before returning) ---------------------------------------------------
    async def reserve(self, reservation: Reservation) -> None: ...
    async def release(self, client_order_id: str) -> bool: ...
    async def apply_fill(self, fill: Fill, *, forget_after: float | None = None) -> tuple[Position, float]:
        """Apply a fill; one with an execution_id (and forget_after) is remembered with what it
        left until forget_after, and one whose id is remembered is not applied again."""
    def remembered_fill(self, execution_id: str) -> RememberedFill | None: ...
    def forget_fills_before(self, now: float) -> int: ...
    async def set_positions(self, positions: Sequence[Position], strategy: str | None) -> int: ...
    async def expire(self, now: float, limit: int | None = None) -> list[Reservation]:
        """Drop the reservations due by `now` (at most `limit` of them, the soonest) and return them."""

    # -- idempotency of CheckTrade ---------------------------------------------------------
    def remembered(self, client_order_id: str) -> RememberedDecisionView | None: ...
    def remember(self, order: OrderRequest, decision: TradeDecision, forget_after: float) -> None: ...
    def forget_decisions_before(self, now: float, limit: int | None = None) -> int:
        """Forget the decisions due by `now` (at most `limit`, the soonest); how many."""
    async def record_check(self, order: OrderRequest, decision: TradeDecision,
                           reservation: Reservation | None, forget_after: float, decided_at: float) -> None:
        """reserve + remember as one durable change (the hot path's only write), and log the
        decision (made at `decided_at`) with it."""

    # -- trading state (durable) -----------------------------------------------------------
    def trading_state(self, strategy: str | None = None) -> TradingState: ...
    def own_trading_state(self, strategy: str) -> TradingState: ...
    def strategy_states(self) -> dict[str, TradingState]: ...
    async def set_trading_state(self, state: TradingState, strategy: str | None = None) -> None: ...

    # -- overrides (durable) ---------------------------------------------------------------
    async def add_override(self, override: Override) -> None: ...
    async def remove_override(self, override_id: str) -> Override | None: ...
    def overrides(self) -> list[Override]: ...

    # -- the regime it ran in, for the next start ------------------------------------------
    def regime_record(self) -> RegimeRecord | None: ...
    def record_regime(self, record: RegimeRecord) -> None: ...
    def budget_versions_reserved(self) -> int: ...
    def reserve_budget_versions(self, up_to: int) -> None:
        """No budget version up to `up_to` is used by a later run: a restart numbers its budgets
        after it, so that versions only increase, as the contract says."""
    def triggers_fired(self) -> dict[str, tuple[float, float]]: ...
    def record_triggers_fired(self, fired: dict[str, tuple[float, float]]) -> None:
        """When (and how severe) each rebalancing trigger last fired, keyed as TriggerMonitor.fired
        keys them: their cooldowns outlive a restart."""

    # -- recommendation log (durable; sequences strictly increase and are never reused) ----
    recommendation_log_id: str
    """Names this log: a new state file (or memory store) starts another log, numbered from
    1 again, so a subscriber's sequence means something only with the log it counts in."""

    def append_recommendation(self, recommendation: Recommendation) -> Recommendation: ...
    def recommendations_after(self, sequence: int, limit: int) -> list[Recommendation]: ...
    def recommendation_bounds(self) -> tuple[int, int]: ...

    # -- decision log (asynchronous, batched, never silently dropped) ----------------------
    def log_decision(self, record: DecisionRecord) -> None: ...
    def decision_log_stats(self) -> tuple[int, int]: ...
    def decisions(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` decisions written to the log, as JSON-ready dicts, oldest first."""
    def disk_free(self) -> int | None:
        """Bytes free on the filesystem the store writes to (None: it writes to none)."""
    def lost_state_file(self) -> str | None:
        """Why the file the store opened is no longer at its path, once seen (None: it is, or the
        store writes none); from then on the store refuses every change."""

    def close(self) -> None: ...
