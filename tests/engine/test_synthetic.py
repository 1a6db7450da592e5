import numpy as np
import pytest

from riskbudget_sidecar.engine.synthetic import synthetic_prices

SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE")


def prices(**overrides) -> np.ndarray:
    arguments = {"bars": 300, "seed": 7, "annual_volatility": 0.18, "annual_drift": 0.06,
                 "correlation": 0.5, "periods_per_year": 252.0, **overrides}
    return synthetic_prices(SYMBOLS, **arguments)


def test_synthetic_prices_when_same_seed_are_identical():
    assert np.array_equal(prices(seed=3), prices(seed=3))


def test_synthetic_prices_when_seeds_differ_differ():
    assert not np.array_equal(prices(seed=3), prices(seed=4))


def test_synthetic_prices_have_one_row_per_bar_start_at_the_start_price_and_stay_positive():
    closes = prices(bars=500, annual_volatility=0.8, start_price=20.0)

    assert closes.shape == (500, len(SYMBOLS))
    assert closes[0].tolist() == [20.0] * len(SYMBOLS)
    assert (closes > 0).all()


def test_synthetic_prices_when_many_bars_match_the_configured_correlation_and_volatility():
    closes = prices(bars=20_000, correlation=0.6, annual_volatility=0.2)

    returns = np.diff(np.log(closes), axis=0)

    correlation = np.corrcoef(returns.T)
    off_diagonal = correlation[~np.eye(len(SYMBOLS), dtype=bool)]
    assert off_diagonal == pytest.approx(0.6, abs=0.03)
    assert returns.std(axis=0) * np.sqrt(252) == pytest.approx(0.2, rel=0.03)


def test_synthetic_prices_when_zero_bars_are_empty():
    assert prices(bars=0).shape == (0, len(SYMBOLS))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"bars": -1}, "bars"),
    ({"annual_volatility": -0.1}, "annual_volatility"),
    ({"annual_drift": float("nan")}, "annual_drift"),
    ({"correlation": 1.0}, "correlation"),
    ({"periods_per_year": 0.0}, "periods_per_year"),
    ({"start_price": 0.0}, "start_price"),
])
def test_synthetic_prices_when_arguments_are_bad_raises_naming_them(overrides, message):
    with pytest.raises(ValueError, match=message):
        prices(**overrides)


def test_synthetic_prices_when_no_symbols_raises():
    with pytest.raises(ValueError, match="at least one"):
        synthetic_prices([], bars=10, seed=1, annual_volatility=0.1, annual_drift=0.0,
                         correlation=0.0, periods_per_year=252.0)
