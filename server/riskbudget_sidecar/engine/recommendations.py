"""Rebalancing recommendations: the budget's target allocation, the book's current one,
and how far apart the two are.

Allocations are per (strategy, symbol): a notional and its weight, notional / NAV.
The target is the budget's (allocated capital x leverage limit x the strategy's
symbol weight, at the limits after overrides), within each symbol's position
limit: where the strategies' targets in a symbol add up to more than its limit
(0 for a restricted symbol), each is scaled down alike, so that no target asks
for what CheckTrade would refuse. The rebalancer merges it with its own strategy
allocation.

Drift is about the mix inside a strategy, not its size: for a strategy holding
positions, its current notionals and its target notionals are each divided by
the sum of their absolute values over the strategy's symbols, and the drift is
the total-variation distance between the two vectors, 1/2 sum_i |c_i - t_i|.
It is 0 when the positions have the target's proportions, whatever their scale,
and at most 1 (disjoint symbols, or every position the opposite way); it is 1 for a
strategy holding positions whose whole target is 0 (every symbol restricted), as
everything it holds is to go. How much
of the budget a strategy uses is utilization's concern, not drift's.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Iterator

from .book import Book, PriceOf
from .types import BudgetSnapshot, Recommendation, RecommendationTrigger, SymbolAllocation


_Notionals = Iterable[tuple[str, str, float]]
"""(strategy, symbol, notional) per allocation."""


def target_allocation(snapshot: BudgetSnapshot) -> tuple[SymbolAllocation, ...]:
    """Per strategy and symbol, in the budget's order: the target notional and its weight."""
    return _allocations(target_notionals(snapshot), snapshot.net_asset_value)


def target_notionals(snapshot: BudgetSnapshot) -> Iterator[tuple[str, str, float]]:
    """target_allocation's (strategy, symbol, notional), without the allocations."""
    wanted = [(name, entry.symbol, budget.max_gross_exposure * entry.weight)
              for name, budget in snapshot.strategies.items() for entry in budget.symbols]
    per_symbol: dict[str, float] = defaultdict(float)
    for _, symbol, notional in wanted:
        per_symbol[symbol] += abs(notional)
    for name, symbol, notional in wanted:
        limit = _position_limit(snapshot, symbol)
        total = per_symbol[symbol]
        yield name, symbol, notional * (limit / total if total > limit else 1.0)


def _position_limit(snapshot: BudgetSnapshot, symbol: str) -> float:
    """The most a symbol's position may be worth: its limit, 0 if restricted, unbounded if none."""
    budget = snapshot.symbols.get(symbol)
    if budget is None:
        return float("inf")
    return 0.0 if budget.restricted else budget.max_position_notional


def target_changes(before: BudgetSnapshot, after: BudgetSnapshot) -> dict[str, float]:
    """Per strategy whose targets moved from `before` to `after`: the sum over its symbols of
    |after - before|, over the larger of its two target grosses (0 to 2). Drift compares mixes
    only, so this is what tells of a change of size (an operator's override or reload)."""
    moved: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))
    for side, snapshot in enumerate((before, after)):
        for strategy, symbol, notional in target_notionals(snapshot):
            moved[strategy][symbol][side] += notional
    changes = {}
    for strategy, symbols in moved.items():
        larger = max(sum(abs(pair[side]) for pair in symbols.values()) for side in (0, 1))
        change = sum(abs(now - then) for then, now in symbols.values())
        if change > 0 and larger > 0:
            changes[strategy] = change / larger
    return changes


def current_allocation(book: Book, price_of: PriceOf, nav: float) -> tuple[SymbolAllocation, ...]:
    """Per held position, sorted by strategy and symbol: its signed notional at the last
    price (0 without a price) and its weight. Reservations are not allocations."""
    return _allocations(_current_notionals(book, price_of), nav)


def strategy_drift(target: Iterable[SymbolAllocation],
                   current: Iterable[SymbolAllocation]) -> dict[str, float]:
    """Per strategy with a target and non-zero current positions: the total-variation
    distance between its current and target within-strategy mixes (module docstring)."""
    return _drift(_mixes(_notionals(target)), _mixes(_notionals(current)))


def book_drift(snapshot: BudgetSnapshot, book: Book, price_of: PriceOf) -> dict[str, float]:
    """strategy_drift(target_allocation(snapshot), current_allocation(book, price_of, nav)):
    the same figures, from the same notionals, without building the allocations."""
    return _drift(_mixes(target_notionals(snapshot)), _mixes(_current_notionals(book, price_of)))


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


def _current_notionals(book: Book, price_of: PriceOf) -> Iterator[tuple[str, str, float]]:
    for (strategy, symbol), quantity in sorted(book.quantities().items()):
        yield strategy, symbol, quantity * (price_of(symbol) or 0.0)


def _notionals(allocations: Iterable[SymbolAllocation]) -> _Notionals:
    return ((a.strategy, a.symbol, a.notional) for a in allocations)


def _allocations(notionals: _Notionals, nav: float) -> tuple[SymbolAllocation, ...]:
    return tuple(SymbolAllocation(strategy, symbol, notional / nav, notional)
                 for strategy, symbol, notional in notionals)


def _drift(targets: dict[str, dict[str, float]], current: dict[str, dict[str, float]]) -> dict[str, float]:
    """Per strategy holding positions: the total-variation distance between its mixes; 1 (all of
    it off target) where its whole target is 0, every symbol restricted, say."""
    drift = {}
    for strategy, held in current.items():
        wanted = targets.get(strategy)
        if wanted is None:
            drift[strategy] = 1.0
            continue
        symbols = dict.fromkeys([*wanted, *held])  # ordered, so the sum is the same every run
        drift[strategy] = 0.5 * sum(abs(held.get(s, 0.0) - wanted.get(s, 0.0)) for s in symbols)
    return drift


def _mixes(notionals: _Notionals) -> dict[str, dict[str, float]]:
    """strategy -> symbol -> notional / the strategy's gross notional; flat strategies left out."""
    by_strategy: dict[str, dict[str, float]] = defaultdict(dict)
    for strategy, symbol, notional in notionals:
        symbols = by_strategy[strategy]
        symbols[symbol] = symbols.get(symbol, 0.0) + notional
    mixes = {}
    for strategy, symbols in by_strategy.items():
        gross = sum(abs(n) for n in symbols.values())
        if gross > 0:
            mixes[strategy] = {symbol: n / gross for symbol, n in symbols.items()}
    return mixes
