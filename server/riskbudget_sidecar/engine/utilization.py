"""How much of the budget the book uses: per strategy, per symbol and in total.

Gross exposure is worst case (positions plus open reservations, in the worse
direction, see Book); ex-ante volatility is that of the positions alone, as
reservations may never fill. Symbols are valued at their last price, stale or
not; a symbol without a price counts 0 notional, and one outside the covariance
adds no volatility. A limit of 0 with something used against it is an infinite
fraction: breached.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import numpy as np

from .book import Book, PriceOf
from .checks import PriceView
from .types import BudgetSnapshot, SymbolUtilization, Utilization, UtilizationReport

def compute_utilization(
    snapshot: BudgetSnapshot,
    book: Book,
    prices: PriceView,
    *,
    covariance: np.ndarray,
    cov_symbols: Sequence[str],
    near_limit_fraction: float,
    now: float,
    strategy: str | None = None,
) -> UtilizationReport:
    """Utilization against `snapshot`; with `strategy`, only it and its symbols (total still whole).

    `covariance` is the annualized covariance of returns, rows and columns in
    `cov_symbols` order. Raises ValueError on a mismatched covariance or a
    strategy the snapshot does not budget.
    """
    price_of = _last_prices(book, prices)
    volatility = _volatility(covariance, cov_symbols, price_of)
    if strategy is not None and strategy not in snapshot.strategies:
        raise ValueError(f"unknown strategy {strategy!r}")

    def usage(gross: float, gross_limit: float, capital: float, leverage_limit: float,
              vol: float) -> Utilization:
        leverage = _ratio(gross, capital)
        ex_ante = _ratio(vol, capital)
        used = max(_ratio(gross, gross_limit), _ratio(leverage, leverage_limit),
                   _ratio(ex_ante, snapshot.vol_target))
        return Utilization(
            gross_exposure=gross,
            gross_exposure_limit=gross_limit,
            allocated_capital=capital,
            leverage=leverage,
            leverage_limit=leverage_limit,
            ex_ante_volatility=ex_ante,
            volatility_limit=snapshot.vol_target,
            utilization=used,
            near_limit=used >= near_limit_fraction,
            breached=used > 1.0,
        )

    nav = snapshot.net_asset_value
    total = usage(
        book.total_gross(price_of), snapshot.max_total_gross_exposure, nav,
        snapshot.total_leverage_limit,
        volatility(_net_positions(book)))

    names = snapshot.strategies if strategy is None else (strategy,)
    strategies: dict[str, Utilization] = {}
    for name in names:
        budget = snapshot.strategies[name]
        strategies[name] = usage(
            book.strategy_gross(name, price_of), budget.max_gross_exposure,
            budget.allocated_capital, budget.leverage_limit,
            volatility({symbol: e.position for symbol, e in book.strategy_exposures(name)}))

    if strategy is None:
        symbols = [*snapshot.symbols, *book.symbols()]
    else:
        symbols = [w.symbol for w in snapshot.strategies[strategy].symbols]
        symbols += [symbol for symbol, _ in book.strategy_exposures(strategy)]
    by_symbol: dict[str, SymbolUtilization] = {}
    for symbol in dict.fromkeys(symbols):
        budget = snapshot.symbols.get(symbol)
        limit = budget.max_position_notional if budget is not None else 0.0
        notional = book.symbol_gross(symbol, price_of)
        used = _ratio(notional, limit)
        by_symbol[symbol] = SymbolUtilization(
            symbol=symbol,
            net_quantity=book.net_exposure(symbol).position,
            position_notional=notional,
            max_position_notional=limit,
            utilization=used,
            near_limit=used >= near_limit_fraction,
            breached=used > 1.0,
        )

    return UtilizationReport(
        budget_version=snapshot.version,
        regime=snapshot.regime,
        budget_computed_at=snapshot.computed_at,
        as_of=now,
        near_limit_fraction=near_limit_fraction,
        total=total,
        strategies=strategies,
        symbols=by_symbol,
    )


def ex_ante_volatility(book: Book, prices: PriceView, *, covariance: np.ndarray,
                       cov_symbols: Sequence[str], nav: float) -> float:
    """compute_utilization's total ex-ante volatility alone (what the volatility trigger
    reads): the book's net positions' annualized volatility, as a fraction of `nav`."""
    volatility = _volatility(covariance, cov_symbols, _last_prices(book, prices))
    return _ratio(volatility(_net_positions(book)), nav)


def _last_prices(book: Book, prices: PriceView) -> PriceOf:
    """The last prices of the symbols the book is exposed in, looked up once: the only ones
    a report values (None: no price)."""
    return {symbol: prices.last_price(symbol) for symbol in book.symbols()}.get


def _net_positions(book: Book) -> dict[str, float]:
    return {symbol: book.net_exposure(symbol).position for symbol in book.symbols()}


def _volatility(covariance: np.ndarray, cov_symbols: Sequence[str],
                price_of: PriceOf) -> Callable[[Mapping[str, float]], float]:
    """The annualized volatility, in currency, of quantities per symbol at `price_of`, at
    `covariance` (rows and columns in `cov_symbols` order, checked here).

    A held symbol with no returns yet (NaN covariance) counts as riskless until it has
    some, and poisons nothing; one outside the covariance adds no volatility.
    """
    covariance = np.asarray(covariance, dtype=float)
    size = len(cov_symbols)
    if covariance.shape != (size, size):
        raise ValueError(f"covariance has shape {covariance.shape}, expected ({size}, {size})")
    known = np.nan_to_num(covariance, nan=0.0)
    index = {symbol: i for i, symbol in enumerate(cov_symbols)}

    def volatility(positions: Mapping[str, float]) -> float:
        notionals = np.zeros(size)
        for symbol, quantity in positions.items():
            i = index.get(symbol)
            if i is not None:
                notionals[i] = quantity * (price_of(symbol) or 0.0)
        return math.sqrt(max(float(notionals @ known @ notionals), 0.0))

    return volatility


def _ratio(used: float, limit: float) -> float:
    """used / limit; with no limit, 0 if nothing is used, else infinite."""
    if limit > 0:
        return used / limit
    return math.inf if used > 0 else 0.0
