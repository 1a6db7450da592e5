"""The command line's plain-text tables: columns that stay apart, whatever the numbers."""

from __future__ import annotations

from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import types_pb2 as pb
from riskbudget_sidecar.app.cli import _budget_table, _utilization_table


def test_the_utilization_table_keeps_huge_values_apart_and_lists_every_symbol(capsys) -> None:
    huge = pb.Usage(gross_exposure=6.1e18, gross_exposure_limit=2.3e17, leverage=123456.789,
                    ex_ante_volatility=95.7, utilization=26.5, breached=True)
    response = spb.GetUtilizationResponse(
        budget=pb.BudgetRef(version=4), total=huge,
        strategies=[pb.StrategyUtilization(strategy="trend", usage=huge)],
        symbols=[pb.SymbolUtilization(symbol="AAA", net_quantity=1.5e15, position_notional=2e17,
                                      max_position_notional=1e9, utilization=2e8, breached=True),
                 pb.SymbolUtilization(symbol="BBB", net_quantity=10, position_notional=900,
                                      max_position_notional=1_000, utilization=0.9, near_limit=True)])

    _utilization_table(response)
    lines = capsys.readouterr().out.splitlines()

    total = next(line for line in lines if line.startswith("(total)"))
    assert total.split() == ["(total)", "6,100,000,000,000,000,000", "230,000,000,000,000,000", "123456.789",
                             "9570.00%", "2650.0%", "BREACHED"]
    assert [line.split()[0] for line in lines if line.startswith(("AAA", "BBB"))] == ["AAA", "BBB"]
    assert next(line for line in lines if line.startswith("BBB")).split()[-2:] == ["near", "limit"]


def test_the_budget_table_keeps_huge_values_apart_and_marks_a_restricted_symbol(capsys) -> None:
    response = spb.GetBudgetResponse(budget=pb.Budget(
        ref=pb.BudgetRef(version=3, regime=pb.REGIME_CRISIS), net_asset_value=1e7,
        strategies=[pb.StrategyBudget(strategy="trend", allocated_capital=4.8e17, leverage_limit=12345.678,
                                      max_gross_exposure=9.9e17, limit_source=pb.LIMIT_SOURCE_DYNAMIC)],
        symbols=[pb.SymbolBudget(symbol="AAA", max_position_notional=1e17, max_position_quantity=1e12,
                                 last_price=1e9, volatility=0.2, risk_contribution=0.5,
                                 limit_source=pb.LIMIT_SOURCE_OVERRIDE, restricted=True),
                 pb.SymbolBudget(symbol="BBB", max_position_notional=1e6, last_price=10,
                                 limit_source=pb.LIMIT_SOURCE_DYNAMIC)]))

    _budget_table(response)
    lines = capsys.readouterr().out.splitlines()

    trend = next(line for line in lines if line.startswith("trend"))
    assert trend.split() == ["trend", "480,000,000,000,000,000", "12345.678", "990,000,000,000,000,000", "dynamic"]
    assert next(line for line in lines if line.startswith("AAA")).endswith("override, restricted")
    assert next(line for line in lines if line.startswith("BBB")).endswith("dynamic")


def test_the_budget_table_says_a_symbol_is_checked_at_a_held_back_tick(capsys) -> None:
    """Found by a reviewer: `max qty` is at the checked price, which the table did not show."""
    response = spb.GetBudgetResponse(budget=pb.Budget(
        ref=pb.BudgetRef(version=3, regime=pb.REGIME_BULL), net_asset_value=1e7,
        symbols=[pb.SymbolBudget(symbol="SPY", max_position_notional=1_185_408, max_position_quantity=7_408.8,
                                 last_price=101.6, checked_price=160, limit_source=pb.LIMIT_SOURCE_DYNAMIC),
                 pb.SymbolBudget(symbol="QQQ", max_position_notional=1e6, last_price=79.1, checked_price=79.1,
                                 limit_source=pb.LIMIT_SOURCE_DYNAMIC)]))

    _budget_table(response)
    lines = capsys.readouterr().out.splitlines()

    assert next(line for line in lines if line.startswith("SPY")).endswith(
        "dynamic, checked at 160.00 (a tick held back)")
    assert next(line for line in lines if line.startswith("QQQ")).endswith("dynamic")
