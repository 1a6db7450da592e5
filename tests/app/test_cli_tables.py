"""The command line's plain-text tables: columns that stay apart, whatever the numbers."""

from __future__ import annotations

from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import types_pb2 as pb
from riskbudget_sidecar.app.cli import _utilization_table


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
