import math

import numpy as np
import pytest

from riskbudget_sidecar.engine.config import RegimeRules
from riskbudget_sidecar.engine.regime import RegimeDetector
from riskbudget_sidecar.engine.types import Regime

LAMBDA = 0.94
PERIODS = 252.0


def detector(rules: RegimeRules, start_time: float = -1.0) -> RegimeDetector:
    return RegimeDetector(rules, periods_per_year=PERIODS, ewma_lambda=LAMBDA, start_time=start_time)


def market_rules(**overrides) -> RegimeRules:
    """Realistic thresholds (the defaults) with short windows."""
    return RegimeRules.model_validate({
        "benchmark": "SPY", "initial": "bull", "trend_window": 10, "drawdown_window": 30,
        "confirmation_bars": 2, "min_dwell_bars": 3, **overrides})


def drawdown_rules(**overrides) -> RegimeRules:
    """Only the drawdown can signal: bear at 10%, crisis at 20% (volatility and trend never do)."""
    return RegimeRules.model_validate({
        "benchmark": "SPY", "initial": "bull", "trend_window": 10_000, "drawdown_window": 10_000,
        "bear": {"volatility": 1e6, "drawdown": 0.10}, "crisis": {"volatility": 2e6, "drawdown": 0.20},
        **overrides})


def path(*segments: tuple[int, list[float]], start: float = 100.0) -> np.ndarray:
    """Closes from segments of (bars, repeating log-return pattern)."""
    returns = [pattern[k % len(pattern)] for bars, pattern in segments for k in range(bars)]
    return start * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))


def run(d: RegimeDetector, closes, correlation: float = 0.5) -> list[tuple[int, Regime, Regime]]:
    """Feed one close per bar (time = bar number); the (bar, previous, current) of each switch."""
    changes = []
    for bar, close in enumerate(closes):
        change = d.on_bar(float(bar), float(close), correlation)
        if change is not None:
            changes.append((bar, change.previous, change.current))
    return changes


# The whole cycle -----------------------------------------------------------------------

CALM_RISE = (30, [0.003, -0.001])
STEADY_FALL = (20, [-0.006])
CRASH = (8, [-0.05, 0.02])
RECOVERY = (80, [0.004])


def test_on_bar_when_market_rises_falls_crashes_and_recovers_goes_bull_bear_crisis_bear_bull():
    closes = path(CALM_RISE, STEADY_FALL, CRASH, RECOVERY)
    d = detector(market_rules())

    changes = run(d, closes)

    assert [(previous, current) for _, previous, current in changes] == [
        (Regime.BULL, Regime.BEAR), (Regime.BEAR, Regime.CRISIS),
        (Regime.CRISIS, Regime.BEAR), (Regime.BEAR, Regime.BULL)]
    fall_starts, crash_starts, recovery_starts = 30, 50, 58
    bars = [bar for bar, _, _ in changes]
    assert fall_starts < bars[0] <= crash_starts
    assert crash_starts < bars[1] <= recovery_starts
    assert recovery_starts <= bars[2] < bars[3]
    assert d.regime is Regime.BULL
    assert d.since == float(bars[3])


def test_on_bar_returns_the_change_with_the_indicators_of_the_switching_bar():
    closes = path(CALM_RISE, STEADY_FALL)
    d = detector(market_rules())

    for bar, close in enumerate(closes):
        change = d.on_bar(float(bar), float(close), 0.5)
        if change is not None:
            break

    assert change.previous is Regime.BULL and change.current is Regime.BEAR
    assert change.time == float(bar)
    assert change.indicators == d.indicators
    assert change.indicators.trend < 0


# Hysteresis ---------------------------------------------------------------------------


def test_on_bar_when_raw_regime_changes_switches_on_the_confirmation_bar_exactly():
    d = detector(drawdown_rules(confirmation_bars=3, min_dwell_bars=0))

    changes = run(d, [100.0, 100.0, 85.0, 85.0, 85.0, 85.0])

    assert changes == [(4, Regime.BULL, Regime.BEAR)]


def test_on_bar_when_raw_regime_changes_before_confirmation_restarts_the_count():
    d = detector(drawdown_rules(confirmation_bars=3, min_dwell_bars=0))

    changes = run(d, [100.0, 85.0, 85.0, 75.0, 75.0, 75.0])

    assert changes == [(5, Regime.BULL, Regime.CRISIS)]


def test_on_bar_when_regime_is_younger_than_the_dwell_waits_until_it_has_lasted():
    d = detector(drawdown_rules(confirmation_bars=1, min_dwell_bars=4))

    changes = run(d, [100.0, 85.0, 85.0, 85.0, 100.0, 100.0, 100.0, 100.0, 100.0])

    # The initial regime has lasted 4 bars at bar 3; BEAR, begun on bar 3, at bar 7.
    assert changes == [(3, Regime.BULL, Regime.BEAR), (7, Regime.BEAR, Regime.BULL)]


def test_a_regime_carried_over_a_restart_is_left_only_after_confirmation_and_dwell():
    d = detector(drawdown_rules(confirmation_bars=2, min_dwell_bars=3))
    d.carry_over(Regime.CRISIS, since=-50.0)

    changes = run(d, [100.0] * 4)  # calm bars: BULL each

    assert (d.regime, d.since) == (Regime.BULL, 2.0)
    assert changes == [(2, Regime.CRISIS, Regime.BULL)]  # not on the first calm bar: confirmed and dwelt


def test_on_bar_when_series_oscillates_around_a_threshold_does_not_flip_flop():
    d = detector(drawdown_rules(confirmation_bars=2, min_dwell_bars=0))
    closes = [100.0] + [90.1, 89.9] * 100  # drawdown 9.9%, 10.1%, 9.9%, ...

    changes = run(d, closes)

    assert changes == []
    assert d.regime is Regime.BULL
    assert d.raw_regime is Regime.BEAR


def test_on_bar_when_raw_regime_returns_to_the_current_one_forgets_the_candidate():
    d = detector(drawdown_rules(confirmation_bars=2, min_dwell_bars=0))

    changes = run(d, [100.0, 85.0, 100.0, 85.0, 100.0, 85.0, 85.0])

    assert changes == [(6, Regime.BULL, Regime.BEAR)]


# Classification ------------------------------------------------------------------------


@pytest.mark.parametrize(("log_return", "correlation", "raw"), [
    (0.02, 0.90, Regime.CRISIS),  # volatility 0.32 >= bear's 0.25, correlation >= 0.85
    (0.02, 0.50, Regime.BEAR),
    (0.001, 0.90, Regime.BULL),  # correlation alone is no crisis
    (0.03, 0.10, Regime.CRISIS),  # volatility 0.48 >= crisis' 0.40
])
def test_on_bar_classifies_volatility_and_correlation(log_return, correlation, raw):
    d = detector(market_rules(trend_window=1_000))

    run(d, [100.0, 100.0 * math.exp(log_return)], correlation)

    assert d.raw_regime is raw


def test_on_bar_when_close_is_below_its_moving_average_is_bear():
    d = detector(market_rules(trend_window=3))

    run(d, [100.0, 100.3, 100.1])  # average 100.133

    assert d.indicators.trend < 0
    assert d.raw_regime is Regime.BEAR


def test_indicators_when_computed_by_hand():
    d = detector(market_rules(trend_window=3, drawdown_window=5))

    run(d, [100.0, 110.0, 90.0], correlation=0.3)

    r1, r2 = math.log(1.1), math.log(90 / 110)
    variance = (LAMBDA * r1**2 + r2**2) / (1 + LAMBDA)  # weights l(1-l), (1-l) over 1 - l^2
    x = d.indicators
    assert x.volatility == pytest.approx(math.sqrt(variance * PERIODS), rel=1e-14)
    assert x.trend == pytest.approx(90 / 100 - 1, rel=1e-14)
    assert x.drawdown == pytest.approx(1 - 90 / 110, rel=1e-14)
    assert x.average_correlation == 0.3
    assert x.bars == 3


def test_indicators_when_too_few_closes_are_undefined_and_give_no_signal():
    d = detector(market_rules(trend_window=5))

    run(d, [100.0])

    assert math.isnan(d.indicators.volatility)
    assert math.isnan(d.indicators.trend)
    assert d.indicators.drawdown == 0.0
    assert d.raw_regime is Regime.BULL


def test_drawdown_when_the_peak_leaves_the_window_is_measured_from_the_newer_peak():
    d = detector(drawdown_rules(drawdown_window=3))

    run(d, [120.0, 100.0, 100.0, 100.0])

    assert d.indicators.drawdown == 0.0


# Inputs and state ----------------------------------------------------------------------


def test_detector_starts_in_the_initial_regime_since_start_time():
    d = detector(market_rules(initial="crisis"), start_time=1234.5)

    assert d.regime is Regime.CRISIS
    assert d.raw_regime is Regime.CRISIS
    assert d.since == 1234.5
    assert d.indicators.bars == 0


def test_on_bar_when_close_is_nan_skips_the_bar():
    d = detector(market_rules())
    run(d, [100.0, 101.0])
    before = d.indicators

    change = d.on_bar(2.0, math.nan, 0.9)

    assert change is None
    assert d.indicators is before


@pytest.mark.parametrize("close", [0.0, -5.0, math.inf])
def test_on_bar_when_close_is_not_positive_raises(close):
    with pytest.raises(ValueError, match="benchmark_close"):
        detector(market_rules()).on_bar(0.0, close, 0.5)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"periods_per_year": 0.0}, "periods_per_year"),
    ({"ewma_lambda": 1.0}, "ewma_lambda"),
    ({"start_time": math.nan}, "start_time"),
])
def test_detector_when_parameters_are_bad_raises_naming_them(kwargs, message):
    arguments = {"periods_per_year": PERIODS, "ewma_lambda": LAMBDA, "start_time": 0.0, **kwargs}

    with pytest.raises(ValueError, match=message):
        RegimeDetector(market_rules(), **arguments)


# Causality ----------------------------------------------------------------------------


def test_on_bar_is_causal_later_prices_change_nothing_up_to_a_bar():
    common = path(CALM_RISE, STEADY_FALL)
    calm_future = path((60, [0.002]), start=common[-1])[1:]
    crash_future = path((60, [-0.06, 0.03]), start=common[-1])[1:]
    histories = []

    for future in (calm_future, crash_future):
        d = detector(market_rules())
        history = []
        for bar, close in enumerate(np.concatenate([common, future])):
            d.on_bar(float(bar), float(close), 0.5)
            history.append((d.regime, d.raw_regime, d.since, repr(d.indicators)))  # repr: NaN == NaN
        histories.append(history)

    cut = len(common)
    assert histories[0][:cut] == histories[1][:cut]
    assert histories[0][cut:] != histories[1][cut:]
