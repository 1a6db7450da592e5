import math

import numpy as np
import pytest

from riskbudget_sidecar.engine.config import MarketData
from riskbudget_sidecar.engine.market_state import MarketState, covariance_block
from riskbudget_sidecar.engine.types import PriceTick

LAMBDA = 0.94
CONFIG = MarketData(bar_interval=10.0, periods_per_year=252.0, ewma_lambda=LAMBDA, min_observations=3)


def market(symbols=("AAA", "BBB"), config=CONFIG) -> MarketState:
    return MarketState(symbols, config)


def feed_rows(state: MarketState, prices: np.ndarray) -> list:
    """One bar per row, each symbol ticking mid-bar (NaN: no tick); then close the last bar."""
    interval = CONFIG.bar_interval
    bars = []
    for row, row_prices in enumerate(prices):
        for symbol, price in zip(state.symbols, row_prices):
            if not math.isnan(price):
                bars += state.apply_tick(PriceTick(symbol, float(price), (row + 0.5) * interval))
    bars += state.advance_to(len(prices) * interval)
    return bars


def batch_ewma_covariance(returns: np.ndarray, lam: float, periods_per_year: float) -> np.ndarray:
    """The module's estimator written as one weighted sum over the whole return matrix."""
    t = returns.shape[0]
    weights = (1 - lam) * lam ** np.arange(t - 1, -1, -1)
    present = np.isfinite(returns)
    filled = np.where(present, returns, 0.0)
    weighted = (filled * weights[:, None]).T @ filled
    weight_sums = (present * weights[:, None]).sum(axis=0)
    return weighted / np.sqrt(np.outer(weight_sums, weight_sums)) * periods_per_year


def random_prices(bars: int, symbols: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (bars, symbols)), axis=0))


# Construction -----------------------------------------------------------------------


@pytest.mark.parametrize(("symbols", "message"), [
    ((), "at least one"),
    (("AAA", "BBB", "AAA"), r"unique.*'AAA'"),
    (("AAA", ""), "non-empty"),
    ("AAA", "not the string"),
])
def test_market_state_when_symbols_are_bad_raises_naming_them(symbols, message):
    with pytest.raises(ValueError, match=message):
        MarketState(symbols, CONFIG)


def test_index_when_symbol_is_unknown_raises_naming_it():
    state = market()

    with pytest.raises(ValueError, match="'ZZZ'"):
        state.index("ZZZ")


# Ticks and bars -----------------------------------------------------------------------


def test_apply_tick_when_unknown_symbol_raises_naming_it():
    with pytest.raises(ValueError, match="'ZZZ'"):
        market().apply_tick(PriceTick("ZZZ", 10.0, 1.0))


@pytest.mark.parametrize("price", [0.0, -1.0, math.nan, math.inf])
def test_apply_tick_when_price_is_not_positive_and_finite_raises(price):
    with pytest.raises(ValueError, match="finite and positive"):
        market().apply_tick(PriceTick("AAA", price, 1.0))


def test_apply_tick_records_last_price_and_time():
    state = market()

    closed = state.apply_tick(PriceTick("AAA", 101.5, 3.0))

    assert closed == []
    assert state.last_price("AAA") == 101.5
    assert state.last_time("AAA") == 3.0
    assert state.last_price("BBB") is None
    assert state.last_time("BBB") is None


def test_apply_tick_when_older_than_the_symbols_last_tick_is_ignored():
    state = market()
    state.apply_tick(PriceTick("AAA", 100.0, 5.0))

    closed = state.apply_tick(PriceTick("AAA", 90.0, 4.0))

    assert closed == []
    assert state.last_price("AAA") == 100.0
    assert state.last_time("AAA") == 5.0


def test_apply_tick_when_in_a_later_bar_closes_the_open_bar_with_prices_before_it():
    state = market()
    state.apply_tick(PriceTick("AAA", 100.0, 1.0))
    state.apply_tick(PriceTick("BBB", 50.0, 9.0))

    closed = state.apply_tick(PriceTick("AAA", 110.0, 12.0))

    assert len(closed) == 1
    assert closed[0].time == 10.0
    assert closed[0].closes.tolist() == [100.0, 50.0]
    assert closed[0].returns is None
    assert state.last_price("AAA") == 110.0


def test_apply_tick_when_at_a_bar_boundary_belongs_to_the_new_bar():
    state = market()
    state.apply_tick(PriceTick("AAA", 100.0, 1.0))

    closed = state.apply_tick(PriceTick("AAA", 101.0, 10.0))

    assert [bar.time for bar in closed] == [10.0]
    assert closed[0].closes[0] == 100.0


def test_apply_tick_when_bars_were_skipped_closes_only_one_bar():
    state = market()
    state.apply_tick(PriceTick("AAA", 100.0, 1.0))
    state.apply_tick(PriceTick("AAA", 101.0, 15.0))

    closed = state.apply_tick(PriceTick("AAA", 102.0, 95.0))

    assert [bar.time for bar in closed] == [20.0]
    assert closed[0].returns[0] == pytest.approx(math.log(101.0 / 100.0), abs=1e-15)


def test_closed_bar_returns_are_zero_when_unchanged_and_nan_when_a_close_is_missing():
    state = market(("AAA", "BBB", "CCC"))
    state.apply_tick(PriceTick("AAA", 100.0, 1.0))
    state.apply_tick(PriceTick("BBB", 50.0, 11.0))

    closed = state.apply_tick(PriceTick("CCC", 10.0, 21.0))

    returns = closed[0].returns
    assert returns[0] == 0.0
    assert math.isnan(returns[1]) and math.isnan(returns[2])
    assert math.isnan(closed[0].closes[2])


def test_closed_bar_arrays_are_read_only():
    state = market()
    state.apply_tick(PriceTick("AAA", 100.0, 1.0))
    state.apply_tick(PriceTick("AAA", 101.0, 11.0))
    closed = state.advance_to(20.0)

    with pytest.raises(ValueError):
        closed[0].closes[0] = 1.0
    with pytest.raises(ValueError):
        closed[0].returns[0] = 1.0


def test_advance_to_when_past_the_open_bar_end_closes_it():
    state = market()
    state.apply_tick(PriceTick("AAA", 100.0, 1.0))

    before_end = state.advance_to(9.99)
    at_end = state.advance_to(10.0)
    again = state.advance_to(50.0)

    assert before_end == []
    assert [bar.time for bar in at_end] == [10.0]
    assert again == []


def test_apply_tick_when_stamped_in_a_closed_bar_counts_towards_the_next_bar():
    state = market()
    state.apply_tick(PriceTick("AAA", 100.0, 1.0))
    state.advance_to(10.0)

    late = state.apply_tick(PriceTick("BBB", 50.0, 5.0))
    closed = state.advance_to(20.0)

    assert late == []
    assert [bar.time for bar in closed] == [20.0]
    assert closed[0].closes.tolist() == [100.0, 50.0]


# Staleness ----------------------------------------------------------------------------


def test_is_stale_when_no_price_or_too_old():
    state = market()
    state.apply_tick(PriceTick("AAA", 100.0, 100.0))

    assert state.is_stale("BBB", now=100.0, max_staleness=30.0)
    assert not state.is_stale("AAA", now=130.0, max_staleness=30.0)
    assert state.is_stale("AAA", now=130.5, max_staleness=30.0)


def test_prices_before_the_end_of_history_are_no_live_prices_however_recent():
    state = market()
    state.apply_tick(PriceTick("AAA", 100.0, 100.0))
    state.end_history()

    history = (state.live_time("AAA"), state.is_stale("AAA", now=100.0, max_staleness=30.0))
    state.apply_tick(PriceTick("AAA", 101.0, 101.0))

    assert history == (None, True)
    assert (state.live_time("AAA"), state.is_stale("AAA", now=101.0, max_staleness=30.0)) == (101.0, False)


# EWMA ---------------------------------------------------------------------------------


def test_covariance_when_fed_bar_by_bar_equals_the_batch_ewma_of_all_returns():
    prices = random_prices(80, 4, seed=11)
    prices[:10, 2] = np.nan  # joins on bar 10
    prices[:35, 3] = np.nan  # joins on bar 35
    state = market(("A", "B", "C", "D"))

    feed_rows(state, prices)

    returns = np.log(prices[1:] / prices[:-1])
    expected = batch_ewma_covariance(returns, LAMBDA, CONFIG.periods_per_year)
    np.testing.assert_allclose(state.covariance(provisional=False), expected, rtol=1e-12, atol=1e-15)
    assert [state.observations(s) for s in state.symbols] == [79, 79, 69, 44]


def test_covariance_when_first_return_is_the_squared_return_annualised():
    state = market(("AAA",))

    feed_rows(state, np.array([[100.0], [102.0]]))

    assert state.covariance(provisional=False)[0, 0] == pytest.approx(math.log(1.02) ** 2 * 252, rel=1e-14)


def test_covariance_when_symbol_has_no_return_yet_is_nan_in_its_row_and_column():
    state = market(("AAA", "BBB"))

    feed_rows(state, np.array([[100.0, np.nan], [101.0, np.nan], [102.0, 50.0]]))

    cov = state.covariance(provisional=False)
    assert np.isfinite(cov[0, 0])
    assert np.isnan(cov[1]).all() and np.isnan(cov[:, 1]).all()


def test_covariance_when_symbols_join_late_stays_positive_semidefinite():
    prices = random_prices(40, 6, seed=12)
    for column, start in enumerate([0, 0, 5, 20, 37, 38]):
        prices[:start, column] = np.nan
    state = market(tuple("ABCDEF"))

    feed_rows(state, prices)

    assert np.linalg.eigvalsh(state.covariance(provisional=False)).min() > -1e-15


def test_covariance_provisional_when_bar_is_open_folds_it_in_without_mutating_state():
    prices = random_prices(30, 2, seed=13)
    state = market()
    feed_rows(state, prices)
    committed = state.covariance(provisional=False)
    state.apply_tick(PriceTick("AAA", float(prices[-1, 0] * 1.03), 30 * 10.0 + 1))
    state.apply_tick(PriceTick("BBB", float(prices[-1, 1] * 0.99), 30 * 10.0 + 2))

    live = state.covariance(provisional=True)
    live_again = state.covariance(provisional=True)
    state.advance_to(40.0 * 10)
    closed = state.covariance(provisional=False)

    np.testing.assert_array_equal(live, live_again)
    np.testing.assert_allclose(live, closed, rtol=1e-14)
    assert not np.allclose(live, committed)


def test_covariance_provisional_when_no_bar_is_open_equals_committed():
    state = market()
    feed_rows(state, random_prices(10, 2, seed=14))

    np.testing.assert_array_equal(state.covariance(provisional=True), state.covariance(provisional=False))


def test_covariance_when_asked_before_a_bar_closes_leaves_the_closed_state_as_if_never_asked():
    prices = random_prices(30, 2, seed=15)
    asked, unasked = market(), market()
    feed_rows(asked, prices[:-1])
    feed_rows(unasked, prices[:-1])
    for state in (asked, unasked):
        state.apply_tick(PriceTick("AAA", float(prices[-1, 0]), 29.5 * 10))
        state.apply_tick(PriceTick("BBB", float(prices[-1, 1]), 29.6 * 10))

    asked.covariance(provisional=True)  # caches the open bar's estimate, reused on closing it
    for state in (asked, unasked):
        state.advance_to(30.0 * 10)
        state.apply_tick(PriceTick("AAA", float(prices[-1, 0] * 1.01), 30.5 * 10))

    np.testing.assert_array_equal(asked.covariance(provisional=False), unasked.covariance(provisional=False))
    np.testing.assert_array_equal(asked.covariance(provisional=True), unasked.covariance(provisional=True))


def test_covariance_is_read_only():
    state = market()
    feed_rows(state, random_prices(5, 2, seed=16))

    with pytest.raises(ValueError, match="read-only"):
        state.covariance()[0, 0] = 1.0


def test_enough_data_when_a_symbol_reaches_min_observations():
    state = market(("AAA", "BBB"))

    feed_rows(state, np.array([[100.0, np.nan], [101.0, 50.0], [102.0, 51.0], [103.0, 52.0]]))

    assert state.observations("AAA") == 3
    assert state.observations("BBB") == 2
    assert state.enough_data().tolist() == [True, False]


# Correlation --------------------------------------------------------------------------


def test_average_correlation_when_symbols_move_together_is_one():
    base = random_prices(20, 1, seed=15)[:, 0]
    state = market(("AAA", "BBB", "CCC"))

    feed_rows(state, np.column_stack([base, 2 * base, 3 * base]))

    assert state.average_correlation() == pytest.approx(1.0, abs=1e-12)


def test_average_correlation_when_pairs_mix_is_the_mean_off_diagonal():
    prices = random_prices(50, 3, seed=16)
    state = market(("AAA", "BBB", "CCC"))
    feed_rows(state, prices)

    average = state.average_correlation(["AAA", "CCC", "BBB"], provisional=False)

    cov = state.covariance(provisional=False)
    vols = np.sqrt(np.diag(cov))
    corr = cov / np.outer(vols, vols)
    assert average == pytest.approx((corr[0, 1] + corr[0, 2] + corr[1, 2]) / 3, abs=1e-14)


def test_average_correlation_when_fewer_than_two_symbols_have_enough_data_is_zero():
    state = market(("AAA", "BBB"))

    feed_rows(state, np.array([[100.0, np.nan], [101.0, np.nan], [102.0, np.nan], [103.0, 50.0]]))

    assert state.average_correlation() == 0.0
    assert market().average_correlation() == 0.0


def test_average_correlation_leaves_out_symbols_with_too_few_returns():
    base = random_prices(10, 1, seed=17)[:, 0]
    other = random_prices(10, 1, seed=18)[:, 0]
    late = other.copy()
    late[:8] = np.nan  # two returns: below min_observations
    state = market(("AAA", "BBB", "CCC"))

    feed_rows(state, np.column_stack([base, 2 * base, late]))

    assert state.average_correlation() == pytest.approx(1.0, abs=1e-12)


def test_average_correlation_when_a_symbol_is_named_twice_counts_it_once():
    prices = random_prices(50, 2, seed=19)
    state = market()
    feed_rows(state, prices)

    twice = state.average_correlation(["AAA", "BBB", "AAA"])

    assert twice == state.average_correlation(["AAA", "BBB"])


@pytest.mark.parametrize("indices", [[2, 3, 4], [0, 2, 5], [4, 1, 3], [5]])
def test_covariance_block_takes_the_rows_and_columns_at_the_indices(indices):
    matrix = np.arange(36.0).reshape(6, 6)
    indices = np.array(indices)

    block = covariance_block(matrix, indices)

    np.testing.assert_array_equal(block, matrix[np.ix_(indices, indices)])
    block[0, 0] = -1.0
    assert matrix[indices[0], indices[0]] != -1.0  # a copy
