"""The replay: no look-ahead, the rebalancer holds the budget's targets, utilization as the engine's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from riskbudget_sidecar.backtest.replay import REGIME_CODE, Rebalance, Replay, ReplaySettings, static_mix
from riskbudget_sidecar.backtest.report import (
    markdown_report, regime_line, report_data, static_share, wiped_out_line,
)
from riskbudget_sidecar.backtest.run import evaluate_replay, run_backtest
from riskbudget_sidecar.engine.book import Book
from riskbudget_sidecar.engine.types import Position, Regime
from riskbudget_sidecar.engine.utilization import compute_utilization

from .builders import daily_table, make_config

PER_ROW = ("regime", "version", "total_leverage_limit", "forecast_volatility", "returns", "gross",
           "turnover", "utilization", "unit_utilization")


def decisions(result, upto: int) -> dict[str, np.ndarray]:
    return {name: getattr(result, name)[:upto + 1] for name in PER_ROW}


@pytest.mark.parametrize("rebalance", list(Rebalance))
def test_changing_prices_after_day_t_changes_no_decision_up_to_day_t(rebalance):
    config = make_config()
    table = daily_table(120, seed=5)
    t = 70
    rng = np.random.default_rng(9)
    altered = table.values.copy()
    altered[t + 1:] *= rng.uniform(0.5, 1.5, altered[t + 1:].shape)  # a different future
    settings = ReplaySettings(rebalance=rebalance, warmup=15)

    original = Replay(config, table, settings, trace=True).run()
    changed = Replay(config, table.with_values(altered), settings, trace=True).run()

    for name, values in decisions(original, t).items():
        np.testing.assert_array_equal(values, decisions(changed, t)[name], err_msg=name)
    orders = [o for o in original.trace.orders if o.row <= t]
    assert orders == [o for o in changed.trace.orders if o.row <= t]
    assert original.trace.monitor_snapshots[t] == changed.trace.monitor_snapshots[t]
    assert [f for f in original.firings if f[0] <= t] == [f for f in changed.firings if f[0] <= t]
    # ...and the future did change something, so the comparison had teeth.
    assert not np.array_equal(original.returns[t + 1:], changed.returns[t + 1:])


def test_prices_between_bar_ends_are_refused_naming_the_row_not_replayed_stale():
    table = daily_table(30)
    shifted = dataclasses.replace(table, times=table.times - 8 * 3600)  # 16:00 UTC, not a day's end

    with pytest.raises(ValueError, match=r"row 1 of the prices, at .*T16:00:00\+00:00, is not at the end of a bar"):
        Replay(make_config(), shifted, ReplaySettings())


def test_a_run_on_the_static_fallback_says_so_in_its_report():
    table = daily_table(60)
    still = table.values.copy()
    still[:, 0] = 100.0  # a symbol without variance: the budget falls back to its static limits
    result = run_backtest(make_config(), dataclasses.replace(table, values=still), ReplaySettings())
    dynamic = run_backtest(make_config(), table, ReplaySettings())

    assert static_share(result) == 1.0 and "fell back to its static limits on 100.0%" in regime_line(result)
    assert static_share(dynamic) == 0.0 and "static limits" not in regime_line(dynamic)
    assert report_data(result)["static_fallback_share"] == 1.0


def test_a_prefix_of_the_data_gives_the_same_decisions_as_the_whole():
    config = make_config()
    table = daily_table(100, seed=8)
    settings = ReplaySettings(warmup=12)

    whole = Replay(config, table, settings).run()
    prefix = Replay(config, table.head(60), settings).run()

    for name, values in decisions(prefix, 59).items():
        np.testing.assert_array_equal(values, decisions(whole, 59)[name], err_msg=name)


def test_the_dynamic_portfolio_holds_the_budgets_target_notionals():
    config = make_config(limits={"max_order_notional": 1e9})
    table = daily_table(80, seed=2)
    replay = Replay(config, table, ReplaySettings(warmup=20), trace=True)

    result = replay.run()

    snapshot = replay.pipeline.snapshot
    nav = config.portfolio.net_asset_value
    prices = dict(zip(result.table.symbols, result.prices[-1]))
    for strategy, budget in snapshot.strategies.items():
        for entry in budget.symbols:
            held = replay.book.exposure(strategy, entry.symbol).position * prices[entry.symbol]
            target = budget.max_gross_exposure * entry.weight
            # whole lots: a sell stops within a lot above the target, so a buy may be cut a lot short
            assert held == pytest.approx(target, abs=2 * prices[entry.symbol]), (strategy, entry.symbol)
    assert result.gross[-1] == pytest.approx(
        sum(b.max_gross_exposure for b in snapshot.strategies.values()) / nav, rel=0.02)


def test_orders_go_through_the_pre_trade_check_and_are_sliced_under_the_order_cap():
    config = make_config(limits={"max_order_notional": 3_000, "max_staleness": 30})
    result = Replay(config, daily_table(60, seed=4), ReplaySettings(warmup=20), trace=True).run()

    first_day = [o for o in result.trace.orders if o.row == 20]
    assert result.orders["resized"] > 0
    assert result.reasons.get("max_order_notional", 0) > 0
    assert all(o.approved_quantity * 1 <= o.order.quantity for o in first_day)
    # a symbol's first rebalance goes out as several child orders
    per_slot = {}
    for o in first_day:
        per_slot[(o.order.strategy, o.order.symbol)] = per_slot.get((o.order.strategy, o.order.symbol), 0) + 1
    assert max(per_slot.values()) > 1


def test_rebalancing_on_recommendations_trades_less_often_than_every_day():
    config = make_config()
    table = daily_table(150, seed=6)

    daily = run_backtest(config, table, ReplaySettings(warmup=15))
    on_recommendations = run_backtest(config, table, ReplaySettings(warmup=15, rebalance=Rebalance.RECOMMENDATIONS))

    assert on_recommendations.replay.rebalances < daily.replay.rebalances
    rows = {row for row, _ in on_recommendations.replay.firings if row >= 15} | {15}
    assert np.flatnonzero(on_recommendations.replay.turnover).tolist() == sorted(
        r for r in rows if on_recommendations.replay.turnover[r] > 0)


def test_the_book_utilization_is_the_engines_total_utilization():
    config = make_config()
    replay = Replay(config, daily_table(60, seed=1), ReplaySettings(warmup=20))
    result = replay.run()
    snapshot = replay.pipeline.snapshot
    market = replay.pipeline.market
    covariance = market.covariance()

    engine = compute_utilization(snapshot, replay.book, market, covariance=covariance,
                                 cov_symbols=market.symbols, near_limit_fraction=0.8, now=0.0)
    assert result.utilization[-1] == pytest.approx(engine.total.utilization, rel=1e-12)

    static = Book()
    mix = static_mix(config, result.table.symbols)
    nav = config.portfolio.net_asset_value
    static.set_positions([Position("trend", s, w * nav / p)
                          for s, w, p in zip(result.table.symbols, mix, result.prices[-1]) if w])
    engine_static = compute_utilization(snapshot, static, market, covariance=covariance,
                                        cov_symbols=market.symbols, near_limit_fraction=0.8, now=0.0)
    assert result.unit_utilization[-1] == pytest.approx(engine_static.total.utilization, rel=1e-12)


def test_the_static_mix_spreads_each_strategys_share_equally():
    config = make_config()

    mix = static_mix(config, ("AAA", "BBB", "CCC", "DDD", "IDX"))

    assert mix == pytest.approx([0.2, 0.2, 0.2, 0.2, 0.2])  # 0.6 / 3 each, 0.4 / 2 each
    assert mix.sum() == pytest.approx(1.0)


def test_the_comparison_scales_the_matched_portfolio_to_the_dynamic_average_exposure():
    config = make_config()
    result = run_backtest(config, daily_table(120, seed=7), ReplaySettings(warmup=15))

    dynamic, matched = result.series["dynamic"], result.series["matched"]
    assert matched.leverage == pytest.approx(dynamic.gross.mean())
    assert result.performance["matched"].average_gross == pytest.approx(dynamic.gross.mean())
    assert result.performance["static"].average_gross == pytest.approx(config.limits.static.total_leverage)
    # Sharpe does not depend on a constant leverage when cash earns nothing
    assert result.performance["matched"].sharpe == pytest.approx(result.performance["static"].sharpe)
    assert len(dynamic.returns) == len(result.series["static"].returns) == 120 - 15 - 1
    assert sum(result.regimes.share.values()) == pytest.approx(1.0)


def test_a_disabled_dynamic_budget_never_leaves_the_initial_regime():
    data_config = make_config(risk_budgeting={
        **make_config().risk_budgeting.model_dump(mode="json"), "enabled": False})
    result = Replay(data_config, daily_table(60, seed=5, volatility=0.6), ReplaySettings(warmup=10)).run()

    assert set(result.regime.tolist()) == {REGIME_CODE[Regime.BULL]}


def test_settings_are_validated():
    with pytest.raises(ValueError, match="cost_bps"):
        ReplaySettings(cost_bps=-1)
    with pytest.raises(ValueError, match="warmup"):
        ReplaySettings(warmup=-1)
    with pytest.raises(ValueError, match="static_leverage"):
        ReplaySettings(static_leverage=0)
    # Found by a tester: absurd values ran and reported equity below zero.
    with pytest.raises(ValueError, match="cost_bps must be between 0 and 10,000"):
        ReplaySettings(cost_bps=10_001)
    with pytest.raises(ValueError, match="static_leverage must be above 0 and at most 100"):
        ReplaySettings(static_leverage=101)
    with pytest.raises(ValueError, match="risk_free must be an annual rate between -1 and 1"):
        ReplaySettings(risk_free=5)
    ReplaySettings(cost_bps=10_000, static_leverage=100, risk_free=-1)


def test_a_portfolio_that_loses_all_its_equity_holds_nothing_after_and_the_report_says_so():
    """Found by a tester: a crash larger than the book's equity left it below zero and trading
    on, with drawdowns over 100% and figures that meant nothing."""
    table = daily_table(60, seed=4)
    crashed = table.values.copy()
    crashed[40:] *= 0.05  # every price falls 95% in one day, at row 40
    settings = ReplaySettings(warmup=15, static_leverage=2.0)
    result = run_backtest(make_config(), dataclasses.replace(table, values=crashed), settings)

    static = result.series["static"]
    assert static.wiped_out == 40 - 16  # the period ending at row 40; the window starts at row 16
    assert static.returns[static.wiped_out] == -1.0
    assert not static.returns[static.wiped_out + 1:].any() and not static.gross[static.wiped_out + 1:].any()
    assert result.performance["static"].max_drawdown == 1.0
    assert result.performance["static"].annual_return == -1.0
    dynamic = result.series["dynamic"]
    assert (dynamic.returns > -1.0).all() and dynamic.wiped_out is None  # at its lower leverage it lives on
    assert report_data(result)["wiped_out"] == {"static": table.labels[40]}
    assert f"static at {table.labels[40]}" in wiped_out_line(result)
    assert wiped_out_line(run_backtest(make_config(), table, settings)) is None


def test_a_dynamic_book_wiped_out_stops_trading():
    levered = {"equity_allocation": 1.0, "leverage_limit": 5.0, "vol_target": 1.0}
    config = make_config(risk_budgeting={"monitoring_interval": 3600,
                                         "regime_allocations": dict.fromkeys(("bull", "bear", "crisis"), levered)})
    table = daily_table(60, seed=4, volatility=0.05)
    crashed = table.values.copy()
    crashed[40:] *= 0.5  # at five times its equity, the book loses 250%
    replay = Replay(config, dataclasses.replace(table, values=crashed), ReplaySettings(warmup=15)).run()

    assert replay.gross[39] > 4.9
    assert replay.returns[40] == -1.0
    assert not replay.returns[41:].any() and not replay.turnover[41:].any() and not replay.gross[41:].any()


def test_costs_lower_the_dynamic_returns_by_the_traded_notional():
    config = make_config()
    table = daily_table(80, seed=3)
    free = Replay(config, table, ReplaySettings(warmup=15)).run()
    costly = Replay(config, table, dataclasses.replace(ReplaySettings(warmup=15), cost_bps=10)).run()

    assert costly.returns[16] == pytest.approx(free.returns[16] - 0.001 * free.turnover[15], rel=1e-9)
    assert evaluate_replay(costly).performance["dynamic"].annual_return < \
        evaluate_replay(free).performance["dynamic"].annual_return


def test_the_markdown_report_names_the_wiped_out_row_as_the_data_does():
    """Found by a reviewer: the report capitalized its line and lowercased the row's label."""
    table = daily_table(60, seed=4)
    crashed = table.values.copy()
    crashed[40:] *= 0.05
    labels = tuple(label + "T16:00:00Z" for label in table.labels)
    result = run_backtest(make_config(), dataclasses.replace(table, values=crashed, labels=labels),
                          ReplaySettings(warmup=15, static_leverage=2.0))
    markdown = markdown_report(result, title="t", config_label="c", runtime_seconds=1.0, charts=[])

    assert report_data(result)["wiped_out"] == {"static": labels[40]}
    assert f"static at {labels[40]}" in markdown
