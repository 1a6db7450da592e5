"""Rebalancing recommendations: the budget's target allocation, the book's current one,
and how far apart the two are.

Allocations are per (strategy, symbol): a notional and its weight, notional / NAV.
The target is the budget's (allocated capital x leverage limit x the strategy's
symbol weight, at the limits after overrides); the rebalancer merges it with its
own strategy allocation.

Drift is about the mix inside a strategy, not its size: for a strategy holding
positions, its current notionals and its target notionals are each divided by
the sum of their absolute values over the strategy's symbols, and the drift is
the total-variation distance between the two vectors, 1/2 sum_i |c_i - t_i|.
It is 0 when the positions have the target's proportions, whatever their scale,
and at most 1 (disjoint symbols, or every position the opposite way). How much
of the budget a strategy uses is utilization's concern, not drift's.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from .book import Book, PriceOf
from .types import BudgetSnapshot, Recommendation, RecommendationTrigger, SymbolAllocation


def target_allocation(snapshot: BudgetSnapshot) -> tuple[SymbolAllocation, ...]:
    """Per strategy and symbol, in the budget's order: the target notional and its weight."""
    allocations = []
    for name, budget in snapshot.strategies.items():
        for entry in budget.symbols:
            notional = budget.max_gross_exposure * entry.weight
            allocations.append(SymbolAllocation(name, entry.symbol, notional / snapshot.net_asset_value,
                                                notional))
    return tuple(allocations)


def current_allocation(book: Book, price_of: PriceOf, nav: float) -> tuple[SymbolAllocation, ...]:
    """Per held position, sorted by strategy and symbol: its signed notional at the last
    price (0 without a price) and its weight. Reservations are not allocations."""
    allocations = []
    for position in sorted(book.positions(), key=lambda p: (p.strategy, p.symbol)):
        notional = position.quantity * (price_of(position.symbol) or 0.0)
        allocations.append(SymbolAllocation(position.strategy, position.symbol, notional / nav, notional))
    return tuple(allocations)


def strategy_drift(target: Iterable[SymbolAllocation],
                   current: Iterable[SymbolAllocation]) -> dict[str, float]:
    """Per strategy with a target and non-zero current positions: the total-variation
    distance between its current and target within-strategy mixes (module docstring)."""
    targets = _mixes(target)
    drift = {}
    for strategy, held in _mixes(current).items():
        wanted = targets.get(strategy)
        if wanted is None:
            continue
        symbols = dict.fromkeys([*wanted, *held])  # ordered, so the sum is the same every run
        drift[strategy] = 0.5 * sum(abs(held.get(s, 0.0) - wanted.get(s, 0.0)) for s in symbols)
    return drift


def build_recommendation(
    *,
    triggers: Iterable[RecommendationTrigger],
    reason: str,
    snapshot: BudgetSnapshot,
    book: Book,
    price_of: PriceOf,
    now: float,
    requires_rebalancing: bool = True,
) -> Recommendation:
    """A recommendation against `snapshot` with the book as it stands; sequence 0 until logged."""
    return Recommendation(
        sequence=0,
        triggers=tuple(triggers),
        reason=reason,
        budget_version=snapshot.version,
        regime=snapshot.regime,
        budget_computed_at=snapshot.computed_at,
        target_allocation=target_allocation(snapshot),
        current_allocation=current_allocation(book, price_of, snapshot.net_asset_value),
        requires_rebalancing=requires_rebalancing,
        created_at=now,
    )


def _mixes(allocations: Iterable[SymbolAllocation]) -> dict[str, dict[str, float]]:
    """strategy -> symbol -> notional / the strategy's gross notional; flat strategies left out."""
    notionals: dict[str, dict[str, float]] = defaultdict(dict)
    for allocation in allocations:
        symbols = notionals[allocation.strategy]
        symbols[allocation.symbol] = symbols.get(allocation.symbol, 0.0) + allocation.notional
    mixes = {}
    for strategy, symbols in notionals.items():
        gross = sum(abs(n) for n in symbols.values())
        if gross > 0:
            mixes[strategy] = {symbol: n / gross for symbol, n in symbols.items()}
    return mixes
