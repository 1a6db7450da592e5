"""BudgetPipeline: the numeric path the sidecar and the backtest share."""

from __future__ import annotations

import numpy as np
import pytest

from riskbudget_sidecar.engine.pipeline import BudgetPipeline
from riskbudget_sidecar.engine.types import LimitSource, Override, OverrideKind, OverrideScope, PriceTick, Regime

from .builders import daily_table, make_config


def feed(pipeline: BudgetPipeline, table, rows: int) -> None:
    for i in range(rows):
        for symbol, price in zip(table.symbols, table.values[i]):
            pipeline.apply_tick(PriceTick(symbol, float(price), table.times[i] - 1))
        pipeline.advance_to(table.times[i])


def test_the_first_recompute_is_version_one_and_an_unchanged_market_recomputes_nothing():
    pipeline = BudgetPipeline(make_config(), start_time=0.0)

    first = pipeline.recompute(0.0)

    assert first.version == 1 and first.limit_source is LimitSource.STATIC
    assert pipeline.recompute(1.0) is None
    assert pipeline.snapshot is first


def test_a_tick_a_closed_bar_or_invalidate_each_make_a_new_version():
    table = daily_table(30)
    pipeline = BudgetPipeline(make_config(), start_time=table.times[0] - 10)
    pipeline.recompute(0.0)

    pipeline.apply_tick(PriceTick("AAA", 100.0, table.times[0] - 1))
    assert pipeline.recompute(1.0).version == 2
    assert pipeline.advance_to(table.times[0] - 2) == [] and pipeline.recompute(2.0) is None  # bar still open
    pipeline.advance_to(table.times[0])
    assert pipeline.recompute(3.0).version == 3
    pipeline.invalidate()
    assert pipeline.recompute(4.0).version == 4


def test_a_recompute_that_fails_leaves_its_change_pending(monkeypatch):
    pipeline = BudgetPipeline(make_config(), start_time=0.0)
    pipeline.recompute(0.0)
    pipeline.invalidate()

    def failing(*args):
        raise FloatingPointError("the solve diverged")

    with monkeypatch.context() as patched:
        patched.setattr(pipeline, "_compute", failing)
        with pytest.raises(FloatingPointError):
            pipeline.recompute(1.0)

    assert pipeline.recompute(2.0).version == 2


def tick_row(pipeline: BudgetPipeline, table, row: int) -> None:
    for symbol, price in zip(table.symbols, table.values[row]):
        pipeline.apply_tick(PriceTick(symbol, float(price), table.times[row] - 1))


def test_closing_a_bar_the_budget_already_folded_in_recomputes_only_if_the_regime_moves():
    table = daily_table(120, seed=11, volatility=0.35)
    pipeline = BudgetPipeline(make_config(), start_time=table.times[0] - 10)
    feed(pipeline, table, 40)
    closes_without_change = 0
    for row in range(40, 120):
        tick_row(pipeline, table, row)
        seen = pipeline.recompute(table.times[row] - 1)
        changes = pipeline.advance_to(table.times[row])
        after_close = pipeline.recompute(table.times[row])
        if changes:
            assert after_close.regime is changes[-1].current
        else:
            closes_without_change += 1
            assert after_close is None and pipeline.snapshot is seen

    assert 0 < closes_without_change < 80


def test_closing_the_bar_that_gives_every_symbol_enough_returns_recomputes():
    table = daily_table(10)
    pipeline = BudgetPipeline(make_config(), start_time=table.times[0] - 10)
    feed(pipeline, table, 5)  # five closes, four returns: one short of min_observations
    tick_row(pipeline, table, 5)
    assert pipeline.recompute(table.times[5] - 1).limit_source is LimitSource.STATIC

    pipeline.advance_to(table.times[5])

    assert pipeline.recompute(table.times[5]).limit_source is LimitSource.DYNAMIC


def test_closed_bars_move_the_regime_and_the_budget_becomes_dynamic():
    table = daily_table(80, seed=11, volatility=0.35)
    pipeline = BudgetPipeline(make_config(), start_time=table.times[0] - 10)

    feed(pipeline, table, 80)
    snapshot = pipeline.recompute(table.times[79])

    assert pipeline.regime.indicators.bars == 80
    assert snapshot.limit_source is LimitSource.DYNAMIC
    assert snapshot.regime is pipeline.regime.regime


def test_apply_tick_reports_the_regime_changes_of_the_bars_it_closes():
    table = daily_table(80, seed=11, volatility=0.35)
    pipeline = BudgetPipeline(make_config(), start_time=table.times[0] - 10)
    changes = []
    for i in range(80):  # no advance_to: the next row's first tick closes each bar
        for symbol, price in zip(table.symbols, table.values[i]):
            changes += pipeline.apply_tick(PriceTick(symbol, float(price), table.times[i] - 1))

    assert changes and all(c.previous is not c.current for c in changes)
    assert changes[-1].current is pipeline.regime.regime


def test_a_forced_regime_and_a_disabled_budget_override_the_detected_one():
    table = daily_table(40)
    pipeline = BudgetPipeline(make_config(), start_time=5.0)
    feed(pipeline, table, 40)
    force = Override("o1", OverrideScope.GLOBAL, "", OverrideKind.FORCE_REGIME, 0.0, Regime.CRISIS,
                     "ops", "drill", created_at=123.0)

    pipeline.set_overrides((force,))
    forced = pipeline.recompute(1.0)
    assert (forced.regime, forced.regime_since) == (Regime.CRISIS, 123.0)

    data = make_config().model_dump(mode="json")
    data["risk_budgeting"]["enabled"] = False
    disabled = BudgetPipeline(make_config(risk_budgeting=data["risk_budgeting"]), start_time=5.0)
    feed(disabled, table, 40)
    snapshot = disabled.recompute(2.0)
    assert (snapshot.regime, snapshot.regime_since) == (Regime.BULL, 5.0)
    assert snapshot.limit_source is LimitSource.STATIC


def test_reconfigure_swaps_the_allocations_in_at_the_next_recompute():
    table = daily_table(40)
    pipeline = BudgetPipeline(make_config(), start_time=0.0)
    feed(pipeline, table, 40)
    before = pipeline.recompute(1.0)
    data = make_config().model_dump(mode="json")
    for regime in ("bull", "bear", "crisis"):
        data["risk_budgeting"]["regime_allocations"][regime]["equity_allocation"] = 0.1

    pipeline.reconfigure(make_config(risk_budgeting=data["risk_budgeting"]))
    after = pipeline.recompute(2.0)

    assert after.version == before.version + 1
    assert after.equity_allocation == 0.1
    assert np.isclose(sum(s.allocated_capital for s in after.strategies.values()), 0.1 * 1_000_000)
