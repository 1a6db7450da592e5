"""The position book: positions and open reservations, pure and in memory.

Every write refreshes the aggregates a pre-trade check reads, so the check
itself never loops over the book:

- the exposure (position and pending quantities) of each strategy and symbol;
- each symbol's exposure netted across strategies (the firm's position);
- each strategy's worst-case absolute quantity per symbol, and that quantity
  summed over strategies per symbol;
- the worst-case gross exposure of each strategy and of the book valued at
  marks: the last price the owner gave for each symbol through `mark`, which it
  calls on every tick.

Quantities are recomputed from the few strategies and open orders that touch
the written symbol, not moved by deltas, so no float drift builds up in them.
The marked gross sums do move by deltas (a write or a mark costs
O(strategies holding the symbol)); each resets to exactly 0 when its scope goes
flat.

Gross in currency, two ways:

- `gross_besides`, for the check: at marks, O(1). Exposed symbols never marked
  are valued with the price lookup given, so a book nobody marks is still
  valued right, only slower. Looking up every price instead would cost a
  few hundred lookups per check (about 250 ns each on MarketState).
- `strategy_gross`, `symbol_gross`, `total_gross`, for reports: at the price
  lookup given, visiting exposed symbols only.

A price lookup returning None (no price yet) values that symbol at 0.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from typing import Callable, Iterable

from .types import Fill, Position, Reservation, SymbolExposure

PriceOf = Callable[[str], float | None]

_FLAT = SymbolExposure()
_RELATIVE_EPS = 1e-9
"""A quantity this small relative to the quantities that produced it is float noise: zero."""


class Book:
    """Positions per (strategy, symbol) and reservations per client order id."""

    def __init__(self) -> None:
        self._positions: dict[tuple[str, str], float] = {}
        self._reservations: dict[str, Reservation] = {}
        self._expiries: list[tuple[float, str]] = []
        """A heap of (expires_at, client order id) for every reservation made; entries of
        released or replaced ones stay until their time and are then skipped, so that `expire`
        costs O(expired log n), not a scan of every open order at each monitoring tick."""
        self._pending: dict[tuple[str, str], tuple[int, float, float]] = {}
        """(open orders, pending buy, pending sell) per (strategy, symbol), kept as orders come
        and go: summing the open orders at each change would cost O(open orders) per check.
        The sums are exact back to zero when the last order goes."""
        self._by_symbol: dict[str, dict[str, SymbolExposure]] = {}
        """symbol -> strategy -> exposure; exposed (non-flat) ones only, as below."""
        self._worst: dict[str, dict[str, float]] = {}
        """strategy -> symbol -> worst-case absolute quantity."""
        self._net: dict[str, SymbolExposure] = {}
        self._worst_by_symbol: dict[str, float] = {}
        """symbol -> worst-case absolute quantity summed over strategies (no netting)."""
        self._marks: dict[str, float] = {}
        self._unmarked: dict[str, None] = {}
        """Exposed symbols that have no mark."""
        self._marked_strategy_gross: dict[str, float] = {}
        self._marked_total_gross = 0.0

    # --- exposure ----------------------------------------------------------

    def exposure(self, strategy: str, symbol: str) -> SymbolExposure:
        """The strategy's position and pending quantities in the symbol."""
        strategies = self._by_symbol.get(symbol)
        if strategies is None:
            return _FLAT
        return strategies.get(strategy, _FLAT)

    def net_exposure(self, symbol: str) -> SymbolExposure:
        """The symbol's position and pending quantities summed over all strategies."""
        return self._net.get(symbol, _FLAT)

    def symbol_exposures(self, symbol: str) -> tuple[tuple[str, SymbolExposure], ...]:
        """(strategy, exposure) for each strategy with a position or an order in the symbol."""
        return tuple(self._by_symbol.get(symbol, {}).items())

    def strategy_exposures(self, strategy: str) -> tuple[tuple[str, SymbolExposure], ...]:
        """(symbol, exposure) for each symbol where the strategy has a position or an order."""
        return tuple((symbol, self._by_symbol[symbol][strategy])
                     for symbol in self._worst.get(strategy, ()))

    def symbols(self) -> tuple[str, ...]:
        """Symbols where any strategy has a position or an order."""
        return tuple(self._net)

    def unmarked(self) -> tuple[str, ...]:
        """Symbols where any strategy has a position or an order, and that have no mark yet."""
        return tuple(self._unmarked)

    def has_unmarked_besides(self, symbol: str) -> bool:
        """Whether `unmarked()` holds another symbol than `symbol` (CheckTrade asks it: no tuple)."""
        unmarked = self._unmarked
        return len(unmarked) > 1 or (bool(unmarked) and symbol not in unmarked)

    # --- gross exposure ----------------------------------------------------

    def strategy_gross(self, strategy: str, price_of: PriceOf) -> float:
        """The strategy's worst-case gross exposure: sum of |worst-case position| x price."""
        return _value(self._worst.get(strategy, {}), price_of)

    def symbol_gross(self, symbol: str, price_of: PriceOf) -> float:
        """The symbol's worst-case absolute position, netted across strategies, x price."""
        exposure = self._net.get(symbol)
        if exposure is None:
            return 0.0
        return exposure.worst_case_abs() * (price_of(symbol) or 0.0)

    def total_gross(self, price_of: PriceOf) -> float:
        """The book's worst-case gross exposure: the sum of the strategies' (no netting)."""
        return _value(self._worst_by_symbol, price_of)

    def gross_besides(self, strategy: str, symbol: str, price_of: PriceOf) -> tuple[float, float]:
        """(strategy gross, total gross) at marks, leaving out the strategy's own exposure in
        `symbol`: the rest of the book, against which an order in `symbol` is priced afresh.

        `price_of` values the exposed symbols that have no mark.
        """
        worst = self._worst.get(strategy, {})
        own = worst.get(symbol, 0.0)
        own_value = own * self._marks.get(symbol, 0.0)
        strategy_rest = self._marked_strategy_gross.get(strategy, 0.0) - own_value
        total_rest = self._marked_total_gross - own_value
        for other in self._unmarked:
            price = price_of(other) or 0.0
            if other == symbol:
                total_rest += (self._worst_by_symbol[other] - own) * price
            else:
                strategy_rest += worst.get(other, 0.0) * price
                total_rest += self._worst_by_symbol[other] * price
        return strategy_rest, total_rest

    # --- reservations and positions ----------------------------------------

    def reservation(self, client_order_id: str) -> Reservation | None:
        return self._reservations.get(client_order_id)

    def reservations(self) -> list[Reservation]:
        return list(self._reservations.values())

    def positions(self) -> list[Position]:
        """Every non-zero position."""
        return [Position(strategy, symbol, quantity)
                for (strategy, symbol), quantity in self._positions.items()]

    def quantities(self) -> dict[tuple[str, str], float]:
        """(strategy, symbol) -> quantity of every non-zero position: `positions` as a mapping."""
        return dict(self._positions)

    # --- writes ------------------------------------------------------------

    def mark(self, symbol: str, price: float) -> None:
        """Value the symbol at `price` from now on; the owner calls it with every new last price."""
        if not (math.isfinite(price) and price > 0):
            raise ValueError(f"mark of {symbol!r} must be positive and finite, got {price!r}")
        change = price - self._marks.get(symbol, 0.0)
        self._marks[symbol] = price
        self._unmarked.pop(symbol, None)
        for strategy in self._by_symbol.get(symbol, ()):
            self._marked_strategy_gross[strategy] = (
                self._marked_strategy_gross.get(strategy, 0.0)
                + self._worst[strategy][symbol] * change)
        self._marked_total_gross += self._worst_by_symbol.get(symbol, 0.0) * change

    def reserve(self, reservation: Reservation) -> None:
        """Hold exposure for an order; reserving the same order id again replaces the first."""
        quantity = reservation.signed_quantity
        if not math.isfinite(quantity) or quantity == 0:
            raise ValueError(f"reservation quantity must be finite and non-zero, got {quantity!r}")
        if reservation.client_order_id in self._reservations:
            self.release(reservation.client_order_id)
        key = (reservation.strategy, reservation.symbol)
        self._reservations[reservation.client_order_id] = reservation
        heapq.heappush(self._expiries, (reservation.expires_at, reservation.client_order_id))
        self._move_pending(key, 0.0, quantity)
        self._refresh(key)

    def release(self, client_order_id: str) -> bool:
        """Free an order's reservation; False if it had none."""
        reservation = self._drop(client_order_id)
        if reservation is None:
            return False
        self._refresh((reservation.strategy, reservation.symbol))
        return True

    def apply_fill(self, fill: Fill) -> tuple[Position, float]:
        """Move the position by the fill and settle that much of the order's reservation.

        Returns the new position and the quantity (unsigned) still reserved for the
        order. A fill with no reservation (an order sent around the sidecar) still
        moves the position.
        """
        if not (math.isfinite(fill.quantity) and fill.quantity > 0):
            raise ValueError(f"fill quantity must be positive and finite, got {fill.quantity!r}")
        key = (fill.strategy, fill.symbol)
        before = self._positions.get(key, 0.0)
        after = _denoise(before + fill.side.sign * fill.quantity, max(abs(before), fill.quantity))
        self._set_position(key, after)
        self._refresh(key)

        remaining = 0.0
        reservation = self._reservations.get(fill.client_order_id)
        if reservation is not None:
            reserved = abs(reservation.signed_quantity)
            remaining = _denoise(reserved - fill.quantity, reserved)
            if remaining <= 0:
                remaining = 0.0
                self.release(fill.client_order_id)
            else:
                left = math.copysign(remaining, reservation.signed_quantity)
                self._reservations[fill.client_order_id] = dataclasses.replace(
                    reservation, signed_quantity=left)
                pending_key = (reservation.strategy, reservation.symbol)
                self._move_pending(pending_key, reservation.signed_quantity, left)
                self._refresh(pending_key)
        return Position(fill.strategy, fill.symbol, after), remaining

    def set_positions(self, positions: Iterable[Position], strategy: str | None = None) -> int:
        """Replace the whole book's positions, or only `strategy`'s; absent symbols are flat.

        Reservations stay: their orders are still in flight. Returns the number of
        non-zero positions now held in the replaced scope. On a non-finite
        quantity, a duplicate (strategy, symbol) or a position of another strategy
        than `strategy`, raises ValueError and changes nothing.
        """
        incoming: dict[tuple[str, str], float] = {}
        for position in positions:
            key = (position.strategy, position.symbol)
            if strategy is not None and position.strategy != strategy:
                raise ValueError(
                    f"position of strategy {position.strategy!r} when replacing {strategy!r}")
            if not math.isfinite(position.quantity):
                raise ValueError(f"position of {key[0]!r} in {key[1]!r} must be finite")
            if key in incoming:
                raise ValueError(f"duplicate position of {key[0]!r} in {key[1]!r}")
            incoming[key] = position.quantity

        replaced = [key for key in self._positions if strategy is None or key[0] == strategy]
        for key in replaced:
            del self._positions[key]
        for key, quantity in incoming.items():
            self._set_position(key, quantity)
        for key in dict.fromkeys([*replaced, *incoming]):
            self._refresh(key)
        return sum(1 for quantity in incoming.values() if quantity != 0)

    def expire(self, now: float, limit: int | None = None) -> list[Reservation]:
        """Drop and return the reservations whose expires_at <= now, soonest first, at most `limit`."""
        expired = []
        while (self._expiries and self._expiries[0][0] <= now
               and (limit is None or len(expired) < limit)):
            expires_at, client_order_id = heapq.heappop(self._expiries)
            reservation = self._reservations.get(client_order_id)
            if reservation is not None and reservation.expires_at == expires_at:
                self._drop(client_order_id)
                expired.append(reservation)
        # The aggregates once per (strategy, symbol), not once per order: a busy book expires
        # hundreds of orders of a few symbols at a tick, on the event loop.
        for key in dict.fromkeys((r.strategy, r.symbol) for r in expired):
            self._refresh(key)
        return expired

    # --- aggregates --------------------------------------------------------

    def _drop(self, client_order_id: str) -> Reservation | None:
        """Remove an order's reservation from the pending sums; the caller refreshes its key."""
        reservation = self._reservations.pop(client_order_id, None)
        if reservation is not None:
            self._move_pending((reservation.strategy, reservation.symbol), reservation.signed_quantity, 0.0)
        return reservation

    def _set_position(self, key: tuple[str, str], quantity: float) -> None:
        if quantity:
            self._positions[key] = quantity
        else:
            self._positions.pop(key, None)

    def _move_pending(self, key: tuple[str, str], before: float, after: float) -> None:
        """Account for one reservation of the (strategy, symbol) going from the signed
        quantity `before` to `after` (0.0: none)."""
        orders, buy, sell = self._pending.get(key, (0, 0.0, 0.0))
        orders += (after != 0) - (before != 0)
        if orders == 0:
            self._pending.pop(key, None)
            return
        buy += max(after, 0.0) - max(before, 0.0)
        sell += max(-after, 0.0) - max(-before, 0.0)
        self._pending[key] = (orders, buy, sell)

    def _refresh(self, key: tuple[str, str]) -> None:
        """Recompute the aggregates of one (strategy, symbol) and of its symbol."""
        strategy, symbol = key
        position = self._positions.get(key, 0.0)
        _, buy, sell = self._pending.get(key, (0, 0.0, 0.0))

        strategies = self._by_symbol.setdefault(symbol, {})
        worst = self._worst.setdefault(strategy, {})
        worst_before = worst.get(symbol, 0.0)
        symbol_worst_before = self._worst_by_symbol.get(symbol, 0.0)
        if position or buy or sell:
            exposure = SymbolExposure(position, buy, sell)
            strategies[strategy] = exposure
            worst[symbol] = exposure.worst_case_abs()
        else:
            strategies.pop(strategy, None)
            worst.pop(symbol, None)

        if len(strategies) == 1:  # the usual case: the symbol's net is its one strategy's
            ((name, exposure),) = strategies.items()
            self._net[symbol] = exposure
            self._worst_by_symbol[symbol] = self._worst[name][symbol]
        elif strategies:
            net_position = net_buy = net_sell = symbol_worst = 0.0
            for name, exposure in strategies.items():  # one pass; worst cases as already kept
                net_position += exposure.position
                net_buy += exposure.pending_buy
                net_sell += exposure.pending_sell
                symbol_worst += self._worst[name][symbol]
            self._net[symbol] = SymbolExposure(net_position, net_buy, net_sell)
            self._worst_by_symbol[symbol] = symbol_worst
        else:
            del self._by_symbol[symbol]
            self._net.pop(symbol, None)
            self._worst_by_symbol.pop(symbol, None)
        self._revalue(strategy, symbol, worst_before, symbol_worst_before)

    def _revalue(self, strategy: str, symbol: str, worst_before: float,
                 symbol_worst_before: float) -> None:
        """Move the marked gross sums by one write's change of worst-case quantities."""
        mark = self._marks.get(symbol)
        exposed = symbol in self._net
        if mark is None:
            if exposed:
                self._unmarked[symbol] = None
            else:
                self._unmarked.pop(symbol, None)
        worst = self._worst[strategy]
        if not worst:
            del self._worst[strategy]
            self._marked_strategy_gross.pop(strategy, None)
        elif mark is not None:
            self._marked_strategy_gross[strategy] = (
                self._marked_strategy_gross.get(strategy, 0.0)
                + (worst.get(symbol, 0.0) - worst_before) * mark)
        if not self._net:
            self._marked_total_gross = 0.0
        elif mark is not None:
            self._marked_total_gross += (
                self._worst_by_symbol.get(symbol, 0.0) - symbol_worst_before) * mark


def _value(quantities: dict[str, float], price_of: PriceOf) -> float:
    total = 0.0
    for symbol, quantity in quantities.items():
        price = price_of(symbol)
        if price:
            total += quantity * price
    return total


def _denoise(quantity: float, scale: float) -> float:
    return 0.0 if abs(quantity) <= _RELATIVE_EPS * scale else quantity
