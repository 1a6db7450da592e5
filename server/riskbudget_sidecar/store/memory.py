"""The embedded store: the book, remembered decisions and trading states, in memory."""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.book import Book
from ..engine.types import OrderRequest, TradeDecision, TradingState


@dataclass(frozen=True, slots=True)
class RememberedDecision:
    """A decision kept so that a repeated client order id gets the same answer."""

    order: OrderRequest
    decision: TradeDecision
    forget_after: float


class MemoryStore:
    """Single-process state. Every method is synchronous and O(1) or O(book)."""

    def __init__(self) -> None:
        self.book = Book()
        self._decisions: dict[str, RememberedDecision] = {}
        self._book_state = TradingState.ACTIVE
        self._strategy_states: dict[str, TradingState] = {}

    def remembered(self, client_order_id: str) -> RememberedDecision | None:
        return self._decisions.get(client_order_id)

    def remember(self, order: OrderRequest, decision: TradeDecision, forget_after: float) -> None:
        self._decisions[order.client_order_id] = RememberedDecision(order, decision, forget_after)

    def forget_decisions_before(self, now: float) -> int:
        stale = [key for key, kept in self._decisions.items() if kept.forget_after <= now]
        for key in stale:
            del self._decisions[key]
        return len(stale)

    def trading_state(self, strategy: str | None = None) -> TradingState:
        """The state in force: the stricter of the book's and the strategy's."""
        if strategy is None:
            return self._book_state
        return self._book_state.stricter(self._strategy_states.get(strategy, TradingState.ACTIVE))

    def own_trading_state(self, strategy: str) -> TradingState:
        return self._strategy_states.get(strategy, TradingState.ACTIVE)

    def set_trading_state(self, state: TradingState, strategy: str | None = None) -> None:
        if strategy is None:
            self._book_state = state
        else:
            self._strategy_states[strategy] = state
