"""Prices to bar closes to log returns to an EWMA (RiskMetrics) covariance, incrementally.

Bars are aligned at multiples of `bar_interval`: a tick at time t belongs to bar
floor(t / bar_interval), which ends at (floor(t / bar_interval) + 1) * bar_interval.
A bar closes on the first tick of a later bar, or when `advance_to` passes its end,
with each symbol's last price so far (prices carry forward). Bars in which nothing
ticked are not made up: returns are always between consecutive closes.

The covariance is the EWMA of r r' with a zero mean (RiskMetrics), normalised by the
sum of the weights it has used so far, as pandas' `ewm(adjust=True)` does:

    var_i(T) = sum_k (1 - l) l^(T-k) r_ik^2 / (1 - l^n_i)

over the n_i returns symbol i has had. A priced symbol keeps a close on every later
bar, so each symbol's returns are an unbroken run of bars up to now; a symbol that
joins late starts from its first return instead of from a zero variance. Cross terms
are the EWMA sum over the bars both symbols have, scaled by 1 / sqrt(d_i d_j) with
d_i = 1 - l^n_i. That is a congruence of a sum of outer products, so the matrix stays
positive semidefinite; it shrinks a late starter's correlations towards zero until its
history fills in (the factor sqrt(d_late / d_early) tends to one). In the steady state
(n large) every d is one and this is plain RiskMetrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .config import MarketData
from .types import PriceTick


@dataclass(frozen=True, slots=True)
class ClosedBar:
    time: float
    """The bar's end time."""
    closes: np.ndarray
    """Per symbol, in the market's symbol order; NaN where no price has arrived yet."""
    returns: np.ndarray | None
    """Log returns against the previous close (NaN where either close is missing), or
    None for the first bar, which has no previous close."""


class MarketState:
    """Last prices, bar closes and the EWMA covariance of a fixed universe of symbols."""

    def __init__(self, symbols: Sequence[str], config: MarketData) -> None:
        if isinstance(symbols, str):
            raise ValueError(f"symbols must be a sequence of names, not the string {symbols!r}")
        names = tuple(symbols)
        if not names:
            raise ValueError("symbols must name at least one symbol")
        bad = [s for s in names if not isinstance(s, str) or not s]
        if bad:
            raise ValueError(f"symbols must be non-empty strings, got {bad!r}")
        duplicates = sorted({s for s in names if names.count(s) > 1})
        if duplicates:
            raise ValueError(f"symbols must be unique; repeated: {duplicates}")
        n = len(names)
        self._symbols = names
        self._index = {symbol: i for i, symbol in enumerate(names)}
        self._config = config
        self._lambda = config.ewma_lambda
        self._last_price = np.full(n, np.nan)
        self._last_time = np.full(n, np.nan)
        self._history_time = np.full(n, np.nan)
        """Each symbol's last tick of history (a warm-up): not a live price (`end_history`)."""
        self._open_bar: int | None = None
        self._last_closed_bar: int | None = None
        self._closes: np.ndarray | None = None
        self._ewma = (np.zeros((n, n)), np.zeros(n, dtype=np.int64))
        """(sum_k (1 - l) l^(T-k) r_k r_k' over the bars folded in, returns per symbol).
        Replaced as a whole, never mutated: a reader on another thread sees either the
        state before a bar or the state after it."""
        self._revision = 0
        """Counts the changes (accepted ticks, closed bars) that move the estimates."""
        self._estimate_cache: tuple[tuple[int, bool], _Estimate] | None = None
        """((revision, whether the open bar is folded in), the estimate then): the
        sidecar and the backtest ask for the same estimate several times between ticks."""

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._symbols

    def index(self, symbol: str) -> int:
        try:
            return self._index[symbol]
        except KeyError:
            raise ValueError(f"unknown symbol {symbol!r}: not in this market's universe") from None

    # Input ------------------------------------------------------------------------

    def apply_tick(self, tick: PriceTick) -> list[ClosedBar]:
        """Record a price; return the bar it closes, if it is the first tick of a later bar.

        A tick older than the symbol's last tick is out of order and ignored (returns []).
        A tick newer than the symbol's last one but from a bar already closed (another
        symbol has moved the clock on) counts towards the open bar: bars never reopen.
        """
        i = self.index(tick.symbol)
        if not (math.isfinite(tick.price) and tick.price > 0):
            raise ValueError(f"price of {tick.symbol!r} must be finite and positive, got {tick.price!r}")
        if not math.isfinite(tick.time):
            raise ValueError(f"time of the {tick.symbol!r} tick must be finite, got {tick.time!r}")
        if not self.is_in_order(tick):
            return []
        bar = self._bar_of(tick.time)
        closed = []
        if self._open_bar is not None and bar > self._open_bar:
            closed.append(self._close_open_bar())
        if self._open_bar is None:
            self._open_bar = bar
        self._last_price[i] = tick.price
        self._last_time[i] = tick.time
        self._revision += 1
        return closed

    def is_in_order(self, tick: PriceTick) -> bool:
        """False for a tick older than its symbol's last one (apply_tick ignores it)."""
        return not tick.time < self._last_time[self.index(tick.symbol)]  # NaN: no tick yet

    def advance_to(self, now: float) -> list[ClosedBar]:
        """Close the open bar if `now` is at or past its end (no tick needed)."""
        if self._open_bar is not None and now >= self._bar_end(self._open_bar):
            return [self._close_open_bar()]
        return []

    # Risk estimates ---------------------------------------------------------------

    def covariance(self, provisional: bool = True) -> np.ndarray:
        """Annualised covariance in symbol order; NaN rows and columns for symbols with no return.

        With `provisional`, the open bar's return (last prices against the last close) is
        folded in as if the bar closed now, on a copy: live, and never counted twice.
        Read-only: it is shared by every caller until the estimates move.
        """
        return self._estimate(provisional).covariance

    def average_correlation(self, symbols: Sequence[str] | None = None, provisional: bool = True) -> float:
        """Mean pairwise correlation over `symbols` (all if None) that have enough data.

        Symbols with fewer than `min_observations` returns, or a zero variance, are left
        out: their correlations are noise. 0.0 when fewer than two symbols remain.
        """
        names = self._symbols if symbols is None else dict.fromkeys(symbols)
        indices = np.array([self.index(s) for s in names], dtype=np.intp)
        estimate = self._estimate(provisional)
        variance = np.diag(estimate.covariance)[indices]
        kept = indices[(estimate.observations[indices] >= self._config.min_observations) & (variance > 0)]
        if kept.size < 2:
            return 0.0
        block = covariance_block(estimate.covariance, kept)
        scale = 1 / np.sqrt(np.diag(block))
        k = kept.size
        return float((scale @ block @ scale - k) / (k * (k - 1)))

    def observations(self, symbol: str) -> int:
        """Returns folded into the symbol's estimate (closed bars only)."""
        return int(self._ewma[1][self.index(symbol)])

    def enough_data(self) -> np.ndarray:
        """Per symbol, in symbol order: whether it has `min_observations` returns (closed bars)."""
        return self._ewma[1] >= self._config.min_observations

    # Prices -----------------------------------------------------------------------

    def last_price(self, symbol: str) -> float | None:
        price = self._last_price[self.index(symbol)]
        return None if math.isnan(price) else float(price)

    def last_prices(self, symbols: Sequence[str]) -> np.ndarray:
        """The symbols' last prices (NaN where none yet), as a new array."""
        return self._last_price[[self.index(s) for s in symbols]]

    def last_time(self, symbol: str) -> float | None:
        time = self._last_time[self.index(symbol)]
        return None if math.isnan(time) else float(time)

    def end_history(self) -> None:
        """The prices so far are history (a warm-up), not the market now: a symbol has no live
        price (`live_time` None) until a later tick, however recent its last bar was."""
        self._history_time = self._last_time.copy()

    def live_time(self, symbol: str) -> float | None:
        """When the symbol's last live price was seen; None if none came after the history."""
        i = self.index(symbol)
        time = self._last_time[i]
        return None if math.isnan(time) or time <= self._history_time[i] else float(time)

    def live_price(self, symbol: str) -> float | None:
        """The last price if a live one came after the history (a warm-up's is no price now)."""
        return self.last_price(symbol) if self.live_time(symbol) is not None else None

    def is_stale(self, symbol: str, now: float, max_staleness: float) -> bool:
        """True if the symbol has no live price or its last one is more than max_staleness old."""
        time = self.live_time(symbol)
        return time is None or now - time > max_staleness

    # Internals --------------------------------------------------------------------

    def _bar_end(self, bar: int) -> float:
        return (bar + 1) * self._config.bar_interval

    def _bar_of(self, time: float) -> int:
        """The bar a tick at `time` falls in; a bar already closed never reopens."""
        bar = math.floor(time / self._config.bar_interval)
        if self._last_closed_bar is not None:
            bar = max(bar, self._last_closed_bar + 1)
        return bar

    def _close_open_bar(self) -> ClosedBar:
        closes = self._last_price.copy()
        closes.setflags(write=False)
        returns = provisional = None
        if self._closes is not None:
            returns = np.log(closes / self._closes)
            returns.setflags(write=False)
            # The provisional estimate folded in this very bar: closing it changes nothing.
            provisional = self._cached_estimate(folds_open_bar=True)
            self._ewma = provisional.state if provisional is not None else self._folded(returns)
        bar = ClosedBar(self._bar_end(self._open_bar), closes, returns)
        self._closes = closes
        self._last_closed_bar = self._open_bar
        self._open_bar = None
        self._revision += 1
        if provisional is not None:
            self._estimate_cache = ((self._revision, False), provisional)
        return bar

    def _folded(self, returns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The EWMA state with one more bar of returns in it (NaN: no return), as new arrays."""
        weighted, observations = self._ewma
        r, present = _zero_filled(returns)
        return self._lambda * weighted + np.outer((1 - self._lambda) * r, r), observations + present

    def _open_bar_returns(self) -> np.ndarray | None:
        """The open bar's log returns against the last close, if a bar is open after a close."""
        if self._open_bar is None or self._closes is None:
            return None
        return np.log(self._last_price / self._closes)

    def _estimate(self, provisional: bool) -> _Estimate:
        """The estimate at the current revision, with the open bar folded in (on a copy)
        if provisional; computed once per revision."""
        returns = self._open_bar_returns() if provisional else None
        folds_open_bar = returns is not None
        cached = self._cached_estimate(folds_open_bar)
        if cached is not None:
            return cached
        estimate = _Estimate.of(self._folded(returns) if folds_open_bar else self._ewma,
                                self._lambda, self._config.periods_per_year)
        self._estimate_cache = ((self._revision, folds_open_bar), estimate)
        return estimate

    def _cached_estimate(self, folds_open_bar: bool) -> _Estimate | None:
        cache = self._estimate_cache
        if cache is None or cache[0] != (self._revision, folds_open_bar):
            return None
        return cache[1]


@dataclass(frozen=True, slots=True)
class _Estimate:
    state: tuple[np.ndarray, np.ndarray]
    """The EWMA state it was computed from (weighted sum, returns per symbol)."""
    covariance: np.ndarray
    """Annualised, read-only; NaN rows and columns where a symbol has no return."""

    @property
    def observations(self) -> np.ndarray:
        return self.state[1]

    @classmethod
    def of(cls, state: tuple[np.ndarray, np.ndarray], lam: float, periods_per_year: float) -> _Estimate:
        weighted, observations = state
        scale = _scale(observations, lam) * math.sqrt(periods_per_year)
        covariance = weighted * scale[:, None]
        covariance *= scale[None, :]
        covariance.setflags(write=False)
        return cls(state, covariance)


def covariance_block(matrix: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The rows and columns at `indices` (a copy). Sliced where the indices are a run, the
    usual case (the universe lists each strategy's symbols together when they sort so):
    ten times faster than fancy indexing at 500 symbols."""
    start, stop = int(indices[0]), int(indices[-1]) + 1
    if stop - start == indices.size and (np.diff(indices) == 1).all():  # the span first: cheap
        return matrix[start:stop, start:stop].copy()
    return matrix[np.ix_(indices, indices)]


def _zero_filled(returns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    present = np.isfinite(returns)
    return np.where(present, returns, 0.0), present


def _scale(observations: np.ndarray, lam: float) -> np.ndarray:
    """1 / sqrt(1 - l^n): undoes the weights' shortfall from one; NaN where n = 0."""
    with np.errstate(divide="ignore"):
        return np.where(observations > 0, 1 / np.sqrt(1 - lam ** observations), np.nan)
