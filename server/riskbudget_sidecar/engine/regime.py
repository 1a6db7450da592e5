"""Market regime (bull / bear / crisis) from the benchmark's bar closes, causally.

Per bar, four indicators: the benchmark's realized volatility (EWMA of its log
returns with a zero mean, normalised like MarketState's, annualised), its trend
(close / simple moving average of the last `trend_window` closes - 1), its drawdown
from the highest of the last `drawdown_window` closes, and the universe's average
pairwise correlation (given). An indicator that is not defined yet (NaN: volatility
before the second close, trend before `trend_window` closes) gives no signal.

The raw regime is CRISIS if drawdown >= crisis.drawdown, or volatility >=
crisis.volatility, or (correlation >= crisis.correlation and volatility >=
bear.volatility); else BEAR if drawdown >= bear.drawdown, or volatility >=
bear.volatility, or the trend is negative; else BULL.

Hysteresis: the regime switches to a raw regime only once that same raw regime has
been seen on `confirmation_bars` consecutive bars and the current regime has lasted
`min_dwell_bars` bars (bars seen after the one it began on; the initial regime
begins at `start_time`, before any bar).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from .config import RegimeRules
from .types import Regime


@dataclass(frozen=True, slots=True)
class RegimeIndicators:
    volatility: float
    """Annualised realized volatility of the benchmark; NaN before its first return."""
    trend: float
    """close / SMA - 1 (negative: below the average); NaN until trend_window closes."""
    drawdown: float
    """1 - close / the highest of the last drawdown_window closes."""
    average_correlation: float
    bars: int
    """Bars seen so far."""


@dataclass(frozen=True, slots=True)
class RegimeChange:
    previous: Regime
    current: Regime
    time: float
    indicators: RegimeIndicators


class RegimeDetector:
    """Classifies each bar, and switches regime with confirmation and a minimum dwell."""

    def __init__(self, rules: RegimeRules, *, periods_per_year: float, ewma_lambda: float,
                 start_time: float) -> None:
        if not (math.isfinite(periods_per_year) and periods_per_year > 0):
            raise ValueError(f"periods_per_year must be finite and positive, got {periods_per_year!r}")
        if not 0 < ewma_lambda < 1:
            raise ValueError(f"ewma_lambda must be strictly between 0 and 1, got {ewma_lambda!r}")
        if not math.isfinite(start_time):
            raise ValueError(f"start_time must be finite, got {start_time!r}")
        self._rules = rules
        self._periods_per_year = periods_per_year
        self._lambda = ewma_lambda
        self._regime = rules.initial
        self._since = start_time
        self._raw = rules.initial
        self._candidate: Regime | None = None
        self._streak = 0
        """Consecutive bars on which the raw regime was the candidate."""
        self._dwell = 0
        """Bars seen since the current regime began."""
        self._trend_closes: deque[float] = deque(maxlen=rules.trend_window)
        self._drawdown_closes: deque[float] = deque(maxlen=rules.drawdown_window)
        self._weighted_square = 0.0
        self._return_count = 0
        self._indicators = RegimeIndicators(math.nan, math.nan, 0.0, 0.0, 0)

    @property
    def regime(self) -> Regime:
        return self._regime

    @property
    def since(self) -> float:
        return self._since

    @property
    def raw_regime(self) -> Regime:
        """The last bar's classification before hysteresis (the initial regime before any bar)."""
        return self._raw

    @property
    def indicators(self) -> RegimeIndicators:
        return self._indicators

    def carry_over(self, regime: Regime, since: float) -> None:
        """Start in a regime confirmed before a restart, which the warm-up's bars cannot know:
        leaving it takes confirmation and dwell on the bars from here, as after any switch."""
        self._regime, self._since = regime, since
        self._candidate, self._streak, self._dwell = None, 0, 0

    def on_bar(self, time: float, benchmark_close: float, average_correlation: float) -> RegimeChange | None:
        """Fold in one bar; return the change if the regime switches on it. NaN close: skipped."""
        if math.isnan(benchmark_close):
            return None
        if not (math.isfinite(benchmark_close) and benchmark_close > 0):
            raise ValueError(f"benchmark_close must be positive, got {benchmark_close!r}")
        self._indicators = self._update_indicators(benchmark_close, average_correlation)
        self._raw = self._classify(self._indicators)
        self._dwell += 1
        if self._raw is self._regime:
            self._candidate, self._streak = None, 0
            return None
        if self._raw is self._candidate:
            self._streak += 1
        else:
            self._candidate, self._streak = self._raw, 1
        if self._streak < self._rules.confirmation_bars or self._dwell < self._rules.min_dwell_bars:
            return None
        change = RegimeChange(self._regime, self._raw, time, self._indicators)
        self._regime, self._since = self._raw, time
        self._candidate, self._streak, self._dwell = None, 0, 0
        return change

    def _update_indicators(self, close: float, average_correlation: float) -> RegimeIndicators:
        if self._drawdown_closes:  # its last entry is the previous close
            r = math.log(close / self._drawdown_closes[-1])
            self._weighted_square = self._lambda * self._weighted_square + (1 - self._lambda) * r * r
            self._return_count += 1
        self._trend_closes.append(close)
        self._drawdown_closes.append(close)
        volatility = math.nan
        if self._return_count:
            variance = self._weighted_square / (1 - self._lambda ** self._return_count)
            volatility = math.sqrt(variance * self._periods_per_year)
        trend = math.nan
        if len(self._trend_closes) == self._rules.trend_window:
            trend = close / (sum(self._trend_closes) / len(self._trend_closes)) - 1
        drawdown = 1 - close / max(self._drawdown_closes)
        return RegimeIndicators(volatility, trend, drawdown, average_correlation, self._indicators.bars + 1)

    def _classify(self, x: RegimeIndicators) -> Regime:
        """The raw regime; comparisons with a NaN indicator are false, i.e. no signal."""
        bear, crisis = self._rules.bear, self._rules.crisis
        if (x.drawdown >= crisis.drawdown or x.volatility >= crisis.volatility
                or (x.average_correlation >= crisis.correlation and x.volatility >= bear.volatility)):
            return Regime.CRISIS
        if x.drawdown >= bear.drawdown or x.volatility >= bear.volatility or x.trend < 0:
            return Regime.BEAR
        return Regime.BULL
