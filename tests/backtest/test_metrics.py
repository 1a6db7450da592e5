"""The metrics against a small case computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from riskbudget_sidecar.backtest.metrics import (
    drawdowns, equity_curve, performance, rolling_volatility, vol_of_vol,
)
from riskbudget_sidecar.backtest.run import constant_mix

# Four periods, four a year. By hand:
#   equity 1, 1.1, 0.88, 0.924, 1.0164           -> annual return 0.0164 (one year)
#   mean 0.0125; deviations .0875 -.2125 .0375 .0875; squares sum 0.061875; / 3 = 0.020625
#   std 0.1436140662; annual volatility 2 x std = 0.2872281323
#   Sharpe 0.0125 / 0.1436140662 x 2 = 0.1740776560
#   peak 1.1, trough 0.88: max drawdown 0.2; Calmar 0.0164 / 0.2 = 0.082
#   rolling 2-period volatility: |r1 - r2| / sqrt(2) x 2 = 0.4242640687, 0.3535533906, 0.0707106781;
#   their mean 0.2828427125, squared deviations .02 .005 .045, / 2 = 0.035: vol of vol 0.1870828693
RETURNS = np.array([0.1, -0.2, 0.05, 0.1])


def test_performance_of_a_small_case_matches_the_hand_computation():
    p = performance(RETURNS, periods_per_year=4, vol_window=2, turnover=np.array([1.0, 0.5, 0.5, 0.0]),
                    gross=np.array([1.0, 1.0, 0.5, 0.5]), utilization=np.array([0.5, 1.0, np.nan, 1.5]))

    assert p.annual_return == pytest.approx(0.0164, abs=1e-12)
    assert p.annual_volatility == pytest.approx(0.2872281323, abs=1e-9)
    assert p.sharpe == pytest.approx(0.1740776560, abs=1e-9)
    assert p.max_drawdown == pytest.approx(0.2, abs=1e-12)
    assert p.calmar == pytest.approx(0.082, abs=1e-12)
    assert p.worst_day == -0.2
    assert p.vol_of_vol == pytest.approx(0.1870828693, abs=1e-9)
    assert p.turnover == pytest.approx(2.0)          # 2.0 traded over one year
    assert p.average_gross == pytest.approx(0.75)
    assert p.average_utilization == pytest.approx(1.0)  # NaN (not invested yet) left out
    assert p.final_equity == pytest.approx(1.0164)
    assert p.periods == 4


def test_equity_and_drawdowns_start_at_one_and_zero():
    assert equity_curve(RETURNS) == pytest.approx([1, 1.1, 0.88, 0.924, 1.0164])
    assert drawdowns(RETURNS) == pytest.approx([0, 0, 0.2, 0.16, 0.076])


def test_rolling_volatility_matches_a_plain_loop_on_a_long_series():
    r = np.random.default_rng(1).normal(0.0004, 0.012, 600)
    window = 63

    fast = rolling_volatility(r, window, 252)
    slow = [np.std(r[i:i + window], ddof=1) * math.sqrt(252) for i in range(len(r) - window + 1)]

    assert fast == pytest.approx(slow, rel=1e-9)
    assert vol_of_vol(r, window, 252) == pytest.approx(np.std(slow, ddof=1), rel=1e-9)


def test_sharpe_is_of_returns_above_the_risk_free_rate():
    p = performance(RETURNS, periods_per_year=4, risk_free=0.04)

    assert p.sharpe == pytest.approx((0.0125 - 0.01) / 0.1436140662 * 2, abs=1e-9)


def test_undefined_metrics_are_nan_not_errors():
    p = performance(np.array([0.01]), periods_per_year=252)

    assert math.isnan(p.annual_volatility) and math.isnan(p.sharpe) and math.isnan(p.vol_of_vol)
    assert p.as_dict()["sharpe"] is None


def test_a_constant_mix_earns_the_weighted_move_and_trades_back_the_drift():
    # Two symbols, half each at leverage 1, rebalanced every row from row 0.
    prices = np.array([[100.0, 50.0], [110.0, 50.0], [99.0, 55.0]])

    returns, gross, turnover = constant_mix(prices, np.array([0.5, 0.5]), 1.0, 0)

    # row 1: 0.5 x 10% + 0.5 x 0% = 5%; row 2: 0.5 x -10% + 0.5 x 10% = 0%
    assert returns == pytest.approx([0.05, 0.0])
    assert gross == pytest.approx([1.0, 1.0])
    # before row 1's rebalance: 0.55 / 1.05 and 0.5 / 1.05; back to a half each
    assert turnover == pytest.approx([1.0, abs(0.5 - 0.55 / 1.05) + abs(0.5 - 0.5 / 1.05)])


def test_a_constant_mix_keeps_an_unpriced_symbol_in_cash_and_pays_costs():
    prices = np.array([[100.0, np.nan], [110.0, np.nan], [110.0, 20.0], [121.0, 22.0]])

    returns, gross, turnover = constant_mix(prices, np.array([0.5, 0.5]), 2.0, 0,
                                            rf_per_row=0.01, cost_rate=0.001)

    # row 1: weight 1.0 in the first (+10%), 0 in cash... the other half of the mix has no price:
    # held 1.0, cash 1 - 1.0 = 0 -> 10% minus the cost of the initial buy (1.0 x 0.1%)
    assert returns[0] == pytest.approx(0.10 - 0.001)
    assert gross.tolist() == pytest.approx([1.0, 1.0, 2.0])
    # row 3: held 1.0 + 1.0, both +10%, borrowing 1.0 at 1%
    assert returns[2] == pytest.approx(0.20 - 0.01 - 0.001 * turnover[2])
