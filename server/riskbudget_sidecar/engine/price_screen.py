"""Holding back a price that jumps too far until another one confirms it.

One bad print (a price of 0.0001 for a stock at 101.6) would otherwise be the price every
order in the symbol is sized at: the position limit is notional, so a price 1e6 times too low
lets an order 1e6 times too large through. A tick further than `limits.max_price_move` from
its symbol's last price is held, not applied. The next tick for the symbol decides: near
the held one and later than it, it confirms it (both are applied, in order); the same tick sent
again (a retried publish) confirms nothing; near the last price, the held one was a bad print
and is dropped; far from both, it is held in its place. Meanwhile the sidecar values the symbol
at the larger of its last price and the held one, which can only make checks stricter (exposure
is |position| x price).

The caller says what a tick is compared with: the sidecar passes the last live price, or
before the first the warm-up's last. With none (no warm-up), the symbol's first tick is held
like a jump: a first print of 0.0001 would otherwise size every order, and the next tick near
it and later confirms it.
"""

from __future__ import annotations

from .types import PriceTick


class PriceScreen:
    """The held tick of each symbol (numeric thread only)."""

    def __init__(self, max_move: float) -> None:
        self._factor = 1.0 + max_move
        self._held: dict[str, PriceTick] = {}

    def reconfigure(self, max_move: float) -> None:
        self._factor = 1.0 + max_move

    def screen(self, tick: PriceTick, last: float | None) -> tuple[PriceTick, ...]:
        """The ticks to apply for `tick`, in order: itself; the held one and itself (it confirms
        the held one); or none (it is held)."""
        held = self._held.pop(tick.symbol, None)
        if last is not None and self._near(tick.price, last):
            return (tick,)
        if held is not None and tick.time > held.time and self._near(tick.price, held.price):
            return (held, tick)
        self._held[tick.symbol] = tick
        return ()

    def held(self, symbol: str) -> PriceTick | None:
        return self._held.get(symbol)

    def _near(self, price: float, reference: float) -> bool:
        """Within a factor of 1 + max_move of `reference`, either way (a fall to half is as far
        as a rise to double)."""
        return reference / self._factor <= price <= reference * self._factor
