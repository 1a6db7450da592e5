"""The comparison: the dynamic budget against static allocations, over one replay.

Three portfolios, all starting at the first row after the warm-up and rebalanced at the
same rows:

- **dynamic**: holds the budget's target notionals, traded through the pre-trade checks
  (see replay.py);
- **static**: the config's static mix (each strategy's risk share spread equally over its
  symbols, the engine's static fallback weights) at a constant gross leverage,
  `limits.static.total_leverage` unless told otherwise, rebalanced back to it every row;
- **matched**: the static mix at the dynamic portfolio's average gross exposure over the
  period (Moreira and Muir's comparison at equal average exposure). It is the only one
  that uses hindsight, by construction: its leverage is known only at the end.

A symbol without a price yet keeps its static weight in cash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..engine.config import Config
from .metrics import Performance, drawdowns, performance, wipe_out
from .prices import PriceTable
from .replay import REGIMES, Progress, Replay, ReplayResult, ReplaySettings

PORTFOLIOS = ("dynamic", "static", "matched")


@dataclass(frozen=True)
class Series:
    """One portfolio over the evaluation window: per period (length n = rows after the start)."""

    returns: np.ndarray
    gross: np.ndarray
    """Gross exposure / equity held into each period."""
    turnover: np.ndarray
    """Notional traded / equity at the start of each period (the first includes the initial buy)."""
    utilization: np.ndarray
    """Total utilization of the dynamic budget held into each period."""
    leverage: float | None = None
    """The constant gross leverage of a static portfolio."""

    @property
    def wiped_out(self) -> int | None:
        """The period in which it lost all its equity (it held nothing after), None if it did not."""
        return wipe_out(self.returns)


@dataclass(frozen=True)
class RegimeStats:
    changes: int
    """Regime changes in the evaluation window."""
    changes_in_warmup: int
    share: dict[str, float]
    """Fraction of the evaluation window's periods spent in each regime."""


@dataclass(frozen=True)
class BacktestResult:
    replay: ReplayResult
    periods_per_year: float
    """Rows a year: market_data.periods_per_year (bars a year) x the rows per bar closed."""
    times: np.ndarray
    """Row times of the evaluation window, from the start row (length n + 1)."""
    series: dict[str, Series]
    performance: dict[str, Performance]
    regimes: RegimeStats
    seconds: float

    @property
    def start_label(self) -> str:
        return self.replay.table.labels[self.replay.start_row]

    @property
    def end_label(self) -> str:
        return self.replay.table.labels[-1]

    def drawdown_reduction(self, against: str) -> float:
        """1 - dynamic max drawdown / the other's: the share of its worst loss avoided."""
        other = self.performance[against].max_drawdown
        mine = self.performance["dynamic"].max_drawdown
        return 1.0 - mine / other if other > 0 else math.nan

    def drawdowns(self, name: str) -> np.ndarray:
        return drawdowns(self.series[name].returns)

    def recommendation_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row, triggers in self.replay.firings:
            if row >= self.replay.start_row:
                for trigger in triggers:
                    counts[trigger.value] = counts.get(trigger.value, 0) + 1
        return counts


def constant_mix(prices: np.ndarray, mix: np.ndarray, leverage: float, start: int, *,
                 rf_per_row: float = 0.0, cost_rate: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A constant-weight portfolio rebalanced every row from `start`: (returns of rows
    start+1..end, gross held into each, turnover at the start of each).

    `prices` are forward-filled (NaN before a symbol's first price); held weights at row i
    are leverage x mix on the symbols priced at row i.
    """
    priced = np.isfinite(prices)
    target = np.where(priced, mix * leverage, 0.0)  # weights held after each row's rebalance
    with np.errstate(invalid="ignore", divide="ignore"):
        move = np.nan_to_num(prices[1:] / prices[:-1] - 1.0)  # row i+1 against row i
    held = target[start:-1]
    moves = move[start:]
    growth = np.einsum("ij,ij->i", held, moves) + rf_per_row * (1.0 - held.sum(axis=1))
    drifted = held * (1.0 + moves) / (1.0 + growth)[:, None]
    turnover = np.empty(len(held))
    turnover[0] = np.abs(target[start]).sum()
    turnover[1:] = np.abs(target[start + 1:-1] - drifted[:-1]).sum(axis=1)
    returns = growth - cost_rate * turnover
    gross = np.abs(held).sum(axis=1)
    lost = wipe_out(returns)
    if lost is not None:  # the equity is gone: nothing is held or traded after
        returns[lost], returns[lost + 1:], gross[lost + 1:], turnover[lost + 1:] = -1.0, 0.0, 0.0, 0.0
    return returns, gross, turnover


def evaluate_replay(replay: ReplayResult, *, periods_per_year: float | None = None) -> BacktestResult:
    """The three portfolios and their metrics over the replay's evaluation window."""
    settings, config = replay.settings, replay.config
    start, rows = replay.start_row, len(replay.returns)
    if rows - start < 2:
        raise ValueError(f"nothing to evaluate: {rows} rows and a warm-up of {start}")
    times = replay.table.times[start:]
    if periods_per_year is None:  # the budget's own: bars a year, times the rows per bar
        bars = max(int(np.count_nonzero(replay.bar_closed[start + 1:])), 1)
        periods_per_year = config.market_data.periods_per_year * (rows - start - 1) / bars
    rf_per_row = settings.risk_free / config.market_data.periods_per_year
    cost_rate = settings.cost_bps / 1e4
    held_rows = slice(start, rows - 1)

    dynamic_turnover = replay.turnover[held_rows].copy()
    dynamic = Series(replay.returns[start + 1:], replay.gross[held_rows], dynamic_turnover,
                     replay.utilization[held_rows])
    static_leverage = (settings.static_leverage if settings.static_leverage is not None
                       else config.limits.static.total_leverage)
    matched_leverage = float(np.mean(dynamic.gross))
    series = {"dynamic": dynamic}
    for name, leverage in (("static", static_leverage), ("matched", matched_leverage)):
        returns, gross, turnover = constant_mix(replay.prices, replay.static_weights, leverage, start,
                                                rf_per_row=rf_per_row, cost_rate=cost_rate)
        series[name] = Series(returns, gross, turnover, replay.unit_utilization[held_rows] * leverage,
                              leverage=leverage)
    measured = {
        name: performance(s.returns, periods_per_year=periods_per_year, risk_free=settings.risk_free,
                          turnover=s.turnover, gross=s.gross, utilization=s.utilization)
        for name, s in series.items()
    }
    codes = replay.regime[start:]
    stats = RegimeStats(
        changes=int(np.count_nonzero(np.diff(replay.regime[start:]))),
        changes_in_warmup=int(np.count_nonzero(np.diff(replay.regime[:start + 1]))),
        share={regime.value: float(np.mean(codes[:-1] == code)) for code, regime in enumerate(REGIMES)},
    )
    return BacktestResult(replay, periods_per_year, times, series, measured, stats, replay.seconds)


def run_backtest(config: Config, table: PriceTable, settings: ReplaySettings = ReplaySettings(), *,
                 progress: Progress | None = None, trace: bool = False) -> BacktestResult:
    """Replay `table` through the engine under `config`, then compare the portfolios."""
    replay = Replay(config, table, settings, trace=trace, progress=progress).run()
    return evaluate_replay(replay)
