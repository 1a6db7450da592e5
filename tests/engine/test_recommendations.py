import dataclasses

import pytest

from riskbudget_sidecar.engine.book import Book
from riskbudget_sidecar.engine.recommendations import (
    book_drift, build_recommendation, current_allocation, strategy_drift, target_allocation,
    target_notionals,
)
from riskbudget_sidecar.engine.types import (
    Position, RecommendationTrigger, Regime, StrategySymbolWeight, SymbolAllocation,
)

from .builders import NOW, make_snapshot, reservation, strategy_budget, symbol_budget

NAV = 1_000_000.0
PRICES = {"AAA": 100.0, "BBB": 50.0, "CCC": 20.0}


def snapshot():
    """alpha: 400k capital x 1.5 in AAA 60% / BBB 40%; beta: 200k x 1 in AAA and CCC, half each."""
    alpha = dataclasses.replace(
        strategy_budget("alpha", capital=400_000.0, leverage=1.5, symbols=("AAA", "BBB")),
        symbols=(StrategySymbolWeight("AAA", 0.6, 0.5), StrategySymbolWeight("BBB", 0.4, 0.5)))
    beta = strategy_budget("beta", capital=200_000.0, symbols=("AAA", "CCC"))
    return make_snapshot([alpha, beta], [symbol_budget(s, max_notional=1e9) for s in PRICES], nav=NAV)


def book_of(*positions: tuple[str, str, float]) -> Book:
    book = Book()
    book.set_positions([Position(*p) for p in positions])
    return book


def allocation(strategy: str, symbol: str, notional: float) -> SymbolAllocation:
    return SymbolAllocation(strategy, symbol, notional / NAV, notional)


# Target and current -------------------------------------------------------------------


def test_target_allocation_is_capital_times_leverage_times_weight_per_strategy_and_symbol():
    target = target_allocation(snapshot())

    assert [(a.strategy, a.symbol) for a in target] == [
        ("alpha", "AAA"), ("alpha", "BBB"), ("beta", "AAA"), ("beta", "CCC")]
    assert [a.notional for a in target] == pytest.approx([360_000.0, 240_000.0, 100_000.0, 100_000.0])
    assert [a.weight for a in target] == pytest.approx([0.36, 0.24, 0.1, 0.1])


def test_target_notionals_are_the_target_allocations_without_the_weights():
    budget = snapshot()

    assert list(target_notionals(budget)) == [(a.strategy, a.symbol, a.notional)
                                              for a in target_allocation(budget)]


def test_targets_in_a_symbol_keep_within_its_position_limit_and_a_restricted_symbol_gets_none():
    snapshot = make_snapshot(
        [strategy_budget("alpha", capital=400_000, symbols=("AAA", "BBB")),
         strategy_budget("beta", capital=200_000, symbols=("AAA", "CCC"))],
        [symbol_budget("AAA", max_notional=150_000), symbol_budget("BBB", max_notional=1e9),
         dataclasses.replace(symbol_budget("CCC", max_notional=1e9), restricted=True)])

    targets = {(strategy, symbol): notional for strategy, symbol, notional in target_notionals(snapshot)}

    # AAA: alpha 200,000 and beta 100,000 wanted, 150,000 allowed: both halved
    assert targets == pytest.approx({("alpha", "AAA"): 100_000, ("alpha", "BBB"): 200_000,
                                     ("beta", "AAA"): 50_000, ("beta", "CCC"): 0.0})


def test_current_allocation_values_positions_at_last_prices_signed_and_sorted():
    book = book_of(("beta", "CCC", -1_000.0), ("alpha", "BBB", 200.0), ("alpha", "AAA", 300.0))

    current = current_allocation(book, PRICES.get, NAV)

    assert current == (allocation("alpha", "AAA", 30_000.0), allocation("alpha", "BBB", 10_000.0),
                       allocation("beta", "CCC", -20_000.0))


def test_current_allocation_leaves_out_reservations_and_values_an_unpriced_symbol_at_zero():
    book = book_of(("alpha", "AAA", 10.0), ("alpha", "NEW", 5.0))
    book.reserve(reservation(50.0, strategy="alpha", symbol="BBB"))

    current = current_allocation(book, PRICES.get, NAV)

    assert current == (allocation("alpha", "AAA", 1_000.0), allocation("alpha", "NEW", 0.0))


# Drift --------------------------------------------------------------------------------


def test_strategy_drift_when_positions_have_the_target_proportions_at_any_scale_is_zero():
    target = target_allocation(snapshot())
    current = [allocation("alpha", "AAA", 6_000.0), allocation("alpha", "BBB", 4_000.0)]

    assert strategy_drift(target, current) == {"alpha": pytest.approx(0.0, abs=1e-15)}


def test_strategy_drift_is_half_the_sum_of_absolute_differences_of_the_within_strategy_mixes():
    target = target_allocation(snapshot())  # alpha: AAA 0.6, BBB 0.4
    current = [allocation("alpha", "AAA", 8_000.0), allocation("alpha", "BBB", 2_000.0)]

    drift = strategy_drift(target, current)

    assert drift == {"alpha": pytest.approx(0.5 * (abs(0.8 - 0.6) + abs(0.2 - 0.4)))}


def test_strategy_drift_counts_a_symbol_outside_the_target_and_a_short_against_a_long_target():
    target = target_allocation(snapshot())  # beta: AAA 0.5, CCC 0.5
    current = [allocation("beta", "AAA", 5_000.0), allocation("beta", "BBB", 5_000.0),
               allocation("alpha", "AAA", -6_000.0), allocation("alpha", "BBB", -4_000.0)]

    drift = strategy_drift(target, current)

    assert drift == {"beta": pytest.approx(0.5), "alpha": pytest.approx(1.0)}


def test_strategy_drift_leaves_out_flat_strategies_and_is_whole_for_a_strategy_without_a_target():
    target = target_allocation(snapshot())
    current = [allocation("alpha", "AAA", 0.0), allocation("gamma", "AAA", 1_000.0)]

    assert strategy_drift(target, current) == {"gamma": 1.0}


def test_a_strategy_holding_positions_whose_every_symbol_is_restricted_drifts_wholly():
    """Found by a tester: restricting every symbol of a strategy (its target 0) made no
    recommendation to close what it held, while restricting one of them did."""
    restricted = dataclasses.replace(snapshot(), symbols={
        name: dataclasses.replace(budget, restricted=name in ("AAA", "CCC"))
        for name, budget in snapshot().symbols.items()})
    book = book_of(("alpha", "AAA", 4_000.0), ("alpha", "BBB", 4_800.0), ("beta", "AAA", 500.0),
                   ("beta", "CCC", 2_500.0))

    drift = book_drift(restricted, book, PRICES.get)

    assert drift["beta"] == 1.0  # AAA and CCC both restricted: everything beta holds is to go
    assert 0 < drift["alpha"] < 1  # only AAA of its two restricted


def test_book_drift_is_the_drift_of_the_current_allocation_from_the_target_to_the_last_bit():
    book = book_of(("beta", "CCC", -1_000.0), ("alpha", "BBB", 210.0), ("alpha", "AAA", 301.0),
                   ("beta", "AAA", 7.0), ("gamma", "AAA", 3.0))
    budget = snapshot()

    drift = book_drift(budget, book, PRICES.get)

    assert drift == strategy_drift(target_allocation(budget), current_allocation(book, PRICES.get, NAV))
    assert set(drift) == {"alpha", "beta", "gamma"}


# Recommendation -----------------------------------------------------------------------


def test_build_recommendation_carries_the_budget_the_triggers_and_both_allocations():
    budget = snapshot()
    book = book_of(("alpha", "AAA", 300.0))

    recommendation = build_recommendation(
        triggers=(RecommendationTrigger.DRIFT, RecommendationTrigger.VOL_BREACH),
        reason="drift 14.2% in alpha above the 10% threshold", snapshot=budget, book=book,
        price_of=PRICES.get, now=NOW)

    assert recommendation.sequence == 0
    assert recommendation.triggers == (RecommendationTrigger.DRIFT, RecommendationTrigger.VOL_BREACH)
    assert recommendation.reason == "drift 14.2% in alpha above the 10% threshold"
    assert (recommendation.budget_version, recommendation.regime, recommendation.budget_computed_at) == (
        budget.version, Regime.BULL, budget.computed_at)
    assert recommendation.target_allocation == target_allocation(budget)
    assert recommendation.current_allocation == (allocation("alpha", "AAA", 30_000.0),)
    assert recommendation.requires_rebalancing is True
    assert recommendation.created_at == NOW


def test_build_recommendation_may_be_informational():
    recommendation = build_recommendation(
        triggers=(RecommendationTrigger.MANUAL,), reason="look", snapshot=snapshot(), book=Book(),
        price_of=PRICES.get, now=NOW, requires_rebalancing=False)

    assert recommendation.requires_rebalancing is False
    assert recommendation.current_allocation == ()
