import math

import pytest

from riskbudget_sidecar.engine.success import SECONDS_PER_YEAR, SuccessMetrics


def test_budget_utilization_is_the_time_weighted_average_since_start():
    metrics = SuccessMetrics(start=0.0, net_asset_value=1_000_000)

    metrics.observe(0.0, utilization=0.2, ex_ante_volatility=0.1, net_positions={}, prices={})
    metrics.observe(30.0, utilization=0.8, ex_ante_volatility=0.1, net_positions={}, prices={})

    assert metrics.summary(40.0).budget_utilization == pytest.approx((0.2 * 30 + 0.8 * 10) / 40)


def test_capital_efficiency_is_gain_over_nav_per_unit_of_risk_over_the_elapsed_time():
    metrics = SuccessMetrics(start=0.0, net_asset_value=1_000_000)
    year = SECONDS_PER_YEAR

    metrics.observe(0.0, utilization=0.5, ex_ante_volatility=0.10, net_positions={"AAA": 1000},
                    prices={"AAA": 100.0})
    metrics.observe(year, utilization=0.5, ex_ante_volatility=0.10, net_positions={"AAA": 1000},
                    prices={"AAA": 150.0})
    summary = metrics.summary(year)

    assert summary.return_since_start == pytest.approx(50_000 / 1_000_000)
    assert summary.capital_efficiency == pytest.approx(0.05 / (0.10 * math.sqrt(1.0)))


def test_override_frequency_counts_overrides_per_day_and_responses_their_median_and_worst():
    metrics = SuccessMetrics(start=0.0, net_asset_value=1.0)
    for _ in range(3):
        metrics.record_override()
    for seconds in (0.01, 0.03, 0.02):
        metrics.record_regime_response(seconds)

    summary = metrics.summary(2 * 86_400.0)

    assert summary.overrides_per_day == pytest.approx(1.5)
    assert (summary.regime_response_p50, summary.regime_response_max, summary.regime_responses) == (0.02, 0.03, 3)


def test_override_frequency_is_taken_over_at_least_one_day():
    metrics = SuccessMetrics(start=0.0, net_asset_value=1.0)
    metrics.record_override()

    assert metrics.summary(60.0).overrides_per_day == 1.0


def test_before_any_time_passes_the_metrics_are_zero_not_errors():
    summary = SuccessMetrics(start=5.0, net_asset_value=1.0).summary(5.0)

    assert (summary.capital_efficiency, summary.overrides_per_day, summary.budget_utilization) == (0.0, 0.0, 0.0)
