"""A seeded synthetic price history, to warm a fresh sidecar up without any data file."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def synthetic_prices(
    symbols: Sequence[str],
    *,
    bars: int,
    seed: int,
    annual_volatility: float,
    annual_drift: float,
    correlation: float,
    periods_per_year: float,
    start_price: float = 100.0,
) -> np.ndarray:
    """Closes of shape (bars, len(symbols)): a one-factor correlated geometric random walk.

    Row 0 is `start_price` for every symbol. Each later log return is
    (mu - sigma^2 / 2) dt + sigma sqrt(dt) (sqrt(rho) f + sqrt(1 - rho) e), with one
    common standard normal f per bar and an own one e per symbol, so every pair of
    symbols has correlation rho and every symbol expected growth mu a year.
    The same arguments always give the same prices (numpy's default_rng(seed)).
    """
    n = len(symbols)
    if n == 0:
        raise ValueError("symbols must name at least one symbol")
    if bars < 0:
        raise ValueError(f"bars must be non-negative, got {bars!r}")
    if not (math.isfinite(annual_volatility) and annual_volatility >= 0):
        raise ValueError(f"annual_volatility must be finite and non-negative, got {annual_volatility!r}")
    if not math.isfinite(annual_drift):
        raise ValueError(f"annual_drift must be finite, got {annual_drift!r}")
    if not 0 <= correlation < 1:
        raise ValueError(f"correlation must be in [0, 1), got {correlation!r}")
    if not (math.isfinite(periods_per_year) and periods_per_year > 0):
        raise ValueError(f"periods_per_year must be finite and positive, got {periods_per_year!r}")
    if not (math.isfinite(start_price) and start_price > 0):
        raise ValueError(f"start_price must be finite and positive, got {start_price!r}")
    if bars == 0:
        return np.empty((0, n))

    dt = 1.0 / periods_per_year
    shocks = np.random.default_rng(seed).standard_normal((bars - 1, n + 1))
    common, own = shocks[:, :1], shocks[:, 1:]
    mixed = math.sqrt(correlation) * common + math.sqrt(1 - correlation) * own
    returns = (annual_drift - annual_volatility**2 / 2) * dt + annual_volatility * math.sqrt(dt) * mixed
    log_paths = np.vstack([np.zeros((1, n)), np.cumsum(returns, axis=0)])
    return start_price * np.exp(log_paths)
