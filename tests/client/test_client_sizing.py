"""Position sizing caps a calculated size at what the budget allows."""

import math
from decimal import Decimal

import numpy as np
import pytest

from riskbudget.v1 import types_pb2
from riskbudget_client import max_size_from_budget, position_size


def budget(strategy_gross=100_000.0, symbol_notional=50_000.0):
    return types_pb2.Budget(
        ref=types_pb2.BudgetRef(version=7),
        strategies=[
            types_pb2.StrategyBudget(
                strategy="momentum",
                max_gross_exposure=strategy_gross,
                symbols=[types_pb2.StrategySymbolWeight(symbol="AAPL", weight=1.0)],
            )
        ],
        symbols=[
            types_pb2.SymbolBudget(symbol="AAPL", max_position_notional=symbol_notional),
            types_pb2.SymbolBudget(symbol="MSFT", max_position_notional=symbol_notional),
        ],
    )


def test_max_size_is_the_symbol_limit_over_price_when_it_is_smaller():
    assert (
        max_size_from_budget(budget(symbol_notional=50_000.0), "momentum", "AAPL", 200.0) == 250.0
    )


def test_max_size_is_the_strategy_exposure_over_price_when_it_is_smaller():
    assert max_size_from_budget(budget(strategy_gross=20_000.0), "momentum", "AAPL", 200.0) == 100.0


def test_a_restricted_symbol_is_sized_at_zero():
    restricted = budget()
    restricted.symbols[0].restricted = True

    assert position_size(120.0, restricted, "momentum", "AAPL", 200.0) == 0.0


def test_position_size_keeps_a_calculated_size_within_the_budget():
    assert position_size(120.0, budget(), "momentum", "AAPL", 200.0) == 120.0


def test_position_size_cuts_a_calculated_size_down_to_the_budget():
    assert position_size(1_000.0, budget(), "momentum", "AAPL", 200.0) == 250.0


@pytest.mark.parametrize("price", [0.0, -1.0, math.nan, math.inf])
def test_sizing_refuses_a_price_that_is_not_positive_and_finite(price):
    with pytest.raises(ValueError, match="price must be positive and finite"):
        position_size(10.0, budget(), "momentum", "AAPL", price)


@pytest.mark.parametrize("calculated_size", [-1.0, math.nan, math.inf])
def test_sizing_refuses_a_calculated_size_that_is_not_a_finite_quantity(calculated_size):
    with pytest.raises(ValueError, match="calculated_size must be a finite quantity"):
        position_size(calculated_size, budget(), "momentum", "AAPL", 200.0)


def test_sizing_refuses_a_strategy_missing_from_the_budget():
    with pytest.raises(ValueError, match=r"strategy 'carry' is not in the budget \(version 7\)"):
        max_size_from_budget(budget(), "carry", "AAPL", 200.0)


def test_sizing_refuses_a_symbol_outside_the_strategys_universe():
    with pytest.raises(
        ValueError, match="symbol 'MSFT' is not in the universe of strategy 'momentum'"
    ):
        max_size_from_budget(budget(), "momentum", "MSFT", 200.0)


def test_sizing_refuses_a_symbol_without_a_limit_in_the_budget():
    incomplete = budget()
    del incomplete.symbols[:]

    with pytest.raises(ValueError, match=r"symbol 'AAPL' is not in the budget \(version 7\)"):
        max_size_from_budget(incomplete, "momentum", "AAPL", 200.0)


@pytest.mark.parametrize("field", ["calculated_size", "price"])
@pytest.mark.parametrize("value", [True, "200"])
def test_position_size_refuses_a_size_or_price_that_is_not_a_number(field, value):
    arguments = {"calculated_size": 120.0, "price": 200.0, field: value}

    with pytest.raises(TypeError, match=f"{field} must be a number"):
        position_size(arguments["calculated_size"], budget(), "momentum", "AAPL", arguments["price"])


def test_position_size_takes_decimal_and_numpy_numbers():
    assert position_size(Decimal("120"), budget(), "momentum", "AAPL", np.float64(200.0)) == 120.0


@pytest.mark.parametrize("limit_price, size", [(250.0, 200.0), (150.0, 250.0), (0.0, 250.0), (None, 250.0)])
def test_a_limit_order_is_sized_at_the_larger_of_its_limit_and_the_last_price(limit_price, size):
    """Found by a tester: sized at its limit price below the market (or at the last price with
    its limit above it), an order came back from CheckTrade resized, as CheckTrade values an
    order at the larger of the two."""
    assert position_size(1_000.0, budget(), "momentum", "AAPL", 200.0, limit_price=limit_price) == size


@pytest.mark.parametrize("limit_price, error", [(-1.0, ValueError), (math.nan, ValueError), (True, TypeError)])
def test_sizing_refuses_a_limit_price_that_is_not_a_price(limit_price, error):
    with pytest.raises(error, match="limit_price must"):
        position_size(10.0, budget(), "momentum", "AAPL", 200.0, limit_price=limit_price)
