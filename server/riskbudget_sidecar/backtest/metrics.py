"""Performance metrics of a series of periodic returns (numpy only).

Conventions (returns are simple returns per period, `periods_per_year` of them a year):

- annual return: geometric, (prod(1 + r))^(periods_per_year / n) - 1;
- annual volatility: sample standard deviation (ddof 1) x sqrt(periods_per_year);
- Sharpe: mean(r - rf / periods_per_year) / std(r) x sqrt(periods_per_year);
- drawdown: 1 - equity / its running peak, the equity starting at 1 before the first
  return; max drawdown is its largest value;
- Calmar: annual return / max drawdown;
- worst day: the smallest single-period return;
- volatility of volatility: the standard deviation (ddof 1) of the rolling realized
  volatility (annualized, over `window` periods: one year by default), as in Harvey et
  al. (2018);
- turnover: notional traded / equity, summed and divided by the years.

Undefined values (too few returns, a zero denominator) are NaN.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


def equity_curve(returns: np.ndarray) -> np.ndarray:
    """Equity after each return, starting from 1 (length n + 1, the first entry 1)."""
    return np.concatenate([[1.0], np.cumprod(1.0 + np.asarray(returns, dtype=float))])


def wipe_out(returns: np.ndarray) -> int | None:
    """The first period whose return loses all the equity (-100% or worse), None if none does."""
    lost = np.flatnonzero(np.asarray(returns, dtype=float) <= -1.0)
    return int(lost[0]) if lost.size else None


def drawdowns(returns: np.ndarray) -> np.ndarray:
    """1 - equity / running peak, per point of the equity curve (length n + 1)."""
    equity = equity_curve(returns)
    return 1.0 - equity / np.maximum.accumulate(equity)


def max_drawdown(returns: np.ndarray) -> float:
    return float(drawdowns(returns).max()) if len(returns) else math.nan


def annual_return(returns: np.ndarray, periods_per_year: float) -> float:
    n = len(returns)
    if n == 0:
        return math.nan
    growth = float(np.prod(1.0 + np.asarray(returns, dtype=float)))
    if growth <= 0:
        return -1.0
    return growth ** (periods_per_year / n) - 1.0


def annual_volatility(returns: np.ndarray, periods_per_year: float) -> float:
    if len(returns) < 2:
        return math.nan
    return float(np.std(returns, ddof=1)) * math.sqrt(periods_per_year)


def sharpe_ratio(returns: np.ndarray, periods_per_year: float, risk_free: float = 0.0) -> float:
    if len(returns) < 2:
        return math.nan
    excess = np.asarray(returns, dtype=float) - risk_free / periods_per_year
    spread = float(np.std(excess, ddof=1))
    if spread == 0:
        return math.nan
    return float(np.mean(excess)) / spread * math.sqrt(periods_per_year)


def rolling_volatility(returns: np.ndarray, window: int, periods_per_year: float) -> np.ndarray:
    """Annualized sample volatility over each run of `window` consecutive returns
    (length n - window + 1; empty when n < window)."""
    r = np.asarray(returns, dtype=float)
    if window < 2:
        raise ValueError(f"window must be at least 2, got {window!r}")
    if len(r) < window:
        return np.empty(0)
    # Demeaned first so the running sums do not lose precision to a large mean.
    r = r - r.mean()
    s1 = np.concatenate([[0.0], np.cumsum(r)])
    s2 = np.concatenate([[0.0], np.cumsum(r * r)])
    total = s1[window:] - s1[:-window]
    squares = s2[window:] - s2[:-window]
    variance = np.maximum((squares - total * total / window) / (window - 1), 0.0)
    return np.sqrt(variance * periods_per_year)


def vol_of_vol(returns: np.ndarray, window: int, periods_per_year: float) -> float:
    rolling = rolling_volatility(returns, window, periods_per_year)
    return float(np.std(rolling, ddof=1)) if len(rolling) >= 2 else math.nan


def _ratio(numerator: float, denominator: float) -> float:
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator == 0:
        return math.nan
    return numerator / denominator


@dataclass(frozen=True)
class Performance:
    annual_return: float
    annual_volatility: float
    sharpe: float
    max_drawdown: float
    calmar: float
    worst_day: float
    vol_of_vol: float
    turnover: float
    """Per year: notional traded / equity."""
    average_gross: float
    """Average gross exposure / equity."""
    average_utilization: float
    """Average total utilization of the dynamic budget (max of gross and volatility use)."""
    final_equity: float
    periods: int

    def as_dict(self) -> dict[str, float]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}


def performance(returns: np.ndarray, *, periods_per_year: float, risk_free: float = 0.0,
                vol_window: int | None = None, turnover: np.ndarray | None = None,
                gross: np.ndarray | None = None, utilization: np.ndarray | None = None) -> Performance:
    """The metrics of `returns`; `turnover` (per period, summed), `gross` and `utilization`
    (averaged) are optional series over the same periods."""
    r = np.asarray(returns, dtype=float)
    n = len(r)
    years = n / periods_per_year if periods_per_year > 0 else math.nan
    window = vol_window or max(2, int(round(periods_per_year)))
    drawdown = max_drawdown(r)
    growth = annual_return(r, periods_per_year)
    return Performance(
        annual_return=growth,
        annual_volatility=annual_volatility(r, periods_per_year),
        sharpe=sharpe_ratio(r, periods_per_year, risk_free),
        max_drawdown=drawdown,
        calmar=_ratio(growth, drawdown),
        worst_day=float(r.min()) if n else math.nan,
        vol_of_vol=vol_of_vol(r, window, periods_per_year),
        turnover=_ratio(float(np.sum(turnover)), years) if turnover is not None else math.nan,
        average_gross=float(np.mean(gross)) if gross is not None and len(gross) else math.nan,
        average_utilization=(float(np.nanmean(utilization))
                             if utilization is not None and np.isfinite(utilization).any() else math.nan),
        final_equity=float(np.prod(1.0 + r)) if n else 1.0,
        periods=n,
    )
