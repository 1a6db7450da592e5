"""The prices CheckTrade reads: the market's, as of the last time the book was marked.

Ticks are applied on the numeric thread, and the book's cached valuations (its marks) move
on the event loop once the budget is recomputed. A check reading the market directly in
between valued its own symbol at the new price and the rest of the book at the old one: with
two holdings moving together, the strategy's exposure was undercounted and an order approved
past its limit. The sidecar copies the prices here in the same step in which it marks the book
with them, so a check sees a batch's prices all or not at all, and only with the marks they made.
"""

from __future__ import annotations

from typing import Iterable

from ..engine.market_state import MarketState


class CheckedPrices:
    """A `PriceView` (engine/checks) written on the event loop only."""

    def __init__(self) -> None:
        self._prices: dict[str, tuple[float | None, float | None]] = {}
        """symbol -> (last price, when its last live price was seen)."""

    def take(self, market: MarketState, symbols: Iterable[str]) -> None:
        """Copy the symbols' last prices and live times from `market` (the numeric thread is done
        with them)."""
        for symbol in symbols:
            self._prices[symbol] = (market.last_price(symbol), market.live_time(symbol))

    def last_price(self, symbol: str) -> float | None:
        entry = self._prices.get(symbol)
        return None if entry is None else entry[0]

    def live_time(self, symbol: str) -> float | None:
        entry = self._prices.get(symbol)
        return None if entry is None else entry[1]
