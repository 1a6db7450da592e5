"""The prices CheckTrade reads: the market's, as of the last time the book was marked.

Ticks are applied on the numeric thread, and the book's cached valuations (its marks) move
on the event loop once the budget is recomputed. A check reading the market directly in
between valued its own symbol at the new price and the rest of the book at the old one: with
two holdings moving together, the strategy's exposure was undercounted and an order approved
past its limit. The numeric thread reads a batch's prices once it has applied them, and the
sidecar puts them here in the same step in which it marks the book with them, so a check sees
a batch's prices all or not at all, and only with the marks they made. A symbol whose last tick
the price screen holds back is here at the larger of its last price and the held one.
"""

from __future__ import annotations

from typing import Mapping

Entry = tuple[float | None, float | None]
"""(last price, when the symbol's last live price was seen)."""


class CheckedPrices:
    """A `PriceView` (engine/checks) written on the event loop only."""

    def __init__(self) -> None:
        self._prices: dict[str, Entry] = {}

    def update(self, prices: Mapping[str, Entry]) -> None:
        """Take these symbols' prices, read from the market by the numeric thread at the end of
        the work that set them (read here, they might be a later batch's, half applied)."""
        self._prices.update(prices)

    def last_price(self, symbol: str) -> float | None:
        entry = self._prices.get(symbol)
        return None if entry is None else entry[0]

    def live_time(self, symbol: str) -> float | None:
        entry = self._prices.get(symbol)
        return None if entry is None else entry[1]

    def live_price(self, symbol: str) -> float | None:
        """The last price if it is a live one (a warm-up's is no price now)."""
        entry = self._prices.get(symbol)
        return None if entry is None or entry[1] is None else entry[0]
