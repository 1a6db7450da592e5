"""Utilization of the budget, checked by hand on a small book.

The book: NAV 1,000,000, vol target 10%, total leverage limit 0.5.
alpha (capital 200,000, leverage 1.5): long 1,000 AAA at 100, short 1,000 BBB at 50.
beta (capital 300,000, leverage 1.0): long 500 AAA, and a buy of 500 AAA in flight.
Annual volatilities: AAA 20%, BBB 30% (correlation 0.5), CCC 10%.
"""

import math

import numpy as np
import pytest

from riskbudget_sidecar.engine.book import Book
from riskbudget_sidecar.engine.types import Position, Regime
from riskbudget_sidecar.engine.utilization import compute_utilization, ex_ante_volatility
from tests.engine.builders import (
    NOW, FakePrices, make_snapshot, reservation, strategy_budget, symbol_budget,
)

COV_SYMBOLS = ("AAA", "BBB", "CCC")
COVARIANCE = np.array([[0.04, 0.03, 0.00],
                       [0.03, 0.09, 0.00],
                       [0.00, 0.00, 0.01]])


def small_book() -> Book:
    book = Book()
    book.set_positions([Position("alpha", "AAA", 1_000), Position("alpha", "BBB", -1_000),
                        Position("beta", "AAA", 500)])
    book.reserve(reservation(500, client_order_id="b-1", strategy="beta"))
    return book


def budget(*, bbb_limit: float = 100_000, alpha_capital: float = 200_000):
    return make_snapshot(
        [strategy_budget("alpha", capital=alpha_capital, leverage=1.5, symbols=("AAA", "BBB")),
         strategy_budget("beta", capital=300_000, leverage=1.0, symbols=("AAA", "CCC"))],
        [symbol_budget("AAA", max_notional=250_000), symbol_budget("BBB", max_notional=bbb_limit),
         symbol_budget("CCC", max_notional=100_000)],
        nav=1_000_000, total_leverage_limit=0.5, vol_target=0.10, version=7)


def utilization(snapshot=None, book=None, prices=None, **kwargs):
    return compute_utilization(
        snapshot or budget(), book or small_book(),
        prices or FakePrices({"AAA": 100.0, "BBB": 50.0, "CCC": 20.0}),
        covariance=COVARIANCE, cov_symbols=COV_SYMBOLS, near_limit_fraction=0.8, now=NOW,
        **kwargs)


def test_strategy_usage_matches_the_hand_computation():
    alpha = utilization().strategies["alpha"]

    assert alpha.gross_exposure == 150_000  # 100,000 + 50,000
    assert alpha.gross_exposure_limit == 300_000
    assert alpha.allocated_capital == 200_000
    assert alpha.leverage == 0.75
    assert alpha.leverage_limit == 1.5
    # v = (100,000, -50,000): v'Sv = 4e8 + 2.25e8 - 3e8 = 3.25e8
    assert alpha.ex_ante_volatility == pytest.approx(math.sqrt(3.25e8) / 200_000)
    assert alpha.volatility_limit == 0.10
    assert alpha.utilization == pytest.approx(math.sqrt(3.25e8) / 200_000 / 0.10)  # 0.901
    assert (alpha.near_limit, alpha.breached) == (True, False)


def test_strategy_gross_counts_reservations_but_volatility_does_not():
    beta = utilization().strategies["beta"]

    assert beta.gross_exposure == 100_000  # 500 held + 500 in flight, at 100
    assert beta.ex_ante_volatility == pytest.approx(50_000 * 0.2 / 300_000)
    assert beta.utilization == pytest.approx(1 / 3)
    assert (beta.near_limit, beta.breached) == (False, False)


def test_total_usage_is_the_whole_book_against_nav():
    total = utilization().total

    assert total.gross_exposure == 250_000
    assert total.gross_exposure_limit == 500_000
    assert total.allocated_capital == 1_000_000
    assert total.leverage == 0.25
    assert total.leverage_limit == 0.5
    # net v = (150,000, -50,000): v'Sv = 9e8 + 2.25e8 - 4.5e8 = 6.75e8
    assert total.ex_ante_volatility == pytest.approx(math.sqrt(6.75e8) / 1_000_000)
    assert total.utilization == 0.5


def test_symbol_usage_nets_strategies_and_counts_reservations_worst_case():
    symbols = utilization().symbols

    aaa = symbols["AAA"]
    assert aaa.net_quantity == 1_500
    assert aaa.position_notional == 200_000  # 1,500 held + 500 in flight
    assert aaa.max_position_notional == 250_000
    assert aaa.utilization == 0.8
    assert (aaa.near_limit, aaa.breached) == (True, False)  # at the fraction is near
    assert (symbols["BBB"].net_quantity, symbols["BBB"].utilization) == (-1_000, 0.5)
    assert (symbols["CCC"].net_quantity, symbols["CCC"].utilization) == (0.0, 0.0)


def test_symbol_over_its_limit_is_breached():
    bbb = utilization(budget(bbb_limit=40_000)).symbols["BBB"]

    assert bbb.utilization == 1.25
    assert (bbb.near_limit, bbb.breached) == (True, True)


def test_strategy_over_its_vol_target_is_breached():
    alpha = utilization(budget(alpha_capital=150_000)).strategies["alpha"]

    assert alpha.utilization == pytest.approx(math.sqrt(3.25e8) / 150_000 / 0.10)  # 1.2
    assert alpha.breached is True


def test_report_carries_the_budget_it_was_measured_against():
    report = utilization()

    assert (report.budget_version, report.regime, report.as_of, report.near_limit_fraction) == (
        7, Regime.BULL, NOW, 0.8)
    assert list(report.strategies) == ["alpha", "beta"]


def test_report_for_one_strategy_keeps_its_symbols_and_the_whole_book_total():
    report = utilization(strategy="beta")

    assert list(report.strategies) == ["beta"]
    assert list(report.symbols) == ["AAA", "CCC"]
    assert report.total.gross_exposure == 250_000


def test_symbol_without_a_price_counts_zero_notional():
    report = utilization(prices=FakePrices({"AAA": 100.0, "CCC": 20.0}))

    assert report.symbols["BBB"].position_notional == 0.0
    assert report.strategies["alpha"].gross_exposure == 100_000
    assert report.strategies["alpha"].ex_ante_volatility == pytest.approx(100_000 * 0.2 / 200_000)


def test_exposure_against_a_zero_limit_is_breached_and_no_exposure_is_not():
    book = small_book()
    book.set_positions([Position("gamma", "ZZZ", 10)], strategy="gamma")
    snapshot = make_snapshot(
        [strategy_budget("idle", capital=0.0, symbols=("CCC",))],
        [symbol_budget("CCC", max_notional=0.0)])

    report = utilization(snapshot, book, FakePrices({"AAA": 100.0, "BBB": 50.0, "ZZZ": 5.0}))

    assert report.symbols["ZZZ"].utilization == math.inf
    assert report.symbols["ZZZ"].breached is True
    assert report.symbols["CCC"].utilization == 0.0
    assert report.strategies["idle"].leverage == 0.0
    assert report.strategies["idle"].breached is False


def test_a_symbol_with_no_returns_yet_is_riskless_and_poisons_nothing():
    covariance = COVARIANCE.copy()
    covariance[1, :] = covariance[:, 1] = np.nan  # BBB: no returns yet
    covariance[2, :] = covariance[:, 2] = np.nan  # CCC, not held: none either

    total = compute_utilization(
        budget(), small_book(), FakePrices({"AAA": 100.0, "BBB": 50.0, "CCC": 20.0}),
        covariance=covariance, cov_symbols=COV_SYMBOLS, near_limit_fraction=0.8, now=NOW).total

    assert total.ex_ante_volatility == pytest.approx(150_000 * 0.2 / 1_000_000)  # AAA alone


def test_ex_ante_volatility_alone_is_the_reports_total():
    book, prices = small_book(), FakePrices({"AAA": 100.0, "BBB": 50.0, "CCC": 20.0})

    alone = ex_ante_volatility(book, prices, covariance=COVARIANCE, cov_symbols=COV_SYMBOLS,
                               nav=1_000_000)

    assert alone == utilization(book=book, prices=prices).total.ex_ante_volatility


def test_mismatched_covariance_is_refused():
    with pytest.raises(ValueError, match="expected \\(3, 3\\)"):
        compute_utilization(budget(), small_book(), FakePrices({}), covariance=np.eye(2),
                            cov_symbols=COV_SYMBOLS, near_limit_fraction=0.8, now=NOW)


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown strategy 'gamma'"):
        utilization(strategy="gamma")
