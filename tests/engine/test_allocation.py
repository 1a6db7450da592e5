import dataclasses
import math

import numpy as np
import pytest

from riskbudget_sidecar.engine.allocation import compute_budget
from riskbudget_sidecar.engine.config import Config
from riskbudget_sidecar.engine.erc import risk_contributions
from riskbudget_sidecar.engine.market_state import MarketState
from riskbudget_sidecar.engine.synthetic import synthetic_prices
from riskbudget_sidecar.engine.types import (
    LimitSource, Override, OverrideKind, OverrideScope, PriceTick, Regime,
)

NAV = 1_000_000.0
LAMBDA = 0.94
PERIODS = 252.0
ALLOCATIONS = {
    "bull": {"equity_allocation": 0.8, "leverage_limit": 2.0, "vol_target": 0.15},
    "bear": {"equity_allocation": 0.5, "leverage_limit": 1.0, "vol_target": 0.08},
    "crisis": {"equity_allocation": 0.2, "leverage_limit": 0.5, "vol_target": 0.05},
}


def make_config(strategies: dict, *, allocations: dict = ALLOCATIONS, limits: dict | None = None,
                min_observations: int = 2, shadow_mode: bool = False, enabled: bool = True) -> Config:
    return Config.model_validate({
        "risk_budgeting": {"regime_allocations": allocations, "enabled": enabled},
        "portfolio": {"net_asset_value": NAV, "strategies": strategies},
        "limits": limits or {},
        "market_data": {"bar_interval": 1.0, "periods_per_year": PERIODS, "ewma_lambda": LAMBDA,
                        "min_observations": min_observations},
        "regime": {"benchmark": "SPY"},
        "sidecar": {"shadow_mode": shadow_mode},
    })


def fed_market(config: Config, closes: dict[str, list[float]]) -> MarketState:
    """A market fed one bar per row (NaN: no tick), every bar closed."""
    market = MarketState(config.universe, config.market_data)
    bars = len(next(iter(closes.values())))
    for bar in range(bars):
        for symbol, series in closes.items():
            if not math.isnan(series[bar]):
                market.apply_tick(PriceTick(symbol, series[bar], bar + 0.5))
    market.advance_to(float(bars))
    return market


def warmed_market(config: Config, bars: int = 120, seed: int = 1) -> MarketState:
    prices = synthetic_prices(config.universe, bars=bars, seed=seed, annual_volatility=0.2,
                              annual_drift=0.05, correlation=0.4, periods_per_year=PERIODS)
    return fed_market(config, dict(zip(config.universe, prices.T.tolist())))


def budget(config: Config, market: MarketState, regime: Regime = Regime.BULL, **kwargs):
    arguments = {"regime_since": 10.0, "version": 7, "now": 1_000.0, **kwargs}
    return compute_budget(config, market, regime, **arguments)


def diagonal_market(config: Config, a: float, b: float) -> MarketState:
    """AAA moves by log return a on bar 1, BBB by b on bar 2: a diagonal covariance with
    annualised variances PERIODS * (l a^2, b^2) / (1 + l)."""
    return fed_market(config, {
        "AAA": [100.0, 100.0 * math.exp(a), 100.0 * math.exp(a)],
        "BBB": [50.0, 50.0, 50.0 * math.exp(b)],
    })


TWO_SYMBOLS = {"core": {"risk_share": 1.0, "symbols": ["AAA", "BBB"]}}


# Vol targeting ------------------------------------------------------------------------


def test_compute_budget_when_covariance_is_diagonal_targets_volatility_by_hand():
    config = make_config(TWO_SYMBOLS)
    market = diagonal_market(config, a=0.01, b=0.02)

    snapshot = budget(config, market)

    vol_a = math.sqrt(PERIODS * LAMBDA * 0.01**2 / (1 + LAMBDA))
    vol_b = math.sqrt(PERIODS * 0.02**2 / (1 + LAMBDA))
    inverse = np.array([1 / vol_a, 1 / vol_b])
    weights = inverse / inverse.sum()
    strategy_vol = math.sqrt((weights[0] * vol_a) ** 2 + (weights[1] * vol_b) ** 2)
    leverage = 0.15 / strategy_vol
    assert leverage < 2.0  # the cap does not bind
    core = snapshot.strategies["core"]
    assert core.limit_source is LimitSource.DYNAMIC
    assert [s.weight for s in core.symbols] == pytest.approx(weights.tolist(), rel=1e-12)
    assert [s.risk_contribution for s in core.symbols] == pytest.approx([0.5, 0.5], abs=1e-12)
    assert core.forecast_volatility == pytest.approx(strategy_vol, rel=1e-12)
    assert core.leverage_limit == pytest.approx(leverage, rel=1e-12)
    assert core.allocated_capital == pytest.approx(NAV * 0.8)
    assert snapshot.forecast_volatility == pytest.approx(strategy_vol, rel=1e-12)
    assert snapshot.total_leverage_limit == pytest.approx(leverage, rel=1e-12)
    assert snapshot.limit_source is LimitSource.DYNAMIC
    assert snapshot.symbols["AAA"].volatility == pytest.approx(vol_a, rel=1e-12)


def test_compute_budget_when_volatility_is_low_caps_leverage_at_the_regime_limit():
    config = make_config(TWO_SYMBOLS)
    market = diagonal_market(config, a=0.001, b=0.002)

    snapshot = budget(config, market)

    assert 0.15 / snapshot.strategies["core"].forecast_volatility > 2.0
    assert snapshot.strategies["core"].leverage_limit == 2.0
    assert snapshot.total_leverage_limit == 2.0
    assert snapshot.regime_leverage_limit == 2.0


def test_compute_budget_uses_the_allocation_of_the_given_regime():
    config = make_config(TWO_SYMBOLS)
    market = diagonal_market(config, a=0.01, b=0.02)

    snapshot = budget(config, market, Regime.CRISIS)

    core = snapshot.strategies["core"]
    assert snapshot.regime is Regime.CRISIS
    assert snapshot.equity_allocation == 0.2
    assert snapshot.vol_target == 0.05
    assert core.allocated_capital == pytest.approx(NAV * 0.2)
    assert core.leverage_limit == pytest.approx(min(0.5, 0.05 / core.forecast_volatility), rel=1e-12)


def test_compute_budget_when_risk_budgets_given_splits_risk_by_them():
    config = make_config({"core": {"risk_share": 1.0, "symbols": ["AAA", "BBB"],
                                   "risk_budgets": {"AAA": 3.0, "BBB": 1.0}}})
    market = warmed_market(config)

    snapshot = budget(config, market)

    contributions = [s.risk_contribution for s in snapshot.strategies["core"].symbols]
    assert contributions == pytest.approx([0.75, 0.25], abs=1e-10)


# Strategies and symbols ----------------------------------------------------------------


def test_compute_budget_splits_capital_by_risk_share():
    config = make_config({
        "growth": {"risk_share": 0.6, "symbols": ["AAA", "BBB"]},
        "carry": {"risk_share": 0.4, "symbols": ["CCC", "DDD", "EEE"]},
    })
    market = warmed_market(config)

    snapshot = budget(config, market, Regime.BEAR)

    assert list(snapshot.strategies) == ["growth", "carry"]
    assert snapshot.strategies["growth"].allocated_capital == pytest.approx(NAV * 0.5 * 0.6)
    assert snapshot.strategies["carry"].allocated_capital == pytest.approx(NAV * 0.5 * 0.4)
    assert sum(s.target_weight for s in snapshot.symbols.values()) == pytest.approx(1.0)
    growth_weights = {s.symbol: s.weight for s in snapshot.strategies["growth"].symbols}
    assert snapshot.symbols["AAA"].target_weight == pytest.approx(0.6 * growth_weights["AAA"])


def test_compute_budget_sets_symbol_limits_from_target_notional_and_headroom():
    config = make_config({
        "growth": {"risk_share": 0.6, "symbols": ["AAA", "BBB"]},
        "carry": {"risk_share": 0.4, "symbols": ["CCC"]},
    }, limits={"position_headroom": 1.5})
    market = warmed_market(config)

    snapshot = budget(config, market)

    for strategy in snapshot.strategies.values():
        for entry in strategy.symbols:
            symbol = snapshot.symbols[entry.symbol]
            target = strategy.allocated_capital * strategy.leverage_limit * entry.weight
            assert symbol.max_position_notional == pytest.approx(target * 1.5, rel=1e-12)
            assert symbol.limit_source is LimitSource.DYNAMIC
            assert symbol.last_price == market.last_price(entry.symbol)


def test_compute_budget_when_symbol_is_shared_adds_up_both_strategies():
    config = make_config({
        "growth": {"risk_share": 0.5, "symbols": ["AAA", "BBB"]},
        "value": {"risk_share": 0.5, "symbols": ["BBB", "CCC"]},
    })
    market = warmed_market(config)

    snapshot = budget(config, market)

    growth, value = snapshot.strategies["growth"], snapshot.strategies["value"]
    w_growth = {s.symbol: s.weight for s in growth.symbols}["BBB"]
    w_value = {s.symbol: s.weight for s in value.symbols}["BBB"]
    shared = snapshot.symbols["BBB"]
    assert list(snapshot.symbols) == ["AAA", "BBB", "CCC"]
    assert shared.target_weight == pytest.approx(0.5 * w_growth + 0.5 * w_value, rel=1e-12)
    target = (growth.allocated_capital * growth.leverage_limit * w_growth
              + value.allocated_capital * value.leverage_limit * w_value)
    assert shared.max_position_notional == pytest.approx(target * 1.25, rel=1e-12)


def test_compute_budget_book_risk_contributions_are_shares_of_the_book_variance():
    config = make_config({
        "growth": {"risk_share": 0.7, "symbols": ["AAA", "BBB"]},
        "carry": {"risk_share": 0.3, "symbols": ["CCC"]},
    })
    market = warmed_market(config)

    snapshot = budget(config, market)

    symbols = list(snapshot.symbols)
    index = [market.index(s) for s in symbols]
    cov = market.covariance()[np.ix_(index, index)]
    weights = np.array([snapshot.symbols[s].target_weight for s in symbols])
    expected = risk_contributions(weights, cov).tolist()
    assert [snapshot.symbols[s].risk_contribution for s in symbols] == pytest.approx(expected, rel=1e-12)
    assert snapshot.forecast_volatility == pytest.approx(math.sqrt(weights @ cov @ weights), rel=1e-12)
    assert snapshot.total_leverage_limit == pytest.approx(min(2.0, 0.15 / snapshot.forecast_volatility))
    assert snapshot.average_correlation == pytest.approx(market.average_correlation(symbols))


# Static fallback ---------------------------------------------------------------------


def test_compute_budget_when_too_little_data_falls_back_to_static_limits():
    config = make_config(TWO_SYMBOLS, min_observations=20, limits={
        "static": {"strategy_leverage": 1.2, "total_leverage": 0.9, "symbol_max_notional": 250_000.0}})
    market = warmed_market(config, bars=5)

    snapshot = budget(config, market)

    core = snapshot.strategies["core"]
    assert core.limit_source is LimitSource.STATIC
    assert core.leverage_limit == 1.2
    assert [(s.weight, s.risk_contribution) for s in core.symbols] == [(0.5, 0.5), (0.5, 0.5)]
    assert core.forecast_volatility > 0  # four returns are known, if not trusted
    assert snapshot.limit_source is LimitSource.STATIC
    assert snapshot.total_leverage_limit == 0.9
    for symbol in snapshot.symbols.values():
        assert symbol.max_position_notional == 250_000.0
        assert symbol.limit_source is LimitSource.STATIC
        assert symbol.volatility == 0.0


def test_compute_budget_when_risk_budgeting_is_disabled_keeps_every_limit_static():
    config = make_config(TWO_SYMBOLS, enabled=False)
    market = warmed_market(config, bars=120)

    snapshot = budget(config, market)

    assert snapshot.limit_source is LimitSource.STATIC
    assert all(s.limit_source is LimitSource.STATIC for s in snapshot.strategies.values())
    assert all(s.limit_source is LimitSource.STATIC for s in snapshot.symbols.values())


def test_compute_budget_when_static_leverage_exceeds_the_regime_limit_takes_the_regime_limit():
    config = make_config(TWO_SYMBOLS, min_observations=20,
                         limits={"static": {"strategy_leverage": 3.0, "total_leverage": 3.0}})
    market = warmed_market(config, bars=5)

    snapshot = budget(config, market, Regime.CRISIS)

    assert snapshot.strategies["core"].leverage_limit == 0.5
    assert snapshot.total_leverage_limit == 0.5


def test_compute_budget_when_market_has_no_data_is_all_static():
    config = make_config(TWO_SYMBOLS)
    market = MarketState(config.universe, config.market_data)

    snapshot = budget(config, market)

    assert snapshot.limit_source is LimitSource.STATIC
    assert snapshot.forecast_volatility == 0.0
    assert snapshot.average_correlation == 0.0
    assert snapshot.strategies["core"].forecast_volatility == 0.0
    for symbol in snapshot.symbols.values():
        assert symbol.last_price == 0.0
        assert symbol.risk_contribution == 0.0
        assert symbol.target_weight == 0.5


def test_compute_budget_when_one_strategy_lacks_data_keeps_the_other_dynamic():
    config = make_config({
        "growth": {"risk_share": 0.5, "symbols": ["AAA", "BBB"]},
        "fresh": {"risk_share": 0.5, "symbols": ["NEW"]},
    }, min_observations=10, limits={"static": {"symbol_max_notional": 123_000.0, "total_leverage": 0.7}})
    prices = synthetic_prices(["AAA", "BBB"], bars=40, seed=2, annual_volatility=0.2,
                              annual_drift=0.0, correlation=0.3, periods_per_year=PERIODS)
    late = [math.nan] * 35 + [10.0, 10.1, 10.2, 10.1, 10.0]
    market = fed_market(config, {"AAA": prices[:, 0].tolist(), "BBB": prices[:, 1].tolist(), "NEW": late})

    snapshot = budget(config, market)

    assert snapshot.strategies["growth"].limit_source is LimitSource.DYNAMIC
    assert snapshot.strategies["fresh"].limit_source is LimitSource.STATIC
    assert snapshot.limit_source is LimitSource.STATIC
    assert snapshot.total_leverage_limit == 0.7
    assert snapshot.symbols["AAA"].limit_source is LimitSource.DYNAMIC
    assert snapshot.symbols["NEW"].limit_source is LimitSource.STATIC
    assert snapshot.symbols["NEW"].max_position_notional == 123_000.0
    assert snapshot.symbols["NEW"].volatility == 0.0
    assert snapshot.symbols["AAA"].volatility > 0.0


def test_compute_budget_when_a_symbol_has_constant_price_keeps_its_strategy_static():
    config = make_config(TWO_SYMBOLS)
    market = fed_market(config, {"AAA": [100.0, 101.0, 102.0, 101.0], "BBB": [50.0] * 4})

    snapshot = budget(config, market)

    assert snapshot.strategies["core"].limit_source is LimitSource.STATIC


# Snapshot ----------------------------------------------------------------------------


def test_compute_budget_fills_the_snapshot_header():
    config = make_config(TWO_SYMBOLS, shadow_mode=True)
    market = warmed_market(config)

    snapshot = budget(config, market, Regime.BEAR, regime_since=55.0, version=42, now=999.0)

    assert (snapshot.version, snapshot.regime, snapshot.regime_since, snapshot.computed_at) == (
        42, Regime.BEAR, 55.0, 999.0)
    assert snapshot.net_asset_value == NAV
    assert snapshot.shadow_mode is True


def test_compute_budget_when_warm_started_from_the_previous_snapshot_gives_the_same_weights():
    config = make_config({"core": {"risk_share": 1.0, "symbols": ["AAA", "BBB", "CCC", "DDD"]}})
    market = warmed_market(config)
    previous = budget(config, market)
    market.apply_tick(PriceTick("AAA", market.last_price("AAA") * 1.02, 200.5))
    market.advance_to(201.0)

    warm = budget(config, market, previous=previous)
    cold = budget(config, market)

    warm_weights = [s.weight for s in warm.strategies["core"].symbols]
    cold_weights = [s.weight for s in cold.strategies["core"].symbols]
    assert warm_weights == pytest.approx(cold_weights, rel=1e-10)


def test_compute_budget_when_a_bar_is_open_reads_the_market_without_changing_it():
    config = make_config(TWO_SYMBOLS)
    market = warmed_market(config)
    market.apply_tick(PriceTick("AAA", market.last_price("AAA") * 0.97, 500.5))
    covariance = market.covariance()

    first = budget(config, market)
    second = budget(config, market)

    assert first == second
    np.testing.assert_array_equal(market.covariance(), covariance)


# Overrides ---------------------------------------------------------------------------

TWO_STRATEGIES = {
    "growth": {"risk_share": 0.6, "symbols": ["AAA", "BBB"]},
    "carry": {"risk_share": 0.4, "symbols": ["CCC"]},
}


def override(kind: OverrideKind, scope: OverrideScope = OverrideScope.GLOBAL, target: str = "", *,
             value: float = 0.0, regime: Regime | None = None, id: str = "ovr-1") -> Override:
    return Override(id, scope, target, kind, value, regime, "ops", "test", 900.0)


def target_notional(snapshot, symbol: str) -> float:
    return sum(strategy.max_gross_exposure * entry.weight
               for strategy in snapshot.strategies.values()
               for entry in strategy.symbols if entry.symbol == symbol)


def test_compute_budget_with_a_global_leverage_scale_scales_every_strategy_and_the_total():
    config = make_config(TWO_STRATEGIES)
    market = warmed_market(config)
    plain = budget(config, market)
    halve = override(OverrideKind.SCALE_LEVERAGE, value=0.5)

    scaled = budget(config, market, overrides=[halve])

    for name, strategy in scaled.strategies.items():
        assert strategy.leverage_limit == pytest.approx(0.5 * plain.strategies[name].leverage_limit)
        assert strategy.allocated_capital == plain.strategies[name].allocated_capital
        assert strategy.limit_source is LimitSource.OVERRIDE
    assert scaled.total_leverage_limit == pytest.approx(0.5 * plain.total_leverage_limit)
    assert scaled.limit_source is LimitSource.OVERRIDE
    for symbol in scaled.symbols.values():
        assert symbol.max_position_notional == pytest.approx(
            0.5 * plain.symbols[symbol.symbol].max_position_notional)
        assert symbol.limit_source is LimitSource.OVERRIDE
    assert scaled.overrides == (halve,)


def test_compute_budget_with_a_loosening_scale_never_goes_above_the_regime_leverage_limit():
    config = make_config(TWO_STRATEGIES)
    market = warmed_market(config)
    plain = budget(config, market)
    growth = plain.strategies["growth"].leverage_limit
    assert 1.5 * growth < 2.0 < 3 * growth

    loosened = budget(config, market, overrides=[
        override(OverrideKind.SCALE_LEVERAGE, OverrideScope.STRATEGY, "growth", value=1.5)])
    unbounded = budget(config, market, overrides=[
        override(OverrideKind.SCALE_LEVERAGE, OverrideScope.STRATEGY, "growth", value=3.0)])

    assert loosened.strategies["growth"].leverage_limit == pytest.approx(1.5 * growth)
    assert unbounded.strategies["growth"].leverage_limit == 2.0


def test_compute_budget_with_a_strategy_leverage_cap_tightens_that_strategy_and_its_symbols_only():
    config = make_config(TWO_STRATEGIES)
    market = warmed_market(config)
    plain = budget(config, market)

    capped = budget(config, market, overrides=[
        override(OverrideKind.CAP_LEVERAGE, OverrideScope.STRATEGY, "growth", value=0.3)])

    growth, carry = capped.strategies["growth"], capped.strategies["carry"]
    assert growth.leverage_limit == 0.3
    assert growth.limit_source is LimitSource.OVERRIDE
    assert carry == plain.strategies["carry"]
    for symbol in ("AAA", "BBB"):
        assert capped.symbols[symbol].max_position_notional == pytest.approx(
            target_notional(capped, symbol) * 1.25, rel=1e-12)
        assert capped.symbols[symbol].max_position_notional < plain.symbols[symbol].max_position_notional
        assert capped.symbols[symbol].limit_source is LimitSource.OVERRIDE
    assert capped.symbols["CCC"] == plain.symbols["CCC"]
    assert capped.total_leverage_limit == plain.total_leverage_limit
    assert capped.limit_source is LimitSource.DYNAMIC


def test_compute_budget_with_a_global_leverage_cap_caps_the_total_and_every_strategy():
    config = make_config(TWO_STRATEGIES)
    market = warmed_market(config)

    capped = budget(config, market, overrides=[override(OverrideKind.CAP_LEVERAGE, value=0.4)])

    assert capped.total_leverage_limit == 0.4
    assert [s.leverage_limit for s in capped.strategies.values()] == [0.4, 0.4]


def test_compute_budget_with_a_cap_above_the_computed_limit_changes_nothing():
    config = make_config(TWO_STRATEGIES)
    market = warmed_market(config)
    plain = budget(config, market)

    loose = budget(config, market, overrides=[
        override(OverrideKind.CAP_LEVERAGE, value=1.9),
        override(OverrideKind.CAP_STRATEGY_CAPITAL, OverrideScope.STRATEGY, "carry", value=1e9),
        override(OverrideKind.CAP_SYMBOL_POSITION, OverrideScope.SYMBOL, "AAA", value=1e12)])

    assert loose.strategies == plain.strategies
    assert loose.symbols == plain.symbols
    assert loose.total_leverage_limit == plain.total_leverage_limit
    assert loose.limit_source is LimitSource.DYNAMIC


def test_compute_budget_with_a_scale_and_a_cap_applies_both_whatever_their_order():
    config = make_config(TWO_STRATEGIES)
    market = warmed_market(config)
    growth = budget(config, market).strategies["growth"].leverage_limit
    scale = override(OverrideKind.SCALE_LEVERAGE, OverrideScope.STRATEGY, "growth", value=0.5, id="s")
    cap = override(OverrideKind.CAP_LEVERAGE, OverrideScope.STRATEGY, "growth", value=0.4 * growth, id="c")
    halve_book = override(OverrideKind.SCALE_LEVERAGE, value=0.5, id="g")

    both = budget(config, market, overrides=[scale, cap])
    reversed_ = budget(config, market, overrides=[cap, scale])
    with_global = budget(config, market, overrides=[scale, halve_book])

    assert both.strategies["growth"].leverage_limit == pytest.approx(0.4 * growth)
    assert reversed_.strategies["growth"].leverage_limit == both.strategies["growth"].leverage_limit
    assert with_global.strategies["growth"].leverage_limit == pytest.approx(0.25 * growth)


def test_compute_budget_with_a_capital_cap_caps_the_strategy_and_tightens_its_symbols():
    config = make_config(TWO_STRATEGIES)
    market = warmed_market(config)
    plain = budget(config, market)

    capped = budget(config, market, overrides=[
        override(OverrideKind.CAP_STRATEGY_CAPITAL, OverrideScope.STRATEGY, "carry", value=100_000.0)])

    carry = capped.strategies["carry"]
    assert carry.allocated_capital == 100_000.0
    assert carry.leverage_limit == plain.strategies["carry"].leverage_limit
    assert carry.limit_source is LimitSource.OVERRIDE
    assert capped.symbols["CCC"].max_position_notional == pytest.approx(
        100_000.0 * carry.leverage_limit * 1.25, rel=1e-12)
    assert capped.symbols["CCC"].limit_source is LimitSource.OVERRIDE
    assert capped.strategies["growth"] == plain.strategies["growth"]
    assert capped.symbols["AAA"] == plain.symbols["AAA"]


def test_compute_budget_with_a_symbol_position_cap_caps_that_symbol_only():
    config = make_config(TWO_STRATEGIES)
    market = warmed_market(config)
    plain = budget(config, market)

    capped = budget(config, market, overrides=[
        override(OverrideKind.CAP_SYMBOL_POSITION, OverrideScope.SYMBOL, "BBB", value=50_000.0)])

    assert capped.symbols["BBB"].max_position_notional == 50_000.0
    assert capped.symbols["BBB"].limit_source is LimitSource.OVERRIDE
    assert capped.symbols["AAA"] == plain.symbols["AAA"]
    assert capped.strategies == plain.strategies


def test_compute_budget_with_a_symbol_position_cap_caps_a_static_limit_too():
    config = make_config(TWO_SYMBOLS, min_observations=20,
                         limits={"static": {"symbol_max_notional": 250_000.0}})
    market = warmed_market(config, bars=5)

    capped = budget(config, market, overrides=[
        override(OverrideKind.CAP_SYMBOL_POSITION, OverrideScope.SYMBOL, "AAA", value=0.0)])

    assert capped.symbols["AAA"].max_position_notional == 0.0
    assert capped.symbols["AAA"].limit_source is LimitSource.OVERRIDE
    assert capped.symbols["BBB"].max_position_notional == 250_000.0
    assert capped.symbols["BBB"].limit_source is LimitSource.STATIC


def test_compute_budget_with_a_strategy_override_on_a_static_strategy_leaves_static_symbol_limits():
    config = make_config(TWO_SYMBOLS, min_observations=20, limits={
        "static": {"strategy_leverage": 1.2, "total_leverage": 0.9, "symbol_max_notional": 250_000.0}})
    market = warmed_market(config, bars=5)

    scaled = budget(config, market, overrides=[
        override(OverrideKind.SCALE_LEVERAGE, OverrideScope.STRATEGY, "core", value=0.5)])

    assert scaled.strategies["core"].leverage_limit == pytest.approx(0.6)
    assert scaled.strategies["core"].limit_source is LimitSource.OVERRIDE
    assert scaled.total_leverage_limit == 0.9
    assert scaled.limit_source is LimitSource.STATIC
    assert all(s.max_position_notional == 250_000.0 for s in scaled.symbols.values())


def test_compute_budget_leaves_forced_regimes_to_the_caller_and_only_marks_restrictions():
    config = make_config(TWO_STRATEGIES)
    market = warmed_market(config)
    plain = budget(config, market)
    others = (override(OverrideKind.FORCE_REGIME, regime=Regime.CRISIS, id="regime"),
              override(OverrideKind.RESTRICT_SYMBOL, OverrideScope.SYMBOL, "AAA", id="restrict"))

    snapshot = budget(config, market, overrides=others)

    assert snapshot.regime is Regime.BULL
    marked = {**plain.symbols, "AAA": dataclasses.replace(plain.symbols["AAA"], restricted=True)}
    assert snapshot == dataclasses.replace(plain, overrides=others, symbols=marked)
