"""The budget rules: regime allocation + market risk -> one immutable BudgetSnapshot.

For the regime, e = equity allocation, Lmax = leverage limit and vt = volatility
target; NAV is the portfolio's net asset value. Covariances and volatilities are
the market's annualised, provisional estimates (the open bar included).

Strategies, in config order:
- DYNAMIC when every symbol has `min_observations` returns and a positive variance
  and the risk-budgeting solve converges (it cannot when a singular covariance holds
  a riskless long-only mix). Weights w_s: long-only risk budgeting on the strategy's
  covariance (its `risk_budgets`, else equal risk), warm-started from the previous
  snapshot's weights when the symbol set is unchanged. Forecast volatility
  sigma_s = sqrt(w_s' S_s w_s); leverage limit min(Lmax, vt / sigma_s).
- STATIC otherwise: equal weights and risk contributions; sigma_s over the symbols
  that have data (the others count as riskless, so it is a lower bound), 0 if none;
  leverage limit min(Lmax, limits.static.strategy_leverage).
- allocated capital = NAV * e * risk_share_s.

Book: target weights x_sym = sum_s risk_share_s * w_s[sym] (they sum to one; a symbol
may be in several strategies); forecast volatility sigma_p = sqrt(x' S x), with no
covariance counted where a symbol has no data. Total leverage limit min(Lmax,
vt / sigma_p) if every strategy is DYNAMIC, else min(Lmax, limits.static.total_leverage)
with limit source STATIC.

Symbols: target notional = sum_s allocated_capital_s * leverage_limit_s * w_s[sym];
position limit = target * limits.position_headroom if the symbol is in a DYNAMIC
strategy, else limits.static.symbol_max_notional (limit source STATIC). Risk
contribution: the symbol's share of the book's variance at x. Volatility is 0 and
last price 0 while unknown.

A leverage limit vt / sigma with sigma = 0 (a riskless mix) is taken as Lmax.

With `risk_budgeting.enabled: false` every strategy is STATIC: the dynamic budget is off.

Overrides (see the overrides module), the active ones as given, are applied to the
limits above before symbol limits are derived from them, so a tightened strategy
tightens its symbols too:
- a leverage limit L becomes min(L x the product of the SCALE_LEVERAGE values,
  the CAP_LEVERAGE values, Lmax): each override is a constraint of its own on the
  computed limit, so their order does not matter, and none lifts it above Lmax.
  GLOBAL ones apply to the total and every strategy, STRATEGY ones to their strategy;
- a strategy's allocated capital is bounded by its CAP_STRATEGY_CAPITAL values;
- symbol target notionals use the strategies' limits after overrides (a STATIC
  symbol limit does not derive from them and stays), then a symbol's position
  limit is bounded by its CAP_SYMBOL_POSITION values.
A limit an override changed has limit source OVERRIDE (the snapshot's when the
total changed); whether a strategy is DYNAMIC is judged before overrides.
FORCE_REGIME is the caller's: it passes the forced regime as `regime`. A symbol that
RESTRICT_SYMBOL or `limits.restricted_symbols` names is marked `restricted` (the checks
enforce it); its limit stays as computed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from .config import Config, RegimeAllocation, Strategy
from .erc import ErcResult, risk_contributions, solve_risk_budgeting
from .market_state import MarketState, covariance_block
from .overrides import restricted_symbols
from .types import (
    BudgetSnapshot, LimitSource, Override, OverrideKind, OverrideScope, Regime, StrategyBudget,
    StrategySymbolWeight, SymbolBudget,
)


def compute_budget(
    config: Config,
    market: MarketState,
    regime: Regime,
    *,
    regime_since: float,
    version: int,
    now: float,
    previous: BudgetSnapshot | None = None,
    overrides: Sequence[Override] = (),
) -> BudgetSnapshot:
    """The budget for `regime` on the market's current estimates, with the (active)
    `overrides` applied. Pure: reads, never mutates."""
    allocation = config.risk_budgeting.regime_allocations.for_regime(regime)
    cov = market.covariance()
    enough_data = market.enough_data()
    computed = {
        name: _strategy_budget(name, strategy, config, allocation, market, cov, enough_data,
                               previous.strategies.get(name) if previous is not None else None)
        for name, strategy in config.portfolio.strategies.items()
    }
    strategies = {name: _overridden(budget, overrides, allocation.leverage_limit)
                  for name, budget in computed.items()}

    book = list(dict.fromkeys(sym for s in config.portfolio.strategies.values() for sym in s.symbols))
    position = {sym: i for i, sym in enumerate(book)}
    weights = np.zeros(len(book))
    target_notional = np.zeros(len(book))
    dynamic = np.zeros(len(book), dtype=bool)
    reshaped = np.zeros(len(book), dtype=bool)  # in a strategy an override changed
    for name, budget in strategies.items():
        rows = [position[entry.symbol] for entry in budget.symbols]
        strategy_weights = np.array([entry.weight for entry in budget.symbols])
        weights[rows] += budget.risk_share * strategy_weights  # a strategy's symbols are unique
        target_notional[rows] += budget.max_gross_exposure * strategy_weights
        dynamic[rows] |= computed[name].limit_source is LimitSource.DYNAMIC
        reshaped[rows] |= budget is not computed[name]

    book_indices = _indices(market, book)
    book_cov = _submatrix(cov, book_indices)
    forecast_volatility = math.sqrt(max(weights @ book_cov @ weights, 0.0))
    contributions = risk_contributions(weights, book_cov)
    all_dynamic = all(b.limit_source is LimitSource.DYNAMIC for b in computed.values())
    if all_dynamic:
        computed_total = _vol_targeted(allocation, forecast_volatility)
    else:
        computed_total = min(allocation.leverage_limit, config.limits.static.total_leverage)
    total_leverage_limit = _leverage_after(
        computed_total, [o for o in overrides if o.scope is OverrideScope.GLOBAL],
        allocation.leverage_limit)
    if total_leverage_limit != computed_total:
        limit_source = LimitSource.OVERRIDE
    else:
        limit_source = LimitSource.DYNAMIC if all_dynamic else LimitSource.STATIC

    limits = np.where(dynamic, target_notional * config.limits.position_headroom,
                      config.limits.static.symbol_max_notional)
    sources = [LimitSource.STATIC if not d else LimitSource.OVERRIDE if r else LimitSource.DYNAMIC
               for d, r in zip(dynamic.tolist(), reshaped.tolist())]
    volatility = np.where(enough_data[book_indices], np.sqrt(np.diag(book_cov)), 0.0)
    position_caps: dict[str, list[float]] = {}
    for o in overrides:
        if o.scope is OverrideScope.SYMBOL and o.kind is OverrideKind.CAP_SYMBOL_POSITION:
            position_caps.setdefault(o.target, []).append(o.value)
    prices = market.last_prices(book)
    prices[np.isnan(prices)] = 0.0  # while unknown
    restricted = set(config.limits.restricted_symbols) | restricted_symbols(overrides)
    symbols = {}
    for sym, weight, contribution, limit, source, vol, price in zip(
            book, weights.tolist(), contributions.tolist(), limits.tolist(), sources, volatility.tolist(),
            prices.tolist()):
        capped = min([limit, *position_caps.get(sym, ())])
        symbols[sym] = SymbolBudget(
            symbol=sym,
            target_weight=weight,
            risk_contribution=contribution,
            max_position_notional=capped,
            last_price=price,
            volatility=vol,
            limit_source=LimitSource.OVERRIDE if capped != limit else source,
            restricted=sym in restricted,
        )

    return BudgetSnapshot(
        version=version,
        regime=regime,
        computed_at=now,
        regime_since=regime_since,
        net_asset_value=config.portfolio.net_asset_value,
        equity_allocation=allocation.equity_allocation,
        vol_target=allocation.vol_target,
        regime_leverage_limit=allocation.leverage_limit,
        total_leverage_limit=total_leverage_limit,
        forecast_volatility=forecast_volatility,
        average_correlation=market.average_correlation(book),
        strategies=strategies,
        symbols=symbols,
        limit_source=limit_source,
        shadow_mode=config.sidecar.shadow_mode,
        overrides=tuple(overrides),
    )


def _strategy_budget(name: str, strategy: Strategy, config: Config, allocation: RegimeAllocation,
                     market: MarketState, cov: np.ndarray, enough_data: np.ndarray,
                     previous: StrategyBudget | None) -> StrategyBudget:
    indices = _indices(market, strategy.symbols)
    strategy_cov = _submatrix(cov, indices)
    solved = _risk_budgeting(strategy, config, bool(enough_data[indices].all()), strategy_cov, previous)
    if solved is not None:
        weights, contributions = solved.weights, solved.risk_contributions
        source = LimitSource.DYNAMIC
    else:
        n = len(strategy.symbols)
        weights = contributions = np.full(n, 1.0 / n)
        source = LimitSource.STATIC
    forecast_volatility = math.sqrt(max(weights @ strategy_cov @ weights, 0.0))
    if source is LimitSource.DYNAMIC:
        leverage_limit = _vol_targeted(allocation, forecast_volatility)
    else:
        leverage_limit = min(allocation.leverage_limit, config.limits.static.strategy_leverage)
    return StrategyBudget(
        strategy=name,
        risk_share=strategy.risk_share,
        allocated_capital=(config.portfolio.net_asset_value * allocation.equity_allocation
                           * strategy.risk_share),
        leverage_limit=leverage_limit,
        forecast_volatility=forecast_volatility,
        symbols=tuple(StrategySymbolWeight(sym, float(w), float(c))
                      for sym, w, c in zip(strategy.symbols, weights, contributions)),
        limit_source=source,
    )


def _overridden(budget: StrategyBudget, overrides: Sequence[Override], ceiling: float) -> StrategyBudget:
    """The strategy's budget after the global overrides and its own; itself if none changes it."""
    own = [o for o in overrides if o.scope is OverrideScope.GLOBAL
           or (o.scope is OverrideScope.STRATEGY and o.target == budget.strategy)]
    leverage = _leverage_after(budget.leverage_limit, own, ceiling)
    capital = _capped(budget.allocated_capital, own, OverrideKind.CAP_STRATEGY_CAPITAL)
    if (leverage, capital) == (budget.leverage_limit, budget.allocated_capital):
        return budget
    return dataclasses.replace(budget, leverage_limit=leverage, allocated_capital=capital,
                               limit_source=LimitSource.OVERRIDE)


def _leverage_after(limit: float, overrides: Sequence[Override], ceiling: float) -> float:
    """min(limit x every SCALE_LEVERAGE, every CAP_LEVERAGE, ceiling); `limit` if none applies."""
    scale = math.prod(o.value for o in overrides if o.kind is OverrideKind.SCALE_LEVERAGE)
    caps = [o.value for o in overrides if o.kind is OverrideKind.CAP_LEVERAGE]
    return min(limit * scale, *caps, ceiling)


def _capped(value: float, overrides: Sequence[Override], kind: OverrideKind) -> float:
    """`value` bounded by the values of the overrides of `kind`."""
    return min([value, *(o.value for o in overrides if o.kind is kind)])


def _risk_budgeting(strategy: Strategy, config: Config, enough_data: bool, strategy_cov: np.ndarray,
                    previous: StrategyBudget | None) -> ErcResult | None:
    """The strategy's risk-budgeting solution, or None where it must stay STATIC."""
    if not config.risk_budgeting.enabled or not enough_data or (np.diag(strategy_cov) <= 0).any():
        return None
    budgets = (None if strategy.risk_budgets is None
               else np.array([strategy.risk_budgets[sym] for sym in strategy.symbols]))
    # The market's covariance is finite and symmetric by construction, its diagonal checked above.
    result = solve_risk_budgeting(strategy_cov, budgets, x0=_warm_start(strategy, previous),
                                  check_covariance=False)
    return result if result.converged else None


def _warm_start(strategy: Strategy, previous: StrategyBudget | None) -> np.ndarray | None:
    """The previous solved weights in the strategy's symbol order, if the symbol set is unchanged."""
    if previous is None or previous.limit_source is LimitSource.STATIC:
        return None
    weights = {entry.symbol: entry.weight for entry in previous.symbols}
    if set(weights) != set(strategy.symbols):
        return None
    return np.array([weights[sym] for sym in strategy.symbols])


def _indices(market: MarketState, symbols: Sequence[str]) -> np.ndarray:
    return np.array([market.index(sym) for sym in symbols], dtype=np.intp)


def _submatrix(cov: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The symbols' covariance block (a copy), with 0 where a symbol has no data yet (NaN in cov)."""
    block = covariance_block(cov, indices)
    np.copyto(block, 0.0, where=np.isnan(block))
    return block


def _vol_targeted(allocation: RegimeAllocation, volatility: float) -> float:
    if volatility <= 0:
        return allocation.leverage_limit
    return min(allocation.leverage_limit, allocation.vol_target / volatility)
